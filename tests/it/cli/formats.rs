//! The CI formats of `relgate check` (markdown, github, sarif, junit): exact output as insta
//! snapshots of one small repository (a passing release, a PII finding, a team-policy finding
//! whose message holds every character the formats must escape, and an unparsable file), plus
//! structural checks (SARIF is JSON with the expected keys, JUnit is well-formed XML). The policy
//! digest is masked so a policy edit shows up only where findings change.

use crate::support::{dev_release, Repo};

/// A team policy whose messages need escaping in every format.
const TEAM: &str = r#"package main

deny contains {"msg": "odd | name, see: 100% wrong\nnext line <&> \"q\" 'a'", "rule": "TEAM-ODD", "path": "metadata.name", "remediation": "rename it | retry"} if {
	input.manifest.metadata.name == "odd"
}

warn contains "odd: 5% of traffic, then more" if input.manifest.metadata.name == "odd"
"#;

fn fixture() -> Repo {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("answer"))
        .file(
            "releases/b.yaml",
            dev_release("leaky").replace("retention_days: 30", "retention_days: 900"),
        )
        .file("releases/c.yaml", dev_release("odd"))
        .file("releases/d.yaml", "apiVersion: [relgate\n")
        .file("team/main.rego", TEAM);
    repo
}

fn policy_digest(repo: &Repo, policies: &[&str]) -> String {
    let mut args = vec!["check", "releases", "-f", "json"];
    args.extend_from_slice(policies);
    let run = repo.run(&args);
    run.json()["policy_digest"]
        .as_str()
        .expect("policy digest")
        .to_string()
}

/// Runs the check in `format` (exit 2: the unparsable file) and masks the policy digest.
fn check(repo: &Repo, format: &str) -> String {
    let digest = policy_digest(repo, &["-p", "team"]);
    let run = repo.run(&["check", "releases", "-p", "team", "-f", format]);
    run.no_panic().exit(2);
    run.stdout.replace(&digest, "sha256:[digest]")
}

#[test]
fn markdown_is_a_sticky_pr_comment() {
    let repo = fixture();
    let out = check(&repo, "markdown");
    assert!(out.starts_with("<!-- relgate-report -->\n"));
    insta::assert_snapshot!("formats_markdown", out);
}

#[test]
fn markdown_of_a_passing_run() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("answer"))
        .file("releases/b.yaml", dev_release("other"));
    let digest = policy_digest(&repo, &[]);
    let run = repo.run(&["check", "releases", "-f", "markdown"]);
    run.exit(0);
    insta::assert_snapshot!(
        "formats_markdown_pass",
        run.stdout.replace(&digest, "sha256:[digest]")
    );
}

#[test]
fn markdown_of_a_blocked_run() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("answer")).file(
        "releases/b.yaml",
        dev_release("leaky").replace("retention_days: 30", "retention_days: 900"),
    );
    let run = repo.run(&["check", "releases", "-f", "markdown"]);
    run.exit(1)
        .stdout_has("### ❌ relgate: blocked — 1 of 2 releases fails");
}

#[test]
fn github_prints_one_workflow_command_per_finding() {
    let repo = fixture();
    let out = check(&repo, "github");
    insta::assert_snapshot!("formats_github", out);
    for line in out.lines() {
        assert!(line.starts_with("::"), "not a workflow command: {line}");
    }
}

#[test]
fn sarif_is_valid_json_with_stable_fingerprints() {
    let repo = fixture();
    let out = check(&repo, "sarif");
    insta::assert_snapshot!("formats_sarif", out);
    let sarif: serde_json::Value = serde_json::from_str(&out).expect("SARIF is JSON");
    assert_eq!(
        sarif["$schema"],
        "https://json.schemastore.org/sarif-2.1.0.json"
    );
    assert_eq!(sarif["version"], "2.1.0");
    let runs = sarif["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1);
    let driver = &runs[0]["tool"]["driver"];
    assert_eq!(driver["name"], "relgate");
    assert!(driver["version"].is_string());
    assert!(driver["informationUri"].is_string());
    let rules = driver["rules"].as_array().expect("rules");
    let ids: Vec<&str> = rules.iter().filter_map(|r| r["id"].as_str()).collect();
    for id in [
        "SCHEMA",
        "EVAL-PROMPT-MISMATCH",
        "PII-RETENTION",
        "TEAM-ODD",
    ] {
        assert!(ids.contains(&id), "no descriptor for {id}");
    }
    for rule in rules {
        assert!(rule["shortDescription"]["text"].is_string());
    }
    let results = runs[0]["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    for result in results {
        let index = result["ruleIndex"].as_u64().expect("ruleIndex") as usize;
        assert_eq!(rules[index]["id"], result["ruleId"]);
        assert!(["error", "warning"].contains(&result["level"].as_str().unwrap_or("")));
        assert!(result["message"]["text"].is_string());
        let location = &result["locations"][0]["physicalLocation"];
        assert!(location["artifactLocation"]["uri"].is_string());
        assert!(location["region"]["startLine"]
            .as_u64()
            .is_some_and(|l| l >= 1));
        let fingerprint = result["partialFingerprints"]["relgate/v1"]
            .as_str()
            .expect("fingerprint");
        assert_eq!(fingerprint.len(), 64);
    }
    // Same inputs, same bytes (fingerprints included).
    assert_eq!(check(&repo, "sarif"), out);
}

#[test]
fn junit_is_well_formed_xml_with_totals() {
    let repo = fixture();
    let out = check(&repo, "junit");
    insta::assert_snapshot!("formats_junit", out);
    well_formed(&out);
    assert!(out.contains("<testsuites name=\"relgate\" tests=\"23\" failures=\"2\" errors=\"1\">"));
}

#[test]
fn several_formats_go_to_their_own_files_in_one_run() {
    let repo = fixture();
    let singles: Vec<(&str, String)> = ["sarif", "junit", "markdown"]
        .into_iter()
        .map(|format| {
            let run = repo.run(&["check", "releases", "-p", "team", "-f", format]);
            (format, run.stdout.clone())
        })
        .collect();
    let run = repo.run(&[
        "check",
        "releases",
        "-p",
        "team",
        "-f",
        "sarif",
        "-o",
        "out.sarif",
        "-f",
        "junit",
        "-o",
        "out.xml",
        "-f",
        "markdown",
        "-o",
        "out.md",
    ]);
    run.no_panic().exit(2);
    assert_eq!(run.stdout, "");
    for ((format, single), file) in singles.iter().zip(["out.sarif", "out.xml", "out.md"]) {
        let written = std::fs::read_to_string(repo.path().join(file)).expect("output file");
        assert_eq!(&written, single, "--format {format} --output {file}");
    }
}

/// A small well-formedness check: every tag closes in order, attributes are quoted, and text
/// holds no raw `<` or stray `&`.
fn well_formed(xml: &str) {
    let body = xml
        .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
        .expect("XML declaration");
    let mut stack: Vec<String> = Vec::new();
    let mut rest = body;
    while let Some(open) = rest.find('<') {
        check_text(&rest[..open]);
        let close = rest[open..].find('>').expect("tag closes") + open;
        let tag = &rest[open + 1..close];
        rest = &rest[close + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let (name, attributes) = tag.split_once(' ').unwrap_or((tag, ""));
        assert!(!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        check_attributes(attributes);
        if !self_closing {
            stack.push(name.to_string());
        }
    }
    check_text(rest);
    assert!(stack.is_empty(), "unclosed tags: {stack:?}");
}

fn check_attributes(mut attributes: &str) {
    loop {
        attributes = attributes.trim_start();
        if attributes.is_empty() {
            return;
        }
        let (name, value) = attributes.split_once("=\"").expect("attribute is quoted");
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric()), "{name}");
        let end = value.find('"').expect("attribute value closes");
        check_text(&value[..end]);
        attributes = &value[end + 1..];
    }
}

fn check_text(text: &str) {
    assert!(!text.contains('<'), "raw < in {text:?}");
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        rest = &rest[at + 1..];
        let end = rest.find(';').expect("entity ends");
        let entity = &rest[..end];
        assert!(
            ["amp", "lt", "gt", "quot", "apos"].contains(&entity)
                || entity
                    .strip_prefix('#')
                    .is_some_and(|n| n.parse::<u32>().is_ok()),
            "bad entity &{entity};"
        );
    }
}

#[test]
fn github_escapes_the_file_property() {
    let repo = Repo::git();
    repo.file(
        "releases/a,b:c%.yaml",
        dev_release("leaky").replace("retention_days: 30", "retention_days: 900"),
    );
    repo.run(&["check", "releases", "-f", "github"])
        .exit(1)
        .stdout_has("::error file=releases/a%2Cb%3Ac%25.yaml,line=21,title=PII-RETENTION::");
}

#[test]
fn junit_skips_policy_areas_when_the_schema_fails() {
    let repo = Repo::git();
    repo.file(
        "releases/a.yaml",
        dev_release("answer").replace("tier: 3", "tier: nine"),
    );
    let run = repo.run(&["check", "releases", "-f", "junit"]);
    run.exit(1)
        .stdout_has("type=\"SCHEMA\"")
        .stdout_has("<skipped message=\"not evaluated: the manifest does not match its schema\"/>")
        .stdout_has("tests=\"7\" failures=\"1\" errors=\"0\" skipped=\"6\"");
    well_formed(&run.stdout);
}

/// A team policy whose message, field and fix hold live markdown: an image, raw HTML, a link,
/// a heading marker, a mention, and a field path with a backtick.
const HOSTILE: &str = r##"package main

deny contains {"msg": "see ![](https://evil.example/p.png) <img src=https://evil.example/q.png> cc @octocat", "rule": "TEAM-HOSTILE", "path": "metadata.labels[\"a`b\"]", "remediation": "# [approve here](https://evil.example/ok) **now**"} if {
	input.manifest.metadata.name == "hostile"
}
"##;

/// The markdown report of a manifest whose file name, waiver reason and policy findings were
/// written to deceive reviewers: nothing of it may render as a link, an image, a mention,
/// emphasis or HTML (the reviewer's reproductions of the markdown-injection finding).
#[test]
fn markdown_keeps_manifest_text_inert() {
    let repo = Repo::git();
    let release = dev_release("hostile").replace(
        "  logging:",
        "  prr:\n    PRR-EVAL-02: {status: waived, waiver: {approver: bob@example.com, expires: 2027-01-31, reason: \"**LGTM** [security sign-off](https://evil.example/) cc @octocat\"}}\n  logging:",
    );
    repo.file("releases/a](/mallory/x)[b.yaml", release)
        .file("team/main.rego", HOSTILE);
    let run = repo.run(&["check", "releases", "-p", "team", "-f", "markdown"]);
    run.no_panic().exit(1);
    let out = &run.stdout;
    // The hostile parts are all there, escaped.
    for escaped in [
        "#### ❌ releases/a\\]\\(/mallory/x\\)\\[b.yaml:1 — PromptRelease hostile@2",
        "waived by bob@example.com until 2027-01-31: \\*\\*LGTM\\*\\* \\[security sign-off\\]\\(https\\://evil.example/\\) cc @\u{2060}octocat",
        "see \\!\\[\\]\\(https\\://evil.example/p.png\\) &lt;img src=https\\://evil.example/q.png&gt; cc @\u{2060}octocat (field ``metadata.labels[\"a`b\"]``)",
        "| \\# \\[approve here\\]\\(https\\://evil.example/ok\\) \\*\\*now\\*\\* |",
    ] {
        assert!(out.contains(escaped), "{escaped}\nin\n{out}");
    }
    // Nothing live is left: no link or image syntax, no HTML tag but relgate's own, no
    // mention, no emphasis.
    assert!(!out.contains("]("), "{out}");
    assert!(!out.contains("!["), "{out}");
    assert!(!out.contains("<img"), "{out}");
    assert!(!out.contains("@octocat"), "{out}");
    assert!(!out.contains("**LGTM"), "{out}");
    assert!(!out.contains("| # "), "{out}");
    assert!(!out.contains("https://"), "no bare URL to autolink: {out}");
}
