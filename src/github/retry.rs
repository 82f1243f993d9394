//! When a GitHub API request is tried again: the retry policy (tries, backoff, deadline,
//! timeout; tunable through `RELGATE_GITHUB_*` variables) and the verdict on each response
//! (5xx, 429 and rate-limit 403s are retried, with the wait the server asks for when it asks).

use std::time::Duration;

use super::GitHubError;
use crate::backoff::Backoff;

/// When and how often a request is retried. Each request (one page, one POST) has its own
/// budget: at most `attempts` tries, and no wait that would end after `deadline` from its first
/// try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Tries per request, the first included (≥ 1).
    pub(crate) attempts: u32,
    /// First backoff; doubled after each failed try.
    pub(crate) base: Duration,
    /// Largest backoff relgate picks itself. A wait the server asks for (`Retry-After`,
    /// `x-ratelimit-reset`) is honoured as asked, within the deadline.
    pub(crate) max_delay: Duration,
    /// Overall time budget of one request, its retries included.
    pub(crate) deadline: Duration,
    /// Limit of one HTTP exchange (connect, write, read).
    pub(crate) timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            base: Duration::from_millis(1000),
            max_delay: Duration::from_secs(30),
            deadline: Duration::from_secs(120),
            timeout: Duration::from_secs(30),
        }
    }
}

/// Environment variables that tune [`RetryPolicy`] (documented in docs/github.md).
pub(crate) const RETRY_ENV: [&str; 5] = [
    "RELGATE_GITHUB_RETRY_ATTEMPTS",
    "RELGATE_GITHUB_RETRY_BASE_MS",
    "RELGATE_GITHUB_RETRY_MAX_MS",
    "RELGATE_GITHUB_DEADLINE_SECS",
    "RELGATE_GITHUB_TIMEOUT_SECS",
];

impl RetryPolicy {
    /// The defaults, overridden by the `RELGATE_GITHUB_*` variables `lookup` finds.
    pub(crate) fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, GitHubError> {
        let mut policy = Self::default();
        let number = |name: &str| -> Result<Option<u64>, GitHubError> {
            match lookup(name).map(|v| v.trim().to_owned()) {
                None => Ok(None),
                Some(v) if v.is_empty() => Ok(None),
                Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
                    GitHubError::Setup(format!(
                        "{name}={v} is not a whole non-negative number (see docs/github.md, retries)"
                    ))
                }),
            }
        };
        if let Some(n) = number(RETRY_ENV[0])? {
            policy.attempts = u32::try_from(n.max(1)).unwrap_or(u32::MAX);
        }
        if let Some(ms) = number(RETRY_ENV[1])? {
            policy.base = Duration::from_millis(ms);
        }
        if let Some(ms) = number(RETRY_ENV[2])? {
            policy.max_delay = Duration::from_millis(ms);
        }
        if let Some(secs) = number(RETRY_ENV[3])? {
            policy.deadline = Duration::from_secs(secs);
        }
        if let Some(secs) = number(RETRY_ENV[4])? {
            policy.timeout = Duration::from_secs(secs.max(1));
        }
        Ok(policy)
    }

    /// relgate's own backoff before try `attempt + 1` (`attempt` ≥ 1 tries failed so far).
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        Backoff::doubling(self.base, self.max_delay).base_delay(attempt)
    }
}

/// The rate-limit and retry headers of a response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RetryHeaders {
    pub(crate) retry_after: Option<String>,
    pub(crate) remaining: Option<String>,
    pub(crate) reset: Option<String>,
}

/// Whether a response is final or worth another try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Final,
    /// Retry; `wait` is the delay the server asked for, if it asked.
    Retry {
        wait: Option<Duration>,
        why: String,
    },
}

/// Decides about one response: 5xx, 429, and a 403 that is a rate limit (it carries
/// `Retry-After`, or `x-ratelimit-remaining: 0`, or says "rate limit") are retried; everything
/// else is final. `now` is the Unix time, for `x-ratelimit-reset`.
pub(crate) fn classify(status: u16, headers: &RetryHeaders, body: &str, now: i64) -> Verdict {
    let retry_after = headers
        .retry_after
        .as_deref()
        .and_then(|v| retry_after(v, now));
    let exhausted = headers.remaining.as_deref().map(str::trim) == Some("0");
    let reset_wait = if exhausted {
        headers
            .reset
            .as_deref()
            .and_then(|r| r.trim().parse::<i64>().ok())
            // One second past the reset: GitHub's clock and ours are not the same clock.
            .map(|reset| Duration::from_secs(u64::try_from(reset - now + 1).unwrap_or(0)))
    } else {
        None
    };
    let server_wait = retry_after.or(reset_wait);
    match status {
        500..=599 => Verdict::Retry {
            wait: retry_after,
            why: format!("HTTP {status}"),
        },
        429 => Verdict::Retry {
            wait: server_wait,
            why: "HTTP 429 (rate limited)".to_owned(),
        },
        403 if headers.retry_after.is_some()
            || exhausted
            || body.to_ascii_lowercase().contains("rate limit") =>
        {
            Verdict::Retry {
                wait: server_wait,
                why: "HTTP 403 (rate limited)".to_owned(),
            }
        }
        _ => Verdict::Final,
    }
}

/// `Retry-After`: delay seconds or an HTTP date.
fn retry_after(value: &str, now: i64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(Duration::from_secs(
        u64::try_from(date.timestamp() - now).unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_follow_status_and_rate_limit_headers() {
        let none = RetryHeaders::default();
        let now = 1_700_000_000;
        assert_eq!(classify(200, &none, "", now), Verdict::Final);
        assert_eq!(classify(404, &none, "", now), Verdict::Final);
        // A 403 that is a missing permission is final: retrying will not grant it.
        assert_eq!(
            classify(
                403,
                &none,
                r#"{"message":"Resource not accessible by integration"}"#,
                now
            ),
            Verdict::Final
        );
        assert!(matches!(
            classify(502, &none, "", now),
            Verdict::Retry { wait: None, .. }
        ));
        let after = RetryHeaders {
            retry_after: Some("7".into()),
            ..RetryHeaders::default()
        };
        assert!(matches!(
            classify(429, &after, "", now),
            Verdict::Retry { wait: Some(w), .. } if w == Duration::from_secs(7)
        ));
        assert!(matches!(
            classify(403, &after, "", now),
            Verdict::Retry { wait: Some(w), .. } if w == Duration::from_secs(7)
        ));
        let reset = RetryHeaders {
            remaining: Some("0".into()),
            reset: Some((now + 30).to_string()),
            ..RetryHeaders::default()
        };
        assert!(matches!(
            classify(403, &reset, "", now),
            Verdict::Retry { wait: Some(w), .. } if w == Duration::from_secs(31)
        ));
        // A reset already past: retry at once.
        let past = RetryHeaders {
            remaining: Some("0".into()),
            reset: Some((now - 5).to_string()),
            ..RetryHeaders::default()
        };
        assert!(matches!(
            classify(429, &past, "", now),
            Verdict::Retry { wait: Some(w), .. } if w.is_zero()
        ));
        // Secondary rate limit without headers: relgate's own backoff.
        assert!(matches!(
            classify(
                403,
                &none,
                r#"{"message":"You have exceeded a secondary rate limit."}"#,
                now
            ),
            Verdict::Retry { wait: None, .. }
        ));
        // Retry-After as an HTTP date.
        let date = RetryHeaders {
            retry_after: Some("Tue, 14 Nov 2023 22:13:40 GMT".into()),
            ..RetryHeaders::default()
        };
        assert!(matches!(
            classify(503, &date, "", now),
            Verdict::Retry { wait: Some(w), .. } if w == Duration::from_secs(20)
        ));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            base: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
            ..RetryPolicy::default()
        };
        let waits: Vec<u128> = (1..=5).map(|a| policy.backoff(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        assert_eq!(policy.backoff(200), Duration::from_millis(500));
    }

    #[test]
    fn retry_policy_reads_the_environment() {
        let policy = RetryPolicy::from_lookup(&|name| match name {
            "RELGATE_GITHUB_RETRY_ATTEMPTS" => Some("3".into()),
            "RELGATE_GITHUB_RETRY_BASE_MS" => Some("5".into()),
            _ => None,
        })
        .expect("valid");
        assert_eq!(policy.attempts, 3);
        assert_eq!(policy.base, Duration::from_millis(5));
        assert_eq!(policy.deadline, RetryPolicy::default().deadline);
        let err = RetryPolicy::from_lookup(&|name| {
            (name == "RELGATE_GITHUB_DEADLINE_SECS").then(|| "soon".to_owned())
        })
        .expect_err("not a number");
        assert!(err
            .to_string()
            .contains("RELGATE_GITHUB_DEADLINE_SECS=soon"));
    }
}
