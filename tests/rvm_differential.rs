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
                let input =
                    regorus::Value::from(gate.input(&source, document, serde_json::json!([])));
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
