//! Parsing Prometheus API responses, HTTP bodies and files alike: the envelope, instant vectors,
//! sample values and times. Nothing of a body's content reaches a message (its type and size
//! do).

use serde_json::Value;

use super::ReadingError;

/// A remaining-budget reading: the value and the time it was taken (RFC 3339).
pub(crate) type Budget = (f64, Option<String>);

/// An alert reading: how many series the query returned, and when (RFC 3339).
pub(crate) type Alerts = (usize, Option<String>);

/// The `data` of a successful `/api/v1/query` response.
#[derive(Debug, Clone)]
pub struct QueryData {
    pub(crate) result_type: String,
    pub(crate) result: Value,
}

/// What a body is, for error messages: its content type and size, never its bytes. A
/// response can come from any service behind the URL, and whatever relgate shows ends up in
/// reports, pull-request comments and CI logs.
pub(super) fn describe_body(bytes: &[u8], content_type: Option<&str>) -> String {
    let kind = content_type
        .map(|c| {
            // The header is the server's text too: keep a short, printable media type only.
            c.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .chars()
                .filter(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '/' | '.' | '+' | '-'))
                .take(64)
                .collect::<String>()
        })
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "no content type".to_string());
    format!("{kind}, {} bytes", bytes.len())
}

fn looks_like_html(bytes: &[u8], content_type: Option<&str>) -> bool {
    if content_type.is_some_and(|c| c.to_ascii_lowercase().contains("html")) {
        return true;
    }
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    bytes.get(start) == Some(&b'<')
}

/// Parses JSON text, naming HTML and other non-JSON bodies.
pub(super) fn parse_json(bytes: &[u8], content_type: Option<&str>) -> Result<Value, ReadingError> {
    if looks_like_html(bytes, content_type) {
        return Err(ReadingError::Html {
            body: describe_body(bytes, content_type),
        });
    }
    // The strict reader: a key repeated in one object (two `result`s, say) is an error, not
    // "the last one wins". serde_json's messages carry no input text beyond such a key.
    crate::evidence::json::from_slice(bytes).map_err(|err| ReadingError::NotJson {
        message: err.to_string(),
        body: describe_body(bytes, content_type),
    })
}

pub(super) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Interprets a Prometheus API envelope: `{"status": "success", "data": {...}}` or
/// `{"status": "error", "errorType": ..., "error": ...}`.
pub(crate) fn parse_envelope(value: &Value) -> Result<QueryData, ReadingError> {
    let Some(object) = value.as_object() else {
        return Err(ReadingError::Envelope(format!(
            "a JSON {}, not an object with `status` and `data`",
            type_name(value)
        )));
    };
    match object.get("status").and_then(Value::as_str) {
        Some("success") => {}
        Some("error") => {
            // Prometheus' error types are short identifiers (bad_data, timeout, ...); anything
            // else is not shown.
            let error_type = object
                .get("errorType")
                .and_then(Value::as_str)
                .filter(|t| {
                    !t.is_empty()
                        && t.len() <= 32
                        && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                })
                .unwrap_or("unknown")
                .to_string();
            return Err(ReadingError::Prometheus { error_type });
        }
        Some(_) => {
            return Err(ReadingError::Envelope(
                "`status` is neither \"success\" nor \"error\"".to_string(),
            ))
        }
        None => return Err(ReadingError::Envelope("no `status` field".to_string())),
    }
    // `warnings` means partial data (Thanos/Mimir with a store down, a query limit hit): the
    // result may lack the very series that would block. `infos` are notes, not gaps.
    match object.get("warnings") {
        None | Some(Value::Null) => {}
        Some(Value::Array(warnings)) if warnings.is_empty() => {}
        Some(Value::Array(warnings)) => {
            return Err(ReadingError::Warnings {
                count: warnings.len(),
            })
        }
        Some(other) => {
            return Err(ReadingError::Envelope(format!(
                "`warnings` is a {}, not a list",
                type_name(other)
            )))
        }
    }
    let data = object
        .get("data")
        .and_then(Value::as_object)
        .ok_or_else(|| ReadingError::Envelope("no `data` object".to_string()))?;
    let result_type = data
        .get("resultType")
        .and_then(Value::as_str)
        .ok_or_else(|| ReadingError::Envelope("no `data.resultType`".to_string()))?;
    let result = data
        .get("result")
        .cloned()
        .ok_or_else(|| ReadingError::Envelope("no `data.result`".to_string()))?;
    Ok(QueryData {
        result_type: result_type.to_string(),
        result,
    })
}

/// Parses an HTTP body or file as a Prometheus API response.
pub fn parse_response(bytes: &[u8], content_type: Option<&str>) -> Result<QueryData, ReadingError> {
    parse_envelope(&parse_json(bytes, content_type)?)
}

fn vector_hint(result_type: &str) -> &'static str {
    match result_type {
        "scalar" => {
            "; relgate needs one series: drop scalar(), or wrap the expression in vector(...)"
        }
        "matrix" => "; the query selects a range (`[5m]`): ask for an instant value instead",
        "string" => "; the query is a string literal",
        _ => "",
    }
}

/// The series of an instant vector.
fn vector(data: &QueryData) -> Result<&Vec<Value>, ReadingError> {
    if data.result_type != "vector" {
        return Err(ReadingError::ResultType {
            found: data.result_type.clone(),
            hint: vector_hint(&data.result_type),
        });
    }
    data.result.as_array().ok_or_else(|| {
        ReadingError::Envelope(format!(
            "`data.result` is a {}, not a list",
            type_name(&data.result)
        ))
    })
}

/// A sample value: Prometheus sends numbers as strings ("0.42", "NaN", "+Inf"). Files may use
/// JSON numbers.
pub(crate) fn sample_value(value: &Value) -> Result<f64, ReadingError> {
    match value {
        // A non-finite value is named (NaN, +Inf: what Prometheus writes); any other text is
        // only described, as it is the answer's and could be anything.
        Value::String(text) => match text.trim().parse::<f64>() {
            Ok(number) if number.is_nan() => Err(ReadingError::NotFinite("NaN".to_string())),
            Ok(number) if number.is_infinite() => Err(ReadingError::NotFinite(
                if number > 0.0 { "+Inf" } else { "-Inf" }.to_string(),
            )),
            Ok(number) => Ok(number),
            Err(_) if text.trim().is_empty() => {
                Err(ReadingError::NotNumeric("an empty string".to_string()))
            }
            Err(_) => Err(ReadingError::NotNumeric(format!(
                "a string of {} characters",
                text.chars().count()
            ))),
        },
        Value::Number(number) => number
            .as_f64()
            .filter(|n| n.is_finite())
            .ok_or_else(|| ReadingError::NotFinite(number.to_string())),
        other => Err(ReadingError::NotNumeric(format!(
            "a JSON {}",
            type_name(other)
        ))),
    }
}

/// A sample time (unix seconds, number or string).
fn sample_time(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|t: &f64| t.is_finite())
}

/// RFC 3339 UTC text of a unix time (fractions only when present).
pub(super) fn format_time(secs: f64) -> Option<String> {
    if !secs.is_finite() {
        return None;
    }
    let millis = (secs * 1000.0).round();
    if millis.abs() > 8.0e15 {
        return None;
    }
    // |millis| <= 8e15: a whole number exactly representable in i64, so the cast is exact.
    let millis = millis as i64;
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// A time given in a file: RFC 3339 text or unix seconds.
pub(super) fn parse_time(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => chrono::DateTime::parse_from_rfc3339(text.trim())
            .ok()
            .map(|t| {
                t.with_timezone(&chrono::Utc)
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            })
            .or_else(|| sample_time(value).and_then(format_time)),
        Value::Number(_) => sample_time(value).and_then(format_time),
        _ => None,
    }
}

/// The label names the series carry (names only: label values are the answer's data, which
/// never reaches a report), for the "several series" message.
fn label_names(series: &[Value]) -> String {
    let mut names: Vec<&str> = series
        .iter()
        .filter_map(|s| s.get("metric").and_then(Value::as_object))
        .flat_map(|metric| metric.keys().map(String::as_str))
        .filter(|k| k.len() <= 64 && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        "the series carry no labels".to_string()
    } else {
        let more = if names.len() > 8 { ", …" } else { "" };
        names.truncate(8);
        format!("labels: {}{more}", names.join(", "))
    }
}

/// A remaining-budget reading: exactly one series with a finite value. Returns the value and
/// the sample's time (RFC 3339).
pub fn remaining_value(data: &QueryData) -> Result<Budget, ReadingError> {
    let series = vector(data)?;
    match series.as_slice() {
        [] => Err(ReadingError::Empty),
        [one] => {
            let Some(sample) = one.get("value").and_then(Value::as_array) else {
                return Err(if one.get("histogram").is_some() {
                    ReadingError::NotNumeric("a native histogram".to_string())
                } else {
                    ReadingError::Envelope("a series has no `value`".to_string())
                });
            };
            let [time, value] = sample.as_slice() else {
                return Err(ReadingError::Envelope(
                    "a sample is not [time, value]".to_string(),
                ));
            };
            let number = sample_value(value)?;
            Ok((number, sample_time(time).and_then(format_time)))
        }
        many => Err(ReadingError::Multiple {
            count: many.len(),
            labels: label_names(many),
        }),
    }
}

/// An alert reading: the number of series the query returned, and the time of the first one.
pub(crate) fn alert_series(data: &QueryData) -> Result<Alerts, ReadingError> {
    let series = vector(data)?;
    let time = series
        .first()
        .and_then(|s| s.get("value"))
        .and_then(Value::as_array)
        .and_then(|v| v.first())
        .and_then(sample_time)
        .and_then(format_time);
    Ok((series.len(), time))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(text: &str) -> Result<QueryData, ReadingError> {
        parse_response(text.as_bytes(), Some("application/json"))
    }

    fn vector_of(values: &[&str]) -> String {
        let series: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!(r#"{{"metric":{{"i":"{i}"}},"value":[1767225600,"{v}"]}}"#))
            .collect();
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
            series.join(",")
        )
    }

    fn remaining(text: &str) -> Result<Budget, ReadingError> {
        data(text).and_then(|d| remaining_value(&d))
    }

    #[test]
    fn one_series_is_a_value_with_its_time() {
        let (value, time) = remaining(&vector_of(&["0.42"])).expect("a value");
        assert!((value - 0.42).abs() < 1e-12);
        assert_eq!(time.as_deref(), Some("2026-01-01T00:00:00Z"));
        let (value, _) = remaining(&vector_of(&["-0.5"])).expect("negative budgets are values");
        assert!((value + 0.5).abs() < 1e-12);
    }

    #[test]
    fn fractional_sample_time_keeps_milliseconds() {
        let text = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1435781451.781,"1"]}]}}"#;
        assert_eq!(
            remaining(text).expect("value").1.as_deref(),
            Some("2015-07-01T20:10:51.781Z")
        );
    }

    #[test]
    fn invalid_values_are_errors() {
        for (value, word) in [
            ("NaN", "NaN"),
            ("+Inf", "+Inf"),
            ("-Inf", "-Inf"),
            ("abc", "not a number"),
            ("", "not a number"),
        ] {
            let err = remaining(&vector_of(&[value])).expect_err(value);
            assert!(err.to_string().contains(word), "{value}: {err}");
        }
        assert!(matches!(
            remaining(&vector_of(&[])),
            Err(ReadingError::Empty)
        ));
        let err = remaining(&vector_of(&["0.1", "0.2"])).expect_err("two series");
        assert!(err.to_string().contains("2 series"), "{err}");
        // Label names, never their values (the answer's data).
        assert!(err.to_string().contains("labels: i"), "{err}");
        assert!(!err.to_string().contains(r#""0""#), "{err}");
        let err = remaining(&vector_of(&["token-abc"])).expect_err("text");
        assert!(!err.to_string().contains("token"), "{err}");
    }

    #[test]
    fn result_types_other_than_vector_are_errors() {
        let scalar =
            r#"{"status":"success","data":{"resultType":"scalar","result":[1767225600,"0.5"]}}"#;
        assert!(remaining(scalar)
            .expect_err("scalar")
            .to_string()
            .contains("got a scalar"));
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(data(matrix)
            .and_then(|d| alert_series(&d))
            .expect_err("matrix")
            .to_string()
            .contains("range"));
    }

    #[test]
    fn envelopes_errors_html_and_garbage() {
        let err = data(r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#)
            .expect_err("error");
        assert!(
            err.to_string()
                .starts_with(r#"Prometheus answered status "error" (bad_data)"#),
            "{err}"
        );
        assert!(!err.to_string().contains("parse error"), "{err}");
        let err =
            data(r#"{"status":"error","errorType":"<b>x</b>","error":"e"}"#).expect_err("odd type");
        assert!(err.to_string().contains("(unknown)"), "{err}");
        let err = data(r#"{"status":"success","warnings":["store down"],"data":{"resultType":"vector","result":[]}}"#)
            .expect_err("warnings");
        assert!(matches!(err, ReadingError::Warnings { count: 1 }), "{err}");
        assert!(!err.to_string().contains("store down"), "{err}");
        assert!(data(
            r#"{"status":"success","warnings":[],"data":{"resultType":"vector","result":[]}}"#
        )
        .is_ok());
        let err = data(
            r#"{"status":"success","data":{"resultType":"vector","result":[]},"status":"error"}"#,
        )
        .expect_err("duplicate");
        assert!(err.to_string().contains("duplicate key `status`"), "{err}");
        let err = data("<!DOCTYPE html><html><body>Sign in</body></html>").expect_err("html");
        assert!(matches!(err, ReadingError::Html { .. }), "{err}");
        let err = parse_response(b"{}", Some("text/html; charset=utf-8")).expect_err("html type");
        assert!(matches!(err, ReadingError::Html { .. }), "{err}");
        let err = data("upstream connect error").expect_err("text");
        assert!(matches!(err, ReadingError::NotJson { .. }), "{err}");
        // The body is described, never quoted.
        assert!(!err.to_string().contains("upstream"), "{err}");
        assert!(err.to_string().contains("22 bytes"), "{err}");
        assert!(matches!(data("[1,2]"), Err(ReadingError::Envelope(_))));
        assert!(matches!(
            data(r#"{"status":"success"}"#),
            Err(ReadingError::Envelope(_))
        ));
    }

    #[test]
    fn alerts_count_series() {
        let (n, time) = data(&vector_of(&["1", "1"]))
            .and_then(|d| alert_series(&d))
            .expect("alerts");
        assert_eq!(n, 2);
        assert!(time.is_some());
        assert_eq!(
            data(&vector_of(&[]))
                .and_then(|d| alert_series(&d))
                .expect("none")
                .0,
            0
        );
    }

    #[test]
    fn file_times() {
        assert_eq!(
            parse_time(&json!("2026-01-01T01:00:00+01:00")).as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(
            parse_time(&json!(1767225600)).as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(parse_time(&json!(true)), None);
        assert_eq!(format_time(f64::NAN), None);
    }
}
