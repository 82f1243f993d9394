//! Docs that list the fields of what relgate writes are held to what it writes: the JSON
//! report of docs/report.md (its example and its field table) against real runs of
//! `relgate check --format json` that between them produce every field (findings with an
//! item, waivers, exceptions, notes, a `--changed` range with a removed manifest and the
//! rules it was judged by). A field the binary writes that the page does not name, a field
//! the page names that no run writes, or an example in another order than the output fails.
//! docs/records.md's example Statement is held to the payload the record library builds from
//! an input with every optional part. (The export's columns are checked in `export.rs`.)

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

use crate::support::{dev_release, project_root, Repo};

/// A page of docs/.
fn doc(name: &str) -> String {
    std::fs::read_to_string(project_root().join("docs").join(name))
        .unwrap_or_else(|e| panic!("docs/{name}: {e}"))
}

/// `relgate check --format json` on a copy of `dir` (a directory of this repository).
fn check_json_of(dir: &str) -> Value {
    let repo = Repo::new();
    repo.copy_dir(&project_root().join(dir), ".");
    repo.run(&["check", "--format", "json"]).json()
}

/// A `--changed` report: a branch that deletes one of two releases.
fn changed_report() -> Value {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("alpha"))
        .file("releases/b.yaml", dev_release("beta"));
    repo.commit("two releases");
    repo.branch("feature");
    repo.remove("releases/b.yaml");
    repo.file(
        "releases/a.yaml",
        dev_release("alpha").replace("version: \"2\"", "version: \"3\""),
    );
    repo.commit("retire beta, alpha 3");
    repo.run(&["check", "--changed", "--base", "main", "--format", "json"])
        .json()
}

/// The keys of every object at `level` of a report: `""` the top, `results[]`,
/// `results[].findings[]`, `changed`, ... in the order of their first appearance, merged over
/// all objects (a key absent from one object is inserted where the others have it).
fn keys_at(report: &Value, out: &mut BTreeMap<String, Vec<String>>, level: &str) {
    match report {
        Value::Object(map) => {
            let keys = out.entry(level.to_owned()).or_default();
            let mut at = 0;
            for key in map.keys() {
                match keys.iter().position(|k| k == key) {
                    Some(i) => at = i + 1,
                    None => {
                        keys.insert(at, key.clone());
                        at += 1;
                    }
                }
            }
            for (key, value) in map {
                let child = if level.is_empty() {
                    key.clone()
                } else {
                    format!("{level}.{key}")
                };
                keys_at(value, out, &child);
            }
        }
        Value::Array(items) => {
            for item in items {
                keys_at(item, out, &format!("{level}[]"));
            }
        }
        _ => {}
    }
}

/// Every key an example of docs/`page` shows (`shown`, by level) is written at that level
/// (`real`), and the example's keys are in the written order.
#[track_caller]
fn assert_shown_in_order(
    page: &str,
    shown: &BTreeMap<String, Vec<String>>,
    real: &BTreeMap<String, Vec<String>>,
) {
    for (level, keys) in shown {
        let written = real
            .get(level)
            .unwrap_or_else(|| panic!("docs/{page} shows `{level}`, which is never written"));
        let in_order: Vec<&String> = written.iter().filter(|k| keys.contains(k)).collect();
        assert_eq!(
            in_order,
            keys.iter().collect::<Vec<_>>(),
            "docs/{page}'s example at `{level}`: its keys, in the written order"
        );
    }
}

/// The field table of docs/report.md: each row's names (the backticked names of its first
/// cell), as full paths (`findings[]` is short for `results[].findings[]`), with the row's
/// description.
fn documented_rows(page: &str) -> Vec<(Vec<String>, String)> {
    let table = page
        .split("| field | meaning |")
        .nth(1)
        .expect("docs/report.md has a `| field | meaning |` table");
    let mut rows = Vec::new();
    for line in table.lines().skip(2) {
        if !line.starts_with('|') {
            break;
        }
        let mut cells = line.splitn(3, '|').skip(1);
        let first = cells.next().expect("first cell");
        let rest = cells.next().unwrap_or_default().to_owned();
        let names = first
            .split('`')
            .skip(1)
            .step_by(2)
            .map(|name| match name.strip_prefix("findings[]") {
                Some(tail) => format!("results[].findings[]{tail}"),
                None => name.to_owned(),
            })
            .collect();
        rows.push((names, rest));
    }
    rows
}

/// docs/report.md names every field the JSON report has, no field it lacks, and its example
/// is in the report's field order.
#[test]
fn report_md_names_the_fields_the_json_report_has() {
    let page = doc("report.md");
    let reports = [
        check_json_of("examples/demo"),
        check_json_of("tests/scenarios/team-policy-with-exception/repo"),
        changed_report(),
    ];
    let mut real = BTreeMap::new();
    for report in &reports {
        keys_at(report, &mut real, "");
    }
    // What the runs are for: between them, every optional part of the report is written.
    for level in [
        "results[].waivers[]",
        "results[].exceptions[]",
        "changed",
        "removed[]",
        "rules",
    ] {
        assert!(real.contains_key(level), "no run wrote {level}: {real:?}");
    }

    // The example: the same keys in the same order as the report, at each level it shows.
    let example_text = page
        .split("```json\n")
        .nth(1)
        .and_then(|s| s.split("\n```").next())
        .expect("docs/report.md has a ```json example")
        .replace('…', "");
    let example: Value =
        serde_json::from_str(&example_text).expect("the example of docs/report.md is JSON");
    let mut shown = BTreeMap::new();
    keys_at(&example, &mut shown, "");
    assert_shown_in_order("report.md", &shown, &real);

    // The example and the table together name every key of the report, and nothing else.
    let rows = documented_rows(&page);
    let mut documented: BTreeSet<String> = BTreeSet::new();
    for (level, keys) in &shown {
        for key in keys {
            documented.insert(if level.is_empty() {
                key.clone()
            } else {
                format!("{level}.{key}")
            });
        }
    }
    for (names, description) in &rows {
        documented.extend(names.iter().cloned());
        // A field made of named parts lists them as `{a, b, c}`: those, in order.
        if let Some(parts) = description
            .split('{')
            .nth(1)
            .and_then(|s| s.split('}').next())
        {
            let level = names[0].clone();
            let level = if real.contains_key(&format!("{level}[]")) {
                format!("{level}[]")
            } else {
                level
            };
            let listed: Vec<String> = parts.split(',').map(|p| p.trim().to_owned()).collect();
            let written = real.get(&level).unwrap_or_else(|| {
                panic!("docs/report.md lists parts of `{level}`, which no report has")
            });
            assert_eq!(
                written, &listed,
                "docs/report.md: the parts of `{level}`, in order"
            );
            documented.extend(listed.iter().map(|p| format!("{level}.{p}")));
        }
    }
    let mut written: BTreeSet<String> = BTreeSet::new();
    for (level, keys) in &real {
        for key in keys {
            written.insert(if level.is_empty() {
                key.clone()
            } else {
                format!("{level}.{key}")
            });
        }
    }
    // An exception is the finding it suppressed plus `exception` and `exception_policy`.
    let exception_parts = ["exception", "exception_policy"];
    let undocumented: Vec<&String> = written
        .iter()
        .filter(|path| !documented.contains(*path))
        .filter(|path| match path.strip_prefix("results[].exceptions[].") {
            Some(key) => {
                !exception_parts.contains(&key)
                    && !documented.contains(&format!("results[].findings[].{key}"))
            }
            None => true,
        })
        .collect();
    assert!(
        undocumented.is_empty(),
        "the JSON report has fields docs/report.md does not name: {undocumented:?}"
    );
    let unwritten: Vec<&String> = documented
        .iter()
        .filter(|path| !written.contains(*path))
        .collect();
    assert!(
        unwritten.is_empty(),
        "docs/report.md names fields no report has: {unwritten:?}"
    );
}

/// docs/records.md's example Statement has the fields of a real record's payload, in its
/// order, at every level; a record has no field the page neither shows nor lists as an
/// extension (`changed_in`).
#[test]
fn records_md_shows_the_fields_of_a_record_in_order() {
    let page = doc("records.md");
    let section = page
        .split("## Record format")
        .nth(1)
        .expect("docs/records.md has `## Record format`");
    // The second JSON block of the section is the Statement (the first is the envelope).
    let example: Value = serde_json::from_str(
        section
            .split("```json\n")
            .nth(2)
            .and_then(|s| s.split("\n```").next())
            .expect("the Statement example"),
    )
    .expect("the Statement example of docs/records.md is JSON");

    // A record with every optional part: artifact, pull request, SLO reading, evidence,
    // bundles and changed_in.
    let sha = |c: char| c.to_string().repeat(64);
    let input: relgate::record::statement::RecordInput = serde_json::from_value(serde_json::json!({
        "manifest_path": "releases/answer.yaml",
        "manifest_sha256": sha('a'),
        "artifact": {"name": "prompts/answer.prompt", "sha256": sha('b')},
        "decision": "fail",
        "findings": [{"rule": "PII-RETENTION", "severity": "deny", "policy": "relgate.pii",
                      "message": "m", "path": "spec.logging.sinks[0].retention_days", "line": 41}],
        "manifest": {"kind": "PromptRelease", "name": "support-answer", "version": "17",
                     "service": "support-bot", "environment": "production", "tier": 1,
                     "change_type": "feature",
                     "owner": {"team": "assistants", "contact": "dana@example.com"},
                     "ticket": "AIR-1234", "baseline": "15", "candidate": "17"},
        "git": {"repo": "https://github.com/acme/assistants", "commit": "c".repeat(40),
                "ref": "refs/heads/main"},
        "changed_in": ["d".repeat(40)],
        "pull_request": {"number": 512, "author": "dana", "approvers": ["bob", "erin"],
                         "merged_by": "bob"},
        "slo_readings": [{"name": "answer-availability", "query": "slo:x",
                          "time": "2026-01-31T11:59:00Z", "value": 0.42}],
        "ci_run_url": "https://github.com/acme/assistants/actions/runs/1",
        "evidence": [{"uri": "evals/answer-v17.json", "sha256": sha('e')}],
        "policy": {"uri": "relgate:builtin@0.1.0", "sha256": sha('f')},
        "bundles": [{"ref": format!("oci://registry.example.com/org/policies@sha256:{}", "1".repeat(64)),
                     "digest": format!("sha256:{}", "1".repeat(64)), "keyid": "2".repeat(64)}],
        "verifier_version": "0.1.0",
        "time_verified": "2026-01-31T12:00:00Z",
    }))
    .expect("a record input");
    let statement =
        relgate::record::statement::build_statement(&input, 42, &sha('0')).expect("statement");
    let payload: Value =
        serde_json::from_slice(&statement.to_payload().expect("payload")).expect("payload JSON");

    let mut real = BTreeMap::new();
    keys_at(&payload, &mut real, "");
    let mut shown = BTreeMap::new();
    keys_at(&example, &mut shown, "");
    let change = "predicate.https://relgate.dev/change/v1";
    let extensions = [format!("{change}.changed_in")];
    for (level, keys) in &real {
        let listed = shown.get(level);
        let missing: Vec<&String> = keys
            .iter()
            .filter(|k| !listed.is_some_and(|l| l.contains(k)))
            .filter(|k| !extensions.contains(&format!("{level}.{k}")))
            .collect();
        assert!(
            missing.is_empty(),
            "docs/records.md's example lacks {missing:?} at `{level}`"
        );
    }
    assert_shown_in_order("records.md", &shown, &real);
    assert!(
        section.contains("`changed_in`"),
        "docs/records.md lists the changed_in extension"
    );
}
