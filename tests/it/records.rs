//! Change records and the ledger, end to end: real git repositories and directories in temp
//! dirs, real Ed25519 keys. A tamper matrix (each case on the git and the directory backend),
//! hostile input, independent verification with `openssl` and Python `securesystemslib`, and
//! concurrent appenders (threads and processes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use git2::{Oid, Repository, Signature as GitSig};
use relgate::record::dsse::{self, Envelope};
use relgate::record::keys::{self, Signer, TrustedKeys};
use relgate::record::ledger::{
    shard_name, DirLedger, GitLedger, Ledger, LedgerOptions, LedgerSource, CHECKPOINT_FILE,
    DEFAULT_BRANCH, STATE_FILE,
};
use relgate::record::statement::{
    ArtifactRef, Decision, EvidenceDigest, GitInfo, ManifestSummary, Owner, PolicyRef,
    PullRequestInfo, RecordInput, SloReading,
};
use relgate::record::verify::{verify_ledger, ProblemKind, VerifyReport, VerifyStatus};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

const N: u64 = 50;
const REF: &str = "refs/heads/relgate/records";

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn sha_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// A varied, deterministic record input for release number `i`.
fn input(i: u64) -> RecordInput {
    let names = [
        "support-answer",
        "support-ranker",
        "triage prompt/v2",
        "ÜberModel",
    ];
    let name = names[(i % names.len() as u64) as usize];
    let decision = match i % 3 {
        0 => Decision::Fail,
        1 => Decision::Pass,
        _ => Decision::Error,
    };
    RecordInput {
        manifest_path: format!("releases/{}.yaml", i % 7),
        manifest_sha256: format!("sha256:{}", sha_hex(format!("manifest {i}").as_bytes())),
        artifact: Some(ArtifactRef {
            name: format!("models:/support-ranker/{i}"),
            sha256: sha_hex(format!("artifact {i}").as_bytes()),
        }),
        decision,
        findings: if decision == Decision::Pass {
            vec![]
        } else {
            vec![serde_json::json!({
                "rule": "PII-RETENTION", "severity": "deny", "policy": "relgate.pii",
                "message": "sink langfuse keeps redacted_content 45 days (max 30)",
                "path": "spec.logging.sinks[0].retention_days", "line": 41
            })]
        },
        manifest: ManifestSummary {
            kind: if i % 2 == 0 {
                "PromptRelease"
            } else {
                "ModelRelease"
            }
            .into(),
            name: name.into(),
            version: format!("{}", 100 + i),
            service: Some("support-bot".into()),
            environment: Some("production".into()),
            tier: Some((i % 4) as u8),
            change_type: Some("feature".into()),
            owner: Some(Owner {
                team: Some("assistants".into()),
                contact: Some("dana@example.com".into()),
            }),
            ticket: Some(format!("AIR-{i}")),
            baseline: Some(format!("{}", 99 + i)),
            candidate: Some(format!("{}", 100 + i)),
        },
        git: GitInfo {
            repo: "https://git.example.com/acme/assistants".into(),
            commit: sha_hex(format!("commit {i}").as_bytes())[..40].to_owned(),
            git_ref: Some("refs/heads/main".into()),
        },
        changed_in: Vec::new(),
        pull_request: Some(PullRequestInfo {
            number: 1000 + i,
            author: "dana".into(),
            approvers: vec!["bob".into(), "erin".into()],
            merged_by: Some("bob".into()),
        }),
        slo_readings: vec![SloReading {
            name: Some("answer-availability".into()),
            query: "slo:period_error_budget_remaining:ratio{sloth_service=\"support-bot\"}".into(),
            time: "2026-01-31T11:59:00Z".into(),
            value: if i % 5 == 0 { None } else { Some(0.42) },
        }],
        ci_run_url: Some(format!("https://ci.example.com/runs/{i}")),
        evidence: vec![EvidenceDigest {
            uri: format!("evals/answer-v{i}.json"),
            sha256: sha_hex(format!("eval {i}").as_bytes()),
        }],
        policy: PolicyRef {
            uri: "relgate:builtin@0.1.0".into(),
            sha256: sha_hex(b"policy bundle"),
        },
        bundles: Vec::new(),
        verifier_version: "0.1.0".into(),
        time_verified: "2026-01-31T12:00:00Z".into(),
    }
}

fn signer() -> Signer {
    Signer::from_seed([0x11; 32])
}

fn attacker() -> Signer {
    Signer::from_seed([0x66; 32])
}

fn trusted() -> TrustedKeys {
    let mut k = TrustedKeys::new();
    k.insert(signer().verifying_key());
    k
}

/// A repository with one commit on `main` (a work tree and index the ledger must not touch).
fn init_repo(path: &Path) -> Repository {
    let repo = Repository::init(path).expect("git init");
    std::fs::write(path.join("README.md"), "demo\n").expect("write");
    let mut index = repo.index().expect("index");
    index.add_path(Path::new("README.md")).expect("add");
    index.write().expect("index write");
    let tree_id = index.write_tree().expect("write tree");
    {
        let tree = repo.find_tree(tree_id).expect("tree");
        let sig = GitSig::now("dev", "dev@example.com").expect("sig");
        repo.commit(Some("HEAD"), &sig, &sig, "init", &tree, &[])
            .expect("commit");
    }
    repo
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Git,
    Dir,
}

struct Fixture {
    _tmp: TempDir,
    path: PathBuf,
    backend: Backend,
    /// CHECKPOINT text after each append, index = size.
    checkpoints: Vec<String>,
}

impl Fixture {
    fn new(backend: Backend, n: u64) -> Fixture {
        Fixture::with_inputs(backend, (1..=n).map(input).collect())
    }

    fn with_inputs(backend: Backend, inputs: Vec<RecordInput>) -> Fixture {
        let tmp = TempDir::new().expect("tempdir");
        let path = tmp.path().join(match backend {
            Backend::Git => "repo",
            Backend::Dir => "ledger",
        });
        if backend == Backend::Git {
            init_repo(&path);
        }
        let mut fx = Fixture {
            _tmp: tmp,
            path,
            backend,
            checkpoints: vec![String::new()],
        };
        let mut ledger = fx.ledger();
        let s = signer();
        for inp in &inputs {
            let receipt = ledger.append(inp, &s).expect("append");
            fx.checkpoints.push(receipt.checkpoint);
        }
        fx
    }

    fn ledger(&self) -> Box<dyn Ledger> {
        match self.backend {
            Backend::Git => Box::new(GitLedger::open(&self.path).expect("open git ledger")),
            Backend::Dir => Box::new(DirLedger::open(&self.path).expect("open dir ledger")),
        }
    }

    fn source(&self) -> LedgerSource {
        match self.backend {
            Backend::Git => LedgerSource::git_default(&self.path),
            Backend::Dir => LedgerSource::Dir(self.path.clone()),
        }
    }

    fn verify(&self, old: Option<&str>) -> VerifyReport {
        verify_ledger(&self.source(), &trusted(), old)
    }

    fn files(&self) -> Files {
        match self.backend {
            Backend::Git => git_files(&self.path),
            Backend::Dir => dir_files(&self.path),
        }
    }

    /// Replaces the ledger's content: a new commit on top of the branch (git) or rewritten
    /// files (directory).
    fn set_files(&self, files: &Files) {
        match self.backend {
            Backend::Git => {
                let repo = Repository::open(&self.path).expect("open");
                let head = repo.refname_to_id(REF).expect("ledger ref");
                let commit = commit_files(&repo, files, Some(head));
                repo.reference(REF, commit, true, "tamper")
                    .expect("move ref");
            }
            Backend::Dir => set_dir_files(&self.path, files),
        }
    }

    fn tamper(&self, f: impl FnOnce(&mut Files)) {
        let mut files = self.files();
        f(&mut files);
        self.set_files(&files);
    }
}

use crate::support::ledger::Files;

fn git_files(repo_path: &Path) -> Files {
    crate::support::ledger::ledger_files(repo_path, REF)
}

/// Writes the tree holding `files` (paths with `/`), nested directories included.
fn write_tree(repo: &Repository, files: &[(&str, Oid)]) -> Oid {
    let mut builder = repo.treebuilder(None).expect("tb");
    let mut dirs: BTreeMap<&str, Vec<(&str, Oid)>> = BTreeMap::new();
    for (path, oid) in files {
        match path.split_once('/') {
            Some((dir, rest)) => dirs.entry(dir).or_default().push((rest, *oid)),
            None => {
                builder.insert(path, *oid, 0o100_644).expect("insert");
            }
        }
    }
    for (dir, entries) in dirs {
        builder
            .insert(dir, write_tree(repo, &entries), 0o040_000)
            .expect("insert");
    }
    builder.write().expect("write")
}

fn commit_files(repo: &Repository, files: &Files, parent: Option<Oid>) -> Oid {
    let blobs: Vec<(&str, Oid)> = files
        .iter()
        .map(|(path, bytes)| (path.as_str(), repo.blob(bytes).expect("blob")))
        .collect();
    let top = write_tree(repo, &blobs);
    let tree = repo.find_tree(top).expect("tree");
    let sig = GitSig::now("mallory", "mallory@example.com").expect("sig");
    let parents: Vec<git2::Commit<'_>> = parent
        .map(|p| repo.find_commit(p).expect("parent"))
        .into_iter()
        .collect();
    let refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
    repo.commit(None, &sig, &sig, "edit ledger", &tree, &refs)
        .expect("commit")
}

fn dir_files(dir: &Path) -> Files {
    let mut out = Files::new();
    for name in [CHECKPOINT_FILE, STATE_FILE] {
        if let Ok(b) = std::fs::read(dir.join(name)) {
            out.insert(name.to_owned(), b);
        }
    }
    for e in walkdir::WalkDir::new(dir.join("records")) {
        let e = e.expect("entry");
        if e.file_type().is_file() {
            let rel = e.path().strip_prefix(dir).expect("inside");
            out.insert(
                rel.to_string_lossy().replace('\\', "/"),
                std::fs::read(e.path()).expect("read"),
            );
        }
    }
    out
}

fn set_dir_files(dir: &Path, files: &Files) {
    std::fs::remove_dir_all(dir.join("records")).expect("rm records");
    std::fs::create_dir(dir.join("records")).expect("mkdir records");
    for name in [CHECKPOINT_FILE, STATE_FILE] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    for (path, bytes) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }
}

/// The record file holding seq `seq` (by file name).
fn file_of(files: &Files, seq: u64) -> String {
    let prefix = format!("records/{}/{seq:06}-", shard_name(seq));
    files
        .keys()
        .find(|k| k.starts_with(&prefix))
        .cloned()
        .unwrap_or_else(|| panic!("no record {seq}"))
}

fn envelope(bytes: &[u8]) -> Envelope {
    Envelope::from_slice(bytes).expect("envelope")
}

fn payload_json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(&envelope(bytes).decode_payload().expect("payload")).expect("json")
}

/// Serializes `statement` (field order preserved) and signs it with `by`.
fn resign(statement: &serde_json::Value, by: &Signer) -> Vec<u8> {
    let payload = serde_json::to_vec(statement).expect("serialize");
    dsse::sign_payload(&payload, by).to_json()
}

fn change_mut(v: &mut serde_json::Value) -> &mut serde_json::Value {
    &mut v["predicate"]["https://relgate.dev/change/v1"]
}

fn describe(report: &VerifyReport) -> String {
    serde_json::to_string_pretty(&report.problems).unwrap_or_default()
}

/// Asserts a problem of `kind` naming record `seq` exists.
fn assert_problem(report: &VerifyReport, kind: ProblemKind, seq: Option<u64>) {
    assert!(
        report.problems_of(kind).any(|p| p.seq() == seq),
        "expected {kind:?} naming seq {seq:?}; problems:\n{}",
        describe(report)
    );
}

/// Asserts a problem of `kind` naming a file that contains `file`.
fn assert_problem_file(report: &VerifyReport, kind: ProblemKind, file: &str) {
    assert!(
        report
            .problems_of(kind)
            .any(|p| p.file().is_some_and(|f| f.contains(file))),
        "expected {kind:?} naming {file}; problems:\n{}",
        describe(report)
    );
}

fn assert_tampered(report: &VerifyReport) {
    assert_eq!(
        report.status,
        VerifyStatus::Tampered,
        "{}",
        describe(report)
    );
    assert_eq!(report.exit_code(), 1);
}

// ---------------------------------------------------------------------------------------------
// Intact ledgers
// ---------------------------------------------------------------------------------------------

#[test]
fn intact_git_ledger_verifies_and_leaves_work_tree_alone() {
    let fx = Fixture::new(Backend::Git, N);
    let report = fx.verify(Some(&fx.checkpoints[20]));
    assert_eq!(report.status, VerifyStatus::Intact, "{}", describe(&report));
    assert_eq!(report.exit_code(), 0);
    assert_eq!(report.records, N);
    assert_eq!(report.verified_signatures, N);
    assert_eq!(report.commits_checked, N);
    assert!(report.problems.is_empty(), "{}", describe(&report));
    let consistency = report.consistency.as_ref().expect("consistency checked");
    assert!(consistency.verified && consistency.old_size == 20 && consistency.new_size == N);
    assert_eq!(
        report.checkpoint_text.as_deref(),
        Some(fx.checkpoints[N as usize].as_str())
    );

    // No checkout: HEAD, index and work tree are as before.
    let repo = Repository::open(&fx.path).expect("open");
    let head = repo.head().expect("head");
    assert_ne!(head.name().ok(), Some(REF));
    assert_eq!(
        head.peel_to_commit().expect("commit").message().ok(),
        Some("init")
    );
    let statuses = repo.statuses(None).expect("status");
    assert!(statuses.is_empty(), "work tree or index changed");
    let files: Vec<String> = std::fs::read_dir(&fx.path)
        .expect("ls")
        .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !files.iter().any(|f| f == "records" || f == CHECKPOINT_FILE),
        "{files:?}"
    );
    // One commit per record, each a child of the previous.
    let head = repo
        .find_reference(REF)
        .expect("ref")
        .peel_to_commit()
        .expect("commit");
    let mut count = 1;
    let mut c = head;
    while let Ok(p) = c.parent(0) {
        assert_eq!(c.parent_count(), 1);
        count += 1;
        c = p;
    }
    assert_eq!(count, N);
}

#[test]
fn intact_dir_ledger_verifies() {
    let fx = Fixture::new(Backend::Dir, N);
    let report = fx.verify(Some(&fx.checkpoints[33]));
    assert_eq!(report.status, VerifyStatus::Intact, "{}", describe(&report));
    assert_eq!(report.records, N);
    assert_eq!(report.verified_signatures, N);
    assert!(report.problems.is_empty(), "{}", describe(&report));
    assert!(report.consistency.as_ref().is_some_and(|c| c.verified));
    // For export: the parsed payloads in ledger order.
    let with_payloads = relgate::record::verify::verify_ledger_with(
        &fx.source(),
        &trusted(),
        None,
        &relgate::record::verify::VerifyOptions {
            keep_payloads: true,
            strict_signatures: true,
            ..Default::default()
        },
    );
    assert!(with_payloads.is_intact());
    assert_eq!(with_payloads.payloads.len(), N as usize);
    for (i, p) in with_payloads.payloads.iter().enumerate() {
        assert!(p.signature_ok);
        assert_eq!(p.record.seq, Some(i as u64 + 1));
        assert_eq!(
            p.payload["predicate"]["https://relgate.dev/change/v1"]["seq"],
            i as u64 + 1
        );
    }
}

#[test]
fn record_has_the_documented_shape() {
    let fx = Fixture::new(Backend::Dir, 2);
    let files = fx.files();
    let first = file_of(&files, 1);
    assert_eq!(first, "records/000/000001-support-ranker-101.dsse.json");
    let env = envelope(&files[&first]);
    assert_eq!(env.payload_type, "application/vnd.in-toto+json");
    assert_eq!(env.signatures.len(), 1);
    assert_eq!(env.signatures[0].keyid, signer().key_id().to_string());
    let v = payload_json(&files[&first]);
    assert_eq!(v["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(
        v["predicateType"],
        "https://slsa.dev/verification_summary/v1"
    );
    assert_eq!(v["subject"][0]["name"], "releases/1.yaml");
    assert_eq!(v["subject"].as_array().map(Vec::len), Some(2));
    let p = &v["predicate"];
    assert_eq!(p["verifier"]["id"], "https://relgate.dev/verifier/v1");
    assert_eq!(p["verifier"]["version"]["relgate"], "0.1.0");
    assert_eq!(p["verificationResult"], "PASSED");
    assert_eq!(p["verifiedLevels"][0], "RELGATE_RELEASE_APPROVED");
    assert!(p["resourceUri"]
        .as_str()
        .is_some_and(|u| u.contains("releases/1.yaml@")));
    let c = &p["https://relgate.dev/change/v1"];
    assert_eq!(c["seq"], 1);
    assert_eq!(c["prev"], "0".repeat(64));
    assert_eq!(c["decision"], "pass");
    assert_eq!(c["manifest"]["name"], "support-ranker");
    assert_eq!(c["pull_request"]["approvers"][1], "erin");
    let keys: Vec<&str> = c
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "seq",
            "prev",
            "decision",
            "findings",
            "manifest",
            "git",
            "pull_request",
            "slo_readings",
            "ci_run_url",
            "evidence"
        ]
    );
    // Record 2 is a failed (Error) decision and links to record 1.
    let second = file_of(&files, 2);
    let v2 = payload_json(&files[&second]);
    assert_eq!(v2["predicate"]["verificationResult"], "FAILED");
    let p1 = envelope(&files[&first]).decode_payload().expect("payload");
    assert_eq!(
        v2["predicate"]["https://relgate.dev/change/v1"]["prev"],
        sha_hex(&p1)
    );
    // Names are sanitized for file names.
    let fx = Fixture::with_inputs(Backend::Dir, vec![input(2), input(3)]);
    let names: Vec<String> = fx.files().keys().cloned().collect();
    assert!(
        names.contains(&"records/000/000002-_berModel-103.dsse.json".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"records/000/000001-triage_prompt_v2-102.dsse.json".to_owned()),
        "{names:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Tamper matrix: each case on both backends
// ---------------------------------------------------------------------------------------------

macro_rules! tamper_case {
    ($name:ident, |$fx:ident, $files:ident| $mutate:block, |$report:ident, $backend:ident| $check:block) => {
        mod $name {
            use super::*;

            fn run(backend: Backend) {
                let $fx = Fixture::new(backend, N);
                $fx.tamper(|$files: &mut Files| $mutate);
                let $report = $fx.verify(None);
                let $backend = backend;
                assert_tampered(&$report);
                $check
            }

            #[test]
            fn git() {
                run(Backend::Git);
            }

            #[test]
            fn dir() {
                run(Backend::Dir);
            }
        }
    };
}

tamper_case!(
    payload_byte_flipped,
    |fx, files| {
        let f = file_of(files, 20);
        let mut env = envelope(&files[&f]);
        let mut payload = env.decode_payload().expect("payload");
        // Flip a byte inside the manifest name so the JSON stays valid.
        let pos = payload
            .windows(7)
            .position(|w| w == b"support")
            .expect("name in payload");
        payload[pos] ^= 0x01;
        env.payload = B64.encode(&payload);
        files.insert(f, env.to_json());
    },
    |report, backend| {
        assert_problem(&report, ProblemKind::BadSignature, Some(20));
        assert_problem(&report, ProblemKind::PrevMismatch, Some(21));
        assert_problem_file(
            &report,
            ProblemKind::CheckpointRootMismatch,
            CHECKPOINT_FILE,
        );
        if backend == Backend::Git {
            assert_problem(&report, ProblemKind::HistoryRecordChanged, Some(20));
        }
    }
);

tamper_case!(
    signature_replaced,
    |fx, files| {
        let f = file_of(files, 20);
        let mut env = envelope(&files[&f]);
        // A real signature by the trusted key, but over another record.
        let other = envelope(&files[&file_of(files, 21)]);
        env.signatures[0].sig = other.signatures[0].sig.clone();
        files.insert(f, env.to_json());
    },
    |report, backend| {
        assert_problem(&report, ProblemKind::BadSignature, Some(20));
        assert_eq!(report.verified_signatures, N - 1);
        if backend == Backend::Git {
            assert_problem(&report, ProblemKind::HistoryRecordChanged, Some(20));
        }
    }
);

tamper_case!(
    signed_by_untrusted_key,
    |fx, files| {
        let f = file_of(files, 20);
        let v = payload_json(&files[&f]);
        files.insert(f, resign(&v, &attacker()));
    },
    |report, backend| {
        assert_problem(&report, ProblemKind::UntrustedKey, Some(20));
        let p = report
            .problems_of(ProblemKind::UntrustedKey)
            .next()
            .expect("problem");
        assert!(
            p.message.contains(attacker().key_id().as_str()),
            "{}",
            p.message
        );
        let _ = backend;
    }
);

tamper_case!(
    record_deleted_middle,
    |fx, files| {
        let f = file_of(files, 25);
        files.remove(&f);
    },
    |report, backend| {
        assert_problem(&report, ProblemKind::SeqGap, Some(25));
        if backend == Backend::Git {
            assert_problem(&report, ProblemKind::HistoryRecordRemoved, Some(25));
        }
    }
);

tamper_case!(
    record_deleted_last,
    |fx, files| {
        let f = file_of(files, N);
        files.remove(&f);
    },
    |report, backend| {
        assert_problem(&report, ProblemKind::CheckpointSizeMismatch, Some(N));
        if backend == Backend::Git {
            assert_problem(&report, ProblemKind::HistoryRecordRemoved, Some(N));
        }
    }
);

tamper_case!(
    records_swapped,
    |fx, files| {
        let a = file_of(files, 10);
        let b = file_of(files, 11);
        let (ba, bb) = (files[&a].clone(), files[&b].clone());
        files.insert(a, bb);
        files.insert(b, ba);
    },
    |report, backend| {
        assert_problem(&report, ProblemKind::SeqOutOfOrder, Some(11));
        assert_problem(&report, ProblemKind::SeqOutOfOrder, Some(10));
        assert_problem(&report, ProblemKind::FileSeqMismatch, Some(11));
        assert_problem_file(
            &report,
            ProblemKind::CheckpointRootMismatch,
            CHECKPOINT_FILE,
        );
        if backend == Backend::Git {
            assert_problem(&report, ProblemKind::HistoryRecordChanged, Some(10));
            assert_problem(&report, ProblemKind::HistoryRecordChanged, Some(11));
        }
    }
);

tamper_case!(
    record_duplicated,
    |fx, files| {
        let f = file_of(files, 30);
        let bytes = files[&f].clone();
        files.insert("records/000/000030-zz-copy.dsse.json".into(), bytes);
    },
    |report, backend| {
        assert_problem(&report, ProblemKind::SeqDuplicate, Some(30));
        assert_problem_file(&report, ProblemKind::SeqDuplicate, "000030-zz-copy");
        if backend == Backend::Git {
            assert_problem(&report, ProblemKind::HistoryOutOfOrder, Some(30));
        }
    }
);

tamper_case!(
    seq_gap,
    |fx, files| {
        // An insider with the signing key renumbers records 40.. to 41.. and re-signs them with
        // an intact prev chain: only the gap at 40 gives it away.
        let tail: Vec<(String, Vec<u8>)> = (40..=N)
            .map(|s| {
                let f = file_of(files, s);
                let bytes = files.remove(&f).expect("present");
                (f, bytes)
            })
            .collect();
        let mut prev = sha_hex(
            &envelope(&files[&file_of(files, 39)])
                .decode_payload()
                .expect("p"),
        );
        for (f, bytes) in tail {
            let mut v = payload_json(&bytes);
            let seq = v["predicate"]["https://relgate.dev/change/v1"]["seq"]
                .as_u64()
                .expect("seq")
                + 1;
            change_mut(&mut v)["seq"] = seq.into();
            change_mut(&mut v)["prev"] = prev.clone().into();
            let name = f.split_once('-').map(|(_, rest)| rest).expect("dash");
            let env = resign(&v, &signer());
            prev = sha_hex(&envelope(&env).decode_payload().expect("p"));
            files.insert(format!("records/{}/{seq:06}-{name}", shard_name(seq)), env);
        }
    },
    |report, backend| {
        assert_problem(&report, ProblemKind::SeqGap, Some(40));
        assert_eq!(
            report.problems_of(ProblemKind::PrevMismatch).count(),
            0,
            "{}",
            describe(&report)
        );
        assert_eq!(report.problems_of(ProblemKind::SeqOutOfOrder).count(), 0);
        let _ = backend;
    }
);

tamper_case!(
    prev_broken,
    |fx, files| {
        let f = file_of(files, 20);
        let mut v = payload_json(&files[&f]);
        change_mut(&mut v)["prev"] = "ab".repeat(32).into();
        files.insert(f, resign(&v, &signer()));
    },
    |report, backend| {
        assert_problem(&report, ProblemKind::PrevMismatch, Some(20));
        assert_eq!(
            report.verified_signatures, N,
            "the insider's signature is valid"
        );
        let _ = backend;
    }
);

tamper_case!(
    forged_record_inserted,
    |fx, files| {
        // A forged record 26 (prev linked to 25), signed with the forger's own key.
        let mut v = payload_json(&files[&file_of(files, 26)]);
        let p25 = envelope(&files[&file_of(files, 25)])
            .decode_payload()
            .expect("payload");
        change_mut(&mut v)["prev"] = sha_hex(&p25).into();
        change_mut(&mut v)["decision"] = "pass".into();
        files.insert(
            "records/000/000026-forged-1.dsse.json".into(),
            resign(&v, &attacker()),
        );
    },
    |report, backend| {
        assert_problem_file(&report, ProblemKind::UntrustedKey, "000026-forged-1");
        assert_problem(&report, ProblemKind::UntrustedKey, Some(26));
        assert_problem(&report, ProblemKind::SeqDuplicate, Some(26));
        let _ = backend;
    }
);

tamper_case!(
    checkpoint_rolled_back,
    |fx, files| {
        files.insert(
            CHECKPOINT_FILE.into(),
            fx.checkpoints[30].clone().into_bytes(),
        );
    },
    |report, backend| {
        assert_problem(&report, ProblemKind::CheckpointStale, Some(31));
        assert_problem_file(&report, ProblemKind::CheckpointStale, CHECKPOINT_FILE);
        let _ = backend;
    }
);

tamper_case!(
    checkpoint_from_other_ledger,
    |fx, files| {
        // Another ledger (different first record) signed with the same trusted key, same size.
        let other = Fixture::with_inputs(Backend::Dir, (2..=N + 1).map(input).collect());
        files.insert(
            CHECKPOINT_FILE.into(),
            other.checkpoints[N as usize].clone().into_bytes(),
        );
    },
    |report, backend| {
        assert_problem_file(
            &report,
            ProblemKind::CheckpointOriginMismatch,
            CHECKPOINT_FILE,
        );
        let _ = backend;
    }
);

tamper_case!(
    foreign_file_in_records,
    |fx, files| {
        files.insert("records/notes.txt".into(), b"hello".to_vec());
    },
    |report, backend| {
        assert_problem_file(&report, ProblemKind::ForeignFile, "records/notes.txt");
        if backend == Backend::Git {
            assert_problem_file(
                &report,
                ProblemKind::HistoryUnexpectedFile,
                "records/notes.txt",
            );
        }
    }
);

tamper_case!(
    record_moved_to_another_shard,
    |fx, files| {
        let f = file_of(files, 20);
        let bytes = files.remove(&f).expect("present");
        let name = f.rsplit('/').next().expect("name").to_owned();
        files.insert(format!("records/001/{name}"), bytes);
    },
    |report, backend| {
        assert_problem(&report, ProblemKind::WrongShard, Some(20));
        assert_problem_file(&report, ProblemKind::WrongShard, "records/001/000020-");
        if backend == Backend::Git {
            assert_problem(&report, ProblemKind::HistoryRecordRemoved, Some(20));
            assert_problem(&report, ProblemKind::HistoryOutOfOrder, Some(20));
        }
    }
);

tamper_case!(
    record_outside_any_shard,
    |fx, files| {
        // A flat layout: a record directly under records/.
        let f = file_of(files, 7);
        let bytes = files.remove(&f).expect("present");
        let name = f.rsplit('/').next().expect("name").to_owned();
        files.insert(format!("records/{name}"), bytes);
    },
    |report, backend| {
        assert_problem(&report, ProblemKind::WrongShard, Some(7));
        if backend == Backend::Git {
            assert_problem_file(
                &report,
                ProblemKind::HistoryUnexpectedFile,
                "records/000007-",
            );
            assert_problem(&report, ProblemKind::HistoryRecordRemoved, Some(7));
        }
    }
);

tamper_case!(
    foreign_directory_in_records,
    |fx, files| {
        files.insert("records/misc/readme.txt".into(), b"hello".to_vec());
        files.insert("records/000/sub/x.txt".into(), b"hello".to_vec());
    },
    |report, backend| {
        assert_problem_file(&report, ProblemKind::ForeignFile, "records/misc");
        assert_problem_file(&report, ProblemKind::ForeignFile, "records/000/sub");
        if backend == Backend::Git {
            assert_problem_file(&report, ProblemKind::HistoryUnexpectedFile, "records/misc");
            assert_problem_file(
                &report,
                ProblemKind::HistoryUnexpectedFile,
                "records/000/sub",
            );
        }
    }
);

/// A ledger across the first shard boundary (records 999, 1000, 1001): records land in
/// `records/000/` and `records/001/`, verify and the history walk agree, and a tampered record
/// in the second shard is still named.
fn across_shards(backend: Backend) {
    let tmp = TempDir::new().expect("tmp");
    let path = tmp.path().join("ledger");
    let options = LedgerOptions {
        fsync: false,
        ..Default::default()
    };
    let (mut ledger, source): (Box<dyn Ledger>, LedgerSource) = match backend {
        Backend::Git => {
            init_repo(&path);
            (
                Box::new(GitLedger::open_with(&path, DEFAULT_BRANCH, options).expect("open")),
                LedgerSource::git_default(&path),
            )
        }
        Backend::Dir => (
            Box::new(DirLedger::open_with(&path, options).expect("open")),
            LedgerSource::Dir(path.clone()),
        ),
    };
    let s = signer();
    let mut last = None;
    for i in 1..=1003 {
        last = Some(ledger.append(&input(i), &s).expect("append"));
    }
    let last = last.expect("appended");
    assert_eq!(last.seq, 1003);
    assert!(
        last.file.starts_with("records/001/001003-"),
        "{}",
        last.file
    );
    let report = verify_ledger(&source, &trusted(), None);
    assert!(report.is_intact(), "{}", describe(&report));
    assert_eq!(report.records, 1003);
    let fx = Fixture {
        _tmp: tmp,
        path,
        backend,
        checkpoints: Vec::new(),
    };
    let files = fx.files();
    assert!(file_of(&files, 999).starts_with("records/000/000999-"));
    assert!(file_of(&files, 1000).starts_with("records/001/001000-"));
    if backend == Backend::Git {
        assert_eq!(report.commits_checked, 1003);
        // The first shard's tree object is untouched by appends to the second.
        let repo = Repository::open(&fx.path).expect("open");
        let shard_at = |rev: &str| {
            repo.revparse_single(&format!("{rev}:records/000"))
                .expect("shard")
                .id()
        };
        // REF~4 is record 999, the last one in records/000/; REF~5 is record 998.
        assert_eq!(shard_at(REF), shard_at(&format!("{REF}~4")));
        assert_ne!(shard_at(REF), shard_at(&format!("{REF}~5")));
    }
    fx.tamper(|files| {
        let f = file_of(files, 1001);
        let mut env = envelope(&files[&f]);
        env.signatures[0].sig = B64.encode([7u8; 64]);
        files.insert(f, env.to_json());
    });
    let report = verify_ledger(&source, &trusted(), None);
    assert_tampered(&report);
    assert_problem(&report, ProblemKind::BadSignature, Some(1001));
    if backend == Backend::Git {
        assert_problem(&report, ProblemKind::HistoryRecordChanged, Some(1001));
        assert_eq!(
            report
                .problems_of(ProblemKind::HistoryRecordChanged)
                .count(),
            1,
            "{}",
            describe(&report)
        );
    }
}

#[test]
fn ledger_across_shards_git() {
    across_shards(Backend::Git);
}

#[test]
fn ledger_across_shards_dir() {
    across_shards(Backend::Dir);
}

#[test]
fn git_branch_force_rewritten_without_a_record() {
    // An insider holding the key rebuilds the branch without record 20 (renumbered, re-signed:
    // self-consistent) and force-moves the ref. The reflog and the auditor's old checkpoint
    // expose it.
    let fx = Fixture::new(Backend::Git, N);
    let kept_checkpoint = fx.checkpoints[N as usize].clone();
    let repo = Repository::open(&fx.path).expect("open");
    {
        let opts = LedgerOptions::default();
        let mut rebuilt = GitLedger::open_with(&fx.path, "rewrite", opts).expect("open");
        for i in (1..=N + 2).filter(|&i| i != 20) {
            rebuilt.append(&input(i), &signer()).expect("append");
        }
    }
    let new_head = repo
        .refname_to_id("refs/heads/rewrite")
        .expect("rewrite ref");
    repo.reference(REF, new_head, true, "push --force")
        .expect("force");
    repo.find_reference("refs/heads/rewrite")
        .expect("ref")
        .delete()
        .expect("delete");

    // The rewritten ledger is internally consistent...
    let no_history = relgate::record::verify::verify_ledger_with(
        &fx.source(),
        &trusted(),
        None,
        &relgate::record::verify::VerifyOptions {
            check_reflog: false,
            ..Default::default()
        },
    );
    assert_eq!(
        no_history.status,
        VerifyStatus::Intact,
        "{}",
        describe(&no_history)
    );
    // ...but the reflog shows the forced update and names the first lost record,
    let report = fx.verify(Some(&kept_checkpoint));
    assert_tampered(&report);
    assert_problem(&report, ProblemKind::HistoryRewritten, Some(20));
    // and the auditor's kept checkpoint is not consistent with the new ledger.
    assert_problem_file(&report, ProblemKind::ConsistencyFailed, "old checkpoint");
    assert!(report.consistency.as_ref().is_some_and(|c| !c.verified));
}

/// Resets the ledger branch of `fx` to the commit before its head, then moves it back to the
/// head: (the repository, the head, the commit before it).
fn moved_back_and_forward(fx: &Fixture) -> (Repository, Oid, Oid) {
    let repo = Repository::open(&fx.path).expect("open");
    let head = repo.refname_to_id(REF).expect("head");
    let older = repo
        .find_commit(head)
        .and_then(|c| c.parent_id(0))
        .expect("parent");
    repo.reference(REF, older, true, "reset --hard HEAD~1")
        .expect("back");
    repo.reference(REF, head, true, "reset --hard ORIG_HEAD")
        .expect("forward");
    (repo, head, older)
}

#[test]
fn git_branch_moved_back_and_forward_again_is_a_forced_update() {
    // The branch is reset to an older commit of its own history and then moved back to the
    // head. Both commits of that backward move are on the branch as it stands, the old one
    // after the new one: the reflog check must not take "both on the branch" for a
    // fast-forward. Nothing is lost, so the problem names no record.
    let fx = Fixture::new(Backend::Git, 10);
    let (_, head, older) = moved_back_and_forward(&fx);
    let report = fx.verify(None);
    assert_tampered(&report);
    let rewritten: Vec<&relgate::record::verify::Problem> =
        report.problems_of(ProblemKind::HistoryRewritten).collect();
    assert_eq!(rewritten.len(), 1, "{}", describe(&report));
    assert!(
        rewritten[0]
            .message
            .contains(&format!("from {head} to {older}"))
            && rewritten[0]
                .message
                .contains("no record of the old head was lost"),
        "{}",
        describe(&report)
    );
}

#[test]
fn reflog_lines_that_are_not_entries_are_named_and_hide_no_forced_update() {
    // The reflog is read a line at a time (libgit2 holds the whole log). Lines that are not
    // entries, which libgit2 skipped without a word, are named (a warning, as a missing
    // reflog is), and the forced update after them is still found.
    let fx = Fixture::new(Backend::Git, 10);
    let (repo, _, _) = moved_back_and_forward(&fx);
    let log = repo.commondir().join("logs").join(REF);
    let entries = std::fs::read(&log).expect("reflog");
    let mut doctored = b"not a reflog entry\n".to_vec();
    // A line far longer than any entry is skipped without being held.
    doctored.extend(std::iter::repeat_n(b'x', 200_000));
    doctored.push(b'\n');
    doctored.extend(entries);
    std::fs::write(&log, doctored).expect("write reflog");

    let report = fx.verify(None);
    assert_tampered(&report);
    assert_eq!(
        report.problems_of(ProblemKind::HistoryRewritten).count(),
        1,
        "{}",
        describe(&report)
    );
    let unread: Vec<&relgate::record::verify::Problem> =
        report.problems_of(ProblemKind::NoReflog).collect();
    assert_eq!(unread.len(), 1, "{}", describe(&report));
    assert!(
        unread[0].message.contains("2 line(s)") && unread[0].message.contains("first line 1"),
        "{}",
        describe(&report)
    );
}

#[test]
fn git_branch_rewritten_by_plain_commits_is_caught_by_history() {
    // A commit that edits record 5 followed by one that restores it: the final state is
    // intact, the history is not.
    let fx = Fixture::new(Backend::Git, 10);
    let original = fx.files();
    fx.tamper(|files| {
        let f = file_of(files, 5);
        let mut v = payload_json(&files[&f]);
        change_mut(&mut v)["decision"] = "pass".into();
        files.insert(f, resign(&v, &signer()));
    });
    fx.set_files(&original);
    let report = fx.verify(None);
    assert_tampered(&report);
    assert_problem(&report, ProblemKind::HistoryRecordChanged, Some(5));
    assert_eq!(
        report
            .problems_of(ProblemKind::HistoryRecordChanged)
            .count(),
        2,
        "{}",
        describe(&report)
    );
}

#[test]
fn git_fork_merge_is_detected() {
    let fx = Fixture::new(Backend::Git, 5);
    let repo = Repository::open(&fx.path).expect("open");
    let head = repo.refname_to_id(REF).expect("ref");
    let files = fx.files();
    let side = commit_files(&repo, &files, Some(head));
    // A merge commit with two parents.
    let tree = repo.find_commit(side).expect("c").tree().expect("t");
    let sig = GitSig::now("m", "m@example.com").expect("sig");
    let a = repo.find_commit(head).expect("a");
    let b = repo.find_commit(side).expect("b");
    let merge = repo
        .commit(None, &sig, &sig, "merge", &tree, &[&a, &b])
        .expect("merge");
    repo.reference(REF, merge, true, "merge").expect("ref");
    let report = fx.verify(None);
    assert_tampered(&report);
    assert!(
        report.problems_of(ProblemKind::HistoryFork).count() == 1,
        "{}",
        describe(&report)
    );
}

#[test]
fn old_checkpoint_detects_truncation_with_resigned_checkpoint() {
    // An insider removes the last 10 records and writes a matching signed checkpoint; only the
    // auditor's older checkpoint shows the rollback.
    let fx = Fixture::new(Backend::Dir, N);
    let kept = fx.checkpoints[N as usize].clone();
    let truncated = fx.checkpoints[40].clone();
    fx.tamper(|files| {
        for s in 41..=N {
            let f = file_of(files, s);
            files.remove(&f);
        }
        files.insert(CHECKPOINT_FILE.into(), truncated.into_bytes());
        files.remove(STATE_FILE);
    });
    let without = fx.verify(None);
    assert_ne!(
        without.status,
        VerifyStatus::Tampered,
        "{}",
        describe(&without)
    );
    let report = fx.verify(Some(&kept));
    assert_tampered(&report);
    assert_problem(&report, ProblemKind::Rollback, Some(41));
}

#[test]
fn old_checkpoint_of_another_ledger_is_detected() {
    let fx = Fixture::new(Backend::Dir, 10);
    let other = Fixture::new(Backend::Dir, 3);
    let report = fx.verify(Some(&other.checkpoints[3]));
    // The other ledger's first record is the same input: give it another one.
    let other2 = Fixture::with_inputs(Backend::Dir, vec![input(7), input(8)]);
    let report2 = fx.verify(Some(&other2.checkpoints[2]));
    assert_eq!(
        report.status,
        VerifyStatus::Intact,
        "same genesis = same ledger prefix"
    );
    assert_tampered(&report2);
    assert_problem_file(&report2, ProblemKind::LedgerMismatch, "old checkpoint");
}

#[test]
fn appending_after_tampering_is_refused() {
    let fx = Fixture::new(Backend::Git, 5);
    fx.tamper(|files| {
        let f = file_of(files, 5);
        let mut env = envelope(&files[&f]);
        env.signatures[0].sig = B64.encode([0u8; 64]);
        env.payload = B64.encode(b"{}");
        files.insert(f, env.to_json());
    });
    let err = fx.ledger().append(&input(6), &signer());
    assert!(
        matches!(err, Err(relgate::record::RecordError::Inconsistent(_))),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile input
// ---------------------------------------------------------------------------------------------

fn hostile(backend: Backend, bytes: Vec<u8>, kind: ProblemKind) {
    let fx = Fixture::new(backend, 5);
    fx.tamper(|files| {
        let f = file_of(files, 3);
        files.insert(f, bytes);
    });
    let report = fx.verify(None);
    assert_tampered(&report);
    assert_problem(&report, kind, Some(3));
}

fn record_bytes(seq: u64) -> Vec<u8> {
    let fx = Fixture::new(Backend::Dir, seq);
    let files = fx.files();
    files[&file_of(&files, seq)].clone()
}

#[test]
fn hostile_truncated_json() {
    let b = record_bytes(3);
    hostile(
        Backend::Dir,
        b[..b.len() / 2].to_vec(),
        ProblemKind::InvalidJson,
    );
    hostile(
        Backend::Git,
        b[..b.len() / 2].to_vec(),
        ProblemKind::InvalidJson,
    );
}

#[test]
fn hostile_wrong_payload_type() {
    let mut env = envelope(&record_bytes(3));
    env.payload_type = "application/json".into();
    hostile(Backend::Dir, env.to_json(), ProblemKind::WrongPayloadType);
}

#[test]
fn hostile_bad_base64() {
    let mut env = envelope(&record_bytes(3));
    env.payload = "@@not base64@@".into();
    hostile(Backend::Dir, env.to_json(), ProblemKind::BadBase64);
    let mut env = envelope(&record_bytes(3));
    env.signatures[0].sig = "%%%".into();
    hostile(Backend::Git, env.to_json(), ProblemKind::BadBase64);
}

#[test]
fn hostile_non_utf8() {
    let mut b = record_bytes(3);
    b.splice(10..10, [0xff, 0xfe, 0x80]);
    hostile(Backend::Dir, b.clone(), ProblemKind::NotUtf8);
    hostile(Backend::Git, b, ProblemKind::NotUtf8);
}

#[test]
fn hostile_giant_file() {
    let giant = vec![b' '; (dsse::MAX_ENVELOPE_BYTES + 1) as usize];
    hostile(Backend::Git, giant, ProblemKind::TooLarge);
    // Directory backend: a sparse 1 GiB file is reported from its size, never read.
    let fx = Fixture::new(Backend::Dir, 5);
    let f = file_of(&fx.files(), 3);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(fx.path.join(&f))
        .expect("open");
    file.set_len(1 << 30).expect("sparse");
    let report = fx.verify(None);
    assert_tampered(&report);
    assert_problem(&report, ProblemKind::TooLarge, Some(3));
}

#[test]
fn hostile_payload_not_a_statement() {
    let env = dsse::sign_payload(b"[1,2,3]", &signer());
    hostile(Backend::Dir, env.to_json(), ProblemKind::InvalidStatement);
}

#[test]
fn hostile_empty_and_garbage_checkpoint() {
    for junk in [
        &b""[..],
        b"\xff\xfe",
        b"relgate.dev/ledger/x\n5\nAAAA\n\n\xe2\x80\x94 k AAAAAAAA\n",
    ] {
        let fx = Fixture::new(Backend::Dir, 3);
        fx.tamper(|files| {
            files.insert(CHECKPOINT_FILE.into(), junk.to_vec());
        });
        let report = fx.verify(None);
        assert_tampered(&report);
        assert_problem_file(&report, ProblemKind::CheckpointMalformed, CHECKPOINT_FILE);
    }
}

#[test]
fn unverifiable_when_no_keys_or_no_ledger() {
    let fx = Fixture::new(Backend::Dir, 2);
    let report = verify_ledger(&fx.source(), &TrustedKeys::new(), None);
    assert_eq!(report.exit_code(), 2);
    assert!(report.problems_of(ProblemKind::NoTrustedKeys).count() == 1);
    let tmp = TempDir::new().expect("tmp");
    init_repo(tmp.path());
    let report = verify_ledger(&LedgerSource::git_default(tmp.path()), &trusted(), None);
    assert_eq!(report.exit_code(), 2);
    assert!(report.problems_of(ProblemKind::SourceUnavailable).count() == 1);
    let report = verify_ledger(&fx.source(), &trusted(), Some("not a checkpoint"));
    assert_eq!(report.exit_code(), 2, "{}", describe(&report));
    assert!(
        report
            .problems_of(ProblemKind::OldCheckpointInvalid)
            .count()
            == 1
    );
}

// ---------------------------------------------------------------------------------------------
// Keys and independent verifiers
// ---------------------------------------------------------------------------------------------

fn openssl(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed to run the interop tests")
}

#[test]
fn keygen_writes_pem_files_that_openssl_reads() {
    let tmp = TempDir::new().expect("tmp");
    let dir = tmp.path().join("keys");
    let id = keys::keygen(&dir).expect("keygen");
    let private = dir.join(keys::PRIVATE_KEY_FILE);
    let public = dir.join(keys::PUBLIC_KEY_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&private)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert!(
        keys::keygen(&dir).is_err(),
        "keygen must not overwrite a key"
    );
    // OpenSSL derives the same public key from our PKCS#8 file.
    let out = openssl(&["pkey", "-in", keys::PRIVATE_KEY_FILE, "-pubout"], &dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        std::fs::read_to_string(&public).expect("pub")
    );
    // The key id is SHA-256 of the DER SPKI as OpenSSL encodes it.
    let out = openssl(
        &[
            "pkey",
            "-pubin",
            "-in",
            keys::PUBLIC_KEY_FILE,
            "-outform",
            "DER",
        ],
        &dir,
    );
    assert!(out.status.success());
    assert_eq!(keys::key_id(&out.stdout), id);
    let loaded = TrustedKeys::load_dir(&dir);
    assert!(
        loaded.is_err(),
        "a private key in the trusted dir must be refused"
    );
    std::fs::remove_file(&private).expect("rm");
    let loaded = TrustedKeys::load_dir(&dir).expect("load");
    assert_eq!(loaded.len(), 1);
    assert!(loaded.get(id.as_str()).is_some());
}

#[test]
fn openssl_generated_key_signs_records() {
    let tmp = TempDir::new().expect("tmp");
    let out = openssl(
        &["genpkey", "-algorithm", "ed25519", "-out", "k.pem"],
        tmp.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = openssl(
        &["pkey", "-in", "k.pem", "-pubout", "-out", "k.pub.pem"],
        tmp.path(),
    );
    assert!(out.status.success());
    let s = Signer::from_file(&tmp.path().join("k.pem")).expect("openssl key loads");
    let mut keys = TrustedKeys::new();
    keys.insert_pem(&std::fs::read_to_string(tmp.path().join("k.pub.pem")).expect("pub"))
        .expect("pub loads");
    let dir = tmp.path().join("ledger");
    let mut ledger = DirLedger::open(&dir).expect("open");
    for i in 1..=3 {
        ledger.append(&input(i), &s).expect("append");
    }
    let report = verify_ledger(&LedgerSource::Dir(dir), &keys, None);
    assert!(report.is_intact(), "{}", describe(&report));
}

#[test]
fn openssl_verifies_record_signatures_over_pae() {
    let tmp = TempDir::new().expect("tmp");
    let keydir = tmp.path().join("keys");
    keys::keygen(&keydir).expect("keygen");
    let s = Signer::from_file(&keydir.join(keys::PRIVATE_KEY_FILE)).expect("load");
    let fxdir = tmp.path().join("ledger");
    let mut ledger = DirLedger::open(&fxdir).expect("open");
    for i in 1..=3 {
        ledger.append(&input(i), &s).expect("append");
    }
    let files = dir_files(&fxdir);
    for seq in 1..=3 {
        let env = envelope(&files[&file_of(&files, seq)]);
        std::fs::write(tmp.path().join("pae.bin"), env.pae().expect("pae")).expect("write");
        std::fs::write(
            tmp.path().join("sig.bin"),
            B64.decode(&env.signatures[0].sig).expect("sig"),
        )
        .expect("write");
        let pubkey = keydir.join(keys::PUBLIC_KEY_FILE);
        let pubkey = pubkey.to_str().expect("utf8 path");
        let args = [
            "pkeyutl", "-verify", "-pubin", "-inkey", pubkey, "-rawin", "-in", "pae.bin",
            "-sigfile", "sig.bin",
        ];
        let out = openssl(&args, tmp.path());
        assert!(
            out.status.success(),
            "openssl rejected record {seq}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // A flipped byte of the PAE must fail.
        let mut pae = env.pae().expect("pae");
        let last = pae.len() - 2;
        pae[last] ^= 1;
        std::fs::write(tmp.path().join("pae.bin"), pae).expect("write");
        let out = openssl(&args, tmp.path());
        assert!(!out.status.success(), "openssl accepted an altered PAE");
    }
}

#[test]
fn python_securesystemslib_verifies_records() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("SKIP: python3 is not installed");
        return;
    }
    let tmp = TempDir::new().expect("tmp");
    let keydir = tmp.path().join("keys");
    keys::keygen(&keydir).expect("keygen");
    let s = Signer::from_file(&keydir.join(keys::PRIVATE_KEY_FILE)).expect("load");
    let fx = tmp.path().join("repo");
    init_repo(&fx);
    let mut ledger = GitLedger::open(&fx).expect("open");
    for i in 1..=4 {
        ledger.append(&input(i), &s).expect("append");
    }
    let files = git_files(&fx);
    let mut paths = Vec::new();
    for seq in 1..=4 {
        let p = tmp.path().join(format!("{seq}.dsse.json"));
        std::fs::write(&p, &files[&file_of(&files, seq)]).expect("write");
        paths.push(p);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/verify_dsse.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(keydir.join(keys::PUBLIC_KEY_FILE))
        .args(&paths)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(3),
        "securesystemslib missing: {stderr}"
    );
    assert!(
        out.status.success(),
        "securesystemslib rejected records:\n{stdout}\n{stderr}"
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 4);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["verified"], true);
        assert_eq!(l["seq"], i as u64 + 1);
        assert_eq!(l["keyids"][0], s.key_id().to_string());
    }
    // An altered record is rejected by the independent implementation too.
    let mut env = envelope(&files[&file_of(&files, 2)]);
    let mut payload = env.decode_payload().expect("payload");
    let pos = payload.iter().position(|&b| b == b'7').unwrap_or(20);
    payload[pos] = b'8';
    env.payload = B64.encode(&payload);
    std::fs::write(&paths[1], env.to_json()).expect("write");
    let out = Command::new("python3")
        .arg(&script)
        .arg(keydir.join(keys::PUBLIC_KEY_FILE))
        .arg(&paths[1])
        .output()
        .expect("run python3");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

// ---------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------

const CHILD_ENV: &str = "RELGATE_TEST_LEDGER_CHILD";

/// Not a test of its own: the body of a child process spawned by
/// `concurrent_processes_append_*` (a no-op when the variable is unset).
#[test]
fn child_append_worker() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (kind, rest) = spec.split_once(':').expect("kind:count:path");
    let (count, path) = rest.split_once(':').expect("count:path");
    let count: u64 = count.parse().expect("count");
    let mut ledger: Box<dyn Ledger> = match kind {
        "git" => Box::new(GitLedger::open(Path::new(path)).expect("open")),
        _ => Box::new(DirLedger::open(Path::new(path)).expect("open")),
    };
    let pid = u64::from(std::process::id());
    for i in 0..count {
        ledger
            .append(&input(pid * 1000 + i), &signer())
            .expect("append");
    }
}

fn assert_concurrent_result(fx: &Fixture, expected: u64) {
    let report = fx.verify(None);
    assert_eq!(report.status, VerifyStatus::Intact, "{}", describe(&report));
    assert_eq!(report.records, expected);
    let state = fx.ledger().state().expect("state").expect("non-empty");
    assert_eq!(state.size, expected);
    // Seqs 1..=n exactly once, by file name.
    let files = fx.files();
    for s in 1..=expected {
        file_of(&files, s);
    }
}

fn threads_append(backend: Backend) {
    let fx = Fixture::new(backend, 0);
    let threads = 4;
    let per_thread = 8;
    std::thread::scope(|scope| {
        for t in 0..threads {
            let fx = &fx;
            scope.spawn(move || {
                let mut ledger = fx.ledger();
                for i in 0..per_thread {
                    ledger
                        .append(&input(t * 100 + i), &signer())
                        .expect("append");
                }
            });
        }
    });
    assert_concurrent_result(&fx, threads * per_thread);
}

#[test]
fn concurrent_threads_append_git() {
    threads_append(Backend::Git);
}

#[test]
fn concurrent_threads_append_dir() {
    threads_append(Backend::Dir);
}

fn processes_append(backend: Backend) {
    let fx = Fixture::new(backend, 0);
    let exe = std::env::current_exe().expect("test exe");
    let kind = if backend == Backend::Git {
        "git"
    } else {
        "dir"
    };
    let procs = 3;
    let per_proc = 6;
    let children: Vec<std::process::Child> = (0..procs)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "records::child_append_worker",
                    "--test-threads=1",
                    "--nocapture",
                ])
                .env(
                    CHILD_ENV,
                    format!("{kind}:{per_proc}:{}", fx.path.display()),
                )
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn child")
        })
        .collect();
    // Append from this process at the same time.
    let mut ledger = fx.ledger();
    for i in 0..per_proc {
        ledger.append(&input(900 + i), &signer()).expect("append");
    }
    for mut c in children {
        assert!(c.wait().expect("wait").success(), "child failed");
    }
    assert_concurrent_result(&fx, (procs + 1) * per_proc);
}

#[test]
fn concurrent_processes_append_git() {
    processes_append(Backend::Git);
}

#[test]
fn concurrent_processes_append_dir() {
    processes_append(Backend::Dir);
}

#[test]
fn dir_ledger_completes_an_interrupted_append() {
    let fx = Fixture::new(Backend::Dir, 3);
    // Simulate a crash after the record was written but before state and checkpoint: put
    // back the state (with a pending marker) and checkpoint of size 3 after a 4th append.
    let before = fx.files();
    let receipt = fx.ledger().append(&input(4), &signer()).expect("append");
    let mut state: serde_json::Value = serde_json::from_slice(&before[STATE_FILE]).expect("state");
    state["pending"] = serde_json::json!({"seq": 4, "file": receipt.file, "payload_sha256": receipt.payload_sha256});
    std::fs::write(
        fx.path.join(STATE_FILE),
        serde_json::to_vec(&state).expect("json"),
    )
    .expect("write");
    std::fs::write(fx.path.join(CHECKPOINT_FILE), &before[CHECKPOINT_FILE]).expect("write");
    let receipt5 = fx
        .ledger()
        .append(&input(5), &signer())
        .expect("append after crash");
    assert_eq!(receipt5.seq, 5);
    let report = fx.verify(None);
    assert!(report.is_intact(), "{}", describe(&report));
    assert_eq!(report.records, 5);
}

#[test]
fn git_ledger_on_custom_branch_and_from_cli() {
    let tmp = TempDir::new().expect("tmp");
    init_repo(tmp.path());
    let mut ledger = GitLedger::open_with(
        tmp.path(),
        "audit/ledger",
        LedgerOptions {
            origin: Some("relgate.dev/ledger/acme-assistants".into()),
            ..Default::default()
        },
    )
    .expect("open");
    let r = ledger.append(&input(1), &signer()).expect("append");
    assert_eq!(r.origin, "relgate.dev/ledger/acme-assistants");
    assert!(r
        .checkpoint
        .starts_with("relgate.dev/ledger/acme-assistants\n1\n"));
    let src = LedgerSource::from_cli(Some("audit/ledger"), tmp.path());
    assert!(verify_ledger(&src, &trusted(), None).is_intact());
    assert_eq!(
        LedgerSource::from_cli(None, tmp.path()),
        LedgerSource::git_default(tmp.path())
    );
    assert_eq!(DEFAULT_BRANCH, "relgate/records");
}

/// Runs of records (`append_all`: one commit per run, one packfile per shard it fills, the
/// shards packed in parallel) across shard boundaries, mixed with single appends (loose
/// objects), verify like record-by-record appends: same files, intact history, one commit per
/// run, nothing of a run left loose.
#[test]
fn runs_of_records_cross_shards_and_mix_with_single_appends() {
    let fx = Fixture::new(Backend::Git, 0);
    let mut ledger = fx.ledger();
    let s = signer();
    let mut receipts = Vec::new();
    ledger.append(&input(1), &s).expect("append");
    let loose_before = loose_objects(&fx.path);
    // Records 2..=2101: the rest of shard 000 (which holds record 1), all of 001, and 002.
    let run: Vec<RecordInput> = (2..=2101).map(input).collect();
    ledger
        .append_all(&run, &s, &mut receipts)
        .expect("append_all");
    assert_eq!(receipts.len(), 2100);
    assert_eq!(receipts[0].seq, 2);
    assert!(receipts[998].file.starts_with("records/001/001000-"));
    assert!(receipts[2099].file.starts_with("records/002/002101-"));
    assert_eq!(
        crate::support::ledger::packfiles(&fx.path).len(),
        3,
        "a packfile per shard the run filled"
    );
    assert_eq!(
        loose_objects(&fx.path),
        loose_before,
        "nothing of the run is loose"
    );
    ledger.append(&input(2102), &s).expect("append");
    let run: Vec<RecordInput> = (2103..=2110).map(input).collect();
    ledger
        .append_all(&run, &s, &mut receipts)
        .expect("append_all");
    assert_eq!(
        crate::support::ledger::packfiles(&fx.path).len(),
        4,
        "a run that fills one shard is one packfile"
    );
    let report = fx.verify(None);
    assert!(report.is_intact(), "{}", describe(&report));
    assert_eq!(report.records, 2110);
    assert_eq!(
        report.commits_checked, 4,
        "a commit per run and per single append"
    );
    let state = fx.ledger().state().expect("state").expect("non-empty");
    assert_eq!(state.size, 2110);
    let files = fx.files();
    for seq in 1..=2110 {
        file_of(&files, seq);
    }
    // Each run moved the branch once: the reflog has one entry per run and per single append.
    let repo = Repository::open(&fx.path).expect("open");
    let log = repo.reflog("refs/heads/relgate/records").expect("reflog");
    assert_eq!(log.len(), 4);
}

/// The loose objects in the object database of the repository at `path`.
fn loose_objects(path: &Path) -> usize {
    std::fs::read_dir(path.join(".git/objects"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().len() == 2)
                .map(|e| {
                    std::fs::read_dir(e.path())
                        .map(Iterator::count)
                        .unwrap_or(0)
                })
                .sum()
        })
        .unwrap_or(0)
}

/// A run's commit adds many records at once; one that also edits an earlier record (or adds
/// its records out of order) is caught by the history walk all the same.
#[test]
fn a_commit_adding_several_records_may_not_edit_or_skip() {
    let fx = Fixture::new(Backend::Git, 10);
    let s = signer();
    let mut ledger = fx.ledger();
    let mut receipts = Vec::new();
    let run: Vec<RecordInput> = (11..=13).map(input).collect();
    ledger
        .append_all(&run, &s, &mut receipts)
        .expect("append_all");
    // Next "run": adds records 14 and 15 (copies of 13's bytes under their names) and edits 5.
    fx.tamper(|files| {
        let thirteen = files[&file_of(files, 13)].clone();
        for seq in [14, 15] {
            files.insert(
                format!("records/000/{seq:06}-copy-1.dsse.json"),
                thirteen.clone(),
            );
        }
        let f = file_of(files, 5);
        let mut v = payload_json(&files[&f]);
        change_mut(&mut v)["decision"] = "pass".into();
        files.insert(f, resign(&v, &s));
    });
    let report = fx.verify(None);
    assert_problem(&report, ProblemKind::HistoryRecordChanged, Some(5));
    assert_eq!(
        report.problems_of(ProblemKind::HistoryOutOfOrder).count(),
        0,
        "{}",
        describe(&report)
    );
    // One that skips a seq is caught too.
    let fx = Fixture::new(Backend::Git, 10);
    fx.tamper(|files| {
        let ten = files[&file_of(files, 10)].clone();
        for seq in [11, 13] {
            files.insert(
                format!("records/000/{seq:06}-copy-1.dsse.json"),
                ten.clone(),
            );
        }
    });
    let report = fx.verify(None);
    assert_problem(&report, ProblemKind::HistoryOutOfOrder, Some(13));
}

/// Runs racing each other on one branch: every run lands whole, in some order, none lost.
#[test]
fn concurrent_runs_of_records_git() {
    let fx = Fixture::new(Backend::Git, 0);
    let threads = 3;
    let per_run = 20;
    std::thread::scope(|scope| {
        for t in 0..threads {
            let fx = &fx;
            scope.spawn(move || {
                let mut ledger = fx.ledger();
                let run: Vec<RecordInput> = (0..per_run).map(|i| input(t * 100 + i)).collect();
                let mut receipts = Vec::new();
                ledger
                    .append_all(&run, &signer(), &mut receipts)
                    .expect("append_all");
                assert_eq!(receipts.len() as u64, per_run);
                // A run's seqs are consecutive: no other writer's record inside it.
                for w in receipts.windows(2) {
                    assert_eq!(w[1].seq, w[0].seq + 1);
                }
            });
        }
    });
    assert_concurrent_result(&fx, threads * per_run);
}
