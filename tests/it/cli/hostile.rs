//! Bad and hostile input: every case ends with a clear message and exit 2 (or a SCHEMA
//! finding and exit 1), never a pass, never a panic; the other manifests of the run are still
//! reported.

use crate::support::{dev_release, Repo};

/// A repo with one good release beside the bad file, so every test also checks that the good
/// one is still decided.
fn repo_with_bad(rel: &str, contents: impl AsRef<[u8]>) -> Repo {
    let repo = Repo::git();
    repo.file("releases/good.yaml", dev_release("good"))
        .file(rel, contents);
    repo
}

fn assert_error(repo: &Repo, file: &str, message: &str) {
    let run = repo.run(&["check", "releases", "--format", "json"]);
    run.exit(2).no_panic();
    let json = run.json();
    let results = json["results"].as_array().expect("results");
    let bad = results
        .iter()
        .find(|r| r["file"] == file)
        .unwrap_or_else(|| panic!("{file} not reported: {json}"));
    assert_eq!(bad["decision"], "error");
    let error = bad["error"].as_str().unwrap_or_default();
    assert!(error.contains(message), "error {error:?} lacks {message:?}");
    let good = results
        .iter()
        .find(|r| r["file"] == "releases/good.yaml")
        .expect("good still reported");
    assert_eq!(good["decision"], "pass");
}

#[test]
fn invalid_utf8() {
    let repo = repo_with_bad(
        "releases/bad.yaml",
        b"apiVersion: relgate.dev/v1\nkind: \xff\xfe\n".as_slice(),
    );
    assert_error(
        &repo,
        "releases/bad.yaml",
        "releases/bad.yaml:2: not valid UTF-8 (byte 33)",
    );
}

#[test]
fn empty_file_and_comment_only_file() {
    let repo = repo_with_bad("releases/empty.yaml", "");
    assert_error(&repo, "releases/empty.yaml", "file holds no YAML document");
    let repo = repo_with_bad("releases/comments.yaml", "# nothing here\n");
    assert_error(
        &repo,
        "releases/comments.yaml",
        "file holds no YAML document",
    );
}

#[test]
fn non_mapping_documents() {
    let repo = repo_with_bad("releases/list.yaml", "- a\n- b\n");
    assert_error(
        &repo,
        "releases/list.yaml",
        "document 0 is a sequence, expected a mapping",
    );
    let repo = repo_with_bad("releases/scalar.yaml", "just text\n");
    assert_error(
        &repo,
        "releases/scalar.yaml",
        "document 0 is a string, expected a mapping",
    );
}

#[test]
fn duplicate_keys_name_the_key_and_line() {
    let text = dev_release("dup").replace("  tier: 3\n", "  tier: 3\n  tier: 0\n");
    let repo = repo_with_bad("releases/dup.yaml", text);
    assert_error(
        &repo,
        "releases/dup.yaml",
        "releases/dup.yaml:9: key `metadata.tier` appears twice",
    );
}

#[test]
fn unknown_kind_and_api_version() {
    let repo = repo_with_bad(
        "releases/k.yaml",
        dev_release("k").replace("kind: PromptRelease", "kind: Deployment"),
    );
    assert_error(
        &repo,
        "releases/k.yaml",
        "unknown kind `Deployment`; expected ModelRelease or PromptRelease",
    );
    let repo = repo_with_bad(
        "releases/v.yaml",
        dev_release("v").replace("relgate.dev/v1", "relgate.dev/v9"),
    );
    assert_error(
        &repo,
        "releases/v.yaml",
        "apiVersion \"relgate.dev/v9\" is not supported; expected `relgate.dev/v1`",
    );
}

#[test]
fn yaml_alias_bomb() {
    let mut text = String::from("apiVersion: relgate.dev/v1\nkind: PromptRelease\nx0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..12 {
        text.push_str(&format!(
            "x{i}: &x{i} [{}]\n",
            vec![format!("*x{}", i - 1); 9].join(", ")
        ));
    }
    let repo = repo_with_bad("releases/bomb.yaml", text);
    assert_error(
        &repo,
        "releases/bomb.yaml",
        "aliases expand to too many nodes",
    );
}

#[test]
fn ten_thousand_deep_nesting() {
    let text = format!("a: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    let repo = repo_with_bad("releases/deep.yaml", &text);
    assert_error(&repo, "releases/deep.yaml", "nests deeper than 128 levels");
    let mappings = format!("a: {}1{}\n", "{a: ".repeat(10_000), "}".repeat(10_000));
    let repo = repo_with_bad("releases/deep-block.yaml", mappings);
    assert_error(
        &repo,
        "releases/deep-block.yaml",
        "nests deeper than 128 levels",
    );
}

#[test]
fn files_over_the_size_limit() {
    let big = format!(
        "{}# padding\n{}",
        dev_release("big"),
        "#".repeat(5 * 1024 * 1024)
    );
    let repo = repo_with_bad("releases/big.yaml", &big);
    assert_error(
        &repo,
        "releases/big.yaml",
        "file is larger than the 4194304-byte limit",
    );
    // The limit is configurable, from the config and from the command line.
    repo.file(
        "relgate.yaml",
        "apiVersion: relgate.dev/v1\nkind: GateConfig\nmax_file_bytes: 8388608\n",
    );
    repo.run(&["check", "releases"]).exit(0);
    repo.run(&["check", "releases", "--max-file-bytes", "1000"])
        .exit(2)
        .stdout_has("1000-byte limit");
}

#[test]
fn thousands_of_files_in_a_directory() {
    let repo = Repo::git();
    for i in 0..3000 {
        repo.file(
            &format!("releases/many/r{i:04}.yaml"),
            dev_release(&format!("r{i}")),
        );
    }
    repo.file("releases/many/notes.txt", "not yaml, not picked up\n");
    let run = repo.run(&["check", "releases", "--format", "json"]);
    run.exit(0);
    let json = run.json();
    assert_eq!(json["summary"]["manifests"], 3000);
    assert_eq!(json["results"][0]["file"], "releases/many/r0000.yaml");
    assert_eq!(json["results"][2999]["file"], "releases/many/r2999.yaml");
}

#[cfg(unix)]
#[test]
fn symlinks_leaving_the_repo_are_refused() {
    let outside = tempfile::tempdir().expect("outside dir");
    std::fs::write(outside.path().join("secret.yaml"), dev_release("secret")).expect("write");
    let repo = Repo::git();
    repo.file("releases/good.yaml", dev_release("good"));
    std::os::unix::fs::symlink(
        outside.path().join("secret.yaml"),
        repo.path().join("releases/link.yaml"),
    )
    .expect("symlink");
    assert_error(&repo, "releases/link.yaml", "the path leaves the gate root");
    // A prompt file reached through a symlink out of the repo is not read either.
    let prompt_release = dev_release("p")
        .replace("registry: langfuse", "registry: git")
        .replace("path: prompts/p", "path: prompts/p.prompt");
    std::fs::create_dir_all(repo.path().join("prompts")).expect("mkdir");
    std::fs::write(outside.path().join("p.prompt"), "x").expect("write");
    std::os::unix::fs::symlink(
        outside.path().join("p.prompt"),
        repo.path().join("prompts/p.prompt"),
    )
    .expect("symlink");
    std::fs::remove_file(repo.path().join("releases/link.yaml")).expect("rm");
    repo.file("releases/p.yaml", prompt_release);
    repo.run(&["check", "releases"])
        .exit(1)
        .stdout_has("ARTIFACT-DIGEST")
        .stdout_has("leaves the gate root");
}

#[test]
fn path_traversal_in_a_manifest_is_refused() {
    let repo = Repo::git();
    let release = dev_release("p")
        .replace("registry: langfuse", "registry: git")
        .replace("path: prompts/p", "path: ../../etc/passwd");
    repo.file("releases/p.yaml", release);
    // The schema already refuses `..` in a prompt path; the policy input would refuse it too.
    repo.run(&["check", "releases"])
        .exit(1)
        .stdout_has("SCHEMA")
        .stdout_has("spec.prompt.path");
}

#[test]
fn rego_syntax_error_names_file_and_line() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("a")).file(
        "team/bad.rego",
        "package main\n\ndeny contains msg if {\n  msg := \n}\n",
    );
    repo.run(&["check", "releases", "-p", "team"])
        .exit(2)
        .no_panic()
        .stderr_has("team/bad.rego:4:7")
        .stderr_has("policies failed to load");
}

#[test]
fn a_policy_that_runs_forever_is_stopped() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("a")).file(
        "team/spin.rego",
        "package main\n\ndeny contains \"never\" if {\n  some i in numbers.range(1, 100000)\n  some j in numbers.range(1, 100000)\n  i + j < 0\n}\n",
    );
    let started = std::time::Instant::now();
    repo.run(&["check", "releases", "-p", "team", "--timeout", "1"])
        .exit(2)
        .no_panic()
        .stdout_has("policy data.main.deny failed: execution exceeded time limit");
    assert!(
        started.elapsed().as_secs() < 30,
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn recursive_policies_are_refused() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("a")).file(
        "team/rec.rego",
        "package main\n\na := b\n\nb := a\n\ndeny contains \"x\" if a\n",
    );
    repo.run(&["check", "releases", "-p", "team"])
        .exit(2)
        .no_panic()
        .says("recursion");
}

#[test]
fn deeply_nested_policy_literals_are_refused_before_they_hang_the_parser() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("a")).file(
        "team/deep.rego",
        format!(
            "package main\n\nx := {}1{}\n",
            "[".repeat(30),
            "]".repeat(30)
        ),
    );
    repo.run(&["check", "releases", "-p", "team"])
        .exit(2)
        .no_panic()
        .stderr_has("team/deep.rego:3: brackets nest 30 levels deep here (limit 12)");
}

#[test]
fn a_policy_returning_junk_is_an_error_not_a_pass() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("a")).file(
        "team/junk.rego",
        "package main\n\ndeny contains {\"message_typo\": \"x\"} if true\n",
    );
    repo.run(&["check", "releases", "-p", "team"])
        .exit(2)
        .stdout_has("without a string `msg`");
}

#[test]
fn a_misspelt_field_is_a_schema_finding_with_a_suggestion() {
    let repo = Repo::git();
    repo.file(
        "releases/a.yaml",
        dev_release("a").replace("  rollback:", "  rollbak:"),
    );
    let run = repo.run(&["check", "releases", "--format", "json"]);
    run.exit(1);
    let json = run.json();
    let findings = json["results"][0]["findings"]
        .as_array()
        .expect("findings")
        .clone();
    let unknown = findings
        .iter()
        .find(|f| f["path"] == "spec.rollbak")
        .expect("unknown field finding");
    assert_eq!(unknown["rule"], "SCHEMA");
    assert_eq!(unknown["line"], 17);
    assert!(unknown["message"]
        .as_str()
        .unwrap_or("")
        .contains("did you mean `rollback`?"));
    assert!(findings.iter().any(|f| f["message"]
        .as_str()
        .unwrap_or("")
        .contains("missing required field `rollback`")));
}

#[test]
fn invalid_config_is_an_error_with_file_and_line() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("a")).file(
        "relgate.yaml",
        "apiVersion: relgate.dev/v1\nkind: GateConfig\npii:\n  alowed_sinks: [x]\n",
    );
    repo.run(&["check", "releases"]).exit(2).stderr_has(
        "relgate.yaml:4: unknown field `alowed_sinks` in `pii`; did you mean `allowed_sinks`?",
    );
}
