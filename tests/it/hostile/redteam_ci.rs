//! Red team X2: the CI path and the outputs. A team policy's message (the pull request's own
//! policy under `--rules head`, or a message built from manifest fields) carries newlines,
//! workflow commands, HTML comment markers and bidi overrides; no stdout format may turn them
//! into a workflow command, and the markdown comment may not hide or reorder text.
//! The GitHub-mode attack (rules of the pull request's head without `--changed`) is
//! `tests/it/github.rs::without_changed_a_pull_request_is_still_judged_by_its_bases_rules`.

use crate::support::{dev_release, Repo};

fn commands(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| line.trim_start().starts_with("::") || line.contains("##["))
        .map(str::to_owned)
        .collect()
}

/// A team policy whose message, rule id, item and remediation are all hostile, built partly
/// from the manifest (its service name), so the text is the pull request author's.
fn repo_with_hostile_policy() -> Repo {
    let repo = Repo::new();
    repo.file(
        "relgate.yaml",
        "apiVersion: relgate.dev/v1\nkind: GateConfig\npolicies: [team]\n",
    );
    repo.file(
        "team/forge.rego",
        r#"package main

warn contains {
	"msg": sprintf("svc %s\n::error file=x.yaml,title=ok::all good\r::add-mask::PASS\u2028::stop-commands::t", [input.manifest.metadata.service]),
	"rule": "TEAM\n::notice::rule",
	"item": "item\n##[error]forged",
	"remediation": "fix\n::set-output name=decision::pass\n<!-- relgate:comment -->\u202e",
} if { true }
"#,
    );
    repo.file(
        "releases/a.yaml",
        dev_release("a").replace(
            "service: support-bot",
            "service: \"bot\\n::warning::forged\\u202e ##[error]x\"",
        ),
    );
    // A valid one, so the team policy runs on it.
    repo.file("releases/b.yaml", dev_release("b"));
    repo
}

#[test]
fn a_policy_message_forges_no_workflow_command_in_any_stdout_format() {
    let repo = repo_with_hostile_policy();
    for format in [
        "text", "markdown", "json", "junit", "sarif", "github", "gitlab",
    ] {
        let run = repo.run(&["check", "-f", format]);
        run.no_panic();
        if format == "text" {
            // The team policy ran: its hostile finding is in the report, escaped.
            assert!(run.stdout.contains("svc support-bot"), "{}", run.stdout);
        }
        assert!(
            matches!(run.code, Some(0..=2)),
            "-f {format}: exit {:?}\n{}",
            run.code,
            run.stderr
        );
        let forged: Vec<String> = commands(&run.stdout)
            .into_iter()
            // The github format writes its own commands, each one line relgate built.
            .filter(|l| {
                format != "github"
                    || !(l.starts_with("::warning file=releases/")
                        || l.starts_with("::error file=releases/")
                        || l.starts_with("::notice title=relgate::"))
                    || l.contains("##[")
            })
            .collect();
        assert_eq!(forged, Vec::<String>::new(), "-f {format}:\n{}", run.stdout);
        assert_eq!(commands(&run.stderr), Vec::<String>::new(), "-f {format}");
        for c in ['\u{202E}', '\u{2028}', '\r'] {
            {
                let lines: Vec<&str> = run.stdout.lines().filter(|l| l.contains(c)).collect();
                assert!(
                    lines.is_empty(),
                    "-f {format}: {c:?} reached stdout:\n{lines:#?}"
                );
            }
        }
        if format == "markdown" {
            assert!(
                !run.stdout.contains("<!-- relgate:comment -->"),
                "a forged sticky-comment marker reached the comment:\n{}",
                run.stdout
            );
        }
        if matches!(format, "json" | "sarif" | "gitlab") {
            serde_json::from_str::<serde_json::Value>(&run.stdout)
                .unwrap_or_else(|e| panic!("-f {format} is still JSON: {e}\n{}", run.stdout));
        }
    }
}
