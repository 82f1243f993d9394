//! Reading policy files and data documents: the built-in bundle's sources, the team's policy
//! directories (each real file once, symlinks confined, non-regular files refused), and `--data`
//! files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::embedded::POLICY_FILES;
use crate::error::{Error, Result};
use crate::manifest;

/// A Rego source file.
#[derive(Debug, Clone)]
pub struct PolicySource {
    /// Path as reported: `policies/prr.rego` for built-ins, relative to the gate root (or as
    /// given) for team files.
    pub path: String,
    pub text: String,
    pub builtin: bool,
    /// Parse as Rego v0 (OPA's `--v0-compatible`: rule bodies without `if`, `deny[msg] { … }`).
    /// Files that `import rego.v1` are v1 either way; the bundle is always v1.
    pub v0: bool,
}

impl PolicySource {
    pub fn is_test(&self) -> bool {
        self.path.ends_with("_test.rego")
    }
}

/// The built-in bundle's Rego files (tests included).
pub fn builtin_sources() -> Vec<PolicySource> {
    POLICY_FILES
        .iter()
        .filter(|(path, _)| path.ends_with(".rego"))
        .map(|(path, text)| PolicySource {
            path: (*path).to_string(),
            text: (*text).to_string(),
            builtin: true,
            v0: false,
        })
        .collect()
}

/// Reads every `*.rego` file under `dir` (recursively, sorted). `shown` maps a file to the name
/// used in reports. See [`read_policy_dirs`].
pub(crate) fn read_dir_sources(
    dir: &Path,
    shown: &dyn Fn(&Path) -> String,
) -> Result<Vec<PolicySource>> {
    read_policy_dirs(None, &[dir.to_path_buf()], shown)
}

/// Reads every `*.rego` file under `dirs` (each recursively, sorted), each real file once
/// however many names reach it (a directory named twice, `./dir`, a symlink). Symlinks are
/// followed while they stay inside the boundary (the gate root for a directory inside it, else
/// the directory itself); one that leads out, a symlink loop, or a `.rego` that is not a
/// regular file (a FIFO would block the read forever) is an error, never skipped: a skipped
/// policy file is a team rule that silently stops applying.
pub(crate) fn read_policy_dirs(
    root: Option<&crate::workspace::GateRoot>,
    dirs: &[PathBuf],
    shown: &dyn Fn(&Path) -> String,
) -> Result<Vec<PolicySource>> {
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    let mut sources = Vec::new();
    for dir in dirs {
        let real_dir = std::fs::canonicalize(dir)
            .ok()
            .filter(|d| d.is_dir())
            .ok_or_else(|| Error::Usage(format!("{}: policy directory not found", shown(dir))))?;
        let boundary = match root {
            Some(root) if real_dir.starts_with(&root.dir) => root.dir.clone(),
            _ => real_dir.clone(),
        };
        let leaves = |path: &Path| {
            Error::Usage(format!(
                "{}: the path leaves the gate root (through a symlink); keep policy files inside the repository",
                shown(path)
            ))
        };
        let walker = walkdir::WalkDir::new(dir)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter();
        for entry in walker {
            let entry = entry.map_err(|err| {
                let at = err.path().map_or_else(|| shown(dir), shown);
                match err.loop_ancestor() {
                    Some(_) => Error::Usage(format!(
                        "{at}: symlink loop in a policy directory; remove the symlink"
                    )),
                    None => Error::Usage(format!("{at}: {err}")),
                }
            })?;
            let path = entry.path();
            let real = std::fs::canonicalize(path).map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?;
            if !real.starts_with(&boundary) {
                return Err(leaves(path));
            }
            if entry.file_type().is_dir() || path.extension().is_none_or(|e| e != "rego") {
                continue;
            }
            if !seen.insert(real.clone()) {
                continue;
            }
            let name = shown(path);
            let source = manifest::read_limited(&real, &name, manifest::DEFAULT_MAX_FILE_BYTES)?;
            let text = String::from_utf8(source.bytes).map_err(|err| {
                Error::Usage(format!(
                    "{name}: not valid UTF-8 (byte {}); save the policy as UTF-8",
                    err.utf8_error().valid_up_to()
                ))
            })?;
            sources.push(PolicySource {
                path: name,
                text,
                builtin: false,
                v0: false,
            });
        }
    }
    Ok(sources)
}

/// Reads a `--data` file (YAML or JSON) within the size limit.
pub(crate) fn read_data_file(path: &Path, shown: &str, max_bytes: u64) -> Result<(String, Value)> {
    let source = manifest::read_limited(path, shown, max_bytes)?;
    let mut documents = manifest::parse_documents(&source)?;
    if documents.len() != 1 {
        return Err(Error::Usage(format!(
            "{shown}: a data file must hold exactly one document"
        )));
    }
    Ok((shown.to_string(), documents.swap_remove(0).value))
}

/// Paths of team policy directories resolved against the gate root (or as given).
pub(crate) fn resolve_dirs(root: &Path, dirs: &[String]) -> Vec<PathBuf> {
    dirs.iter().map(|d| root.join(d)).collect()
}
