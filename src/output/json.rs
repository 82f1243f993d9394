//! `--format json`: the report as one pretty-printed JSON object (docs/report.md). Field order is
//! the struct order in `report.rs`; lists are sorted by the library.

use crate::report::Report;

pub(crate) fn render(report: &Report) -> String {
    // Serializing plain structs of strings, numbers and vectors cannot fail; fall back to an
    // error object rather than panic if that ever changes.
    let mut out = serde_json::to_string_pretty(report).unwrap_or_else(|err| {
        serde_json::json!({"decision": "error", "error": format!("cannot serialize report: {err}")}).to_string()
    });
    out.push('\n');
    out
}
