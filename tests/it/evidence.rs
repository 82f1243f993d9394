//! The evaluation importers on every real fixture in `tests/fixtures/evals/` (values checked by
//! hand with Python against the files), and `gather_evaluations` on a temporary gate root:
//! confinement, digests, errors with positions, and the shape documented in
//! `schemas/input.schema.json`.

use std::path::{Path, PathBuf};

use relgate::evidence::{gather_evaluations, Format, Imported, MetricRecord};
use relgate::workspace::GateRoot;
use serde_json::{json, Value};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/evals")
        .join(rel)
}

fn import(format: Format, rel: &str) -> Imported {
    let bytes = std::fs::read(fixture(rel)).expect("fixture exists");
    format
        .import(&bytes)
        .unwrap_or_else(|err| panic!("{rel}: {err}"))
}

fn names(imported: &Imported) -> Vec<&str> {
    imported.metrics.keys().map(String::as_str).collect()
}

fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() <= 1e-12 * expected.abs().max(1.0)
}

#[track_caller]
fn assert_record(
    imported: &Imported,
    name: &str,
    value: f64,
    stderr: Option<f64>,
    samples: Option<u64>,
    hib: Option<bool>,
) {
    let record: &MetricRecord = imported
        .metrics
        .get(name)
        .unwrap_or_else(|| panic!("no metric {name}; have {:?}", names(imported)));
    assert_eq!(record.metric, name);
    assert!(
        close(record.value, value),
        "{name} = {}, expected {value}",
        record.value
    );
    match (record.stderr, stderr) {
        (Some(a), Some(e)) => assert!(close(a, e), "{name} stderr = {a}, expected {e}"),
        (a, e) => assert_eq!(a, e, "{name} stderr"),
    }
    assert_eq!(record.samples, samples, "{name} samples");
    assert_eq!(record.higher_is_better, hib, "{name} higher_is_better");
}

// --- promptfoo ---------------------------------------------------------------------------------

#[test]
fn promptfoo_sample_export() {
    let imported = import(Format::Promptfoo, "promptfoo/sample-export.json");
    assert_eq!(
        names(&imported),
        [
            "cost_per_request",
            "latency_p50_ms",
            "latency_p95_ms",
            "pass_rate",
            "score"
        ]
    );
    assert_eq!(imported.samples, Some(4));
    // 4 results, none with success: true
    assert_record(&imported, "pass_rate", 0.0, Some(0.0), Some(4), Some(true));
    // scores 0.75, 0.5, 0.6666…, 0.6666…
    assert_record(
        &imported,
        "score",
        0.6458333333333333,
        Some(0.05242940580049131),
        Some(4),
        Some(true),
    );
    // latencies 4669, 5027, 5794, 6197: nearest rank 2 and 4
    assert_record(
        &imported,
        "latency_p50_ms",
        5027.0,
        None,
        Some(4),
        Some(false),
    );
    assert_record(
        &imported,
        "latency_p95_ms",
        6197.0,
        None,
        Some(4),
        Some(false),
    );
    // costs 0.00049925, 0.00208625, 0.00032425, 0.00107125
    assert_record(
        &imported,
        "cost_per_request",
        0.00099525,
        Some(0.00039710556950681684),
        Some(4),
        Some(false),
    );
    let prompts = imported.prompts.expect("promptfoo records prompts");
    // two prompt entries (one per provider) with the same template text
    assert_eq!(prompts.count, 1);
    assert_eq!(
        prompts.ids,
        ["cd59d97e5a3914afcea76dcc2fdd43bbbb60e8374fcca26d8f76ee3e4e21c73a"]
    );
    assert_eq!(
        prompts.digests,
        [
            // sha256("Solve this riddle: {{riddle}}"): promptfoo's id, since label == raw here
            "sha256:cd59d97e5a3914afcea76dcc2fdd43bbbb60e8374fcca26d8f76ee3e4e21c73a",
            // the same text with a final newline
            "sha256:daba6514fa450caa5a277512f9815b915c0614c9713939bdaffcdaae87483194",
        ]
    );
}

#[test]
fn promptfoo_french_greeting_named_scores() {
    let imported = import(Format::Promptfoo, "promptfoo/french-greeting-output.json");
    assert_eq!(
        names(&imported),
        [
            "cost_per_request",
            "latency_p50_ms",
            "latency_p95_ms",
            "namedScores.Correctness",
            "namedScores.Performance",
            "namedScores.Tone",
            "namedScores.Topicality",
            "pass_rate",
            "score",
        ]
    );
    assert_eq!(imported.samples, Some(1));
    assert_record(&imported, "pass_rate", 0.0, Some(0.0), Some(1), Some(true));
    // one result: no stderr of a mean
    assert_record(
        &imported,
        "score",
        0.8203000664800403,
        None,
        Some(1),
        Some(true),
    );
    assert_record(
        &imported,
        "namedScores.Correctness",
        1.0,
        None,
        Some(1),
        Some(true),
    );
    assert_record(
        &imported,
        "namedScores.Tone",
        1.0,
        None,
        Some(1),
        Some(true),
    );
    assert_record(
        &imported,
        "namedScores.Topicality",
        0.6015003324002018,
        None,
        Some(1),
        Some(true),
    );
    assert_record(
        &imported,
        "namedScores.Performance",
        0.5,
        None,
        Some(1),
        Some(true),
    );
    assert_record(
        &imported,
        "latency_p50_ms",
        1352.0,
        None,
        Some(1),
        Some(false),
    );
    assert_record(
        &imported,
        "latency_p95_ms",
        1352.0,
        None,
        Some(1),
        Some(false),
    );
    assert_record(
        &imported,
        "cost_per_request",
        8.1e-06,
        None,
        Some(1),
        Some(false),
    );
    let prompts = imported.prompts.expect("prompts");
    assert_eq!(prompts.count, 1);
    assert_eq!(
        prompts.ids,
        ["7cbf00640e10d44528380e3662dbc83637498ff474a05ce33eae0bff1aaf65f2"]
    );
    assert_eq!(
        prompts.digests,
        [
            "sha256:7cbf00640e10d44528380e3662dbc83637498ff474a05ce33eae0bff1aaf65f2",
            "sha256:9ae536c938e6e2a63123dc66c57d6cf1f5d55be0b1b0e940f258033e39e35e1b",
        ]
    );
}

#[test]
fn promptfoo_demo_synthetic_files() {
    let v1 = import(Format::Promptfoo, "demo/evals/greet-v1.promptfoo.json");
    assert_record(
        &v1,
        "pass_rate",
        0.95,
        Some(0.04873397172404484),
        Some(20),
        Some(true),
    );
    assert_record(&v1, "latency_p95_ms", 1866.0, None, Some(20), Some(false));
    let v2 = import(Format::Promptfoo, "demo/evals/greet-v2.promptfoo.json");
    assert_record(&v2, "pass_rate", 1.0, Some(0.0), Some(20), Some(true));
    assert_record(&v2, "latency_p50_ms", 1483.0, None, Some(20), Some(false));
    assert_record(&v2, "latency_p95_ms", 1816.0, None, Some(20), Some(false));
    assert!(close(v2.metrics["namedScores.Topicality"].value, 0.64));
    assert!(close(v2.metrics["cost_per_request"].value, 8.3e-06));
    // the demo's prompt file (text + final newline) is among the recorded digests
    let prompt = std::fs::read(fixture("demo/prompts/greet.prompt")).expect("prompt");
    let digest = relgate::manifest::sha256_digest(&prompt);
    assert!(v2.prompts.expect("prompts").digests.contains(&digest));
}

// --- lm-evaluation-harness ---------------------------------------------------------------------

#[test]
fn lm_eval_cpu_regression_with_na_stderr() {
    let imported = import(Format::LmEval, "lm-eval/cpu_regression_expected.json");
    assert_eq!(
        names(&imported),
        [
            "arc_easy/acc,none",
            "arc_easy/acc_norm,none",
            "lambada_openai/acc,none",
            "lambada_openai/perplexity,none",
            "wikitext/bits_per_byte,none",
            "wikitext/byte_perplexity,none",
            "wikitext/word_perplexity,none",
        ]
    );
    assert_eq!(imported.samples, None);
    assert!(imported.prompts.is_none());
    // every stderr is "N/A": unknown; samples from n-samples.<task>.effective
    assert_record(
        &imported,
        "arc_easy/acc,none",
        0.3,
        None,
        Some(10),
        Some(true),
    );
    assert_record(
        &imported,
        "arc_easy/acc_norm,none",
        0.1,
        None,
        Some(10),
        Some(true),
    );
    assert_record(
        &imported,
        "lambada_openai/acc,none",
        0.1,
        None,
        Some(10),
        Some(true),
    );
    assert_record(
        &imported,
        "lambada_openai/perplexity,none",
        605.5452047779999,
        None,
        Some(10),
        Some(false),
    );
    assert_record(
        &imported,
        "wikitext/bits_per_byte,none",
        1.3393660745008342,
        None,
        Some(10),
        Some(false),
    );
    assert_record(
        &imported,
        "wikitext/byte_perplexity,none",
        2.530401076099876,
        None,
        Some(10),
        Some(false),
    );
    assert_record(
        &imported,
        "wikitext/word_perplexity,none",
        130.4813590639406,
        None,
        Some(10),
        Some(false),
    );
}

#[test]
fn lm_eval_legacy_layout_with_stderr() {
    let imported = import(Format::LmEval, "lm-eval/arc_easy-v0-res.json");
    assert_eq!(names(&imported), ["arc_easy/acc", "arc_easy/acc_norm"]);
    assert_record(
        &imported,
        "arc_easy/acc",
        0.2474747474747475,
        Some(0.008855114414834707),
        None,
        None,
    );
    assert_record(
        &imported,
        "arc_easy/acc_norm",
        0.24074074074074073,
        Some(0.008772796145221907),
        None,
        None,
    );
}

// --- Inspect AI --------------------------------------------------------------------------------

#[test]
fn inspect_passing_log() {
    let imported = import(
        Format::Inspect,
        "inspect/2024-11-05T13-31-45-05-00_input-task_8zXjbRzCWrL9GXiXo2vus9.json",
    );
    assert_eq!(
        names(&imported),
        ["model_graded_fact/accuracy", "model_graded_fact/stderr"]
    );
    assert_eq!(imported.samples, Some(1));
    assert_record(
        &imported,
        "model_graded_fact/accuracy",
        1.0,
        Some(0.0),
        Some(1),
        Some(true),
    );
    assert_record(
        &imported,
        "model_graded_fact/stderr",
        0.0,
        None,
        Some(1),
        None,
    );
}

#[test]
fn inspect_failing_log() {
    let imported = import(Format::Inspect, "inspect/log_formats.json");
    assert_eq!(names(&imported), ["match/accuracy", "match/stderr"]);
    assert_eq!(imported.samples, Some(1));
    assert_record(
        &imported,
        "match/accuracy",
        0.0,
        Some(0.0),
        Some(1),
        Some(true),
    );
}

#[test]
fn every_fixture_is_covered() {
    // A fixture added to the folders must get a test here.
    let mut found = Vec::new();
    for dir in ["promptfoo", "lm-eval", "inspect"] {
        for entry in std::fs::read_dir(fixture(dir)).expect("fixture dir") {
            let entry = entry.expect("entry");
            found.push(format!("{dir}/{}", entry.file_name().to_string_lossy()));
        }
    }
    found.sort();
    assert_eq!(
        found,
        [
            "inspect/2024-11-05T13-31-45-05-00_input-task_8zXjbRzCWrL9GXiXo2vus9.json",
            "inspect/log_formats.json",
            "lm-eval/arc_easy-v0-res.json",
            "lm-eval/cpu_regression_expected.json",
            "promptfoo/french-greeting-output.json",
            "promptfoo/sample-export.json",
        ]
    );
}

#[test]
fn a_file_of_another_format_is_refused_with_the_reason() {
    let bytes = std::fs::read(fixture("lm-eval/cpu_regression_expected.json")).expect("fixture");
    let err = Format::Promptfoo.import(&bytes).expect_err("not promptfoo");
    assert_eq!(
        err.to_string(),
        "not promptfoo output: `results.results` is missing; expected the array of test results"
    );
    let bytes = std::fs::read(fixture("promptfoo/sample-export.json")).expect("fixture");
    let err = Format::Inspect.import(&bytes).expect_err("not inspect");
    assert!(
        err.to_string()
            .starts_with("not inspect output: no `eval` key"),
        "{err}"
    );
    let err = Format::LmEval.import(&bytes).expect_err("not lm-eval");
    assert_eq!(
        err.to_string(),
        "not lm-eval output: `results.version` is a number, expected an object of metrics"
    );
}

// --- gather_evaluations ------------------------------------------------------------------------

struct Root {
    dir: tempfile::TempDir,
    root: GateRoot,
}

impl Root {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = GateRoot::at(dir.path()).expect("root");
        Self { dir, root }
    }

    fn file(&self, rel: &str, bytes: &[u8]) -> String {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write");
        relgate::manifest::sha256_digest(bytes)
    }

    fn gather(&self, evaluations: Value) -> Value {
        let manifest = json!({"kind": "PromptRelease", "spec": {"evaluations": evaluations}});
        gather_evaluations(&self.root, &manifest, 1024 * 1024)
    }
}

fn input_schema_validator(def: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/input.schema.json"),
    )
    .expect("input schema");
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    let wrapper = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": schema["$defs"],
        "$ref": format!("#/$defs/{def}"),
    });
    jsonschema::draft202012::new(&wrapper).expect("schema compiles")
}

#[track_caller]
fn assert_matches_schema(entries: &Value) {
    let validator = input_schema_validator("evaluation");
    for entry in entries.as_array().expect("array") {
        let errors: Vec<String> = validator
            .iter_errors(entry)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:?}\n{entry:#}");
    }
}

#[test]
fn gathers_candidate_and_baseline() {
    let root = Root::new();
    let candidate =
        std::fs::read(fixture("promptfoo/french-greeting-output.json")).expect("fixture");
    let c_digest = root.file("evals/c.json", &candidate);
    let b_digest = root.file("evals/b.csv", b"metric,value,samples\npass_rate,0.5,10\n");
    let entries = root.gather(json!([
        {"id": "regression", "format": "promptfoo",
         "candidate": {"path": "evals/c.json", "digest": "sha256:pinned"},
         "thresholds": {"pass_rate": {"min": 0.9}}},
        {"id": "plain", "format": "metrics",
         "candidate": {"path": "evals/b.csv", "digest": b_digest},
         "baseline": {"path": "./evals/b.csv", "digest": b_digest}},
    ]));
    assert_matches_schema(&entries);
    let first = &entries[0];
    assert_eq!(first["id"], "regression");
    assert_eq!(first["index"], 0);
    assert_eq!(first["format"], "promptfoo");
    assert_eq!(first["baseline"], Value::Null);
    let c = &first["candidate"];
    assert_eq!(c["path"], "evals/c.json");
    assert_eq!(c["declared_digest"], "sha256:pinned");
    assert_eq!(c["digest"], Value::String(c_digest));
    assert_eq!(c["error"], Value::Null);
    assert_eq!(c["samples"], 1);
    assert_eq!(c["prompt_count"], 1);
    assert_eq!(c["models"], json!(["openai:gpt-4o-mini"]));
    assert_eq!(c["models_complete"], true);
    assert_eq!(
        c["metrics"]["pass_rate"],
        json!({"metric": "pass_rate", "value": 0.0, "stderr": 0.0, "samples": 1, "higher_is_better": true})
    );
    assert_eq!(
        c["metrics"]["namedScores.Tone"],
        json!({"metric": "namedScores.Tone", "value": 1.0, "stderr": null, "samples": 1, "higher_is_better": true})
    );
    let second = &entries[1];
    assert_eq!(second["index"], 1);
    assert_eq!(second["baseline"]["path"], "./evals/b.csv");
    assert_eq!(
        second["baseline"]["metrics"]["pass_rate"],
        json!({"metric": "pass_rate", "value": 0.5, "stderr": null, "samples": 10, "higher_is_better": null})
    );
    // only promptfoo has prompt evidence; a metrics file names no model
    assert!(second["candidate"].get("prompt_digests").is_none());
    assert!(second["candidate"].get("models").is_none());
}

#[test]
fn the_models_the_results_came_from_are_read_from_every_format_that_names_them() {
    // promptfoo: every result's provider (sample-export.json compares two models, and its
    // metrics average both); Inspect: eval.model.
    let root = Root::new();
    let mut specs = Vec::new();
    for (i, (format, name)) in [
        ("promptfoo", "promptfoo/sample-export.json"),
        (
            "inspect",
            "inspect/2024-11-05T13-31-45-05-00_input-task_8zXjbRzCWrL9GXiXo2vus9.json",
        ),
        ("inspect", "inspect/log_formats.json"),
        ("lm-eval", "lm-eval/arc_easy-v0-res.json"),
    ]
    .into_iter()
    .enumerate()
    {
        let bytes = std::fs::read(fixture(name)).expect("fixture");
        let digest = root.file(&format!("evals/{i}.json"), &bytes);
        specs.push(json!({"id": format!("e{i}"), "format": format,
            "candidate": {"path": format!("evals/{i}.json"), "digest": digest}}));
    }
    let entries = root.gather(Value::Array(specs));
    assert_matches_schema(&entries);
    let models: Vec<&Value> = entries
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| &e["candidate"]["models"])
        .collect();
    assert_eq!(
        models,
        [
            &json!(["openai:gpt-5", "openai:gpt-5-mini"]),
            &json!(["openai/gpt-4o-mini"]),
            &json!(["ollama/llama3.1"]),
            &Value::Null,
        ]
    );
}

#[test]
fn results_that_name_no_model_make_the_models_incomplete() {
    // One result without a provider among results of another model, and an Inspect log whose
    // eval.model was removed: the list must say it is incomplete, not shrink or vanish.
    let root = Root::new();
    let mut promptfoo: Value = serde_json::from_slice(
        &std::fs::read(fixture("promptfoo/french-greeting-output.json")).expect("fixture"),
    )
    .expect("json");
    let results = promptfoo["results"]["results"]
        .as_array_mut()
        .expect("results");
    let mut anonymous = results[0].clone();
    anonymous
        .as_object_mut()
        .expect("result")
        .remove("provider"); // changed from the fixture: a result naming no provider
    results.push(anonymous);
    let mut inspect: Value = serde_json::from_slice(
        &std::fs::read(fixture("inspect/log_formats.json")).expect("fixture"),
    )
    .expect("json");
    inspect["eval"]
        .as_object_mut()
        .expect("eval")
        .remove("model"); // changed from the fixture
    let p = root.file("evals/p.json", promptfoo.to_string().as_bytes());
    let i = root.file("evals/i.json", inspect.to_string().as_bytes());
    let entries = root.gather(json!([
        {"id": "p", "format": "promptfoo", "candidate": {"path": "evals/p.json", "digest": p}},
        {"id": "i", "format": "inspect", "candidate": {"path": "evals/i.json", "digest": i}},
    ]));
    assert_matches_schema(&entries);
    assert_eq!(
        entries[0]["candidate"]["models"],
        json!(["openai:gpt-4o-mini"])
    );
    assert_eq!(entries[0]["candidate"]["models_complete"], false);
    assert_eq!(entries[1]["candidate"]["models"], json!([]));
    assert_eq!(entries[1]["candidate"]["models_complete"], false);
}

#[test]
fn unusable_files_say_what_and_where() {
    let root = Root::new();
    let broken = b"{\n  \"results\": {\n    \"version\": 3,\n    \"results\": [\n      {\"success\": true,}\n";
    let broken_digest = root.file("evals/broken.json", broken);
    let lm_eval = std::fs::read(fixture("lm-eval/cpu_regression_expected.json")).expect("fixture");
    let lm_digest = root.file("evals/lm.json", &lm_eval);
    root.file("evals/big.json", &vec![b' '; 2 * 1024 * 1024]);
    let outside = tempfile::tempdir().expect("outside");
    std::fs::write(outside.path().join("secret.json"), "{}").expect("write");
    #[cfg(unix)]
    std::os::unix::fs::symlink(
        outside.path().join("secret.json"),
        root.dir.path().join("evals/link.json"),
    )
    .expect("symlink");
    let side = |path: &str| json!({"path": path, "digest": "sha256:x"});
    let entries = root.gather(json!([
        {"format": "promptfoo", "candidate": side("evals/broken.json")},
        {"format": "promptfoo", "candidate": side("evals/lm.json")},
        {"format": "promptfoo", "candidate": side("../secret.json")},
        {"format": "promptfoo", "candidate": side("/etc/hostname")},
        {"format": "promptfoo", "candidate": side("evals/missing.json")},
        {"format": "nope", "candidate": side("evals/lm.json")},
        {"format": "promptfoo", "candidate": {"digest": "sha256:x"}},
        {"format": "promptfoo", "candidate": side("evals/big.json")},
        {"format": "inspect", "candidate": side("evals/lm.json"), "baseline": side("evals/missing.json")},
    ]));
    assert_matches_schema(&entries);
    let error = |i: usize, role: &str| {
        entries[i][role]["error"]
            .as_str()
            .unwrap_or_else(|| panic!("entry {i} has an error"))
            .to_string()
    };
    assert_eq!(
        error(0, "candidate"),
        "evals/broken.json: invalid JSON at line 5, column 24: trailing comma"
    );
    assert_eq!(
        entries[0]["candidate"]["digest"],
        Value::String(broken_digest)
    );
    assert_eq!(entries[0]["candidate"]["metrics"], json!({}));
    assert_eq!(
        error(1, "candidate"),
        "evals/lm.json: not promptfoo output: `results.results` is missing; expected the array of test results"
    );
    assert_eq!(
        entries[1]["candidate"]["digest"],
        Value::String(lm_digest.clone())
    );
    assert!(
        error(2, "candidate").contains("the path leaves the gate root"),
        "{}",
        error(2, "candidate")
    );
    assert_eq!(entries[2]["candidate"]["digest"], Value::Null);
    assert!(error(3, "candidate").contains("absolute paths are not allowed"));
    assert!(error(4, "candidate").contains("evals/missing.json: no such file"));
    assert_eq!(
        error(5, "candidate"),
        "evals/lm.json: cannot read it as format \"nope\": expected one of promptfoo, lm-eval, inspect, mlflow, metrics"
    );
    assert_eq!(entries[5]["candidate"]["digest"], Value::String(lm_digest));
    assert_eq!(
        error(6, "candidate"),
        "spec.evaluations[6].candidate.path is missing: name the evaluation output file, relative to the gate root"
    );
    assert!(error(7, "candidate").contains("larger than the 1048576-byte limit"));
    assert!(error(8, "candidate").starts_with("evals/lm.json: not inspect output: no `eval` key"));
    assert!(error(8, "baseline").contains("no such file"));
    #[cfg(unix)]
    {
        let entries =
            root.gather(json!([{"format": "metrics", "candidate": side("evals/link.json")}]));
        let message = entries[0]["candidate"]["error"]
            .as_str()
            .expect("error")
            .to_string();
        assert!(
            message.contains("evals/link.json: the path leaves the gate root"),
            "{message}"
        );
        assert_eq!(entries[0]["candidate"]["digest"], Value::Null);
    }
}

#[test]
fn no_evaluations_is_an_empty_array() {
    let root = Root::new();
    assert_eq!(
        gather_evaluations(&root.root, &json!({"spec": {}}), 1024),
        json!([])
    );
    assert_eq!(
        gather_evaluations(&root.root, &json!({"spec": {"evaluations": "x"}}), 1024),
        json!([])
    );
    assert_eq!(root.gather(json!([])), json!([]));
}
