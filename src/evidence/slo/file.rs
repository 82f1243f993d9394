//! Reading files: a `file` source is a saved Prometheus API response or a relgate reading file
//! (`{time?, remaining?, alerts?}`), read confined to the gate root, strictly parsed, and only
//! believed when dated inside the configured age window.

use std::time::Duration;

use serde_json::{Map, Value};

use super::parse::{
    alert_series, parse_envelope, parse_json, parse_time, remaining_value, sample_value, type_name,
    Alerts, Budget,
};
use super::spec::non_empty;
use super::{Options, ReadingError};
use crate::workspace::GateRoot;

/// The parsed contents of a `file` source.
#[derive(Debug, Clone)]
pub(super) enum FileReading {
    /// A Prometheus API response, answering the remaining-budget query.
    Envelope(Value),
    /// A relgate reading file `{time?, remaining?, alerts?}`.
    Native(Map<String, Value>),
}

pub(super) fn read_file(
    root: &GateRoot,
    written: &str,
    options: &Options,
) -> Result<FileReading, ReadingError> {
    let source =
        crate::evidence::read_file(root, written, options.max_body_bytes).map_err(|message| {
            ReadingError::File {
                file: written.to_string(),
                message: message
                    .strip_prefix(&format!("{written}: "))
                    .unwrap_or(&message)
                    .to_string(),
            }
        })?;
    let value = parse_json(&source.bytes, None).map_err(|err| ReadingError::File {
        file: written.to_string(),
        message: err.to_string().replacen("the response", "the file", 1),
    })?;
    match value {
        Value::Object(object) if object.contains_key("status") => Ok(FileReading::Envelope(Value::Object(object))),
        Value::Object(object) if object.contains_key("remaining") || object.contains_key("alerts") => {
            Ok(FileReading::Native(object))
        }
        other => Err(ReadingError::File {
            file: written.to_string(),
            message: format!(
                "a JSON {} that is neither a Prometheus API response (`status`, `data`) nor a relgate reading file (`remaining`, `alerts`); see docs/error-budget.md",
                type_name(&other)
            ),
        }),
    }
}

/// The window a `file` source's reading must be dated in: a saved answer is evidence about the
/// time it was taken, and a file from 1970 (or 2099) says nothing about now.
pub(super) struct Freshness {
    now: chrono::DateTime<chrono::Utc>,
    max_age: Duration,
    max_future: Duration,
}

impl Freshness {
    pub(super) fn new(options: &Options) -> Self {
        let now = options
            .time
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map_or_else(chrono::Utc::now, |t| t.with_timezone(&chrono::Utc));
        Self {
            now,
            max_age: options.reading_max_age,
            max_future: options.reading_max_future,
        }
    }

    /// `Ok` when `time` (RFC 3339, as the readings carry it) is inside the window.
    pub(super) fn check(&self, time: Option<&str>) -> Result<(), ReadingError> {
        let Some(text) = time else {
            return Err(ReadingError::Stale(
                "the reading has no time: a saved reading must say when it was taken".to_string(),
            ));
        };
        let Ok(taken) = chrono::DateTime::parse_from_rfc3339(text) else {
            return Err(ReadingError::Stale(format!(
                "the reading's time `{text}` is not RFC 3339"
            )));
        };
        let taken = taken.with_timezone(&chrono::Utc);
        let minutes = |d: Duration| d.as_secs() / 60;
        let now = self
            .now
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        let age = self.now.signed_duration_since(taken);
        if age.num_seconds() > i64::try_from(self.max_age.as_secs()).unwrap_or(i64::MAX) {
            return Err(ReadingError::Stale(format!(
                "the reading was taken at {text}, older than {} minutes before the check's time {now} (error_budget.reading_files.max_age_minutes); save a current reading",
                minutes(self.max_age)
            )));
        }
        if -age.num_seconds() > i64::try_from(self.max_future.as_secs()).unwrap_or(i64::MAX) {
            return Err(ReadingError::Stale(format!(
                "the reading is dated {text}, in the future: more than {} minutes after the check's time {now} (error_budget.reading_files.max_future_minutes); save a reading with its real time",
                minutes(self.max_future)
            )));
        }
        Ok(())
    }
}

fn file_error(file: &str, err: ReadingError) -> ReadingError {
    match err {
        ReadingError::Path(_) | ReadingError::Input(_) | ReadingError::File { .. } => err,
        other => ReadingError::File {
            file: file.to_string(),
            message: other.to_string(),
        },
    }
}

/// The remaining-budget reading of a file: `(query, value, time)`.
pub(super) fn file_remaining(
    reading: &FileReading,
    file: &str,
    wanted: Option<&str>,
    fresh: &Freshness,
) -> (Option<String>, Result<Budget, ReadingError>) {
    let (query, outcome) = match reading {
        FileReading::Envelope(envelope) => (
            None,
            parse_envelope(envelope).and_then(|d| remaining_value(&d)),
        ),
        FileReading::Native(object) => {
            let default_time = object.get("time").and_then(parse_time);
            match object.get("remaining") {
                None | Some(Value::Null) => (
                    None,
                    Err(ReadingError::Spec(
                        "the file has no `remaining` reading".to_string(),
                    )),
                ),
                Some(remaining) if remaining.get("status").is_some() => (
                    None,
                    parse_envelope(remaining).and_then(|d| remaining_value(&d)),
                ),
                Some(Value::Object(remaining)) => {
                    let query = non_empty(remaining.get("query"));
                    let outcome = match remaining.get("value") {
                        None => Err(ReadingError::Spec("`remaining` has no `value`".to_string())),
                        Some(value) => sample_value(value).and_then(|number| {
                            match remaining.get("time").and_then(parse_time).or(default_time) {
                                Some(time) => Ok((number, Some(time))),
                                None => Err(ReadingError::Spec(
                                    "`remaining` has no `time` (RFC 3339 or unix seconds): a reading must say when it was taken"
                                        .to_string(),
                                )),
                            }
                        }),
                    };
                    (query, outcome)
                }
                Some(other) => (
                    None,
                    Err(ReadingError::Spec(format!(
                        "`remaining` is a {}, not an object",
                        type_name(other)
                    ))),
                ),
            }
        }
    };
    let outcome = match (wanted, &query) {
        (Some(wanted), Some(found)) if wanted != found => Err(ReadingError::Spec(format!(
            "the file's reading is for query `{found}`, but the manifest names `{wanted}`"
        ))),
        _ => outcome,
    };
    let outcome =
        outcome.and_then(|(value, time)| fresh.check(time.as_deref()).map(|()| (value, time)));
    let query = wanted.map(str::to_string).or(query);
    (query, outcome.map_err(|e| file_error(file, e)))
}

/// An alert reading of a file: `(series, time)`.
pub(super) fn file_alert(
    reading: &FileReading,
    file: &str,
    query: &str,
    fresh: &Freshness,
) -> Result<Alerts, ReadingError> {
    let outcome = match reading {
        FileReading::Envelope(_) => Err(ReadingError::Spec(
            "the file is a Prometheus API response for one query (the remaining budget); give block_on_alerts readings in a relgate reading file (`alerts`, see docs/error-budget.md)"
                .to_string(),
        )),
        FileReading::Native(object) => {
            let default_time = object.get("time").and_then(parse_time);
            let found = object
                .get("alerts")
                .and_then(Value::as_array)
                .and_then(|alerts| {
                    alerts
                        .iter()
                        .find(|a| a.get("query").and_then(Value::as_str).map(str::trim) == Some(query))
                });
            match found {
                None => Err(ReadingError::Spec(format!("the file has no `alerts` reading for query `{query}`"))),
                Some(alert) => {
                    if let Some(response) = alert.get("response") {
                        parse_envelope(response)
                            .and_then(|d| alert_series(&d))
                            .map(|(n, time)| (n, time.or(default_time)))
                    } else {
                        match alert.get("series").and_then(Value::as_u64) {
                            None => Err(ReadingError::Spec(format!(
                                "the `alerts` reading for `{query}` has neither `response` nor a whole-number `series`"
                            ))),
                            Some(series) => match alert.get("time").and_then(parse_time).or(default_time) {
                                Some(time) => Ok((usize::try_from(series).unwrap_or(usize::MAX), Some(time))),
                                None => Err(ReadingError::Spec(format!(
                                    "the `alerts` reading for `{query}` has no `time`: a reading must say when it was taken"
                                ))),
                            },
                        }
                    }
                }
            }
        }
    };
    outcome
        .and_then(|(series, time)| fresh.check(time.as_deref()).map(|()| (series, time)))
        .map_err(|e| file_error(file, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_freshness_window() {
        let fresh = Freshness::new(&Options {
            time: Some("2026-11-27T12:00:00Z".to_string()),
            ..Options::default()
        });
        assert!(fresh.check(Some("2026-11-27T11:45:00Z")).is_ok());
        assert!(fresh.check(Some("2026-11-27T12:05:00Z")).is_ok());
        let old = fresh.check(Some("2026-11-27T11:44:59Z")).expect_err("old");
        assert!(old.to_string().contains("older than 15 minutes"), "{old}");
        let future = fresh
            .check(Some("2026-11-27T12:05:01Z"))
            .expect_err("future");
        assert!(future.to_string().contains("in the future"), "{future}");
        assert!(fresh.check(None).is_err());
    }
}
