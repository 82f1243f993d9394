//! Embeds the built-in policy bundle (`policies/`) and the JSON Schemas (`schemas/`) in the
//! binary, so a release of relgate is one self-contained file. Every file of those folders is
//! embedded (sorted, so the generated code and the bundle digest are deterministic): adding a
//! policy needs no change here.
use std::fmt::Write as _;
use std::path::Path;

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
    let _ = writeln!(out, "pub static {name}: &[(&str, &str)] = &[");
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

fn main() {
    let mut out = String::new();
    embed("policies", &["rego", "yaml"], &mut out, "POLICY_FILES");
    embed("schemas", &["json"], &mut out, "SCHEMA_FILES");
    let out_dir = std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into());
    if let Err(err) = std::fs::write(Path::new(&out_dir).join("embedded.rs"), out) {
        panic!("cannot write embedded.rs: {err}");
    }
}
