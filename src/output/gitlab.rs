//! `--format gitlab`: a GitLab Code Quality report, the subset of the Code Climate issue
//! format GitLab reads (`artifacts:reports:codequality`), so merge requests show relgate's
//! findings inline. A JSON array with one issue per finding: `description` (the message, the
//! field and the fix), `check_name` (the rule id), `fingerprint`, `severity` (`major` for
//! deny, `minor` for warn) and `location` {`path`, `lines.begin`}. A manifest that could not be
//! evaluated is one `blocker` issue at its first line (check_name `relgate-error`), so an
//! unreadable release is never silently absent. A passing run is `[]`.
//!
//! Paths are relative to the repository root ([`Report::repository_prefix`]), as GitLab
//! resolves them. The fingerprint is a hex sha256 of the rule, the gate-relative file, the
//! document index, the field path and the message: no line, so an issue keeps its identity when
//! lines move; two identical findings in one document get distinct fingerprints (GitLab merges
//! issues that share one).

use std::collections::BTreeSet;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::report::Report;

pub(crate) fn render(report: &Report) -> String {
    let mut issues = Vec::new();
    let mut seen = BTreeSet::new();
    for result in &report.results {
        let path = if report.repository_prefix.is_empty() {
            result.file.clone()
        } else {
            format!("{}/{}", report.repository_prefix, result.file)
        };
        let document = result.document.to_string();
        if let Some(error) = &result.error {
            issues.push(issue(
                format!("relgate could not decide: {error}"),
                "relgate-error",
                "blocker",
                &path,
                result.line,
                unique(
                    &mut seen,
                    &["relgate-error", &result.file, &document, error],
                ),
            ));
        }
        for f in &result.findings {
            let mut description = format!("{}: {}", f.rule, f.message);
            if let Some(field) = &f.path {
                description.push_str(&format!(" (field `{field}`)"));
            }
            if let Some(fix) = &f.remediation {
                description.push_str(&format!(". Fix: {fix}"));
            }
            let severity = if f.severity.is_warn() {
                "minor"
            } else {
                "major"
            };
            let print = unique(
                &mut seen,
                &[
                    &f.rule,
                    &result.file,
                    &document,
                    f.path.as_deref().unwrap_or(""),
                    &f.message,
                ],
            );
            issues.push(issue(description, &f.rule, severity, &path, f.line, print));
        }
    }
    let mut out = serde_json::to_string_pretty(&Value::Array(issues)).unwrap_or_else(|err| {
        // Serializing plain strings and numbers cannot fail; if it ever did, say so in a form
        // GitLab still parses as a report (one blocker), never as an empty (passing) one.
        json!([{"description": format!("relgate: cannot serialize the report: {err}"),
                "check_name": "relgate-error", "fingerprint": "relgate-serialize-error",
                "severity": "blocker", "location": {"path": ".", "lines": {"begin": 1}}}])
        .to_string()
    });
    out.push('\n');
    out
}

fn issue(
    description: String,
    check_name: &str,
    severity: &str,
    path: &str,
    line: u32,
    fingerprint: String,
) -> Value {
    json!({
        "type": "issue",
        "description": description,
        "check_name": check_name,
        "fingerprint": fingerprint,
        "severity": severity,
        "location": {"path": path, "lines": {"begin": line.max(1)}},
    })
}

/// Hex sha256 of the NUL-terminated parts; a repeat of an earlier one also hashes its
/// occurrence number, so every issue's fingerprint is distinct and still deterministic.
fn unique(seen: &mut BTreeSet<String>, parts: &[&str]) -> String {
    let mut occurrence = 0u32;
    loop {
        let mut hasher = Sha256::new();
        hasher.update(b"relgate/gitlab/v1\0");
        for part in parts {
            hasher.update(part.as_bytes());
            hasher.update([0u8]);
        }
        if occurrence > 0 {
            hasher.update(occurrence.to_string().as_bytes());
        }
        let print = hex::encode(hasher.finalize());
        if seen.insert(print.clone()) {
            return print;
        }
        occurrence += 1;
    }
}
