//! The payload of a change record: an in-toto Statement v1 whose predicate is a SLSA
//! Verification Summary Attestation v1 carrying relgate's extension field
//! `https://relgate.dev/change/v1` (the [`ChangeRecord`]: seq, prev, decision, findings,
//! manifest summary, git, pull request, SLO readings, CI run, evidence digests).
//! The gate fills a [`RecordInput`]; the ledger adds `seq` and `prev`. Serialization is
//! deterministic: plain structs in declared field order, no hash-map iteration.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::RecordError;

/// in-toto Statement type.
pub(crate) const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// SLSA VSA v1 predicate type.
pub(crate) const PREDICATE_TYPE: &str = "https://slsa.dev/verification_summary/v1";
/// `verifier.id` of records written by relgate.
pub(crate) const VERIFIER_ID: &str = "https://relgate.dev/verifier/v1";
/// `verifiedLevels` entry of an approved release.
pub(crate) const LEVEL_APPROVED: &str = "RELGATE_RELEASE_APPROVED";
/// `verifiedLevels` entry of a blocked release.
pub(crate) const LEVEL_FAILED: &str = "FAILED";
/// `prev` of the first record: 64 zeros.
pub(crate) const GENESIS_PREV: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// The gate's decision for one manifest: the report's own type, so a record can never say
/// something the report did not.
pub use crate::report::Decision;

impl Decision {
    /// `verificationResult` of the VSA.
    pub(crate) fn verification_result(self) -> &'static str {
        match self {
            Decision::Pass => "PASSED",
            Decision::Fail | Decision::Error => "FAILED",
        }
    }

    /// `verifiedLevels` of the VSA.
    pub(crate) fn verified_levels(self) -> Vec<String> {
        match self {
            Decision::Pass => vec![LEVEL_APPROVED.to_owned()],
            Decision::Fail | Decision::Error => vec![LEVEL_FAILED.to_owned()],
        }
    }
}

/// What the gate knows about one evaluated manifest; the ledger turns it into a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordInput {
    /// Manifest path relative to the repository (subject name).
    pub manifest_path: String,
    /// SHA-256 of the manifest bytes: 64 hex digits, optionally prefixed `sha256:`.
    pub manifest_sha256: String,
    /// The released artifact (model or prompt), when its digest is known.
    pub artifact: Option<ArtifactRef>,
    /// The decision.
    pub decision: Decision,
    /// Findings as rendered in the JSON report (`{rule, severity, message, policy, path, line, ...}`).
    pub findings: Vec<serde_json::Value>,
    /// Manifest summary.
    pub manifest: ManifestSummary,
    /// Git context of the evaluated commit.
    pub git: GitInfo,
    /// The commits of the recorded branch range (before `git.commit`) that changed this
    /// manifest, the gate's configuration or its policies, oldest first: `relgate verify`
    /// checks that every such commit of the default branch is named by a record. Empty when
    /// the run covered one commit only.
    #[serde(default)]
    pub changed_in: Vec<String>,
    /// Merged pull request, when known.
    pub pull_request: Option<PullRequestInfo>,
    /// SLO readings the decision used.
    pub slo_readings: Vec<SloReading>,
    /// URL of the CI run that made the decision.
    pub ci_run_url: Option<String>,
    /// Evidence files and their digests (VSA `inputAttestations`).
    pub evidence: Vec<EvidenceDigest>,
    /// The evaluated policy bundle and configuration.
    pub policy: PolicyRef,
    /// The shared policy bundles (docs/bundles.md) whose rules decided, in config order; empty
    /// when the gate loaded none.
    #[serde(default)]
    pub bundles: Vec<BundleUsed>,
    /// relgate version (VSA `verifier.version.relgate`).
    pub verifier_version: String,
    /// RFC 3339 time of the decision (VSA `timeVerified`).
    pub time_verified: String,
}

/// The released artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// Artifact name: model URI or prompt path.
    pub name: String,
    /// SHA-256: 64 hex digits, optionally prefixed `sha256:`.
    pub sha256: String,
}

/// The policy bundle and configuration that were evaluated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRef {
    /// Where the policy lives (e.g. `https://relgate.dev/policies/builtin@0.1.0` or a repo path).
    pub uri: String,
    /// Digest of bundle and config: 64 hex digits, optionally prefixed `sha256:`.
    pub sha256: String,
}

/// A shared policy bundle whose rules decided (docs/bundles.md): what the gate verified before
/// using it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleUsed {
    /// The reference as written in `bundles:` of relgate.yaml (`oci://REGISTRY/REPO@sha256:…`).
    #[serde(rename = "ref")]
    pub reference: String,
    /// The verified OCI manifest digest (`sha256:<hex>`).
    pub digest: String,
    /// Id of the trusted key whose signature verified.
    pub keyid: String,
}

/// Summary of the manifest the record is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestSummary {
    /// `ModelRelease` or `PromptRelease`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.version`.
    pub version: String,
    /// `metadata.service`.
    pub service: Option<String>,
    /// `metadata.environment`.
    pub environment: Option<String>,
    /// `metadata.tier`.
    pub tier: Option<u8>,
    /// `metadata.change_type`.
    pub change_type: Option<String>,
    /// `spec.owner`.
    pub owner: Option<Owner>,
    /// `metadata.ticket`.
    pub ticket: Option<String>,
    /// What is replaced: baseline version or URI.
    pub baseline: Option<String>,
    /// What is released: candidate version, URI or path.
    pub candidate: Option<String>,
}

/// Owning team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Team.
    pub team: Option<String>,
    /// Contact.
    pub contact: Option<String>,
}

/// Git context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitInfo {
    /// Repository (remote URL or `owner/name`).
    pub repo: String,
    /// Commit SHA.
    pub commit: String,
    /// Ref (e.g. `refs/heads/main`); null when detached.
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
}

/// The merged pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestInfo {
    /// PR number.
    pub number: u64,
    /// Author login.
    pub author: String,
    /// Logins whose latest review approved.
    pub approvers: Vec<String>,
    /// Who merged it.
    pub merged_by: Option<String>,
}

/// One SLO reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloReading {
    /// SLO name from the manifest.
    pub name: Option<String>,
    /// The PromQL query or file read.
    pub query: String,
    /// RFC 3339 time of the reading.
    pub time: String,
    /// The value; null when unknown (query failed, empty or NaN).
    pub value: Option<f64>,
}

/// An evidence file and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceDigest {
    /// Repo-relative path or URI.
    pub uri: String,
    /// SHA-256: 64 hex digits, optionally prefixed `sha256:`.
    pub sha256: String,
}

/// in-toto Statement v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    /// Always [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// The manifest and the released artifact.
    pub subject: Vec<Subject>,
    /// Always [`PREDICATE_TYPE`].
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The VSA.
    pub predicate: VsaPredicate,
}

/// A Statement subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// Name.
    pub name: String,
    /// Digests.
    pub digest: DigestSet,
}

/// A digest set with SHA-256 only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestSet {
    /// Lowercase hex SHA-256.
    pub sha256: String,
}

/// A VSA resource descriptor (`policy`, `inputAttestations[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceDescriptor {
    /// URI.
    pub uri: String,
    /// Digests.
    pub digest: DigestSet,
}

/// VSA `verifier`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifierInfo {
    /// [`VERIFIER_ID`].
    pub id: String,
    /// Component versions (`{"relgate": "0.1.0"}`); sorted map, deterministic.
    pub version: BTreeMap<String, String>,
}

/// SLSA Verification Summary Attestation v1 predicate with relgate's extension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VsaPredicate {
    /// Who verified.
    pub verifier: VerifierInfo,
    /// When.
    #[serde(rename = "timeVerified")]
    pub time_verified: String,
    /// Repository + manifest path @ commit.
    #[serde(rename = "resourceUri")]
    pub resource_uri: String,
    /// Evaluated policy bundle and config.
    pub policy: ResourceDescriptor,
    /// Evidence files with digests.
    #[serde(rename = "inputAttestations")]
    pub input_attestations: Vec<ResourceDescriptor>,
    /// `PASSED` or `FAILED`.
    #[serde(rename = "verificationResult")]
    pub verification_result: String,
    /// `RELGATE_RELEASE_APPROVED` or `FAILED`.
    #[serde(rename = "verifiedLevels")]
    pub verified_levels: Vec<String>,
    /// relgate's change record.
    #[serde(rename = "https://relgate.dev/change/v1")]
    pub change: ChangeRecord,
}

/// relgate's extension: the change record proper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRecord {
    /// Position in the ledger, from 1.
    pub seq: u64,
    /// Hex SHA-256 of the previous record's payload bytes; [`GENESIS_PREV`] for the first.
    pub prev: String,
    /// The decision.
    pub decision: Decision,
    /// The findings.
    pub findings: Vec<serde_json::Value>,
    /// Manifest summary plus its path and digest.
    pub manifest: RecordedManifest,
    /// Git context.
    pub git: GitInfo,
    /// Earlier commits of the recorded range that changed the manifest, config or policies
    /// ([`RecordInput::changed_in`]); absent when empty, so records without it keep their
    /// bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_in: Vec<String>,
    /// Pull request, or null.
    pub pull_request: Option<PullRequestInfo>,
    /// SLO readings.
    pub slo_readings: Vec<SloReading>,
    /// CI run URL, or null.
    pub ci_run_url: Option<String>,
    /// Evidence digests.
    pub evidence: Vec<EvidenceDigest>,
    /// The shared policy bundles whose rules decided ([`RecordInput::bundles`]); absent when
    /// none, so records of gates without bundles keep their bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bundles: Vec<BundleUsed>,
}

/// The manifest summary as recorded (path and digest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedManifest {
    /// Repo-relative path.
    pub path: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Summary fields.
    #[serde(flatten)]
    pub summary: ManifestSummary,
}

/// Normalizes a SHA-256 given as hex or `sha256:hex` to lowercase hex.
pub(crate) fn normalize_sha256(what: &str, value: &str) -> Result<String, RecordError> {
    let hex_part = value.strip_prefix("sha256:").unwrap_or(value);
    if hex_part.len() != 64 || !hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RecordError::Input(format!(
            "{what}: {value:?} is not a SHA-256 (64 hex digits, optionally prefixed sha256:)"
        )));
    }
    Ok(hex_part.to_ascii_lowercase())
}

/// Builds the Statement for `input` at position `seq` after a record whose payload hashes to
/// `prev`.
pub fn build_statement(
    input: &RecordInput,
    seq: u64,
    prev: &str,
) -> Result<Statement, RecordError> {
    let manifest_sha = normalize_sha256("manifest_sha256", &input.manifest_sha256)?;
    let mut subject = vec![Subject {
        name: input.manifest_path.clone(),
        digest: DigestSet {
            sha256: manifest_sha.clone(),
        },
    }];
    if let Some(artifact) = &input.artifact {
        subject.push(Subject {
            name: artifact.name.clone(),
            digest: DigestSet {
                sha256: normalize_sha256("artifact.sha256", &artifact.sha256)?,
            },
        });
    }
    let evidence = input
        .evidence
        .iter()
        .map(|e| {
            Ok(EvidenceDigest {
                uri: e.uri.clone(),
                sha256: normalize_sha256(&format!("evidence {}", e.uri), &e.sha256)?,
            })
        })
        .collect::<Result<Vec<_>, RecordError>>()?;
    let input_attestations = evidence
        .iter()
        .map(|e| ResourceDescriptor {
            uri: e.uri.clone(),
            digest: DigestSet {
                sha256: e.sha256.clone(),
            },
        })
        .collect();
    let resource_uri = format!(
        "{}/{}@{}",
        input.git.repo.trim_end_matches('/'),
        input.manifest_path,
        input.git.commit
    );
    for bundle in &input.bundles {
        // The digest is what an auditor looks the bundle up by: refuse anything that is not
        // one rather than sign a record that names no version of the rules.
        if !crate::bundle::is_digest(&bundle.digest) {
            return Err(RecordError::Input(format!(
                "bundle {}: digest {:?} is not sha256:<64 lowercase hex>",
                bundle.reference, bundle.digest
            )));
        }
    }
    let mut version = BTreeMap::new();
    version.insert("relgate".to_owned(), input.verifier_version.clone());
    Ok(Statement {
        statement_type: STATEMENT_TYPE.to_owned(),
        subject,
        predicate_type: PREDICATE_TYPE.to_owned(),
        predicate: VsaPredicate {
            verifier: VerifierInfo {
                id: VERIFIER_ID.to_owned(),
                version,
            },
            time_verified: input.time_verified.clone(),
            resource_uri,
            policy: ResourceDescriptor {
                uri: input.policy.uri.clone(),
                digest: DigestSet {
                    sha256: normalize_sha256("policy.sha256", &input.policy.sha256)?,
                },
            },
            input_attestations,
            verification_result: input.decision.verification_result().to_owned(),
            verified_levels: input.decision.verified_levels(),
            change: ChangeRecord {
                seq,
                prev: prev.to_owned(),
                decision: input.decision,
                findings: input.findings.clone(),
                manifest: RecordedManifest {
                    path: input.manifest_path.clone(),
                    digest: format!("sha256:{manifest_sha}"),
                    summary: input.manifest.clone(),
                },
                git: input.git.clone(),
                changed_in: input.changed_in.clone(),
                pull_request: input.pull_request.clone(),
                slo_readings: input.slo_readings.clone(),
                ci_run_url: input.ci_run_url.clone(),
                evidence,
                bundles: input.bundles.clone(),
            },
        },
    })
}

impl Statement {
    /// The payload bytes: compact JSON in declared field order.
    pub fn to_payload(&self) -> Result<Vec<u8>, RecordError> {
        serde_json::to_vec(self)
            .map_err(|e| RecordError::Input(format!("cannot serialize statement: {e}")))
    }

    /// Parses a payload.
    pub(crate) fn from_payload(payload: &[u8]) -> Result<Statement, serde_json::Error> {
        serde_json::from_slice(payload)
    }
}

/// The fields of a payload the ledger and the verifier need, parsed without building the whole
/// Statement.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct PayloadHead {
    /// `_type`.
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// `predicateType`.
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The predicate's extension.
    pub predicate: PredicateHead,
}

/// Part of [`PayloadHead`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct PredicateHead {
    /// The extension.
    #[serde(rename = "https://relgate.dev/change/v1")]
    pub change: ChangeHead,
}

/// Part of [`PayloadHead`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct ChangeHead {
    /// Sequence number.
    pub seq: u64,
    /// Previous payload hash.
    pub prev: String,
    /// The evaluated commit (`git.commit`), for the completeness check.
    #[serde(default)]
    pub git: Option<GitHead>,
    /// [`ChangeRecord::changed_in`].
    #[serde(default)]
    pub changed_in: Vec<String>,
}

/// Part of [`ChangeHead`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct GitHead {
    /// Commit SHA.
    #[serde(default)]
    pub commit: String,
    /// Ref (`refs/heads/main`), when recorded.
    #[serde(default, rename = "ref")]
    pub git_ref: Option<String>,
}

impl PayloadHead {
    /// Parses and checks statement and predicate types.
    pub(crate) fn parse(payload: &[u8]) -> Result<PayloadHead, String> {
        let head: PayloadHead = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        if head.statement_type != STATEMENT_TYPE {
            return Err(format!(
                "_type is {:?}, expected {STATEMENT_TYPE:?}",
                head.statement_type
            ));
        }
        if head.predicate_type != PREDICATE_TYPE {
            return Err(format!(
                "predicateType is {:?}, expected {PREDICATE_TYPE:?}",
                head.predicate_type
            ));
        }
        if head.predicate.change.prev.len() != 64
            || !head
                .predicate
                .change
                .prev
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err("prev is not 64 lowercase hex digits".into());
        }
        Ok(head)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample_input() -> RecordInput {
        RecordInput {
            manifest_path: "releases/answer.yaml".into(),
            manifest_sha256: format!("sha256:{}", "ab".repeat(32)),
            artifact: Some(ArtifactRef {
                name: "prompts/answer.prompt".into(),
                sha256: "cd".repeat(32),
            }),
            decision: Decision::Fail,
            findings: vec![serde_json::json!({"rule": "PII-RETENTION", "severity": "deny"})],
            manifest: ManifestSummary {
                kind: "PromptRelease".into(),
                name: "support-answer".into(),
                version: "17".into(),
                service: Some("support-bot".into()),
                environment: Some("production".into()),
                tier: Some(1),
                change_type: Some("feature".into()),
                owner: Some(Owner {
                    team: Some("assistants".into()),
                    contact: Some("dana@example.com".into()),
                }),
                ticket: Some("AIR-1234".into()),
                baseline: Some("15".into()),
                candidate: Some("17".into()),
            },
            git: GitInfo {
                repo: "https://git.example.com/acme/assistants".into(),
                commit: "0123456789abcdef0123456789abcdef01234567".into(),
                git_ref: Some("refs/heads/main".into()),
            },
            changed_in: Vec::new(),
            pull_request: None,
            slo_readings: vec![],
            ci_run_url: None,
            evidence: vec![],
            policy: PolicyRef {
                uri: "relgate:builtin".into(),
                sha256: "ef".repeat(32),
            },
            bundles: Vec::new(),
            verifier_version: "0.1.0".into(),
            time_verified: "2026-01-31T12:00:00Z".into(),
        }
    }

    #[test]
    fn statement_is_deterministic_and_round_trips() {
        let input = sample_input();
        let a = build_statement(&input, 3, GENESIS_PREV).expect("builds");
        let b = build_statement(&input, 3, GENESIS_PREV).expect("builds");
        let pa = a.to_payload().expect("serializes");
        assert_eq!(pa, b.to_payload().expect("serializes"));
        let text = String::from_utf8(pa.clone()).expect("utf8");
        assert!(text.starts_with(r#"{"_type":"https://in-toto.io/Statement/v1","subject":"#));
        assert_eq!(Statement::from_payload(&pa).ok(), Some(a));
        let head = PayloadHead::parse(&pa).expect("head");
        assert_eq!(head.predicate.change.seq, 3);
    }

    #[test]
    fn bundles_round_trip_and_are_absent_when_empty() {
        let input = sample_input();
        let plain = build_statement(&input, 1, GENESIS_PREV)
            .and_then(|s| s.to_payload())
            .expect("builds");
        // No bundles: no `bundles` key at all, so records of gates without bundles keep the
        // bytes they had before the field existed.
        assert!(!String::from_utf8_lossy(&plain).contains("\"bundles\""));
        let mut with = input.clone();
        with.bundles = vec![BundleUsed {
            reference: format!(
                "oci://127.0.0.1:5000/org/policies@sha256:{}",
                "a".repeat(64)
            ),
            digest: format!("sha256:{}", "a".repeat(64)),
            keyid: "b".repeat(64),
        }];
        let statement = build_statement(&with, 1, GENESIS_PREV).expect("builds");
        let payload = statement.to_payload().expect("serializes");
        let text = String::from_utf8(payload.clone()).expect("utf8");
        assert!(
            text.ends_with(&format!(
                r#""bundles":[{{"ref":"oci://127.0.0.1:5000/org/policies@sha256:{a}","digest":"sha256:{a}","keyid":"{b}"}}]}}}}}}"#,
                a = "a".repeat(64),
                b = "b".repeat(64)
            )),
            "{text}"
        );
        let back = Statement::from_payload(&payload).expect("parses");
        assert_eq!(back.predicate.change.bundles, with.bundles);
        assert_eq!(back, statement);
        // The field is covered by the payload bytes (and so by the signature over them): a
        // different digest is a different payload.
        with.bundles[0].digest = format!("sha256:{}", "c".repeat(64));
        let other = build_statement(&with, 1, GENESIS_PREV)
            .and_then(|s| s.to_payload())
            .expect("builds");
        assert_ne!(other, payload);
        with.bundles[0].digest = "sha256:short".into();
        let e = build_statement(&with, 1, GENESIS_PREV).expect_err("bad digest");
        assert!(
            e.to_string().contains("is not sha256:<64 lowercase hex>"),
            "{e}"
        );
    }

    #[test]
    fn rejects_bad_digest() {
        let mut input = sample_input();
        input.manifest_sha256 = "nothex".into();
        assert!(matches!(
            build_statement(&input, 1, GENESIS_PREV),
            Err(RecordError::Input(_))
        ));
    }
}
