//! `--format sarif`: SARIF 2.1.0 for code scanning. One run; `tool.driver.rules` holds one
//! reporting descriptor per catalogue rule (the built-in rules, SCHEMA included) in
//! catalogue order, then one per other rule id that occurs (team rules), sorted. Each finding is
//! a result at its manifest `file:line` with a `partialFingerprints["relgate/v1"]` (hex sha256
//! of rule, file, field path and message) that is stable across runs. Manifests that could not
//! be evaluated are error notifications of the invocation, which is then not successful.
//! Exceptions and waivers are not results.
//!
//! Every rule has `shortDescription`, `fullDescription`, `help` (text and markdown) and a
//! `helpUri`, which code scanning shows on each alert. A result's region is one line
//! (`startLine` = `endLine`; relgate knows no columns). URIs are relative to the *repository*
//! root ([`Report::repository_prefix`] + the report's gate-root-relative path), so a gate in a
//! monorepo subdirectory points at files that exist. The fingerprint leaves out the line and the
//! prefix, so an alert survives lines moving above it. tests/cli/outputs.rs validates the output
//! against the official SARIF 2.1.0 schema.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::report::{Finding, Report};

pub const SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";
pub const INFORMATION_URI: &str = "https://relgate.dev";
/// Where a rule's reference lives: `HELP_URI#RULE-ID`.
pub const HELP_URI: &str = "https://relgate.dev/rules";

/// The rule catalogue: id, default level, short description.
pub const CATALOGUE: &[(&str, &str, &str)] = &[
    ("SCHEMA", "error", "The manifest violates its JSON Schema."),
    (
        "PRR-MISSING",
        "error",
        "A required production-readiness item is absent or not done, n/a or waived.",
    ),
    (
        "PRR-NA-FORBIDDEN",
        "error",
        "A production-readiness item that may not be n/a is n/a.",
    ),
    (
        "PRR-WAIVER-INVALID",
        "error",
        "A waiver lacks an approver, reason or expiry, or is approved by the owner contact.",
    ),
    ("PRR-WAIVER-EXPIRED", "error", "A waiver has expired."),
    (
        "PRR-EVIDENCE",
        "error",
        "A done production-readiness item has no evidence.",
    ),
    (
        "EVAL-MISSING",
        "error",
        "A thresholded metric is absent from the candidate (or baseline) evaluation.",
    ),
    (
        "EVAL-THRESHOLD",
        "error",
        "An evaluation metric is outside its min/max.",
    ),
    (
        "EVAL-REGRESSION",
        "error",
        "An evaluation metric is worse than baseline beyond the regression bound.",
    ),
    (
        "EVAL-SAMPLES",
        "error",
        "An evaluation has fewer samples than min_samples.",
    ),
    (
        "EVAL-PROMPT-MISMATCH",
        "error",
        "The evaluated prompt is not the prompt being released.",
    ),
    (
        "EVIDENCE-DIGEST",
        "error",
        "An evidence file does not match its pinned digest.",
    ),
    (
        "EVIDENCE-UNREADABLE",
        "error",
        "An evidence file is missing, outside the repository or not parsable as its format.",
    ),
    (
        "SLO-BUDGET-EXHAUSTED",
        "error",
        "The remaining error budget is below min_remaining and the change type is not exempt.",
    ),
    (
        "SLO-BUDGET-LOW",
        "warning",
        "The remaining error budget is below warn_below.",
    ),
    (
        "SLO-ALERT-FIRING",
        "error",
        "A block_on_alerts query returns a series.",
    ),
    (
        "SLO-UNKNOWN",
        "error",
        "An SLO query failed, timed out, or returned nothing or NaN.",
    ),
    (
        "SLO-MISSING",
        "error",
        "A production release of tier 0-1 has no SLO entry.",
    ),
    (
        "PII-CAPTURE-UNREDACTED",
        "error",
        "Content capture is on without redaction.",
    ),
    (
        "PII-ENTITIES",
        "error",
        "Redaction lacks a required entity.",
    ),
    (
        "PII-RAW-CONTENT",
        "error",
        "A production sink stores raw content.",
    ),
    (
        "PII-RETENTION",
        "error",
        "A sink keeps a data class longer than allowed.",
    ),
    ("PII-SINK", "error", "A logging sink is not allowed."),
    (
        "PII-RESIDENCY",
        "error",
        "A sink's region is outside the allowed regions.",
    ),
    (
        "ARTIFACT-DIGEST",
        "error",
        "A git-registry prompt file's sha256 differs from its digest.",
    ),
    (
        "ROLLOUT-PLAN",
        "error",
        "A production tier 0-1 release lacks progressive steps ascending to 100.",
    ),
    (
        "ROLLBACK-PLAN",
        "error",
        "No rollback target, or max_minutes above the tier's limit.",
    ),
    (
        "APPROVAL-MISSING",
        "error",
        "Fewer approvals than required.",
    ),
    (
        "APPROVAL-SELF",
        "error",
        "The pull request author's own approval was counted toward the two-person rule.",
    ),
    (
        "APPROVAL-TEAM",
        "error",
        "No approval from a required team.",
    ),
];

pub fn render(report: &Report) -> String {
    let mut rules: Vec<Value> = CATALOGUE
        .iter()
        .map(|(id, level, text)| descriptor(id, level, text))
        .collect();
    let mut index: BTreeMap<String, usize> = CATALOGUE
        .iter()
        .enumerate()
        .map(|(i, (id, _, _))| ((*id).to_string(), i))
        .collect();
    let mut team: BTreeMap<&str, &Finding> = BTreeMap::new();
    for f in report.results.iter().flat_map(|r| &r.findings) {
        if !index.contains_key(&f.rule) {
            team.entry(&f.rule).or_insert(f);
        }
    }
    for (id, f) in team {
        index.insert(id.to_string(), rules.len());
        rules.push(descriptor(
            id,
            level(f),
            &format!("Rule `{id}` of policy package `{}`.", f.policy),
        ));
    }

    let mut results = Vec::new();
    let mut notifications = Vec::new();
    for result in &report.results {
        if let Some(error) = &result.error {
            notifications.push(json!({
                "level": "error",
                "message": {"text": error},
                "locations": [location(&report.repository_prefix, &result.file, result.line)],
            }));
        }
        for f in &result.findings {
            let mut properties = serde_json::Map::new();
            properties.insert("policy".into(), json!(f.policy));
            if let Some(path) = &f.path {
                properties.insert("path".into(), json!(path));
            }
            if let Some(item) = &f.item {
                properties.insert("item".into(), json!(item));
            }
            if let Some(fix) = &f.remediation {
                properties.insert("remediation".into(), json!(fix));
            }
            results.push(json!({
                "ruleId": f.rule,
                "ruleIndex": index.get(&f.rule).copied().unwrap_or(0),
                "level": level(f),
                "message": {"text": f.message},
                "locations": [location(&report.repository_prefix, &result.file, f.line)],
                "partialFingerprints": {"relgate/v1": fingerprint(f, &result.file)},
                "properties": properties,
            }));
        }
    }

    let sarif = json!({
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": report.tool.name,
                "version": report.tool.version,
                "informationUri": INFORMATION_URI,
                "rules": rules,
            }},
            "invocations": [{
                "executionSuccessful": report.decision != crate::report::Decision::Error,
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
            "properties": {
                "decision": report.decision.as_str(),
                "policy_digest": report.policy_digest,
            },
        }],
    });
    let mut out = serde_json::to_string_pretty(&sarif).unwrap_or_else(|err| {
        json!({"error": format!("cannot serialize SARIF: {err}")}).to_string()
    });
    out.push('\n');
    out
}

fn descriptor(id: &str, level: &str, text: &str) -> Value {
    let effect = if level == "warning" {
        "A warning: reported, and blocks the release only when the gate fails on warnings."
    } else {
        "A denial: the release is blocked until it is fixed or an exception applies."
    };
    let full = format!("{text} {effect}");
    let help_uri = format!("{HELP_URI}#{}", id.to_ascii_lowercase());
    let how = "Each alert names the manifest field at fault and how to fix it \
               (the message and `properties.remediation`).";
    json!({
        "id": id,
        "shortDescription": {"text": text},
        "fullDescription": {"text": full},
        "help": {
            "text": format!("{id}: {full}\n\n{how}\nReference: {help_uri}"),
            "markdown": format!("**{id}**: {full}\n\n{how}\n\n[Rule reference]({help_uri})"),
        },
        "helpUri": help_uri,
        "defaultConfiguration": {"level": level},
    })
}

fn level(f: &Finding) -> &'static str {
    if f.severity.is_warn() {
        "warning"
    } else {
        "error"
    }
}

/// One line of `file` (gate-root-relative) as a repository-relative location.
fn location(prefix: &str, file: &str, line: u32) -> Value {
    let line = line.max(1);
    let path = if prefix.is_empty() {
        file.to_owned()
    } else {
        format!("{prefix}/{file}")
    };
    json!({"physicalLocation": {
        "artifactLocation": {"uri": uri(&path)},
        "region": {"startLine": line, "endLine": line},
    }})
}

/// Hex sha256 of rule, file, field path and message, NUL-separated so no two different
/// findings share the input. No line: a finding keeps its fingerprint when lines move.
pub fn fingerprint(f: &Finding, file: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [
        f.rule.as_str(),
        file,
        f.path.as_deref().unwrap_or(""),
        f.message.as_str(),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hex::encode(hasher.finalize())
}

/// A relative path as a URI reference: percent-encodes everything but unreserved characters
/// and `/`.
fn uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(char::from(byte));
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::uri;

    #[test]
    fn uris_are_percent_encoded() {
        assert_eq!(uri("releases/a b%.yaml"), "releases/a%20b%25.yaml");
    }
}
