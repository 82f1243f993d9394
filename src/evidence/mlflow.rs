//! MLflow run metrics (`format: mlflow`).
//!
//! Accepted shapes (the first that applies):
//! 1. an mlflow-export-import `run.json`: metrics under `mlflow.metrics` (current releases) or
//!    top-level `metrics` (older releases), each `name: [{value, timestamp, step}, ...]`;
//! 2. an MLflow REST `runs/get` response: `run.data.metrics`, a list of
//!    `{key, value, timestamp, step}`;
//! 3. a plain `metrics.json`: the whole file is `{name: value}` or
//!    `{name: [{value, timestamp, step}, ...]}`.
//!
//! A metric with a history takes the value of its latest step (`step` missing counts as 0;
//! ties go to the later `timestamp`, then to the later entry). A value written as null or NaN
//! leaves the metric out. MLflow records no stderr, sample count or direction, so those are
//! unknown; the metric name is the key as written.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{describe, finite, key_path, Format, ImportError, Imported, MetricRecord};

const FORMAT: Format = Format::Mlflow;

fn shape(message: String) -> ImportError {
    ImportError::shape(FORMAT, message)
}

/// One logged value: (step, timestamp, position, value).
type Point = (f64, f64, usize, Option<f64>);

/// Parses MLflow run metrics.
pub(crate) fn parse(bytes: &[u8]) -> Result<Imported, ImportError> {
    let document = super::parse_json(bytes)?;
    let top = document.as_object().ok_or_else(|| {
        shape(format!(
            "the file holds {}, expected an object of metrics",
            describe(&document)
        ))
    })?;
    let (container, at): (&Value, String) =
        if let Some(metrics) = top.get("mlflow").and_then(|m| m.get("metrics")) {
            (metrics, "mlflow.metrics".into())
        } else if let Some(metrics) = top
            .get("run")
            .and_then(|r| r.get("data"))
            .and_then(|d| d.get("metrics"))
        {
            (metrics, "run.data.metrics".into())
        } else if top
            .get("metrics")
            .is_some_and(|m| m.is_object() || m.is_array())
        {
            (&top["metrics"], "metrics".into())
        } else {
            (&document, String::new())
        };
    let mut series: BTreeMap<String, Vec<Point>> = BTreeMap::new();
    match container {
        Value::Object(map) => {
            for (name, value) in map {
                let here = if at.is_empty() {
                    name.clone()
                } else {
                    key_path(&at, name)
                };
                series.insert(name.clone(), history(value, &here)?);
            }
        }
        Value::Array(list) => {
            for (i, entry) in list.iter().enumerate() {
                let here = format!("{at}[{i}]");
                let entry = entry.as_object().ok_or_else(|| {
                    shape(format!(
                        "`{here}` is {}, expected {{key, value, step, timestamp}}",
                        describe(entry)
                    ))
                })?;
                let name = entry.get("key").and_then(Value::as_str).ok_or_else(|| {
                    shape(format!("`{here}.key` is missing; expected the metric name"))
                })?;
                let points = series.entry(name.to_string()).or_default();
                let position = points.len();
                points.push(point(entry, position, &here)?);
            }
        }
        other => {
            return Err(shape(format!(
                "`{at}` is {}, expected an object of metrics",
                describe(other)
            )))
        }
    }
    let mut imported = Imported::default();
    for (name, points) in series {
        let latest = points.into_iter().max_by(|a, b| {
            a.0.total_cmp(&b.0)
                .then(a.1.total_cmp(&b.1))
                .then(a.2.cmp(&b.2))
        });
        if let Some((_, _, _, Some(value))) = latest {
            imported.insert(MetricRecord::new(name, value), &at, FORMAT)?;
        }
    }
    Ok(imported)
}

/// A metric's values: a number (one point), null (none), or a history list.
fn history(value: &Value, here: &str) -> Result<Vec<Point>, ImportError> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Number(_) => Ok(vec![(0.0, 0.0, 0, finite(value))]),
        Value::Array(list) => list
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let entry_at = format!("{here}[{i}]");
                let entry = entry.as_object().ok_or_else(|| {
                    shape(format!(
                        "`{entry_at}` is {}, expected {{value, step, timestamp}}",
                        describe(entry)
                    ))
                })?;
                point(entry, i, &entry_at)
            })
            .collect(),
        other => Err(shape(format!(
            "`{here}` is {}, expected a number or a list of {{value, step, timestamp}}",
            describe(other)
        ))),
    }
}

fn point(entry: &Map<String, Value>, position: usize, here: &str) -> Result<Point, ImportError> {
    let value = match entry.get("value") {
        Some(Value::Null) => None,
        Some(v @ Value::Number(_)) => finite(v),
        Some(other) => {
            return Err(shape(format!(
                "`{here}.value` is {}, expected a number",
                describe(other)
            )))
        }
        None => return Err(shape(format!("`{here}.value` is missing"))),
    };
    let number = |key: &str| entry.get(key).and_then(Value::as_f64).unwrap_or(0.0);
    Ok((number("step"), number("timestamp"), position, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_step_wins() {
        let file = br#"{"loss": [{"value": 0.9, "step": 2, "timestamp": 5}, {"value": 0.5, "step": 10, "timestamp": 1},
                                  {"value": 0.7, "step": 3, "timestamp": 9}],
                        "acc": [{"value": 0.1, "step": 1, "timestamp": 1}, {"value": 0.2, "step": 1, "timestamp": 2}],
                        "f1": 0.8, "gone": null}"#;
        let imported = parse(file).expect("parses");
        assert_eq!(imported.metrics["loss"].value, 0.5);
        assert_eq!(imported.metrics["acc"].value, 0.2);
        assert_eq!(imported.metrics["f1"].value, 0.8);
        assert!(!imported.metrics.contains_key("gone"));
    }

    #[test]
    fn export_import_run_json_shapes() {
        // The layout of mlflow-export-import's run.json (current: under `mlflow`; older: top
        // level), with made-up values. Params and tags are not metrics.
        let current = br#"{"system": {"mlflow_version": "2.0.1"},
            "mlflow": {"info": {"run_id": "r", "status": "FINISHED"}, "params": {"max_depth": "5"},
                       "metrics": {"accuracy_score": [{"value": 0.93, "timestamp": 1670301595838, "step": 0}],
                                   "zero_one_loss": [{"value": 0.07, "timestamp": 1670301595847, "step": 0}]},
                       "tags": {"mlflow.runName": "silent-dog"}}}"#;
        let imported = parse(current).expect("parses");
        assert_eq!(
            imported.metrics.keys().collect::<Vec<_>>(),
            ["accuracy_score", "zero_one_loss"]
        );
        assert_eq!(
            imported.metrics["accuracy_score"],
            MetricRecord::new("accuracy_score", 0.93)
        );
        let older = br#"{"export_info": {"mlflow_version": "1.26.0"}, "info": {"run_id": "r"},
            "params": {"max_depth": "1"}, "metrics": {"rmse": [{"value": 0.85, "timestamp": 1, "step": 0}]},
            "tags": {"mlflow.runName": "reg_test"}}"#;
        assert_eq!(parse(older).expect("parses").metrics["rmse"].value, 0.85);
    }

    #[test]
    fn rest_run_shape() {
        let file = br#"{"run": {"info": {}, "data": {"metrics": [
            {"key": "rmse", "value": 0.9, "timestamp": 1, "step": 0},
            {"key": "rmse", "value": 0.7, "timestamp": 2, "step": 1}]}}}"#;
        assert_eq!(parse(file).expect("parses").metrics["rmse"].value, 0.7);
    }

    #[test]
    fn bad_values_are_errors() {
        let err = parse(br#"{"acc": "high"}"#).expect_err("string");
        assert_eq!(
            err.to_string(),
            "not mlflow output: `acc` is a string, expected a number or a list of {value, step, timestamp}"
        );
        let err =
            parse(br#"{"mlflow": {"metrics": {"acc": [{"step": 1}]}}}"#).expect_err("no value");
        assert_eq!(
            err.to_string(),
            "not mlflow output: `mlflow.metrics.acc[0].value` is missing"
        );
    }
}
