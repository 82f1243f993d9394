//! Why a reading has no value: every problem of a part becomes a [`ReadingError`], whose text
//! is what the reading's `error` and the SLO-UNKNOWN finding show.

use crate::manifest::InputError;
use crate::workspace::PathError;

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
    pub(super) fn retryable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout { .. } | Self::Transport { .. } => true,
            Self::Http { status, .. } => *status >= 500,
            _ => false,
        }
    }

    pub(super) fn with_attempts(mut self, n: u32) -> Self {
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
