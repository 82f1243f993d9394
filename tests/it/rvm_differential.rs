//! The RVM (bytecode VM) and the interpreter must decide alike: every manifest of the demo, of
//! the acceptance scenarios and of the eval fixtures is evaluated on both and the findings
//! compared. The interpreter is the reference (it is what `opa test`-style tests exercise).

use std::path::{Path, PathBuf};

use relgate::gate::{CheckSettings, Gate};
use relgate::workspace::Discovered;

fn gate_roots() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut roots = vec![
        root.join("examples/demo"),
        root.join("tests/fixtures/evals/demo"),
    ];
    if let Ok(entries) = std::fs::read_dir(root.join("tests/scenarios")) {
        let mut scenarios: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path().join("repo"))
            .collect();
        scenarios.sort();
        roots.extend(scenarios);
    }
    roots.into_iter().filter(|p| p.is_dir()).collect()
}

#[test]
fn rvm_and_interpreter_agree_on_every_sample_manifest() {
    let mut compared = 0;
    for root in gate_roots() {
        let settings = CheckSettings {
            paths: vec![root.clone()],
            cwd: root.clone(),
            now: "2026-11-27T12:00:00Z".to_string(),
            ..CheckSettings::default()
        };
        let gate = Gate::open(&settings).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
        let mut rvm = gate.policies.clone();
        rvm.compile_rvm();
        assert!(rvm.uses_rvm(), "the bundle should run on the RVM");
        let mut interpreter = gate.policies.clone().interpreter_only();
        for found in gate
            .discover(std::slice::from_ref(&root))
            .expect("discover")
        {
            let Discovered::File { path, shown } = found else {
                continue;
            };
            let Ok(source) = relgate::manifest::read_limited(&path, &shown, 1 << 22) else {
                continue;
            };
            let Ok(documents) = relgate::manifest::parse_documents(&source) else {
                continue;
            };
            for document in &documents {
                let input = regorus::Value::from(
                    gate.input(&source, document, serde_json::json!([]))
                        .expect("input"),
                );
                let on_rvm = rvm.evaluate(input.clone());
                let on_interpreter = interpreter.evaluate(input);
                match (&on_rvm, &on_interpreter) {
                    (Ok(a), Ok(b)) => {
                        assert_eq!(a.findings, b.findings, "{shown}#{}", document.index);
                        assert_eq!(a.suppressed, b.suppressed, "{shown}#{}", document.index);
                    }
                    (Err(a), Err(b)) => assert_eq!(a, b, "{shown}"),
                    _ => panic!("{shown}: RVM {on_rvm:?} vs interpreter {on_interpreter:?}"),
                }
                compared += 1;
            }
        }
    }
    assert!(compared >= 15, "only {compared} manifests compared");
}

/// A pull-request context (docs/approvals.md) with GitHub's example logins.
fn pull_request(
    author: &str,
    reviews: &[(&str, &str, bool)],
    members: &[&str],
) -> serde_json::Value {
    let head = "ecdd80bb57125d7ba9641ffaa4d7d2c19d3f3091";
    let reviews: Vec<serde_json::Value> = reviews
        .iter()
        .map(|(user, state, stale)| {
            serde_json::json!({"user": user, "state": state, "submitted_at": "2019-11-17T17:43:43Z",
                "commit_id": if *stale { "9272f18514cbd3fa935b3ced62ae1c2bf6efa76d" } else { head },
                "stale": stale})
        })
        .collect();
    let approvers: Vec<&str> = reviews
        .iter()
        .filter(|r| r["state"] == "APPROVED")
        .filter_map(|r| r["user"].as_str())
        .collect();
    serde_json::json!({
        "number": 1347, "author": author, "labels": ["emergency-release"], "title": "t",
        "draft": false, "state": "open", "merged": false, "merged_by": null,
        "base_ref": "master", "base_sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e",
        "head_ref": "new-topic", "head_sha": head,
        "reviews": reviews, "approvers": approvers,
        "teams": {"ml-reliability": {"org": "octo-org", "members": members}},
    })
}

/// The approval rules only fire with a pull-request context: the demo's production releases
/// (tiers 1 and 2) under approving, self-approved, team-less and cancelled reviews.
#[test]
fn rvm_and_interpreter_agree_on_approvals() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo");
    let contexts = [
        pull_request(
            "Codertocat",
            &[
                ("erwinmombay", "APPROVED", true),
                ("octocat", "APPROVED", false),
            ],
            &["erwinmombay"],
        ),
        pull_request(
            "octocat",
            &[
                ("erwinmombay", "APPROVED", false),
                ("octocat", "APPROVED", false),
            ],
            &["erwinmombay", "octocat"],
        ),
        pull_request(
            "Codertocat",
            &[
                ("erwinmombay", "CHANGES_REQUESTED", false),
                ("octocat", "APPROVED", true),
                ("Codertocat", "COMMENTED", false),
            ],
            &[],
        ),
        pull_request("Codertocat", &[], &[]),
    ];
    let mut approval_findings = 0;
    for context in contexts {
        let settings = CheckSettings {
            paths: vec![root.clone()],
            cwd: root.clone(),
            now: "2026-11-27T12:00:00Z".to_string(),
            pull_request: Some(context),
            ..CheckSettings::default()
        };
        let gate = Gate::open(&settings).unwrap_or_else(|e| panic!("{e}"));
        let mut rvm = gate.policies.clone();
        rvm.compile_rvm();
        assert!(rvm.uses_rvm(), "the bundle should run on the RVM");
        let mut interpreter = gate.policies.clone().interpreter_only();
        for found in gate
            .discover(std::slice::from_ref(&root))
            .expect("discover")
        {
            let Discovered::File { path, shown } = found else {
                continue;
            };
            let source = relgate::manifest::read_limited(&path, &shown, 1 << 22).expect("read");
            let documents = relgate::manifest::parse_documents(&source).expect("parse");
            for document in &documents {
                let input = regorus::Value::from(
                    gate.input(&source, document, serde_json::json!([]))
                        .expect("input"),
                );
                let on_rvm = rvm.evaluate(input.clone()).expect("rvm");
                let on_interpreter = interpreter.evaluate(input).expect("interpreter");
                assert_eq!(
                    on_rvm.findings, on_interpreter.findings,
                    "{shown}#{}",
                    document.index
                );
                approval_findings += on_rvm
                    .findings
                    .iter()
                    .filter(|f| f.policy == "relgate.approvals")
                    .count();
            }
        }
    }
    assert!(
        approval_findings >= 10,
        "only {approval_findings} approval findings compared"
    );
}
