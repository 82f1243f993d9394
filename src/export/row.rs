//! One export row per record: the columns of docs/export.md, read from a record's Statement.
//! The row is the single shape every export format (CSV, JSONL, HTML tables, KPIs) is built
//! from, so the formats cannot disagree about what a record says.

use serde::Serialize;

use crate::record::statement::{BundleUsed, Statement};
use crate::report::Decision;

/// One record as an auditor sees it. Field order is the CSV column order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportRow {
    /// Ledger sequence number (1-based, as in the record file name).
    pub seq: u64,
    /// When the gate decided (`timeVerified`, RFC 3339 UTC).
    pub(crate) time: String,
    /// Service the release belongs to.
    pub(crate) service: Option<String>,
    /// Release name (`metadata.name`).
    pub(crate) name: String,
    /// Release version.
    pub(crate) version: String,
    /// `ModelRelease` or `PromptRelease`.
    pub(crate) kind: String,
    /// Target environment.
    pub(crate) environment: Option<String>,
    /// Service tier (0 = most critical).
    pub(crate) tier: Option<u8>,
    /// Change type (feature, security_fix, p0_fix, rollback, ...).
    pub(crate) change_type: Option<String>,
    /// The gate's decision.
    pub(crate) decision: Decision,
    /// Distinct rules of the deny findings, sorted.
    pub(crate) failed_rules: Vec<String>,
    /// Distinct rules of the warn findings, sorted.
    pub(crate) warned_rules: Vec<String>,
    /// Who approved the pull request, sorted.
    pub(crate) approvers: Vec<String>,
    /// Who asked for the change: the PR author, else the manifest owner's contact.
    pub(crate) requester: Option<String>,
    /// Pull request number.
    pub(crate) pull_request: Option<u64>,
    /// Who merged the pull request.
    pub(crate) merged_by: Option<String>,
    /// Git commit the manifest was evaluated at.
    pub(crate) commit: String,
    /// Change ticket.
    pub(crate) ticket: Option<String>,
    /// Digest of the evaluated policy bundle and config (`sha256:<hex>`).
    pub(crate) policy_digest: String,
    /// The shared policy bundles whose rules decided (reference, verified digest, signing key
    /// id), in the order the gate loaded them; empty for a gate without bundles.
    pub(crate) bundles: Vec<BundleUsed>,
    /// Repository path of the manifest.
    pub(crate) manifest_path: String,
    /// Evaluation files the decision read (candidate and baseline of `spec.evaluations`, as
    /// recorded in the change extension's `evidence`), sorted. Empty when the manifest has no
    /// evaluations; the evaluation gate pass rate ([`crate::export::kpi`]) uses it to tell
    /// which records were subject to the EVAL-* rules.
    pub(crate) evidence: Vec<String>,
    /// Whether this record's signature verified under a trusted key and no verification
    /// problem names it.
    pub verified: bool,
}

impl ExportRow {
    /// The column names, in field order: the CSV header and the JSONL key order.
    pub const COLUMNS: [&'static str; 23] = [
        "seq",
        "time",
        "service",
        "name",
        "version",
        "kind",
        "environment",
        "tier",
        "change_type",
        "decision",
        "failed_rules",
        "warned_rules",
        "approvers",
        "requester",
        "pull_request",
        "merged_by",
        "commit",
        "ticket",
        "policy_digest",
        "bundles",
        "manifest_path",
        "evidence",
        "verified",
    ];

    /// The row of one record. `verified` comes from the ledger verification, never from the
    /// record itself.
    pub fn from_statement(statement: &Statement, verified: bool) -> ExportRow {
        let predicate = &statement.predicate;
        let change = &predicate.change;
        let summary = &change.manifest.summary;
        let rules_of = |severity: &str| -> Vec<String> {
            let mut rules: Vec<String> = change
                .findings
                .iter()
                .filter(|f| f.get("severity").and_then(|s| s.as_str()) == Some(severity))
                .filter_map(|f| f.get("rule").and_then(|r| r.as_str()).map(str::to_owned))
                .collect();
            rules.sort();
            rules.dedup();
            rules
        };
        let mut approvers = change
            .pull_request
            .as_ref()
            .map(|pr| pr.approvers.clone())
            .unwrap_or_default();
        approvers.sort();
        approvers.dedup();
        let requester = change
            .pull_request
            .as_ref()
            .map(|pr| pr.author.clone())
            .or_else(|| summary.owner.as_ref().and_then(|o| o.contact.clone()));
        ExportRow {
            seq: change.seq,
            time: predicate.time_verified.clone(),
            service: summary.service.clone(),
            name: summary.name.clone(),
            version: summary.version.clone(),
            kind: summary.kind.clone(),
            environment: summary.environment.clone(),
            tier: summary.tier,
            change_type: summary.change_type.clone(),
            decision: change.decision,
            failed_rules: rules_of("deny"),
            warned_rules: rules_of("warn"),
            approvers,
            requester,
            pull_request: change.pull_request.as_ref().map(|pr| pr.number),
            merged_by: change
                .pull_request
                .as_ref()
                .and_then(|pr| pr.merged_by.clone()),
            commit: change.git.commit.clone(),
            ticket: summary.ticket.clone(),
            policy_digest: format!("sha256:{}", predicate.policy.digest.sha256),
            bundles: change.bundles.clone(),
            manifest_path: change.manifest.path.clone(),
            evidence: {
                let mut files: Vec<String> =
                    change.evidence.iter().map(|e| e.uri.clone()).collect();
                files.sort();
                files.dedup();
                files
            },
            verified,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The declared column names are exactly the serialized field names, in order, so the CSV
    /// header and the JSONL keys cannot drift apart.
    #[test]
    fn columns_are_the_serialized_fields_in_order() {
        let row = ExportRow {
            seq: 1,
            time: "2026-01-31T12:00:00Z".into(),
            service: None,
            name: "n".into(),
            version: "1".into(),
            kind: "PromptRelease".into(),
            environment: None,
            tier: None,
            change_type: None,
            decision: Decision::Pass,
            failed_rules: vec![],
            warned_rules: vec![],
            approvers: vec![],
            requester: None,
            pull_request: None,
            merged_by: None,
            commit: String::new(),
            ticket: None,
            policy_digest: "sha256:00".into(),
            bundles: vec![],
            manifest_path: "m.yaml".into(),
            evidence: vec![],
            verified: true,
        };
        let value = serde_json::to_value(&row).expect("serialize");
        let keys: Vec<&str> = value
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ExportRow::COLUMNS);
    }
}
