//! CI logs: everything relgate prints reaches the job log, where the runner reads lines that
//! start with `::` (after leading blanks) and `##[` anywhere as workflow commands. A pull
//! request's file names, names, versions and policy messages must not be able to forge an
//! annotation, mask a word (`::add-mask::`) or switch the runner's command processing off
//! (`::stop-commands::`), and bidirectional-override characters must not reorder what a
//! reviewer reads.

use crate::support::{dev_release, Repo};

/// Lines the runner would take as workflow commands.
fn commands(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| line.trim_start().starts_with("::") || line.contains("##["))
        .map(str::to_owned)
        .collect()
}

const BIDI: [char; 9] = [
    '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}',
    '\u{2069}',
];

fn hostile_repo() -> Repo {
    let repo = Repo::new();
    repo.file(
        "relgate.yaml",
        "apiVersion: relgate.dev/v1\nkind: GateConfig\n",
    );
    // A file name with newlines: each line of it would be a command if printed as is.
    repo.file(
        "releases/x\n::add-mask::FAIL\n::error file=a.yaml,title=ok::all good\n::stop-commands::tok\n.yaml",
        dev_release("newline"),
    );
    // A name that starts with `::` (the runner trims the indentation before it).
    repo.file("::warning::forged.yaml", "not: [valid");
    // A v1 command anywhere on a line, and a right-to-left override in the release name.
    repo.file(
        "releases/legacy.yaml",
        dev_release("'legacy ##[add-mask]PASS'").replace(
            "version: \"2\"",
            "version: \"2\u{202E}exe.txt\\n::notice::forged\"",
        ),
    );
    repo
}

#[test]
fn text_output_forges_no_workflow_command() {
    let repo = hostile_repo();
    let run = repo.run(&["check"]);
    run.no_panic();
    assert_eq!(
        commands(&run.stdout),
        Vec::<String>::new(),
        "{}",
        run.stdout
    );
    assert_eq!(
        commands(&run.stderr),
        Vec::<String>::new(),
        "{}",
        run.stderr
    );
    assert!(
        !run.stdout.contains(BIDI.as_slice()),
        "a bidi override reached the text output:\n{}",
        run.stdout
    );
    // What was escaped stays readable: the newline shows as `\n`.
    assert!(
        run.stdout.contains("x\\n\\::add-mask::FAIL")
            || run.stdout.contains("x\\n::add-mask::FAIL"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("\\u{202e}"), "{}", run.stdout);
}

#[test]
fn markdown_and_json_on_stdout_forge_no_workflow_command() {
    let repo = hostile_repo();
    for format in ["markdown", "json", "junit", "sarif", "github"] {
        let run = repo.run(&["check", "-f", format]);
        run.no_panic();
        let forged: Vec<String> = commands(&run.stdout)
            .into_iter()
            // The github format writes commands on purpose: each must be one relgate wrote.
            .filter(|l| {
                format != "github"
                    || !(l.starts_with("::error file=releases/")
                        || l.starts_with("::notice title=relgate::")
                        || l.starts_with("::warning file=releases/"))
                    || l.contains("##[")
            })
            .collect();
        assert_eq!(forged, Vec::<String>::new(), "-f {format}:\n{}", run.stdout);
        assert_eq!(commands(&run.stderr), Vec::<String>::new(), "-f {format}");
        if format == "markdown" {
            assert!(
                !run.stdout.contains(BIDI.as_slice()),
                "a bidi override reached the markdown:\n{}",
                run.stdout
            );
        }
        if format == "json" || format == "sarif" {
            serde_json::from_str::<serde_json::Value>(&run.stdout)
                .unwrap_or_else(|e| panic!("-f {format} is still JSON: {e}"));
        }
    }
}
