//! The shared vocabulary of the CLI: time limits given in seconds, colour chosen by `--color`
//! (one rule for stdout and stderr printers), and the severity words of findings.

use crate::support::{dev_release, Repo};

const ESC: &str = "\u{1b}[";

#[test]
fn time_limits_must_be_positive_seconds() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("answer"));
    for (flag, value) in [
        ("--timeout", "0"),
        ("--timeout", "-1"),
        ("--prometheus-timeout", "0"),
        ("--prometheus-timeout", "NaN"),
    ] {
        repo.run(&["check", &format!("{flag}={value}"), "releases"])
            .exit(2)
            .no_panic()
            .stderr_has(&format!("{flag} must be a positive number of seconds"));
    }
    repo.run(&["test", "--builtin", "--timeout", "0"])
        .exit(2)
        .stderr_has("--timeout must be a positive number of seconds");
    repo.run(&[
        "check",
        "--timeout",
        "0.5",
        "--prometheus-timeout",
        "1.5",
        "releases",
    ])
    .exit(0);
}

#[test]
fn colour_follows_the_flag_on_every_text_printer() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("answer"));
    repo.run(&["--color", "always", "check", "releases"])
        .exit(0)
        .stdout_has(&format!("{ESC}1m{ESC}32mPASS"));
    // `auto` on a pipe, and `never`: plain text.
    for args in [
        &["check", "releases"][..],
        &["--color", "never", "check", "releases"],
    ] {
        repo.run(args).exit(0).stdout_lacks(ESC);
    }
    repo.run(&["--color", "always", "test", "--builtin"])
        .exit(0)
        .stdout_has(&format!("{ESC}1m{ESC}32mPASS"));
    repo.run(&["--color", "never", "test", "--builtin"])
        .exit(0)
        .stdout_lacks(ESC);
}

#[test]
fn findings_carry_deny_and_warn() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("answer")).file(
        "policies/team.rego",
        "package main\n\nimport rego.v1\n\n\
         deny contains \"blocked\" if { input.manifest.kind == \"PromptRelease\" }\n\n\
         warn_style contains \"styled\" if { input.manifest.kind == \"PromptRelease\" }\n",
    );
    let run = repo.run(&[
        "check", "--policy", "policies", "--format", "json", "releases",
    ]);
    run.exit(1);
    let json = run.json();
    let findings = json["results"][0]["findings"].as_array().expect("findings");
    let severities: Vec<(&str, &str)> = findings
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().expect("rule"),
                f["severity"].as_str().expect("severity"),
            )
        })
        .collect();
    assert_eq!(severities, [("deny", "deny"), ("warn_style", "warn")]);
    assert_eq!(json["summary"]["warnings"], 1);
    // The printers that map a severity: GitHub commands, GitLab Code Quality.
    repo.run(&[
        "check", "--policy", "policies", "--format", "github", "releases",
    ])
    .exit(1)
    .stdout_has("::error file=releases/a.yaml")
    .stdout_has("::warning file=releases/a.yaml");
    let gitlab = repo.run(&[
        "check", "--policy", "policies", "--format", "gitlab", "releases",
    ]);
    gitlab.exit(1);
    let issues = gitlab.json();
    let levels: Vec<&str> = issues
        .as_array()
        .expect("issues")
        .iter()
        .map(|i| i["severity"].as_str().expect("severity"))
        .collect();
    assert_eq!(levels, ["major", "minor"]);
}
