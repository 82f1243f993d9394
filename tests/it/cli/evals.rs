//! Evaluation evidence through the whole binary: the demo in `tests/fixtures/evals/demo`
//! (a passing and a blocked PromptRelease), and unusable or re-pinned evidence files.

use crate::support::{project_root, Repo};

fn demo() -> Repo {
    let repo = Repo::git();
    repo.copy_dir(&project_root().join("tests/fixtures/evals/demo"), ".");
    repo
}

/// (rule, path, line) of every finding of the first result, sorted.
fn findings(json: &serde_json::Value) -> Vec<(String, String, u64)> {
    let mut out: Vec<_> = json["results"][0]["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap_or_default().to_string(),
                f["path"].as_str().unwrap_or_default().to_string(),
                f["line"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn demo_passing_prompt_release() {
    let run = demo().run(&["check", "releases/greet-pass.yaml", "--format", "json"]);
    run.exit(0);
    let json = run.json();
    assert_eq!(json["results"][0]["decision"], "pass");
    assert_eq!(findings(&json), []);
}

#[test]
fn demo_blocked_prompt_release() {
    let run = demo().run(&["check", "releases/greet-fail.yaml", "--format", "json"]);
    run.exit(1);
    let json = run.json();
    let owned = findings(&json);
    let got: Vec<(&str, &str, u64)> = owned
        .iter()
        .map(|(r, p, l)| (r.as_str(), p.as_str(), *l))
        .collect();
    assert_eq!(
        got,
        [
            (
                "EVAL-PROMPT-MISMATCH",
                "spec.evaluations[0].candidate.path",
                27
            ),
            (
                "EVAL-REGRESSION",
                "spec.evaluations[0].thresholds.pass_rate.max_regression",
                30
            ),
            ("EVAL-SAMPLES", "spec.evaluations[0].min_samples", 32),
            ("EVAL-SAMPLES", "spec.evaluations[0].min_samples", 32),
            (
                "EVAL-THRESHOLD",
                "spec.evaluations[0].thresholds.pass_rate.min",
                30
            ),
            (
                "EVAL-THRESHOLD",
                "spec.evaluations[1].thresholds[\"match/accuracy\"].min",
                37
            ),
        ]
    );
    let text = demo().run(&["check", "releases/greet-fail.yaml"]);
    text.exit(1)
        .stdout_has("EVAL-THRESHOLD  evaluation greeting-regression: pass_rate 0 < min 0.95 (candidate evals/french-greeting-output.json)")
        .stdout_has("EVAL-REGRESSION  evaluation greeting-regression: pass_rate regressed by 0.95 (0 vs baseline 0.95, higher is better), more than max_regression 0.02")
        .stdout_has("pass_rate was computed from 1 sample, fewer than min_samples 20")
        .stdout_has("prompts/greet-formal.prompt has digest sha256:263baf09c2533dd9fc4e32a478af2329e3aefc59dc67f1307f0cdc633b2b6fd5");
}

#[test]
fn edited_results_and_broken_files_are_blocked() {
    let repo = demo();
    // The candidate changed after its digest was pinned.
    let pinned =
        std::fs::read_to_string(repo.path().join("evals/greet-v2.promptfoo.json")).expect("read");
    repo.file(
        "evals/greet-v2.promptfoo.json",
        pinned.replace("\"latencyMs\": 1150", "\"latencyMs\": 1151"),
    );
    let run = repo.run(&["check", "releases/greet-pass.yaml", "--format", "json"]);
    run.exit(1);
    let owned = findings(&run.json());
    assert_eq!(owned.len(), 1, "{owned:?}");
    assert_eq!(owned[0].0, "EVIDENCE-DIGEST");
    assert_eq!(owned[0].1, "spec.evaluations[0].candidate.digest");

    // The baseline is not JSON any more: the message says where parsing stopped.
    repo.file(
        "evals/greet-v1.promptfoo.json",
        "{\n  \"evalId\": \"x\",\n  \"results\": {\n    \"version\": 3,,\n",
    );
    let run = repo.run(&["check", "releases/greet-pass.yaml"]);
    run.exit(1)
        .stdout_has("EVIDENCE-UNREADABLE  evaluation greeting-regression: the baseline results cannot be used: evals/greet-v1.promptfoo.json: invalid JSON at line 4, column 18: key must be a string")
        .stdout_has("field: spec.evaluations[0].baseline.path");
}

#[cfg(unix)]
#[test]
fn evidence_outside_the_gate_root_is_not_read() {
    // `..` is already refused by the schema; a symlink that leads out is refused when read.
    let repo = demo();
    let outside = tempfile::tempdir().expect("outside");
    std::fs::write(outside.path().join("results.json"), "{}").expect("write");
    std::fs::remove_file(repo.path().join("evals/greet-v1.promptfoo.json")).expect("remove");
    std::os::unix::fs::symlink(
        outside.path().join("results.json"),
        repo.path().join("evals/greet-v1.promptfoo.json"),
    )
    .expect("symlink");
    repo.run(&["check", "releases/greet-pass.yaml"])
        .exit(1)
        .stdout_has("EVIDENCE-UNREADABLE  evaluation greeting-regression: the baseline results cannot be used: evals/greet-v1.promptfoo.json: the path leaves the gate root")
        .stdout_lacks("EVIDENCE-DIGEST");
}
