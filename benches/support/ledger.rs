//! Generated change-record ledgers for the export benchmark, the export tests and
//! `examples/gen_ledger.rs`: `n` varied records (services, environments, tiers, change types,
//! decisions with deny and warn findings, pull requests with approvers or none, tickets, one
//! decision every 37 minutes from 2026-01-01T00:00:00Z) appended with the real ledger code and
//! signed with a fixed key.
#![allow(dead_code)]

use std::path::Path;

use relgate::record::keys::{public_key_pem, Signer};
use relgate::record::ledger::{DirLedger, Ledger, LedgerOptions};
use relgate::record::statement::{
    ArtifactRef, Decision, EvidenceDigest, GitInfo, ManifestSummary, Owner, PolicyRef,
    PullRequestInfo, RecordInput,
};
use sha2::{Digest, Sha256};

pub const SERVICES: [&str; 5] = [
    "support-bot",
    "search-ranker",
    "fraud-scorer",
    "triage",
    "summarizer",
];
pub const ENVIRONMENTS: [&str; 3] = ["dev", "staging", "production"];
pub const CHANGE_TYPES: [&str; 4] = ["feature", "security_fix", "rollback", "p0_fix"];

fn sha(text: String) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The fixed signing key of generated ledgers.
pub fn signer() -> Signer {
    Signer::from_seed([0x42; 32])
}

/// `2026-01-01T00:00:00Z` plus `i * 37` minutes, RFC 3339 UTC.
pub fn time_of(i: u64) -> String {
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("fixed time")
        .with_timezone(&chrono::Utc);
    (start + chrono::Duration::minutes(37 * i as i64))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The decision of release `i`.
pub fn decision_of(i: u64) -> Decision {
    match i % 7 {
        0 | 3 => Decision::Fail,
        5 => Decision::Error,
        _ => Decision::Pass,
    }
}

/// A varied, deterministic record input for release number `i` (from 1).
pub fn input(i: u64) -> RecordInput {
    let decision = decision_of(i);
    let service = SERVICES[(i % 5) as usize];
    let mut findings = Vec::new();
    if decision == Decision::Fail {
        findings.push(
            serde_json::json!({"rule": "EVAL-THRESHOLD", "severity": "deny",
            "policy": "relgate.eval", "message": "pass_rate 0.91 below min 0.95",
            "path": "spec.evaluations[0]", "line": 30}),
        );
        if i % 2 == 0 {
            findings.push(
                serde_json::json!({"rule": "PII-RETENTION", "severity": "deny",
                "policy": "relgate.pii", "message": "sink keeps redacted_content 45 days",
                "path": "spec.logging.sinks[0].retention_days", "line": 41}),
            );
        }
    }
    if i % 4 == 1 {
        findings.push(serde_json::json!({"rule": "PRR-STALE", "severity": "warn",
            "policy": "relgate.prr", "message": "evidence older than 90 days",
            "path": "spec.prr", "line": 12}));
    }
    RecordInput {
        manifest_path: format!("releases/{service}/r{}.yaml", i % 13),
        manifest_sha256: sha(format!("manifest {i}")),
        artifact: Some(ArtifactRef {
            name: format!("models:/{service}/{i}"),
            sha256: sha(format!("artifact {i}")),
        }),
        decision,
        findings,
        manifest: ManifestSummary {
            kind: if i % 3 == 0 {
                "ModelRelease"
            } else {
                "PromptRelease"
            }
            .into(),
            name: format!("{service}-release"),
            version: format!("{}", 100 + i),
            service: Some(service.into()),
            environment: Some(ENVIRONMENTS[(i % 3) as usize].into()),
            tier: if i % 11 == 0 {
                None
            } else {
                Some((i % 4) as u8)
            },
            change_type: Some(CHANGE_TYPES[(i % 4) as usize].into()),
            owner: Some(Owner {
                team: Some("assistants".into()),
                contact: Some(format!("owner{}@example.com", i % 3)),
            }),
            ticket: if i % 6 == 0 {
                None
            } else {
                Some(format!("AIR-{i}"))
            },
            baseline: Some(format!("{}", 99 + i)),
            candidate: Some(format!("{}", 100 + i)),
        },
        git: GitInfo {
            repo: "https://git.example.com/acme/assistants".into(),
            commit: sha(format!("commit {i}"))[..40].to_owned(),
            git_ref: Some("refs/heads/main".into()),
        },
        changed_in: Vec::new(),
        pull_request: if i % 5 == 2 {
            None
        } else {
            Some(PullRequestInfo {
                number: 1000 + i,
                author: format!("dev{}", i % 4),
                approvers: if i % 3 == 0 {
                    vec![]
                } else {
                    vec!["erin".into(), "bob".into()]
                },
                merged_by: if i % 2 == 0 { Some("bob".into()) } else { None },
            })
        },
        slo_readings: vec![],
        ci_run_url: Some(format!("https://ci.example.com/runs/{i}")),
        evidence: vec![EvidenceDigest {
            uri: format!("evals/{service}-{i}.json"),
            sha256: sha(format!("eval {i}")),
        }],
        policy: PolicyRef {
            uri: "relgate:builtin@0.1.0".into(),
            sha256: sha(format!("policy {}", i / 50)),
        },
        bundles: Vec::new(),
        verifier_version: "0.1.0".into(),
        time_verified: time_of(i),
    }
}

/// Writes the trusted public key of generated ledgers to `dir/relgate.pem`.
pub fn write_public_key(dir: &Path) {
    std::fs::create_dir_all(dir).expect("create key dir");
    std::fs::write(
        dir.join("relgate.pem"),
        public_key_pem(&signer().verifying_key()),
    )
    .expect("write public key");
}

/// Appends records `1..=n` of [`input`] to a directory ledger at `dir` (no fsync: generated
/// ledgers live in temp dirs or /dev/shm).
pub fn build_dir_ledger(dir: &Path, n: u64) {
    let mut ledger = DirLedger::open_with(
        dir,
        LedgerOptions {
            fsync: false,
            ..Default::default()
        },
    )
    .expect("open ledger");
    let s = signer();
    for i in 1..=n {
        ledger.append(&input(i), &s).expect("append");
    }
}

/// A git ledger on branch `relgate/records` of a new repository at `repo`, made as the Action
/// makes one when every push records one release: `n` single appends, a commit each.
pub fn build_git_ledger(repo: &Path, n: u64) {
    git2::Repository::init(repo).expect("init repository");
    let mut ledger = relgate::record::GitLedger::open_with(
        repo,
        relgate::record::ledger::DEFAULT_BRANCH,
        LedgerOptions {
            committer: Some(("bench".to_owned(), "bench@example.com".to_owned())),
            ..Default::default()
        },
    )
    .expect("open ledger");
    let s = signer();
    for i in 1..=n {
        let mut record = input(i);
        // The repository holds no recorded branch: a record that names no commit leaves the
        // completeness check of `relgate verify` nothing to compare (it needs a real one).
        record.git.commit = String::new();
        ledger.append(&record, &s).expect("append");
    }
}
