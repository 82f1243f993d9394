//! Error-budget evidence at scale: 1,000 manifests x 2 SLO queries (remaining budget and one
//! block_on_alerts query each) against a local Prometheus (Debian package `prometheus`), next to
//! the latency of one query. Run: `cargo bench --bench slo`.
//!
//! - `query/raw_http`: one instant query over a fresh TCP connection (the floor).
//! - `gather/1_manifest_1_query`: relgate's gathering for one query, runtime and client
//!   included (what a check of one manifest pays).
//! - `gather/1000x2_distinct`: 2,000 distinct queries (every manifest its own service).
//! - `gather/1000x2_shared_10_services`: the same 2,000 queries over 10 services (20 distinct
//!   after deduplication).
//! - `gather/1000x2_offline`: the same manifests with `--offline`: planning and assembling
//!   2,000 readings without any request (relgate's own overhead).
//! - `gather/1000x2_shared_10_services_20ms`: the shared case against a server that answers
//!   every query after 20 ms, as a remote Prometheus would: the cost is rounds of latency.
//! - `check/1000_manifests` and `check/1000_manifests_offline`: the whole `relgate check` of
//!   1,000 manifest files (load, schema, gather, policies), with and without Prometheus.

#[path = "../tests/it/support/fake_http.rs"]
mod fake_http;
#[path = "../tests/it/support/prometheus.rs"]
mod prometheus;

use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};

use prometheus::{encode, family, http_get, Prometheus, SAMPLE_NOW};
use relgate::evidence::slo::{gather_blocking, AllowedUrl, Options, Reading, Status};
use relgate::gate::{self, CheckSettings};
use relgate::workspace::GateRoot;

const MANIFESTS: usize = 1000;

fn budget_query(service: &str) -> String {
    format!(r#"slo:period_error_budget_remaining:ratio{{sloth_service="{service}"}}"#)
}

fn alert_query(service: &str) -> String {
    format!(r#"ALERTS{{alertstate="firing",sloth_service="{service}",sloth_severity="page"}}"#)
}

fn slo_manifest(url: &str, service: &str, with_alert: bool) -> Value {
    let alerts: Vec<String> = if with_alert {
        vec![alert_query(service)]
    } else {
        Vec::new()
    };
    json!({"spec": {"slo": [{
        "name": "availability",
        "source": {"prometheus": {"url": url, "query": budget_query(service)}},
        "min_remaining": 0.05,
        "block_on_alerts": alerts,
    }]}})
}

fn manifest_file(url: &str, i: usize) -> String {
    let service = format!("svc-{i}");
    format!(
        r#"apiVersion: relgate.dev/v1
kind: PromptRelease
metadata: {{name: answer-{i}, version: "17", service: {service}, environment: staging, tier: 2, change_type: feature}}
spec:
  owner: {{team: assistants, contact: dana@example.com}}
  prompt: {{registry: langfuse, path: prompts/answer.prompt, digest: "sha256:5d41402abc4b2a76b9719d911017c592aaf8c9e2d9c3a1f2b6a41c4bd7e8f0a1"}}
  rollout: {{strategy: canary, steps: [5, 25, 50, 100]}}
  rollback: {{to_version: "15", max_minutes: 5}}
  prr:
    PRR-OWN-01: {{status: done, evidence: https://wiki.example.com/owners}}
    PRR-EVAL-01: {{status: done, evidence: https://ci.example.com/evals}}
  slo:
    - name: availability
      source:
        prometheus: {{url: "{url}", query: '{}'}}
      min_remaining: 0.05
      block_on_alerts: ['{}']
"#,
        budget_query(&service),
        alert_query(&service)
    )
}

fn all_ok(readings: &[Vec<Reading>]) -> bool {
    readings
        .iter()
        .all(|r| r.iter().all(|x| x.status == Status::Ok))
}

fn bench(c: &mut Criterion) {
    let services: Vec<String> = (0..MANIFESTS).map(|i| format!("svc-{i}")).collect();
    let budget_labels: Vec<String> = services
        .iter()
        .map(|s| format!(r#"sloth_service="{s}""#))
        .collect();
    let budget_series: Vec<(&str, &str)> =
        budget_labels.iter().map(|l| (l.as_str(), "0.5")).collect();
    let prom = Prometheus::start(&[
        family("slo:period_error_budget_remaining:ratio", &budget_series),
        family(
            "ALERTS",
            &[(
                r#"alertname="Other",alertstate="firing",sloth_service="elsewhere",sloth_severity="page""#,
                "1",
            )],
        ),
    ]);
    let root_dir = tempfile::tempdir().expect("temp dir");
    let root = GateRoot::at(root_dir.path()).expect("root");
    let mut options = Options {
        time: Some(SAMPLE_NOW.to_string()),
        ..Options::default()
    };
    // Only allowed URLs are queried (error_budget.prometheus.allowed_urls).
    options
        .allowed_urls
        .push(AllowedUrl::parse(&prom.url).expect("allowed url"));

    let one = [slo_manifest(&prom.url, "svc-0", false)];
    let distinct: Vec<Value> = services
        .iter()
        .map(|s| slo_manifest(&prom.url, s, true))
        .collect();
    let shared: Vec<Value> = (0..MANIFESTS)
        .map(|i| slo_manifest(&prom.url, &services[i % 10], true))
        .collect();
    let one_refs: Vec<&Value> = one.iter().collect();
    let distinct_refs: Vec<&Value> = distinct.iter().collect();
    let shared_refs: Vec<&Value> = shared.iter().collect();
    assert!(all_ok(&gather_blocking(&root, &one_refs, &options)));
    assert!(all_ok(&gather_blocking(&root, &distinct_refs, &options)));
    assert!(all_ok(&gather_blocking(&root, &shared_refs, &options)));

    let raw_path = format!(
        "/api/v1/query?query={}&time={}",
        encode(&budget_query("svc-0")),
        encode(SAMPLE_NOW)
    );
    let mut group = c.benchmark_group("query");
    group.sample_size(50);
    group.bench_function("raw_http", |b| {
        b.iter(|| {
            let (status, _) = http_get(prom.port, &raw_path).expect("answer");
            assert_eq!(status, 200);
        })
    });
    group.finish();

    let mut group = c.benchmark_group("gather");
    group.sample_size(20);
    group.bench_function("1_manifest_1_query", |b| {
        b.iter(|| gather_blocking(&root, &one_refs, &options))
    });
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("1000x2_distinct", |b| {
        b.iter(|| gather_blocking(&root, &distinct_refs, &options))
    });
    group.bench_function("1000x2_shared_10_services", |b| {
        b.iter(|| gather_blocking(&root, &shared_refs, &options))
    });
    let offline = Options {
        offline: true,
        ..options.clone()
    };
    group.bench_function("1000x2_offline", |b| {
        b.iter(|| gather_blocking(&root, &distinct_refs, &offline))
    });
    let slow = fake_http::FakeServer::start(|_, _| fake_http::Reply::Respond {
        status: 200,
        content_type: "application/json",
        body: fake_http::vector(&["0.5"]),
        delay: Duration::from_millis(20),
    });
    let slow_shared: Vec<Value> = (0..MANIFESTS)
        .map(|i| slo_manifest(&slow.url, &services[i % 10], true))
        .collect();
    let slow_refs: Vec<&Value> = slow_shared.iter().collect();
    options
        .allowed_urls
        .push(AllowedUrl::parse(&slow.url).expect("allowed url"));
    let started = std::time::Instant::now();
    let readings = gather_blocking(&root, &slow_refs, &options);
    println!(
        "one gather of 1000x2 shared queries at 20 ms each: {:?}",
        started.elapsed()
    );
    // The ALERTS queries get a one-series answer too: firing, but read fine.
    assert!(readings.iter().all(|r| r[0].remaining.value == Some(0.5)));
    group.bench_function("1000x2_shared_10_services_20ms", |b| {
        b.iter(|| gather_blocking(&root, &slow_refs, &options))
    });
    group.finish();

    // The whole check of 1,000 manifest files.
    let repo = tempfile::tempdir().expect("repo");
    write(
        repo.path(),
        "relgate.yaml",
        &format!(
            "apiVersion: relgate.dev/v1\nkind: GateConfig\nerror_budget:\n  prometheus:\n    allowed_urls: [\"{}\"]\n",
            prom.url
        ),
    );
    for i in 0..MANIFESTS {
        write(
            repo.path(),
            &format!("releases/answer-{i:04}.yaml"),
            &manifest_file(&prom.url, i),
        );
    }
    let settings = |offline: bool| CheckSettings {
        cwd: repo.path().to_path_buf(),
        now: SAMPLE_NOW.to_string(),
        eval_timeout: Some(Duration::from_secs(5)),
        offline,
        ..CheckSettings::default()
    };
    let report = gate::check(&settings(false)).expect("check");
    assert_eq!(report.summary.manifests, MANIFESTS);
    assert_eq!(report.summary.passed, MANIFESTS, "every manifest passes");
    let mut group = c.benchmark_group("check");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.bench_function("1000_manifests", |b| {
        b.iter(|| gate::check(&settings(false)).expect("check"))
    });
    group.bench_function("1000_manifests_offline", |b| {
        b.iter(|| gate::check(&settings(true)).expect("check"))
    });
    group.finish();
}

fn write(root: &Path, relative: &str, text: &str) {
    let path = root.join(relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

criterion_group!(benches, bench);
criterion_main!(benches);
