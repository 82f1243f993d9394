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

//!
//! The sections, one file each: [`spec`] what the manifests ask for, [`url`] Prometheus URLs and
//! the allowed list, [`query`] asking Prometheus, [`parse`] reading its answers, [`file`] reading
//! files, [`reading`] the typed readings, [`plan`] the run that ties them together.

mod error;
mod file;
mod parse;
mod plan;
mod query;
mod reading;
mod spec;
mod url;

use std::time::Duration;

use serde_json::Value;

use crate::backoff::Backoff;
use crate::manifest;
use crate::workspace::GateRoot;

pub(crate) use error::ReadingError;
pub use parse::{parse_response, remaining_value};
pub use reading::{to_value, Reading, Status};
pub use url::AllowedUrl;

use plan::Plan;
use query::run_requests;

/// Default limit of one HTTP request (connect, send, read the whole body).
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

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
pub(crate) const DEFAULT_READING_MAX_AGE: Duration = Duration::from_secs(15 * 60);

/// Default of `error_budget.reading_files.max_future_minutes`.
pub(crate) const DEFAULT_READING_MAX_FUTURE: Duration = Duration::from_secs(5 * 60);

impl Options {
    /// Applies the gate config's `error_budget` settings (`data.relgate.config`, defaults
    /// merged with relgate.yaml): the allowed Prometheus URLs and the age bounds of reading
    /// files. An unusable setting is an error naming the key: the run cannot decide.
    pub(crate) fn configure(&mut self, config: &Value) -> Result<(), String> {
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

    /// The wait before each retry: `backoff`, doubled for each further retry, at most 2^16
    /// times `backoff` (beyond that a run's deadline has long passed anyway).
    pub(crate) fn backoff_schedule(&self) -> Backoff {
        Backoff::doubling(self.backoff, self.backoff.saturating_mul(1 << 16))
    }

    /// The overall deadline: the one given, else enough for every attempt of one query and its
    /// backoffs, and at least 30 s (queries wait for a free slot when there are many).
    pub(crate) fn deadline(&self) -> Duration {
        self.deadline.unwrap_or_else(|| {
            let attempts = self.retries.saturating_add(1);
            // The delay a further retry would wait: more than all the retries' waits together.
            let backoffs = self
                .backoff_schedule()
                .base_delay(self.retries.saturating_add(1));
            self.request_timeout
                .saturating_mul(attempts)
                .saturating_add(backoffs)
                .max(Duration::from_secs(30))
        })
    }
}

/// Gathers the SLO readings of every manifest: one list per manifest, in order, for its
/// `input.evidence.slo` ([`to_value`]). Never fails: problems are recorded on the readings.
/// Builds the run's tokio runtime when some manifest asks Prometheus, else needs none.
pub fn gather_blocking(
    root: &GateRoot,
    manifests: &[&Value],
    options: &Options,
) -> Vec<Vec<Reading>> {
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
    use serde_json::json;

    #[test]
    fn retries_double_and_the_deadline_covers_them() {
        let options = Options::default();
        let delays: Vec<u128> = (1..=4)
            .map(|n| options.backoff_schedule().base_delay(n).as_millis())
            .collect();
        assert_eq!(delays, [200, 400, 800, 1600]);
        // Three tries of 5 s and their waits fit in the 30 s floor.
        assert_eq!(options.deadline(), Duration::from_secs(30));
        let slow = Options {
            request_timeout: Duration::from_secs(20),
            ..Options::default()
        };
        assert_eq!(slow.deadline(), Duration::from_millis(60_800));
        // The doubling stops at 2^16 times the first wait, however many retries.
        let many = Options {
            retries: 100,
            ..Options::default()
        };
        assert_eq!(
            many.backoff_schedule().base_delay(90),
            Duration::from_millis(200 * 65_536)
        );
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
}
