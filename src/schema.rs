//! JSON Schema validation of manifests and `relgate.yaml` against the schemas in `schemas/`
//! (draft 2020-12, embedded in the binary). Violations become findings that name the field
//! path, its line, what was expected and, for a misspelt field, the nearest valid name.

use std::sync::OnceLock;

use serde_json::Value;

use crate::embedded::{self, SCHEMA_FILES};
use crate::field_path::{self, Segment};
use crate::line_index::Lines;

/// The kinds relgate knows, with their schema files.
pub(crate) const KINDS: &[(&str, &str)] = &[
    ("ModelRelease", "schemas/model-release.schema.json"),
    ("PromptRelease", "schemas/prompt-release.schema.json"),
    ("GateConfig", "schemas/gate-config.schema.json"),
    ("Input", "schemas/input.schema.json"),
];

/// The API version of every relgate document.
pub(crate) const API_VERSION: &str = "relgate.dev/v1";

/// One schema violation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Violation {
    /// Field path in canonical dot/bracket form (empty for the document itself).
    pub(crate) path: String,
    pub(crate) line: u32,
    pub(crate) message: String,
}

struct Compiled {
    schema: Value,
    validator: jsonschema::Validator,
}

/// The schema text of a kind (case-insensitive), for `relgate schema`.
pub(crate) fn schema_text(kind: &str) -> Option<&'static str> {
    KINDS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(kind))
        .and_then(|(_, file)| embedded::file(SCHEMA_FILES, file))
}

fn compiled(kind: &str) -> Option<&'static Result<Compiled, String>> {
    // One cache cell per kind: a run compiles only the schemas it uses.
    static CACHE: [OnceLock<Result<Compiled, String>>; 4] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    let index = KINDS.iter().position(|(name, _)| *name == kind)?;
    let file = KINDS[index].1;
    Some(CACHE.get(index)?.get_or_init(|| {
        embedded::file(SCHEMA_FILES, file)
            .ok_or_else(|| format!("schema {file} is not embedded"))
            .and_then(|text| serde_json::from_str::<Value>(text).map_err(|e| e.to_string()))
            .and_then(|schema| {
                jsonschema::draft202012::new(&schema)
                    .map(|validator| Compiled {
                        schema: schema.clone(),
                        validator,
                    })
                    .map_err(|e| format!("schema {file} does not compile: {e}"))
            })
    }))
}

/// Validates `value` as `kind`. Violations are sorted by line, then path. An internal schema
/// problem (which a test guards against) is returned as `Err`.
pub(crate) fn validate(kind: &str, value: &Value, lines: &Lines) -> Result<Vec<Violation>, String> {
    let compiled = match compiled(kind) {
        Some(Ok(compiled)) => compiled,
        Some(Err(message)) => return Err(message.clone()),
        None => return Err(format!("no schema for kind {kind}")),
    };
    Ok(violations(compiled, value, lines))
}

/// Validates `value` against one definition of a kind's schema (`$defs/<def>`), e.g. a
/// pull-request context against Input's `pullRequest`. Compiled on every call: it serves
/// inputs read once per run.
pub(crate) fn validate_def(
    kind: &str,
    def: &str,
    value: &Value,
    lines: &Lines,
) -> Result<Vec<Violation>, String> {
    let text = schema_text(kind).ok_or_else(|| format!("no schema for kind {kind}"))?;
    let root: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let defs = root
        .get("$defs")
        .filter(|defs| defs.get(def).is_some())
        .ok_or_else(|| format!("the {kind} schema has no $defs/{def}"))?;
    // The definition as the root, with the same `$defs` and `$id`: references and the keyword
    // locations of errors (`#/$defs/...`) resolve exactly as in the full schema.
    let schema = serde_json::json!({
        "$schema": root.get("$schema"),
        "$id": root.get("$id"),
        "$ref": format!("#/$defs/{def}"),
        "$defs": defs,
    });
    let validator = jsonschema::draft202012::new(&schema)
        .map_err(|e| format!("schema {kind} $defs/{def} does not compile: {e}"))?;
    Ok(violations(&Compiled { schema, validator }, value, lines))
}

fn violations(compiled: &Compiled, value: &Value, lines: &Lines) -> Vec<Violation> {
    let mut violations = Vec::new();
    for error in compiled.validator.iter_errors(value) {
        let segments = field_path::from_json_pointer(error.instance_path().as_str(), value);
        violations.extend(describe(&error, &segments, compiled, lines));
    }
    violations.sort_by(|a, b| (a.line, &a.path, &a.message).cmp(&(b.line, &b.path, &b.message)));
    violations.dedup();
    violations
}

/// The schema node holding the keyword that failed. The absolute keyword location has `$ref`s
/// resolved (its fragment is a JSON pointer into the schema document); the plain schema path
/// is the fallback.
fn failing_node<'s>(
    error: &jsonschema::ValidationError<'_>,
    schema: &'s Value,
) -> Option<&'s Value> {
    let pointer = error
        .absolute_keyword_location()
        .and_then(|uri| uri.fragment().map(|f| percent_decode(f.as_str())))
        .unwrap_or_else(|| error.schema_path().as_str().to_string());
    // The pointer ends at the keyword (`…/type`); its parent is the schema node.
    let parent = pointer.rsplit_once('/').map_or("", |(parent, _)| parent);
    schema.pointer(parent)
}

/// Decodes `%XX` escapes of a URI fragment (e.g. `%24defs` for `$defs`).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A value as shown in a message: short, on one line.
fn shown_value(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

/// Turns one validator error into violations phrased for a person.
fn describe(
    error: &jsonschema::ValidationError<'_>,
    segments: &[Segment],
    compiled: &Compiled,
    lines: &Lines,
) -> Vec<Violation> {
    use jsonschema::error::ValidationErrorKind as Kind;
    let path = field_path::render(segments);
    let at = |path: &str| lines.line_of(path);
    let field = if path.is_empty() {
        "the document".to_string()
    } else {
        format!("`{path}`")
    };
    let node = failing_node(error, &compiled.schema);
    match error.kind() {
        Kind::AdditionalProperties { unexpected } | Kind::UnevaluatedProperties { unexpected } => {
            // Point at each unexpected key, suggesting the closest allowed name.
            let allowed = allowed_properties(node);
            unexpected
                .iter()
                .map(|key| {
                    let mut child = segments.to_vec();
                    child.push(Segment::Key(key.clone()));
                    let child_path = field_path::render(&child);
                    let suggestion = nearest(key, &allowed)
                        .map(|best| format!("; did you mean `{best}`?"))
                        .unwrap_or_default();
                    let expected = if allowed.is_empty() {
                        String::new()
                    } else {
                        format!(" (allowed here: {})", allowed.join(", "))
                    };
                    Violation {
                        line: at(&child_path),
                        message: format!("unknown field `{key}` in {field}{suggestion}{expected}"),
                        path: child_path,
                    }
                })
                .collect()
        }
        Kind::Required { property } => {
            let name = property.as_str().unwrap_or_default().to_string();
            let mut child = segments.to_vec();
            child.push(Segment::Key(name.clone()));
            vec![Violation {
                line: at(&path),
                message: format!("missing required field `{name}` in {field}"),
                path: field_path::render(&child),
            }]
        }
        _ => {
            // The schema's own `errorMessage` (the ajv-errors / editor convention) says what is
            // expected in words; the validator's text is the fallback.
            let custom = node
                .and_then(|n| n.get("errorMessage"))
                .and_then(Value::as_str);
            let message = match custom {
                Some(expected) => format!(
                    "{field} {expected} (found {})",
                    shown_value(error.instance())
                ),
                None => format!("{field}: {error}"),
            };
            vec![Violation {
                line: at(&path),
                message,
                path,
            }]
        }
    }
}

/// Property names the schema allows at the object whose `additionalProperties` failed.
fn allowed_properties(node: Option<&Value>) -> Vec<String> {
    let mut names: Vec<String> = node
        .and_then(|node| node.get("properties"))
        .and_then(Value::as_object)
        .map(|props| props.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// The allowed name closest to `key`, if it is close enough to be a typo.
fn nearest<'a>(key: &str, allowed: &'a [String]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|name| {
            (
                strsim::jaro_winkler(&key.to_lowercase(), &name.to_lowercase()),
                name,
            )
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(a.1)))
        .map(|(_, name)| name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_compiles() {
        for (kind, _) in KINDS {
            assert!(matches!(compiled(kind), Some(Ok(_))), "{kind}");
        }
    }

    #[test]
    fn suggests_nearest_field() {
        let allowed = vec![
            "rollback".to_string(),
            "rollout".to_string(),
            "owner".to_string(),
        ];
        assert_eq!(nearest("rollbak", &allowed), Some("rollback"));
        assert_eq!(nearest("zzz", &allowed), None);
    }
}
