//! Error-budget gate end to end: `relgate check` on temporary repositories against a real
//! Prometheus (TSDB built with promtool), plus failure modes against local servers the tests
//! script (refused connections, silence, 5xx then success, bodies that are not what Prometheus
//! sends).

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use relgate::evidence::slo::{self, Options};
use relgate::workspace::GateRoot;
use support::fake_http::{self, FakeServer, Reply};
use support::prometheus::{family, Prometheus, SAMPLE_NOW};

const BUDGET: &str = "slo:period_error_budget_remaining:ratio";

fn budget_query(service: &str) -> String {
    format!(r#"{BUDGET}{{sloth_service="{service}",sloth_slo="requests-availability"}}"#)
}

fn page_query(service: &str) -> String {
    format!(r#"ALERTS{{alertstate="firing",sloth_service="{service}",sloth_severity="page"}}"#)
}

/// The Pyrra convention (docs/error-budget.md): remaining = 1 - (1 - availability) / (1 - objective).
fn pyrra_query(slo: &str) -> String {
    format!(
        r#"1 - (1 - pyrra_availability{{slo="{slo}"}}) / on (slo) (1 - pyrra_objective{{slo="{slo}"}})"#
    )
}

/// One Prometheus for the whole file (its watchdog stops it when the test process exits).
fn prometheus() -> &'static Prometheus {
    static SERVER: OnceLock<Prometheus> = OnceLock::new();
    SERVER.get_or_init(|| {
        let slo = r#"sloth_slo="requests-availability""#;
        let budget = |service: &str, value: &'static str| (format!(r#"sloth_service="{service}",{slo}"#), value);
        let budgets = [
            budget("healthy", "0.6"),
            budget("exhausted", "-0.2"),
            budget("low", "0.1"),
            budget("paging", "0.7"),
            budget("nan", "NaN"),
        ];
        let mut budget_series: Vec<(String, String)> =
            budgets.iter().map(|(l, v)| (l.clone(), (*v).to_string())).collect();
        // Two series for one service: a query naming only the service matches both.
        budget_series.push((r#"sloth_service="twin",sloth_slo="a""#.to_string(), "0.5".to_string()));
        budget_series.push((r#"sloth_service="twin",sloth_slo="b""#.to_string(), "0.4".to_string()));
        let mut budget_family = family(BUDGET, &[]);
        budget_family.series = budget_series;
        Prometheus::start(&[
            budget_family,
            family(
                "ALERTS",
                &[
                    (
                        r#"alertname="PagingHighErrorRate",alertstate="firing",sloth_service="paging",sloth_severity="page",sloth_slo="requests-availability""#,
                        "1",
                    ),
                    // Pending and ticket alerts of the healthy service must not block.
                    (
                        r#"alertname="HealthyHighErrorRate",alertstate="pending",sloth_service="healthy",sloth_severity="page",sloth_slo="requests-availability""#,
                        "1",
                    ),
                    (
                        r#"alertname="HealthyHighErrorRate",alertstate="firing",sloth_service="healthy",sloth_severity="ticket",sloth_slo="requests-availability""#,
                        "1",
                    ),
                ],
            ),
            family(
                "pyrra_availability",
                &[(r#"slo="pyrra-ok""#, "0.9995"), (r#"slo="pyrra-burnt""#, "0.998")],
            ),
            family("pyrra_objective", &[(r#"slo="pyrra-ok""#, "0.999"), (r#"slo="pyrra-burnt""#, "0.999")]),
        ])
    })
}

// ---------------------------------------------------------------------------------------------
// Temporary repositories and `relgate check`.

struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("relgate.yaml"),
            "apiVersion: relgate.dev/v1\nkind: GateConfig\n",
        )
        .expect("write relgate.yaml");
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Lets manifests query Prometheus at `url` (error_budget.prometheus.allowed_urls).
    fn allow(&self, url: &str) {
        self.write("relgate.yaml", &allow_config(url));
    }

    fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, text).expect("write");
        path
    }

    /// `relgate check --format json ARGS` in the repo: (exit code, report).
    fn check(&self, args: &[&str]) -> (i32, Value) {
        let output = Command::new(crate::support::relgate_bin())
            .arg("check")
            .args(["--format", "json"])
            .args(args)
            .current_dir(self.path())
            .env("RELGATE_NOW", SAMPLE_NOW)
            .env("NO_COLOR", "1")
            .output()
            .expect("run relgate");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let report = serde_json::from_str(&stdout).unwrap_or_else(|err| {
            panic!(
                "relgate printed no JSON report ({err}):\nstdout: {stdout}\nstderr: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        (output.status.code().unwrap_or(-1), report)
    }
}

/// A relgate.yaml allowing Prometheus at `url` (and nothing else).
fn allow_config(url: &str) -> String {
    format!(
        "apiVersion: relgate.dev/v1\nkind: GateConfig\nerror_budget:\n  prometheus:\n    allowed_urls: [\"{url}\"]\n"
    )
}

/// [`slo::gather_blocking`] with every Prometheus URL the manifests name allowed: these tests
/// are about asking Prometheus; which URLs may be asked is tested in tests/it/hostile/evidence.rs.
fn gather_allowing(root: &GateRoot, manifests: &[&Value], options: &Options) -> Vec<Value> {
    let mut options = options.clone();
    for manifest in manifests {
        for entry in manifest["spec"]["slo"].as_array().into_iter().flatten() {
            if let Some(url) = entry
                .pointer("/source/prometheus/url")
                .and_then(Value::as_str)
            {
                options
                    .allowed_urls
                    .push(slo::AllowedUrl::parse(url).expect("a test URL"));
            }
        }
    }
    // The JSON the policy input holds, so these tests read what policies read.
    slo::gather_blocking(root, manifests, &options)
        .iter()
        .map(|readings| slo::to_value(readings))
        .collect()
}

/// A production tier-1 PromptRelease that passes every other built-in rule, with `slo` (YAML
/// list items, indented by 4) as its spec.slo.
fn manifest(name: &str, change_type: &str, slo: &str) -> String {
    let slo_block = if slo.trim().is_empty() {
        String::new()
    } else {
        format!("  slo:\n{slo}")
    };
    format!(
        r#"apiVersion: relgate.dev/v1
kind: PromptRelease
metadata:
  name: {name}
  version: "17"
  service: support-bot
  environment: production
  tier: 1
  change_type: {change_type}
spec:
  owner: {{team: assistants, contact: dana@example.com, oncall: https://pagerduty.example.com/schedules/P1}}
  prompt:
    registry: langfuse
    path: prompts/answer.prompt
    digest: sha256:5d41402abc4b2a76b9719d911017c592aaf8c9e2d9c3a1f2b6a41c4bd7e8f0a1
    baseline: {{version: "15"}}
  rollout: {{strategy: canary, steps: [5, 25, 50, 100], bake_minutes: 30}}
  rollback: {{to_version: "15", max_minutes: 5, automated: true}}
  prr:
    PRR-OWN-01: {{status: done, evidence: https://wiki.example.com/owners}}
    PRR-OPS-01: {{status: done, evidence: https://wiki.example.com/runbook}}
    PRR-OPS-02: {{status: done, evidence: https://wiki.example.com/rollback-drill}}
    PRR-MON-01: {{status: done, evidence: https://grafana.example.com/d/slo}}
    PRR-EVAL-01: {{status: done, evidence: https://ci.example.com/evals/17}}
    PRR-EVAL-02: {{status: done, evidence: https://ci.example.com/evals/17/slices}}
    PRR-SEC-01: {{status: done, evidence: https://wiki.example.com/redteam}}
    PRR-PRIV-01: {{status: done, evidence: https://wiki.example.com/dpia}}
  logging:
    content_capture: false
    redaction: {{enabled: true, engine: presidio, entities: [PERSON, EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD]}}
    sinks:
      - {{name: langfuse, region: eu-west-1, data_classes: [trace_metadata], retention_days: 30}}
{slo_block}"#
    )
}

/// A `spec.slo` item reading Prometheus at `url`.
fn prom_slo(name: &str, url: &str, query: &str, alerts: &[String], extra: &str) -> String {
    let alerts: Vec<String> = alerts.iter().map(|a| format!("'{a}'")).collect();
    format!(
        "    - name: {name}\n      source:\n        prometheus: {{url: \"{url}\", query: '{query}'}}\n      min_remaining: 0.05\n      warn_below: 0.25\n      block_on_alerts: [{}]\n{extra}",
        alerts.join(", ")
    )
}

fn results(report: &Value) -> &Vec<Value> {
    report["results"].as_array().expect("results")
}

fn findings<'a>(report: &'a Value, rule: &str) -> Vec<&'a Value> {
    results(report)
        .iter()
        .flat_map(|r| r["findings"].as_array().into_iter().flatten())
        .filter(|f| f["rule"] == rule)
        .collect()
}

fn only<'a>(report: &'a Value, rule: &str) -> &'a Value {
    let found = findings(report, rule);
    assert_eq!(found.len(), 1, "expected one {rule} finding in {report:#}");
    found[0]
}

fn assert_contains(text: &Value, parts: &[&str]) {
    let text = text.as_str().expect("text");
    for part in parts {
        assert!(text.contains(part), "`{part}` not in: {text}");
    }
}

// ---------------------------------------------------------------------------------------------
// Against a real Prometheus.

#[test]
fn healthy_budget_and_quiet_alerts_pass() {
    let prom = prometheus();
    let repo = Repo::new();
    repo.allow(&prom.url);
    let slo = prom_slo(
        "availability",
        &prom.url,
        &budget_query("healthy"),
        &[page_query("healthy")],
        "",
    );
    repo.write(
        "releases/answer.yaml",
        &manifest("support-answer", "feature", &slo),
    );
    let (code, report) = repo.check(&["releases/answer.yaml"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["decision"], "pass");
    assert_eq!(results(&report)[0]["findings"], json!([]), "{report:#}");
}

#[test]
fn exhausted_budget_blocks_a_feature_release() {
    let prom = prometheus();
    let repo = Repo::new();
    repo.allow(&prom.url);
    let query = budget_query("exhausted");
    let slo = prom_slo("availability", &prom.url, &query, &[], "");
    repo.write(
        "releases/answer.yaml",
        &manifest("support-answer", "feature", &slo),
    );
    let (code, report) = repo.check(&["releases/answer.yaml"]);
    assert_eq!(code, 1, "{report:#}");
    let finding = only(&report, "SLO-BUDGET-EXHAUSTED");
    assert_eq!(finding["severity"], "deny");
    assert_eq!(finding["path"], "spec.slo[0].min_remaining");
    assert_contains(
        &finding["message"],
        &[
            "remaining -0.2",
            "min_remaining 0.05",
            &query,
            "at 2026-01-01T00:00:00Z",
        ],
    );
    // the line of min_remaining in the manifest
    let text = manifest("support-answer", "feature", &slo);
    let line = text
        .lines()
        .position(|l| l.contains("min_remaining"))
        .expect("line")
        + 1;
    assert_eq!(finding["line"], json!(line));
}

#[test]
fn exhausted_budget_warns_for_an_exempt_change() {
    let prom = prometheus();
    let repo = Repo::new();
    repo.allow(&prom.url);
    let slo = prom_slo(
        "availability",
        &prom.url,
        &budget_query("exhausted"),
        &[],
        "",
    );
    repo.write(
        "releases/answer.yaml",
        &manifest("support-answer", "security_fix", &slo),
    );
    let (code, report) = repo.check(&["releases/answer.yaml"]);
    assert_eq!(code, 0, "{report:#}");
    let finding = only(&report, "SLO-BUDGET-EXHAUSTED");
    assert_eq!(finding["severity"], "warn");
    assert_contains(
        &finding["message"],
        &["change_type security_fix is exempt", "-0.2"],
    );
}

#[test]
fn low_budget_warns_and_fails_with_fail_on_warn() {
    let prom = prometheus();
    let repo = Repo::new();
    repo.allow(&prom.url);
    let query = budget_query("low");
    let slo = prom_slo("availability", &prom.url, &query, &[], "");
    repo.write(
        "releases/answer.yaml",
        &manifest("support-answer", "feature", &slo),
    );
    let (code, report) = repo.check(&["releases/answer.yaml"]);
    assert_eq!(code, 0, "{report:#}");
    let finding = only(&report, "SLO-BUDGET-LOW");
    assert_eq!(finding["severity"], "warn");
    assert_eq!(finding["path"], "spec.slo[0].warn_below");
    assert_contains(
        &finding["message"],
        &["remaining 0.1", "warn_below 0.25", &query],
    );
    let (code, _) = repo.check(&["--fail-on-warn", "releases/answer.yaml"]);
    assert_eq!(code, 1);
}

#[test]
fn firing_page_alert_blocks() {
    let prom = prometheus();
    let repo = Repo::new();
    repo.allow(&prom.url);
    let alert = page_query("paging");
    let slo = prom_slo(
        "availability",
        &prom.url,
        &budget_query("paging"),
        &[page_query("healthy"), alert.clone()],
        "",
    );
    repo.write(
        "releases/answer.yaml",
        &manifest("support-answer", "feature", &slo),
    );
    let (code, report) = repo.check(&["releases/answer.yaml"]);
    assert_eq!(code, 1, "{report:#}");
    let finding = only(&report, "SLO-ALERT-FIRING");
    assert_eq!(finding["severity"], "deny");
    assert_eq!(finding["path"], "spec.slo[0].block_on_alerts[1]");
    assert_contains(
        &finding["message"],
        &[&alert, "1 firing series", "2026-01-01T00:00:00Z"],
    );

    // The rollback for that incident is not blocked by it, and says so.
    repo.write(
        "releases/answer.yaml",
        &manifest("support-answer", "rollback", &slo),
    );
    let (code, report) = repo.check(&["releases/answer.yaml"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(only(&report, "SLO-ALERT-FIRING")["severity"], "warn");
}

#[test]
fn unusable_answers_are_unknown() {
    let prom = prometheus();
    let repo = Repo::new();
    repo.allow(&prom.url);
    let slo = [
        prom_slo(
            "empty",
            &prom.url,
            &budget_query("no-such-service"),
            &[],
            "",
        ),
        prom_slo("nan", &prom.url, &budget_query("nan"), &[], ""),
        prom_slo(
            "twins",
            &prom.url,
            &format!(r#"{BUDGET}{{sloth_service="twin"}}"#),
            &[],
            "",
        ),
        prom_slo("scalar", &prom.url, "scalar(vector(0.5))", &[], ""),
        prom_slo("bad-promql", &prom.url, "sum(", &[], ""),
        prom_slo(
            "range",
            &prom.url,
            &format!("{}[5m]", budget_query("healthy")),
            &[],
            "",
        ),
    ]
    .concat();
    repo.write(
        "releases/answer.yaml",
        &manifest("support-answer", "feature", &slo),
    );
    let (code, report) = repo.check(&["releases/answer.yaml"]);
    assert_eq!(code, 1, "{report:#}");
    let unknown = findings(&report, "SLO-UNKNOWN");
    assert_eq!(unknown.len(), 6, "{report:#}");
    let message = |i: usize| {
        let path = format!("spec.slo[{i}].source");
        let f = unknown
            .iter()
            .find(|f| f["path"] == path.as_str())
            .expect("finding for entry");
        assert_eq!(f["severity"], "deny");
        f["message"].as_str().expect("message").to_string()
    };
    assert!(message(0).contains("no series"), "{}", message(0));
    assert!(
        message(1).contains("NaN, not a finite number"),
        "{}",
        message(1)
    );
    assert!(
        message(2).contains("2 series where one was expected"),
        "{}",
        message(2)
    );
    assert!(message(3).contains("got a scalar"), "{}", message(3));
    assert!(
        message(4).contains("HTTP 400") && message(4).contains("bad_data"),
        "{}",
        message(4)
    );
    assert!(message(5).contains("got a matrix"), "{}", message(5));
}

#[test]
fn on_unknown_warn_releases_with_a_warning() {
    let prom = prometheus();
    let repo = Repo::new();
    repo.allow(&prom.url);
    let slo = prom_slo(
        "nan",
        &prom.url,
        &budget_query("nan"),
        &[],
        "      on_unknown: warn\n",
    );
    repo.write(
        "releases/answer.yaml",
        &manifest("support-answer", "feature", &slo),
    );
    let (code, report) = repo.check(&["releases/answer.yaml"]);
    assert_eq!(code, 0, "{report:#}");
    let finding = only(&report, "SLO-UNKNOWN");
    assert_eq!(finding["severity"], "warn");
    assert_contains(&finding["message"], &["NaN", "on_unknown is warn"]);
}

#[test]
fn offline_makes_prometheus_slos_unknown() {
    let prom = prometheus();
    let repo = Repo::new();
    repo.allow(&prom.url);
    let slo = prom_slo(
        "availability",
        &prom.url,
        &budget_query("healthy"),
        &[page_query("healthy")],
        "",
    );
    repo.write(
        "releases/answer.yaml",
        &manifest("support-answer", "feature", &slo),
    );
    let (code, report) = repo.check(&["--offline", "releases/answer.yaml"]);
    assert_eq!(code, 1, "{report:#}");
    assert_contains(
        &only(&report, "SLO-UNKNOWN")["message"],
        &["--offline", &budget_query("healthy")],
    );
}

#[test]
fn missing_slo_blocks_production_tier_1_only() {
    let repo = Repo::new();
    repo.write(
        "releases/answer.yaml",
        &manifest("support-answer", "feature", ""),
    );
    let (code, report) = repo.check(&["releases/answer.yaml"]);
    assert_eq!(code, 1, "{report:#}");
    let finding = only(&report, "SLO-MISSING");
    assert_eq!(finding["path"], "spec.slo");
    assert_contains(&finding["message"], &["production tier 1"]);

    repo.write(
        "releases/answer.yaml",
        &manifest("support-answer", "feature", "").replace("  tier: 1\n", "  tier: 2\n"),
    );
    let (_, report) = repo.check(&["releases/answer.yaml"]);
    assert!(findings(&report, "SLO-MISSING").is_empty(), "{report:#}");
}

#[test]
fn pyrra_remaining_budget_expression() {
    let prom = prometheus();
    let repo = Repo::new();
    repo.allow(&prom.url);
    let ok = prom_slo("pyrra-ok", &prom.url, &pyrra_query("pyrra-ok"), &[], "");
    repo.write("releases/ok.yaml", &manifest("ok", "feature", &ok));
    let burnt = prom_slo(
        "pyrra-burnt",
        &prom.url,
        &pyrra_query("pyrra-burnt"),
        &[],
        "",
    );
    repo.write("releases/burnt.yaml", &manifest("burnt", "feature", &burnt));
    let (code, report) = repo.check(&["releases"]);
    assert_eq!(code, 1, "{report:#}");
    let by_name = |name: &str| {
        results(&report)
            .iter()
            .find(|r| r["name"] == name)
            .expect("result")
            .clone()
    };
    assert_eq!(by_name("ok")["decision"], "pass", "{report:#}");
    let finding = only(&report, "SLO-BUDGET-EXHAUSTED");
    // 1 - (1 - 0.998) / (1 - 0.999) = -1 (up to rounding)
    assert_contains(&finding["message"], &["remaining -1", "pyrra_availability"]);
    assert_eq!(by_name("burnt")["decision"], "fail");
}

#[test]
fn file_source_reads_a_saved_api_response() {
    let prom = prometheus();
    let repo = Repo::new();
    // What `curl .../api/v1/query?query=...&time=... > file.json` saves.
    repo.write(
        "slo/healthy.json",
        &prom.query_body(&budget_query("healthy")),
    );
    repo.write(
        "slo/exhausted.json",
        &prom.query_body(&budget_query("exhausted")),
    );
    let file_slo = |name: &str, path: &str| {
        format!("    - name: {name}\n      source:\n        file: {{path: {path}}}\n      min_remaining: 0.05\n")
    };
    repo.write(
        "releases/healthy.yaml",
        &manifest("healthy", "feature", &file_slo("a", "slo/healthy.json")),
    );
    repo.write(
        "releases/exhausted.yaml",
        &manifest("exhausted", "feature", &file_slo("b", "slo/exhausted.json")),
    );
    repo.write(
        "releases/absent.yaml",
        &manifest("absent", "feature", &file_slo("c", "slo/absent.json")),
    );
    repo.write(
        "releases/outside.yaml",
        &manifest("outside", "feature", &file_slo("d", "../outside.json")),
    );
    // A symlink out of the gate root: the schema cannot see it, the reader refuses it.
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let target = elsewhere.path().join("status.json");
    std::fs::write(&target, prom.query_body(&budget_query("healthy"))).expect("write");
    std::os::unix::fs::symlink(&target, repo.path().join("slo/escape.json")).expect("symlink");
    repo.write(
        "releases/escape.yaml",
        &manifest("escape", "feature", &file_slo("e", "slo/escape.json")),
    );
    let (code, report) = repo.check(&["releases"]);
    assert_eq!(code, 1, "{report:#}");
    let of = |name: &str| {
        results(&report)
            .iter()
            .find(|r| r["name"] == name)
            .expect("result")
            .clone()
    };
    assert_eq!(of("healthy")["decision"], "pass", "{report:#}");
    let exhausted = of("exhausted");
    assert_eq!(exhausted["findings"][0]["rule"], "SLO-BUDGET-EXHAUSTED");
    assert_contains(
        &exhausted["findings"][0]["message"],
        &["-0.2", "2026-01-01T00:00:00Z"],
    );
    let absent = of("absent");
    assert_eq!(absent["findings"][0]["rule"], "SLO-UNKNOWN");
    assert_contains(
        &absent["findings"][0]["message"],
        &["slo/absent.json: no such file"],
    );
    // `..` is refused by the manifest schema before anything is read...
    let outside = of("outside");
    assert_eq!(outside["findings"][0]["rule"], "SCHEMA", "{report:#}");
    assert_eq!(
        outside["findings"][0]["path"],
        "spec.slo[0].source.file.path"
    );
    // ...and a symlink that leaves the gate root by the reader.
    let escape = of("escape");
    assert_eq!(escape["findings"][0]["rule"], "SLO-UNKNOWN", "{report:#}");
    assert_contains(&escape["findings"][0]["message"], &["leaves the gate root"]);
}

#[test]
fn file_source_relgate_reading_with_alerts() {
    let prom = prometheus();
    let repo = Repo::new();
    let alert = page_query("paging");
    let reading = json!({
        "time": SAMPLE_NOW,
        "remaining": {"query": budget_query("paging"), "value": 0.7},
        "alerts": [{"query": alert, "response": serde_json::from_str::<Value>(&prom.query_body(&alert)).expect("json")}],
    });
    repo.write("slo/paging.json", &reading.to_string());
    let slo = format!(
        "    - name: availability\n      source:\n        file: {{path: slo/paging.json}}\n      block_on_alerts: ['{alert}']\n"
    );
    repo.write(
        "releases/answer.yaml",
        &manifest("support-answer", "feature", &slo),
    );
    let (code, report) = repo.check(&["releases/answer.yaml"]);
    assert_eq!(code, 1, "{report:#}");
    assert_contains(
        &only(&report, "SLO-ALERT-FIRING")["message"],
        &[&alert, "1 firing series"],
    );
}

#[test]
fn file_source_names_its_query() {
    // `source.file.query` (docs/error-budget.md) is accepted by the schema, reported in the
    // finding, and must equal the query the file names when it names one.
    let repo = Repo::new();
    let saved = budget_query("exhausted");
    repo.write(
        "slo/status.json",
        &json!({"remaining": {"query": saved, "value": -0.2, "time": SAMPLE_NOW}}).to_string(),
    );
    let slo = |query: &str| {
        format!("    - name: availability\n      source:\n        file:\n          path: slo/status.json\n          query: '{query}'\n      min_remaining: 0.05\n")
    };
    repo.write(
        "releases/same.yaml",
        &manifest("same", "feature", &slo(&saved)),
    );
    let other = budget_query("healthy");
    repo.write(
        "releases/other.yaml",
        &manifest("other", "feature", &slo(&other)),
    );
    let (code, report) = repo.check(&["releases"]);
    assert_eq!(code, 1, "{report:#}");
    assert!(findings(&report, "SCHEMA").is_empty(), "{report:#}");
    let of = |name: &str| {
        results(&report)
            .iter()
            .find(|r| r["name"] == name)
            .expect("result")
            .clone()
    };
    let same = of("same");
    assert_eq!(
        same["findings"][0]["rule"], "SLO-BUDGET-EXHAUSTED",
        "{report:#}"
    );
    assert_contains(&same["findings"][0]["message"], &[&saved, "-0.2"]);
    let other_result = of("other");
    assert_eq!(
        other_result["findings"][0]["rule"], "SLO-UNKNOWN",
        "{report:#}"
    );
    assert_contains(
        &other_result["findings"][0]["message"],
        &["the file's reading is for query", &saved, &other],
    );
}

#[test]
fn readings_have_the_documented_shape() {
    let prom = prometheus();
    let root = GateRoot::at(&std::env::temp_dir()).expect("root");
    let manifest = json!({"spec": {"slo": [{
        "name": "availability",
        "source": {"prometheus": {"url": prom.url, "query": budget_query("healthy")}},
        "block_on_alerts": [page_query("healthy"), page_query("paging")],
    }]}});
    let options = Options {
        time: Some(SAMPLE_NOW.to_string()),
        ..Options::default()
    };
    let readings = gather_allowing(&root, &[&manifest], &options);
    assert_eq!(
        readings,
        vec![json!([{
            "name": "availability",
            "index": 0,
            "source": "prometheus",
            "remaining": {"query": budget_query("healthy"), "url": prom.url, "time": SAMPLE_NOW, "value": 0.6, "error": null},
            "alerts": [
                {"query": page_query("healthy"), "url": prom.url, "time": SAMPLE_NOW, "firing": false, "series": 0, "error": null},
                {"query": page_query("paging"), "url": prom.url, "time": SAMPLE_NOW, "firing": true, "series": 1, "error": null},
            ],
            "status": "ok",
        }])]
    );
}

/// The `$defs/sloReading` validator of `schemas/input.schema.json` (the file users read).
fn slo_reading_schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/input.schema.json"),
    )
    .expect("input schema");
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    // `evidence.slo.items` must name the definition, so the check below is the contract's.
    assert_eq!(
        schema["properties"]["evidence"]["properties"]["slo"]["items"]["$ref"],
        "#/$defs/sloReading"
    );
    let wrapper = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": schema["$defs"],
        "$ref": "#/$defs/sloReading",
    });
    jsonschema::draft202012::new(&wrapper).expect("schema compiles")
}

/// Every shape of reading (read from Prometheus, refused, offline, from a file, stale, no
/// source, a bad `block_on_alerts`) is valid against the input schema, and the typed readings
/// read back from the JSON serialize to the same bytes.
#[test]
fn readings_match_the_input_schema_and_round_trip() {
    let prom = prometheus();
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("fresh.json"),
        json!({"time": SAMPLE_NOW, "remaining": {"query": "q", "value": 0.25},
               "alerts": [{"query": "a", "series": 2}]})
        .to_string(),
    )
    .expect("write");
    std::fs::write(
        dir.path().join("stale.json"),
        json!({"time": "2000-01-01T00:00:00Z", "remaining": {"value": 0.25}}).to_string(),
    )
    .expect("write");
    let root = GateRoot::at(dir.path()).expect("root");
    let live = json!({"spec": {"slo": [{
        "name": "availability",
        "source": {"prometheus": {"url": prom.url, "query": budget_query("healthy")}},
        "block_on_alerts": [page_query("paging"), page_query("healthy")],
    }, {
        "name": "with a bad alert",
        "source": {"prometheus": {"url": prom.url, "query": budget_query("healthy")}},
        "block_on_alerts": [""],
    }]}});
    let others = json!({"spec": {"slo": [
        {"name": "fresh", "source": {"file": {"path": "fresh.json", "query": "q"}}, "block_on_alerts": ["a"]},
        {"name": "fresh, one alert unread", "source": {"file": {"path": "fresh.json"}}, "block_on_alerts": ["a", "b"]},
        {"name": "stale", "source": {"file": {"path": "stale.json"}}},
        {"name": "missing", "source": {"file": {"path": "nowhere.json"}}},
        {"name": 7, "source": {}},
        {"source": {"prometheus": {"url": "http://user:pw@127.0.0.1:9/", "query": "q"}}, "block_on_alerts": "ALERTS"},
        "not a mapping",
    ]}});
    let time = Some(SAMPLE_NOW.to_string());
    let mut readings = gather_allowing(
        &root,
        &[&live],
        &Options {
            time: time.clone(),
            ..Options::default()
        },
    );
    // Not allowed: refused, never asked.
    readings.extend(
        slo::gather_blocking(
            &root,
            &[&others],
            &Options {
                time: time.clone(),
                ..Options::default()
            },
        )
        .iter()
        .map(|r| slo::to_value(r)),
    );
    let offline = Options {
        offline: true,
        time,
        allowed_urls: vec![slo::AllowedUrl::parse(&prom.url).expect("url")],
        ..Options::default()
    };
    readings.extend(
        slo::gather_blocking(&root, &[&live], &offline)
            .iter()
            .map(|r| slo::to_value(r)),
    );
    let validator = slo_reading_schema();
    let mut seen = std::collections::BTreeSet::new();
    for reading in readings.iter().flat_map(|r| r.as_array().expect("a list")) {
        let errors: Vec<String> = validator
            .iter_errors(reading)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:?}\n{reading:#}");
        seen.insert(format!(
            "{}/{}/{}",
            reading["source"],
            reading["status"],
            reading.get("refused").is_some()
        ));
        let typed: slo::Reading = serde_json::from_value(reading.clone()).expect("typed");
        assert_eq!(
            serde_json::to_string(&typed).expect("json"),
            reading.to_string(),
            "round trip"
        );
    }
    // The shapes above were all met: a test that validated nothing would prove nothing.
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [
            "\"file\"/\"ok\"/false",
            "\"file\"/\"unknown\"/false",
            "\"offline\"/\"unknown\"/false",
            "\"prometheus\"/\"ok\"/false",
            "\"prometheus\"/\"unknown\"/false",
            "\"prometheus\"/\"unknown\"/true",
            "null/\"unknown\"/false",
        ]
    );
    // Field order is the contract's (and the order the json! values had): what a record or a
    // policy printing `input` shows does not move. A refused reading names the refusal last.
    let keys =
        |v: &Value| -> Vec<String> { v.as_object().expect("object").keys().cloned().collect() };
    for reading in readings.iter().flat_map(|r| r.as_array().expect("a list")) {
        let mut expected = vec!["name", "index", "source", "remaining", "alerts", "status"];
        if reading["status"] == "unknown" {
            expected.push("reason");
        }
        if reading.get("refused").is_some() {
            expected.push("refused");
        }
        assert_eq!(keys(reading), expected, "{reading}");
        let origin: Vec<&str> = ["url", "file"]
            .into_iter()
            .filter(|k| reading["remaining"].get(*k).is_some())
            .collect();
        let with = |tail: &[&'static str]| -> Vec<String> {
            ["query"]
                .iter()
                .chain(origin.iter())
                .chain(tail.iter())
                .map(|k| k.to_string())
                .collect()
        };
        assert_eq!(
            keys(&reading["remaining"]),
            with(&["time", "value", "error"])
        );
        for alert in reading["alerts"].as_array().expect("alerts") {
            assert_eq!(keys(alert), with(&["time", "firing", "series", "error"]));
        }
    }
    // A reading that breaks the contract is caught: the schema is not `{}`.
    let mut bad = readings[0][0].clone();
    bad["remaining"]["value"] = json!("0.6");
    assert!(!validator.is_valid(&bad), "{bad}");
    bad = readings[0][0].clone();
    bad["status"] = json!("fine");
    assert!(!validator.is_valid(&bad), "{bad}");
}

// ---------------------------------------------------------------------------------------------
// The demo (examples/demo) against a real Prometheus.
//
// The demo's SLOs read saved Prometheus answers (`source.file`, files under `slo/`) so that its
// quick start needs no server. Here the demo is copied, every file source is rewritten to
// `source.prometheus` with the same query, Prometheus is seeded with the series the saved
// answers hold (plus alerts the queries must not match), and both copies are checked at the
// time the answers were saved: the decisions, the findings and the SLO readings must be the same.

/// Alerts in the demo's Prometheus that the demo's `block_on_alerts` queries must not match: a
/// ticket-severity burn alert of hotel-search, and a page of a service no release names.
const DEMO_OTHER_ALERTS: [&str; 2] = [
    r#"alertname="RankingLatencyBudgetBurn",alertstate="firing",sloth_id="hotel-search-ranking-latency",sloth_service="hotel-search",sloth_severity="ticket",sloth_slo="ranking-latency""#,
    r#"alertname="PointsAccrualAvailabilityBudgetBurn",alertstate="firing",sloth_id="loyalty-points-accrual-availability",sloth_service="loyalty-points",sloth_severity="page",sloth_slo="accrual-availability""#,
];

fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.expect("walk");
        let target = to.join(entry.path().strip_prefix(from).expect("inside"));
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// The manifest files under `releases/`, sorted.
fn demo_manifests(root: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root.join("releases"))
        .sort_by_file_name()
        .into_iter()
        .map(|e| e.expect("walk").into_path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("yaml"))
        .collect()
}

/// An SLO entry of the demo that reads a file: the file and the query it answers.
struct SavedSource {
    path: String,
    query: String,
}

/// Rewrites every `file: {path, query}` SLO source of the manifests under `root/releases` into
/// `prometheus: {url, query}`, line for line (so findings keep their lines).
fn rewrite_file_sources(root: &Path, url: &str) -> Vec<SavedSource> {
    let mut found = Vec::new();
    for manifest in demo_manifests(root) {
        let text = std::fs::read_to_string(&manifest).expect("read manifest");
        let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
        for i in 0..lines.len().saturating_sub(2) {
            if lines[i].trim() != "file:" {
                continue;
            }
            let (path_line, query_line) = (lines[i + 1].clone(), lines[i + 2].clone());
            let path = path_line
                .trim()
                .strip_prefix("path: ")
                .expect("`path:` follows `file:`");
            let query = query_line
                .trim()
                .strip_prefix("query: '")
                .and_then(|q| q.strip_suffix('\''))
                .expect("`query: '...'` follows the path");
            let indent = |line: &str| line[..line.len() - line.trim_start().len()].to_string();
            lines[i] = format!("{}prometheus:", indent(&lines[i]));
            lines[i + 1] = format!("{}url: {url}", indent(&path_line));
            found.push(SavedSource {
                path: path.to_string(),
                query: query.to_string(),
            });
        }
        std::fs::write(&manifest, lines.join("\n")).expect("write manifest");
    }
    found
}

/// The series of a saved `/api/v1/query` vector answer, as (metric name, labels, value), and
/// the time of each sample into `times`.
fn saved_series(answer: &Value, series: &mut Vec<(String, String, String)>, times: &mut Vec<i64>) {
    assert_eq!(answer["status"], "success", "{answer}");
    for one in answer["data"]["result"].as_array().expect("a vector") {
        let metric = one["metric"].as_object().expect("metric labels");
        let name = metric["__name__"].as_str().expect("__name__");
        let labels: Vec<String> = metric
            .iter()
            .filter(|(k, _)| *k != "__name__")
            .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().expect("label value")))
            .collect();
        let value = one["value"][1].as_str().expect("sample value");
        times.push(one["value"][0].as_i64().expect("whole-second sample time"));
        series.push((name.to_string(), labels.join(","), value.to_string()));
    }
}

/// `relgate check --format json ARGS` in `dir` at `now`: (exit code, report).
fn check_at(dir: &Path, now: &str, args: &[&str]) -> (i32, Value) {
    let output = Command::new(crate::support::relgate_bin())
        .arg("check")
        .args(["--format", "json"])
        .args(args)
        .current_dir(dir)
        .env("RELGATE_NOW", now)
        .env("NO_COLOR", "1")
        .output()
        .expect("run relgate");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|err| {
        panic!(
            "relgate printed no JSON report ({err}):\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), report)
}

/// The SLO readings relgate gathers for every manifest document of the demo copy at `root`.
fn demo_readings(root: &Path, now: &str) -> Vec<Value> {
    let gate_root = GateRoot::at(root).expect("gate root");
    let mut documents = Vec::new();
    for manifest in demo_manifests(root) {
        let shown = manifest
            .strip_prefix(root)
            .expect("inside")
            .display()
            .to_string();
        let source = relgate::manifest::read_limited(&manifest, &shown, 1 << 22).expect("read");
        let parsed = relgate::manifest::parse_documents(&source).expect("parse");
        documents.extend(parsed.into_iter().map(|d| d.value));
    }
    let refs: Vec<&Value> = documents.iter().collect();
    let options = Options {
        time: Some(now.to_string()),
        ..Options::default()
    };
    gather_allowing(&gate_root, &refs, &options)
}

/// A reading without what says where it came from (`source`, and `url` or `file` of each part).
fn reading_content(reading: &Value) -> Value {
    let mut out = reading.clone();
    let object = out.as_object_mut().expect("reading");
    object.remove("source");
    let strip = |part: &mut Value| {
        if let Some(part) = part.as_object_mut() {
            part.remove("url");
            part.remove("file");
        }
    };
    if let Some(remaining) = object.get_mut("remaining") {
        strip(remaining);
    }
    if let Some(Value::Array(alerts)) = object.get_mut("alerts") {
        alerts.iter_mut().for_each(strip);
    }
    out
}

/// A report without the manifests' digests (the two copies' manifests differ in their sources)
/// and the policy digest (it covers the config, whose allowed Prometheus URL differs), and with
/// the gate root's absolute path (which some messages show) replaced by `<root>`.
fn comparable(report: &Value, root: &Path) -> Value {
    let mut text = report.to_string();
    let canonical = root.canonicalize().expect("canonical root");
    for path in [canonical.as_path(), root] {
        let shown = serde_json::to_string(&path.display().to_string()).expect("JSON string");
        text = text.replace(shown.trim_matches('"'), "<root>");
    }
    let mut out: Value = serde_json::from_str(&text).expect("JSON");
    out.as_object_mut().expect("report").remove("policy_digest");
    for result in out["results"].as_array_mut().expect("results") {
        result.as_object_mut().expect("result").remove("digest");
    }
    out
}

/// The Prometheus the demo's relgate.yaml allows.
const DEMO_PROMETHEUS: &str = "http://prometheus.monitoring.kestrel.example:9090";

#[test]
fn demo_decides_alike_on_saved_answers_and_on_a_real_prometheus() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo");
    let saved = tempfile::tempdir().expect("temp dir");
    let live = tempfile::tempdir().expect("temp dir");
    copy_tree(&demo, saved.path());
    copy_tree(&demo, live.path());

    // What the saved answers hold: the series to seed, and when they were read.
    let mut series = Vec::new();
    let mut times = Vec::new();
    let mut saved_at = Vec::new();
    let files: Vec<PathBuf> = walkdir::WalkDir::new(demo.join("slo"))
        .sort_by_file_name()
        .into_iter()
        .map(|e| e.expect("walk").into_path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
        .collect();
    assert!(
        !files.is_empty(),
        "no saved answers under examples/demo/slo"
    );
    for file in &files {
        let reading: Value =
            serde_json::from_slice(&std::fs::read(file).expect("read")).expect("JSON");
        saved_at.push(reading["time"].as_str().expect("time").to_string());
        saved_series(&reading["remaining"], &mut series, &mut times);
        for alert in reading["alerts"].as_array().expect("alerts") {
            saved_series(&alert["response"], &mut series, &mut times);
        }
    }
    saved_at.dedup();
    assert_eq!(
        saved_at.len(),
        1,
        "the answers were saved at different times: {saved_at:?}"
    );
    let now = saved_at[0].clone();
    let last = chrono::DateTime::parse_from_rfc3339(&now)
        .expect("RFC 3339")
        .timestamp();
    assert!(times.iter().all(|t| *t == last), "{times:?} vs {now}");

    let mut families: Vec<support::prometheus::Family<'_>> = Vec::new();
    for (name, labels, value) in &series {
        match families.iter_mut().find(|f| f.name == name.as_str()) {
            Some(family) => family.series.push((labels.clone(), value.clone())),
            None => families.push(support::prometheus::Family {
                name: name.as_str(),
                series: vec![(labels.clone(), value.clone())],
            }),
        }
    }
    let alerts = match families.iter().position(|f| f.name == "ALERTS") {
        Some(i) => i,
        None => {
            families.push(family("ALERTS", &[]));
            families.len() - 1
        }
    };
    for labels in DEMO_OTHER_ALERTS {
        families[alerts]
            .series
            .push((labels.to_string(), "1".to_string()));
    }
    let prom = Prometheus::start_at(&families, last);

    let sources = rewrite_file_sources(live.path(), &prom.url);
    // The demo's config allows its (fictional) Prometheus; allow this one instead.
    let config_path = live.path().join("relgate.yaml");
    let config = std::fs::read_to_string(&config_path).expect("read demo relgate.yaml");
    assert!(
        config.contains(DEMO_PROMETHEUS),
        "the demo config allows {DEMO_PROMETHEUS}"
    );
    std::fs::write(&config_path, config.replace(DEMO_PROMETHEUS, &prom.url))
        .expect("write relgate.yaml");
    assert_eq!(sources.len(), files.len(), "one SLO entry per saved answer");

    // The saved files are what this Prometheus answers to the manifests' queries.
    for source in &sources {
        let reading: Value = serde_json::from_slice(
            &std::fs::read(demo.join(&source.path)).expect("read saved answer"),
        )
        .expect("JSON");
        let asked = |query: &str| -> Value {
            serde_json::from_str(&prom.query_body_at(query, &now)).expect("JSON answer")
        };
        assert_eq!(
            asked(&source.query),
            reading["remaining"],
            "{}",
            source.path
        );
        for alert in reading["alerts"].as_array().expect("alerts") {
            let query = alert["query"].as_str().expect("query");
            assert_eq!(asked(query), alert["response"], "{}: {query}", source.path);
        }
    }

    // The same SLO readings, from a file and from Prometheus.
    let from_files = demo_readings(saved.path(), &now);
    let from_prometheus = demo_readings(live.path(), &now);
    assert_eq!(from_files.len(), from_prometheus.len());
    let mut entries = 0;
    for (file_doc, prom_doc) in from_files.iter().zip(&from_prometheus) {
        let (file_doc, prom_doc) = (
            file_doc.as_array().expect("list"),
            prom_doc.as_array().expect("list"),
        );
        assert_eq!(file_doc.len(), prom_doc.len());
        for (a, b) in file_doc.iter().zip(prom_doc) {
            assert_eq!(a["source"], "file", "{a:#}");
            assert_eq!(b["source"], "prometheus", "{b:#}");
            assert_eq!(a["status"], "ok", "{a:#}");
            assert_eq!(reading_content(a), reading_content(b));
            assert_eq!(b["remaining"]["url"], json!(prom.url));
            entries += 1;
        }
    }
    assert_eq!(entries, files.len());

    // The same decisions and findings.
    let (saved_code, saved_report) = check_at(saved.path(), &now, &["releases"]);
    let (live_code, live_report) = check_at(live.path(), &now, &["releases"]);
    assert_eq!(saved_code, live_code);
    assert_eq!(
        comparable(&saved_report, saved.path()),
        comparable(&live_report, live.path())
    );
    assert!(
        findings(&live_report, "SLO-UNKNOWN").is_empty(),
        "{live_report:#}"
    );
    let rules_of = |name: &str| -> (Value, Vec<Value>) {
        let result = results(&live_report)
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no result for {name}"));
        let rules = result["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .map(|f| f["rule"].clone())
            .collect();
        (result["decision"].clone(), rules)
    };
    assert_eq!(
        rules_of("rebooking-assistant"),
        (json!("fail"), vec![json!("SLO-BUDGET-EXHAUSTED")])
    );
    assert_eq!(
        rules_of("search-ranker"),
        (json!("pass"), vec![json!("SLO-BUDGET-LOW")])
    );
    assert_eq!(
        rules_of("fraud-scorer"),
        (json!("fail"), vec![json!("ROLLOUT-PLAN")])
    );

    // --offline asks nothing: every SLO read from Prometheus is unknown.
    let (_, offline) = check_at(live.path(), &now, &["--offline", "releases"]);
    let unknown = findings(&offline, "SLO-UNKNOWN");
    assert_eq!(unknown.len(), files.len(), "{offline:#}");
    for finding in unknown {
        assert_contains(&finding["message"], &["not queried: --offline"]);
    }
}

// ---------------------------------------------------------------------------------------------
// Failure modes, against servers the tests control.

fn fast() -> Options {
    Options {
        request_timeout: Duration::from_secs(2),
        retries: 2,
        backoff: Duration::from_millis(20),
        time: Some(SAMPLE_NOW.to_string()),
        ..Options::default()
    }
}

fn entry(url: &str, query: &str, alerts: &[&str]) -> Value {
    json!({"spec": {"slo": [{
        "name": "availability",
        "source": {"prometheus": {"url": url, "query": query}},
        "block_on_alerts": alerts,
    }]}})
}

/// The reading of one manifest with one SLO entry.
fn read_one(url: &str, options: &Options) -> Value {
    let root = GateRoot::at(&std::env::temp_dir()).expect("root");
    let manifest = entry(url, "budget", &[]);
    let mut readings = gather_allowing(&root, &[&manifest], options);
    readings.remove(0)[0].clone()
}

fn remaining_error(reading: &Value) -> String {
    assert_eq!(reading["status"], "unknown", "{reading:#}");
    assert_eq!(reading["remaining"]["value"], Value::Null);
    reading["remaining"]["error"]
        .as_str()
        .expect("error")
        .to_string()
}

#[test]
fn connection_refused_is_retried_then_unknown() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let reading = read_one(&format!("http://127.0.0.1:{port}"), &fast());
    let error = remaining_error(&reading);
    assert!(
        error.contains("cannot connect to http://127.0.0.1:"),
        "{error}"
    );
    assert!(error.contains("after 3 attempts"), "{error}");
    assert_eq!(reading["reason"], format!("remaining budget: {error}"));
}

#[test]
fn silent_server_times_out() {
    let server = FakeServer::start(|_, _| Reply::Hang);
    let options = Options {
        request_timeout: Duration::from_millis(300),
        retries: 1,
        ..fast()
    };
    let started = Instant::now();
    let error = remaining_error(&read_one(&server.url, &options));
    assert!(error.contains("no complete answer from"), "{error}");
    assert!(error.contains("within 0.3s (after 2 attempts)"), "{error}");
    assert_eq!(server.hits(), 2);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn overall_deadline_stops_waiting() {
    let server = FakeServer::start(|_, _| Reply::Hang);
    let options = Options {
        request_timeout: Duration::from_secs(30),
        deadline: Some(Duration::from_millis(400)),
        ..fast()
    };
    let started = Instant::now();
    let error = remaining_error(&read_one(&server.url, &options));
    assert!(
        error.contains("overall Prometheus deadline of 0.4s"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn service_unavailable_then_success_is_retried() {
    let server = FakeServer::start(|n, _| {
        if n == 0 {
            Reply::status(503, "text/plain", "overloaded")
        } else {
            Reply::json(fake_http::vector(&["0.42"]))
        }
    });
    let reading = read_one(&server.url, &fast());
    assert_eq!(reading["status"], "ok", "{reading:#}");
    assert_eq!(reading["remaining"]["value"], json!(0.42));
    assert_eq!(reading["remaining"]["time"], SAMPLE_NOW);
    assert_eq!(server.hits(), 2);
}

#[test]
fn persistent_5xx_gives_up_after_the_retries() {
    let server = FakeServer::start(|_, _| Reply::status(502, "text/plain", "bad gateway"));
    let error = remaining_error(&read_one(&server.url, &fast()));
    assert!(error.contains("HTTP 502"), "{error}");
    assert!(error.contains("after 3 attempts"), "{error}");
    assert_eq!(server.hits(), 3);
}

#[test]
fn client_errors_are_not_retried() {
    let server = FakeServer::start(|_, _| {
        Reply::status(
            400,
            "application/json",
            r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": parse error"}"#,
        )
    });
    let error = remaining_error(&read_one(&server.url, &fast()));
    assert!(
        // The error type, never the message: a body does not reach reports.
        error.contains("HTTP 400")
            && error.contains("Prometheus error bad_data")
            && !error.contains("invalid parameter"),
        "{error}"
    );
    assert!(!error.contains("attempts"), "{error}");
    assert_eq!(server.hits(), 1);
}

#[test]
fn bodies_that_are_not_a_usable_answer() {
    let cases: [(Reply, &str); 7] = [
        (
            Reply::json("upstream connect error or disconnect/reset before headers"),
            "not JSON",
        ),
        (
            Reply::status(
                200,
                "text/html",
                "<html><body><form>Sign in to continue</form></body></html>",
            ),
            "HTML",
        ),
        (Reply::json(fake_http::vector(&["NaN"])), "the value is NaN"),
        (
            Reply::json(fake_http::vector(&["+Inf"])),
            "the value is +Inf",
        ),
        (
            Reply::json(fake_http::vector(&["0.5", "0.6"])),
            "2 series where one was expected",
        ),
        (Reply::json(fake_http::vector(&[])), "no series"),
        (
            Reply::json(r#"{"status":"error","errorType":"timeout","error":"query timed out"}"#),
            r#"status "error" (timeout); its message is not shown"#,
        ),
    ];
    for (reply, expected) in cases {
        let reply = std::sync::Mutex::new(Some(reply));
        let server = FakeServer::start(move |_, _| {
            reply
                .lock()
                .ok()
                .and_then(|mut r| r.take())
                .unwrap_or(Reply::status(500, "text/plain", "answered twice"))
        });
        let error = remaining_error(&read_one(&server.url, &fast()));
        assert!(
            error.contains(expected),
            "expected `{expected}` in: {error}"
        );
        assert_eq!(server.hits(), 1, "{expected}: a bad body is not retried");
    }
}

#[test]
fn oversized_answer_is_refused() {
    let server =
        FakeServer::start(|_, _| Reply::json(format!("{{\"padding\": \"{}\"}}", "x".repeat(5000))));
    let options = Options {
        max_body_bytes: 1000,
        ..fast()
    };
    let error = remaining_error(&read_one(&server.url, &options));
    assert!(error.contains("larger than 1000 bytes"), "{error}");
}

#[test]
fn identical_queries_are_asked_once() {
    let server = FakeServer::start(|_, query| {
        if query.starts_with("ALERTS") {
            Reply::json(fake_http::vector(&[]))
        } else {
            Reply::json(fake_http::vector(&["0.9"]))
        }
    });
    let root = GateRoot::at(&std::env::temp_dir()).expect("root");
    let with_slash = format!("{}/", server.url);
    let manifests: Vec<Value> = vec![
        entry(&server.url, "budget", &["ALERTS{a=\"1\"}"]),
        entry(&with_slash, "budget", &["ALERTS{a=\"1\"}"]),
        entry(
            &server.url,
            "budget",
            &["ALERTS{a=\"1\"}", "ALERTS{a=\"2\"}"],
        ),
    ];
    let refs: Vec<&Value> = manifests.iter().collect();
    let readings = gather_allowing(&root, &refs, &fast());
    assert!(
        readings.iter().all(|r| r[0]["status"] == "ok"),
        "{readings:#?}"
    );
    let mut queries = server.queries();
    queries.sort();
    assert_eq!(
        queries,
        vec!["ALERTS{a=\"1\"}", "ALERTS{a=\"2\"}", "budget"]
    );
}

#[test]
fn queries_run_concurrently() {
    let server = FakeServer::start(|_, _| Reply::Respond {
        status: 200,
        content_type: "application/json",
        body: fake_http::vector(&["0.5"]),
        delay: Duration::from_millis(300),
    });
    let root = GateRoot::at(&std::env::temp_dir()).expect("root");
    let manifests: Vec<Value> = (0..24)
        .map(|i| entry(&server.url, &format!("budget{i}"), &[]))
        .collect();
    let refs: Vec<&Value> = manifests.iter().collect();
    let started = Instant::now();
    let readings = gather_allowing(&root, &refs, &fast());
    let elapsed = started.elapsed();
    assert!(readings.iter().all(|r| r[0]["status"] == "ok"));
    assert_eq!(server.hits(), 24);
    // 24 x 300 ms one after the other would take 7.2 s; 16 at a time takes two rounds.
    assert!(elapsed < Duration::from_millis(2000), "{elapsed:?}");
}

#[test]
fn check_flags_offline_and_prometheus_timeout() {
    let server = FakeServer::start(|_, _| Reply::Hang);
    let repo = Repo::new();
    repo.allow(&server.url);
    let slo = prom_slo("availability", &server.url, "budget", &[], "");
    repo.write(
        "releases/answer.yaml",
        &manifest("support-answer", "feature", &slo),
    );

    let (code, report) = repo.check(&["--offline", "releases/answer.yaml"]);
    assert_eq!(code, 1);
    assert_contains(
        &only(&report, "SLO-UNKNOWN")["message"],
        &["not queried: --offline"],
    );
    assert_eq!(server.hits(), 0, "--offline sends no request");

    let started = Instant::now();
    let (code, report) = repo.check(&["--prometheus-timeout", "0.2", "releases/answer.yaml"]);
    assert_eq!(code, 1);
    assert_contains(
        &only(&report, "SLO-UNKNOWN")["message"],
        &["within 0.2s (after 3 attempts)"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    let output = Command::new(crate::support::relgate_bin())
        .args(["check", "--prometheus-timeout", "0", "releases/answer.yaml"])
        .current_dir(repo.path())
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr)
        .contains("--prometheus-timeout must be a positive number"));
}
