//! Error-budget evidence (`input.evidence.slo`): for every `spec.slo` entry of every manifest,
//! the remaining error budget and the `block_on_alerts` queries, read from Prometheus' HTTP API
//! (`GET /api/v1/query`, instant queries) or from a JSON file for air-gapped runs.
//!
//! All manifests are gathered together before policies run: identical (endpoint, query) pairs
//! are asked once, requests run concurrently (bounded), each with a timeout, retried with
//! exponential backoff on connection errors, timeouts and 5xx (never on 4xx), and the whole
//! gathering has a deadline. Every problem becomes an `error` string on the reading (never a
//! silent pass): the policy turns it into SLO-UNKNOWN.
//!
//! One reading per `spec.slo` entry, in order (docs/error-budget.md has the full contract):
//! ```json
//! {"name": "answer-availability", "index": 0, "source": "prometheus",
//!  "remaining": {"query": "...", "url": "http://127.0.0.1:9090", "time": "2026-11-27T10:00:00Z",
//!                "value": 0.42, "error": null},
//!  "alerts": [{"query": "ALERTS{...}", "url": "...", "time": "...", "firing": false, "series": 0,
//!              "error": null}],
//!  "status": "ok"}
//! ```
//! `source` is `prometheus`, `file`, `offline` (a Prometheus source skipped by `--offline`) or
//! `null` (the entry names no usable source); `status` is `ok` when every part has a value, else
//! `unknown` with a `reason`. A file source has `file` (its path) instead of `url`. A Prometheus
//! reading whose URL is outside `error_budget.prometheus.allowed_urls` also has `refused`.
//!
//! Trust: the manifest names URLs and queries, the gate config decides which URLs may be
//! asked ([`AllowedUrl`]; redirects only within them). No response body ever reaches a
//! message (status, content type and size do), answers with `warnings` are unknown, JSON is
//! read strictly (a repeated key is an error), and file readings must fall inside the
//! configured age window.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::manifest::{self, InputError};
use crate::workspace::{GateRoot, PathError};

/// Default limit of one HTTP request (connect, send, read the whole body).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The Prometheus API path appended to a manifest's `url`.
const QUERY_PATH: &str = "/api/v1/query";

/// How readings are gathered.
#[derive(Debug, Clone)]
pub struct Options {
    /// Skip every Prometheus query (`--offline`); those SLOs become unknown. File sources are
    /// still read.
    pub offline: bool,
    /// Limit of one HTTP request, from connecting to the end of the body.
    pub request_timeout: Duration,
    /// Retries after the first attempt, on connection errors, timeouts and 5xx.
    pub retries: u32,
    /// Delay before the first retry; doubled for each further retry.
    pub backoff: Duration,
    /// Limit of the whole gathering; `None`: [`Options::deadline`] derives one.
    pub deadline: Option<Duration>,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Evaluation time of the queries (RFC 3339), sent as the `time` parameter so a run is
    /// reproducible (`context.now`); `None`: Prometheus' own clock.
    pub time: Option<String>,
    /// Largest response body or file accepted, in bytes.
    pub max_body_bytes: u64,
    /// The Prometheus base URLs a manifest may name (`error_budget.prometheus.allowed_urls`).
    /// Empty: none, so every Prometheus source is refused (the gate's config, not the
    /// manifest, decides where relgate sends requests).
    pub allowed_urls: Vec<AllowedUrl>,
    /// Oldest a `file` source's reading may be, before the check's time
    /// (`error_budget.reading_files.max_age_minutes`).
    pub reading_max_age: Duration,
    /// How far after the check's time a `file` source's reading may be dated, for clock skew
    /// (`error_budget.reading_files.max_future_minutes`).
    pub reading_max_future: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            offline: false,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            retries: 2,
            backoff: Duration::from_millis(200),
            deadline: None,
            concurrency: 16,
            time: None,
            max_body_bytes: manifest::DEFAULT_MAX_FILE_BYTES,
            allowed_urls: Vec::new(),
            reading_max_age: DEFAULT_READING_MAX_AGE,
            reading_max_future: DEFAULT_READING_MAX_FUTURE,
        }
    }
}

/// Default of `error_budget.reading_files.max_age_minutes`.
pub const DEFAULT_READING_MAX_AGE: Duration = Duration::from_secs(15 * 60);

/// Default of `error_budget.reading_files.max_future_minutes`.
pub const DEFAULT_READING_MAX_FUTURE: Duration = Duration::from_secs(5 * 60);

impl Options {
    /// Applies the gate config's `error_budget` settings (`data.relgate.config`, defaults
    /// merged with relgate.yaml): the allowed Prometheus URLs and the age bounds of reading
    /// files. An unusable setting is an error naming the key: the run cannot decide.
    pub fn configure(&mut self, config: &Value) -> Result<(), String> {
        let budget = config.get("error_budget");
        let allowed = budget
            .and_then(|b| b.get("prometheus"))
            .and_then(|p| p.get("allowed_urls"));
        self.allowed_urls = match allowed {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let at = format!("error_budget.prometheus.allowed_urls[{i}]");
                    item.as_str()
                        .ok_or_else(|| format!("{at} must be a URL string"))
                        .and_then(|text| AllowedUrl::parse(text).map_err(|e| format!("{at}: {e}")))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(
                    "error_budget.prometheus.allowed_urls must be a list of base URLs".to_string(),
                )
            }
        };
        let minutes = |key: &str, default: Duration| -> Result<Duration, String> {
            match budget.and_then(|b| b.get("reading_files")).and_then(|f| f.get(key)) {
                None | Some(Value::Null) => Ok(default),
                Some(value) => value
                    .as_u64()
                    .filter(|m| *m <= 10_000_000)
                    .map(|m| Duration::from_secs(m * 60))
                    .ok_or_else(|| {
                        format!("error_budget.reading_files.{key} must be a whole number of minutes (0 to 10000000), got {value}")
                    }),
            }
        };
        self.reading_max_age = minutes("max_age_minutes", DEFAULT_READING_MAX_AGE)?;
        self.reading_max_future = minutes("max_future_minutes", DEFAULT_READING_MAX_FUTURE)?;
        Ok(())
    }

    /// Whether a request URL is within one of the allowed base URLs.
    fn allows(&self, url: &reqwest::Url) -> bool {
        self.allowed_urls.iter().any(|a| a.allows(url))
    }

    /// The overall deadline: the one given, else enough for every attempt of one query and its
    /// backoffs, and at least 30 s (queries wait for a free slot when there are many).
    pub fn deadline(&self) -> Duration {
        self.deadline.unwrap_or_else(|| {
            let attempts = self.retries.saturating_add(1);
            let backoffs = self
                .backoff
                .saturating_mul(2u32.saturating_pow(self.retries.min(16)));
            self.request_timeout
                .saturating_mul(attempts)
                .saturating_add(backoffs)
                .max(Duration::from_secs(30))
        })
    }
}

/// Why a reading has no value. The text is what the SLO-UNKNOWN finding shows.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadingError {
    #[error("not queried: --offline skips Prometheus")]
    Offline,
    #[error("{0}")]
    Spec(String),
    /// The URL is outside `error_budget.prometheus.allowed_urls`: never requested.
    #[error("{0}")]
    Refused(String),
    #[error("invalid Prometheus url `{url}`: {message}")]
    BadUrl { url: String, message: String },
    #[error("cannot connect to {url}: {message}{}", attempts_text(*.attempts))]
    Connect {
        url: String,
        message: String,
        attempts: u32,
    },
    #[error("no complete answer from {url} within {secs}s{}", attempts_text(*.attempts))]
    Timeout {
        url: String,
        secs: f64,
        attempts: u32,
    },
    #[error("request to {url} failed: {message}{}", attempts_text(*.attempts))]
    Transport {
        url: String,
        message: String,
        attempts: u32,
    },
    #[error("HTTP {status} from {url}{detail}{}", attempts_text(*.attempts))]
    Http {
        status: u16,
        url: String,
        detail: String,
        attempts: u32,
    },
    #[error("the overall Prometheus deadline of {secs}s passed before this query was answered")]
    Deadline { secs: f64 },
    #[error("the response is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("Prometheus answered status \"error\" ({error_type}); its message is not shown (answers never reach reports): run the query in Prometheus to see it")]
    Prometheus { error_type: String },
    #[error("Prometheus answered with {count} warning(s) (partial data, e.g. a store or shard did not answer): an incomplete answer is no proof of the value or that no alert fires; run the query in Prometheus to see them")]
    Warnings { count: usize },
    #[error("the response is HTML, not Prometheus API JSON (a proxy or login page?): {body}")]
    Html { body: String },
    #[error("the response is not JSON ({message}): {body}")]
    NotJson { message: String, body: String },
    #[error("the response is not a Prometheus API response: {0}")]
    Envelope(String),
    #[error("expected an instant vector, got a {found} result{hint}")]
    ResultType { found: String, hint: &'static str },
    #[error("the query returned no series (empty vector): the series does not exist at the query time, or the selector matches nothing")]
    Empty,
    #[error("the query returned {count} series where one was expected ({labels}); aggregate it (e.g. min(...)) or narrow the selector")]
    Multiple { count: usize, labels: String },
    #[error("{0}")]
    Stale(String),
    #[error("the value is {0}, not a finite number")]
    NotFinite(String),
    #[error("the value ({0}) is not a number")]
    NotNumeric(String),
    #[error("{0}")]
    Path(#[from] PathError),
    #[error("{0}")]
    Input(#[from] InputError),
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error("cannot run the Prometheus client: {0}")]
    Client(String),
}

fn attempts_text(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
}

impl ReadingError {
    /// Connection errors, timeouts and 5xx are worth another try; 4xx and bad bodies are not.
    fn retryable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout { .. } | Self::Transport { .. } => true,
            Self::Http { status, .. } => *status >= 500,
            _ => false,
        }
    }

    fn with_attempts(mut self, n: u32) -> Self {
        if let Self::Connect { attempts, .. }
        | Self::Timeout { attempts, .. }
        | Self::Transport { attempts, .. }
        | Self::Http { attempts, .. } = &mut self
        {
            *attempts = n;
        }
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing Prometheus API responses (HTTP bodies and files alike).

/// A remaining-budget reading: the value and the time it was taken (RFC 3339).
pub type Budget = (f64, Option<String>);

/// An alert reading: how many series the query returned, and when (RFC 3339).
pub type Alerts = (usize, Option<String>);

/// The `data` of a successful `/api/v1/query` response.
#[derive(Debug, Clone)]
pub struct QueryData {
    pub result_type: String,
    pub result: Value,
}

/// What a body is, for error messages: its content type and size, never its bytes. A
/// response can come from any service behind the URL, and whatever relgate shows ends up in
/// reports, pull-request comments and CI logs.
fn describe_body(bytes: &[u8], content_type: Option<&str>) -> String {
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
fn parse_json(bytes: &[u8], content_type: Option<&str>) -> Result<Value, ReadingError> {
    if looks_like_html(bytes, content_type) {
        return Err(ReadingError::Html {
            body: describe_body(bytes, content_type),
        });
    }
    // The strict reader: a key repeated in one object (two `result`s, say) is an error, not
    // "the last one wins". serde_json's messages carry no input text beyond such a key.
    super::json::from_slice(bytes).map_err(|err| ReadingError::NotJson {
        message: err.to_string(),
        body: describe_body(bytes, content_type),
    })
}

fn type_name(value: &Value) -> &'static str {
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
pub fn parse_envelope(value: &Value) -> Result<QueryData, ReadingError> {
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
pub fn sample_value(value: &Value) -> Result<f64, ReadingError> {
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
fn format_time(secs: f64) -> Option<String> {
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
fn parse_time(value: &Value) -> Option<String> {
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
pub fn alert_series(data: &QueryData) -> Result<Alerts, ReadingError> {
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

// ---------------------------------------------------------------------------------------------
// What the manifests ask for.

#[derive(Debug, Clone)]
enum Source {
    Prometheus { url: String, query: String },
    File { path: String, query: Option<String> },
}

#[derive(Debug, Clone)]
struct Entry {
    name: Value,
    index: usize,
    source: Result<Source, ReadingError>,
    /// `block_on_alerts`: each query, or why the item is not one.
    alerts: Vec<Result<String, ReadingError>>,
}

fn non_empty(value: Option<&Value>) -> Option<String> {
    value
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// `spec.slo` as a list (anything else: no entries; the policy and the schema judge it).
fn slo_list(manifest: &Value) -> &[Value] {
    manifest
        .pointer("/spec/slo")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn entries(manifest: &Value) -> Vec<Entry> {
    slo_list(manifest)
        .iter()
        .enumerate()
        .map(|(index, slo)| {
            let at = format!("spec.slo[{index}]");
            let name = slo.get("name").filter(|n| n.is_string()).cloned().unwrap_or(Value::Null);
            let source = parse_source(slo, &at);
            let alerts = match slo.get("block_on_alerts") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .enumerate()
                    .map(|(j, item)| {
                        non_empty(Some(item)).ok_or_else(|| {
                            ReadingError::Spec(format!("{at}.block_on_alerts[{j}] is not a PromQL query (a non-empty string)"))
                        })
                    })
                    .collect(),
                Some(_) => vec![Err(ReadingError::Spec(format!(
                    "{at}.block_on_alerts must be a list of PromQL queries"
                )))],
            };
            Entry {
                name,
                index,
                source,
                alerts,
            }
        })
        .collect()
}

fn parse_source(slo: &Value, at: &str) -> Result<Source, ReadingError> {
    let source = slo.get("source").and_then(Value::as_object);
    let prometheus = source
        .and_then(|s| s.get("prometheus"))
        .filter(|v| !v.is_null());
    let file = source.and_then(|s| s.get("file")).filter(|v| !v.is_null());
    match (prometheus, file) {
        (Some(_), Some(_)) => Err(ReadingError::Spec(format!(
            "{at}.source names both prometheus and file; give one"
        ))),
        (Some(p), None) => {
            let url = non_empty(p.get("url")).ok_or_else(|| {
                ReadingError::Spec(format!("{at}.source.prometheus.url is missing"))
            })?;
            let query = non_empty(p.get("query")).ok_or_else(|| {
                ReadingError::Spec(format!("{at}.source.prometheus.query is missing"))
            })?;
            Ok(Source::Prometheus { url, query })
        }
        (None, Some(f)) => {
            let path = non_empty(f.get("path"))
                .ok_or_else(|| ReadingError::Spec(format!("{at}.source.file.path is missing")))?;
            Ok(Source::File {
                path,
                query: non_empty(f.get("query")),
            })
        }
        (None, None) => Err(ReadingError::Spec(format!(
            "{at}.source is missing: give source.prometheus {{url, query}} or source.file {{path}}"
        ))),
    }
}

/// The query endpoint of a base URL (`http://host:9090`, `http://host/prometheus/`; a URL that
/// already ends in `/api/v1/query` is kept). Credentials are kept for the request and hidden
/// in everything shown.
fn endpoint(base: &str) -> Result<(reqwest::Url, String), ReadingError> {
    let bad = |message: String| ReadingError::BadUrl {
        url: base.to_string(),
        message,
    };
    let mut url = reqwest::Url::parse(base).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!(
            "scheme `{}` is not http or https",
            url.scheme()
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("give the base URL without `?` or `#` parts".to_string()));
    }
    let path = url.path().trim_end_matches('/').to_string();
    if !path.ends_with(QUERY_PATH) {
        url.set_path(&format!("{path}{QUERY_PATH}"));
    }
    let mut shown = url.clone();
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    let shown = shown.to_string();
    let shown = shown
        .strip_suffix(QUERY_PATH)
        .unwrap_or(&shown)
        .trim_end_matches('/')
        .to_string();
    Ok((url, shown))
}

/// A Prometheus base URL the gate's config allows (`error_budget.prometheus.allowed_urls`):
/// an origin (scheme, host, port) and a path prefix.
///
/// URLs are compared parsed (WHATWG rules, as requests are sent), never as strings: userinfo
/// (`http://127.0.0.1:9090@evil/` is host `evil`), case, default ports, IP spellings and dot
/// segments are resolved first. The path prefix is matched by whole segments
/// (`/prom` allows `/prom/x`, not `/prometheus`), and the segments a manifest adds after it
/// must be plain (letters, digits, `-`, `_`, `~`, `.` not first): no percent-encoding or
/// `..;` that a proxy behind the allowed URL could decode into another path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedUrl {
    scheme: String,
    host: String,
    port: u16,
    segments: Vec<String>,
    shown: String,
}

impl AllowedUrl {
    /// Parses a base URL from the config.
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(text.trim()).map_err(|e| {
            format!("`{text}` is not a URL ({e}); write e.g. http://prometheus.monitoring:9090")
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "`{text}`: scheme `{}` is not http or https",
                url.scheme()
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "`{text}` holds credentials; list the base URL without them (a manifest URL with credentials still matches it)"
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "`{text}`: give the base URL without `?` or `#` parts"
            ));
        }
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Err(format!("`{text}` names no host"));
        };
        let mut segments = path_segments(&url);
        if segments.ends_with(&["api".to_string(), "v1".to_string(), "query".to_string()]) {
            segments.truncate(segments.len() - 3);
        }
        let mut shown = url.clone();
        shown.set_path(&segments.join("/"));
        Ok(Self {
            scheme: url.scheme().to_string(),
            host: host.to_string(),
            port,
            segments,
            shown: shown.as_str().trim_end_matches('/').to_string(),
        })
    }

    /// Whether `url` (a request URL) is at this origin, under this path prefix.
    pub fn allows(&self, url: &reqwest::Url) -> bool {
        if url.scheme() != self.scheme
            || url.host_str() != Some(self.host.as_str())
            || url.port_or_known_default() != Some(self.port)
        {
            return false;
        }
        let segments = path_segments(url);
        segments.len() >= self.segments.len()
            && segments[..self.segments.len()] == self.segments[..]
            && segments[self.segments.len()..]
                .iter()
                .all(|s| plain_segment(s))
    }

    /// The URL as configured (normalised), for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

/// A URL's non-empty path segments, as written (still percent-encoded).
fn path_segments(url: &reqwest::Url) -> Vec<String> {
    url.path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A path segment with nothing a server or proxy could decode or resolve into another path.
fn plain_segment(segment: &str) -> bool {
    !segment.starts_with('.')
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~' | b'.'))
}

/// Why a manifest's Prometheus URL is refused, when it is outside the allowed URLs.
fn refusal(url: &reqwest::Url, shown: &str, options: &Options) -> Option<String> {
    if options.allows(url) {
        return None;
    }
    let listed = if options.allowed_urls.is_empty() {
        "the list is empty: name the Prometheus base URLs manifests may use there".to_string()
    } else {
        let urls: Vec<&str> = options.allowed_urls.iter().map(AllowedUrl::shown).collect();
        format!("allowed: {}", urls.join(", "))
    };
    Some(format!(
        "the Prometheus URL `{shown}` is not in error_budget.prometheus.allowed_urls ({listed}); relgate only queries the Prometheus servers the gate's config allows, so it sent no request"
    ))
}

// ---------------------------------------------------------------------------------------------
// Asking Prometheus.

async fn read_body(
    mut response: reqwest::Response,
    limit: u64,
    url: &str,
    secs: f64,
) -> Result<Vec<u8>, ReadingError> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if (body.len() + chunk.len()) as u64 > limit {
                    return Err(ReadingError::TooLarge { limit });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(err) => return Err(transport_error(&err, url, secs)),
        }
    }
}

/// The innermost cause, which says what actually happened (refused, reset, ...).
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn transport_error(err: &reqwest::Error, url: &str, secs: f64) -> ReadingError {
    let url = url.to_string();
    if err.is_timeout() {
        ReadingError::Timeout {
            url,
            secs,
            attempts: 1,
        }
    } else if err.is_connect() {
        ReadingError::Connect {
            url,
            message: root_cause(err),
            attempts: 1,
        }
    } else {
        ReadingError::Transport {
            url,
            message: root_cause(err),
            attempts: 1,
        }
    }
}

async fn query_once(
    client: &reqwest::Client,
    request: &Request,
    options: &Options,
) -> Result<QueryData, ReadingError> {
    let secs = options.request_timeout.as_secs_f64();
    let mut params = vec![("query", request.query.as_str())];
    if let Some(time) = &options.time {
        params.push(("time", time.as_str()));
    }
    let response = client
        .get(request.endpoint.clone())
        .query(&params)
        .timeout(options.request_timeout)
        .send()
        .await
        .map_err(|err| transport_error(&err, &request.shown_url, secs))?;
    let status = response.status();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if status.is_redirection() {
        // The redirect policy stopped here: the target is outside the allowed URLs (or the
        // chain is too long). Its Location is not shown either: it is the server's text.
        return Err(ReadingError::Http {
            status: status.as_u16(),
            url: request.shown_url.clone(),
            detail: ": a redirect to a URL outside error_budget.prometheus.allowed_urls (or a chain of more than 5) is not followed".to_string(),
            attempts: 1,
        });
    }
    let body = read_body(response, options.max_body_bytes, &request.shown_url, secs).await?;
    if status.is_success() {
        return parse_response(&body, content_type.as_deref());
    }
    let detail = match parse_response(&body, content_type.as_deref()) {
        Err(ReadingError::Prometheus { error_type }) => {
            format!(": Prometheus error {error_type} (its message is not shown; run the query in Prometheus to see it)")
        }
        Err(ReadingError::Html { .. }) => format!(
            ": an HTML page (a proxy or login page?), {}",
            describe_body(&body, content_type.as_deref())
        ),
        _ => format!(" ({})", describe_body(&body, content_type.as_deref())),
    };
    Err(ReadingError::Http {
        status: status.as_u16(),
        url: request.shown_url.clone(),
        detail,
        attempts: 1,
    })
}

async fn query_with_retries(
    client: &reqwest::Client,
    request: &Request,
    options: &Options,
) -> Result<QueryData, ReadingError> {
    let mut attempt: u32 = 1;
    loop {
        match query_once(client, request, options).await {
            Ok(data) => return Ok(data),
            Err(err) if err.retryable() && attempt <= options.retries => {
                let delay = options
                    .backoff
                    .saturating_mul(2u32.saturating_pow((attempt - 1).min(16)));
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(err) => return Err(err.with_attempts(attempt)),
        }
    }
}

/// One distinct (endpoint, query) pair.
#[derive(Debug, Clone)]
struct Request {
    endpoint: reqwest::Url,
    shown_url: String,
    query: String,
}

/// Runs every request concurrently (at most `options.concurrency` at once) within the
/// deadline. One outcome per request, in order.
async fn run_requests(
    requests: &[Request],
    options: &Options,
) -> Vec<Result<QueryData, ReadingError>> {
    if requests.is_empty() {
        return Vec::new();
    }
    // Redirects are followed only to an allowed URL: a redirect is the answering server's
    // choice, and following it elsewhere would reach a service the config never named.
    let allowed = options.allowed_urls.clone();
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > 5 || !allowed.iter().any(|a| a.allows(attempt.url())) {
            attempt.stop()
        } else {
            attempt.follow()
        }
    });
    let client = match reqwest::Client::builder()
        .user_agent(concat!("relgate/", env!("CARGO_PKG_VERSION")))
        .redirect(redirects)
        .connect_timeout(options.request_timeout)
        .pool_max_idle_per_host(options.concurrency.max(1))
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            let error = ReadingError::Client(root_cause(&err));
            return requests.iter().map(|_| Err(error.clone())).collect();
        }
    };
    let deadline_len = options.deadline();
    let deadline = tokio::time::Instant::now() + deadline_len;
    let slots = Arc::new(tokio::sync::Semaphore::new(options.concurrency.max(1)));
    let options = Arc::new(options.clone());
    let handles: Vec<_> = requests
        .iter()
        .map(|request| {
            let (client, slots, options, request) = (
                client.clone(),
                Arc::clone(&slots),
                Arc::clone(&options),
                request.clone(),
            );
            tokio::spawn(async move {
                let work = async {
                    let _slot = slots
                        .acquire()
                        .await
                        .map_err(|err| ReadingError::Client(err.to_string()))?;
                    query_with_retries(&client, &request, &options).await
                };
                tokio::time::timeout_at(deadline, work).await.unwrap_or(Err(
                    ReadingError::Deadline {
                        secs: deadline_len.as_secs_f64(),
                    },
                ))
            })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(handles.len());
    for handle in handles {
        outcomes.push(
            handle.await.unwrap_or_else(|err| {
                Err(ReadingError::Client(format!("query task failed: {err}")))
            }),
        );
    }
    outcomes
}

// ---------------------------------------------------------------------------------------------
// Reading files.

/// The parsed contents of a `file` source.
#[derive(Debug, Clone)]
enum FileReading {
    /// A Prometheus API response, answering the remaining-budget query.
    Envelope(Value),
    /// A relgate reading file `{time?, remaining?, alerts?}`.
    Native(Map<String, Value>),
}

fn read_file(
    root: &GateRoot,
    written: &str,
    options: &Options,
) -> Result<FileReading, ReadingError> {
    let source = super::read_file(root, written, options.max_body_bytes).map_err(|message| {
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
struct Freshness {
    now: chrono::DateTime<chrono::Utc>,
    max_age: Duration,
    max_future: Duration,
}

impl Freshness {
    fn new(options: &Options) -> Self {
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
    fn check(&self, time: Option<&str>) -> Result<(), ReadingError> {
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
fn file_remaining(
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
fn file_alert(
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

// ---------------------------------------------------------------------------------------------
// Putting readings together.

/// Where a part of a reading comes from, for the JSON.
enum Origin<'a> {
    Url(&'a str),
    File(&'a str),
    None,
}

fn part(query: Option<&str>, origin: &Origin<'_>) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(
        "query".to_string(),
        query.map_or(Value::Null, |q| Value::String(q.to_string())),
    );
    match origin {
        Origin::Url(url) => {
            out.insert("url".to_string(), Value::String((*url).to_string()));
        }
        Origin::File(file) => {
            out.insert("file".to_string(), Value::String((*file).to_string()));
        }
        Origin::None => {}
    }
    out
}

fn remaining_json(
    query: Option<&str>,
    origin: &Origin<'_>,
    outcome: Result<Budget, ReadingError>,
    errors: &mut Vec<(String, String)>,
) -> Value {
    let mut out = part(query, origin);
    let (time, value, error) = match outcome {
        Ok((value, time)) => (
            time.map_or(Value::Null, Value::String),
            serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number),
            Value::Null,
        ),
        Err(err) => {
            errors.push(("remaining budget".to_string(), err.to_string()));
            (Value::Null, Value::Null, Value::String(err.to_string()))
        }
    };
    out.insert("time".to_string(), time);
    out.insert("value".to_string(), value);
    out.insert("error".to_string(), error);
    Value::Object(out)
}

fn alert_json(
    query: Option<&str>,
    origin: &Origin<'_>,
    outcome: Result<Alerts, ReadingError>,
    errors: &mut Vec<(String, String)>,
) -> Value {
    let mut out = part(query, origin);
    let (time, firing, series, error) = match outcome {
        Ok((series, time)) => (
            time.map_or(Value::Null, Value::String),
            Value::Bool(series > 0),
            json!(series),
            Value::Null,
        ),
        Err(err) => {
            errors.push((format!("alert `{}`", query.unwrap_or("?")), err.to_string()));
            (
                Value::Null,
                Value::Null,
                Value::Null,
                Value::String(err.to_string()),
            )
        }
    };
    out.insert("time".to_string(), time);
    out.insert("firing".to_string(), firing);
    out.insert("series".to_string(), series);
    out.insert("error".to_string(), error);
    Value::Object(out)
}

fn finish(
    entry: &Entry,
    source: Value,
    remaining: Value,
    alerts: Vec<Value>,
    errors: &[(String, String)],
) -> Value {
    let mut out = Map::new();
    out.insert("name".to_string(), entry.name.clone());
    out.insert("index".to_string(), json!(entry.index));
    out.insert("source".to_string(), source);
    out.insert("remaining".to_string(), remaining);
    out.insert("alerts".to_string(), Value::Array(alerts));
    if errors.is_empty() {
        out.insert("status".to_string(), json!("ok"));
    } else {
        out.insert("status".to_string(), json!("unknown"));
        // One cause everywhere (e.g. --offline, Prometheus down) is said once.
        let reason = match errors {
            [(_, first), rest @ ..]
                if !rest.is_empty() && rest.iter().all(|(_, cause)| cause == first) =>
            {
                first.clone()
            }
            _ => errors
                .iter()
                .map(|(what, cause)| format!("{what}: {cause}"))
                .collect::<Vec<_>>()
                .join("; "),
        };
        out.insert("reason".to_string(), Value::String(reason));
    }
    Value::Object(out)
}

/// The work of one run: each manifest's entries and the distinct requests they need.
struct Plan {
    entries: Vec<Vec<Entry>>,
    requests: Vec<Request>,
    /// (url as written, query) -> request index, or why the URL is unusable.
    index: HashMap<(String, String), Result<usize, ReadingError>>,
    /// (endpoint, query) -> request index: two spellings of one endpoint (a trailing `/`) are
    /// asked once.
    by_endpoint: HashMap<(String, String), usize>,
}

impl Plan {
    fn new(manifests: &[&Value], options: &Options) -> Self {
        let entries: Vec<Vec<Entry>> = manifests.iter().map(|m| entries(m)).collect();
        let mut plan = Self {
            entries: Vec::new(),
            requests: Vec::new(),
            index: HashMap::new(),
            by_endpoint: HashMap::new(),
        };
        if !options.offline {
            for entry in entries.iter().flatten() {
                if let Ok(Source::Prometheus { url, query }) = &entry.source {
                    plan.add(url, query, options);
                    for alert in entry.alerts.iter().flatten() {
                        plan.add(url, alert, options);
                    }
                }
            }
        }
        plan.entries = entries;
        plan
    }

    fn add(&mut self, url: &str, query: &str, options: &Options) {
        let key = (url.to_string(), query.to_string());
        if self.index.contains_key(&key) {
            return;
        }
        // A URL outside the allowed list is never requested.
        let allowed = endpoint(url).and_then(|(endpoint, shown_url)| {
            match refusal(&endpoint, &shown_url, options) {
                Some(message) => Err(ReadingError::Refused(message)),
                None => Ok((endpoint, shown_url)),
            }
        });
        let slot = allowed.map(|(endpoint, shown_url)| {
            let next = self.requests.len();
            let slot = *self
                .by_endpoint
                .entry((endpoint.to_string(), query.to_string()))
                .or_insert(next);
            if slot == next {
                self.requests.push(Request {
                    endpoint,
                    shown_url,
                    query: query.to_string(),
                });
            }
            slot
        });
        self.index.insert(key, slot);
    }

    fn needs_runtime(&self) -> bool {
        !self.requests.is_empty()
    }

    /// Builds every reading from the request outcomes (and reads the file sources).
    fn assemble(
        &self,
        root: &GateRoot,
        outcomes: &[Result<QueryData, ReadingError>],
        options: &Options,
    ) -> Vec<Value> {
        let mut files: HashMap<String, Result<FileReading, ReadingError>> = HashMap::new();
        let fresh = Freshness::new(options);
        let outcome = |url: &str, query: &str| -> Result<QueryData, ReadingError> {
            match self.index.get(&(url.to_string(), query.to_string())) {
                Some(Ok(i)) => outcomes.get(*i).cloned().unwrap_or_else(|| {
                    Err(ReadingError::Client("the query was not run".to_string()))
                }),
                Some(Err(err)) => Err(err.clone()),
                None => Err(ReadingError::Client(
                    "the query was not planned".to_string(),
                )),
            }
        };
        self.entries
            .iter()
            .map(|entries| {
                let readings = entries
                    .iter()
                    .map(|entry| {
                        let mut errors = Vec::new();
                        match &entry.source {
                            Err(err) => {
                                let remaining = remaining_json(
                                    None,
                                    &Origin::None,
                                    Err(err.clone()),
                                    &mut errors,
                                );
                                let alerts = entry
                                    .alerts
                                    .iter()
                                    .map(|a| {
                                        let query = a.as_ref().ok().map(String::as_str);
                                        let why = a.clone().and(Err(ReadingError::Spec(
                                            "not queried: the SLO entry has no usable source"
                                                .to_string(),
                                        )));
                                        alert_json(
                                            query,
                                            &Origin::None,
                                            why.map(|()| (0, None)),
                                            &mut errors,
                                        )
                                    })
                                    .collect();
                                finish(entry, Value::Null, remaining, alerts, &errors)
                            }
                            Ok(Source::Prometheus { url, query }) => {
                                let parsed = endpoint(url);
                                let refused = parsed.as_ref().ok().and_then(|(endpoint, shown)| {
                                    refusal(endpoint, shown, options)
                                });
                                let shown = parsed
                                    .map(|(_, shown)| shown)
                                    .unwrap_or_else(|_| url.clone());
                                let origin = Origin::Url(&shown);
                                let run = |q: &str| {
                                    if let Some(message) = &refused {
                                        Err(ReadingError::Refused(message.clone()))
                                    } else if options.offline {
                                        Err(ReadingError::Offline)
                                    } else {
                                        outcome(url, q)
                                    }
                                };
                                let remaining = remaining_json(
                                    Some(query),
                                    &origin,
                                    run(query).and_then(|d| remaining_value(&d)),
                                    &mut errors,
                                );
                                let alerts = entry
                                    .alerts
                                    .iter()
                                    .map(|a| match a {
                                        Ok(q) => alert_json(
                                            Some(q),
                                            &origin,
                                            run(q).and_then(|d| alert_series(&d)).map(
                                                |(n, time)| {
                                                    (
                                                        n,
                                                        time.or_else(|| {
                                                            options
                                                                .time
                                                                .as_ref()
                                                                .and_then(|t| parse_time(&json!(t)))
                                                        }),
                                                    )
                                                },
                                            ),
                                            &mut errors,
                                        ),
                                        Err(err) => {
                                            alert_json(None, &origin, Err(err.clone()), &mut errors)
                                        }
                                    })
                                    .collect();
                                let source = if options.offline {
                                    "offline"
                                } else {
                                    "prometheus"
                                };
                                let mut reading =
                                    finish(entry, json!(source), remaining, alerts, &errors);
                                // `refused` tells the policy this is the config's refusal, not
                                // a missing value: it blocks whatever on_unknown says.
                                if let (Some(message), Some(object)) =
                                    (refused, reading.as_object_mut())
                                {
                                    object.insert("refused".to_string(), Value::String(message));
                                }
                                reading
                            }
                            Ok(Source::File { path, query }) => {
                                let reading = files
                                    .entry(path.clone())
                                    .or_insert_with(|| read_file(root, path, options))
                                    .clone();
                                let origin = Origin::File(path);
                                let (found_query, value) = match &reading {
                                    Ok(r) => file_remaining(r, path, query.as_deref(), &fresh),
                                    Err(err) => (query.clone(), Err(err.clone())),
                                };
                                let remaining = remaining_json(
                                    found_query.as_deref(),
                                    &origin,
                                    value,
                                    &mut errors,
                                );
                                let alerts = entry
                                    .alerts
                                    .iter()
                                    .map(|a| match (a, &reading) {
                                        (Ok(q), Ok(r)) => alert_json(
                                            Some(q),
                                            &origin,
                                            file_alert(r, path, q, &fresh),
                                            &mut errors,
                                        ),
                                        (Ok(q), Err(err)) => alert_json(
                                            Some(q),
                                            &origin,
                                            Err(err.clone()),
                                            &mut errors,
                                        ),
                                        (Err(err), _) => {
                                            alert_json(None, &origin, Err(err.clone()), &mut errors)
                                        }
                                    })
                                    .collect();
                                finish(entry, json!("file"), remaining, alerts, &errors)
                            }
                        }
                    })
                    .collect();
                Value::Array(readings)
            })
            .collect()
    }
}

/// Gathers the SLO readings of every manifest: one JSON array per manifest, in order, for its
/// `input.evidence.slo`. Never fails: problems are recorded on the readings.
pub async fn gather(root: &GateRoot, manifests: &[&Value], options: &Options) -> Vec<Value> {
    let plan = Plan::new(manifests, options);
    let outcomes = run_requests(&plan.requests, options).await;
    plan.assemble(root, &outcomes, options)
}

/// [`gather`] from synchronous code: builds the run's tokio runtime when some manifest asks
/// Prometheus, else needs none.
pub fn gather_blocking(root: &GateRoot, manifests: &[&Value], options: &Options) -> Vec<Value> {
    let plan = Plan::new(manifests, options);
    if !plan.needs_runtime() {
        return plan.assemble(root, &[], options);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("relgate-evidence")
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => {
            let outcomes = runtime.block_on(run_requests(&plan.requests, options));
            plan.assemble(root, &outcomes, options)
        }
        Err(err) => {
            let error = ReadingError::Client(format!("cannot start the async runtime: {err}"));
            let outcomes: Vec<_> = plan.requests.iter().map(|_| Err(error.clone())).collect();
            plan.assemble(root, &outcomes, options)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn endpoints() {
        let (url, shown) = endpoint("http://127.0.0.1:9090").expect("url");
        assert_eq!(url.as_str(), "http://127.0.0.1:9090/api/v1/query");
        assert_eq!(shown, "http://127.0.0.1:9090");
        let (url, _) = endpoint("http://127.0.0.1:9090/prom/").expect("prefix");
        assert_eq!(url.as_str(), "http://127.0.0.1:9090/prom/api/v1/query");
        let (url, _) = endpoint("http://127.0.0.1:9090/api/v1/query").expect("full");
        assert_eq!(url.as_str(), "http://127.0.0.1:9090/api/v1/query");
        let (url, shown) = endpoint("https://user:secret@127.0.0.1:9090").expect("credentials");
        assert!(url.as_str().contains("secret"));
        assert!(
            !shown.contains("secret") && !shown.contains("user"),
            "{shown}"
        );
        assert!(endpoint("ftp://127.0.0.1").is_err());
        assert!(endpoint("127.0.0.1:9090").is_err());
        assert!(endpoint("http://127.0.0.1:9090?x=1").is_err());
    }

    #[test]
    fn spec_problems_are_unknown_readings() {
        let manifest = json!({"spec": {"slo": [
            {"name": "a"},
            {"name": "b", "source": {"prometheus": {"url": "http://127.0.0.1:1"}}},
            {"name": "c", "source": {"prometheus": {"url": "http://x", "query": "q"}, "file": {"path": "f"}}},
            {"name": "d", "source": {"file": {"path": "f.json"}}, "block_on_alerts": "ALERTS"},
            "not a mapping",
        ]}});
        let parsed = entries(&manifest);
        assert_eq!(parsed.len(), 5);
        assert!(parsed[0]
            .source
            .as_ref()
            .is_err_and(|e| e.to_string().contains("source is missing")));
        assert!(parsed[1]
            .source
            .as_ref()
            .is_err_and(|e| e.to_string().contains("query is missing")));
        assert!(parsed[2]
            .source
            .as_ref()
            .is_err_and(|e| e.to_string().contains("both")));
        assert!(parsed[3].alerts[0]
            .as_ref()
            .is_err_and(|e| e.to_string().contains("must be a list")));
        assert!(parsed[4].source.is_err());
    }

    #[test]
    fn identical_queries_are_planned_once_and_offline_plans_none() {
        let slo = json!({"source": {"prometheus": {"url": "http://127.0.0.1:9", "query": "q"}}, "block_on_alerts": ["a", "q"]});
        let slo_slash = json!({"source": {"prometheus": {"url": "http://127.0.0.1:9/", "query": "q"}}, "block_on_alerts": ["a"]});
        let m1 = json!({"spec": {"slo": [slo]}});
        let m2 = json!({"spec": {"slo": [slo_slash]}});
        let plan = Plan::new(&[&m1, &m2], &allowing("http://127.0.0.1:9"));
        assert_eq!(plan.requests.len(), 2);
        // Nothing allowed: nothing requested.
        assert!(Plan::new(&[&m1, &m2], &Options::default())
            .requests
            .is_empty());
        let offline = Options {
            offline: true,
            ..allowing("http://127.0.0.1:9")
        };
        assert!(Plan::new(&[&m1, &m2], &offline).requests.is_empty());
    }

    #[test]
    fn offline_readings_are_unknown_with_one_reason() {
        let m = json!({"spec": {"slo": [{"name": "x", "source": {"prometheus": {"url": "http://127.0.0.1:9", "query": "q"}}, "block_on_alerts": ["a"]}]}});
        let options = Options {
            offline: true,
            ..allowing("http://127.0.0.1:9")
        };
        let root = GateRoot {
            dir: std::env::temp_dir(),
        };
        let readings = gather_blocking(&root, &[&m], &options);
        let reading = &readings[0][0];
        assert_eq!(reading["source"], "offline");
        assert_eq!(reading["status"], "unknown");
        assert_eq!(reading["reason"], "not queried: --offline skips Prometheus");
        assert_eq!(reading["remaining"]["query"], "q");
        assert_eq!(reading["remaining"]["value"], Value::Null);
        assert_eq!(reading["alerts"][0]["firing"], Value::Null);
    }

    fn allowing(url: &str) -> Options {
        Options {
            allowed_urls: vec![AllowedUrl::parse(url).expect("allowed url")],
            ..Options::default()
        }
    }

    fn allowed(list: &str, url: &str) -> bool {
        let (endpoint, _) = endpoint(url).expect("manifest url");
        AllowedUrl::parse(list).expect("list url").allows(&endpoint)
    }

    #[test]
    fn allowed_urls_compare_parsed_origins_and_whole_segments() {
        let base = "http://127.0.0.1:9090";
        for ok in [
            "http://127.0.0.1:9090",
            "http://127.0.0.1:9090/",
            "HTTP://127.0.0.1:9090/api/v1/query",
            "http://user:pw@127.0.0.1:9090",
            "http://127.1:9090",
            "http://127.0.0.1:9090/tenant-a/",
        ] {
            assert!(allowed(base, ok), "{ok}");
        }
        for refused in [
            "http://127.0.0.1:9090@evil.example/",
            "http://127.0.0.1:909",
            "https://127.0.0.1:9090",
            "http://localhost:9090",
            "http://127.0.0.1.evil.example:9090",
            "http://127.0.0.1:9090/%2e%2e%2fadmin",
            "http://127.0.0.1:9090/a%2Fb",
            "http://127.0.0.1:9090/..;/admin",
        ] {
            assert!(!allowed(base, refused), "{refused}");
        }
        // A string prefix of the manifest URL is not its origin.
        assert!(!allowed("http://127.0.0.1:909", "http://127.0.0.1:9090"));
        let prefix = "https://Prom.Example/prom/";
        assert!(allowed(prefix, "https://prom.example:443/prom"));
        assert!(allowed(prefix, "https://prom.example/prom/x"));
        assert!(!allowed(prefix, "https://prom.example/prometheus"));
        assert!(!allowed(prefix, "https://prom.example/"));
        assert!(!allowed(prefix, "https://prom.example/prom/../admin"));
        assert!(!allowed(prefix, "https://prom.example./prom"));
        for bad in [
            "ftp://x",
            "http://u:p@x",
            "http://x/?a=1",
            "not a url",
            "file:///etc",
        ] {
            assert!(AllowedUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn configure_reads_the_error_budget_keys() {
        let mut options = Options::default();
        options
            .configure(&json!({"error_budget": {
                "prometheus": {"allowed_urls": ["http://127.0.0.1:9090"]},
                "reading_files": {"max_age_minutes": 60, "max_future_minutes": 0},
            }}))
            .expect("valid");
        assert_eq!(options.allowed_urls.len(), 1);
        assert_eq!(options.reading_max_age, Duration::from_secs(3600));
        assert_eq!(options.reading_max_future, Duration::ZERO);
        let err = Options::default()
            .configure(&json!({"error_budget": {"prometheus": {"allowed_urls": ["nope"]}}}))
            .expect_err("bad url");
        assert!(
            err.starts_with("error_budget.prometheus.allowed_urls[0]"),
            "{err}"
        );
        let err = Options::default()
            .configure(&json!({"error_budget": {"reading_files": {"max_age_minutes": -1}}}))
            .expect_err("negative");
        assert!(err.contains("max_age_minutes"), "{err}");
    }

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
