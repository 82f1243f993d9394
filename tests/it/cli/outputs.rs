//! The machine-readable outputs against what third-party tools accept: SARIF against the
//! official SARIF 2.1.0 JSON Schema (vendored in tests/fixtures/schemas), JUnit against the
//! Jenkins xunit JUnit XSD (`xmllint --schema`), GitLab Code Quality's required fields; SARIF
//! and GitLab paths relative to the repository root when relgate.yaml lives in a
//! subdirectory; fingerprints that survive a finding moving to another line.

use std::process::Command;

use crate::support::{dev_release, project_root, Repo};

/// A repository with a passing release, a PII finding, a schema failure (policies skipped) and
/// an unparsable file (an error): every shape each format has.
fn fixture() -> Repo {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("answer"))
        .file(
            "releases/b.yaml",
            dev_release("leaky").replace("retention_days: 30", "retention_days: 900"),
        )
        .file(
            "releases/c.yaml",
            dev_release("shapeless")
                .replace("kind: PromptRelease", "kind: PromptRelease\nbogus: 1"),
        )
        .file("releases/d.yaml", "apiVersion: [relgate\n");
    repo
}

fn sarif_errors(sarif: &serde_json::Value) -> Vec<String> {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            project_root().join("tests/fixtures/schemas/sarif-schema-2.1.0.json"),
        )
        .expect("read the SARIF schema"),
    )
    .expect("the SARIF schema is JSON");
    let validator = jsonschema::draft4::new(&schema).expect("compile the SARIF schema");
    validator
        .iter_errors(sarif)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn sarif_validates_against_the_official_schema() {
    let repo = fixture();
    let run = repo.run(&["check", "releases", "-f", "sarif"]);
    run.no_panic().exit(2);
    let sarif: serde_json::Value = serde_json::from_str(&run.stdout).expect("SARIF is JSON");
    let errors = sarif_errors(&sarif);
    assert!(errors.is_empty(), "SARIF schema errors: {errors:#?}");
    // The validator does reject what the schema forbids (the test is not vacuous).
    let mut broken = sarif.clone();
    broken["runs"][0]["results"][0]["level"] = "fatal".into();
    assert!(!sarif_errors(&broken).is_empty());
}

#[test]
fn sarif_rules_carry_what_code_scanning_shows() {
    let repo = fixture();
    let run = repo.run(&["check", "releases", "-f", "sarif"]);
    let sarif: serde_json::Value = serde_json::from_str(&run.stdout).expect("SARIF is JSON");
    let rules = sarif["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .expect("rules");
    for rule in rules {
        let id = rule["id"].as_str().expect("id");
        for field in ["shortDescription", "fullDescription"] {
            assert!(rule[field]["text"].is_string(), "{id}: no {field}");
        }
        assert!(rule["help"]["text"].is_string(), "{id}: no help.text");
        assert!(
            rule["help"]["markdown"].is_string(),
            "{id}: no help.markdown"
        );
        assert!(
            rule["helpUri"]
                .as_str()
                .is_some_and(|u| u.starts_with("https://")),
            "{id}: no helpUri"
        );
    }
    for result in sarif["runs"][0]["results"].as_array().expect("results") {
        let region = &result["locations"][0]["physicalLocation"]["region"];
        let start = region["startLine"].as_u64().expect("startLine");
        let end = region["endLine"].as_u64().expect("endLine");
        assert!(start >= 1 && end >= start, "{region}");
    }
}

fn uris(sarif: &str) -> Vec<String> {
    let sarif: serde_json::Value = serde_json::from_str(sarif).expect("SARIF is JSON");
    sarif["runs"][0]["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .expect("uri")
                .to_owned()
        })
        .collect()
}

#[test]
fn sarif_and_gitlab_paths_are_repository_relative_in_a_monorepo() {
    let repo = Repo::git();
    repo.file(
        "ml/gate/relgate.yaml",
        "apiVersion: relgate.dev/v1\nkind: GateConfig\n",
    )
    .file(
        "ml/gate/releases/b.yaml",
        dev_release("leaky").replace("retention_days: 30", "retention_days: 900"),
    );
    let run = repo.run_in("ml/gate", &["check", "releases", "-f", "sarif"]);
    run.no_panic().exit(1);
    assert_eq!(uris(&run.stdout), ["ml/gate/releases/b.yaml"]);
    // The JSON report keeps gate-root-relative paths (its documented shape).
    let json = repo.run_in("ml/gate", &["check", "releases", "-f", "json"]);
    assert_eq!(json.json()["results"][0]["file"], "releases/b.yaml");
    let gitlab = repo.run_in("ml/gate", &["check", "releases", "-f", "gitlab"]);
    gitlab.no_panic().exit(1);
    let issues: serde_json::Value = serde_json::from_str(&gitlab.stdout).expect("JSON");
    assert_eq!(issues[0]["location"]["path"], "ml/gate/releases/b.yaml");
    // Run from the repository root with --config: the same paths.
    let run = repo.run(&[
        "check",
        "--config",
        "ml/gate/relgate.yaml",
        "ml/gate/releases",
        "-f",
        "sarif",
    ]);
    run.no_panic().exit(1);
    assert_eq!(uris(&run.stdout), ["ml/gate/releases/b.yaml"]);
}

#[test]
fn fingerprints_survive_a_finding_moving_to_another_line() {
    let repo = Repo::git();
    let leaky = dev_release("leaky").replace("retention_days: 30", "retention_days: 900");
    repo.file("releases/b.yaml", &leaky);
    let prints = |repo: &Repo| {
        let sarif = repo.run(&["check", "releases", "-f", "sarif"]);
        let sarif: serde_json::Value = serde_json::from_str(&sarif.stdout).expect("JSON");
        let result = &sarif["runs"][0]["results"][0];
        let gitlab = repo.run(&["check", "releases", "-f", "gitlab"]);
        let gitlab: serde_json::Value = serde_json::from_str(&gitlab.stdout).expect("JSON");
        (
            result["partialFingerprints"]["relgate/v1"].clone(),
            result["locations"][0]["physicalLocation"]["region"]["startLine"].clone(),
            gitlab[0]["fingerprint"].clone(),
        )
    };
    let before = prints(&repo);
    // Three comment lines on top move every finding down by three lines.
    repo.file("releases/b.yaml", format!("# a\n# b\n# c\n{leaky}"));
    let after = prints(&repo);
    assert_eq!(
        after.1.as_u64(),
        before.1.as_u64().map(|l| l + 3),
        "the finding moved"
    );
    assert_eq!(after.0, before.0, "SARIF fingerprint changed with the line");
    assert_eq!(
        after.2, before.2,
        "GitLab fingerprint changed with the line"
    );
    assert!(before.0.is_string() && before.2.is_string());
}

/// `xmllint --schema XSD FILE` (Debian libxml2-utils; scripts/test installs it): its verdict.
fn xmllint(xml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("junit.xml");
    std::fs::write(&file, xml).expect("write");
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(project_root().join("tests/fixtures/schemas/junit-10.xsd"))
        .arg(&file)
        .output()
        .expect("xmllint (apt-get install libxml2-utils; scripts/test installs it)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn junit_validates_against_the_jenkins_xunit_schema() {
    let repo = fixture();
    let run = repo.run(&["check", "releases", "-f", "junit"]);
    run.no_panic().exit(2);
    assert!(
        run.stdout.contains("<skipped"),
        "the fixture has skipped cases"
    );
    assert!(run.stdout.contains("<error"), "the fixture has an error");
    assert!(run.stdout.contains("<failure"), "the fixture has a failure");
    let (valid, why) = xmllint(&run.stdout);
    assert!(valid, "JUnit XML rejected by the xunit XSD:\n{why}");
    // The schema check is real: an attribute the XSD lacks is rejected.
    let (valid, _) = xmllint(
        &run.stdout
            .replacen("<testsuites ", "<testsuites bogus=\"1\" ", 1),
    );
    assert!(!valid);
}

#[test]
fn gitlab_code_quality_has_the_fields_gitlab_reads() {
    let repo = fixture();
    let run = repo.run(&["check", "releases", "-f", "gitlab"]);
    run.no_panic().exit(2);
    let issues: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let issues = issues.as_array().expect("an array of issues");
    // The PII finding, the schema finding and the unparsable file.
    assert!(issues.len() >= 3, "{issues:#?}");
    let mut prints = std::collections::BTreeSet::new();
    for issue in issues {
        assert!(issue["description"].as_str().is_some_and(|d| !d.is_empty()));
        assert!(issue["check_name"].is_string());
        assert!(["info", "minor", "major", "critical", "blocker"]
            .contains(&issue["severity"].as_str().unwrap_or("")));
        assert!(issue["location"]["path"].is_string());
        assert!(issue["location"]["lines"]["begin"]
            .as_u64()
            .is_some_and(|l| l >= 1));
        let print = issue["fingerprint"].as_str().expect("fingerprint");
        assert!(
            prints.insert(print.to_owned()),
            "duplicate fingerprint {print}"
        );
    }
    let pii = issues
        .iter()
        .find(|i| i["check_name"] == "PII-RETENTION")
        .expect("the PII finding");
    assert_eq!(pii["location"]["path"], "releases/b.yaml");
    assert_eq!(pii["severity"], "major");
    let error = issues
        .iter()
        .find(|i| i["location"]["path"] == "releases/d.yaml")
        .expect("the unparsable file is an issue, not silently dropped");
    assert_eq!(error["severity"], "blocker");
    // A passing run is an empty report, which GitLab reads as "no issues".
    let clean = Repo::git();
    clean.file("releases/a.yaml", dev_release("answer"));
    let run = clean.run(&["check", "releases", "-f", "gitlab"]);
    run.exit(0);
    assert_eq!(run.stdout.trim(), "[]");
}

#[test]
fn junit_parses_in_junitparser() {
    let repo = fixture();
    let run = repo.run(&["check", "releases", "-f", "junit"]);
    run.no_panic().exit(2);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("junit.xml");
    std::fs::write(&file, &run.stdout).expect("write");
    // junitparser (PyPI; scripts/test installs it): per case, its result kind, one per line.
    let script = "import sys\nfrom junitparser import JUnitXml\n\
                  for suite in JUnitXml.fromfile(sys.argv[1]):\n\
                  \x20   for case in suite:\n\
                  \x20       kinds = [type(r).__name__ for r in case.result]\n\
                  \x20       print(suite.name, case.name, ','.join(kinds) or 'pass')\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&file)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "junitparser (pip install junitparser; scripts/test installs it) failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cases = String::from_utf8_lossy(&out.stdout).into_owned();
    let count = |kind: &str| cases.lines().filter(|l| l.ends_with(kind)).count();
    // The same cases and outcomes as the XML says (its own attributes counted).
    assert_eq!(
        cases.lines().count(),
        run.stdout.matches("<testcase ").count()
    );
    assert_eq!(count("Failure"), run.stdout.matches("<failure ").count());
    assert_eq!(count("Error"), run.stdout.matches("<error ").count());
    assert_eq!(count("Skipped"), run.stdout.matches("<skipped ").count());
    assert!(
        cases.contains("releases/b.yaml#0 leaky@2 relgate.pii Failure"),
        "{cases}"
    );
    assert!(cases.contains("releases/d.yaml#0 relgate Error"), "{cases}");
}
