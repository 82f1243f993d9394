//! Discovery and policy loading: symlinks, FIFOs and other non-regular files, file names with
//! control characters, duplicate policy directories and recursive Rego. The pull-request author
//! controls every file; none of these may hide a manifest, drop a deny rule, hang the gate or
//! abort it. Runs that could hang go through [`run_with_deadline`], which kills relgate when it
//! overruns so the test fails instead of hanging the suite.
#![cfg(unix)]

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{self, dev_release, Repo, NOW};

/// A release the built-in schema blocks (`tier` must be an integer): exit 1 with a SCHEMA
/// finding when it is checked, exit 0 if discovery skips it.
fn blocked_release(name: &str) -> String {
    dev_release(name).replace("tier: 3", "tier: \"three\"")
}

/// The outcome of a run that had a deadline.
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn says(&self, text: &str) -> bool {
        self.stdout.contains(text) || self.stderr.contains(text)
    }

    fn show(&self) -> String {
        format!(
            "exit {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// Exit code and a text the output must hold; never a panic.
    fn expect(&self, code: i32, text: &str) -> &Self {
        assert_eq!(self.code, Some(code), "{}", self.show());
        assert!(self.says(text), "output lacks {text:?}\n{}", self.show());
        assert!(!self.stderr.contains("panicked"), "{}", self.show());
        self
    }
}

/// Runs `relgate ARGS` in `dir`, killing it after `deadline`: a hang fails the test (with
/// what relgate printed so far) instead of hanging the suite.
fn run_with_deadline(dir: &Path, args: &[&str], deadline: Duration) -> Outcome {
    let mut cmd = Command::new(crate::support::relgate_bin());
    cmd.args(args)
        .current_dir(dir)
        .env("RELGATE_NOW", NOW)
        .env("NO_COLOR", "1")
        .env_remove("RELGATE_SIGNING_KEY");
    let run = support::run_with_deadline(cmd, deadline);
    let outcome = Outcome {
        code: run.code,
        stdout: run.stdout,
        stderr: run.stderr,
    };
    assert!(
        !run.killed,
        "relgate {} hung for {deadline:?} and was killed\n{}",
        args.join(" "),
        outcome.show()
    );
    outcome
}

fn run(repo: &Repo, args: &[&str]) -> Outcome {
    run_with_deadline(repo.path(), args, Duration::from_secs(60))
}

fn mkfifo(path: &Path) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

fn link(repo: &Repo, target: impl AsRef<Path>, at: &str) {
    let at = repo.path().join(at);
    std::fs::create_dir_all(at.parent().expect("parent")).expect("mkdir");
    symlink(target, at).expect("symlink");
}

/// The JSON result of `file`, which must be in the report.
fn result_of(run: &Outcome, file: &str) -> serde_json::Value {
    let json: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", run.show()));
    json["results"]
        .as_array()
        .and_then(|results| results.iter().find(|r| r["file"] == file).cloned())
        .unwrap_or_else(|| panic!("{file} not reported\n{}", run.show()))
}

// ---------------------------------------------------------------------------------------------
// Symlinks

#[test]
fn a_symlinked_manifest_inside_the_root_is_checked_under_its_own_name() {
    let repo = Repo::git();
    repo.file("releases/good.yaml", dev_release("good"))
        .file("store/bad.yaml", blocked_release("bad"));
    link(&repo, "../store/bad.yaml", "releases/bad.yaml");
    // A hard link is an ordinary file: checked like one.
    std::fs::hard_link(
        repo.path().join("store/bad.yaml"),
        repo.path().join("releases/hard.yaml"),
    )
    .expect("hard link");
    for args in [
        vec!["check", "--format", "json"],
        vec!["check", "releases", "--format", "json"],
        vec!["check", "releases/bad.yaml", "--format", "json"],
    ] {
        let outcome = run(&repo, &args);
        outcome.expect(1, "SCHEMA");
        assert_eq!(result_of(&outcome, "releases/bad.yaml")["decision"], "fail");
        if args.len() == 3 {
            assert_eq!(
                result_of(&outcome, "releases/hard.yaml")["decision"],
                "fail"
            );
            assert_eq!(
                result_of(&outcome, "releases/good.yaml")["decision"],
                "pass"
            );
        }
    }
}

#[test]
fn a_symlinked_directory_under_releases_is_walked() {
    let repo = Repo::git();
    repo.file("releases/good.yaml", dev_release("good"))
        .file("store/team/bad.yaml", blocked_release("bad"));
    link(&repo, "../store/team", "releases/team");
    for args in [
        vec!["check", "--format", "json"],
        vec!["check", "releases", "--format", "json"],
    ] {
        let outcome = run(&repo, &args);
        outcome.expect(1, "SCHEMA");
        assert_eq!(
            result_of(&outcome, "releases/team/bad.yaml")["decision"],
            "fail"
        );
    }
    // The same file reached by two paths is checked (and reported) under each path.
    link(&repo, "../store/team", "releases/also");
    let outcome = run(&repo, &["check", "releases", "--format", "json"]);
    outcome.expect(1, "SCHEMA");
    for file in ["releases/team/bad.yaml", "releases/also/bad.yaml"] {
        assert_eq!(result_of(&outcome, file)["decision"], "fail");
    }
}

#[test]
fn symlinks_out_of_the_root_are_errors_not_skips() {
    let repo = Repo::git();
    repo.file("releases/good.yaml", dev_release("good"));
    link(&repo, "/etc/passwd", "releases/passwd.yaml");
    let outcome = run(&repo, &["check", "--format", "json"]);
    outcome.expect(2, "leaves the gate root");
    assert_eq!(
        result_of(&outcome, "releases/passwd.yaml")["decision"],
        "error"
    );

    // /dev/zero through a symlink: refused, not read forever.
    std::fs::remove_file(repo.path().join("releases/passwd.yaml")).expect("rm");
    link(&repo, "/dev/zero", "releases/zero.yaml");
    run(&repo, &["check", "releases/zero.yaml"]).expect(2, "leaves the gate root");
    run(&repo, &["check"]).expect(2, "releases/zero.yaml");

    // A symlinked directory out of the root is an error too, not a silent skip.
    std::fs::remove_file(repo.path().join("releases/zero.yaml")).expect("rm");
    let outside = tempfile::tempdir().expect("outside");
    std::fs::write(outside.path().join("x.yaml"), dev_release("x")).expect("write");
    link(&repo, outside.path(), "releases/outside");
    run(&repo, &["check"]).expect(2, "releases/outside");
    run(&repo, &["check", "releases"]).expect(2, "leaves the gate root");
}

#[test]
fn symlink_loops_are_reported_not_followed_forever() {
    let repo = Repo::git();
    repo.file("releases/good.yaml", dev_release("good"));
    link(&repo, "b.yaml", "releases/a.yaml");
    link(&repo, "a.yaml", "releases/b.yaml");
    let outcome = run(&repo, &["check", "--format", "json"]);
    assert_eq!(outcome.code, Some(2), "{}", outcome.show());
    assert_eq!(result_of(&outcome, "releases/a.yaml")["decision"], "error");
    assert_eq!(
        result_of(&outcome, "releases/good.yaml")["decision"],
        "pass"
    );
    std::fs::remove_file(repo.path().join("releases/a.yaml")).expect("rm");
    std::fs::remove_file(repo.path().join("releases/b.yaml")).expect("rm");
    link(&repo, "..", "releases/up");
    run(&repo, &["check", "releases"]).expect(2, "symlink loop");
}

#[test]
fn a_symlinked_path_argument_does_not_move_the_gate_root() {
    let repo = Repo::git();
    // The trusted side: a team policy in the repository's root config blocks `bad`.
    repo.file(
        ".relgate/policies/team.rego",
        "package main\n\ndeny contains \"team says no\" if input.manifest.metadata.name == \"bad\"\n",
    )
    // The attacker's side: a config planted next to the link's target, naming no policies.
    .file(
        "attacker/relgate.yaml",
        "apiVersion: relgate.dev/v1\nkind: GateConfig\npolicies: []\n",
    )
    .file("attacker/bad.yaml", dev_release("bad"));
    link(&repo, "../attacker/bad.yaml", "releases/bad.yaml");
    run(&repo, &["check", "releases/bad.yaml"]).expect(1, "team says no");
    // The same through a symlinked directory given as PATH.
    link(&repo, "../attacker", "releases/team");
    run(&repo, &["check", "releases/team/bad.yaml"]).expect(1, "team says no");
}

// ---------------------------------------------------------------------------------------------
// Non-regular files

#[test]
fn a_fifo_manifest_is_refused_not_waited_on() {
    let repo = Repo::git();
    repo.file("releases/good.yaml", dev_release("good"));
    mkfifo(&repo.path().join("releases/fifo.yaml"));
    run(&repo, &["check", "releases/fifo.yaml"]).expect(2, "not a regular file");
    let outcome = run(&repo, &["check", "releases", "--format", "json"]);
    outcome.expect(2, "not a regular file");
    assert_eq!(
        result_of(&outcome, "releases/fifo.yaml")["decision"],
        "error"
    );
    assert_eq!(
        result_of(&outcome, "releases/good.yaml")["decision"],
        "pass"
    );
    run(&repo, &["check"]).expect(2, "releases/fifo.yaml");
    // Through a symlink inside the root too.
    std::fs::rename(
        repo.path().join("releases/fifo.yaml"),
        repo.path().join("fifo"),
    )
    .expect("mv");
    link(&repo, "../fifo", "releases/fifo.yaml");
    run(&repo, &["check"]).expect(2, "not a regular file");
}

#[test]
fn a_socket_manifest_is_refused() {
    let repo = Repo::git();
    repo.file("releases/good.yaml", dev_release("good"));
    let _listener = std::os::unix::net::UnixListener::bind(repo.path().join("releases/s.yaml"))
        .expect("bind socket");
    run(&repo, &["check", "releases"]).expect(2, "not a regular file");
    run(&repo, &["check", "releases/s.yaml"]).expect(2, "not a regular file");
}

#[test]
fn fifos_as_config_policy_or_data_are_refused() {
    let repo = Repo::git();
    repo.file("releases/good.yaml", dev_release("good"));
    mkfifo(&repo.path().join("relgate.yaml"));
    run(&repo, &["check", "releases"]).expect(2, "relgate.yaml: not a regular file");
    std::fs::remove_file(repo.path().join("relgate.yaml")).expect("rm");

    mkfifo(&repo.path().join("team/p.rego"));
    run(&repo, &["check", "releases", "-p", "team"]).expect(2, "team/p.rego");
    std::fs::remove_file(repo.path().join("team/p.rego")).expect("rm");

    mkfifo(&repo.path().join("data.yaml"));
    run(&repo, &["check", "releases", "--data", "data.yaml"])
        .expect(2, "data.yaml: not a regular file");
}

#[test]
fn a_two_gigabyte_sparse_manifest_is_refused_before_reading() {
    let repo = Repo::git();
    let file = std::fs::File::create(repo.path().join("releases/huge.yaml"))
        .or_else(|_| {
            std::fs::create_dir_all(repo.path().join("releases"))?;
            std::fs::File::create(repo.path().join("releases/huge.yaml"))
        })
        .expect("create");
    file.set_len(2 * 1024 * 1024 * 1024).expect("sparse 2 GiB");
    let started = Instant::now();
    run_with_deadline(repo.path(), &["check", "releases"], Duration::from_secs(30))
        .expect(2, "larger than the 4194304-byte limit");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn file_names_with_control_characters_are_refused() {
    let repo = Repo::git();
    repo.file("releases/good.yaml", dev_release("good")).file(
        "releases/x.yaml\nreleases/good.yaml: pass.yaml",
        blocked_release("x"),
    );
    run(&repo, &["check", "releases"]).expect(2, "control character");
    run(&repo, &["check"]).expect(2, "control character");
}

// ---------------------------------------------------------------------------------------------
// Extensions

#[test]
fn a_directory_walk_takes_yml_and_json_manifests() {
    let repo = Repo::git();
    let as_json = {
        let value: serde_json::Value =
            serde_yaml::from_str(&blocked_release("json")).expect("yaml");
        serde_json::to_string_pretty(&value).expect("json")
    };
    repo.file("releases/good.yaml", dev_release("good"))
        .file("releases/bad.yml", blocked_release("yml"))
        .file("releases/bad.json", as_json);
    let outcome = run(&repo, &["check", "releases", "--format", "json"]);
    outcome.expect(1, "SCHEMA");
    assert_eq!(result_of(&outcome, "releases/bad.yml")["decision"], "fail");
    assert_eq!(result_of(&outcome, "releases/bad.json")["decision"], "fail");
}

// ---------------------------------------------------------------------------------------------
// Policy loading

const TEAM_DENY: &str =
    "package main\n\ndeny contains \"team says no\" if input.manifest.metadata.name == \"a\"\n";

#[test]
fn a_policy_directory_named_twice_is_loaded_once_and_its_rules_still_deny() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("a"))
        .file("team/deny.rego", TEAM_DENY);
    run(&repo, &["check", "releases", "-p", "team"]).expect(1, "team says no");
    run(&repo, &["check", "releases", "-p", "team", "-p", "./team"]).expect(1, "team says no");
    repo.file(
        "relgate.yaml",
        "apiVersion: relgate.dev/v1\nkind: GateConfig\npolicies: [team]\n",
    );
    run(&repo, &["check", "releases"]).expect(1, "team says no");
    run(&repo, &["check", "releases", "-p", "team"]).expect(1, "team says no");
    run(&repo, &["check", "releases", "-p", "./team"]).expect(1, "team says no");
    // A symlinked second name for the same directory, and a symlinked policy file.
    link(&repo, "team", "team2");
    run(&repo, &["check", "releases", "-p", "team2"]).expect(1, "team says no");
    repo.file(
        "relgate.yaml",
        "apiVersion: relgate.dev/v1\nkind: GateConfig\npolicies: [team, ./team, team/]\n",
    );
    run(&repo, &["check", "releases"]).expect(1, "team says no");
}

#[test]
fn a_symlinked_policy_file_is_loaded_not_skipped() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("a"))
        .file("shared/deny.rego", TEAM_DENY);
    link(&repo, "../shared/deny.rego", "team/deny.rego");
    run(&repo, &["check", "releases", "-p", "team"]).expect(1, "team says no");
    // A policy symlinked from outside the repository is refused, not skipped.
    let outside = tempfile::tempdir().expect("outside");
    std::fs::write(outside.path().join("o.rego"), TEAM_DENY).expect("write");
    link(&repo, outside.path().join("o.rego"), "team/o.rego");
    run(&repo, &["check", "releases", "-p", "team"]).expect(2, "leaves the gate root");
}

fn assert_recursion_refused(policy: &str, located: &str) {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("a"))
        .file("team/rec.rego", policy);
    let outcome = run(&repo, &["check", "releases", "-p", "team"]);
    outcome.expect(2, "recursion");
    assert!(
        outcome.says(located),
        "lacks {located:?}\n{}",
        outcome.show()
    );
    // `relgate test` loads the same files: refused there too, never a crash.
    let outcome = run(&repo, &["test", "team"]);
    assert_ne!(outcome.code, Some(0), "{}", outcome.show());
    assert!(
        outcome.code == Some(1) || outcome.code == Some(2),
        "{}",
        outcome.show()
    );
}

#[test]
fn a_recursive_function_is_refused_at_load_time() {
    assert_recursion_refused(
        "package main\n\nf(x) := y if {\n  y := f(x)\n}\n\ndeny contains \"x\" if f(1)\n",
        "team/rec.rego:3",
    );
}

#[test]
fn mutual_recursion_between_functions_is_refused() {
    assert_recursion_refused(
        "package main\n\nf(x) := y if {\n  y := g(x)\n}\n\ng(x) := y if {\n  y := f(x)\n}\n\ndeny contains \"x\" if f(1)\n",
        "team/rec.rego:3",
    );
}

#[test]
fn recursion_through_rules_and_packages_is_refused() {
    assert_recursion_refused(
        "package main\n\na := b\n\nb := data.main.c\n\nc := a\n\ndeny contains \"x\" if a\n",
        "team/rec.rego:3",
    );
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("a"))
        .file(
            "team/one.rego",
            "package one\n\nimport data.two\n\nf(x) := two.g(x)\n",
        )
        .file("team/two.rego", "package two\n\ng(x) := data.one.f(x)\n")
        .file(
            "team/main.rego",
            "package main\n\nimport data.one\n\ndeny contains \"x\" if one.f(1)\n",
        );
    run(&repo, &["check", "releases", "-p", "team"]).expect(2, "recursion");
}

#[test]
fn ordinary_policies_that_share_names_are_not_mistaken_for_recursion() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("a")).file(
        "team/ok.rego",
        // A function argument in one package is named like a rule of another; functions
        // call functions with the same argument names; a rule reads another package's rule
        // of its own name. None of it is recursion.
        "package main\n\nimport data.helpers\n\nname := input.manifest.metadata.name\n\ndeny contains msg if {\n  some n in [\"a\"]\n  helpers.is(n)\n  msg := sprintf(\"team says no to %s\", [helpers.g(n)])\n}\n",
    )
    .file(
        "team/helpers.rego",
        "package helpers\n\nis(name) if name == data.main.name\n\nf(x) := x\n\ng(x) := f(x)\n\nname := data.main.name\n",
    );
    run(&repo, &["check", "releases", "-p", "team"]).expect(1, "team says no to a");
}
