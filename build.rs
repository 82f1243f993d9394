//! Embeds the built-in policy bundle (`policies/`) and the JSON Schemas (`schemas/`) in the
//! binary, so a release of relgate is one self-contained file. Every file of those folders is
//! embedded (sorted, so the generated code and the bundle digest are deterministic): adding a
//! policy needs no change here.
//!
//! It also sets `RELGATE_COMMIT`, the commit `relgate --version` names: `git describe` of the
//! checkout relgate is built from, or, in a crate built from its crates.io package (no `.git`),
//! the commit `cargo package` recorded in `.cargo_vcs_info.json`; `unknown commit` when neither
//! exists. Only a checkout whose top level *is* this crate counts: a package unpacked inside some
//! other repository (vendored) must not report that repository's commit.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn embed(dir: &str, exts: &[&str], out: &mut String, name: &str) {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let root = Path::new(&manifest_dir).join(dir);
    println!("cargo:rerun-if-changed={dir}");
    let mut files: Vec<_> = std::fs::read_dir(&root)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| exts.contains(&e))
    });
    files.sort();
    let _ = writeln!(out, "pub(crate) static {name}: &[(&str, &str)] = &[");
    for path in files {
        let file_name = path
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or_default();
        println!("cargo:rerun-if-changed={dir}/{file_name}");
        let _ = writeln!(
            out,
            "    ({:?}, include_str!({:?})),",
            format!("{dir}/{file_name}"),
            path.display().to_string()
        );
    }
    let _ = writeln!(out, "];");
}

/// Runs `git ARGS` in `dir`; its trimmed stdout when it succeeded and printed something.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// The commit of the build, for `relgate --version`.
fn commit(manifest_dir: &Path) -> String {
    // A packaged crate: `cargo package` wrote the commit it was made from (and the crate has no
    // `.git`, so git would find an enclosing repository, if any, which is the wrong one).
    let vcs_info = manifest_dir.join(".cargo_vcs_info.json");
    if let Ok(text) = std::fs::read_to_string(&vcs_info) {
        // Watched only when present: a missing watched file reruns the script on every build.
        println!("cargo:rerun-if-changed=.cargo_vcs_info.json");
        if let Some(sha) = sha1_field(&text) {
            return sha.chars().take(12).collect();
        }
    }
    let toplevel = git(manifest_dir, &["rev-parse", "--show-toplevel"]).map(PathBuf::from);
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if toplevel.is_some_and(|top| same(&top, manifest_dir)) {
        // Rebuild when HEAD moves: HEAD itself (a checkout), the branch it points to (a commit)
        // and packed-refs (after `git gc`). Not the index: `-dirty` is left out on purpose, or
        // every `git add` would rebuild the crate.
        let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
        watched.extend(git(manifest_dir, &["symbolic-ref", "-q", "HEAD"]));
        for name in &watched {
            if let Some(path) = git(manifest_dir, &["rev-parse", "--git-path", name]) {
                let path = manifest_dir.join(path);
                // Only files that exist: cargo reruns a build script on every build when a
                // watched path is missing (a branch may live only in packed-refs).
                if path.is_file() {
                    println!("cargo:rerun-if-changed={}", path.display());
                }
            }
        }
        if let Some(described) = git(
            manifest_dir,
            &[
                "describe",
                "--tags",
                "--always",
                "--abbrev=12",
                "--match",
                "v[0-9]*",
            ],
        ) {
            return described;
        }
    }
    "unknown commit".to_owned()
}

/// `git.sha1` of `.cargo_vcs_info.json` (`{"git": {"sha1": "..."}, ...}`), read without a JSON
/// dependency: the first `"sha1"` key's string value, accepted only if it is hex.
fn sha1_field(text: &str) -> Option<&str> {
    let rest = &text[text.find("\"sha1\"")? + 6..];
    let rest = rest
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    let sha = &rest[..rest.find('"')?];
    (sha.len() >= 7 && sha.bytes().all(|b| b.is_ascii_hexdigit())).then_some(sha)
}

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()));
    println!("cargo:rustc-env=RELGATE_COMMIT={}", commit(&manifest_dir));
    let mut out = String::new();
    embed("policies", &["rego", "yaml"], &mut out, "POLICY_FILES");
    embed("schemas", &["json"], &mut out, "SCHEMA_FILES");
    let out_dir = std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into());
    if let Err(err) = std::fs::write(Path::new(&out_dir).join("embedded.rs"), out) {
        panic!("cannot write embedded.rs: {err}");
    }
}
