//! The rule catalogue (`policies/catalogue.yaml`) held to the code: every rule id the built-in
//! Rego can emit is catalogued under its package and every catalogued rule is emitted; each
//! rule's example produces exactly its rule through the real gate, and its passing twin
//! passes; the generated docs (docs/rules/, the README table) are what the catalogue makes;
//! `relgate explain` prints the pages. `RELGATE_BLESS=1 cargo test --test it cli::catalogue`
//! rewrites the generated docs.

use std::collections::{BTreeMap, BTreeSet};

use relgate::catalogue::{catalogue, Catalogue, Rule, Severity};

use crate::support::{project_root, Repo};

const README_START: &str = "<!-- rules:start (generated from policies/catalogue.yaml) -->\n";
const README_END: &str = "<!-- rules:end -->";

/// A rule id written in a built-in Rego file: the file, its line, the package, and the head
/// (`deny`/`warn`) whose body holds it, when the literal is inside one.
#[derive(Debug)]
struct Emitted {
    file: String,
    line: usize,
    package: String,
    id: String,
    head: Option<Severity>,
}

/// Every `"rule": "ID"` literal of the built-in (non-test) Rego, as embedded in the binary. A
/// `"rule":` followed by anything but a string literal is an error: an id computed at run time
/// could not be checked against the catalogue.
fn emitted_ids(sources: &[relgate::policy::PolicySource]) -> Result<Vec<Emitted>, String> {
    let mut out = Vec::new();
    let mut computed = Vec::new();
    for source in sources {
        if source.is_test() {
            continue;
        }
        let mut package = String::new();
        let mut head = None;
        for (number, line) in source.text.lines().enumerate() {
            if let Some(p) = line.strip_prefix("package ") {
                package = p.trim().to_string();
            }
            // A rule starts at column 0; `deny`/`warn` heads set the severity of the literals
            // in their body, any other rule (a helper) clears it.
            if line.starts_with(|c: char| c.is_ascii_alphabetic()) {
                head = if line.starts_with("deny") || line.starts_with("violation") {
                    Some(Severity::Deny)
                } else if line.starts_with("warn") {
                    Some(Severity::Warn)
                } else {
                    None
                };
            }
            let mut rest = line;
            while let Some(at) = rest.find("\"rule\":") {
                rest = rest[at + 7..].trim_start();
                let literal = rest
                    .strip_prefix('"')
                    .and_then(|r| r.find('"').map(|end| &r[..end]));
                match literal {
                    Some(id) => out.push(Emitted {
                        file: source.path.clone(),
                        line: number + 1,
                        package: package.clone(),
                        id: id.to_string(),
                        head,
                    }),
                    None => computed.push(format!("{}:{}: {line}", source.path, number + 1)),
                }
            }
        }
    }
    if computed.is_empty() {
        Ok(out)
    } else {
        Err(format!(
            "built-in rules must write their rule id as a string literal, so the catalogue can be checked against it:\n{}",
            computed.join("\n")
        ))
    }
}

/// Rule ids relgate itself reports (not a Rego package): the id and where it is defined.
fn relgate_ids() -> Vec<(&'static str, &'static str)> {
    vec![
        // src/gate.rs reports schema violations under this id; the SCHEMA example below runs it.
        ("SCHEMA", "relgate.schema"),
        (relgate::gate::rules::GATE_CONFIG_CHANGED, "relgate.gate"),
    ]
}

/// Where the catalogue and the Rego disagree, one line each.
fn drift(catalogue: &Catalogue, emitted: &[Emitted]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut by_id: BTreeMap<&str, Vec<&Emitted>> = BTreeMap::new();
    for e in emitted {
        by_id.entry(e.id.as_str()).or_default().push(e);
        match catalogue.rule(&e.id) {
            None => problems.push(format!(
                "{}:{}: rule id {} is not in policies/catalogue.yaml{}",
                e.file,
                e.line,
                e.id,
                catalogue
                    .suggest(&e.id)
                    .map(|s| format!(" (did you mean {s}?)"))
                    .unwrap_or_default()
            )),
            Some(rule) if rule.area != e.package => problems.push(format!(
                "{}:{}: rule {} is emitted by package {} but catalogued under area {}",
                e.file, e.line, e.id, e.package, rule.area
            )),
            Some(_) => {}
        }
    }
    let own: BTreeMap<&str, &str> = relgate_ids().into_iter().collect();
    for rule in &catalogue.rules {
        match (by_id.get(rule.id.as_str()), own.get(rule.id.as_str())) {
            (None, None) => problems.push(format!(
                "catalogue rule {} ({}) is emitted by no built-in Rego file and not by relgate itself",
                rule.id, rule.area
            )),
            (None, Some(area)) if *area != rule.area => problems.push(format!(
                "catalogue rule {} is reported by relgate under {area}, catalogued under {}",
                rule.id, rule.area
            )),
            (Some(sites), _) => {
                // The default severity: deny when any deny head emits it (a warning variant,
                // such as an exempt change type, is the exception), else warn.
                let heads: BTreeSet<&str> = sites
                    .iter()
                    .filter_map(|e| e.head.map(Severity::as_str))
                    .collect();
                let expected = if heads.contains("deny") {
                    Severity::Deny
                } else {
                    Severity::Warn
                };
                if !heads.is_empty() && rule.severity != expected {
                    problems.push(format!(
                        "catalogue rule {} has severity {}, but the Rego emits it from {} rules",
                        rule.id,
                        rule.severity.as_str(),
                        heads.into_iter().collect::<Vec<_>>().join(" and ")
                    ));
                }
            }
            _ => {}
        }
    }
    problems
}

#[test]
fn every_rule_id_the_bundle_emits_is_catalogued_and_every_catalogued_rule_is_emitted() {
    let emitted =
        emitted_ids(&relgate::policy::builtin_sources()).unwrap_or_else(|e| panic!("{e}"));
    assert!(emitted.len() > 50, "the scan found too little: {emitted:?}");
    let problems = drift(catalogue(), &emitted);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_drifted_catalogue_is_caught() {
    // The check above fails on each kind of drift: a new id in the Rego, a catalogued rule
    // nothing emits, an id under the wrong package, a warning catalogued as a denial, and an
    // id computed at run time.
    let mut sources = relgate::policy::builtin_sources();
    sources.push(relgate::policy::PolicySource {
        path: "policies/new.rego".into(),
        text: "package relgate.pii\n\ndeny contains f if {\n\tf := {\"rule\": \"PII-NEW\", \"msg\": \"x\"}\n}\n\nwarn contains f if {\n\tf := {\"rule\": \"PRR-EVIDENCE\", \"msg\": \"x\"}\n}\n".into(),
        builtin: true,
        v0: false,
    });
    let emitted = emitted_ids(&sources).expect("literals");
    let mut catalogue = catalogue().clone();
    let mut ghost = catalogue.rule("PII-SINK").expect("rule").clone();
    ghost.id = "PII-GHOST".into();
    catalogue.rules.push(ghost);
    catalogue.rules.iter_mut().for_each(|r| {
        if r.id == "SLO-BUDGET-LOW" {
            r.severity = Severity::Deny;
        }
    });
    let problems = drift(&catalogue, &emitted).join("\n");
    for expected in [
        "policies/new.rego:4: rule id PII-NEW is not in policies/catalogue.yaml",
        "policies/new.rego:8: rule PRR-EVIDENCE is emitted by package relgate.pii but catalogued under area relgate.prr",
        "catalogue rule PII-GHOST (relgate.pii) is emitted by no built-in Rego file",
        "catalogue rule SLO-BUDGET-LOW has severity deny, but the Rego emits it from warn rules",
    ] {
        assert!(problems.contains(expected), "{expected}\n---\n{problems}");
    }
    sources.push(relgate::policy::PolicySource {
        path: "policies/computed.rego".into(),
        text: "package relgate.pii\n\ndeny contains {\"rule\": id, \"msg\": \"x\"} if id := \"PII-X\"\n".into(),
        builtin: true,
        v0: false,
    });
    let err = emitted_ids(&sources).expect_err("computed id");
    assert!(err.contains("policies/computed.rego:3:"), "{err}");
    // and the catalogue refuses a rule without an example or a reason.
    let text =
        std::fs::read_to_string(project_root().join("policies/catalogue.yaml")).expect("catalogue");
    let broken = text.replacen("    no_example: ", "    no_reason: ", 1);
    assert!(Catalogue::parse(&broken).is_err());
}

/// Writes one side of a rule's example into a fresh repository and runs the gate on it.
fn run_example(
    catalogue: &Catalogue,
    rule: &Rule,
    failing: bool,
) -> Option<(crate::support::Run, String)> {
    let example = catalogue.example_run(rule, failing)?;
    let example = example.unwrap_or_else(|err| panic!("{}: {err}", rule.id));
    let repo = Repo::new();
    for (path, text) in &catalogue.example.files {
        repo.file(path, text);
    }
    if let Some(config) = &example.config {
        repo.file("relgate.yaml", config);
    }
    repo.file("releases/example.yaml", &example.manifest);
    let mut args = vec!["check", "releases/example.yaml", "--format", "json"];
    if let Some(pr) = &example.pull_request {
        repo.file("pr.json", pr);
        args.extend(["--pr-json", "pr.json"]);
    }
    Some((repo.run(&args), example.manifest))
}

#[test]
fn every_example_produces_exactly_its_rule_and_its_twin_passes() {
    let catalogue = catalogue();
    let mut problems = Vec::new();
    let mut ran = 0;
    for rule in &catalogue.rules {
        let Some((run, manifest)) = run_example(catalogue, rule, true) else {
            continue;
        };
        ran += 1;
        run.no_panic();
        let expected_exit = match rule.severity {
            Severity::Deny => 1,
            Severity::Warn => 0,
        };
        let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_default();
        let findings: Vec<(String, String)> = json["results"][0]["findings"]
            .as_array()
            .map(|fs| {
                fs.iter()
                    .map(|f| {
                        (
                            f["rule"].as_str().unwrap_or_default().to_string(),
                            f["severity"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let ids: BTreeSet<&str> = findings.iter().map(|(id, _)| id.as_str()).collect();
        let right_severity = findings
            .iter()
            .any(|(id, severity)| id == &rule.id && severity == rule.severity.as_str());
        if run.code != Some(expected_exit)
            || ids != BTreeSet::from([rule.id.as_str()])
            || !right_severity
        {
            problems.push(format!(
                "{}: the failing example should exit {expected_exit} with {} findings of that rule only; it exited {:?} with {ids:?}\n{manifest}\n{}{}",
                rule.id,
                rule.severity.as_str(),
                run.code,
                run.stdout,
                run.stderr
            ));
        }
        let Some((run, manifest)) = run_example(catalogue, rule, false) else {
            continue;
        };
        run.no_panic();
        let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_default();
        let clean = json["results"][0]["findings"]
            .as_array()
            .is_some_and(|f| f.is_empty());
        if run.code != Some(0) || !clean {
            problems.push(format!(
                "{}: the passing example should pass without findings; it exited {:?}\n{manifest}\n{}{}",
                rule.id, run.code, run.stdout, run.stderr
            ));
        }
    }
    assert!(ran >= 30, "only {ran} examples ran");
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn the_example_release_itself_passes() {
    let catalogue = catalogue();
    let repo = Repo::new();
    for (path, text) in &catalogue.example.files {
        repo.file(path, text);
    }
    repo.file("releases/example.yaml", &catalogue.example.manifest);
    let pr: serde_yaml::Value =
        serde_yaml::from_str(&catalogue.example.pull_request).expect("pull request");
    let pr: serde_json::Value = serde_yaml::from_value(pr).expect("json");
    repo.file("pr.json", pr.to_string());
    let run = repo.run(&["check", "releases/example.yaml", "--pr-json", "pr.json"]);
    run.exit(0).stdout_has("PASS  releases/example.yaml");
}

/// The generated docs: path (relative to the repository) -> text.
fn generated_docs(catalogue: &Catalogue) -> BTreeMap<String, String> {
    let mut docs = BTreeMap::new();
    for rule in &catalogue.rules {
        docs.insert(format!("docs/rules/{}.md", rule.id), catalogue.page(rule));
    }
    docs.insert("docs/rules/README.md".to_string(), catalogue.index_page());
    let readme = std::fs::read_to_string(project_root().join("README.md")).expect("README.md");
    let start = readme
        .find(README_START)
        .expect("README.md has the rules:start marker");
    let end = readme
        .find(README_END)
        .expect("README.md has the rules:end marker");
    let generated = format!(
        "{}{README_START}{}{}",
        &readme[..start],
        catalogue.readme_table(),
        &readme[end..]
    );
    docs.insert("README.md".to_string(), generated);
    docs
}

#[test]
fn generated_docs_match_the_catalogue() {
    let root = project_root();
    let docs = generated_docs(catalogue());
    let bless = std::env::var_os("RELGATE_BLESS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (path, text) in &docs {
        let current = std::fs::read_to_string(root.join(path)).unwrap_or_default();
        if &current != text {
            if bless {
                std::fs::create_dir_all(root.join(path).parent().expect("parent")).expect("mkdir");
                std::fs::write(root.join(path), text).expect("write");
            } else {
                stale.push(path.clone());
            }
        }
    }
    // No page of a rule that is gone.
    for entry in std::fs::read_dir(root.join("docs/rules")).expect("docs/rules") {
        let path = format!(
            "docs/rules/{}",
            entry.expect("entry").file_name().to_string_lossy()
        );
        if !docs.contains_key(&path) {
            if bless {
                std::fs::remove_file(root.join(&path)).expect("remove");
            } else {
                stale.push(format!("{path} (no such rule)"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "generated docs differ from policies/catalogue.yaml: {}; run `RELGATE_BLESS=1 cargo test --test it cli::catalogue` and commit the result",
        stale.join(", ")
    );
}

#[test]
fn explain_prints_the_rule_page() {
    let repo = Repo::new();
    let page =
        std::fs::read_to_string(project_root().join("docs/rules/PRR-MISSING.md")).expect("page");
    let run = repo.run(&["explain", "PRR-MISSING"]);
    run.exit(0);
    assert_eq!(run.stdout, page);
    // Case does not matter.
    repo.run(&["explain", "prr-missing"])
        .exit(0)
        .stdout_has("# PRR-MISSING\n");
    let run = repo.run(&["explain", "SLO-BUDGET-LOW"]);
    run.exit(0)
        .stdout_has("- Severity: `warn`.")
        .stdout_has("relgate explain SLO-BUDGET-LOW");
}

#[test]
fn explain_an_unknown_rule_is_exit_2_with_a_suggestion() {
    let repo = Repo::new();
    repo.run(&["explain", "PRR-MISING"])
        .exit(2)
        .stderr_has("unknown rule `PRR-MISING`; did you mean `PRR-MISSING`?")
        .stderr_has("relgate explain --list");
    let run = repo.run(&["explain", "NOTHING-LIKE-IT"]);
    run.exit(2).stderr_has("unknown rule `NOTHING-LIKE-IT` (");
    // What the user typed is shown inert.
    repo.run(&["explain", "X\u{202e}\n::add-mask::y"])
        .exit(2)
        .stderr_has("unknown rule `X\\u{202e}\\n::add-mask::y`");
    // Neither a rule nor --list is a usage error.
    repo.run(&["explain"]).exit(2);
}

#[test]
fn explain_list_names_every_rule_once() {
    let run = Repo::new().run(&["explain", "--list"]);
    run.exit(0);
    let ids: Vec<&str> = run
        .stdout
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or_default())
        .collect();
    let expected: Vec<&str> = catalogue().rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, expected);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("SLO-BUDGET-LOW ") && l.contains("  warn  The remaining")),
        "{}",
        run.stdout
    );
}

#[test]
fn sarif_rules_carry_the_catalogue_text() {
    let catalogue = catalogue();
    let rule = catalogue.rule("ROLLBACK-PLAN").expect("rule");
    let (run, _) = run_example(catalogue, rule, true).expect("example");
    run.exit(1);
    let repo = Repo::new();
    for (path, text) in &catalogue.example.files {
        repo.file(path, text);
    }
    let example = catalogue
        .example_run(rule, true)
        .expect("example")
        .expect("ok");
    repo.file("releases/example.yaml", &example.manifest);
    let run = repo.run(&["check", "releases/example.yaml", "--format", "sarif"]);
    run.exit(1);
    let sarif = run.json();
    let rules = sarif["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .expect("rules");
    let ids: Vec<&str> = rules.iter().filter_map(|r| r["id"].as_str()).collect();
    let expected: Vec<&str> = catalogue.rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, expected);
    let descriptor = rules
        .iter()
        .find(|r| r["id"] == "ROLLBACK-PLAN")
        .expect("descriptor");
    assert_eq!(descriptor["shortDescription"]["text"], rule.title.as_str());
    assert!(descriptor["fullDescription"]["text"]
        .as_str()
        .is_some_and(|t| t.starts_with(&rule.why_text())));
    assert_eq!(
        descriptor["helpUri"],
        "https://github.com/relgate/relgate/blob/main/docs/rules/ROLLBACK-PLAN.md"
    );
    let help = descriptor["help"]["text"].as_str().expect("help");
    assert!(help.contains(&rule.fix_text()) && help.contains("relgate explain ROLLBACK-PLAN"));
    let result = &sarif["runs"][0]["results"][0];
    assert_eq!(result["ruleId"], "ROLLBACK-PLAN");
    assert_eq!(
        rules[result["ruleIndex"].as_u64().expect("index") as usize]["id"],
        "ROLLBACK-PLAN"
    );
}

#[test]
fn text_and_markdown_name_the_rules_to_explain_and_leave_team_rules_out() {
    let catalogue = catalogue();
    let rule = catalogue.rule("PII-SINK").expect("rule");
    let example = catalogue
        .example_run(rule, true)
        .expect("example")
        .expect("ok");
    let repo = Repo::new();
    for (path, text) in &catalogue.example.files {
        repo.file(path, text);
    }
    repo.file("releases/example.yaml", &example.manifest);
    repo.file(
        "team/t.rego",
        "package main\n\ndeny contains {\"msg\": \"team says no\", \"rule\": \"TEAM-NO\"} if true\n",
    );
    let run = repo.run(&["check", "releases/example.yaml", "-p", "team"]);
    run.exit(1).stdout_has(
        "help: `relgate explain RULE` says why a rule matters and how to fix it (PII-SINK)\n",
    );
    let run = repo.run(&[
        "check",
        "releases/example.yaml",
        "-p",
        "team",
        "-f",
        "markdown",
    ]);
    run.exit(1).stdout_has(
        "Why each rule matters and how to fix it: [PII-SINK](https://github.com/relgate/relgate/blob/main/docs/rules/PII-SINK.md) (or `relgate explain RULE`).",
    );
    // A clean run has no hint.
    let repo = Repo::new();
    for (path, text) in &catalogue.example.files {
        repo.file(path, text);
    }
    repo.file("releases/example.yaml", &catalogue.example.manifest);
    repo.run(&["check", "releases/example.yaml"])
        .exit(0)
        .stdout_lacks("relgate explain");
}

#[test]
fn team_policies_can_use_the_shared_library_and_cannot_quietly_change_it() {
    let catalogue = catalogue();
    let repo = Repo::new();
    for (path, text) in &catalogue.example.files {
        repo.file(path, text);
    }
    repo.file("releases/example.yaml", &catalogue.example.manifest);
    // A team rule reading the bundle's library.
    repo.file(
        "team/uses.rego",
        "package main\n\nimport data.relgate.lib\n\ndeny contains {\"msg\": sprintf(\"%s tier %s\", [lib.environment, lib.tier_key]), \"rule\": \"TEAM-LIB\"} if lib.kind == \"PromptRelease\"\n",
    );
    repo.run(&["check", "releases/example.yaml", "-p", "team", "-f", "json"])
        .exit(1)
        .stdout_has("\"message\": \"production tier 1\"");
    // A team file that redefines a library value the bundle relies on: the two definitions
    // conflict, and the run fails closed rather than evaluating either silently.
    repo.file(
        "evil/lib.rego",
        "package relgate.lib\n\nenvironment := \"dev\"\n",
    );
    let run = repo.run(&["check", "releases/example.yaml", "-p", "evil"]);
    run.no_panic().exit(2);
    // Extending the library with a new helper is allowed, and the bundle still decides (on the
    // interpreter, see policy::LIB_PACKAGE).
    repo.file(
        "extra/lib.rego",
        "package relgate.lib\n\nteam_helper := 1\n",
    );
    repo.run(&["check", "releases/example.yaml", "-p", "extra"])
        .exit(0);
    let rule = catalogue.rule("PII-SINK").expect("rule");
    let example = catalogue
        .example_run(rule, true)
        .expect("example")
        .expect("ok");
    repo.file("releases/example.yaml", &example.manifest);
    repo.run(&["check", "releases/example.yaml", "-p", "extra"])
        .exit(1)
        .stdout_has("PII-SINK");
}
