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

/// Evaluates every document under `root` on both engines and asserts they agree; returns how
/// many documents were compared and how many findings they had.
fn compare(root: &Path, pull_request: Option<serde_json::Value>) -> (usize, usize) {
    let settings = CheckSettings {
        paths: vec![root.to_path_buf()],
        cwd: root.to_path_buf(),
        now: "2026-11-27T12:00:00Z".to_string(),
        pull_request,
        ..CheckSettings::default()
    };
    let gate = Gate::open(&settings).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
    let mut rvm = gate.policies.clone();
    rvm.compile_rvm();
    assert!(rvm.uses_rvm(), "the bundle should run on the RVM");
    let mut interpreter = gate.policies.clone().interpreter_only();
    let (mut compared, mut findings) = (0, 0);
    for found in gate.discover(&[root.to_path_buf()]).expect("discover") {
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
                    findings += a.findings.len();
                }
                (Err(a), Err(b)) => assert_eq!(a, b, "{shown}"),
                _ => panic!("{shown}: RVM {on_rvm:?} vs interpreter {on_interpreter:?}"),
            }
            compared += 1;
        }
    }
    (compared, findings)
}

#[test]
fn rvm_and_interpreter_agree_on_every_sample_manifest() {
    let compared: usize = gate_roots().iter().map(|root| compare(root, None).0).sum();
    assert!(compared >= 15, "only {compared} manifests compared");
}

/// Both sides of every rule's example (the manifests of `relgate explain`), each in a
/// repository of its own with the example's files, config and pull request.
#[test]
fn rvm_and_interpreter_agree_on_every_rule_example() {
    let catalogue = relgate::catalogue::catalogue();
    let (mut compared, mut findings) = (0, 0);
    for rule in &catalogue.rules {
        for failing in [true, false] {
            let Some(example) = catalogue.example_run(rule, failing) else {
                continue;
            };
            let example = example.unwrap_or_else(|e| panic!("{}: {e}", rule.id));
            let dir = tempfile::tempdir().expect("tempdir");
            let write = |path: &str, text: &str| {
                let path = dir.path().join(path);
                std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                std::fs::write(path, text).expect("write");
            };
            for (path, text) in &catalogue.example.files {
                write(path, text);
            }
            write(
                "relgate.yaml",
                example
                    .config
                    .as_deref()
                    .unwrap_or("apiVersion: relgate.dev/v1\nkind: GateConfig\n"),
            );
            write("releases/example.yaml", &example.manifest);
            let pull_request = example
                .pull_request
                .as_deref()
                .map(|json| serde_json::from_str(json).expect("pull request JSON"));
            let root = dir.path().canonicalize().expect("canonical");
            let (n, f) = compare(&root, pull_request);
            compared += n;
            findings += f;
        }
    }
    assert!(compared >= 60, "only {compared} examples compared");
    assert!(findings >= 30, "only {findings} findings compared");
}

/// Manifests that reach rule bodies through values that are absent: each once made the RVM
/// go on past an undefined `x := e` (a metric missing from the results under `min_samples`
/// gave a second, wrong EVAL-SAMPLES finding on the RVM only).
#[test]
fn rvm_and_interpreter_agree_where_values_are_absent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().canonicalize().expect("canonical");
    let results = r#"{"acc": {"value": 0.95, "samples": 500}}"#;
    let digest = {
        use sha2::Digest;
        format!("sha256:{:x}", sha2::Sha256::digest(results.as_bytes()))
    };
    std::fs::create_dir_all(root.join("releases")).expect("mkdir");
    std::fs::create_dir_all(root.join("evals")).expect("mkdir");
    std::fs::write(root.join("evals/c.json"), results).expect("write");
    // The same metric, lower is better by its file's say.
    let flipped = r#"{"acc": {"value": 0.5, "samples": 500, "higher_is_better": false}}"#;
    let flipped_digest = {
        use sha2::Digest;
        format!("sha256:{:x}", sha2::Sha256::digest(flipped.as_bytes()))
    };
    std::fs::write(root.join("evals/f.json"), flipped).expect("write");
    std::fs::write(
        root.join("relgate.yaml"),
        "apiVersion: relgate.dev/v1\nkind: GateConfig\n",
    )
    .expect("write");
    let release = |name: &str, evaluation: &str| {
        format!(
            "apiVersion: relgate.dev/v1\nkind: ModelRelease\nmetadata: {{name: {name}, version: \"2\", service: svc, environment: production, tier: 1, change_type: feature}}\nspec:\n  owner: {{team: t, contact: o@example.com}}\n  model: {{registry: mlflow, uri: \"models:/x/2\", digest: \"sha256:{a}\", baseline: {{version: \"1\"}}}}\n  rollout: {{strategy: canary, steps: [5, 50, 100]}}\n  rollback: {{to_version: \"1\", max_minutes: 5}}\n  evaluations:\n    - {evaluation}\n",
            a = "a".repeat(64)
        )
    };
    let evaluations = [
        format!("{{id: e, format: metrics, candidate: {{path: evals/c.json, digest: \"{digest}\"}}, min_samples: 10, thresholds: {{acc: {{min: 0.9}}, nothere: {{min: 0.5}}}}}}"),
        format!("{{id: e, format: metrics, candidate: {{path: evals/c.json, digest: \"{digest}\"}}, baseline: {{path: evals/c.json, digest: \"{digest}\"}}, thresholds: {{nothere: {{max_regression: 0.1}}, acc: {{max_relative_regression: 0.1}}}}}}"),
        format!("{{id: e, format: metrics, candidate: {{path: evals/c.json, digest: \"{digest}\"}}, thresholds: {{acc: {{max_regression: 0.1}}}}}}"),
        format!("{{id: e, format: metrics, candidate: {{path: evals/missing.json, digest: \"{digest}\"}}, min_samples: 10, thresholds: {{acc: {{min: 0.9}}}}}}"),
        "{id: e, format: metrics}".to_string(),
        format!("{{id: e, format: metrics, candidate: {{path: evals/f.json, digest: \"{flipped_digest}\"}}, baseline: {{path: evals/c.json, digest: \"{digest}\"}}, thresholds: {{acc: {{min: 0.1, max_regression: 0.01}}}}}}"),
        format!("{{id: e, format: metrics, candidate: {{path: evals/f.json, digest: \"{flipped_digest}\"}}, baseline: {{path: evals/c.json, digest: \"{digest}\"}}, thresholds: {{acc: {{max_regression: 0.01}}}}}}"),
        format!("{{id: e, format: metrics, candidate: {{path: evals/f.json, digest: \"{flipped_digest}\"}}, baseline: {{path: evals/f.json, digest: \"{flipped_digest}\"}}, thresholds: {{acc: {{min: 0.1, max: 0.9, max_relative_regression: 0.01}}}}}}"),
    ];
    for (i, evaluation) in evaluations.iter().enumerate() {
        std::fs::write(
            root.join(format!("releases/r{i}.yaml")),
            release(&format!("r{i}"), evaluation),
        )
        .expect("write");
    }
    let (compared, findings) = compare(&root, None);
    assert!(compared >= evaluations.len(), "{compared} documents");
    assert!(findings >= evaluations.len(), "{findings} findings");
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

/// `context` with each review's `association` and `permission` set, in order.
fn with_standing(mut context: serde_json::Value, standing: &[(&str, &str)]) -> serde_json::Value {
    if let Some(reviews) = context["reviews"].as_array_mut() {
        for (review, (association, permission)) in reviews.iter_mut().zip(standing) {
            review["association"] = (*association).into();
            review["permission"] = (*permission).into();
        }
    }
    context
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
        // Standing: an outsider, a read-only member, a maintainer and an admin.
        with_standing(
            pull_request(
                "Codertocat",
                &[
                    ("mallory", "APPROVED", false),
                    ("reader", "APPROVED", false),
                    ("erwinmombay", "APPROVED", false),
                    ("octocat", "APPROVED", false),
                ],
                &["reader", "erwinmombay"],
            ),
            &[
                ("NONE", "read"),
                ("MEMBER", "read"),
                ("MEMBER", "maintain"),
                ("OWNER", "admin"),
            ],
        ),
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
