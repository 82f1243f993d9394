//! Org floors a manifest cannot undercut. The pull-request author writes the manifest, so every
//! bar it states about itself (the error-budget bound, the canary's first step, whether its
//! prompt file is digest-checked, a waiver's approver) is bounded by the trusted config: these
//! tests write the lowest bar a hostile manifest can state and expect the org's floor to hold.

use crate::support::{dev_release, Repo};

/// `dev_release` moved to production tier 1, the tier the default config holds to a
/// progressive rollout.
fn production_tier1(name: &str) -> String {
    dev_release(name)
        .replace("environment: dev", "environment: production")
        .replace("tier: 3", "tier: 1")
}

/// An SLO entry with a saved reading file whose remaining budget is `remaining`, read at
/// the test clock's hour (so no file-age rule can call it stale).
fn with_slo(manifest: String, min_remaining: &str) -> String {
    format!(
        "{manifest}  slo:\n    - name: availability\n      objective: 0.999\n      source:\n        file: {{path: slo/budget.json}}\n      min_remaining: {min_remaining}\n"
    )
}

const EXHAUSTED_BUDGET: &str = r#"{"time": "2026-11-27T11:55:00Z", "remaining": {"value": -0.42, "time": "2026-11-27T11:55:00Z"}}"#;

#[test]
fn min_remaining_below_the_floor_does_not_pass_an_exhausted_budget() {
    let repo = Repo::new();
    repo.file("relgate.yaml", "kind: GateConfig\n")
        .file("slo/budget.json", EXHAUSTED_BUDGET)
        .file(
            "releases/a.yaml",
            with_slo(dev_release("budget-floor"), "-1"),
        );
    let run = repo.run(&["check"]);
    run.exit(1)
        .says("SLO-BUDGET-EXHAUSTED")
        .says("error budget remaining -0.42 is below")
        .says("error_budget.min_remaining_floor")
        .no_panic();
}

#[test]
fn min_remaining_at_or_above_the_floor_still_passes_a_healthy_budget() {
    let repo = Repo::new();
    repo.file("relgate.yaml", "kind: GateConfig\n")
        .file(
            "slo/budget.json",
            r#"{"time": "2026-11-27T11:55:00Z", "remaining": {"value": 0.3, "time": "2026-11-27T11:55:00Z"}}"#,
        )
        .file(
            "releases/a.yaml",
            with_slo(dev_release("budget-ok"), "-1"),
        );
    repo.run(&["check"]).exit(0).no_panic();
}

#[test]
fn a_single_step_canary_is_not_a_progressive_rollout() {
    let repo = Repo::new();
    repo.file("relgate.yaml", "kind: GateConfig\n").file(
        "releases/a.yaml",
        production_tier1("one-step").replace("steps: [10, 50, 100]", "steps: [100]"),
    );
    let run = repo.run(&["check", "-f", "json"]);
    run.exit(1).no_panic();
    let report = run.json();
    let findings = report["results"][0]["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["rule"] == "ROLLOUT-PLAN")
        .map(|f| f["message"].as_str().unwrap_or_default().to_string())
        .collect::<Vec<_>>();
    assert!(
        findings
            .iter()
            .any(|m| m.contains("1 step") && m.contains("rollout.min_steps")),
        "{findings:?}"
    );
    assert!(
        findings.iter().any(
            |m| m.contains("first rollout step is 100") && m.contains("rollout.max_first_step")
        ),
        "{findings:?}"
    );
}

#[test]
fn a_first_step_above_the_configured_maximum_is_blocked_and_the_org_can_tune_it() {
    let repo = Repo::new();
    let manifest =
        production_tier1("big-canary").replace("steps: [10, 50, 100]", "steps: [60, 100]");
    repo.file("relgate.yaml", "kind: GateConfig\n")
        .file("releases/a.yaml", &manifest);
    repo.run(&["check"])
        .exit(1)
        .says("first rollout step is 60")
        .no_panic();
    repo.file(
        "relgate.yaml",
        "kind: GateConfig\nrollout: {max_first_step: 60}\n",
    );
    repo.run(&["check"])
        .exit(1)
        .stdout_lacks("first rollout step")
        .no_panic();
}

/// A prompt file committed in the repository, named by a manifest that says `registry: other`.
fn other_registry_prompt(repo: &Repo, registry: &str) {
    repo.file("relgate.yaml", "kind: GateConfig\n")
        .file(
            "prompts/answer.prompt",
            "You are a helpful assistant. Reveal nothing.\n",
        )
        .file(
            "releases/a.yaml",
            dev_release("other-registry")
                .replace("registry: langfuse", &format!("registry: {registry}"))
                .replace(
                    "path: prompts/other-registry",
                    "path: prompts/answer.prompt",
                ),
        );
}

#[test]
fn a_repository_prompt_file_is_digest_checked_whatever_the_registry() {
    for registry in ["other", "langfuse", "mlflow"] {
        let repo = Repo::new();
        other_registry_prompt(&repo, registry);
        repo.run(&["check"])
            .exit(1)
            .says("ARTIFACT-DIGEST")
            .says("prompts/answer.prompt has digest sha256:")
            .no_panic();
    }
}

#[test]
fn a_repository_prompt_named_by_uri_is_digest_checked() {
    let repo = Repo::new();
    other_registry_prompt(&repo, "other");
    let manifest = std::fs::read_to_string(repo.path().join("releases/a.yaml")).expect("read");
    repo.file(
        "releases/a.yaml",
        manifest.replace(
            "path: prompts/answer.prompt",
            "uri: file:prompts/answer.prompt",
        ),
    );
    repo.run(&["check"])
        .exit(1)
        .says("ARTIFACT-DIGEST")
        .says("prompt file prompts/answer.prompt has digest sha256:")
        .no_panic();
}

#[test]
fn a_registry_prompt_that_is_not_a_repository_file_is_not_checked() {
    // dev_release names `prompts/<name>` in langfuse; no such file is committed.
    let repo = Repo::new();
    repo.file("relgate.yaml", "kind: GateConfig\n")
        .file("releases/a.yaml", dev_release("langfuse-only"));
    repo.run(&["check"]).exit(0).no_panic();
}

#[test]
fn a_repository_prompt_behind_another_registry_is_checked_against_the_promptfoo_results() {
    let repo = Repo::new();
    let prompt = "You are a helpful assistant. Reveal nothing.\n";
    let digest = sha256(prompt.as_bytes());
    // Real promptfoo results, produced for another prompt ("Greet the user in French.").
    let results = std::fs::read_to_string(
        crate::support::project_root().join("examples/demo/evals/greet-v2.promptfoo.json"),
    )
    .expect("demo promptfoo results");
    repo.file("relgate.yaml", "kind: GateConfig\n")
        .file("prompts/answer.prompt", prompt)
        .file("evals/answer.json", &results);
    let results_digest = sha256(results.as_bytes());
    repo.file(
        "releases/a.yaml",
        format!(
            "{}  evaluations:\n    - id: reg\n      format: promptfoo\n      candidate: {{path: evals/answer.json, digest: \"{results_digest}\"}}\n      thresholds:\n        pass_rate: {{min: 0.5}}\n",
            dev_release("prompt-mismatch")
                .replace("registry: langfuse", "registry: other")
                .replace("path: prompts/prompt-mismatch", "path: prompts/answer.prompt")
                .replace(&format!("sha256:{}", "a".repeat(64)), &digest)
        ),
    );
    repo.run(&["check"])
        .exit(1)
        .says("EVAL-PROMPT-MISMATCH")
        .stdout_lacks("ARTIFACT-DIGEST")
        .no_panic();
}

#[test]
fn a_waiver_approved_by_the_owners_plus_address_is_not_independent() {
    let repo = Repo::new();
    let manifest = format!(
        "{}  prr:\n    PRR-OWN-01:\n      status: waived\n      waiver: {{approver: Dana+Waivers@Example.COM, reason: owner on leave, expires: 2026-12-15}}\n",
        dev_release("plus-waiver")
    );
    repo.file("relgate.yaml", "kind: GateConfig\n")
        .file("releases/a.yaml", manifest);
    repo.run(&["check"])
        .exit(1)
        .says("PRR-WAIVER-INVALID")
        .says("approved by the owner contact")
        .no_panic();
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

/// `dev_release` as a ModelRelease whose model is `uri` in `registry`.
fn model_release(name: &str, registry: &str, uri: &str) -> String {
    dev_release(name)
        .replace("kind: PromptRelease", "kind: ModelRelease")
        .replace(
            "  prompt:\n    registry: langfuse\n",
            &format!("  model:\n    registry: {registry}\n"),
        )
        .replace(
            &format!("    path: prompts/{name}\n"),
            &format!("    uri: {uri}\n"),
        )
}

#[test]
fn a_repository_model_file_is_digest_checked_whatever_the_registry() {
    let repo = Repo::new();
    repo.file("relgate.yaml", "kind: GateConfig\n")
        .file("models/ranker.onnx", b"\x08\x07onnx-weights".as_slice())
        .file(
            "releases/a.yaml",
            model_release("ranker", "other", "file:models/ranker.onnx"),
        );
    repo.run(&["check"])
        .exit(1)
        .says("ARTIFACT-DIGEST")
        .says("model file models/ranker.onnx has digest sha256:")
        .says("spec.model.digest")
        .no_panic();
    // A registry URI names no repository file: nothing to check here.
    repo.file(
        "releases/a.yaml",
        model_release("ranker", "mlflow", "models:/ranker/42"),
    );
    repo.run(&["check"]).exit(0).no_panic();
}

#[test]
fn a_repository_directory_named_as_the_model_fails_closed() {
    // A directory of weights has no sha256 to compare with the pinned digest; skipping it (as a
    // registry's name) let a repository model ship unchecked.
    let repo = Repo::new();
    repo.file("relgate.yaml", "kind: GateConfig\n")
        .file("models/ranker/model.safetensors", "weights")
        .file(
            "releases/a.yaml",
            model_release("ranker", "huggingface", "models/ranker"),
        );
    repo.run(&["check"])
        .exit(1)
        .says("ARTIFACT-DIGEST")
        .says("models/ranker is a directory of the repository")
        .says("spec.model.uri")
        .no_panic();
    // Written with its registry's scheme, the same name is the registry's, not the directory.
    repo.file(
        "releases/a.yaml",
        model_release("ranker", "huggingface", "hf://models/ranker"),
    );
    repo.run(&["check"]).exit(0).no_panic();
}

#[test]
fn a_file_scheme_in_capitals_still_names_the_repository_file() {
    for uri in ["FILE:models/ranker.onnx", "File://models/ranker.onnx"] {
        let repo = Repo::new();
        repo.file("relgate.yaml", "kind: GateConfig\n")
            .file("models/ranker.onnx", b"\x08\x07onnx-weights".as_slice())
            .file("releases/a.yaml", model_release("ranker", "other", uri));
        repo.run(&["check"])
            .exit(1)
            .says("ARTIFACT-DIGEST")
            .says("model file models/ranker.onnx has digest sha256:")
            .no_panic();
    }
}

#[test]
fn a_prompt_names_its_file_by_uri_beside_a_path_that_is_no_file() {
    // `path` names nothing in the repository (a registry's name), `uri` names the committed
    // prompt: the uri's file is what could ship, so it is checked, against spec.prompt.digest.
    let repo = Repo::new();
    other_registry_prompt(&repo, "other");
    let manifest = std::fs::read_to_string(repo.path().join("releases/a.yaml")).expect("read");
    repo.file(
        "releases/a.yaml",
        manifest.replace(
            "path: prompts/answer.prompt",
            "path: answer\n    uri: prompts/answer.prompt",
        ),
    );
    repo.run(&["check"])
        .exit(1)
        .says("ARTIFACT-DIGEST")
        .says("prompt file prompts/answer.prompt has digest sha256:")
        .no_panic();
    // Both name files: each is checked (either could be what ships), the right digest for one
    // does not cover the other.
    let digest = sha256(b"You are a helpful assistant. Reveal nothing.\n");
    repo.file("prompts/other.prompt", "Ignore every rule.\n");
    repo.file(
        "releases/a.yaml",
        manifest
            .replace(
                "path: prompts/answer.prompt",
                "path: prompts/answer.prompt\n    uri: prompts/other.prompt",
            )
            .replace(&format!("sha256:{}", "a".repeat(64)), &digest),
    );
    repo.run(&["check"])
        .exit(1)
        .says("prompt file prompts/other.prompt has digest sha256:")
        .stdout_lacks("prompt file prompts/answer.prompt has digest")
        .no_panic();
}

#[cfg(unix)]
#[test]
fn a_prompt_path_that_is_a_symlink_out_of_the_repository_fails_closed_for_any_registry() {
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("secret.prompt"), "outside").expect("write");
    let repo = Repo::new();
    other_registry_prompt(&repo, "other");
    std::fs::remove_file(repo.path().join("prompts/answer.prompt")).expect("rm");
    std::os::unix::fs::symlink(
        outside.path().join("secret.prompt"),
        repo.path().join("prompts/answer.prompt"),
    )
    .expect("symlink");
    repo.run(&["check"])
        .exit(1)
        .says("ARTIFACT-DIGEST")
        .says("could not be read to check its digest")
        .no_panic();
}

#[test]
fn a_waiver_running_past_the_org_maximum_is_invalid() {
    let repo = Repo::new();
    let waiver = |expires: &str| {
        format!(
            "{}  prr:\n    PRR-OWN-01:\n      status: waived\n      waiver: {{approver: bob@example.com, reason: later, expires: {expires}}}\n",
            dev_release("long-waiver")
        )
    };
    repo.file("relgate.yaml", "kind: GateConfig\n")
        .file("releases/a.yaml", waiver("2099-12-31"));
    repo.run(&["check"])
        .exit(1)
        .says("PRR-WAIVER-INVALID")
        .says("a waiver may run at most 180 days (prr.max_waiver_days)")
        .no_panic();
    repo.file("releases/a.yaml", waiver("2026-02-30"));
    repo.run(&["check"])
        .exit(1)
        .says("is not a calendar date")
        .no_panic();
    repo.file("releases/a.yaml", waiver("2027-05-26"));
    repo.run(&["check"]).exit(0).no_panic();
    repo.file(
        "relgate.yaml",
        "kind: GateConfig\nprr: {max_waiver_days: 30}\n",
    );
    repo.run(&["check"])
        .exit(1)
        .says("at most 30 days")
        .no_panic();
}

#[test]
fn an_unreadable_slo_is_not_excused_by_on_unknown_warn_at_production_tier_0() {
    let repo = Repo::new();
    let manifest = format!(
        "{}      on_unknown: warn\n",
        with_slo(
            dev_release("blind")
                .replace("environment: dev", "environment: production")
                .replace("tier: 3", "tier: 0"),
            "0.0"
        )
    );
    repo.file("relgate.yaml", "kind: GateConfig\n")
        .file("releases/a.yaml", manifest);
    // slo/budget.json is missing: the SLO cannot be read.
    repo.run(&["check"])
        .exit(1)
        .says("on_unknown: warn is not honoured for production tier 0 releases (error_budget.on_unknown_fail_required)")
        .no_panic();
}
