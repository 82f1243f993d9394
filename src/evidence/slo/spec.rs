//! What the manifests ask for: each `spec.slo` entry's source (Prometheus URL and query, or a
//! reading file) and `block_on_alerts` queries, or why an entry cannot be read (the reading then
//! says so; the schema and the policy judge the manifest).

use serde_json::Value;

use super::ReadingError;

#[derive(Debug, Clone)]
pub(super) enum Source {
    Prometheus { url: String, query: String },
    File { path: String, query: Option<String> },
}

#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// `name` when it is a string.
    pub(super) name: Option<String>,
    pub(super) index: usize,
    pub(super) source: Result<Source, ReadingError>,
    /// `block_on_alerts`: each query, or why the item is not one.
    pub(super) alerts: Vec<Result<String, ReadingError>>,
}

pub(super) fn non_empty(value: Option<&Value>) -> Option<String> {
    value
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// `spec.slo` as a list (anything else: no entries; the policy and the schema judge it).
fn slo_list(manifest: &Value) -> &[Value] {
    manifest
        .pointer("/spec/slo")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

pub(super) fn entries(manifest: &Value) -> Vec<Entry> {
    slo_list(manifest)
        .iter()
        .enumerate()
        .map(|(index, slo)| {
            let at = format!("spec.slo[{index}]");
            let name = slo.get("name").and_then(Value::as_str).map(str::to_string);
            let source = parse_source(slo, &at);
            let alerts = match slo.get("block_on_alerts") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .enumerate()
                    .map(|(j, item)| {
                        non_empty(Some(item)).ok_or_else(|| {
                            ReadingError::Spec(format!("{at}.block_on_alerts[{j}] is not a PromQL query (a non-empty string)"))
                        })
                    })
                    .collect(),
                Some(_) => vec![Err(ReadingError::Spec(format!(
                    "{at}.block_on_alerts must be a list of PromQL queries"
                )))],
            };
            Entry {
                name,
                index,
                source,
                alerts,
            }
        })
        .collect()
}

fn parse_source(slo: &Value, at: &str) -> Result<Source, ReadingError> {
    let source = slo.get("source").and_then(Value::as_object);
    let prometheus = source
        .and_then(|s| s.get("prometheus"))
        .filter(|v| !v.is_null());
    let file = source.and_then(|s| s.get("file")).filter(|v| !v.is_null());
    match (prometheus, file) {
        (Some(_), Some(_)) => Err(ReadingError::Spec(format!(
            "{at}.source names both prometheus and file; give one"
        ))),
        (Some(p), None) => {
            let url = non_empty(p.get("url")).ok_or_else(|| {
                ReadingError::Spec(format!("{at}.source.prometheus.url is missing"))
            })?;
            let query = non_empty(p.get("query")).ok_or_else(|| {
                ReadingError::Spec(format!("{at}.source.prometheus.query is missing"))
            })?;
            Ok(Source::Prometheus { url, query })
        }
        (None, Some(f)) => {
            let path = non_empty(f.get("path"))
                .ok_or_else(|| ReadingError::Spec(format!("{at}.source.file.path is missing")))?;
            Ok(Source::File {
                path,
                query: non_empty(f.get("query")),
            })
        }
        (None, None) => Err(ReadingError::Spec(format!(
            "{at}.source is missing: give source.prometheus {{url, query}} or source.file {{path}}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spec_problems_are_unknown_readings() {
        let manifest = json!({"spec": {"slo": [
            {"name": "a"},
            {"name": "b", "source": {"prometheus": {"url": "http://127.0.0.1:1"}}},
            {"name": "c", "source": {"prometheus": {"url": "http://x", "query": "q"}, "file": {"path": "f"}}},
            {"name": "d", "source": {"file": {"path": "f.json"}}, "block_on_alerts": "ALERTS"},
            "not a mapping",
        ]}});
        let parsed = entries(&manifest);
        assert_eq!(parsed.len(), 5);
        assert!(parsed[0]
            .source
            .as_ref()
            .is_err_and(|e| e.to_string().contains("source is missing")));
        assert!(parsed[1]
            .source
            .as_ref()
            .is_err_and(|e| e.to_string().contains("query is missing")));
        assert!(parsed[2]
            .source
            .as_ref()
            .is_err_and(|e| e.to_string().contains("both")));
        assert!(parsed[3].alerts[0]
            .as_ref()
            .is_err_and(|e| e.to_string().contains("must be a list")));
        assert!(parsed[4].source.is_err());
    }
}
