//! Field paths in dot/bracket form (`spec.logging.sinks[0].retention_days`,
//! `spec.prr["PRR-OWN-01"]`). Findings name manifest fields this way; policies may write either
//! `.key` or `["key"]`, so paths are parsed into segments and rendered back in one canonical
//! form before they are used as keys of the line index.

use std::fmt::Write as _;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Segment {
    Key(String),
    Index(usize),
}

/// Whether a key can be written after a dot without quoting.
fn is_bare_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Renders segments in canonical form: bare keys after dots, other keys as JSON strings in
/// brackets, indexes in brackets.
pub(crate) fn render(segments: &[Segment]) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Key(key) if is_bare_key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Key(key) => {
                let quoted = serde_json::to_string(key).unwrap_or_else(|_| format!("{key:?}"));
                let _ = write!(out, "[{quoted}]");
            }
            Segment::Index(index) => {
                let _ = write!(out, "[{index}]");
            }
        }
    }
    out
}

/// Parses a path written by a policy. Returns `None` for text that is not a path, so a
/// malformed path costs the finding its line number, never the finding itself.
pub(crate) fn parse(path: &str) -> Option<Vec<Segment>> {
    let bytes = path.as_bytes();
    let mut segments = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'.' => i += 1,
            b'[' => {
                let close = find_bracket_end(path, i)?;
                let inner = path[i + 1..close].trim();
                if inner.starts_with('"') {
                    segments.push(Segment::Key(serde_json::from_str(inner).ok()?));
                } else if inner.starts_with('\'') && inner.ends_with('\'') && inner.len() >= 2 {
                    segments.push(Segment::Key(inner[1..inner.len() - 1].to_string()));
                } else {
                    segments.push(Segment::Index(inner.parse().ok()?));
                }
                i = close + 1;
            }
            _ => {
                let end = path[i..]
                    .find(['.', '['])
                    .map_or(path.len(), |offset| i + offset);
                segments.push(Segment::Key(path[i..end].to_string()));
                i = end;
            }
        }
    }
    Some(segments)
}

/// Index of the `]` closing the bracket at `open`, skipping over a quoted key.
fn find_bracket_end(path: &str, open: usize) -> Option<usize> {
    let rest = &path[open + 1..];
    let mut in_string = false;
    let mut escaped = false;
    for (offset, c) in rest.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            ']' if !in_string => return Some(open + 1 + offset),
            _ => {}
        }
    }
    None
}

/// Converts a JSON pointer (as used by JSON Schema errors) into segments, using the instance to
/// tell array indexes from object keys that look like numbers.
pub(crate) fn from_json_pointer(pointer: &str, instance: &serde_json::Value) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut node = Some(instance);
    for raw in pointer.split('/').skip(1) {
        let token = raw.replace("~1", "/").replace("~0", "~");
        match node {
            Some(serde_json::Value::Array(items)) => match token.parse::<usize>() {
                Ok(index) => {
                    node = items.get(index);
                    segments.push(Segment::Index(index));
                }
                Err(_) => {
                    node = None;
                    segments.push(Segment::Key(token));
                }
            },
            Some(serde_json::Value::Object(map)) => {
                node = map.get(&token);
                segments.push(Segment::Key(token));
            }
            _ => {
                node = None;
                segments.push(Segment::Key(token));
            }
        }
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders_canonical_paths() {
        for (written, canonical) in [
            (
                "spec.logging.sinks[0].retention_days",
                "spec.logging.sinks[0].retention_days",
            ),
            (
                "spec.prr[\"PRR-OWN-01\"].evidence",
                "spec.prr.PRR-OWN-01.evidence",
            ),
            ("spec.prr['PRR-OWN-01']", "spec.prr.PRR-OWN-01"),
            (
                "metadata.labels[\"app.kubernetes.io/name\"]",
                "metadata.labels[\"app.kubernetes.io/name\"]",
            ),
            (
                "spec.evaluations[1].thresholds[\"namedScores.tone\"].min",
                "spec.evaluations[1].thresholds[\"namedScores.tone\"].min",
            ),
        ] {
            let segments = parse(written).expect(written);
            assert_eq!(render(&segments), canonical, "{written}");
        }
    }

    #[test]
    fn rejects_malformed_paths() {
        assert_eq!(parse("spec[abc]"), None);
        assert_eq!(parse("spec[\"open"), None);
    }

    #[test]
    fn json_pointer_distinguishes_indexes_from_numeric_keys() {
        let instance = serde_json::json!({"a": [{"0": 1}], "b": {"1": true}});
        assert_eq!(
            render(&from_json_pointer("/a/0/0", &instance)),
            "a[0][\"0\"]"
        );
        assert_eq!(render(&from_json_pointer("/b/1", &instance)), "b[\"1\"]");
    }
}
