//! Plain metrics files (`format: metrics`), for tools relgate has no importer for.
//!
//! JSON (the file starts with `{`): `{name: value}` or `{name: {value, stderr?, samples?,
//! higher_is_better?}}`, freely mixed; `value` must be a finite number, `stderr` a number or
//! null, `samples` a whole number or null, `higher_is_better` a boolean or null.
//!
//! CSV (anything else): a header row naming the columns `metric` and `value` and optionally
//! `stderr`, `samples` and `higher_is_better` (in any order; other columns are refused so a typo
//! cannot silently drop a field), then one row per metric. Empty cells are unknown;
//! `higher_is_better` is `true`/`false` (any case) or `1`/`0`. A metric listed twice is an error.

use serde_json::{Map, Value};

use super::{count, describe, finite, key_path, Format, ImportError, Imported, MetricRecord};

const FORMAT: Format = Format::Metrics;

const COLUMNS: [&str; 5] = ["metric", "value", "stderr", "samples", "higher_is_better"];

fn shape(message: String) -> ImportError {
    ImportError::shape(FORMAT, message)
}

/// Parses a plain metrics file (JSON or CSV).
pub(crate) fn parse(bytes: &[u8]) -> Result<Imported, ImportError> {
    let start = bytes
        .strip_prefix("\u{feff}".as_bytes())
        .unwrap_or(bytes)
        .iter()
        .find(|b| !b.is_ascii_whitespace());
    if start == Some(&b'{') || start == Some(&b'[') {
        parse_json(bytes)
    } else {
        parse_csv(bytes)
    }
}

fn parse_json(bytes: &[u8]) -> Result<Imported, ImportError> {
    let document = super::parse_json(bytes)?;
    let map = document.as_object().ok_or_else(|| {
        shape(format!(
            "the file holds {}, expected {{metric: value}}",
            describe(&document)
        ))
    })?;
    let mut imported = Imported::default();
    for (name, entry) in map {
        let here = key_path("", name);
        let record = match entry {
            Value::Number(_) => MetricRecord::new(
                name.clone(),
                finite(entry).ok_or_else(|| shape(format!("`{here}` is not a finite number")))?,
            ),
            Value::Object(fields) => record_from_object(name, fields, &here)?,
            other => {
                return Err(shape(format!(
                "`{here}` is {}, expected a number or {{value, stderr, samples, higher_is_better}}",
                describe(other)
            )))
            }
        };
        imported.insert(record, &here, FORMAT)?;
    }
    Ok(imported)
}

fn record_from_object(
    name: &str,
    fields: &Map<String, Value>,
    here: &str,
) -> Result<MetricRecord, ImportError> {
    if let Some(unknown) = fields.keys().find(|k| !COLUMNS[1..].contains(&k.as_str())) {
        return Err(shape(format!(
            "`{}` is not a metric field; expected value, stderr, samples, higher_is_better",
            key_path(here, unknown)
        )));
    }
    let value = fields.get("value").and_then(finite).ok_or_else(|| {
        shape(format!(
            "`{}` must be a finite number",
            key_path(here, "value")
        ))
    })?;
    let mut record = MetricRecord::new(name, value);
    record.stderr = match fields.get("stderr") {
        None | Some(Value::Null) => None,
        Some(v) => Some(finite(v).ok_or_else(|| {
            shape(format!(
                "`{}` is {}, expected a number",
                key_path(here, "stderr"),
                describe(v)
            ))
        })?),
    };
    record.samples = match fields.get("samples") {
        None | Some(Value::Null) => None,
        Some(v) => Some(count(v).ok_or_else(|| {
            shape(format!(
                "`{}` is {}, expected a whole number",
                key_path(here, "samples"),
                describe(v)
            ))
        })?),
    };
    record.higher_is_better = match fields.get("higher_is_better") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(v) => {
            return Err(shape(format!(
                "`{}` is {}, expected true or false",
                key_path(here, "higher_is_better"),
                describe(v)
            )))
        }
    };
    Ok(record)
}

fn csv_error(err: &csv::Error) -> ImportError {
    let line = err.position().map_or(1, csv::Position::line);
    let message = match err.kind() {
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_string(),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("the row has {len} fields, the header has {expected_len}")
        }
        _ => err.to_string(),
    };
    ImportError::Csv { line, message }
}

fn parse_csv(bytes: &[u8]) -> Result<Imported, ImportError> {
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let header = reader.headers().map_err(|err| csv_error(&err))?.clone();
    let mut columns: [Option<usize>; 5] = [None; 5];
    for (i, name) in header.iter().enumerate() {
        let Some(slot) = COLUMNS.iter().position(|c| c.eq_ignore_ascii_case(name)) else {
            return Err(ImportError::Csv {
                line: 1,
                message: format!(
                    "column `{name}` is not one of metric, value, stderr, samples, higher_is_better"
                ),
            });
        };
        if columns[slot].replace(i).is_some() {
            return Err(ImportError::Csv {
                line: 1,
                message: format!("column `{name}` appears twice"),
            });
        }
    }
    let (Some(metric_col), Some(value_col)) = (columns[0], columns[1]) else {
        return Err(ImportError::Csv {
            line: 1,
            message: "the header must name the columns `metric` and `value` (e.g. `metric,value,stderr,samples,higher_is_better`)".to_string(),
        });
    };
    let mut imported = Imported::default();
    for row in reader.records() {
        let row = row.map_err(|err| csv_error(&err))?;
        let line = row.position().map_or(0, csv::Position::line);
        let bad = |message: String| ImportError::Csv { line, message };
        let cell = |col: Option<usize>| col.and_then(|c| row.get(c)).filter(|s| !s.is_empty());
        let name =
            cell(Some(metric_col)).ok_or_else(|| bad("the `metric` cell is empty".to_string()))?;
        let number = |column: &str, text: &str| {
            text.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    bad(format!(
                        "{column} `{text}` of {name} is not a finite number"
                    ))
                })
        };
        let value = number("value", cell(Some(value_col)).unwrap_or(""))?;
        let mut record = MetricRecord::new(name, value);
        record.stderr = cell(columns[2]).map(|t| number("stderr", t)).transpose()?;
        record.samples = cell(columns[3])
            .map(|t| {
                t.parse::<u64>()
                    .map_err(|_| bad(format!("samples `{t}` of {name} is not a whole number")))
            })
            .transpose()?;
        record.higher_is_better = cell(columns[4])
            .map(|t| match t.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(bad(format!(
                    "higher_is_better `{t}` of {name} is not true or false"
                ))),
            })
            .transpose()?;
        imported.insert(record, &format!("line {line}"), FORMAT)?;
    }
    Ok(imported)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shapes() {
        let imported = parse(
            br#"{"accuracy": 0.91, "latency_p95_ms": {"value": 2400, "stderr": null, "samples": 500, "higher_is_better": false},
                 "f1": {"value": 0.8, "stderr": 0.01}}"#,
        )
        .expect("parses");
        assert_eq!(
            imported.metrics["accuracy"],
            MetricRecord::new("accuracy", 0.91)
        );
        let latency = &imported.metrics["latency_p95_ms"];
        assert_eq!(
            (latency.value, latency.samples, latency.higher_is_better),
            (2400.0, Some(500), Some(false))
        );
        assert_eq!(imported.metrics["f1"].stderr, Some(0.01));
    }

    #[test]
    fn json_errors() {
        assert_eq!(
            parse(br#"{"a": "0.9"}"#).expect_err("string").to_string(),
            "not metrics output: `a` is a string, expected a number or {value, stderr, samples, higher_is_better}"
        );
        assert_eq!(
            parse(br#"{"a": {"value": 1, "stdev": 2}}"#).expect_err("typo").to_string(),
            "not metrics output: `a.stdev` is not a metric field; expected value, stderr, samples, higher_is_better"
        );
        assert_eq!(
            parse(br#"{"a": {"value": 1, "samples": 2.5}}"#)
                .expect_err("fraction")
                .to_string(),
            "not metrics output: `a.samples` is a number, expected a whole number"
        );
        assert!(parse(b"{\"a\": 1,\n\"b\": }")
            .expect_err("syntax")
            .to_string()
            .starts_with("invalid JSON at line 2, column 6"));
    }

    #[test]
    fn csv_shapes() {
        let imported = parse(b"metric,value,stderr,samples,higher_is_better\npass_rate,0.95,0.01,200,true\nlatency_p95_ms, 2100 ,,,FALSE\n")
            .expect("parses");
        let pass_rate = &imported.metrics["pass_rate"];
        assert_eq!(
            (
                pass_rate.value,
                pass_rate.stderr,
                pass_rate.samples,
                pass_rate.higher_is_better
            ),
            (0.95, Some(0.01), Some(200), Some(true))
        );
        let latency = &imported.metrics["latency_p95_ms"];
        assert_eq!(
            (
                latency.value,
                latency.stderr,
                latency.samples,
                latency.higher_is_better
            ),
            (2100.0, None, None, Some(false))
        );
        let reordered = parse(b"value,metric\n1,a\n").expect("any order");
        assert_eq!(reordered.metrics["a"].value, 1.0);
    }

    #[test]
    fn csv_errors_have_lines() {
        let err = parse(b"metric,value\na,1\nb,x\n").expect_err("bad value");
        assert_eq!(
            err.to_string(),
            "invalid CSV at line 3: value `x` of b is not a finite number"
        );
        let err = parse(b"metric,value\na,1\na,2\n").expect_err("dup");
        assert!(
            err.to_string().contains("metric `a` appears twice"),
            "{err}"
        );
        let err = parse(b"metric,val\na,1\n").expect_err("header");
        assert_eq!(err.to_string(), "invalid CSV at line 1: column `val` is not one of metric, value, stderr, samples, higher_is_better");
        let err = parse(b"metric,value\na,1,3\n").expect_err("width");
        assert_eq!(
            err.to_string(),
            "invalid CSV at line 2: the row has 3 fields, the header has 2"
        );
        let err = parse(b"metric,value\na,nan\n").expect_err("nan");
        assert!(err.to_string().contains("not a finite number"), "{err}");
    }
}
