//! How relgate is installed: `--version` names the commit of the build, and the crate
//! package (`cargo install relgate`) holds every file the build reads: everything build.rs
//! embeds and every `include_str!`/`include_bytes!` target.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{project_root, Repo};

#[test]
fn version_names_the_commit_of_the_build() {
    let run = Repo::new().run(&["--version"]);
    run.exit(0);
    let version = run.stdout.trim();
    let prefix = concat!("relgate ", env!("CARGO_PKG_VERSION"), " (");
    let commit = version
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("`{version}` is not `relgate VERSION (COMMIT)`"));
    // Built from a git checkout (as the tests are): what git describes for this checkout.
    let described = Command::new("git")
        .args([
            "describe",
            "--tags",
            "--always",
            "--abbrev=12",
            "--match",
            "v[0-9]*",
        ])
        .current_dir(project_root())
        .output()
        .expect("git");
    if described.status.success() {
        assert_eq!(commit, String::from_utf8_lossy(&described.stdout).trim());
    } else {
        assert_eq!(commit, "unknown commit");
    }
}

/// Every path `include_str!("…")` / `include_bytes!("…")` names in `dir`'s Rust files,
/// resolved against the including file, relative to the project root.
fn included(dir: &Path, root: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            included(&path, root, out);
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        for macro_name in ["include_str!(\"", "include_bytes!(\""] {
            for (at, _) in text.match_indices(macro_name) {
                let rest = &text[at + macro_name.len()..];
                let target = &rest[..rest.find('"').expect("closing quote")];
                let resolved: PathBuf = path.parent().expect("parent").join(target);
                let mut parts: Vec<String> = Vec::new();
                for c in resolved
                    .strip_prefix(root)
                    .expect("inside the crate")
                    .components()
                {
                    match c {
                        std::path::Component::ParentDir => {
                            parts.pop();
                        }
                        std::path::Component::Normal(p) => {
                            parts.push(p.to_string_lossy().into_owned())
                        }
                        _ => {}
                    }
                }
                out.push(parts.join("/"));
            }
        }
    }
}

#[test]
fn the_crate_package_holds_everything_the_build_reads() {
    let root = project_root();
    let out = Command::new(env!("CARGO"))
        .args(["package", "--list", "--allow-dirty", "--offline"])
        .current_dir(&root)
        .output()
        .expect("cargo package --list");
    assert!(
        out.status.success(),
        "cargo package --list failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: std::collections::BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let mut needed = vec![
        "build.rs".to_owned(),
        "Cargo.toml".to_owned(),
        "Cargo.lock".to_owned(),
    ];
    // What build.rs embeds: every policy (.rego, .yaml) and schema (.json).
    for (dir, exts) in [
        ("policies", &["rego", "yaml"][..]),
        ("schemas", &["json"][..]),
    ] {
        for entry in std::fs::read_dir(root.join(dir)).expect("read dir") {
            let path = entry.expect("entry").path();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if exts.contains(&ext) {
                let name = path.file_name().expect("name").to_string_lossy();
                needed.push(format!("{dir}/{name}"));
            }
        }
    }
    let before = needed.len();
    included(&root.join("src"), &root, &mut needed);
    assert!(
        needed.len() > before,
        "found no include_str! (the scan is broken)"
    );
    assert!(needed.contains(&"examples/workflows/relgate.yml".to_owned()));
    let missing: Vec<&String> = needed.iter().filter(|n| !listed.contains(*n)).collect();
    assert!(missing.is_empty(), "not in the crate package: {missing:?}");
    // Nothing the package does not need: no test fixtures, no scripts, no CI files.
    for listed in &listed {
        assert!(
            !listed.starts_with("tests/fixtures") && !listed.starts_with(".github"),
            "{listed} is in the crate package"
        );
    }
}
