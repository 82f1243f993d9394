//! The decision model every printer reads: a [`Report`] of [`ManifestResult`]s, each with its
//! [`Finding`]s. Field order here is the JSON field order (docs/report.md), and every list is sorted
//! before a report leaves the library, so the same inputs always give the same bytes.

use serde::{Deserialize, Serialize};

/// pass, fail or error, at manifest and at run level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Pass,
    Fail,
    Error,
}

impl Decision {
    /// The decision of a run over non-empty `results`: the worst of them.
    fn of(results: &[ManifestResult]) -> Self {
        results
            .iter()
            .map(|r| r.decision)
            .max()
            .unwrap_or(Decision::Error)
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Error => "error",
        }
    }
}

/// How a finding weighs on the decision (docs/policy-contract.md): `deny` (from `deny*` and
/// `violation*` rules, and SCHEMA) blocks the release; `warn` (from `warn*` rules) is reported
/// and blocks only with `--fail-on-warn`. Serialized as the lowercase word, as reports and
/// change records have always carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Severity {
    Deny,
    Warn,
}

impl Severity {
    /// The word reports use: `deny` or `warn`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Deny => "deny",
            Self::Warn => "warn",
        }
    }

    pub(crate) fn is_warn(self) -> bool {
        self == Self::Warn
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing a policy (or the schema) found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Finding {
    /// Catalogue id (`PRR-MISSING`) or, for team policies without one, the Rego rule name.
    pub(crate) rule: String,
    pub(crate) severity: Severity,
    /// Package that produced it (`relgate.pii`, `main`, `relgate.schema` for SCHEMA).
    pub(crate) policy: String,
    pub(crate) message: String,
    /// Manifest field in dot/bracket form.
    pub(crate) path: Option<String>,
    /// Line of `path` (or of its nearest existing parent, or of the document).
    pub(crate) line: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) item: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) remediation: Option<String>,
}

impl Finding {
    fn sort_key(&self) -> (u32, &str, &Option<String>, &str) {
        (self.line, &self.rule, &self.path, &self.message)
    }
}

/// A finding an `exception` rule suppressed. Reported, never dropped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Exception {
    #[serde(flatten)]
    pub(crate) finding: Finding,
    /// The exception name that matched and the package that declared it.
    pub(crate) exception: String,
    pub(crate) exception_policy: String,
}

/// A PRR item the manifest waives (reported so waivers stay visible).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Waiver {
    pub(crate) item: String,
    pub(crate) approver: Option<String>,
    pub(crate) expires: Option<String>,
    pub(crate) reason: Option<String>,
    pub(crate) line: u32,
}

/// The decision on one manifest document (or on a file that could not be read).
#[derive(Debug, Clone, Serialize)]
pub struct ManifestResult {
    pub(crate) file: String,
    pub(crate) document: usize,
    pub(crate) kind: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) version: Option<String>,
    /// `sha256:` of the file's bytes.
    pub(crate) digest: Option<String>,
    /// Line where the document starts.
    pub(crate) line: u32,
    pub decision: Decision,
    /// Why no decision could be made (decision `error`).
    pub(crate) error: Option<String>,
    pub(crate) findings: Vec<Finding>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) exceptions: Vec<Exception>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) waivers: Vec<Waiver>,
    /// Things a reader should know (e.g. policies skipped because the schema failed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) notes: Vec<String>,
    /// The manifest document as parsed, when it could be read, the gate keeps it
    /// (`Gate::keep_evaluated`, for change records; not part of the report) and no policy
    /// input was kept: a kept `input` holds it as `input.manifest`.
    #[serde(skip)]
    pub(crate) manifest: Option<serde_json::Value>,
    /// The policy input the decision was made on, when policies ran and the gate keeps it
    /// (for change records: evidence digests and SLO readings; not part of the report).
    #[serde(skip)]
    pub(crate) input: Option<serde_json::Value>,
}

impl ManifestResult {
    /// A result for a file or document that could not be evaluated.
    pub(crate) fn error(
        file: &str,
        document: usize,
        line: u32,
        digest: Option<String>,
        error: String,
    ) -> Self {
        Self {
            file: file.to_string(),
            document,
            kind: None,
            name: None,
            version: None,
            digest,
            line,
            decision: Decision::Error,
            error: Some(error),
            findings: Vec::new(),
            exceptions: Vec::new(),
            waivers: Vec::new(),
            notes: Vec::new(),
            manifest: None,
            input: None,
        }
    }

    pub(crate) fn warnings(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity.is_warn())
            .count()
    }

    pub(crate) fn denials(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| !f.severity.is_warn())
            .count()
    }

    /// Sets the decision from the findings. `fail_on_warn` turns warnings into a failure.
    pub(crate) fn decide(&mut self, fail_on_warn: bool) {
        self.findings
            .sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        self.findings.dedup();
        self.exceptions
            .sort_by(|a, b| a.finding.sort_key().cmp(&b.finding.sort_key()));
        if self.error.is_some() {
            self.decision = Decision::Error;
        } else if self.denials() > 0 || (fail_on_warn && self.warnings() > 0) {
            self.decision = Decision::Fail;
        } else {
            self.decision = Decision::Pass;
        }
    }
}

/// What the text and markdown reports say when a run had no pull-request context.
pub(crate) const APPROVALS_NOT_EVALUATED: &str =
    "approvals not evaluated: no pull-request context (run in a pull request or pass --pr-json)";

/// Tool identity in reports.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Tool {
    pub(crate) name: &'static str,
    pub(crate) version: &'static str,
}

impl Default for Tool {
    fn default() -> Self {
        Self {
            name: "relgate",
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// Counts over the results.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub manifests: usize,
    pub passed: usize,
    pub(crate) failed: usize,
    pub(crate) errors: usize,
    pub(crate) warnings: usize,
}

impl Summary {
    /// The counts of `results`.
    fn of(results: &[ManifestResult]) -> Self {
        let count = |d: Decision| results.iter().filter(|r| r.decision == d).count();
        Summary {
            manifests: results.len(),
            passed: count(Decision::Pass),
            failed: count(Decision::Fail),
            errors: count(Decision::Error),
            warnings: results.iter().map(ManifestResult::warnings).sum(),
        }
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub(crate) tool: Tool,
    pub(crate) decision: Decision,
    pub(crate) policy_digest: String,
    /// Whether the run had pull-request context, so the approval rules (APPROVAL-*) were
    /// evaluated; without it they cannot fire, and the printers say so
    /// ([`APPROVALS_NOT_EVALUATED`]).
    pub(crate) approvals_evaluated: bool,
    pub summary: Summary,
    pub(crate) results: Vec<ManifestResult>,
    /// `--changed` only: the range that was compared (docs/changed.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) changed: Option<ChangedRange>,
    /// `--changed` only: manifests deleted (or renamed out of the manifest set) by the change;
    /// not checked, listed so a removal is never silent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) removed: Option<Vec<Removed>>,
    /// `--changed` only: where the gate's configuration and policies were read from
    /// (docs/changed.md, "The gate's own files").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rules: Option<RulesUsed>,
    /// Run-level remarks (e.g. no manifests matched).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) notes: Vec<String>,
    /// The gate root's path inside its git work tree (`ml/gate`, `/`-separated), empty at the
    /// top of the work tree or outside git. Not in the JSON report (its paths stay
    /// gate-root-relative); SARIF and GitLab Code Quality prefix it, because code scanning and
    /// merge requests resolve paths from the repository root.
    #[serde(skip)]
    pub(crate) repository_prefix: String,
}

/// The git range of a `--changed` run: merge-base(base, head) .. head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ChangedRange {
    /// The base as given (`--base`) or chosen (the upstream, `origin/HEAD`, `main`...).
    pub(crate) base: String,
    pub(crate) base_commit: String,
    /// The commit the diff starts from.
    pub(crate) merge_base: String,
    /// The head as given (`--head`), or `HEAD`.
    pub(crate) head: String,
    pub(crate) head_commit: String,
    /// Uncommitted work-tree and index changes were included (no `--head`, or a `--head`
    /// naming the checked-out commit).
    pub(crate) work_tree: bool,
}

/// Where the rules of a `--changed` run came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct RulesUsed {
    /// `base` (the merge base's relgate.yaml and policy directories) or `head` (the checked
    /// files').
    pub(crate) from: &'static str,
    /// The merge-base commit the rules were read from (`from: base`), else null.
    pub(crate) commit: Option<String>,
}

/// A manifest the change deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Removed {
    /// Path relative to the gate root, as it was at the merge base.
    pub(crate) file: String,
    /// `sha256:` of the file's bytes at the merge base, when they could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) previous_digest: Option<String>,
}

impl Report {
    /// Builds a report from results: sorts them, counts, and decides. A run with no manifest
    /// at all is an error: a gate that checked nothing must not pass.
    pub(crate) fn new(
        policy_digest: String,
        mut results: Vec<ManifestResult>,
        mut notes: Vec<String>,
    ) -> Self {
        results.sort_by(|a, b| (&a.file, a.document).cmp(&(&b.file, b.document)));
        let summary = Summary::of(&results);
        let decision = if results.is_empty() {
            notes.push("no manifests found: nothing was checked, so nothing passes".to_string());
            Decision::Error
        } else {
            Decision::of(&results)
        };
        Self {
            tool: Tool::default(),
            decision,
            policy_digest,
            approvals_evaluated: false,
            summary,
            results,
            changed: None,
            removed: None,
            rules: None,
            notes,
            repository_prefix: String::new(),
        }
    }

    /// Replaces the results of `files` with `again` (the same files decided anew), then
    /// recounts the summary and the decision. `relgate record` uses it to decide a manifest
    /// again without pull-request facts that are not its own; a file missing from `again` keeps
    /// no result for it, so the recount cannot pass what was not decided: that file becomes an
    /// error.
    pub(crate) fn replace_results(
        &mut self,
        files: &std::collections::BTreeSet<String>,
        again: Vec<ManifestResult>,
    ) {
        let before: Vec<ManifestResult> = self
            .results
            .iter()
            .filter(|r| files.contains(&r.file))
            .cloned()
            .collect();
        self.results.retain(|r| !files.contains(&r.file));
        let mut replaced: Vec<ManifestResult> = again
            .into_iter()
            .filter(|r| files.contains(&r.file))
            .collect();
        for lost in before {
            if !replaced.iter().any(|r| r.file == lost.file) {
                replaced.push(ManifestResult {
                    decision: Decision::Error,
                    error: Some("not decided again without the pull request's facts".into()),
                    findings: Vec::new(),
                    ..lost
                });
            }
        }
        self.results.extend(replaced);
        self.results
            .sort_by(|a, b| (&a.file, a.document).cmp(&(&b.file, b.document)));
        self.summary = Summary::of(&self.results);
        if !self.results.is_empty() {
            self.decision = Decision::of(&self.results);
        }
    }

    /// A report of a `--changed` run. Unlike [`Report::new`], no manifest at all is a pass:
    /// the change touched no release (the notes say so), and removed manifests are listed,
    /// not decided.
    pub(crate) fn changed(
        policy_digest: String,
        results: Vec<ManifestResult>,
        notes: Vec<String>,
        range: ChangedRange,
        mut removed: Vec<Removed>,
    ) -> Self {
        let mut report = Self::new(policy_digest, results, notes.clone());
        if report.results.is_empty() {
            // Drops the "nothing was checked" note of `new`: here that is the expected answer.
            report.decision = Decision::Pass;
            report.notes = notes;
        }
        removed.sort_by(|a, b| a.file.cmp(&b.file));
        removed.dedup_by(|a, b| a.file == b.file);
        report.changed = Some(range);
        report.removed = Some(removed);
        report
    }
}
