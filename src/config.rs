//! The gate configuration: built-in defaults (`policies/config.default.yaml`) deep-merged with
//! the repository's `relgate.yaml`. The merged document is what policies read as
//! `data.relgate.config`; the few keys relgate itself acts on are lifted into [`GateConfig`].

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::embedded::{self, POLICY_FILES};
use crate::error::{Error, Result};
use crate::manifest;
use crate::schema;
use crate::workspace::{GateRoot, CONFIG_FILE};

/// Path of the defaults in the embedded bundle.
const DEFAULTS_FILE: &str = "policies/config.default.yaml";

/// The resolved gate configuration.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// The config file read, relative to the gate root (`None`: defaults only).
    pub file: Option<String>,
    /// Defaults merged with the file: `data.relgate.config`.
    pub merged: Value,
    /// Globs (relative to the gate root) that select manifests when no path is given.
    pub manifests: Vec<String>,
    /// Team policy directories (relative to the gate root).
    pub policies: Vec<String>,
    /// Extra packages to evaluate besides `main` and the bundle.
    pub namespaces: Vec<String>,
    /// Size limit of every file relgate reads.
    pub max_file_bytes: u64,
}

/// The built-in defaults as JSON.
pub fn defaults() -> Result<Value> {
    let text = embedded::file(POLICY_FILES, DEFAULTS_FILE)
        .ok_or_else(|| Error::Policy(format!("{DEFAULTS_FILE} is missing from the bundle")))?;
    let source = manifest::SourceFile {
        path: DEFAULTS_FILE.to_string(),
        digest: manifest::sha256_digest(text.as_bytes()),
        bytes: text.as_bytes().to_vec(),
    };
    let mut documents = manifest::parse_documents(&source)?;
    Ok(documents.swap_remove(0).value)
}

/// Deep merge: objects merge key by key, anything else in `overlay` replaces `base`.
pub fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

impl GateConfig {
    /// Loads the config of `root`: `explicit` when given (`--config`), else `relgate.yaml` in
    /// the root when present, else the defaults.
    pub fn load(
        root: &GateRoot,
        explicit: Option<&Path>,
        max_file_bytes: Option<u64>,
    ) -> Result<Self> {
        let mut merged = defaults()?;
        let file: Option<PathBuf> = match explicit {
            Some(path) => Some(path.to_path_buf()),
            // Any kind of file (a FIFO, a directory, a dangling symlink) named relgate.yaml is read,
            // and refused if it is not a regular file: ignoring it would silently drop the
            // repository's rules for the defaults.
            None => Some(root.dir.join(CONFIG_FILE)).filter(|p| p.symlink_metadata().is_ok()),
        };
        let mut shown = None;
        if let Some(path) = file {
            let name = root.relative(&path);
            let limit = max_file_bytes.unwrap_or(manifest::DEFAULT_MAX_FILE_BYTES);
            let source = manifest::read_limited(&path, &name, limit)?;
            let mut documents = manifest::parse_documents(&source)?;
            if documents.len() != 1 {
                return Err(Error::Config {
                    path: name,
                    details: format!(
                        "  holds {} YAML documents; write exactly one GateConfig",
                        documents.len()
                    ),
                });
            }
            let document = documents.swap_remove(0);
            let violations = schema::validate("GateConfig", &document.value, &document.lines)
                .map_err(Error::Policy)?;
            if !violations.is_empty() {
                let details = violations
                    .iter()
                    .map(|v| format!("  {name}:{}: {}", v.line, v.message))
                    .collect::<Vec<_>>()
                    .join("\n");
                return Err(Error::Config {
                    path: name,
                    details,
                });
            }
            merge(&mut merged, document.value);
            shown = Some(name);
        }
        let strings = |key: &str| -> Vec<String> {
            merged
                .get(key)
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let max_file_bytes = max_file_bytes
            .or_else(|| merged.get("max_file_bytes").and_then(Value::as_u64))
            .unwrap_or(manifest::DEFAULT_MAX_FILE_BYTES);
        Ok(Self {
            manifests: strings("manifests"),
            policies: strings("policies"),
            namespaces: strings("namespaces"),
            max_file_bytes,
            merged,
            file: shown,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_replaces_arrays_and_merges_objects() {
        let mut base = serde_json::json!({"a": {"b": 1, "c": [1, 2]}, "d": 1});
        merge(&mut base, serde_json::json!({"a": {"c": [3]}, "e": 2}));
        assert_eq!(
            base,
            serde_json::json!({"a": {"b": 1, "c": [3]}, "d": 1, "e": 2})
        );
    }
}
