//! `relgate check --changed [--base REV] [--head REV]` (docs/changed.md) on real git
//! histories: which manifests a change selects, removed manifests, references to evidence and
//! prompts, configuration changes, uncommitted work, diverged branches, and the errors that
//! stop it (bad revisions, no merge base, shallow clones).

use crate::support::{dev_release, Repo};

/// A dev release gated on `pass_rate` of a metrics file, pinned to the file's `contents`.
fn eval_release(name: &str, eval: &str, contents: &str) -> String {
    format!(
        "{}  evaluations:
    - id: regression
      format: metrics
      candidate: {{path: {eval}, digest: \"{}\"}}
      thresholds:
        pass_rate: {{min: 0.9}}
",
        dev_release(name),
        sha256(contents.as_bytes())
    )
}

/// A dev release of a prompt kept in git, pinned to `digest`.
fn git_prompt_release(name: &str, prompt: &str, digest: &str) -> String {
    dev_release(name)
        .replace("registry: langfuse", "registry: git")
        .replace(&format!("path: prompts/{name}"), &format!("path: {prompt}"))
        .replace(&format!("sha256:{}", "a".repeat(64)), digest)
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Files of each result in a JSON report.
fn checked(json: &serde_json::Value) -> Vec<String> {
    json["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["file"].as_str().expect("file").to_string())
        .collect()
}

/// A repository whose `main` holds two passing releases, with branch `feature` checked out.
fn two_releases_on_main() -> Repo {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("alpha"))
        .file("releases/b.yaml", dev_release("beta"));
    repo.commit("two releases");
    repo.branch("feature");
    repo
}

fn changed_json(repo: &Repo, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["check", "--changed", "--format", "json"];
    args.extend_from_slice(extra);
    let run = repo.run(&args);
    run.no_panic();
    run.json()
}

#[test]
fn an_added_manifest_is_checked_and_unmodified_ones_are_not() {
    let repo = two_releases_on_main();
    repo.file("releases/c.yaml", dev_release("gamma"));
    repo.commit("add gamma");
    let run = repo.run(&["check", "--changed", "--base", "main", "--format", "json"]);
    run.exit(0);
    let json = run.json();
    assert_eq!(checked(&json), ["releases/c.yaml"]);
    assert_eq!(json["summary"]["manifests"], 1);
    assert_eq!(json["changed"]["base"], "main");
    assert_eq!(json["changed"]["head"], "HEAD");
    assert_eq!(json["changed"]["work_tree"], true);
    assert_eq!(json["removed"], serde_json::json!([]));
}

#[test]
fn a_modified_manifest_is_checked_and_can_block() {
    let repo = two_releases_on_main();
    repo.file(
        "releases/b.yaml",
        dev_release("beta").replace("retention_days: 30", "retention_days: 900"),
    );
    repo.commit("keep metrics longer");
    let run = repo.run(&["check", "--changed", "--base", "main"]);
    run.exit(1)
        .stdout_has("FAIL  releases/b.yaml:1  PromptRelease beta@2")
        .stdout_has("PII-RETENTION")
        .stdout_lacks("releases/a.yaml");
}

#[test]
fn a_renamed_manifest_is_checked_under_its_new_name() {
    let repo = two_releases_on_main();
    repo.rename("releases/b.yaml", "releases/team/beta.yaml")
        .file(
            "releases/team/beta.yaml",
            dev_release("beta").replace("bake_minutes: 30", "bake_minutes: 45"),
        );
    repo.commit("move beta");
    let json = changed_json(&repo, &["--base", "main"]);
    assert_eq!(json["decision"], "pass");
    assert_eq!(checked(&json), ["releases/team/beta.yaml"]);
    // A rename is not a removal.
    assert_eq!(json["removed"], serde_json::json!([]));
}

#[test]
fn a_deleted_manifest_is_reported_as_removed_and_not_checked() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("alpha"))
        .file("releases/b.yaml", dev_release("beta"))
        .file("notes/x.yaml", "not: a manifest\n");
    repo.commit("start");
    repo.branch("feature");
    // Only manifests are listed: notes/ is outside the `manifests` globs.
    repo.remove("releases/b.yaml").remove("notes/x.yaml");
    repo.commit("retire beta");
    let json = changed_json(&repo, &["--base", "main"]);
    assert_eq!(json["decision"], "pass");
    assert_eq!(json["summary"]["manifests"], 0);
    assert_eq!(
        json["removed"],
        serde_json::json!([{
            "file": "releases/b.yaml",
            "previous_digest": sha256(dev_release("beta").as_bytes()),
        }])
    );
    repo.run(&["check", "--changed", "--base", "main"])
        .exit(0)
        .stdout_has("removed: releases/b.yaml")
        .stdout_has("no release manifests changed between main");
    repo.run(&[
        "check",
        "--changed",
        "--base",
        "main",
        "--format",
        "markdown",
    ])
    .exit(0)
    .stdout_has("### ✅ relgate: no release manifests changed")
    .stdout_has("- removed: releases/b.yaml");
}

#[test]
fn a_changed_evidence_file_rechecks_only_the_manifests_that_reference_it() {
    let repo = Repo::git();
    let (a, b) = (r#"{"pass_rate": 0.97}"#, r#"{"pass_rate": 0.95}"#);
    repo.file("releases/a.yaml", eval_release("alpha", "evals/a.json", a))
        .file("releases/b.yaml", eval_release("beta", "./evals/b.json", b))
        .file("evals/a.json", a)
        .file("evals/b.json", b);
    repo.commit("two evaluated releases");
    repo.run(&["check"]).exit(0);
    repo.branch("rerun");
    // The evidence changes under a manifest that still pins the old file.
    repo.file("evals/b.json", r#"{"pass_rate": 0.99}"#);
    repo.commit("replace beta's evaluation");
    let run = repo.run(&["check", "--changed", "--base", "main", "--format", "json"]);
    run.exit(1);
    let json = run.json();
    assert_eq!(checked(&json), ["releases/b.yaml"]);
    assert_eq!(json["results"][0]["findings"][0]["rule"], "EVIDENCE-DIGEST");
    assert!(json["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .any(|n| n
            == "releases/b.yaml is checked because evals/b.json, which it references, changed"));
}

#[test]
fn a_changed_prompt_template_rechecks_its_release() {
    let repo = Repo::git();
    let template = "Answer politely: {{question}}\n";
    repo.file(
        "releases/answer.yaml",
        git_prompt_release("answer", "prompts/answer.txt", &sha256(template.as_bytes())),
    )
    .file("releases/other.yaml", dev_release("other"))
    .file("prompts/answer.txt", template);
    repo.commit("answer prompt");
    repo.run(&["check", "releases/answer.yaml"]).exit(0);
    repo.branch("tweak");
    // Edited without re-pinning the digest: the change must not slip through.
    repo.file("prompts/answer.txt", "Answer rudely: {{question}}\n");
    repo.commit("tweak the prompt");
    let run = repo.run(&["check", "--changed", "--base", "main", "--format", "json"]);
    run.exit(1);
    let json = run.json();
    assert_eq!(checked(&json), ["releases/answer.yaml"]);
    assert_eq!(json["results"][0]["findings"][0]["rule"], "ARTIFACT-DIGEST");
}

#[test]
fn a_config_or_policy_change_rechecks_every_manifest() {
    let repo = two_releases_on_main();
    repo.file(
        "relgate.yaml",
        "apiVersion: relgate.dev/v1\nkind: GateConfig\nmanifests: [\"releases/**/*.yaml\"]\n",
    );
    repo.commit("config");
    let json = changed_json(&repo, &["--base", "main"]);
    assert_eq!(checked(&json), ["releases/a.yaml", "releases/b.yaml"]);
    assert!(json["notes"]
        .to_string()
        .contains("relgate.yaml changed (the gate configuration): every manifest is checked"));

    // A team policy: both manifests are checked; with the change's own rules (--rules head)
    // both are blocked by it, with the merge base's both pass and carry the warning.
    repo.checkout("main").branch("policy");
    repo.file(
        ".relgate/policies/team.rego",
        "package main\n\ndeny contains \"frozen\" if { input.manifest.kind == \"PromptRelease\" }\n",
    );
    let run = repo.run(&[
        "check",
        "--changed",
        "--base",
        "main",
        "--rules",
        "head",
        "--format",
        "json",
    ]);
    run.exit(1);
    let json = run.json();
    assert_eq!(checked(&json), ["releases/a.yaml", "releases/b.yaml"]);
    assert_eq!(json["summary"]["failed"], 2);
    let json = changed_json(&repo, &["--base", "main"]);
    assert_eq!(checked(&json), ["releases/a.yaml", "releases/b.yaml"]);
    assert_eq!(json["summary"]["warnings"], 2);
    assert!(json.to_string().contains("GATE-CONFIG-CHANGED"));
}

#[test]
fn uncommitted_work_counts_without_head_and_with_a_head_naming_the_checkout() {
    let repo = two_releases_on_main();
    repo.file("releases/new.yaml", dev_release("fresh")).file(
        "releases/a.yaml",
        dev_release("alpha").replace("bake_minutes: 30", "bake_minutes: 40"),
    );
    let json = changed_json(&repo, &["--base", "main"]);
    assert_eq!(checked(&json), ["releases/a.yaml", "releases/new.yaml"]);
    assert_eq!(json["changed"]["work_tree"], true);
    // The files are read from the work tree, so a --head naming the checked-out commit must
    // select by the work tree too: otherwise an edit on disk is read but never selected.
    for head in ["HEAD", "feature"] {
        let json = changed_json(&repo, &["--base", "main", "--head", head]);
        assert_eq!(checked(&json), ["releases/a.yaml", "releases/new.yaml"]);
        assert_eq!(json["changed"]["work_tree"], true);
        assert_eq!(json["changed"]["head"], head);
    }
}

#[test]
fn a_dirty_manifest_blocks_with_head_head_as_without_it() {
    let repo = two_releases_on_main();
    repo.file("releases/c.yaml", dev_release("gamma"));
    repo.commit("gamma");
    // Uncommitted: the reviewer's repro.
    repo.file(
        "releases/a.yaml",
        dev_release("alpha").replace("retention_days: 30", "retention_days: 3000"),
    );
    for extra in [&[][..], &["--head", "HEAD"][..]] {
        let mut args = vec!["check", "--changed", "--base", "main"];
        args.extend_from_slice(extra);
        repo.run(&args)
            .exit(1)
            .stdout_has("FAIL  releases/a.yaml:1")
            .stdout_has("PII-RETENTION")
            .stdout_has("the work tree on ");
    }
    // A --head naming another commit still reads that commit, not the dirty work tree.
    repo.run(&["check", "--changed", "--base", "main", "--head", "main"])
        .exit(0)
        .stdout_has("no release manifests changed");
}

#[test]
fn a_diverged_branch_is_compared_from_its_merge_base() {
    let repo = two_releases_on_main();
    repo.file("releases/feature.yaml", dev_release("feature"));
    let feature = repo.commit("feature release");
    // main moves on after the fork: its changes are not the feature's.
    repo.checkout("main");
    repo.file("releases/later-on-main.yaml", dev_release("later"))
        .file(
            "releases/a.yaml",
            dev_release("alpha").replace("retention_days: 30", "retention_days: 900"),
        );
    repo.commit("main moves on");

    // From the feature branch's checkout.
    repo.checkout("feature");
    let json = changed_json(&repo, &["--base", "main", "--head", "feature"]);
    assert_eq!(checked(&json), ["releases/feature.yaml"]);
    assert_eq!(json["changed"]["head_commit"], feature.as_str());

    // From main's checkout: the head commit's files are read from its tree, where
    // releases/feature.yaml exists and releases/a.yaml is still the passing one.
    repo.checkout("main");
    assert!(!repo.path().join("releases/feature.yaml").exists());
    let run = repo.run(&[
        "check",
        "--changed",
        "--base",
        "main",
        "--head",
        "feature",
        "--format",
        "json",
    ]);
    run.exit(0);
    let json = run.json();
    assert_eq!(checked(&json), ["releases/feature.yaml"]);
    assert_eq!(json["changed"]["work_tree"], false);
}

#[cfg(unix)]
#[test]
fn head_tree_symlinks_cannot_lead_out_of_the_repository() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("alpha"));
    repo.commit("alpha");
    repo.branch("sneaky");
    repo.file(
        "releases/b.yaml",
        eval_release("beta", "evals/b.json", "{}"),
    );
    std::fs::create_dir_all(repo.path().join("evals")).expect("mkdir");
    std::os::unix::fs::symlink("/etc/hostname", repo.path().join("evals/b.json")).expect("symlink");
    repo.commit("evidence through a symlink");
    repo.checkout("main");
    let run = repo.run(&[
        "check",
        "--changed",
        "--base",
        "main",
        "--head",
        "sneaky",
        "--format",
        "json",
    ]);
    run.exit(1);
    let json = run.json();
    assert_eq!(checked(&json), ["releases/b.yaml"]);
    let finding = &json["results"][0]["findings"][0];
    assert_eq!(finding["rule"], "EVIDENCE-UNREADABLE", "{json:#}");
    assert!(finding["message"]
        .to_string()
        .contains("leaves the gate root"));
}

#[test]
fn a_bad_revision_is_exit_2_with_how_to_fix_it() {
    let repo = two_releases_on_main();
    repo.run(&["check", "--changed", "--base", "origin/main"])
        .exit(2)
        .no_panic()
        .stderr_has("--base origin/main: no such revision here")
        .stderr_has("git fetch origin main");
    repo.run(&["check", "--changed", "--base", "main", "--head", "nope"])
        .exit(2)
        .stderr_has("--head nope: no such revision here");
    repo.run(&["check", "--base", "main"])
        .exit(2)
        .stderr_has("--changed");
}

#[test]
fn unrelated_histories_are_exit_2() {
    let repo = two_releases_on_main();
    repo.file("releases/c.yaml", dev_release("gamma"));
    repo.commit_orphan("elsewhere", "a history of its own");
    repo.run(&["check", "--changed", "--base", "main"])
        .exit(2)
        .no_panic()
        .stderr_has("main and HEAD have no merge base")
        .stderr_has("unrelated histories");
}

#[test]
fn a_shallow_clone_without_the_merge_base_says_to_fetch_history() {
    let origin = two_releases_on_main();
    origin.checkout("main");
    origin.file("releases/c.yaml", dev_release("gamma"));
    origin.commit("gamma");
    origin.file("releases/d.yaml", dev_release("delta"));
    origin.commit("delta");
    let clone = Repo::new();
    let status = std::process::Command::new("git")
        .args(["clone", "--quiet", "--depth", "1", "--no-single-branch"])
        .arg(format!("file://{}", origin.path().display()))
        .arg(clone.path())
        .status()
        .expect("run git clone");
    assert!(status.success());
    clone
        .run(&["check", "--changed", "--base", "origin/feature"])
        .exit(2)
        .no_panic()
        .stderr_has("no merge base")
        .stderr_has("this clone is shallow")
        .stderr_has("fetch-depth: 0");
}

#[test]
fn the_default_base_is_the_upstream_branch() {
    let origin = two_releases_on_main();
    origin.checkout("main");
    let clone = Repo::clone_of(&origin);
    clone.file("releases/c.yaml", dev_release("gamma"));
    let json = changed_json(&clone, &[]);
    assert_eq!(json["changed"]["base"], "origin/main");
    assert_eq!(checked(&json), ["releases/c.yaml"]);
}

#[test]
fn path_arguments_intersect_with_the_change() {
    let repo = two_releases_on_main();
    repo.file("releases/team-a/x.yaml", dev_release("x"))
        .file("releases/team-b/y.yaml", dev_release("y"));
    let json = changed_json(&repo, &["--base", "main", "releases/team-a"]);
    assert_eq!(checked(&json), ["releases/team-a/x.yaml"]);
}

#[test]
fn a_gate_root_in_a_subdirectory_reports_paths_relative_to_it() {
    let repo = Repo::git();
    repo.file(
        "demo/relgate.yaml",
        "apiVersion: relgate.dev/v1\nkind: GateConfig\n",
    )
    .file("demo/releases/a.yaml", dev_release("alpha"))
    .file("elsewhere/releases/z.yaml", dev_release("zeta"));
    repo.commit("demo");
    repo.branch("feature");
    repo.file("demo/releases/b.yaml", dev_release("beta"))
        .file("elsewhere/releases/y.yaml", dev_release("ypsilon"));
    repo.commit("beta");
    let run = repo.run_in(
        "demo",
        &["check", "--changed", "--base", "main", "--format", "json"],
    );
    run.exit(0);
    assert_eq!(checked(&run.json()), ["releases/b.yaml"]);
    // And from a head commit's tree.
    repo.checkout("main");
    let run = repo.run_in(
        "demo",
        &[
            "check",
            "--changed",
            "--base",
            "main",
            "--head",
            "feature",
            "--format",
            "json",
        ],
    );
    run.exit(0);
    assert_eq!(checked(&run.json()), ["releases/b.yaml"]);
}

#[test]
fn record_records_only_what_changed() {
    let repo = two_releases_on_main();
    repo.file("releases/c.yaml", dev_release("gamma"));
    repo.commit("gamma");
    let keys = tempfile::tempdir().expect("tmp");
    let out = keys.path().join("k");
    repo.run(&["keygen", "--out", out.to_str().expect("utf8")])
        .exit(0);
    let key = out.join("relgate-signing.pem");
    let ledger = tempfile::tempdir().expect("tmp");
    let args = [
        "record",
        "--key",
        key.to_str().expect("utf8"),
        "--ledger-dir",
        ledger.path().to_str().expect("utf8"),
        "--changed",
        "--base",
        "main",
    ];
    repo.run_env(&args, &[])
        .exit(0)
        .stdout_has("PASS  releases/c.yaml")
        .stdout_lacks("releases/a.yaml")
        .stderr_has("appended record 1 ");
    // record reads the work tree: another head commit is refused, not recorded.
    repo.checkout("main");
    let mut other = args.to_vec();
    other.extend(["--head", "feature"]);
    repo.run_env(&other, &[])
        .exit(2)
        .stderr_has("--head feature is not the checked-out commit");
}

#[test]
fn nothing_changed_passes_with_a_clear_message() {
    let repo = two_releases_on_main();
    repo.file("README.md", "docs only\n");
    let run = repo.run(&["check", "--changed", "--base", "main"]);
    run.exit(0)
        .stdout_has("no release manifests changed between main (merge base ");
    let json = changed_json(&repo, &["--base", "main"]);
    assert_eq!(json["decision"], "pass");
    assert_eq!(json["summary"]["manifests"], 0);
    repo.run(&["check", "--changed", "--base", "main", "--format", "github"])
        .exit(0)
        .stdout_has("::notice title=relgate::no release manifests changed");
}

#[test]
fn changed_text_run() {
    let repo = Repo::git();
    let evidence = r#"{"pass_rate": 0.97}"#;
    repo.file(
        "releases/a.yaml",
        eval_release("alpha", "evals/a.json", evidence),
    )
    // Unlike any other file, so its deletion is not taken for a rename.
    .file(
        "releases/old.yaml",
        format!(
            "{}{}",
            (0..60)
                .map(|i| format!("# history line {i}\n"))
                .collect::<String>(),
            dev_release("old")
        ),
    )
    .file("releases/same.yaml", dev_release("same"))
    .file("evals/a.json", evidence);
    repo.commit("start");
    repo.branch("feature");
    repo.file("evals/a.json", r#"{"pass_rate": 0.42}"#)
        .file(
            "releases/new.yaml",
            dev_release("new").replace("retention_days: 30", "retention_days: 900"),
        )
        .remove("releases/old.yaml");
    repo.commit("rerun alpha, add new, retire old");
    let run = repo.run(&["check", "--changed", "--base", "main"]);
    run.exit(1);
    insta::assert_snapshot!("changed_text", run.stdout);
}

#[test]
fn a_manifest_moved_out_of_the_manifest_set_is_an_error_not_a_removal() {
    // The release still exists, outside the gate's sight: delete it to retire it.
    let repo = two_releases_on_main();
    repo.rename("releases/b.yaml", "archive/b.yaml");
    repo.commit("archive beta");
    let json = changed_json(&repo, &["--base", "main"]);
    assert_eq!(json["decision"], "error");
    assert_eq!(checked(&json), ["releases/b.yaml"]);
    let error = json["results"][0]["error"].as_str().expect("error");
    assert!(
        error.contains("renames this release manifest to archive/b.yaml"),
        "{error}"
    );
    assert!(error.contains("delete it to retire the release"), "{error}");
    assert_eq!(json["removed"], serde_json::json!([]));
}

#[test]
fn an_unreadable_manifest_is_checked_rather_than_assumed_unaffected() {
    let repo = two_releases_on_main();
    repo.file("releases/broken.yaml", "apiVersion: [unclosed\n");
    repo.commit("a broken file on the branch");
    repo.branch("next");
    repo.file("evals/x.json", "{}");
    let run = repo.run(&[
        "check",
        "--changed",
        "--base",
        "feature",
        "--format",
        "json",
    ]);
    run.exit(2);
    let json = run.json();
    assert_eq!(checked(&json), ["releases/broken.yaml"]);
    assert!(json["notes"].to_string().contains(
        "releases/broken.yaml is checked because it cannot be read to see which files it references"
    ));
}

/// Runs the git command line in `dir` with a fixed identity (for what the DSL does not cover:
/// submodules).
fn git(dir: &std::path::Path, args: &[&str]) {
    let output = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=relgate test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "protocol.file.allow=always",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn notes(json: &serde_json::Value) -> String {
    json["notes"].to_string()
}

#[test]
fn narrowing_the_manifests_globs_cannot_hide_an_edited_release() {
    let repo = Repo::git();
    repo.file(
        "releases/support-answer.yaml",
        dev_release("support-answer"),
    )
    .file("releases/other.yaml", dev_release("other"));
    repo.commit("two releases");
    repo.branch("sneaky");
    // The reviewer's repro: the same change moves the globs away and breaks the release.
    repo.file(
        "relgate.yaml",
        "apiVersion: relgate.dev/v1\nkind: GateConfig\nmanifests: [\"releases/**/*.yml\"]\n",
    )
    .file(
        "releases/support-answer.yaml",
        dev_release("support-answer").replace("retention_days: 30", "retention_days: 3000"),
    );
    repo.commit("new globs");
    let run = repo.run(&["check", "--changed", "--base", "main", "--format", "json"]);
    run.exit(1);
    let json = run.json();
    // Every manifest either configuration selects is checked: the config changed.
    assert_eq!(
        checked(&json),
        ["releases/other.yaml", "releases/support-answer.yaml"]
    );
    assert_eq!(json["results"][1]["decision"], "fail");
    let text = notes(&json);
    assert!(text.contains(
        "the change edits the `manifests` globs (releases/**/*.yaml at the merge base, releases/**/*.yml at head)"
    ), "{text}");
    assert!(text.contains(
        "this change modifies the gate's configuration/policies (relgate.yaml); they decide this very check — protect them with CODEOWNERS (docs/changed.md)"
    ), "{text}");

    // Deleting it in the same change: listed as removed, although head's globs never
    // selected it.
    repo.remove("releases/support-answer.yaml");
    let json = changed_json(&repo, &["--base", "main"]);
    assert_eq!(checked(&json), ["releases/other.yaml"]);
    assert_eq!(json["removed"][0]["file"], "releases/support-answer.yaml");
}

#[test]
fn the_merge_base_globs_count_without_a_config_change_in_the_work_tree_range() {
    // The base's relgate.yaml selects deploy/; head's (committed on the branch) does not. An
    // edit to a deploy/ release in a later commit is checked by the base's globs.
    let repo = Repo::git();
    repo.file(
        "relgate.yaml",
        "apiVersion: relgate.dev/v1\nkind: GateConfig\nmanifests: [\"deploy/*.yaml\"]\n",
    )
    .file("deploy/a.yaml", dev_release("alpha"));
    repo.commit("deploy/ is gated");
    repo.branch("feature");
    repo.file(
        "relgate.yaml",
        "apiVersion: relgate.dev/v1\nkind: GateConfig\nmanifests: [\"releases/*.yaml\"]\n",
    )
    .file(
        "deploy/a.yaml",
        dev_release("alpha").replace("retention_days: 30", "retention_days: 3000"),
    );
    let run = repo.run(&["check", "--changed", "--base", "main"]);
    run.exit(1).stdout_has("FAIL  deploy/a.yaml:1");
}

#[test]
fn a_config_change_that_leaves_no_manifest_is_an_error_not_a_pass() {
    let repo = Repo::git();
    repo.file("README.md", "no releases yet\n");
    repo.commit("start");
    repo.branch("config");
    repo.file(
        "relgate.yaml",
        "apiVersion: relgate.dev/v1\nkind: GateConfig\nmanifests: [\"nowhere/*.yaml\"]\n",
    );
    let run = repo.run(&["check", "--changed", "--base", "main", "--format", "json"]);
    run.exit(2);
    let json = run.json();
    assert_eq!(json["decision"], "error");
    assert_eq!(json["summary"]["manifests"], 0);
    assert!(notes(&json).contains("no manifests found: the change touches the gate's configuration/policies, so every manifest is to be checked, but the `manifests` globs (nowhere/*.yaml; at the merge base releases/**/*.yaml) select none"), "{json:#}");
    repo.run(&["check", "--changed", "--base", "main"])
        .exit(2)
        .stdout_has("no manifests found");
    repo.run(&[
        "check",
        "--changed",
        "--base",
        "main",
        "--format",
        "markdown",
    ])
    .exit(2)
    .stdout_has("no manifests were checked");

    // Deleting the last release together with a policy change: listed, and still an error.
    let repo = two_releases_on_main();
    repo.remove("releases/a.yaml")
        .remove("releases/b.yaml")
        .file(".relgate/policies/team.rego", "package main\n");
    let json = changed_json(&repo, &["--base", "main"]);
    assert_eq!(json["decision"], "error");
    assert_eq!(json["removed"].as_array().map(Vec::len), Some(2));
}

#[cfg(unix)]
#[test]
fn a_retargeted_directory_symlink_rechecks_the_manifests_referencing_files_below_it() {
    let repo = Repo::git();
    let template = "Answer politely: {{question}}\n";
    repo.file(
        "releases/answer.yaml",
        git_prompt_release(
            "answer",
            "templates/answer.txt",
            &sha256(template.as_bytes()),
        ),
    )
    .file("releases/other.yaml", dev_release("other"))
    .file("templates-v1/answer.txt", template)
    .file("templates-v2/answer.txt", "Answer rudely: {{question}}\n");
    std::os::unix::fs::symlink("templates-v1", repo.path().join("templates")).expect("symlink");
    repo.commit("templates -> templates-v1");
    repo.run(&["check"]).exit(0);
    repo.branch("retarget");
    std::fs::remove_file(repo.path().join("templates")).expect("rm link");
    std::os::unix::fs::symlink("templates-v2", repo.path().join("templates")).expect("symlink");
    repo.commit("templates -> templates-v2");
    // Committed and checked out, from another checkout, and uncommitted.
    for args in [
        &["--base", "main"][..],
        &["--base", "main", "--head", "retarget"][..],
    ] {
        let json = changed_json(&repo, args);
        assert_eq!(checked(&json), ["releases/answer.yaml"], "{args:?}");
        assert_eq!(json["results"][0]["findings"][0]["rule"], "ARTIFACT-DIGEST");
        assert!(notes(&json).contains(
            "releases/answer.yaml is checked because templates, which holds templates/answer.txt that it references, changed"
        ), "{json:#}");
    }
    repo.checkout("main");
    let json = changed_json(&repo, &["--base", "main", "--head", "retarget"]);
    assert_eq!(checked(&json), ["releases/answer.yaml"]);
    assert_eq!(json["decision"], "fail");
}

#[cfg(unix)]
#[test]
fn a_retargeted_directory_symlink_named_as_a_path_rechecks_its_manifests() {
    let repo = Repo::git();
    repo.file("teams/v1/a.yaml", dev_release("alpha")).file(
        "teams/v2/a.yaml",
        dev_release("alpha").replace("retention_days: 30", "retention_days: 3000"),
    );
    std::os::unix::fs::symlink("../teams/v1", repo.path().join("current")).expect("symlink");
    repo.commit("current -> v1");
    repo.branch("switch");
    std::fs::remove_file(repo.path().join("current")).expect("rm link");
    std::os::unix::fs::symlink("teams/v2", repo.path().join("current")).expect("symlink");
    let run = repo.run(&["check", "--changed", "--base", "main", "current"]);
    // Reported under the path as given (discovery names files by their path in the tree).
    run.exit(1).stdout_has("FAIL  current/a.yaml:1");
}

#[test]
fn a_moved_submodule_rechecks_the_manifests_referencing_files_in_it() {
    let prompts = Repo::git();
    let template = "Answer politely: {{question}}\n";
    prompts.file("answer.txt", template);
    git(prompts.path(), &["add", "-A"]);
    git(prompts.path(), &["commit", "-q", "-m", "v1"]);
    git(prompts.path(), &["branch", "-M", "main"]);

    let repo = Repo::new();
    git(repo.path(), &["init", "-q", "-b", "main"]);
    let url = prompts.path().to_str().expect("utf8 path");
    git(repo.path(), &["submodule", "add", "-q", url, "templates"]);
    repo.file(
        "releases/answer.yaml",
        git_prompt_release(
            "answer",
            "templates/answer.txt",
            &sha256(template.as_bytes()),
        ),
    )
    .file("releases/other.yaml", dev_release("other"));
    git(repo.path(), &["add", "-A"]);
    git(
        repo.path(),
        &["commit", "-q", "-m", "prompts as a submodule"],
    );
    repo.run(&["check"]).exit(0);

    git(repo.path(), &["checkout", "-q", "-b", "bump"]);
    let sub = repo.path().join("templates");
    std::fs::write(sub.join("answer.txt"), "Answer rudely: {{question}}\n").expect("write");
    git(&sub, &["commit", "-q", "-am", "v2"]);
    // The submodule moved, not yet committed in the superproject: the work tree counts.
    let json = changed_json(&repo, &["--base", "main"]);
    assert_eq!(checked(&json), ["releases/answer.yaml"]);
    assert_eq!(json["results"][0]["findings"][0]["rule"], "ARTIFACT-DIGEST");
    // Committed.
    git(repo.path(), &["commit", "-q", "-am", "bump prompts"]);
    let json = changed_json(&repo, &["--base", "main"]);
    assert_eq!(checked(&json), ["releases/answer.yaml"]);
    assert_eq!(json["decision"], "fail");
    assert!(notes(&json).contains(
        "releases/answer.yaml is checked because templates, which holds templates/answer.txt that it references, changed"
    ), "{json:#}");
}

#[cfg(unix)]
#[test]
fn an_edit_through_a_symlinked_policy_directory_rechecks_everything() {
    let repo = Repo::git();
    repo.file(
        "relgate.yaml",
        "apiVersion: relgate.dev/v1\nkind: GateConfig\npolicies: [teampol]\n",
    )
    .file("releases/a.yaml", dev_release("alpha"))
    .file("releases/b.yaml", dev_release("beta"))
    .file("shared/pol/deny.rego", "package main\n");
    std::os::unix::fs::symlink("shared/pol", repo.path().join("teampol")).expect("symlink");
    repo.commit("team policies through a link");
    repo.run(&["check"]).exit(0);
    repo.branch("freeze");
    repo.file(
        "shared/pol/deny.rego",
        "package main\n\ndeny contains \"frozen\" if { input.manifest.kind == \"PromptRelease\" }\n",
    );
    repo.commit("freeze");
    // The change's own policy decides only with --rules head (the default is the base's).
    let run = repo.run(&[
        "check",
        "--changed",
        "--base",
        "main",
        "--rules",
        "head",
        "--format",
        "json",
    ]);
    run.exit(1);
    let json = run.json();
    assert_eq!(checked(&json), ["releases/a.yaml", "releases/b.yaml"]);
    assert_eq!(json["summary"]["failed"], 2);
    let text = notes(&json);
    assert!(text.contains(
        "shared/pol/deny.rego changed (a policy directory of relgate.yaml): every manifest is checked"
    ), "{text}");
    assert!(
        text.contains("(shared/pol/deny.rego); they decide this very check"),
        "{text}"
    );

    // Retargeting the link itself is a policy change too.
    repo.checkout("main").branch("relink");
    repo.file("other/pol/deny.rego", "package main\n");
    std::fs::remove_file(repo.path().join("teampol")).expect("rm link");
    std::os::unix::fs::symlink("other/pol", repo.path().join("teampol")).expect("symlink");
    let json = changed_json(&repo, &["--base", "main"]);
    assert_eq!(checked(&json), ["releases/a.yaml", "releases/b.yaml"]);
    let text = notes(&json);
    assert!(text.contains("every manifest is checked"), "{text}");
    assert!(text.contains("teampol"), "{text}");
}

#[test]
fn unrelated_files_beside_the_policies_do_not_recheck_everything() {
    let repo = two_releases_on_main();
    repo.file(".relgate/policies/README.md", "how we write policies\n");
    let json = changed_json(&repo, &["--base", "main"]);
    assert_eq!(checked(&json), Vec::<String>::new());
    assert_eq!(json["decision"], "pass");
}

#[cfg(unix)]
#[test]
fn the_merge_base_config_is_followed_through_a_symlink() {
    let repo = Repo::git();
    repo.file(
        "config/gate.yaml",
        "apiVersion: relgate.dev/v1\nkind: GateConfig\nmanifests: [\"deploy/*.yaml\"]\n",
    )
    .file("deploy/a.yaml", dev_release("alpha"));
    std::os::unix::fs::symlink("config/gate.yaml", repo.path().join("relgate.yaml"))
        .expect("symlink");
    repo.commit("config through a link");
    repo.run(&["check"])
        .exit(0)
        .stdout_has("PASS  deploy/a.yaml");
    repo.branch("feature");
    repo.remove("relgate.yaml").file(
        "relgate.yaml",
        "apiVersion: relgate.dev/v1\nkind: GateConfig\nmanifests: [\"releases/*.yaml\"]\n",
    );
    repo.file(
        "deploy/a.yaml",
        dev_release("alpha").replace("retention_days: 30", "retention_days: 3000"),
    );
    repo.commit("unlink the config, edit the release");
    let json = changed_json(&repo, &["--base", "main"]);
    assert_eq!(checked(&json), ["deploy/a.yaml"]);
    assert_eq!(json["decision"], "fail");
}

#[test]
fn a_manifest_moved_out_of_the_gate_root_is_an_error_not_a_removal() {
    // The gate root is ml/: a manifest moved to archive/ at the repository's top left the
    // root's diff as a deletion and passed unchecked.
    let repo = Repo::git();
    repo.file(
        "ml/relgate.yaml",
        "apiVersion: relgate.dev/v1\nkind: GateConfig\n",
    )
    .file("ml/releases/a.yaml", dev_release("a"))
    .file("ml/releases/b.yaml", dev_release("b"));
    repo.commit("start");
    repo.branch("feature");
    repo.rename("ml/releases/b.yaml", "archive/b.yaml");
    repo.commit("move beta out of the gate root");
    let run = repo.run_in(
        "ml",
        &["check", "--changed", "--base", "main", "--format", "json"],
    );
    run.exit(2);
    let json = run.json();
    let error = json["results"][0]["error"].as_str().expect("error");
    assert!(
        error.contains("renames this release manifest to ../archive/b.yaml"),
        "{error}"
    );
    assert_eq!(json["removed"], serde_json::json!([]));
}
