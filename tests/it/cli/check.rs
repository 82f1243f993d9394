//! `relgate check`: decisions, exit codes, output formats, team policies and the conftest
//! contract.

use crate::support::{dev_release, Repo};

#[test]
fn a_ready_release_passes_with_exit_0() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("answer"));
    repo.run(&["check", "releases"])
        .exit(0)
        .stdout_has("PASS  releases/a.yaml:1  PromptRelease answer@2")
        .stdout_has("PASS: 1 manifest, 1 passed, 0 failed, 0 errors, 0 warnings");
}

#[test]
fn no_paths_uses_the_config_globs() {
    let repo = Repo::git();
    repo.file("releases/nested/a.yaml", dev_release("answer"))
        .file("other/b.yaml", "not: a manifest\n");
    let run = repo.run(&["check", "--format", "json"]);
    run.exit(0);
    let json = run.json();
    assert_eq!(json["summary"]["manifests"], 1);
    assert_eq!(json["results"][0]["file"], "releases/nested/a.yaml");
}

#[test]
fn nothing_to_check_is_not_a_pass() {
    let repo = Repo::git();
    repo.file(
        "relgate.yaml",
        "apiVersion: relgate.dev/v1\nkind: GateConfig\n",
    );
    repo.run(&["check"])
        .exit(2)
        .stdout_has("no manifests found");
}

#[test]
fn json_report_has_the_design_shape() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("answer"))
        .file(
            "releases/b.yaml",
            dev_release("broken").replace("retention_days: 30", "retention_days: 900"),
        )
        .file(
            "releases/c.yaml",
            "apiVersion: relgate.dev/v1\nkind: Nope\n",
        );
    let run = repo.run(&["check", "releases", "--format", "json"]);
    run.exit(2);
    let json = run.json();
    assert_eq!(json["tool"]["name"], "relgate");
    assert_eq!(json["decision"], "error");
    assert!(json["policy_digest"]
        .as_str()
        .is_some_and(|d| d.starts_with("sha256:") && d.len() == 71));
    assert_eq!(
        json["summary"],
        serde_json::json!({"manifests": 3, "passed": 1, "failed": 1, "errors": 1, "warnings": 0})
    );
    let failed = &json["results"][1];
    assert_eq!(failed["file"], "releases/b.yaml");
    assert_eq!(failed["decision"], "fail");
    assert_eq!(failed["error"], serde_json::Value::Null);
    let finding = &failed["findings"][0];
    assert_eq!(finding["rule"], "PII-RETENTION");
    assert_eq!(finding["severity"], "deny");
    assert_eq!(finding["policy"], "relgate.pii");
    assert_eq!(finding["path"], "spec.logging.sinks[0].retention_days");
    assert_eq!(finding["line"], 21);
    let errored = &json["results"][2];
    assert_eq!(errored["decision"], "error");
    assert!(errored["error"]
        .as_str()
        .is_some_and(|e| e.contains("unknown kind `Nope`")));
}

#[test]
fn several_formats_each_to_its_own_output() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("answer"));
    repo.run(&[
        "check",
        "releases",
        "-f",
        "json",
        "-o",
        "report.json",
        "-f",
        "text",
    ])
    .exit(0)
    .stdout_has("PASS: 1 manifest");
    let written = std::fs::read_to_string(repo.path().join("report.json")).expect("report written");
    assert!(written.contains("\"decision\": \"pass\""));
    repo.run(&["check", "releases", "-f", "json", "-f", "text"])
        .exit(2)
        .stderr_has("only one --format can go to stdout");
}

#[test]
fn team_policies_follow_the_conftest_contract() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("answer")).file(
        "team/main.rego",
        r#"package main

deny contains "support-bot releases need a ticket" if not input.manifest.metadata.ticket

violation_owner contains {"msg": "assistants must not own dev releases", "rule": "TEAM-OWNER", "path": "spec.owner.team", "remediation": "hand it to platform"} if {
	input.manifest.spec.owner.team == "assistants"
}

warn_rollout contains "canary steps are coarse" if count(input.manifest.spec.rollout.steps) < 4

exception contains "owner" if input.manifest.metadata.environment == "dev"
"#,
    );
    let run = repo.run(&["check", "releases", "-p", "team", "-f", "json"]);
    run.exit(1);
    let json = run.json();
    let result = &json["results"][0];
    let rules: Vec<&str> = result["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["rule"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(rules, ["deny", "warn_rollout"]);
    assert_eq!(result["findings"][1]["severity"], "warn");
    // The suppressed violation is reported, with the exception that suppressed it.
    assert_eq!(result["exceptions"][0]["rule"], "TEAM-OWNER");
    assert_eq!(result["exceptions"][0]["exception"], "owner");
    assert_eq!(result["exceptions"][0]["line"], 11);
    assert_eq!(json["summary"]["warnings"], 1);
}

#[test]
fn warnings_block_only_with_fail_on_warn() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("answer")).file(
        "team/w.rego",
        "package main\n\nwarn contains \"heads up\" if true\n",
    );
    repo.run(&["check", "releases", "-p", "team"])
        .exit(0)
        .stdout_has("warn  heads up");
    repo.run(&["check", "releases", "-p", "team", "--fail-on-warn"])
        .exit(1);
}

#[test]
fn namespaces_are_evaluated_only_when_asked_and_must_exist() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("answer")).file(
        "team/extra.rego",
        "package team.extra\n\ndeny contains \"extra\" if true\n",
    );
    repo.run(&["check", "releases", "-p", "team"]).exit(0);
    repo.run(&["check", "releases", "-p", "team", "-n", "team.extra"])
        .exit(1)
        .stdout_has("extra");
    repo.run(&["check", "releases", "-p", "team", "-n", "team.missing"])
        .exit(2)
        .stderr_has("--namespace team.missing: no loaded policy declares `package team.missing`");
}

#[test]
fn data_documents_are_visible_to_policies() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("answer"))
        .file("data.yaml", "frozen_services: [support-bot]\n")
        .file(
            "team/freeze.rego",
            "package main\n\ndeny contains \"service is frozen\" if input.manifest.metadata.service in data.frozen_services\n",
        );
    repo.run(&["check", "releases", "-p", "team", "-d", "data.yaml"])
        .exit(1)
        .stdout_has("service is frozen");
}

#[test]
fn config_tunes_the_built_in_policies() {
    let repo = Repo::git();
    let release = dev_release("answer").replace("name: prometheus", "name: splunk");
    repo.file("releases/a.yaml", &release);
    repo.run(&["check", "releases"])
        .exit(1)
        .stdout_has("PII-SINK");
    repo.file(
        "relgate.yaml",
        "apiVersion: relgate.dev/v1\nkind: GateConfig\npii:\n  allowed_sinks: [splunk]\n",
    );
    repo.run(&["check", "releases"]).exit(0);
}

#[test]
fn gate_root_is_found_from_the_path_not_the_cwd() {
    let repo = Repo::git();
    repo.file(
        "sub/relgate.yaml",
        "apiVersion: relgate.dev/v1\nkind: GateConfig\npii:\n  allowed_sinks: [splunk]\n",
    )
    .file(
        "sub/releases/a.yaml",
        dev_release("answer").replace("name: prometheus", "name: splunk"),
    );
    let run = repo.run(&["check", "sub/releases", "-f", "json"]);
    run.exit(0);
    assert_eq!(run.json()["results"][0]["file"], "releases/a.yaml");
}

#[test]
fn prompt_digest_is_checked_against_the_file() {
    let repo = Repo::git();
    let text = "Answer politely.\n";
    let digest = relgate::manifest::sha256_digest(text.as_bytes());
    let release = dev_release("answer")
        .replace("registry: langfuse", "registry: git")
        .replace("path: prompts/answer", "path: prompts/answer.prompt")
        .replace(&format!("sha256:{}", "a".repeat(64)), &digest);
    repo.file("releases/a.yaml", &release)
        .file("prompts/answer.prompt", text);
    repo.run(&["check", "releases"]).exit(0);
    repo.file("prompts/answer.prompt", "Answer rudely.\n");
    repo.run(&["check", "releases"])
        .exit(1)
        .stdout_has("ARTIFACT-DIGEST");
}

#[test]
fn schema_command_prints_and_lists() {
    let repo = Repo::new();
    repo.run(&["schema"])
        .exit(0)
        .stdout_has("ModelRelease\nPromptRelease\nGateConfig\nInput\n");
    let run = repo.run(&["schema", "promptrelease"]);
    run.exit(0);
    assert_eq!(
        run.json()["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    repo.run(&["schema", "Deployment"])
        .exit(2)
        .stderr_has("unknown kind `Deployment`");
}

#[test]
fn init_scaffolds_a_repo_that_passes_and_refuses_to_overwrite() {
    let repo = Repo::git();
    repo.run(&["init"]).exit(0).stdout_has("created");
    for file in [
        "relgate.yaml",
        "releases/example-answer.yaml",
        "prompts/example.prompt",
        ".github/workflows/relgate.yml",
    ] {
        assert!(repo.path().join(file).is_file(), "{file}");
    }
    repo.run(&["check"])
        .exit(0)
        .stdout_has("PASS  releases/example-answer.yaml");
    repo.run(&["init"])
        .exit(2)
        .stderr_has("refusing to overwrite");
    repo.run(&["init", "--force"]).exit(0);
}

#[test]
fn usage_errors_exit_2() {
    let repo = Repo::new();
    repo.run(&["check", "--format", "yaml"]).exit(2);
    repo.run(&["frobnicate"]).exit(2);
    repo.run(&["--help"])
        .exit(0)
        .stdout_has("Exit codes: 0 pass, 1 blocked by policy");
}
