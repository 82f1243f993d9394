//! The record library end to end, as `relgate keygen`, `relgate record` and `relgate verify`
//! will call it: generate a key, append two records to a directory ledger, verify it and print
//! the first record's payload.
//!
//! `cargo run --example record_demo -- OUT_DIR`

use std::path::PathBuf;

use relgate::record::keys::{keygen, Signer, TrustedKeys, PRIVATE_KEY_FILE};
use relgate::record::ledger::{open_ledger, LedgerOptions, LedgerSource};
use relgate::record::statement::{
    ArtifactRef, Decision, EvidenceDigest, GitInfo, ManifestSummary, Owner, PolicyRef,
    PullRequestInfo, RecordInput, SloReading,
};
use relgate::record::verify::verify_ledger;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: record_demo OUT_DIR")?,
    );
    let keys_dir = out.join("keys");
    let key_id = keygen(&keys_dir)?; // relgate keygen --out DIR
    println!("key id {key_id}");

    // relgate record --key FILE
    let signer = Signer::from_file(&keys_dir.join(PRIVATE_KEY_FILE))?;
    let source = LedgerSource::Dir(out.join("ledger"));
    let mut ledger = open_ledger(&source, LedgerOptions::default())?;
    for (version, decision) in [("17", Decision::Fail), ("18", Decision::Pass)] {
        let receipt = ledger.append(&demo_input(version, decision), &signer)?;
        println!("appended {} (seq {})", receipt.file, receipt.seq);
    }

    // relgate verify --keys DIR (the directory may only hold public keys)
    std::fs::remove_file(keys_dir.join(PRIVATE_KEY_FILE))?;
    let trusted = TrustedKeys::load_dir(&keys_dir)?;
    let report = verify_ledger(&source, &trusted, None);
    println!("{}", serde_json::to_string_pretty(&report)?);

    let first = std::fs::read_dir(out.join("ledger/records"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .min()
        .ok_or("no record")?;
    let envelope = relgate::record::dsse::Envelope::from_slice(&std::fs::read(&first)?)?;
    let payload: serde_json::Value = serde_json::from_slice(&envelope.decode_payload()?)?;
    println!("{}", serde_json::to_string_pretty(&payload)?);
    std::process::exit(report.exit_code());
}

fn demo_input(version: &str, decision: Decision) -> RecordInput {
    let failed = decision != Decision::Pass;
    RecordInput {
        manifest_path: "releases/answer.yaml".into(),
        manifest_sha256: format!("sha256:{}", "3b".repeat(32)),
        artifact: Some(ArtifactRef {
            name: "prompts/answer.prompt".into(),
            sha256: "9f".repeat(32),
        }),
        decision,
        findings: if failed {
            vec![serde_json::json!({
                "rule": "PII-RETENTION", "severity": "deny", "policy": "relgate.pii",
                "message": "sink langfuse keeps redacted_content for 45 days; the limit is 30",
                "path": "spec.logging.sinks[0].retention_days", "line": 41,
                "remediation": "set retention_days to 30 or less"
            })]
        } else {
            vec![]
        },
        manifest: ManifestSummary {
            kind: "PromptRelease".into(),
            name: "support-answer".into(),
            version: version.into(),
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
            candidate: Some(version.into()),
        },
        git: GitInfo {
            repo: "https://github.com/acme/assistants".into(),
            commit: "4f2c9a1e0b7d3c5a8e6f1d2b3c4a5e6f7a8b9c0d".into(),
            git_ref: Some("refs/heads/main".into()),
        },
        changed_in: Vec::new(),
        pull_request: Some(PullRequestInfo {
            number: 512,
            author: "dana".into(),
            approvers: vec!["bob".into(), "erin".into()],
            merged_by: Some("bob".into()),
        }),
        slo_readings: vec![SloReading {
            name: Some("answer-availability".into()),
            query: "slo:period_error_budget_remaining:ratio{sloth_service=\"support-bot\"}".into(),
            time: "2026-01-31T11:59:30Z".into(),
            value: Some(0.42),
        }],
        ci_run_url: Some("https://github.com/acme/assistants/actions/runs/9001".into()),
        evidence: vec![EvidenceDigest {
            uri: "evals/answer-v17.json".into(),
            sha256: "5e".repeat(32),
        }],
        policy: PolicyRef {
            uri: "relgate:builtin@0.1.0".into(),
            sha256: "c1".repeat(32),
        },
        bundles: Vec::new(),
        verifier_version: env!("CARGO_PKG_VERSION").into(),
        time_verified: "2026-01-31T12:00:00Z".into(),
    }
}
