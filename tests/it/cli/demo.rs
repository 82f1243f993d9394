//! Snapshot tests of whole runs on the bundled example repository (`examples/demo`): the text a
//! person reads and the JSON a machine reads. The policy digest is masked so a policy edit shows
//! up only where findings change; so is the temporary repository's path, which messages about a
//! missing file show.

use crate::support::{project_root, Repo};

fn demo() -> Repo {
    let repo = Repo::git();
    repo.copy_dir(&project_root().join("examples/demo"), "demo");
    repo
}

/// The output with the temporary repository's absolute path, which messages about missing files
/// show ("looked in the gate root ..."), replaced by `[repo]`.
fn without_repo_path(repo: &Repo, text: &str) -> String {
    let mut out = text.to_string();
    let canonical = repo.path().canonicalize().expect("canonical path");
    for path in [canonical.as_path(), repo.path()] {
        out = out.replace(&path.display().to_string(), "[repo]");
    }
    out
}

fn masked(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        match line.find("\"policy_digest\": \"sha256:") {
            Some(at) => out.push_str(&format!(
                "{}\"policy_digest\": \"sha256:[digest]\",",
                &line[..at]
            )),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[test]
fn demo_text_report() {
    let repo = demo();
    let run = repo.run(&["check", "demo/releases"]);
    run.exit(1).no_panic();
    insta::assert_snapshot!("demo_text", without_repo_path(&repo, &run.stdout));
}

#[test]
fn demo_json_report() {
    let repo = demo();
    let run = repo.run(&["check", "demo/releases", "--format", "json"]);
    run.exit(1).no_panic();
    insta::assert_snapshot!("demo_json", masked(&without_repo_path(&repo, &run.stdout)));
    // Every finding's rule is in the rule catalogue (policies/catalogue.yaml).
    let catalogue = relgate::catalogue::catalogue();
    let json = run.json();
    for result in json["results"].as_array().expect("results") {
        for finding in result["findings"].as_array().expect("findings") {
            let rule = finding["rule"].as_str().expect("rule");
            assert!(
                catalogue.rule(rule).is_some(),
                "{rule} is not a catalogue rule id"
            );
            assert!(finding["line"].as_u64().is_some_and(|l| l > 0));
        }
    }
}

#[test]
fn demo_from_inside_the_demo_uses_its_config_globs() {
    let repo = demo();
    let run = repo.run_in("demo", &["check", "--format", "json"]);
    run.exit(1);
    assert_eq!(run.json()["summary"]["manifests"], 15);
}
