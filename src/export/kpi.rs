//! Release KPIs of an audit export (docs/export-report.md), computed from export rows only, so the
//! figures in the HTML report can be recomputed by an auditor from the CSV or JSONL.
//!
//! Definitions (also in `docs/export-report.md`; every rate is `None` when its denominator is
//! zero):
//!
//! - **Gate pass rate**: records with decision `pass` / all records.
//! - **Policy-evaluated record**: decision `pass` or `fail` (an `error` record could not be
//!   decided, no policy ran), no `SCHEMA` deny (the gate skips the policies when the schema
//!   fails) and kind `ModelRelease` or `PromptRelease` (the kinds that carry PRR items).
//! - **PRR compliance rate**: policy-evaluated records with no failing `PRR-*` rule /
//!   policy-evaluated records.
//! - **Evaluation gate pass rate**: among policy-evaluated records that were subject to the
//!   evaluation rules, the share with no failing `EVAL-*` or `EVIDENCE-*` rule. A record was
//!   subject to them when it read evaluation files ([`ExportRow::evidence`] non-empty: the
//!   manifest has `spec.evaluations`) or any `EVAL-*`/`EVIDENCE-*` rule failed or warned on it
//!   (an unreadable evaluation file leaves no digest in `evidence` but an `EVIDENCE-UNREADABLE`
//!   finding). Manifests without evaluations are not counted: they did not pass an
//!   evaluation gate, they had none.
//! - **Release**: the records of one `(service, environment, name, version)`; its time is that
//!   of its first `pass` record (its deployment). A rollback release is one whose passing
//!   record has `change_type: rollback`.
//! - **Change failure rate**: passed non-rollback releases counted as failed / all passed
//!   non-rollback releases (with a service and a readable time). Each passing rollback
//!   release marks as failed the release it most plausibly undid: among the passed
//!   non-rollback releases of the same service and environment whose first pass is before the
//!   rollback and at most 7 days (604,800 s, inclusive) before it, one with the rollback's name
//!   if any (a rollback manifest normally is the reverted manifest at an older version), the
//!   latest otherwise. The definition says "a release followed by a rollback of the same service within
//!   7 days"; attributing each rollback to one release keeps one incident from counting
//!   several times and leaves releases a later release had already superseded uncounted, and
//!   matching the environment keeps a production rollback from failing a staging release.
//! - **Time from first failed to first passed check**: for each `(name, version,
//!   environment)` whose records, ordered by (time, seq), have a `fail` before the first
//!   `pass`: first pass time − first fail time. The median of these (mean of the two middle
//!   values for an even count) in seconds. `error` records are not failed checks: the gate
//!   blocked nothing, it could not decide.
//! - **Decisions per week**: pass/fail/error counts per ISO 8601 week (UTC) of the record
//!   time, every week from the first to the last record's, empty weeks included.
//! - **Top failing rules**: for each rule, the number of records on which it failed (a rule
//!   counts once per record); the 10 largest, ties by rule name.
//! - **Per service**: records, decisions, gate pass rate and the last decision time of each
//!   service; records without a service (decisions that could not read the manifest) last.
//!
//! Rows whose time is not RFC 3339 are counted in every figure that does not need a time and
//! reported in [`Kpis::without_time`]. Rows that did not verify are included (the report flags
//! them); the figures describe the rows given, so an export filtered by date or service can
//! miss a rollback outside the filter, and a release in the last 7 days of the data may still
//! be rolled back later.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, SecondsFormat, Utc, Weekday};
use serde::Serialize;

use crate::export::ExportRow;
use crate::report::Decision;

/// How long after a release a rollback still counts as undoing it: 7 days.
pub(crate) const ROLLBACK_WINDOW_SECONDS: i64 = 7 * 24 * 60 * 60;

/// How many failing rules [`Kpis::top_failing_rules`] keeps.
pub(crate) const TOP_RULES: usize = 10;

/// A rate with the counts it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ratio {
    /// Records (or releases) meeting the condition.
    pub numerator: u64,
    /// Records (or releases) the rate is taken over.
    pub denominator: u64,
    /// `numerator / denominator`, `None` when the denominator is 0.
    pub rate: Option<f64>,
}

impl Ratio {
    fn of(numerator: u64, denominator: u64) -> Ratio {
        Ratio {
            numerator,
            denominator,
            rate: (denominator > 0).then(|| numerator as f64 / denominator as f64),
        }
    }
}

/// Decision counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct DecisionCounts {
    /// Decisions `pass`.
    pub pass: u64,
    /// Decisions `fail` (blocked by policy).
    pub fail: u64,
    /// Decisions `error` (could not decide).
    pub error: u64,
}

impl DecisionCounts {
    fn add(&mut self, decision: Decision) {
        match decision {
            Decision::Pass => self.pass += 1,
            Decision::Fail => self.fail += 1,
            Decision::Error => self.error += 1,
        }
    }

    /// All decisions.
    pub(crate) fn total(&self) -> u64 {
        self.pass + self.fail + self.error
    }
}

/// Decisions of one ISO week.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WeekCount {
    /// ISO 8601 week, `2026-W02`.
    pub week: String,
    /// Its Monday, `2026-01-05`.
    pub starts: String,
    /// Decisions made that week.
    pub decisions: DecisionCounts,
}

/// How many records a rule failed on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleCount {
    /// Rule id.
    pub rule: String,
    /// Records on which it was a deny finding.
    pub records: u64,
}

/// One service's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceKpis {
    /// Service; `None` for records without one.
    pub service: Option<String>,
    /// Its records.
    pub records: u64,
    /// Their decisions.
    pub decisions: DecisionCounts,
    /// Passed / records.
    pub gate_pass_rate: Option<f64>,
    /// Time of its latest decision (RFC 3339 UTC), when any record time is readable.
    pub last_decision: Option<String>,
}

/// A release as the change failure rate sees it: its first passing record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseRef {
    /// Seq of the first passing record.
    pub seq: u64,
    /// Service.
    pub(crate) service: String,
    /// Environment.
    pub(crate) environment: Option<String>,
    /// Release name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Time of the first pass (RFC 3339 UTC).
    pub(crate) time: String,
}

/// A release counted as a failed change, and the rollback that undid it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedChange {
    /// The release.
    pub release: ReleaseRef,
    /// The first rollback attributed to it.
    pub rollback: ReleaseRef,
    /// Hours from the release's first pass to the rollback's.
    pub hours_to_rollback: f64,
}

/// Time from the first failed to the first passed check of a release.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FailToPass {
    /// Releases (name, version, environment) with a failed check before their first pass.
    pub releases: u64,
    /// Median of their first-fail-to-first-pass times, in seconds.
    pub median_seconds: Option<f64>,
}

/// Every KPI of an export (see the module docs for the definitions).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kpis {
    /// Rows given.
    pub records: u64,
    /// Their decisions.
    pub decisions: DecisionCounts,
    /// Rows whose record did not verify.
    pub unverified: u64,
    /// Rows whose time is not RFC 3339 (left out of the time-based figures).
    pub without_time: u64,
    /// Earliest record time (RFC 3339 UTC).
    pub first_decision: Option<String>,
    /// Latest record time (RFC 3339 UTC).
    pub last_decision: Option<String>,
    /// Records with decision pass / all records.
    pub gate_pass: Ratio,
    /// Policy-evaluated records with no failing PRR-* rule / policy-evaluated records.
    pub prr_compliance: Ratio,
    /// Records subject to the evaluation rules with no failing EVAL-*/EVIDENCE-* rule / those
    /// records.
    pub evaluation_gate_pass: Ratio,
    /// Passed non-rollback releases undone by a rollback within 7 days / all of them.
    pub change_failure: Ratio,
    /// The releases counted as failed changes, by release time.
    pub failed_changes: Vec<FailedChange>,
    /// Median time from the first failed to the first passed check.
    pub fail_to_pass: FailToPass,
    /// Decisions per ISO week, first to last week, empty weeks included.
    pub weeks: Vec<WeekCount>,
    /// Up to [`TOP_RULES`] rules by the number of records they failed on, ties by name.
    pub top_failing_rules: Vec<RuleCount>,
    /// Per service, by name; records without a service last.
    pub services: Vec<ServiceKpis>,
}

/// Parses a record time (RFC 3339, to UTC; no surrounding space allowed); `None` when it is
/// not one. The one reading of record times: the KPIs, `--since`/`--until` and `collect` agree
/// on which records are dated.
pub(crate) fn parse_time(time: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(time)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Whether the policies ran on this record's manifest (see the module docs).
pub(crate) fn policy_evaluated(row: &ExportRow) -> bool {
    row.decision != Decision::Error
        && !row.failed_rules.iter().any(|r| r == "SCHEMA")
        && matches!(row.kind.as_str(), "ModelRelease" | "PromptRelease")
}

fn is_evaluation_rule(rule: &str) -> bool {
    rule.starts_with("EVAL-") || rule.starts_with("EVIDENCE-")
}

/// Whether the record was subject to the evaluation rules (see the module docs).
pub(crate) fn evaluation_subject(row: &ExportRow) -> bool {
    policy_evaluated(row)
        && (!row.evidence.is_empty()
            || row
                .failed_rules
                .iter()
                .chain(&row.warned_rules)
                .any(|r| is_evaluation_rule(r)))
}

fn is_rollback(row: &ExportRow) -> bool {
    row.change_type.as_deref() == Some("rollback")
}

/// (time, seq): the order "before" means everywhere here; seq breaks ties of equal times.
type At = (DateTime<Utc>, u64);

impl Kpis {
    /// Computes every KPI over `rows` (any order). O(n log n).
    pub fn compute(rows: &[ExportRow]) -> Kpis {
        let times: Vec<Option<DateTime<Utc>>> = rows.iter().map(|r| parse_time(&r.time)).collect();
        let mut decisions = DecisionCounts::default();
        for row in rows {
            decisions.add(row.decision);
        }
        let records = rows.len() as u64;
        let first = times.iter().flatten().min().copied();
        let last = times.iter().flatten().max().copied();

        let evaluated: Vec<&ExportRow> = rows.iter().filter(|r| policy_evaluated(r)).collect();
        let prr_ok = evaluated
            .iter()
            .filter(|r| !r.failed_rules.iter().any(|x| x.starts_with("PRR-")))
            .count() as u64;
        let eval_subject: Vec<&ExportRow> = rows.iter().filter(|r| evaluation_subject(r)).collect();
        let eval_ok = eval_subject
            .iter()
            .filter(|r| !r.failed_rules.iter().any(|x| is_evaluation_rule(x)))
            .count() as u64;

        let (change_failure, failed_changes) = change_failures(rows, &times);

        Kpis {
            records,
            decisions,
            unverified: rows.iter().filter(|r| !r.verified).count() as u64,
            without_time: times.iter().filter(|t| t.is_none()).count() as u64,
            first_decision: first.map(format_time),
            last_decision: last.map(format_time),
            gate_pass: Ratio::of(decisions.pass, records),
            prr_compliance: Ratio::of(prr_ok, evaluated.len() as u64),
            evaluation_gate_pass: Ratio::of(eval_ok, eval_subject.len() as u64),
            change_failure,
            failed_changes,
            fail_to_pass: fail_to_pass(rows, &times),
            weeks: weeks(rows, &times),
            top_failing_rules: top_failing_rules(rows),
            services: services(rows, &times),
        }
    }
}

/// Releases of one (service, environment): where a rollback looks for what it undid.
type Stream<'a> = (&'a str, Option<&'a str>);

/// Key of a release for the change failure rate: (service, environment, name, version).
type ReleaseKey<'a> = (&'a str, Option<&'a str>, &'a str, &'a str);

fn release_ref(row: &ExportRow, service: &str, at: At) -> ReleaseRef {
    ReleaseRef {
        seq: row.seq,
        service: service.to_owned(),
        environment: row.environment.clone(),
        name: row.name.clone(),
        version: row.version.clone(),
        time: format_time(at.0),
    }
}

fn change_failures(
    rows: &[ExportRow],
    times: &[Option<DateTime<Utc>>],
) -> (Ratio, Vec<FailedChange>) {
    // First pass of every release, rollbacks apart from the rest.
    let mut releases: BTreeMap<ReleaseKey, (At, usize)> = BTreeMap::new();
    let mut rollbacks: BTreeMap<ReleaseKey, (At, usize)> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        let (Some(service), Some(time), Decision::Pass) =
            (row.service.as_deref(), times[i], row.decision)
        else {
            continue;
        };
        let key = (
            service,
            row.environment.as_deref(),
            row.name.as_str(),
            row.version.as_str(),
        );
        let at = (time, row.seq);
        let map = if is_rollback(row) {
            &mut rollbacks
        } else {
            &mut releases
        };
        let entry = map.entry(key).or_insert((at, i));
        if at < entry.0 {
            *entry = (at, i);
        }
    }
    // Releases per (service, environment), in time order, for a window search per rollback.
    let mut by_stream: BTreeMap<Stream, Vec<(At, usize)>> = BTreeMap::new();
    for (key, first) in &releases {
        by_stream.entry((key.0, key.1)).or_default().push(*first);
    }
    for list in by_stream.values_mut() {
        list.sort();
    }
    let mut rollback_list: Vec<(At, usize)> = rollbacks.values().copied().collect();
    rollback_list.sort();
    // Release index -> (rollback index, rollback time): the first rollback attributed to it.
    let mut failed: BTreeMap<usize, (usize, At)> = BTreeMap::new();
    let window = Duration::seconds(ROLLBACK_WINDOW_SECONDS);
    for (rb_at, rb) in rollback_list {
        let row = &rows[rb];
        let Some(service) = row.service.as_deref() else {
            continue;
        };
        let Some(list) = by_stream.get(&(service, row.environment.as_deref())) else {
            continue;
        };
        // Releases strictly before the rollback and no more than 7 days before it.
        let end = list.partition_point(|(at, _)| *at < rb_at);
        let start = list[..end].partition_point(|((t, _), _)| rb_at.0 - *t > window);
        let candidates = &list[start..end];
        let chosen = candidates
            .iter()
            .rev()
            .find(|(_, i)| rows[*i].name == row.name)
            .or_else(|| candidates.last());
        if let Some((_, release)) = chosen {
            failed.entry(*release).or_insert((rb, rb_at));
        }
    }
    let mut failed_changes: Vec<(At, FailedChange)> = failed
        .into_iter()
        .filter_map(|(release, (rb, rb_at))| {
            let rel_time = times[release]?;
            let rel_row = &rows[release];
            let rb_row = &rows[rb];
            let service = rel_row.service.as_deref()?;
            let at = (rel_time, rel_row.seq);
            Some((
                at,
                FailedChange {
                    release: release_ref(rel_row, service, at),
                    rollback: release_ref(rb_row, service, rb_at),
                    hours_to_rollback: (rb_at.0 - rel_time).num_seconds() as f64 / 3600.0,
                },
            ))
        })
        .collect();
    failed_changes.sort_by_key(|(at, _)| *at);
    let ratio = Ratio::of(failed_changes.len() as u64, releases.len() as u64);
    (ratio, failed_changes.into_iter().map(|(_, f)| f).collect())
}

fn fail_to_pass(rows: &[ExportRow], times: &[Option<DateTime<Utc>>]) -> FailToPass {
    type CheckKey<'a> = (&'a str, &'a str, Option<&'a str>);
    let mut checks: BTreeMap<CheckKey, Vec<(At, Decision)>> = BTreeMap::new();
    for (row, time) in rows.iter().zip(times) {
        let Some(time) = time else { continue };
        checks
            .entry((
                row.name.as_str(),
                row.version.as_str(),
                row.environment.as_deref(),
            ))
            .or_default()
            .push(((*time, row.seq), row.decision));
    }
    let mut durations: Vec<i64> = Vec::new();
    for list in checks.values_mut() {
        list.sort_by_key(|(at, _)| *at);
        let Some(pass) = list.iter().position(|(_, d)| *d == Decision::Pass) else {
            continue;
        };
        if let Some((fail_at, _)) = list[..pass].iter().find(|(_, d)| *d == Decision::Fail) {
            durations.push((list[pass].0 .0 - fail_at.0).num_seconds());
        }
    }
    durations.sort_unstable();
    let n = durations.len();
    let median_seconds = match n {
        0 => None,
        _ if n % 2 == 1 => Some(durations[n / 2] as f64),
        _ => Some((durations[n / 2 - 1] as f64 + durations[n / 2] as f64) / 2.0),
    };
    FailToPass {
        releases: n as u64,
        median_seconds,
    }
}

fn week_start(time: DateTime<Utc>) -> NaiveDate {
    let date = time.date_naive();
    date - Duration::days(i64::from(date.weekday().num_days_from_monday()))
}

fn weeks(rows: &[ExportRow], times: &[Option<DateTime<Utc>>]) -> Vec<WeekCount> {
    let mut by_week: BTreeMap<NaiveDate, DecisionCounts> = BTreeMap::new();
    for (row, time) in rows.iter().zip(times) {
        if let Some(time) = time {
            by_week
                .entry(week_start(*time))
                .or_default()
                .add(row.decision);
        }
    }
    let (Some(first), Some(last)) = (
        by_week.keys().next().copied(),
        by_week.keys().next_back().copied(),
    ) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut monday = first;
    while monday <= last {
        let iso = monday.iso_week();
        debug_assert_eq!(monday.weekday(), Weekday::Mon);
        out.push(WeekCount {
            week: format!("{:04}-W{:02}", iso.year(), iso.week()),
            starts: monday.format("%Y-%m-%d").to_string(),
            decisions: by_week.get(&monday).copied().unwrap_or_default(),
        });
        match monday.checked_add_signed(Duration::days(7)) {
            Some(next) => monday = next,
            None => break,
        }
    }
    out
}

fn top_failing_rules(rows: &[ExportRow]) -> Vec<RuleCount> {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for row in rows {
        // failed_rules is distinct per row, so a rule counts once per record.
        for rule in &row.failed_rules {
            *counts.entry(rule.as_str()).or_default() += 1;
        }
    }
    let mut list: Vec<RuleCount> = counts
        .into_iter()
        .map(|(rule, records)| RuleCount {
            rule: rule.to_owned(),
            records,
        })
        .collect();
    // Stable sort on a name-ordered list: ties stay by name.
    list.sort_by_key(|r| std::cmp::Reverse(r.records));
    list.truncate(TOP_RULES);
    list
}

fn services(rows: &[ExportRow], times: &[Option<DateTime<Utc>>]) -> Vec<ServiceKpis> {
    let mut acc: BTreeMap<Option<&str>, (DecisionCounts, Option<At>)> = BTreeMap::new();
    for (row, time) in rows.iter().zip(times) {
        let entry = acc.entry(row.service.as_deref()).or_default();
        entry.0.add(row.decision);
        if let Some(time) = time {
            let at = (*time, row.seq);
            if entry.1.is_none_or(|last| at > last) {
                entry.1 = Some(at);
            }
        }
    }
    let mut out: Vec<ServiceKpis> = acc
        .into_iter()
        .map(|(service, (decisions, last))| ServiceKpis {
            service: service.map(str::to_owned),
            records: decisions.total(),
            decisions,
            gate_pass_rate: Ratio::of(decisions.pass, decisions.total()).rate,
            last_decision: last.map(|(t, _)| format_time(t)),
        })
        .collect();
    // BTreeMap puts None first; records without a service go last.
    out.sort_by_key(|s| s.service.is_none());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_weeks_cross_the_year_boundary() {
        // 2026-01-01 is a Thursday: it belongs to 2026-W01, which starts on 2025-12-29.
        let t = parse_time("2026-01-01T10:00:00Z").expect("valid time");
        let monday = week_start(t);
        assert_eq!(monday.to_string(), "2025-12-29");
        assert_eq!(monday.iso_week().week(), 1);
        assert_eq!(monday.iso_week().year(), 2026);
        // An offset moves the record to the UTC week: Monday 00:30 +01:00 is Sunday 23:30 UTC.
        let t = parse_time("2026-01-05T00:30:00+01:00").expect("valid time");
        assert_eq!(week_start(t).to_string(), "2025-12-29");
    }

    #[test]
    fn ratios_without_data_are_none() {
        assert_eq!(Ratio::of(0, 0).rate, None);
        assert_eq!(Ratio::of(1, 4).rate, Some(0.25));
    }
}
