//! The readings themselves: the typed shape of `input.evidence.slo` (docs/error-budget.md) and
//! how one is put together from a part's outcome. Field order is the JSON field order policies
//! and change records see, and optional fields are left out exactly where the contract says,
//! so a reading serializes to the same bytes as the `json!` values it replaced.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::parse::{Alerts, Budget};
use super::spec::Entry;
use super::ReadingError;

/// Where a reading came from: `prometheus`, `file`, or `offline` (a Prometheus source skipped
/// by `--offline`). A reading whose entry names no usable source has none (`null`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SourceKind {
    Prometheus,
    File,
    Offline,
}

/// `ok` when every part of a reading has a value, else `unknown` (with a `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Unknown,
}

/// One reading of `input.evidence.slo`: one `spec.slo` entry, matched by `index`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// `spec.slo[index].name` when it is a string.
    pub(crate) name: Option<String>,
    pub(crate) index: usize,
    pub(crate) source: Option<SourceKind>,
    pub remaining: Remaining,
    /// One per `block_on_alerts` item, in order.
    pub(crate) alerts: Vec<Alert>,
    pub status: Status,
    /// Why the status is `unknown`: each part's error, or their one shared cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    /// The Prometheus URL is outside `error_budget.prometheus.allowed_urls` (the message):
    /// the config's refusal, which blocks whatever `on_unknown` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) refused: Option<String>,
}

/// The remaining error budget of a reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Remaining {
    pub(crate) query: Option<String>,
    /// The Prometheus base URL (credentials hidden); a file source has `file` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) file: Option<String>,
    /// When the value was taken (RFC 3339).
    pub(crate) time: Option<String>,
    /// A finite number when read, else `null` and `error` says why.
    pub value: Option<f64>,
    pub(crate) error: Option<String>,
}

/// One `block_on_alerts` query's reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Alert {
    pub(crate) query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) file: Option<String>,
    pub(crate) time: Option<String>,
    /// Whether the query returned any series; `null` when unknown.
    pub(crate) firing: Option<bool>,
    /// How many series it returned; `null` when unknown.
    pub(crate) series: Option<usize>,
    pub(crate) error: Option<String>,
}

/// The readings of one manifest as the JSON value the policy input holds.
pub fn to_value(readings: &[Reading]) -> Value {
    // Cannot fail: serde_json::to_value errors only for maps with non-string keys and for
    // Serialize impls that raise errors, and these structs have neither (derived impls of
    // strings, numbers, booleans, options and lists).
    #[allow(clippy::expect_used)]
    serde_json::to_value(readings).expect("SLO readings serialize to JSON")
}

/// Where a part of a reading comes from.
#[derive(Debug, Clone, Copy)]
pub(super) enum Origin<'a> {
    Url(&'a str),
    File(&'a str),
    None,
}

impl Origin<'_> {
    /// The `url` and `file` fields of a part.
    fn fields(self) -> (Option<String>, Option<String>) {
        match self {
            Self::Url(url) => (Some(url.to_string()), None),
            Self::File(file) => (None, Some(file.to_string())),
            Self::None => (None, None),
        }
    }
}

/// The problems of one reading's parts, as (what, cause), in order: they become its `reason`.
pub(super) type Problems = Vec<(String, String)>;

pub(super) fn remaining(
    query: Option<&str>,
    origin: Origin<'_>,
    outcome: Result<Budget, ReadingError>,
    problems: &mut Problems,
) -> Remaining {
    let (url, file) = origin.fields();
    let (time, value, error) = match outcome {
        Ok((value, time)) => (time, Some(value), None),
        Err(err) => {
            problems.push(("remaining budget".to_string(), err.to_string()));
            (None, None, Some(err.to_string()))
        }
    };
    Remaining {
        query: query.map(str::to_string),
        url,
        file,
        time,
        value,
        error,
    }
}

pub(super) fn alert(
    query: Option<&str>,
    origin: Origin<'_>,
    outcome: Result<Alerts, ReadingError>,
    problems: &mut Problems,
) -> Alert {
    let (url, file) = origin.fields();
    let (time, firing, series, error) = match outcome {
        Ok((series, time)) => (time, Some(series > 0), Some(series), None),
        Err(err) => {
            problems.push((format!("alert `{}`", query.unwrap_or("?")), err.to_string()));
            (None, None, None, Some(err.to_string()))
        }
    };
    Alert {
        query: query.map(str::to_string),
        url,
        file,
        time,
        firing,
        series,
        error,
    }
}

pub(super) fn finish(
    entry: &Entry,
    source: Option<SourceKind>,
    remaining: Remaining,
    alerts: Vec<Alert>,
    problems: &[(String, String)],
) -> Reading {
    let reason = match problems {
        [] => None,
        // One cause everywhere (e.g. --offline, Prometheus down) is said once.
        [(_, first), rest @ ..]
            if !rest.is_empty() && rest.iter().all(|(_, cause)| cause == first) =>
        {
            Some(first.clone())
        }
        _ => Some(
            problems
                .iter()
                .map(|(what, cause)| format!("{what}: {cause}"))
                .collect::<Vec<_>>()
                .join("; "),
        ),
    };
    Reading {
        name: entry.name.clone(),
        index: entry.index,
        source,
        remaining,
        alerts,
        status: if reason.is_none() {
            Status::Ok
        } else {
            Status::Unknown
        },
        reason,
        refused: None,
    }
}
