//! In a pull request the gate's rules come from the base (docs/changed.md, "The gate's own
//! files"): with `--changed`, `relgate.yaml` and the policy directories it names are read from
//! the merge base, so a change cannot lower the bar it is judged by. Each test is an attack a
//! pull-request author can make on a repository whose `main` requires PRR-SEC-01 of every dev
//! release; each shows the attack works under the head's rules (`--rules head`) and is blocked
//! under the base's.

use crate::support::{dev_release, Repo};

/// The trusted gate configuration on `main`: every dev tier-3 release needs PRR-SEC-01, which
/// `dev_release` does not have.
const STRICT: &str = "\
apiVersion: relgate.dev/v1
kind: GateConfig
prr:
  required:
    dev:
      \"3\": [PRR-SEC-01]
";

/// The same configuration with the requirement dropped.
const LAX: &str = "\
apiVersion: relgate.dev/v1
kind: GateConfig
prr:
  required:
    dev:
      \"3\": []
";

/// A team policy that suppresses the blocking finding everywhere.
const ESCAPE: &str = "\
package main

import rego.v1

exception contains \"PRR-MISSING\" if true
";

/// `main` with the strict gate and one release, and branch `feature` checked out with that
/// release edited (so `--changed` selects it).
fn strict_main() -> Repo {
    let repo = Repo::git();
    repo.file("relgate.yaml", STRICT)
        .file("releases/a.yaml", dev_release("alpha"));
    repo.commit("gate and release");
    repo.branch("feature");
    repo.file(
        "releases/a.yaml",
        dev_release("alpha").replace("version: \"2\"", "version: \"3\""),
    );
    repo
}

fn changed(repo: &Repo, extra: &[&str]) -> crate::support::Run {
    let mut args = vec!["check", "--changed", "--base", "main"];
    args.extend_from_slice(extra);
    let run = repo.run(&args);
    run.no_panic();
    run
}

#[test]
fn dropping_a_required_prr_item_from_relgate_yaml_still_blocks() {
    let repo = strict_main();
    repo.file("relgate.yaml", LAX);
    repo.commit("drop the requirement");
    changed(&repo, &["--rules", "head"]).exit(0);
    changed(&repo, &[])
        .exit(1)
        .stdout_has("PRR-MISSING")
        .stdout_has("GATE-CONFIG-CHANGED")
        .stdout_has("prr.required.dev.3")
        .stdout_has("take effect after merge");
}

#[test]
fn an_exception_added_to_the_policy_directory_is_not_used() {
    let repo = strict_main();
    repo.file(".relgate/policies/escape.rego", ESCAPE);
    repo.commit("add an exception");
    changed(&repo, &["--rules", "head"]).exit(0);
    changed(&repo, &[])
        .exit(1)
        .stdout_has("PRR-MISSING")
        .stdout_has("GATE-CONFIG-CHANGED")
        .stdout_has(".relgate/policies/escape.rego (added)");
}

#[test]
fn a_policy_directory_added_to_relgate_yaml_is_not_used() {
    let repo = strict_main();
    repo.file(
        "relgate.yaml",
        format!("{STRICT}policies: [.relgate/policies, ours]\n"),
    )
    .file("ours/escape.rego", ESCAPE);
    repo.commit("add a team policy directory");
    changed(&repo, &["--rules", "head"]).exit(0);
    changed(&repo, &[])
        .exit(1)
        .stdout_has("PRR-MISSING")
        .stdout_has("GATE-CONFIG-CHANGED")
        .stdout_has("policies");
}

#[test]
fn relgate_yaml_replaced_by_a_symlink_is_read_from_the_base() {
    let repo = strict_main();
    repo.file("lax.yaml.txt", LAX);
    std::fs::remove_file(repo.path().join("relgate.yaml")).expect("rm");
    std::os::unix::fs::symlink("lax.yaml.txt", repo.path().join("relgate.yaml")).expect("ln");
    repo.commit("relgate.yaml -> lax");
    changed(&repo, &["--rules", "head"]).exit(0);
    changed(&repo, &[])
        .exit(1)
        .stdout_has("PRR-MISSING")
        .stdout_has("GATE-CONFIG-CHANGED");
}

#[test]
fn a_nearer_relgate_yaml_does_not_move_the_gate_root_away_from_the_base_rules() {
    let repo = strict_main();
    repo.file(
        "releases/relgate.yaml",
        format!("{LAX}manifests: [\"*.yaml\"]\n"),
    );
    repo.commit("a lax gate next to the release");
    // Head rules find the nearer (lax) configuration and pass.
    let head = repo.run_in(
        "releases",
        &["check", "--changed", "--base", "main", "--rules", "head"],
    );
    head.no_panic();
    head.exit(0);
    // Base rules: the base has no releases/relgate.yaml, so the gate root stays where the base
    // has one, and its rules decide. Its globs select the new file as a manifest, and a
    // GateConfig is not a release: that is an error too (exit 2), never a pass.
    let run = repo.run_in("releases", &["check", "--changed", "--base", "main"]);
    run.no_panic();
    run.exit(2)
        .stdout_has("PRR-MISSING")
        .stdout_has("the gate root is the top of the repository")
        .stdout_has("kind GateConfig is a gate configuration");
    let run = repo.run_in(
        "releases",
        &["check", "--changed", "--base", "main", "a.yaml"],
    );
    run.no_panic();
    run.exit(1).stdout_has("PRR-MISSING");
}

#[test]
fn deleting_a_nearer_base_config_does_not_fall_back_to_a_laxer_one_above() {
    let repo = Repo::git();
    repo.file("relgate.yaml", LAX)
        .file(
            "releases/relgate.yaml",
            format!("{STRICT}manifests: [\"*.yaml\"]\n"),
        )
        .file("releases/a.yaml", dev_release("alpha"));
    repo.commit("a strict gate for releases/");
    repo.branch("feature");
    repo.remove("releases/relgate.yaml").file(
        "releases/a.yaml",
        dev_release("alpha").replace("version: \"2\"", "version: \"3\""),
    );
    repo.commit("drop the strict gate");
    let run = repo.run_in("releases", &["check", "--changed", "--base", "main"]);
    run.no_panic();
    run.exit(1).stdout_has("PRR-MISSING");
}

#[test]
fn the_report_says_which_rules_were_used() {
    let repo = strict_main();
    repo.commit("edit the release");
    let merge_base = {
        let git = git2::Repository::open(repo.path()).expect("open");
        let id = git.revparse_single("main").expect("main").id();
        id.to_string()
    };
    let run = changed(&repo, &["--format", "json"]);
    run.exit(1);
    let json = run.json();
    assert_eq!(json["rules"]["from"], "base", "{json:#}");
    assert_eq!(json["rules"]["commit"], merge_base.as_str(), "{json:#}");
    changed(&repo, &[]).exit(1).stdout_has(&format!(
        "rules: relgate.yaml and policies of the merge base {}",
        &merge_base[..12]
    ));
    let head = changed(&repo, &["--rules", "head", "--format", "json"]);
    head.exit(1);
    assert_eq!(head.json()["rules"]["from"], "head");
    // Nothing of the gate changed: no GATE-CONFIG-CHANGED.
    changed(&repo, &[]).stdout_lacks("GATE-CONFIG-CHANGED");
}

#[test]
fn the_pull_request_that_introduces_relgate_uses_the_head_rules_with_a_note() {
    let repo = Repo::git();
    repo.file("README.md", "hello\n");
    repo.commit("before relgate");
    repo.branch("feature");
    repo.file("relgate.yaml", STRICT)
        .file("releases/a.yaml", dev_release("alpha"));
    repo.commit("adopt relgate");
    changed(&repo, &[])
        .exit(1)
        .stdout_has("PRR-MISSING")
        .stdout_has("the base has no relgate.yaml; the head's rules were used (first adoption)");
    let json = changed(&repo, &["--format", "json"]).json();
    assert_eq!(json["rules"]["from"], "head", "{json:#}");
}

#[test]
fn record_changed_uses_the_base_rules() {
    let repo = strict_main();
    repo.file("relgate.yaml", LAX)
        .file(".relgate/policies/escape.rego", ESCAPE);
    repo.commit("lower the bar");
    repo.run(&["keygen", "--out", "keys"]).exit(0);
    let run = repo.run(&[
        "record",
        "--changed",
        "--base",
        "main",
        "--key",
        "keys/relgate-signing.pem",
        "--ledger-dir",
        "ledger",
    ]);
    run.no_panic();
    run.exit(1)
        .stdout_has("PRR-MISSING")
        .stdout_has("GATE-CONFIG-CHANGED");
}

#[test]
fn a_manifest_renamed_out_of_the_globs_is_an_error_not_a_removal() {
    let repo = Repo::git();
    repo.file(
        "relgate.yaml",
        "apiVersion: relgate.dev/v1\nkind: GateConfig\nmanifests: [\"releases/**/*.yaml\"]\n",
    )
    .file("releases/a.yaml", dev_release("alpha"));
    repo.commit("release");
    repo.branch("feature");
    repo.rename("releases/a.yaml", "releases/a.yml");
    repo.commit("rename to .yml");
    changed(&repo, &[])
        .exit(2)
        .stdout_has("releases/a.yaml")
        .stdout_has("releases/a.yml")
        .stdout_has("keep it under the `manifests` globs")
        .stdout_lacks("removed: releases/a.yaml");
    // Deleting it is how a release is retired.
    let repo2 = Repo::git();
    repo2.file("releases/a.yaml", dev_release("alpha"));
    repo2.commit("release");
    repo2.branch("feature");
    repo2.remove("releases/a.yaml");
    repo2.commit("retire");
    changed(&repo2, &[])
        .exit(0)
        .stdout_has("removed: releases/a.yaml");
}

#[test]
fn editing_only_the_target_of_a_symlinked_manifest_rechecks_it() {
    let repo = Repo::git();
    repo.file("relgate.yaml", STRICT).file(
        "shared/a.yaml",
        dev_release("alpha").replace("tier: 3", "tier: 2"),
    );
    std::fs::create_dir_all(repo.path().join("releases")).expect("mkdir");
    std::os::unix::fs::symlink("../shared/a.yaml", repo.path().join("releases/a.yaml"))
        .expect("ln");
    repo.commit("a symlinked release");
    repo.branch("feature");
    // Into the tier the base requires PRR-SEC-01 of.
    repo.file("shared/a.yaml", dev_release("alpha"));
    repo.commit("edit the target only");
    changed(&repo, &["releases/a.yaml"])
        .exit(1)
        .stdout_has("PRR-MISSING");
}

#[test]
fn without_relgate_yaml_on_either_side_an_added_exception_is_not_used() {
    // A repository gated by the built-in defaults only: the base's rules are the defaults and
    // the base's `.relgate/policies` (none), not what the change adds there.
    let blocked = || dev_release("alpha").replace("retention_days: 30", "retention_days: 900");
    let repo = Repo::git();
    repo.file("releases/a.yaml", blocked());
    repo.commit("a release the defaults block");
    repo.branch("feature");
    repo.file(
        "releases/a.yaml",
        blocked().replace("version: \"2\"", "version: \"3\""),
    )
    .file(
        ".relgate/policies/escape.rego",
        ESCAPE.replace("PRR-MISSING", "PII-RETENTION"),
    );
    repo.commit("add an exception");
    changed(&repo, &["--rules", "head"]).exit(0);
    changed(&repo, &[])
        .exit(1)
        .stdout_has("PII-RETENTION")
        .stdout_has("GATE-CONFIG-CHANGED")
        .stdout_lacks("first adoption");
}

#[test]
fn a_head_commit_that_is_not_checked_out_is_judged_by_the_base_rules_too() {
    let repo = strict_main();
    repo.file("relgate.yaml", LAX)
        .file(".relgate/policies/escape.rego", ESCAPE);
    repo.commit("lower the bar");
    repo.checkout("main");
    changed(&repo, &["--head", "feature", "--rules", "head"]).exit(0);
    changed(&repo, &["--head", "feature"])
        .exit(1)
        .stdout_has("PRR-MISSING")
        .stdout_has("GATE-CONFIG-CHANGED");
}
