//! Evidence and Prometheus used against the gate: the pull-request author writes the eval and
//! SLO files, the manifest's Prometheus URL and query, and may run (or point at) a lying HTTP
//! server. None of it may pass a release that should be blocked, hang the run, make relgate
//! request a URL the gate's config does not allow, or put another service's response body in a
//! report.
//!
//! Every HTTP server here listens on 127.0.0.1; every run is bounded in time.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use crate::support::fake_http::{vector, FakeServer, Reply};
use crate::support::{self, dev_release, Repo, NOW};

/// The outcome of a bounded run: exit code (`None`: killed after the limit) and output.
struct Bounded {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Bounded {
    fn context(&self) -> String {
        format!(
            "exit {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    fn exit(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "unexpected exit\n{}", self.context());
        self
    }

    fn has(&self, text: &str) -> &Self {
        assert!(
            self.stdout.contains(text) || self.stderr.contains(text),
            "output lacks {text:?}\n{}",
            self.context()
        );
        self
    }

    fn lacks(&self, text: &str) -> &Self {
        assert!(
            !self.stdout.contains(text) && !self.stderr.contains(text),
            "output has {text:?}\n{}",
            self.context()
        );
        self
    }
}

/// Runs `relgate ARGS` in `dir`, killing it after `limit` (a hang is a test failure, never a
/// stuck test run).
fn run_bounded(dir: &Path, args: &[&str], limit: Duration) -> Bounded {
    let mut cmd = Command::new(crate::support::relgate_bin());
    cmd.args(args)
        .current_dir(dir)
        .env("RELGATE_NOW", NOW)
        .env("NO_COLOR", "1")
        .env_remove("RELGATE_SIGNING_KEY")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("ALL_PROXY");
    let run = support::run_with_deadline(cmd, limit);
    Bounded {
        code: run.code,
        stdout: run.stdout,
        stderr: run.stderr,
    }
}

fn check(repo: &Repo, extra: &[&str]) -> Bounded {
    let mut args = vec!["check", "releases/r.yaml"];
    args.extend_from_slice(extra);
    run_bounded(repo.path(), &args, Duration::from_secs(60))
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A dev release whose spec also holds `extra` (YAML lines indented by 2, under `spec:`).
fn release(extra: &str) -> String {
    format!("{}{extra}", dev_release("r"))
}

/// A dev release gating `evals/m.json` (format metrics): accuracy must be at least 0.9.
fn metrics_release(file: &[u8]) -> String {
    release(&format!(
        "  evaluations:\n    - id: quality\n      format: metrics\n      candidate: {{path: evals/m.json, digest: \"{}\"}}\n      thresholds:\n        accuracy: {{min: 0.9}}\n",
        sha256(file)
    ))
}

const CONFIG_HEAD: &str = "apiVersion: relgate.dev/v1\nkind: GateConfig\n";

/// relgate.yaml allowing exactly these Prometheus base URLs.
fn allow(urls: &[&str]) -> String {
    let list: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "{CONFIG_HEAD}error_budget:\n  prometheus:\n    allowed_urls: [{}]\n",
        list.join(", ")
    )
}

/// A release with one SLO read from Prometheus at `url`, with one block_on_alerts query.
fn prometheus_release(url: &str, extra: &str) -> String {
    release(&format!(
        "  slo:\n    - name: availability\n      source:\n        prometheus: {{url: \"{url}\", query: budget}}\n      min_remaining: 0.05\n      block_on_alerts: [alerts]\n{extra}"
    ))
}

/// A Prometheus that says the budget is healthy and nothing fires.
fn healthy(_: usize, query: &str) -> Reply {
    if query == "budget" {
        Reply::json(vector(&["0.9"]))
    } else {
        Reply::json(vector(&[]))
    }
}

// ---------------------------------------------------------------------------------------------
// Duplicate keys.

#[test]
fn duplicate_metric_key_in_an_eval_file_is_unreadable_not_the_last_value() {
    // A JSON reader that keeps the last value lets the file say 0.1 to one reader (jq, a
    // reviewer's eye on the first line) and 0.99 to the gate.
    let file = br#"{"accuracy": 0.1, "accuracy": 0.99}"#;
    let repo = Repo::new();
    repo.file("evals/m.json", file)
        .file("releases/r.yaml", metrics_release(file));
    check(&repo, &[])
        .exit(1)
        .has("EVIDENCE-UNREADABLE")
        .has("duplicate key `accuracy`");

    // The same file without the repeat is read and passes: the refusal is about the repeat.
    let clean = br#"{"accuracy": 0.99}"#;
    let repo = Repo::new();
    repo.file("evals/m.json", clean)
        .file("releases/r.yaml", metrics_release(clean));
    check(&repo, &[]).exit(0);
}

#[test]
fn a_results_file_cannot_flip_the_direction_the_threshold_implies() {
    // accuracy {min: 0.5, max_regression: 0.01}: 0.60 against a baseline of 0.90 regressed. A
    // `higher_is_better: false` in the candidate's file (the author writes it) once decided the
    // direction over the threshold's `min` and passed the release.
    let baseline = br#"{"accuracy": {"value": 0.90, "samples": 500}}"#;
    for candidate in [
        br#"{"accuracy": {"value": 0.60, "samples": 500}}"#.as_slice(),
        br#"{"accuracy": {"value": 0.60, "samples": 500, "higher_is_better": false}}"#.as_slice(),
    ] {
        let repo = Repo::new();
        repo.file("evals/c.json", candidate)
            .file("evals/b.json", baseline.as_slice())
            .file(
                "releases/r.yaml",
                release(&format!(
                    "  evaluations:\n    - id: quality\n      format: metrics\n      candidate: {{path: evals/c.json, digest: \"{}\"}}\n      baseline: {{path: evals/b.json, digest: \"{}\"}}\n      thresholds:\n        accuracy: {{min: 0.5, max_regression: 0.01}}\n",
                    sha256(candidate),
                    sha256(baseline)
                )),
            );
        check(&repo, &[])
            .exit(1)
            .has("accuracy regressed by 0.3 (0.6 vs baseline 0.9, higher is better)");
    }
}

#[test]
fn a_candidate_cannot_be_its_own_baseline() {
    // The baseline pointed at the candidate's own results: max_regression compared the
    // candidate with itself and passed whatever the released version scored.
    let results = br#"{"accuracy": {"value": 0.60, "samples": 500}}"#;
    let repo = Repo::new();
    repo.file("evals/c.json", results.as_slice()).file(
        "releases/r.yaml",
        release(&format!(
            "  evaluations:\n    - id: quality\n      format: metrics\n      candidate: {{path: evals/c.json, digest: \"{d}\"}}\n      baseline: {{path: evals/c.json, digest: \"{d}\"}}\n      thresholds:\n        accuracy: {{min: 0.5, max_regression: 0.01}}\n",
            d = sha256(results)
        )),
    );
    check(&repo, &[])
        .exit(1)
        .has("EVAL-REGRESSION")
        .has("the baseline results evals/c.json are the candidate results evals/c.json");
}

#[test]
fn duplicate_key_nested_in_an_eval_file_is_unreadable() {
    let file = br#"{"accuracy": {"value": 0.1, "samples": 10, "value": 0.99}}"#;
    let repo = Repo::new();
    repo.file("evals/m.json", file)
        .file("releases/r.yaml", metrics_release(file));
    check(&repo, &[])
        .exit(1)
        .has("EVIDENCE-UNREADABLE")
        .has("duplicate key `value`");
}

#[test]
fn duplicate_key_in_an_slo_reading_file_is_unknown() {
    let repo = Repo::new();
    repo.file(
        "slo/s.json",
        r#"{"time": "2026-11-27T11:59:00Z", "remaining": {"value": -1, "value": 0.9}}"#,
    )
    .file(
        "releases/r.yaml",
        release(
            "  slo:\n    - name: availability\n      source:\n        file: {path: slo/s.json}\n",
        ),
    );
    check(&repo, &[])
        .exit(1)
        .has("SLO-UNKNOWN")
        .has("duplicate key `value`");
}

#[test]
fn duplicate_key_in_a_prometheus_answer_is_unknown() {
    // The alert answer lists a firing series, then repeats `result` empty.
    let server = FakeServer::start(|_, query| {
        if query == "budget" {
            Reply::json(vector(&["0.9"]))
        } else {
            Reply::json(
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]}],"result":[]}}"#,
            )
        }
    });
    let repo = Repo::new();
    repo.file("relgate.yaml", allow(&[&server.url]))
        .file("releases/r.yaml", prometheus_release(&server.url, ""));
    check(&repo, &[])
        .exit(1)
        .has("SLO-UNKNOWN")
        .has("duplicate key `result`");
}

// ---------------------------------------------------------------------------------------------
// Files that are not regular files.

#[test]
fn fifo_as_evidence_is_unreadable_not_a_hang() {
    let repo = Repo::new();
    repo.file("releases/r.yaml", "placeholder");
    std::fs::create_dir_all(repo.path().join("evals")).expect("mkdir");
    std::fs::create_dir_all(repo.path().join("slo")).expect("mkdir");
    for fifo in ["evals/m.json", "slo/s.json"] {
        let status = Command::new("mkfifo")
            .arg(repo.path().join(fifo))
            .status()
            .expect("run mkfifo");
        assert!(status.success(), "mkfifo {fifo}");
    }
    let manifest = format!(
        "{}  slo:\n    - name: availability\n      source:\n        file: {{path: slo/s.json}}\n",
        metrics_release(b"{}")
    );
    repo.file("releases/r.yaml", manifest);
    let run = run_bounded(
        repo.path(),
        &["check", "releases/r.yaml"],
        Duration::from_secs(20),
    );
    run.exit(1)
        .has("EVIDENCE-UNREADABLE")
        .has("SLO-UNKNOWN")
        .has("not a regular file");
}

// ---------------------------------------------------------------------------------------------
// SLO reading files must be current.

fn slo_file_release(repo: &Repo, time: &str) -> Bounded {
    repo.file(
        "slo/s.json",
        format!(r#"{{"time": "{time}", "remaining": {{"value": 0.9}}, "alerts": [{{"query": "alerts", "series": 0}}]}}"#),
    )
    .file(
        "releases/r.yaml",
        release("  slo:\n    - name: availability\n      source:\n        file: {path: slo/s.json}\n      block_on_alerts: [alerts]\n"),
    );
    check(repo, &[])
}

#[test]
fn stale_and_future_slo_reading_files_are_unknown() {
    // NOW is 2026-11-27T12:00:00Z; the defaults allow 15 minutes of age, 5 of future skew.
    slo_file_release(&Repo::new(), "2026-11-27T11:50:00Z").exit(0);
    slo_file_release(&Repo::new(), "1970-01-01T00:00:00Z")
        .exit(1)
        .has("SLO-UNKNOWN")
        .has("older than");
    slo_file_release(&Repo::new(), "2026-11-27T11:40:00Z")
        .exit(1)
        .has("SLO-UNKNOWN")
        .has("error_budget.reading_files.max_age_minutes");
    slo_file_release(&Repo::new(), "2099-01-01T00:00:00Z")
        .exit(1)
        .has("SLO-UNKNOWN")
        .has("in the future");
    // The org may widen the window in relgate.yaml.
    let repo = Repo::new();
    repo.file(
        "relgate.yaml",
        format!("{CONFIG_HEAD}error_budget:\n  reading_files:\n    max_age_minutes: 60\n"),
    );
    slo_file_release(&repo, "2026-11-27T11:40:00Z").exit(0);
}

// ---------------------------------------------------------------------------------------------
// Prometheus: only where the config allows, no redirects away, no bodies in reports.

#[test]
fn prometheus_url_outside_the_allowlist_is_a_finding_and_never_requested() {
    let server = FakeServer::start(healthy);
    // Allowed: the control.
    let repo = Repo::new();
    repo.file("relgate.yaml", allow(&[&server.url]))
        .file("releases/r.yaml", prometheus_release(&server.url, ""));
    check(&repo, &[]).exit(0);
    let asked = server.hits();
    assert_eq!(asked, 2, "the allowed server answers budget and alerts");

    let port = server.url.rsplit(':').next().expect("port").to_string();
    // No allowlist at all: refused, and the release (even with on_unknown: warn, which the PR
    // author writes) is blocked.
    let repo = Repo::new();
    repo.file(
        "releases/r.yaml",
        prometheus_release(&server.url, "      on_unknown: warn\n"),
    );
    check(&repo, &[])
        .exit(1)
        .has("SLO-UNKNOWN")
        .has("error_budget.prometheus.allowed_urls");
    // Spellings that a string-prefix comparison would let through, each to the same server.
    let allowed_elsewhere = "http://127.0.0.1:1/prom";
    for url in [
        format!("http://127.0.0.1:1@127.0.0.1:{port}/prom"),
        format!("http://127.0.0.1:1/prom@127.0.0.1:{port}/"),
        format!("http://127.0.0.1:{port}/prom"),
        format!("http://localhost:{port}/prom"),
    ] {
        let repo = Repo::new();
        repo.file("relgate.yaml", allow(&[allowed_elsewhere]))
            .file("releases/r.yaml", prometheus_release(&url, ""));
        check(&repo, &[])
            .exit(1)
            .has("SLO-UNKNOWN")
            .has("is not in error_budget.prometheus.allowed_urls");
    }
    // A path prefix is matched by whole segments.
    let repo = Repo::new();
    repo.file("relgate.yaml", allow(&[&format!("{}/prom", server.url)]))
        .file(
            "releases/r.yaml",
            prometheus_release(&format!("{}/prometheus-other", server.url), ""),
        );
    check(&repo, &[]).exit(1).has("SLO-UNKNOWN");
    assert_eq!(server.hits(), asked, "a refused URL is never requested");
}

#[test]
fn redirect_off_the_allowed_urls_is_not_followed() {
    // The allowed URL redirects to another local service that says all is well.
    let elsewhere = FakeServer::start(healthy);
    let target = format!("{}/api/v1/query", elsewhere.url);
    let allowed = FakeServer::start(move |_, query| Reply::Redirect {
        status: 302,
        location: format!("{target}?query={query}"),
    });
    let repo = Repo::new();
    repo.file("relgate.yaml", allow(&[&allowed.url]))
        .file("releases/r.yaml", prometheus_release(&allowed.url, ""));
    check(&repo, &[])
        .exit(1)
        .has("SLO-UNKNOWN")
        .has("HTTP 302")
        .has("redirect");
    assert_eq!(elsewhere.hits(), 0, "the redirect target was requested");
}

#[test]
fn response_bodies_never_reach_a_report() {
    for case in 0..5 {
        let server = FakeServer::start(move |_, _| secret_reply(case));
        let repo = Repo::new();
        repo.file("relgate.yaml", allow(&[&server.url])).file(
            "releases/r.yaml",
            release(&format!(
                "  slo:\n    - name: availability\n      source:\n        prometheus: {{url: \"{}\", query: budget}}\n",
                server.url
            )),
        );
        for format in ["markdown", "text", "json", "github"] {
            check(&repo, &["--format", format])
                .exit(1)
                .has("SLO-UNKNOWN")
                .lacks(SECRET);
        }
    }
}

const SECRET: &str = "s3cr3t-internal-token";

/// Answers that carry [`SECRET`] in their body: an error page, HTML, text, a Prometheus error
/// message, series labels.
fn secret_reply(case: usize) -> Reply {
    match case {
        0 => Reply::status(500, "text/plain", format!("boom {SECRET}")),
        1 => Reply::status(200, "text/html", format!("<html>{SECRET}</html>")),
        2 => Reply::status(200, "text/plain", format!("not json {SECRET}")),
        3 => Reply::status(
            400,
            "application/json",
            format!(r#"{{"status":"error","errorType":"bad_data","error":"{SECRET}"}}"#),
        ),
        _ => Reply::json(format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{"k":"{SECRET}"}},"value":[1,"1"]}},{{"metric":{{"k":"2"}},"value":[1,"1"]}}]}}}}"#
        )),
    }
}

#[test]
fn prometheus_warnings_are_not_proof_that_no_alert_fires() {
    let server = FakeServer::start(|_, query| {
        if query == "budget" {
            Reply::json(vector(&["0.9"]))
        } else {
            Reply::json(
                r#"{"status":"success","data":{"resultType":"vector","result":[]},"warnings":["partial response: store 10.0.0.7 unreachable"]}"#,
            )
        }
    });
    let repo = Repo::new();
    repo.file("relgate.yaml", allow(&[&server.url]))
        .file("releases/r.yaml", prometheus_release(&server.url, ""));
    check(&repo, &[]).exit(1).has("SLO-UNKNOWN").has("warnings");
}
