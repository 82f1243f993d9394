//! The audit export's KPIs and HTML report (docs/export-report.md), end to end: small ledgers
//! written with the real record library (fixed key, fixed times) into temp directories,
//! verified with `verify_ledger_with(keep_payloads)`, turned into export rows, then
//! - KPI values checked against figures computed by hand (the arithmetic is in the comments),
//!   plus edge cases (empty ledger, one record, rollback windows and attribution);
//! - the HTML checked for escaping of hostile names, for the absence of anything that could
//!   load a resource, for determinism, and for a tampered ledger;
//! - the HTML rendered in a real headless Chromium with networking disabled: a screenshot
//!   (PNG decoded and inspected), the DOM after rendering (chart elements counted) and the
//!   browser's net log (no request made by the page). A second run on a page that does
//!   reference an external image proves the net-log check detects such requests.
//!
//! Chromium: Debian package `chromium` (`apt-get install -y chromium`), or the binary named by
//! `RELGATE_CHROMIUM`. Without it the browser tests FAIL, unless `RELGATE_SKIP_BROWSER=1`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use relgate::export::html::write_html;
use relgate::export::kpi::{Kpis, Ratio};
use relgate::export::ExportRow;
use relgate::record::keys::{Signer, TrustedKeys};
use relgate::record::ledger::{DirLedger, Ledger, LedgerSource};
use relgate::record::statement::{
    Decision, EvidenceDigest, GitInfo, ManifestSummary, PolicyRef, RecordInput, Statement,
};
use relgate::record::verify::{verify_ledger_with, VerifyOptions, VerifyReport, VerifyStatus};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const SEED: [u8; 32] = [42; 32];
const GENERATED_AT: &str = "2026-02-01T00:00:00Z";

/// One record of a fixture ledger, in the words of the KPI definitions.
#[derive(Clone)]
struct Rec {
    time: &'static str,
    service: Option<&'static str>,
    environment: &'static str,
    kind: &'static str,
    name: &'static str,
    version: &'static str,
    change_type: &'static str,
    decision: Decision,
    failed: &'static [&'static str],
    warned: &'static [&'static str],
    evidence: &'static [&'static str],
}

impl Rec {
    fn new(
        time: &'static str,
        service: &'static str,
        environment: &'static str,
        name: &'static str,
        version: &'static str,
        change_type: &'static str,
        decision: Decision,
    ) -> Rec {
        Rec {
            time,
            service: Some(service),
            environment,
            kind: "PromptRelease",
            name,
            version,
            change_type,
            decision,
            failed: &[],
            warned: &[],
            evidence: &[],
        }
    }
    fn model(mut self) -> Rec {
        self.kind = "ModelRelease";
        self
    }
    fn failed(mut self, rules: &'static [&'static str]) -> Rec {
        self.failed = rules;
        self
    }
    fn warned(mut self, rules: &'static [&'static str]) -> Rec {
        self.warned = rules;
        self
    }
    fn evidence(mut self, files: &'static [&'static str]) -> Rec {
        self.evidence = files;
        self
    }
}

fn sha_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn input(rec: &Rec) -> RecordInput {
    let finding = |rule: &str, severity: &str| {
        serde_json::json!({"rule": rule, "severity": severity, "policy": "relgate.test",
                           "message": format!("{rule} fired"), "path": null, "line": 1})
    };
    let mut findings: Vec<serde_json::Value> =
        rec.failed.iter().map(|r| finding(r, "deny")).collect();
    findings.extend(rec.warned.iter().map(|r| finding(r, "warn")));
    let error = rec.decision == Decision::Error;
    RecordInput {
        manifest_path: format!("releases/{}.yaml", rec.name),
        manifest_sha256: sha_hex(format!("{}-{}-{}", rec.name, rec.version, rec.time).as_bytes()),
        artifact: None,
        decision: rec.decision,
        findings,
        manifest: ManifestSummary {
            // A decision that could not read its manifest records no kind, name or service.
            kind: if error {
                String::new()
            } else {
                rec.kind.into()
            },
            name: if error {
                String::new()
            } else {
                rec.name.into()
            },
            version: if error {
                String::new()
            } else {
                rec.version.into()
            },
            service: rec.service.map(str::to_owned),
            environment: (!error).then(|| rec.environment.to_owned()),
            tier: Some(1),
            change_type: (!error).then(|| rec.change_type.to_owned()),
            owner: None,
            ticket: None,
            baseline: None,
            candidate: None,
        },
        git: GitInfo {
            repo: "https://git.example.com/acme/assistants".into(),
            commit: sha_hex(rec.time.as_bytes())[..40].to_owned(),
            git_ref: Some("refs/heads/main".into()),
        },
        changed_in: Vec::new(),
        pull_request: None,
        slo_readings: vec![],
        ci_run_url: None,
        evidence: rec
            .evidence
            .iter()
            .map(|f| EvidenceDigest {
                uri: (*f).to_owned(),
                sha256: sha_hex(f.as_bytes()),
            })
            .collect(),
        policy: PolicyRef {
            uri: "relgate:builtin@0.1.0".into(),
            sha256: sha_hex(b"policy bundle"),
        },
        bundles: Vec::new(),
        verifier_version: "0.1.0".into(),
        time_verified: rec.time.into(),
    }
}

struct Fixture {
    _dir: TempDir,
    path: PathBuf,
}

/// Writes `recs` as a directory ledger signed with the fixed key.
fn ledger(recs: &[Rec]) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ledger");
    std::fs::create_dir_all(&path).expect("ledger dir");
    let signer = Signer::from_seed(SEED);
    let mut ledger = DirLedger::open(&path).expect("open ledger");
    for rec in recs {
        ledger.append(&input(rec), &signer).expect("append");
    }
    Fixture { _dir: dir, path }
}

/// Verifies the ledger and builds one export row per record, as `relgate export` does:
/// verified = the signature verified and no problem names the record.
fn export(path: &Path) -> (Vec<ExportRow>, VerifyReport) {
    let mut keys = TrustedKeys::new();
    keys.insert(Signer::from_seed(SEED).verifying_key());
    let options = VerifyOptions {
        keep_payloads: true,
        ..VerifyOptions::default()
    };
    let report = verify_ledger_with(&LedgerSource::Dir(path.to_owned()), &keys, None, &options);
    let rows = report
        .payloads
        .iter()
        .map(|p| {
            let statement: Statement =
                serde_json::from_value(p.payload.clone()).expect("payload is a Statement");
            let seq = statement.predicate.change.seq;
            let named = report.problems.iter().any(|q| q.seq() == Some(seq));
            ExportRow::from_statement(&statement, p.signature_ok && !named)
        })
        .collect();
    (rows, report)
}

fn rows_of(recs: &[Rec]) -> Vec<ExportRow> {
    let fixture = ledger(recs);
    let (rows, report) = export(&fixture.path);
    assert!(
        report.is_intact(),
        "fixture ledger verifies: {:?}",
        report.problems
    );
    assert_eq!(rows.len(), recs.len());
    rows
}

fn html(rows: &[ExportRow], report: &VerifyReport) -> String {
    let mut out = Vec::new();
    write_html(&mut out, rows, report, GENERATED_AT).expect("write html");
    String::from_utf8(out).expect("html is UTF-8")
}

use Decision::{Error as E, Fail as F, Pass as P};

/// The fixed ledger of the KPI test: 13 records over ISO weeks 2026-W02..W04.
/// 2026-01-05 is a Monday (W02 = Jan 5..11, W03 = Jan 12..18, W04 = Jan 19..25).
fn fixed() -> Vec<Rec> {
    const SB: &str = "support-bot";
    const PROD: &str = "production";
    vec![
        // 1: support-answer 17 blocked by PRR and an eval threshold.
        Rec::new(
            "2026-01-05T09:00:00Z",
            SB,
            PROD,
            "support-answer",
            "17",
            "feature",
            F,
        )
        .failed(&["EVAL-THRESHOLD", "PRR-MISSING"])
        .evidence(&["evals/answer-v17.json"]),
        // 2: fixed 2 h 30 min later: passes.
        Rec::new(
            "2026-01-05T11:30:00Z",
            SB,
            PROD,
            "support-answer",
            "17",
            "feature",
            P,
        )
        .evidence(&["evals/answer-v17.json"]),
        // 3, 4: search-ranker 42 regresses twice (the second also misses a PRR item) ...
        Rec::new(
            "2026-01-06T08:00:00Z",
            "search",
            PROD,
            "search-ranker",
            "42",
            "feature",
            F,
        )
        .model()
        .failed(&["EVAL-REGRESSION"])
        .evidence(&["evals/ranker-42.json"]),
        Rec::new(
            "2026-01-06T14:00:00Z",
            "search",
            PROD,
            "search-ranker",
            "42",
            "feature",
            F,
        )
        .model()
        .failed(&["EVAL-REGRESSION", "PRR-MISSING"])
        .evidence(&["evals/ranker-42.json"]),
        // 5: ... and passes a day after its first failure.
        Rec::new(
            "2026-01-07T08:00:00Z",
            "search",
            PROD,
            "search-ranker",
            "42",
            "feature",
            P,
        )
        .model()
        .evidence(&["evals/ranker-42.json"]),
        // 6: support-bot rolls back to support-answer 16, 46.5 h after 17 first passed.
        Rec::new(
            "2026-01-07T10:00:00Z",
            SB,
            PROD,
            "support-answer",
            "16",
            "rollback",
            P,
        )
        .evidence(&["evals/answer-v16.json"]),
        // 7: search-ranker 43 without evaluations; a warning only.
        Rec::new(
            "2026-01-12T09:00:00Z",
            "search",
            PROD,
            "search-ranker",
            "43",
            "feature",
            P,
        )
        .model()
        .warned(&["SLO-BUDGET-LOW"]),
        // 8, 9: support-answer 18 in staging: blocked by PII, passes 45 min later.
        Rec::new(
            "2026-01-13T10:00:00Z",
            SB,
            "staging",
            "support-answer",
            "18",
            "feature",
            F,
        )
        .failed(&["PII-RETENTION"])
        .evidence(&["evals/answer-v18.json"]),
        Rec::new(
            "2026-01-13T10:45:00Z",
            SB,
            "staging",
            "support-answer",
            "18",
            "feature",
            P,
        )
        .evidence(&["evals/answer-v18.json"]),
        // 10: a manifest that could not be read: decision error, no service, kind or name.
        Rec {
            service: None,
            ..Rec::new(
                "2026-01-14T12:00:00Z",
                "",
                PROD,
                "broken",
                "0",
                "feature",
                E,
            )
        },
        // 11: billing's manifest violates the schema: the policies did not run.
        Rec::new(
            "2026-01-15T16:00:00Z",
            "billing",
            PROD,
            "invoice-summary",
            "3",
            "config",
            F,
        )
        .failed(&["SCHEMA"]),
        // 12: search rolls back to 41 eight days and 30 min after 43 first passed: too late
        //     to count as undoing it (and 13 days after 42).
        Rec::new(
            "2026-01-20T09:30:00Z",
            "search",
            PROD,
            "search-ranker",
            "41",
            "rollback",
            P,
        )
        .model(),
        // 13: billing again: its evaluation file cannot be read (no evidence digest recorded).
        Rec::new(
            "2026-01-21T08:00:00Z",
            "billing",
            PROD,
            "invoice-summary",
            "3",
            "config",
            F,
        )
        .failed(&["EVIDENCE-UNREADABLE"]),
    ]
}

fn ratio(numerator: u64, denominator: u64) -> Ratio {
    Ratio {
        numerator,
        denominator,
        rate: Some(numerator as f64 / denominator as f64),
    }
}

// ---------------------------------------------------------------------------------------------
// KPIs
// ---------------------------------------------------------------------------------------------

#[test]
fn kpis_of_the_fixed_ledger_match_the_hand_computed_figures() {
    let rows = rows_of(&fixed());
    let k = Kpis::compute(&rows);

    assert_eq!(k.records, 13);
    // pass: seqs 2, 5, 6, 7, 9, 12 = 6; fail: 1, 3, 4, 8, 11, 13 = 6; error: 10 = 1.
    assert_eq!(
        (k.decisions.pass, k.decisions.fail, k.decisions.error),
        (6, 6, 1)
    );
    assert_eq!((k.unverified, k.without_time), (0, 0));
    assert_eq!(k.first_decision.as_deref(), Some("2026-01-05T09:00:00Z"));
    assert_eq!(k.last_decision.as_deref(), Some("2026-01-21T08:00:00Z"));

    // Gate pass rate: 6 pass / 13 records = 0.4615.
    assert_eq!(k.gate_pass, ratio(6, 13));

    // PRR compliance: policy-evaluated = 13 minus seq 10 (error) minus seq 11 (SCHEMA) = 11;
    // failing a PRR-* rule: seqs 1 and 4 -> 11 - 2 = 9 compliant. 9 / 11 = 0.8182.
    assert_eq!(k.prr_compliance, ratio(9, 11));

    // Evaluation gate: of the 11 policy-evaluated records, subject to evaluation rules are
    // those with evidence (1, 2, 3, 4, 5, 6, 8, 9) or an EVAL-/EVIDENCE- finding (13): 9.
    // Not subject: 7 and 12 (no evaluations; 7's SLO warning is not an evaluation rule).
    // Failing EVAL-*/EVIDENCE-*: 1, 3, 4, 13 -> 9 - 4 = 5. 5 / 9 = 0.5556.
    assert_eq!(k.evaluation_gate_pass, ratio(5, 9));

    // Change failure: passed non-rollback releases (service, env, name, version):
    //   support-bot/production/support-answer/17 (first pass seq 2, 01-05 11:30),
    //   search/production/search-ranker/42 (seq 5, 01-07 08:00),
    //   search/production/search-ranker/43 (seq 7, 01-12 09:00),
    //   support-bot/staging/support-answer/18 (seq 9, 01-13 10:45)        -> 4 releases.
    // Rollback seq 6 (support-bot/production, 01-07 10:00) undoes 17: 46.5 h <= 7 d.
    // Rollback seq 12 (search/production, 01-20 09:30): 43 was 8 d 0.5 h before, 42 13 d
    // before: both outside 7 d, nothing counted.  1 / 4 = 0.25.
    assert_eq!(k.change_failure, ratio(1, 4));
    assert_eq!(k.failed_changes.len(), 1);
    let f = &k.failed_changes[0];
    assert_eq!(
        (
            f.release.seq,
            f.release.name.as_str(),
            f.release.version.as_str()
        ),
        (2, "support-answer", "17")
    );
    assert_eq!((f.rollback.seq, f.rollback.version.as_str()), (6, "16"));
    assert_eq!(f.hours_to_rollback, 46.5); // 01-05 11:30 -> 01-07 10:00

    // First fail -> first pass, per (name, version, environment):
    //   support-answer/17/production: 09:00 -> 11:30        =  9,000 s
    //   search-ranker/42/production:  01-06 08:00 -> 01-07 08:00 = 86,400 s
    //   support-answer/18/staging:    10:00 -> 10:45        =  2,700 s
    // (invoice-summary/3 never passed; the others never failed.) Median of
    // [2700, 9000, 86400] = 9000 s.
    assert_eq!(k.fail_to_pass.releases, 3);
    assert_eq!(k.fail_to_pass.median_seconds, Some(9000.0));

    // Weeks: W02 = seqs 1-6: pass 2, 5, 6 (3), fail 1, 3, 4 (3);
    //        W03 = seqs 7-11: pass 7, 9 (2), fail 8, 11 (2), error 10 (1);
    //        W04 = seqs 12, 13: pass 1, fail 1.
    let weeks: Vec<(&str, &str, u64, u64, u64)> = k
        .weeks
        .iter()
        .map(|w| {
            let d = &w.decisions;
            (w.week.as_str(), w.starts.as_str(), d.pass, d.fail, d.error)
        })
        .collect();
    assert_eq!(
        weeks,
        vec![
            ("2026-W02", "2026-01-05", 3, 3, 0),
            ("2026-W03", "2026-01-12", 2, 2, 1),
            ("2026-W04", "2026-01-19", 1, 1, 0),
        ]
    );

    // Rules: EVAL-REGRESSION (3, 4) 2, PRR-MISSING (1, 4) 2, then 1 each, ties by name.
    // SLO-BUDGET-LOW only warned: not a failing rule.
    let rules: Vec<(&str, u64)> = k
        .top_failing_rules
        .iter()
        .map(|r| (r.rule.as_str(), r.records))
        .collect();
    assert_eq!(
        rules,
        vec![
            ("EVAL-REGRESSION", 2),
            ("PRR-MISSING", 2),
            ("EVAL-THRESHOLD", 1),
            ("EVIDENCE-UNREADABLE", 1),
            ("PII-RETENTION", 1),
            ("SCHEMA", 1),
        ]
    );

    // Services: billing 11, 13 (0 pass / 2); search 3, 4, 5, 7, 12 (3 pass: 5, 7, 12 -> 3/5);
    // support-bot 1, 2, 6, 8, 9 (3 pass: 2, 6, 9 -> 3/5); no service: 10 (error) last.
    type ServiceRow<'a> = (
        Option<&'a str>,
        u64,
        u64,
        u64,
        u64,
        Option<f64>,
        Option<&'a str>,
    );
    let services: Vec<ServiceRow> = k
        .services
        .iter()
        .map(|s| {
            (
                s.service.as_deref(),
                s.records,
                s.decisions.pass,
                s.decisions.fail,
                s.decisions.error,
                s.gate_pass_rate,
                s.last_decision.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        services,
        vec![
            (
                Some("billing"),
                2,
                0,
                2,
                0,
                Some(0.0),
                Some("2026-01-21T08:00:00Z")
            ),
            (
                Some("search"),
                5,
                3,
                2,
                0,
                Some(0.6),
                Some("2026-01-20T09:30:00Z")
            ),
            (
                Some("support-bot"),
                5,
                3,
                2,
                0,
                Some(0.6),
                Some("2026-01-13T10:45:00Z")
            ),
            (None, 1, 0, 0, 1, Some(0.0), Some("2026-01-14T12:00:00Z")),
        ]
    );
}

#[test]
fn an_empty_ledger_has_no_rates_and_still_renders() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (rows, report) = export(dir.path());
    assert!(rows.is_empty());
    let k = Kpis::compute(&rows);
    assert_eq!(k.records, 0);
    for r in [
        k.gate_pass,
        k.prr_compliance,
        k.evaluation_gate_pass,
        k.change_failure,
    ] {
        assert_eq!((r.numerator, r.denominator, r.rate), (0, 0, None));
    }
    assert_eq!(k.fail_to_pass.median_seconds, None);
    assert_eq!((k.first_decision, k.last_decision), (None, None));
    assert!(k.weeks.is_empty() && k.top_failing_rules.is_empty() && k.services.is_empty());

    let page = html(&rows, &report);
    assert!(page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"));
    assert!(page.contains("No decisions with a readable time."));
    // Each of the 4 rates says so in its value and its chart title; the median once.
    assert_eq!(page.matches("no data").count(), 9);
}

#[test]
fn a_single_record() {
    let rows = rows_of(&[Rec::new(
        "2026-03-04T05:06:07Z",
        "search",
        "production",
        "search-ranker",
        "1",
        "feature",
        P,
    )
    .model()]);
    let k = Kpis::compute(&rows);
    assert_eq!(k.gate_pass, ratio(1, 1));
    assert_eq!(k.prr_compliance, ratio(1, 1));
    // No evaluations and no evaluation finding: not subject to the evaluation gate.
    assert_eq!(k.evaluation_gate_pass.rate, None);
    // One passed release, no rollback: 0 / 1.
    assert_eq!(k.change_failure, ratio(0, 1));
    assert_eq!(k.fail_to_pass.median_seconds, None);
    assert_eq!(k.weeks.len(), 1);
    assert_eq!(k.weeks[0].week, "2026-W10");
    assert_eq!(k.services.len(), 1);
    assert!(html(&rows, &export(&ledger(&[]).path).1).contains("Release gate audit report"));
}

#[test]
fn rollback_window_is_seven_days_inclusive() {
    let release = |t| Rec::new(t, "search", "production", "ranker", "2", "feature", P);
    let rollback = |t| Rec::new(t, "search", "production", "ranker", "1", "rollback", P);
    // Exactly 7 days later: counts (1 / 1).
    let k = Kpis::compute(&rows_of(&[
        release("2026-02-02T10:00:00Z"),
        rollback("2026-02-09T10:00:00Z"),
    ]));
    assert_eq!(k.change_failure, ratio(1, 1));
    assert_eq!(k.failed_changes[0].hours_to_rollback, 168.0);
    // 7 days and 1 s later: does not count.
    let k = Kpis::compute(&rows_of(&[
        release("2026-02-02T10:00:00Z"),
        rollback("2026-02-09T10:00:01Z"),
    ]));
    assert_eq!(k.change_failure, ratio(0, 1));
    // 8 days later: does not count (0 / 1).
    let k = Kpis::compute(&rows_of(&[
        release("2026-02-02T10:00:00Z"),
        rollback("2026-02-10T10:00:00Z"),
    ]));
    assert_eq!(k.change_failure, ratio(0, 1));
    assert!(k.failed_changes.is_empty());
    // A rollback BEFORE the release does not undo it.
    let k = Kpis::compute(&rows_of(&[
        rollback("2026-02-01T10:00:00Z"),
        release("2026-02-02T10:00:00Z"),
    ]));
    assert_eq!(k.change_failure, ratio(0, 1));
}

#[test]
fn a_rollback_undoes_one_release_of_its_service_and_environment() {
    let rec = |t, service, env, name, version, change, d| {
        Rec::new(t, service, env, name, version, change, d)
    };
    let rows = rows_of(&[
        // search/production: ranker 2 (seq 1), then prompt qa 5 (seq 2), then ranker 3 fails
        // (seq 3, no release), then a rollback of the ranker (seq 4).
        rec(
            "2026-02-02T10:00:00Z",
            "search",
            "production",
            "ranker",
            "2",
            "feature",
            P,
        ),
        rec(
            "2026-02-03T10:00:00Z",
            "search",
            "production",
            "qa",
            "5",
            "feature",
            P,
        ),
        rec(
            "2026-02-03T11:00:00Z",
            "search",
            "production",
            "ranker",
            "3",
            "feature",
            F,
        ),
        rec(
            "2026-02-04T10:00:00Z",
            "search",
            "production",
            "ranker",
            "1",
            "rollback",
            P,
        ),
        // search/staging: ranker 9 a day before a production rollback: other environment.
        rec(
            "2026-02-05T10:00:00Z",
            "search",
            "staging",
            "ranker",
            "9",
            "feature",
            P,
        ),
        // Re-recording ranker 2 later does not make a new release (first pass counts).
        rec(
            "2026-02-05T12:00:00Z",
            "search",
            "production",
            "ranker",
            "2",
            "feature",
            P,
        ),
        // A production rollback of "other" (no release of that name): the latest
        // production release of the service within 7 days is qa 5.
        rec(
            "2026-02-06T10:00:00Z",
            "search",
            "production",
            "other",
            "0",
            "rollback",
            P,
        ),
        // support-bot never released: its rollback finds nothing.
        rec(
            "2026-02-06T11:00:00Z",
            "support-bot",
            "production",
            "x",
            "1",
            "rollback",
            P,
        ),
    ]);
    let k = Kpis::compute(&rows);
    // Releases: ranker 2 (prod), qa 5 (prod), ranker 9 (staging) = 3.
    // Rollback seq 4 (ranker): same name preferred over the later qa 5 -> ranker 2 failed.
    // Rollback seq 7 (other): no same-name release; latest production release is qa 5 -> failed.
    // ranker 9 (staging) untouched. 2 / 3.
    assert_eq!(k.change_failure, ratio(2, 3));
    let failed: Vec<(&str, &str, u64)> = k
        .failed_changes
        .iter()
        .map(|f| {
            (
                f.release.name.as_str(),
                f.release.version.as_str(),
                f.rollback.seq,
            )
        })
        .collect();
    assert_eq!(failed, vec![("ranker", "2", 4), ("qa", "5", 7)]);
    // Median fail -> pass: ranker 3 never passed; nothing else failed.
    assert_eq!(k.fail_to_pass.releases, 0);
}

#[test]
fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
    let r = |t, name, d| Rec::new(t, "s", "production", name, "1", "feature", d);
    let rows = rows_of(&[
        r("2026-02-02T10:00:00Z", "a", F),
        r("2026-02-02T10:10:00Z", "a", P), // 600 s
        r("2026-02-02T10:00:00Z", "b", F),
        r("2026-02-02T10:20:00Z", "b", E), // an error is not a pass and not a first fail
        r("2026-02-02T10:30:00Z", "b", P), // 1,800 s
        r("2026-02-02T11:00:00Z", "c", E),
        r("2026-02-02T11:05:00Z", "c", P), // error before the pass: not in the sample
        r("2026-02-02T12:00:00Z", "d", P),
        r("2026-02-02T12:30:00Z", "d", F), // fail after the first pass: not in the sample
    ]);
    let k = Kpis::compute(&rows);
    // [600, 1800] -> (600 + 1800) / 2 = 1200 s.
    assert_eq!(k.fail_to_pass.releases, 2);
    assert_eq!(k.fail_to_pass.median_seconds, Some(1200.0));
}

// ---------------------------------------------------------------------------------------------
// HTML
// ---------------------------------------------------------------------------------------------

/// Records whose every ledger-controlled string is hostile markup (service, name, version,
/// rule): a blocked release that then passes and is rolled back a day later, so its name
/// shows in the failed-changes table and its rule in the chart.
fn hostile() -> Vec<Rec> {
    const SERVICE: &str = "\"><img src=x onerror=alert(1)>";
    const NAME: &str = "<script>alert(\"x\")</script>";
    const VERSION: &str = "1' onmouseover='alert(2)";
    vec![
        Rec::new(
            "2026-01-22T10:00:00Z",
            SERVICE,
            "production",
            NAME,
            VERSION,
            "feature",
            F,
        )
        .failed(&["<b>RULE</b>&amp;", "EVAL-THRESHOLD"])
        .evidence(&["evals/<svg onload=alert(3)>.json"]),
        Rec::new(
            "2026-01-22T11:00:00Z",
            SERVICE,
            "production",
            NAME,
            VERSION,
            "feature",
            P,
        )
        .evidence(&["evals/<svg onload=alert(3)>.json"]),
        Rec::new(
            "2026-01-23T10:00:00Z",
            SERVICE,
            "production",
            NAME,
            "0",
            "rollback",
            P,
        ),
    ]
}

/// Anything in a page that could make a browser load something. Every `<` of ledger text is
/// escaped, so each literal `<` starts real markup: the scan looks at every tag (element name
/// and attributes) and at the style sheet, not at text, where a hostile name may well say
/// `src=`.
fn external_references(page: &str) -> Vec<String> {
    let lower = page.to_ascii_lowercase();
    let mut found = Vec::new();
    for piece in lower.split('<').skip(1) {
        let tag = piece.split('>').next().unwrap_or_default();
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if [
            "script", "link", "img", "iframe", "object", "embed", "image", "use", "base", "a",
            "form", "audio", "video", "source", "frame",
        ]
        .contains(&name.as_str())
        {
            found.push(format!("<{name}> element"));
        }
        for attr in [
            "src=", "href=", "srcset=", "url(", "action=", "data=", "poster=",
        ] {
            if tag.contains(attr) {
                found.push(format!("{attr} in <{tag}>"));
            }
        }
    }
    for style in lower.split("<style").skip(1) {
        let css = style.split("</style>").next().unwrap_or_default();
        for needle in ["url(", "@import", "@font-face", "http:", "https:"] {
            if css.contains(needle) {
                found.push(format!("{needle} in the style sheet"));
            }
        }
    }
    found
}

#[test]
fn hostile_names_render_as_text_and_nothing_loads() {
    let mut recs = fixed();
    recs.extend(hostile());
    let fixture = ledger(&recs);
    let (rows, report) = export(&fixture.path);
    let page = html(&rows, &report);
    assert_eq!(external_references(&page), Vec::<String>::new(), "{page}");
    assert!(page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
    assert!(page.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert!(page.contains("1&#39; onmouseover=&#39;alert(2)"));
    assert!(page.contains("&lt;b&gt;RULE&lt;/b&gt;&amp;amp;"));
    assert!(!page.contains("<b>"));
    // The scan itself finds what it looks for.
    assert_eq!(
        external_references("<p>src=x url(y)</p><img src=\"x\">").len(),
        2
    );
    assert_eq!(
        external_references("<style>b{background:url(x)}</style>").len(),
        1
    );
    // The CSP forbids every load even if something slipped through.
    assert!(page.contains("default-src 'none'"));
}

#[test]
fn the_report_is_deterministic_and_has_every_section() {
    let fixture = ledger(&fixed());
    let (rows, report) = export(&fixture.path);
    let a = html(&rows, &report);
    let b = html(&rows, &report);
    assert_eq!(a, b);
    // A second verification of the same ledger gives the same page.
    let (rows2, report2) = export(&fixture.path);
    assert_eq!(a, html(&rows2, &report2));
    for needle in [
        "Ledger verification: <span class=\"status\">Intact</span>",
        "Generated 2026-02-01T00:00:00Z",
        "id=\"weeks-chart\"",
        "id=\"rules-chart\"",
        "id=\"services-table\"",
        "id=\"failed-changes-table\"",
        // Gate pass 6/13, PRR 9/11, eval 5/9, CFR 1/4, median 9000 s.
        "46.2 %",
        "81.8 %",
        "55.6 %",
        "25.0 %",
        "2 h 30 min",
        "@media print",
    ] {
        assert!(a.contains(needle), "missing {needle}");
    }
    assert!(
        !a.contains("id=\"unverified\""),
        "an intact ledger flags no row"
    );
}

#[test]
fn a_tampered_ledger_is_reported_and_its_rows_flagged() {
    let fixture = ledger(&fixed());
    // Flip one byte of record 4's signature.
    let shard = fixture.path.join("records").join("000");
    let file = std::fs::read_dir(&shard)
        .expect("shard")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("000004-"))
        })
        .expect("record 4");
    let mut env: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
    let sig = env["signatures"][0]["sig"]
        .as_str()
        .expect("sig")
        .to_owned();
    // Base64 of a 64-byte signature: replacing the first character changes the first byte.
    let (first, rest) = sig.split_at(1);
    let flipped = format!("{}{rest}", if first == "A" { "B" } else { "A" });
    env["signatures"][0]["sig"] = serde_json::Value::String(flipped);
    std::fs::write(&file, serde_json::to_vec(&env).expect("json")).expect("write");

    let (rows, report) = export(&fixture.path);
    assert_eq!(report.status, VerifyStatus::Tampered);
    let unverified: Vec<u64> = rows.iter().filter(|r| !r.verified).map(|r| r.seq).collect();
    assert_eq!(unverified, vec![4]);
    let page = html(&rows, &report);
    assert!(page.contains("<span class=\"status\">Tampered</span>"));
    assert!(page.contains("bad_signature"));
    assert!(page.contains("<tr class=\"unverified\"><td class=\"num\">4</td>"));
    assert!(page.contains("Rows not verified</dt><dd><span class=\"flag\">1</span>"));
    assert_eq!(Kpis::compute(&rows).unverified, 1);
}

// ---------------------------------------------------------------------------------------------
// Headless Chromium
// ---------------------------------------------------------------------------------------------

/// The Chromium binary, or `None` when the test may skip (RELGATE_SKIP_BROWSER=1). Panics with
/// install instructions when Chromium is missing and skipping was not asked for.
fn chromium() -> Option<PathBuf> {
    if std::env::var("RELGATE_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!("RELGATE_SKIP_BROWSER=1: browser test skipped");
        return None;
    }
    if let Some(path) = std::env::var_os("RELGATE_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in [
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    panic!(
        "Chromium is required for the HTML report test and was not found on PATH.\n\
         Install it: `sudo apt-get install -y chromium` (Debian/Ubuntu), or point \
         RELGATE_CHROMIUM at a Chromium/Chrome binary.\n\
         To skip the browser tests deliberately, set RELGATE_SKIP_BROWSER=1."
    );
}

struct Rendered {
    dom: String,
    png: Vec<u8>,
    /// URLs of network requests the page made (net log; browser-internal requests excluded).
    page_requests: Vec<String>,
    elapsed: Duration,
}

/// Renders `page` (a file) headless with networking disabled: every host resolves to
/// NOTFOUND and every proxy connection goes to a closed loopback port. Returns the DOM after
/// rendering, the screenshot and the page's network requests from the net log.
fn render(browser: &Path, page: &Path, work: &Path) -> Rendered {
    let shot = work.join("shot.png");
    let netlog = work.join("netlog.json");
    let start = Instant::now();
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--proxy-server=127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--window-size=1280,2000",
        ])
        .arg(format!(
            "--user-data-dir={}",
            work.join("profile").display()
        ))
        .arg(format!("--log-net-log={}", netlog.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", browser.display()));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).map(|_| s)
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).map(|_| s)
    });
    let deadline = start + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dom = out_reader
        .join()
        .expect("stdout thread")
        .expect("read stdout");
    let err = err_reader
        .join()
        .expect("stderr thread")
        .expect("read stderr");
    let elapsed = start.elapsed();
    assert!(status.success(), "chromium failed ({status}):\n{err}");
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot ({e}):\n{err}"));
    let log: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&netlog).unwrap_or_else(|e| panic!("no net log ({e}):\n{err}")),
    )
    .expect("net log is JSON");
    Rendered {
        dom,
        png,
        page_requests: page_requests(&log),
        elapsed,
    }
}

/// Network requests a page made, from a Chromium net log (`--log-net-log`). Every network
/// request starts a `URL_REQUEST_START_JOB` event with its url and initiator. Chromium's own
/// background requests (component updater, time sync, ...) have the initiator
/// "not an origin" and a network isolation key that is not the page's; a request of a
/// `file://` page has an initiator (`null`, the file origin is opaque) and a `file://`
/// isolation key. `file://` subresources do not use the network stack at all: the static
/// scan ([`external_references`]) and the DOM check cover them.
fn page_requests(log: &serde_json::Value) -> Vec<String> {
    let start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"].as_u64();
    assert!(
        start_job.is_some(),
        "net log has no URL_REQUEST_START_JOB constant"
    );
    log["events"]
        .as_array()
        .expect("net log events")
        .iter()
        .filter(|e| e["type"].as_u64() == start_job)
        .filter(|e| {
            let p = &e["params"];
            p["initiator"].as_str() != Some("not an origin")
                || p["network_isolation_key"]
                    .as_str()
                    .is_some_and(|k| k.contains("file:"))
        })
        .filter_map(|e| e["params"]["url"].as_str().map(str::to_owned))
        .collect()
}

/// A decoded 8-bit RGB(A) PNG.
struct Image {
    width: usize,
    height: usize,
    /// RGB per pixel.
    pixels: Vec<[u8; 3]>,
}

/// Minimal PNG decoder for Chromium's screenshots (8-bit RGB or RGBA, no interlace): checks
/// the signature, reads IHDR, inflates the IDAT stream and undoes the scanline filters.
fn decode_png(bytes: &[u8]) -> Image {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    let mut pos = 8;
    let (mut width, mut height, mut channels) = (0usize, 0usize, 0usize);
    let mut idat = Vec::new();
    while pos + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        let kind = &bytes[pos + 4..pos + 8];
        let data = &bytes[pos + 8..pos + 8 + len];
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(data[0..4].try_into().expect("4 bytes")) as usize;
                height = u32::from_be_bytes(data[4..8].try_into().expect("4 bytes")) as usize;
                let (depth, color, interlace) = (data[8], data[9], data[12]);
                assert_eq!(
                    (depth, interlace),
                    (8, 0),
                    "8-bit, non-interlaced PNG expected"
                );
                channels = match color {
                    2 => 3,
                    6 => 4,
                    other => panic!("PNG colour type {other} not handled"),
                };
            }
            b"IDAT" => idat.extend_from_slice(data),
            b"IEND" => break,
            _ => {}
        }
        pos += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .expect("inflate IDAT");
    let stride = width * channels;
    assert_eq!(raw.len(), height * (stride + 1), "IDAT size");
    let mut prev = vec![0u8; stride];
    let mut pixels = Vec::with_capacity(width * height);
    for y in 0..height {
        let line = &raw[y * (stride + 1)..(y + 1) * (stride + 1)];
        let (filter, src) = (line[0], &line[1..]);
        let mut cur = vec![0u8; stride];
        for i in 0..stride {
            let a = if i >= channels { cur[i - channels] } else { 0 };
            let b = prev[i];
            let c = if i >= channels { prev[i - channels] } else { 0 };
            let predictor = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                4 => {
                    let p = i16::from(a) + i16::from(b) - i16::from(c);
                    let (pa, pb, pc) = (
                        (p - i16::from(a)).abs(),
                        (p - i16::from(b)).abs(),
                        (p - i16::from(c)).abs(),
                    );
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                other => panic!("PNG filter {other}"),
            };
            cur[i] = src[i].wrapping_add(predictor);
        }
        for px in cur.chunks(channels) {
            pixels.push([px[0], px[1], px[2]]);
        }
        prev = cur;
    }
    Image {
        width,
        height,
        pixels,
    }
}

fn pixels_near(image: &Image, rgb: [u8; 3]) -> usize {
    image
        .pixels
        .iter()
        .filter(|p| p.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 3))
        .count()
}

/// The part of `dom` from the element with `id` to the end of its `</svg>`.
fn svg_of<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element #{id} in the rendered DOM"));
    let end = dom[start..].find("</svg>").expect("svg closes") + start;
    &dom[start..end]
}

#[test]
fn chromium_renders_the_report_offline_with_its_charts() {
    let Some(browser) = chromium() else { return };
    let mut recs = fixed();
    recs.extend(hostile());
    let fixture = ledger(&recs);
    let (rows, report) = export(&fixture.path);
    let kpis = Kpis::compute(&rows);
    let work = tempfile::tempdir().expect("temp dir");
    let page = work.path().join("report.html");
    std::fs::write(&page, html(&rows, &report)).expect("write report");

    let r = render(&browser, &page, work.path());
    eprintln!(
        "chromium render + screenshot + DOM dump: {:.2} s",
        r.elapsed.as_secs_f64()
    );
    // RELGATE_KEEP_REPORT=DIR keeps the page and its screenshot (a CI artifact to look at).
    if let Some(keep) = std::env::var_os("RELGATE_KEEP_REPORT") {
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(&keep).expect("create RELGATE_KEEP_REPORT dir");
        std::fs::copy(&page, keep.join("report.html")).expect("keep report");
        std::fs::write(keep.join("report.png"), &r.png).expect("keep screenshot");
    }

    // The page loaded and made no network request.
    assert!(
        r.dom.contains("<h1>Release gate audit report</h1>"),
        "DOM:\n{}",
        r.dom
    );
    assert_eq!(
        r.page_requests,
        Vec::<String>::new(),
        "the report made network requests"
    );
    // After rendering, no element can load anything and the hostile names are text.
    assert_eq!(external_references(&r.dom), Vec::<String>::new());
    assert!(r.dom.contains("&lt;script&gt;alert(\"x\")&lt;/script&gt;"));

    // Charts have their elements: one group per week; one stacked segment per non-zero count.
    let weeks = svg_of(&r.dom, "weeks-chart");
    assert_eq!(
        kpis.weeks.len(),
        3,
        "W02..W04 (the hostile records are in W04)"
    );
    assert_eq!(
        weeks.matches("<g class=\"week\">").count(),
        kpis.weeks.len()
    );
    let nonzero = |f: fn(&relgate::export::kpi::WeekCount) -> u64| {
        kpis.weeks.iter().filter(|w| f(w) > 0).count()
    };
    assert_eq!(
        weeks.matches("<rect class=\"pass\"").count(),
        nonzero(|w| w.decisions.pass)
    );
    assert_eq!(
        weeks.matches("<rect class=\"fail\"").count(),
        nonzero(|w| w.decisions.fail)
    );
    assert_eq!(
        weeks.matches("<rect class=\"error\"").count(),
        nonzero(|w| w.decisions.error)
    );
    assert_eq!(
        weeks.matches("<title").count(),
        1 + kpis.weeks.len(),
        "chart and bar titles"
    );
    let rules = svg_of(&r.dom, "rules-chart");
    // 6 rules of the fixed ledger + "<b>RULE</b>&amp;" of the hostile record.
    assert_eq!(rules.matches("rule-bar").count(), 7);
    assert_eq!(
        r.dom.matches("<svg class=\"bar\"").count(),
        4,
        "four rate gauges"
    );
    for id in [
        "gate-pass",
        "prr-compliance",
        "evaluation-gate-pass",
        "change-failure",
    ] {
        assert!(svg_of(&r.dom, id).contains(&format!("<title id=\"{id}-t\">")));
    }
    assert!(r.dom.contains("<th scope=\"col\">Service</th>"));

    // The screenshot: a real PNG of the window, not blank, with the chart colours in it.
    assert!(r.png.len() > 20_000, "screenshot is {} bytes", r.png.len());
    let image = decode_png(&r.png);
    assert_eq!((image.width, image.height), (1280, 2000));
    let mut colours: Vec<[u8; 3]> = image.pixels.clone();
    colours.sort_unstable();
    colours.dedup();
    assert!(
        colours.len() > 50,
        "only {} colours: blank page?",
        colours.len()
    );
    let white = pixels_near(&image, [255, 255, 255]);
    assert!(
        white < image.pixels.len() * 98 / 100,
        "page is almost all white"
    );
    // Bar fills: pass #007a5a and fail #c4480b (solid rects render exactly).
    assert!(
        pixels_near(&image, [0x00, 0x7a, 0x5a]) > 500,
        "no pass-coloured bars"
    );
    assert!(
        pixels_near(&image, [0xc4, 0x48, 0x0b]) > 500,
        "no fail-coloured bars"
    );
}

#[test]
fn the_net_log_check_detects_a_page_that_loads_something() {
    // Control for the method above: the same browser run on a page with an external image and
    // stylesheet must show those requests (they fail, networking is off, but they are made).
    let Some(browser) = chromium() else { return };
    let work = tempfile::tempdir().expect("temp dir");
    let page = work.path().join("leaky.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><head><title>leaky</title>\
         <link rel=\"stylesheet\" href=\"http://styles.example.com/a.css\"></head>\
         <body><h1>leaky</h1><img src=\"https://images.example.org/x.png\"></body></html>",
    )
    .expect("write page");
    let r = render(&browser, &page, work.path());
    eprintln!("chromium control run: {:.2} s", r.elapsed.as_secs_f64());
    assert!(r.dom.contains("<h1>leaky</h1>"));
    let mut urls = r.page_requests.clone();
    urls.sort();
    urls.dedup();
    assert_eq!(
        urls,
        vec![
            "http://styles.example.com/a.css".to_owned(),
            "https://images.example.org/x.png".to_owned()
        ]
    );
}
