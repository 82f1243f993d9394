//! Acceptance scenarios, one folder each under `tests/scenarios/` (conftest's habit): a
//! `repo/` tree to run in and a `case.yaml` saying what to run and what must come out. Adding
//! a scenario needs no Rust.
//!
//! ```yaml
//! args: [check, releases, --format, json]
//! exit: 1
//! stdout_contains: ["PII-SINK"]
//! stderr_contains: []
//! ```

use crate::support::{project_root, Repo};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    args: Vec<String>,
    exit: i32,
    #[serde(default)]
    stdout_contains: Vec<String>,
    #[serde(default)]
    stdout_lacks: Vec<String>,
    #[serde(default)]
    stderr_contains: Vec<String>,
    /// Run inside this subdirectory of repo/.
    #[serde(default)]
    cwd: Option<String>,
}

#[test]
fn every_scenario_holds() {
    let dir = project_root().join("tests/scenarios");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/scenarios exists")
        .filter_map(Result::ok)
        .filter(|e| e.path().join("case.yaml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 5, "expected scenarios, found {names:?}");
    for name in names {
        let folder = dir.join(&name);
        let case: Case = serde_yaml::from_str(
            &std::fs::read_to_string(folder.join("case.yaml")).expect("read case"),
        )
        .unwrap_or_else(|e| panic!("{name}/case.yaml: {e}"));
        let repo = Repo::git();
        repo.copy_dir(&folder.join("repo"), ".");
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let run = repo.run_in(case.cwd.as_deref().unwrap_or("."), &args);
        eprintln!("scenario {name}");
        run.exit(case.exit).no_panic();
        for text in &case.stdout_contains {
            run.stdout_has(text);
        }
        for text in &case.stdout_lacks {
            run.stdout_lacks(text);
        }
        for text in &case.stderr_contains {
            run.stderr_has(text);
        }
    }
}
