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
    pub(crate) file: Option<String>,
    /// Defaults merged with the file: `data.relgate.config`.
    pub merged: Value,
    /// Globs (relative to the gate root) that select manifests when no path is given.
    pub(crate) manifests: Vec<String>,
    /// Team policy directories (relative to the gate root).
    pub(crate) policies: Vec<String>,
    /// Extra packages to evaluate besides `main` and the bundle.
    pub(crate) namespaces: Vec<String>,
    /// Size limit of every file relgate reads.
    pub(crate) max_file_bytes: u64,
}

/// The built-in defaults as JSON.
pub(crate) fn defaults() -> Result<Value> {
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
pub(crate) fn merge(base: &mut Value, overlay: Value) {
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

    /// `relgate.yaml` text parsed and validated like [`GateConfig::load`] does.
    fn violations_of(text: &str) -> Vec<String> {
        let source = manifest::SourceFile {
            path: "relgate.yaml".to_string(),
            digest: manifest::sha256_digest(text.as_bytes()),
            bytes: text.as_bytes().to_vec(),
        };
        let mut documents = manifest::parse_documents(&source).expect("parses");
        let document = documents.swap_remove(0);
        schema::validate("GateConfig", &document.value, &document.lines)
            .expect("schema compiles")
            .into_iter()
            .map(|v| format!("line {}: {}", v.line, v.message))
            .collect()
    }

    /// Every key path of `value` down to its leaves (scalars, lists, empty mappings).
    fn leaves(value: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, child) in map {
                    path.push(key.clone());
                    leaves(child, path, out);
                    path.pop();
                }
            }
            _ => out.push((path.clone(), value.clone())),
        }
    }

    /// The schema and the built-in defaults agree: a `relgate.yaml` holding exactly one key
    /// path of the defaults, with its default value, is valid. (Before this test, documented
    /// defaults such as error_budget.default_min_remaining and rollback.environments were
    /// rejected as unknown keys.)
    #[test]
    fn every_default_key_is_accepted_in_relgate_yaml() {
        let defaults = defaults().expect("defaults");
        let mut out = Vec::new();
        leaves(&defaults, &mut Vec::new(), &mut out);
        assert!(out.len() > 40, "walked only {} key paths", out.len());
        let mut rejected = Vec::new();
        for (path, value) in out {
            let mut doc = value;
            for key in path.iter().rev() {
                let mut map = serde_json::Map::new();
                map.insert(key.clone(), doc);
                doc = Value::Object(map);
            }
            let text = serde_yaml::to_string(&doc).expect("yaml");
            let violations = violations_of(&text);
            if !violations.is_empty() {
                rejected.push(format!("{}: {violations:?}", path.join(".")));
            }
        }
        assert!(
            rejected.is_empty(),
            "defaults relgate.yaml rejects:\n{}",
            rejected.join("\n")
        );
        // And the whole defaults file, written as relgate.yaml.
        let text = embedded::file(POLICY_FILES, DEFAULTS_FILE).expect("embedded");
        assert_eq!(violations_of(text), Vec::<String>::new());
    }

    /// The other direction: every setting the schema accepts either has a built-in default
    /// (in config.default.yaml or the schema's `default`), is an entry of a keyed map
    /// (environment -> ..., tier -> ..., data class -> ..., PRR id -> ...) where a missing
    /// entry means "nothing required", or says in its description that it is optional.
    #[test]
    fn every_schema_setting_has_a_default_or_is_documented_optional() {
        let schema: Value =
            serde_json::from_str(schema::schema_text("GateConfig").expect("schema")).expect("json");
        let defaults = defaults().expect("defaults");
        let mut undocumented = Vec::new();
        walk_schema(
            &schema,
            &schema,
            Some(&defaults),
            &mut Vec::new(),
            &mut undocumented,
        );
        assert!(
            undocumented.is_empty(),
            "schema settings without a default and not documented optional:\n{}",
            undocumented.join("\n")
        );
    }

    fn walk_schema(
        root: &Value,
        node: &Value,
        defaults: Option<&Value>,
        path: &mut Vec<String>,
        out: &mut Vec<String>,
    ) {
        let Some(properties) = node.get("properties").and_then(Value::as_object) else {
            return;
        };
        // A keyed map: its description starts with what its keys are.
        let description = node
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let keyed = [
            "Environment ->",
            "Tier (",
            "Data class ->",
            "PRR item id ->",
        ]
        .iter()
        .any(|prefix| description.starts_with(prefix))
            || description.contains(": tier ->");
        for (key, property) in properties {
            let property = match property.get("$ref").and_then(Value::as_str) {
                Some(reference) => {
                    let name = reference.rsplit('/').next().unwrap_or_default();
                    let mut resolved = root["$defs"][name].clone();
                    if let (Some(target), Some(text)) =
                        (resolved.as_object_mut(), property.get("description"))
                    {
                        target.insert("description".into(), text.clone());
                    }
                    resolved
                }
                None => property.clone(),
            };
            path.push(key.clone());
            let default = defaults.and_then(|d| d.get(key));
            let text = property
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_lowercase();
            let documented = default.is_some()
                || property.get("default").is_some()
                || keyed
                || text.contains("optional");
            if !documented && !key.starts_with('$') {
                out.push(path.join("."));
            }
            walk_schema(root, &property, default, path, out);
            path.pop();
        }
    }
}
