//! The Python wheel (pyproject.toml, maturin `bindings = "bin"`) and the pre-commit hook that
//! installs it (pre-commit/): the wheel is built with maturin, installed into a fresh venv from
//! the built file only (`--no-index`), and the `relgate` it puts on the venv's PATH runs a real
//! check; pre-commit then installs the hook repository (whose one dependency is that wheel)
//! with the package index switched off and runs it on a repository with a passing and with a
//! failing release. Needs maturin and pre-commit (scripts/test installs them).

// A panic is how a test reports a broken fixture; unwrap keeps this harness readable.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use crate::support::{dev_release, project_root, Repo};

fn run(command: &mut Command) -> Output {
    let shown = format!("{command:?}");
    command
        .output()
        .unwrap_or_else(|e| panic!("{shown}: {e} (scripts/test installs maturin and pre-commit)"))
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn git(dir: &Path, args: &[&str]) {
    let output = run(Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com"));
    assert!(output.status.success(), "git {args:?}: {}", text(&output));
}

/// `maturin build` of this crate in the dev profile (the test build's dependencies are reused,
/// so this costs seconds, not a release build), stripped as pyproject.toml asks. The wheel.
///
/// The build replaces `target/debug/relgate` with the stripped binary while other tests run:
/// the tested binary's stable link ([`crate::support::relgate_bin`]) is made first, so no
/// test loses its binary to the rebuild.
fn build_wheel(out: &Path) -> PathBuf {
    crate::support::relgate_bin();
    let root = project_root();
    let output = run(Command::new("maturin")
        .args([
            "build",
            "--profile",
            "dev",
            "--locked",
            "--offline",
            "--out",
        ])
        .arg(out)
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .current_dir(&root));
    assert!(output.status.success(), "maturin build: {}", text(&output));
    let wheels: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "whl"))
        .collect();
    assert_eq!(wheels.len(), 1, "{wheels:?}");
    let name = wheels[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    // A binary wheel: any Python 3, no ABI, one platform.
    let prefix = concat!("relgate-", env!("CARGO_PKG_VERSION"), "-py3-none-");
    assert!(name.starts_with(prefix), "{name}");
    wheels[0].clone()
}

/// The setuptools wheel pre-commit's own virtualenv package carries: the hook repository's
/// build backend, offered from the same `--find-links` directory as relgate's wheel so that
/// pip needs no package index at all.
fn offer_setuptools(find_links: &Path) {
    let output = run(Command::new("python3").args([
        "-c",
        "import virtualenv, os; print(os.path.join(os.path.dirname(virtualenv.__file__), 'seed', 'wheels', 'embed'))",
    ]));
    assert!(
        output.status.success(),
        "virtualenv (comes with pre-commit): {}",
        text(&output)
    );
    let embed = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let mut found = false;
    for entry in std::fs::read_dir(&embed).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("setuptools-") && name.ends_with(".whl") {
            std::fs::copy(&path, find_links.join(&name)).unwrap();
            found = true;
        }
    }
    assert!(found, "no setuptools wheel in {}", embed.display());
}

#[test]
fn the_wheel_installs_without_rust_and_its_pre_commit_hook_gates_commits() {
    let work = tempfile::tempdir().unwrap();
    let wheels = work.path().join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    let started = Instant::now();
    let wheel = build_wheel(&wheels);
    eprintln!("maturin build --profile dev: {:?}", started.elapsed());
    eprintln!(
        "wheel {}: {} bytes",
        wheel.file_name().unwrap().to_string_lossy(),
        std::fs::metadata(&wheel).unwrap().len()
    );

    // A fresh venv, the wheel file the only source.
    let venv = work.path().join("venv");
    let output = run(Command::new("python3").arg("-m").arg("venv").arg(&venv));
    assert!(output.status.success(), "venv: {}", text(&output));
    let started = Instant::now();
    let output = run(Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--no-index", "--find-links"])
        .arg(&wheels)
        .arg("relgate"));
    assert!(output.status.success(), "pip install: {}", text(&output));
    eprintln!(
        "pip install of the wheel into a fresh venv: {:?}",
        started.elapsed()
    );

    let relgate = venv.join("bin/relgate");
    let output = run(Command::new(&relgate).arg("--version"));
    assert!(output.status.success(), "{}", text(&output));
    let version = String::from_utf8_lossy(&output.stdout);
    assert!(
        version.starts_with(concat!("relgate ", env!("CARGO_PKG_VERSION"), " (")),
        "{version}"
    );

    // A real check from the venv: a passing release, and one blocked by policy.
    let repo = Repo::new();
    repo.file("releases/ok.yaml", dev_release("ok")).file(
        "releases/bad.yaml",
        dev_release("bad").replace("content_capture: false", "content_capture: true"),
    );
    let check = |file: &str| {
        run(Command::new(&relgate)
            .args(["check", file])
            .current_dir(repo.path())
            .env("NO_COLOR", "1"))
    };
    let pass = check("releases/ok.yaml");
    assert_eq!(pass.status.code(), Some(0), "{}", text(&pass));
    let blocked = check("releases/bad.yaml");
    assert_eq!(blocked.status.code(), Some(1), "{}", text(&blocked));
    assert!(
        text(&blocked).contains("PII-CAPTURE-UNREDACTED"),
        "{}",
        text(&blocked)
    );

    // The hook repository as it is published: pre-commit/ at the root of its own git repo.
    let hook_source = project_root().join("pre-commit");
    let pyproject = std::fs::read_to_string(hook_source.join("pyproject.toml")).unwrap();
    for pinned in [
        concat!("version = \"", env!("CARGO_PKG_VERSION"), "\""),
        concat!("\"relgate==", env!("CARGO_PKG_VERSION"), "\""),
    ] {
        assert!(
            pyproject.contains(pinned),
            "pre-commit/pyproject.toml must say {pinned} (Cargo.toml's version)"
        );
    }
    let hook_repo = work.path().join("relgate-pre-commit");
    std::fs::create_dir_all(&hook_repo).unwrap();
    for name in [".pre-commit-hooks.yaml", "pyproject.toml", "README.md"] {
        std::fs::copy(hook_source.join(name), hook_repo.join(name)).unwrap();
    }
    git(&hook_repo, &["init", "-q", "-b", "main"]);
    git(&hook_repo, &["add", "-A"]);
    git(&hook_repo, &["commit", "-q", "-m", "hook"]);
    offer_setuptools(&wheels);

    // A project on a feature branch: the hook checks what the branch and the staged work change.
    let project = Repo::git();
    project.file("releases/ok.yaml", dev_release("ok"));
    project.commit("a release");
    project.branch("feature");
    let pre_commit_home = work.path().join("pre-commit-home");
    let hook = |project: &Repo| {
        git(project.path(), &["add", "-A"]);
        run(Command::new("pre-commit")
            .args(["try-repo"])
            .arg(&hook_repo)
            .args(["relgate-check", "--all-files", "--color", "never"])
            .current_dir(project.path())
            .env("PRE_COMMIT_HOME", &pre_commit_home)
            .env("PIP_NO_INDEX", "1")
            .env("PIP_FIND_LINKS", &wheels)
            .env("NO_COLOR", "1"))
    };
    project.file("releases/next.yaml", dev_release("next"));
    let started = Instant::now();
    let passed = hook(&project);
    eprintln!(
        "pre-commit hook, first run (installs the wheel): {:?}",
        started.elapsed()
    );
    assert_eq!(passed.status.code(), Some(0), "{}", text(&passed));
    assert!(
        text(&passed).contains("relgate check --changed"),
        "{}",
        text(&passed)
    );
    assert!(text(&passed).contains("Passed"), "{}", text(&passed));

    project.file(
        "releases/leaky.yaml",
        dev_release("leaky").replace("content_capture: false", "content_capture: true"),
    );
    let failed = hook(&project);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    assert!(text(&failed).contains("Failed"), "{}", text(&failed));
    assert!(
        text(&failed).contains("releases/leaky.yaml"),
        "{}",
        text(&failed)
    );
    assert!(
        text(&failed).contains("PII-CAPTURE-UNREDACTED"),
        "{}",
        text(&failed)
    );
}
