//! `--format sarif`: SARIF 2.1.0 for code scanning. One run; `tool.driver.rules` holds one
//! reporting descriptor per rule of the rule catalogue (`crate::catalogue`: the built-in rules,
//! SCHEMA and GATE-CONFIG-CHANGED included) in catalogue order, then one per other rule id that occurs (team rules), sorted. Each finding is
//! a result at its manifest `file:line` with a `partialFingerprints["relgate/v1"]` (hex sha256
//! of rule, file, field path and message) that is stable across runs. Manifests that could not
//! be evaluated are error notifications of the invocation, which is then not successful.
//! Exceptions and waivers are not results.
//!
//! Every catalogue rule has `shortDescription` (its title), `fullDescription` (why it matters),
//! `help` (text and markdown: why, how to fix, `relgate explain ID`) and a `helpUri` (its page
//! under docs/rules/), all from the catalogue, which code scanning shows on each alert. A team
//! rule's descriptor says only its package: its fix is in each result. A result's region is one line
//! (`startLine` = `endLine`; relgate knows no columns). URIs are relative to the *repository*
//! root ([`Report::repository_prefix`] + the report's gate-root-relative path), so a gate in a
//! monorepo subdirectory points at files that exist. The fingerprint leaves out the line and the
//! prefix, so an alert survives lines moving above it. tests/it/cli/outputs.rs validates the output
//! against the official SARIF 2.1.0 schema.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::catalogue::{self, Rule, Severity};
use crate::report::{Finding, Report};

pub(crate) const SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";
pub(crate) const INFORMATION_URI: &str = "https://relgate.dev";

pub(crate) fn render(report: &Report) -> String {
    let catalogue = catalogue::catalogue();
    let mut rules: Vec<Value> = catalogue.rules.iter().map(descriptor).collect();
    let mut index: BTreeMap<String, usize> = catalogue
        .rules
        .iter()
        .enumerate()
        .map(|(i, rule)| (rule.id.clone(), i))
        .collect();
    let mut team: BTreeMap<&str, &Finding> = BTreeMap::new();
    for f in report.results.iter().flat_map(|r| &r.findings) {
        if !index.contains_key(&f.rule) {
            team.entry(&f.rule).or_insert(f);
        }
    }
    for (id, f) in team {
        index.insert(id.to_string(), rules.len());
        rules.push(team_descriptor(id, f));
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

/// The reporting descriptor of a catalogue rule: its title, why it matters, how to fix it and
/// its page.
fn descriptor(rule: &Rule) -> Value {
    let level = match rule.severity {
        Severity::Deny => "error",
        Severity::Warn => "warning",
    };
    let why = rule.why_text();
    let fix = rule.fix_text();
    let effect = rule.severity.effect();
    let help_uri = rule.help_uri();
    let id = &rule.id;
    json!({
        "id": id,
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": format!("{why} {effect}")},
        "help": {
            "text": format!("{id}: {title}\n\nWhy it matters: {why}\n\nHow to fix it: {fix}\n\n`relgate explain {id}` prints the rule's page: {help_uri}", title = rule.title),
            "markdown": format!("**{id}**: {title}\n\n**Why it matters.** {why}\n\n**How to fix it.** {fix}\n\n[Rule reference]({help_uri}) (`relgate explain {id}`)", title = rule.title),
        },
        "helpUri": help_uri,
        "defaultConfiguration": {"level": level},
        "properties": {"area": rule.area},
    })
}

/// The descriptor of a rule id the catalogue does not know (a team rule): what relgate knows is
/// its package and severity; its fix is in each result's message and remediation.
fn team_descriptor(id: &str, f: &Finding) -> Value {
    let level = level(f);
    let effect = if level == "warning" {
        Severity::Warn.effect()
    } else {
        Severity::Deny.effect()
    };
    let text = format!("Rule `{id}` of policy package `{}`.", f.policy);
    let full = format!("{text} {effect}");
    let how = "Each alert names the manifest field at fault and how to fix it \
               (the message and `properties.remediation`).";
    json!({
        "id": id,
        "shortDescription": {"text": text},
        "fullDescription": {"text": full},
        "help": {
            "text": format!("{id}: {full}\n\n{how}"),
            "markdown": format!("**{id}**: {full}\n\n{how}"),
        },
        "defaultConfiguration": {"level": level},
        "properties": {"area": f.policy},
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
pub(crate) fn fingerprint(f: &Finding, file: &str) -> String {
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
