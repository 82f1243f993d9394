//! Which rows an export keeps: `--since` / `--until` on the decision time (`timeVerified`),
//! and `--service` / `--environment`.
//!
//! Dates are `YYYY-MM-DD` (a day in UTC) or RFC 3339 (`2026-01-31T12:00:00Z`, any offset).
//! Both bounds are inclusive: `--since 2026-01-01` keeps decisions from 2026-01-01T00:00:00Z
//! on; `--until 2026-01-31` keeps decisions up to the end of that day (before
//! 2026-02-01T00:00:00Z); `--until 2026-01-31T12:00:00Z` keeps decisions at or before that
//! instant. Times are compared as instants, to the sub-second.

use chrono::{DateTime, NaiveDate, Utc};

use super::kpi::parse_time;
use super::ExportRow;

/// A filter option that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FilterError {
    /// A date option is neither `YYYY-MM-DD` nor RFC 3339.
    #[error("{option} {value:?} is not a date: use YYYY-MM-DD (a day in UTC) or RFC 3339 (2026-01-31T12:00:00Z)")]
    BadDate {
        /// `--since` or `--until`.
        option: &'static str,
        /// What was given.
        value: String,
    },
    /// `--since` is after `--until`.
    #[error("--since {since} is after --until {until}: no decision can match")]
    EmptyRange {
        /// The start.
        since: String,
        /// The end.
        until: String,
    },
}

/// A row's time that is not RFC 3339, so a date filter cannot place it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("timeVerified {0:?} is not an RFC 3339 time, so --since/--until cannot place it")]
pub(crate) struct UndatedRow(pub(crate) String);

/// The rows an export keeps. The default keeps every row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowFilter {
    /// Earliest time kept (inclusive).
    pub(crate) since: Option<DateTime<Utc>>,
    /// Latest time kept: inclusive, or exclusive for a bare `--until` day.
    pub(crate) until: Option<Until>,
    /// Services kept (any of); empty keeps all.
    pub(crate) services: Vec<String>,
    /// Environments kept (any of); empty keeps all.
    pub(crate) environments: Vec<String>,
}

/// The upper bound of a date filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Until {
    /// Times at or before this instant (`--until` in RFC 3339).
    AtOrBefore(DateTime<Utc>),
    /// Times strictly before this instant (`--until DAY`: the start of the next day).
    Before(DateTime<Utc>),
}

fn parse_day(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()
}

/// `--since`: a day (from its first instant, UTC) or an RFC 3339 time.
pub(crate) fn parse_since(text: &str) -> Result<DateTime<Utc>, FilterError> {
    if let Some(day) = parse_day(text) {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    parse_time(text.trim()).ok_or_else(|| FilterError::BadDate {
        option: "--since",
        value: text.to_owned(),
    })
}

/// `--until`: a day (through its last instant, UTC) or an RFC 3339 time (inclusive).
pub(crate) fn parse_until(text: &str) -> Result<Until, FilterError> {
    let bad = || FilterError::BadDate {
        option: "--until",
        value: text.to_owned(),
    };
    if let Some(day) = parse_day(text) {
        let next = day.succ_opt().ok_or_else(bad)?;
        return Ok(Until::Before(
            next.and_time(chrono::NaiveTime::MIN).and_utc(),
        ));
    }
    parse_time(text.trim())
        .map(Until::AtOrBefore)
        .ok_or_else(bad)
}

impl RowFilter {
    /// A filter from the command-line texts; checks that the range is not empty.
    pub(crate) fn new(
        since: Option<&str>,
        until: Option<&str>,
        services: Vec<String>,
        environments: Vec<String>,
    ) -> Result<RowFilter, FilterError> {
        let since_t = since.map(parse_since).transpose()?;
        let until_t = until.map(parse_until).transpose()?;
        if let (Some(s), Some(u)) = (since_t, until_t) {
            let empty = match u {
                Until::AtOrBefore(u) => s > u,
                Until::Before(u) => s >= u,
            };
            if empty {
                return Err(FilterError::EmptyRange {
                    since: since.unwrap_or_default().to_owned(),
                    until: until.unwrap_or_default().to_owned(),
                });
            }
        }
        Ok(RowFilter {
            since: since_t,
            until: until_t,
            services,
            environments,
        })
    }

    /// True when a date bound is set.
    pub(crate) fn has_dates(&self) -> bool {
        self.since.is_some() || self.until.is_some()
    }

    /// Whether `row` is kept. A row whose time cannot be read is an error only when a date
    /// bound is set.
    pub(crate) fn keeps(&self, row: &ExportRow) -> Result<bool, UndatedRow> {
        let listed = |wanted: &[String], value: &Option<String>| {
            wanted.is_empty() || value.as_ref().is_some_and(|v| wanted.contains(v))
        };
        if !listed(&self.services, &row.service) || !listed(&self.environments, &row.environment) {
            return Ok(false);
        }
        if !self.has_dates() {
            return Ok(true);
        }
        let time = parse_time(&row.time).ok_or_else(|| UndatedRow(row.time.clone()))?;
        if self.since.is_some_and(|s| time < s) {
            return Ok(false);
        }
        Ok(match self.until {
            Some(Until::AtOrBefore(u)) => time <= u,
            Some(Until::Before(u)) => time < u,
            None => true,
        })
    }

    /// The filter in words, for VERIFY.md and the summary (`none` when off).
    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        if let Some(s) = self.since {
            parts.push(format!("decided at or after {}", fmt(s)));
        }
        match self.until {
            Some(Until::AtOrBefore(u)) => parts.push(format!("at or before {}", fmt(u))),
            Some(Until::Before(u)) => parts.push(format!("before {}", fmt(u))),
            None => {}
        }
        if !self.services.is_empty() {
            parts.push(format!("service {}", self.services.join(" or ")));
        }
        if !self.environments.is_empty() {
            parts.push(format!("environment {}", self.environments.join(" or ")));
        }
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_as_documented() {
        assert_eq!(
            parse_since("2026-01-31").expect("day").to_rfc3339(),
            "2026-01-31T00:00:00+00:00"
        );
        assert_eq!(
            parse_until("2026-01-31").expect("day"),
            Until::Before(parse_time("2026-02-01T00:00:00Z").expect("t"))
        );
        assert_eq!(
            parse_until("2026-01-31T13:00:00+01:00").expect("time"),
            Until::AtOrBefore(parse_time("2026-01-31T12:00:00Z").expect("t"))
        );
        assert!(parse_since("31/01/2026").is_err());
        assert!(parse_until("2026-02-30").is_err());
        assert!(RowFilter::new(Some("2026-02-01"), Some("2026-01-31"), vec![], vec![]).is_err());
        assert!(RowFilter::new(Some("2026-01-31"), Some("2026-01-31"), vec![], vec![]).is_ok());
        // Surrounding space is forgiven on the command line only.
        assert!(RowFilter::new(Some(" 2026-01-31T00:00:00Z "), None, vec![], vec![]).is_ok());
    }

    fn row(time: &str) -> ExportRow {
        ExportRow {
            seq: 1,
            time: time.to_owned(),
            service: None,
            name: "m".into(),
            version: "1".into(),
            kind: "ModelRelease".into(),
            environment: None,
            tier: None,
            change_type: None,
            decision: crate::report::Decision::Pass,
            failed_rules: vec![],
            warned_rules: vec![],
            approvers: vec![],
            requester: None,
            pull_request: None,
            merged_by: None,
            commit: String::new(),
            ticket: None,
            policy_digest: String::new(),
            bundles: vec![],
            manifest_path: String::new(),
            evidence: vec![],
            verified: true,
        }
    }

    #[test]
    fn a_record_time_the_kpis_call_undated_is_undated_for_the_date_filter_too() {
        let filter = RowFilter::new(Some("2026-01-01"), None, vec![], vec![]).expect("filter");
        assert_eq!(filter.keeps(&row("2026-01-02T00:00:00Z")), Ok(true));
        let padded = " 2026-01-02T00:00:00Z";
        assert_eq!(super::super::kpi::parse_time(padded), None);
        assert_eq!(
            filter.keeps(&row(padded)),
            Err(UndatedRow(padded.to_owned()))
        );
    }
}
