//! Offline verification of a ledger (`relgate verify`): every check of docs/records.md, each
//! failure a named [`Problem`] with the record it concerns, classified as tampering (exit 1) or
//! could-not-verify (exit 2).
//!
//! Checks, in order:
//! 1. Every file under `records/` is a record file (`NNNNNN-<name>-<version>.dsse.json`, a
//!    regular file) in the shard directory of its seq (`records/<seq / 1000, 3+ digits>/`;
//!    a record elsewhere is named as [`ProblemKind::WrongShard`], anything else under
//!    `records/` as a foreign file), no larger than [`MAX_ENVELOPE_BYTES`], UTF-8 JSON, a
//!    DSSE envelope with payload type `application/vnd.in-toto+json`, standard base64, signed
//!    by a TRUSTED key (an unknown key is named), and its payload an in-toto Statement v1 /
//!    SLSA VSA v1 with relgate's change extension. Hostile bytes are problems, never panics.
//! 2. The seq in the file name equals the payload seq; seqs run 1..n without gap, duplicate or
//!    reordering (each named); every `prev` equals the SHA-256 of the payload of seq-1
//!    (64 zeros for seq 1).
//! 3. `CHECKPOINT` is a signed note by a trusted key, its origin is this ledger's, and its size
//!    and RFC 6962 root equal those of the records (a rolled-back or foreign checkpoint, or
//!    records removed from the end, are detected here).
//! 4. With an older checkpoint the auditor kept: same origin, not larger than now, and an RFC
//!    6962 consistency proof from it to the current tree verifies (rollback, rewrite or a
//!    different ledger is detected).
//! 5. Git ledgers: the first-parent history of the branch is walked from its first commit;
//!    every commit may only ADD records, in seq order (a record changed or removed in any
//!    commit, a merge (fork) or an unexpected file is named with its commit); the branch
//!    reflog, where the repository has one, must show only fast-forwards, and for a forced
//!    update the records that vanished are named.
//!
//! The same checks run on an export bundle's `envelopes.jsonl` ([`verify_envelopes_with`]:
//! one envelope per line, line n holding record n, `CHECKPOINT` beside it; no shards, head
//! state or history). [`VerifiedLedger`] keeps each record's place, payload hash and verdict
//! after verification, so `relgate export` can read the records again one window at a time
//! and say per record whether it verified.
//!
//! What cannot be detected: a rewrite of the whole branch by someone holding a trusted signing
//! key, done in another clone and force-pushed, leaves a self-consistent ledger; it is caught
//! only by an older checkpoint the auditor kept (step 4) or by the reflog of a clone that saw
//! the old branch (step 5). Keep checkpoints: `VerifyReport::checkpoint_text` is the one to
//! store. Records removed from the END together with a re-signed checkpoint likewise need an
//! older checkpoint. Without trusted keys nothing can be verified.
//!
//! Cost: records are read, hashed and their signatures checked in parallel (rayon), 64 at a
//! time with Ed25519 batch verification (see [`VerifyOptions::strict_signatures`]), streaming
//! (payloads are dropped after hashing); sequence, chain and Merkle checks are linear. The git
//! history walk compares each commit's `records/` tree with its parent's: one entry per shard,
//! and shards whose tree oid did not change are skipped unread. A changed shard (at most 1000
//! entries) is usually the previous one plus appended entries (a byte prefix, so only the new
//! entries are parsed); otherwise its entries are diffed. So the walk costs about
//! O(commits × (records / 1000)) for the shard lists, not O(commits × records); consecutive
//! `records/` trees are compared as raw bytes in one merge pass. The walk and the reflog check
//! run on their own thread beside the per-record checks.
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};
use git2::{ObjectType, Oid, Repository, Tree};
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::checkpoint::{default_origin, open_checkpoint, CheckpointError, ORIGIN_PREFIX};
use super::completeness::{self, WatchedPaths};
use super::dsse::{self, DsseError, Envelope, MAX_ENVELOPE_BYTES};
use super::keys::TrustedKeys;
use super::ledger::{
    is_shard_name, ledger_refname, parse_record_file_name, shard_name, LedgerSource, LedgerState,
    CHECKPOINT_FILE, DEFAULT_BRANCH, RECORDS_DIR, STATE_FILE,
};
use super::merkle::{self, Frontier, Hash};
use super::statement::{PayloadHead, GENESIS_PREV};

/// Options of [`verify_ledger_with`].
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Walk the git branch history (git ledgers).
    pub check_history: bool,
    /// Check the branch reflog for forced updates (git ledgers).
    pub check_reflog: bool,
    /// The origin the checkpoint must carry; default: the one in the ledger state, else the
    /// default origin derived from the first record.
    pub expected_origin: Option<String>,
    /// Keep each record's parsed payload in [`VerifyReport::payloads`] (for export).
    pub keep_payloads: bool,
    /// Check every signature on its own with `verify_strict` instead of in batches of 64.
    /// Batch verification (the default, about 2.5x faster) accepts exactly the honestly
    /// produced signatures single verification accepts; a failing batch is re-checked one by
    /// one, so every bad record is named either way. The two can differ only on signatures a
    /// holder of a trusted private key deliberately crafts with small-order components.
    pub strict_signatures: bool,
    /// Check the ledger against the branch it records ([`super::completeness`]): every
    /// commit after the first record's that changed a manifest, the config or a policy must be
    /// named by a record. `None`: not checked (no repository, or an envelopes file).
    pub completeness: Option<CompletenessSpec>,
}

/// What the completeness check compares the records with.
#[derive(Debug, Clone)]
pub struct CompletenessSpec {
    /// The repository holding the recorded branch.
    pub repo: PathBuf,
    /// The recorded (default) branch: a revision such as `origin/main`. `None`: the branch
    /// the newest signed record names (`git.ref`, as `origin/<branch>` when the clone has it),
    /// else `origin/HEAD`, else `HEAD`.
    pub branch: Option<String>,
    /// The paths whose changes need a record.
    pub watched: WatchedPaths,
}

/// Summary of the completeness check in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompletenessInfo {
    /// The branch compared with.
    pub branch: String,
    /// The commit of the ledger's first record, where the comparison starts.
    pub since: String,
    /// First-parent commits after it.
    pub commits: u64,
    /// Those that changed a manifest, the config or a policy and that no record names.
    pub unrecorded: Vec<String>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            check_history: true,
            check_reflog: true,
            expected_origin: None,
            keep_payloads: false,
            strict_signatures: false,
            completeness: None,
        }
    }
}

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The ledger was altered: exit 1.
    Tampering,
    /// The ledger could not be checked: exit 2.
    Unverifiable,
    /// Worth knowing, not a failure.
    Warning,
}

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A record file is above the size cap; not read.
    TooLarge,
    /// A record file is not UTF-8.
    NotUtf8,
    /// A record file is not a DSSE JSON envelope (truncated, malformed).
    InvalidJson,
    /// `payloadType` is not `application/vnd.in-toto+json`.
    WrongPayloadType,
    /// `payload` or `sig` is not standard base64.
    BadBase64,
    /// The envelope has no signature.
    NoSignature,
    /// A trusted key's signature does not verify: payload or signature edited.
    BadSignature,
    /// Signed only by keys that are not trusted.
    UntrustedKey,
    /// The payload is not a relgate change Statement.
    InvalidStatement,
    /// A file or directory under `records/` that is not a record file.
    ForeignFile,
    /// A record file that is not in the shard directory of its seq
    /// (`records/<seq / 1000, 3+ digits>/`): moved or inserted by hand.
    WrongShard,
    /// The seq in the file name differs from the payload's.
    FileSeqMismatch,
    /// Records are missing from the sequence.
    SeqGap,
    /// A seq appears twice.
    SeqDuplicate,
    /// Records are out of order (swapped, moved).
    SeqOutOfOrder,
    /// `prev` is not the hash of the previous record's payload.
    PrevMismatch,
    /// No `CHECKPOINT`.
    CheckpointMissing,
    /// `CHECKPOINT` is not a well-formed signed checkpoint.
    CheckpointMalformed,
    /// `CHECKPOINT` is not signed by a trusted key.
    CheckpointUntrusted,
    /// `CHECKPOINT` signature does not verify.
    CheckpointBadSignature,
    /// `CHECKPOINT` names another ledger.
    CheckpointOriginMismatch,
    /// `CHECKPOINT` covers more records than exist: records removed from the end.
    CheckpointSizeMismatch,
    /// `CHECKPOINT` covers fewer records than exist: rolled back.
    CheckpointStale,
    /// `CHECKPOINT` root differs from the records' Merkle root.
    CheckpointRootMismatch,
    /// The auditor's older checkpoint is larger than the ledger: rolled back.
    Rollback,
    /// The auditor's older checkpoint is not a prefix of the ledger: history rewritten.
    ConsistencyFailed,
    /// The auditor's older checkpoint belongs to another ledger.
    LedgerMismatch,
    /// A commit removed a record.
    HistoryRecordRemoved,
    /// A commit changed a record.
    HistoryRecordChanged,
    /// A commit added records out of seq order.
    HistoryOutOfOrder,
    /// The ledger branch has a merge commit (fork).
    HistoryFork,
    /// A commit added a file that is not part of the ledger layout.
    HistoryUnexpectedFile,
    /// The reflog shows a forced (non-fast-forward) update of the ledger branch.
    HistoryRewritten,
    /// The ledger could not be opened or read.
    SourceUnavailable,
    /// No trusted keys were given.
    NoTrustedKeys,
    /// The auditor's older checkpoint could not be read or verified.
    OldCheckpointInvalid,
    /// A record could not be read (I/O error).
    ReadError,
    /// A commit of the recorded branch after the ledger's first record changed a manifest,
    /// the config or a policy, and no record names it: records were dropped from the end
    /// (branch reset), lost (a failed run), or never made.
    Unrecorded,
    /// The completeness check could not run (a shallow clone, a first record off the branch).
    CompletenessUnknown,
    /// `ledger-state.json` disagrees with the records (next append will refuse).
    StateMismatch,
    /// History before a shallow-clone boundary was not checked.
    ShallowHistory,
    /// The repository keeps no reflog for the ledger branch.
    NoReflog,
    /// A record read again after verification (by `relgate export`) no longer has the
    /// payload that was verified: the ledger was modified while it was read.
    ChangedWhileReading,
}

impl ProblemKind {
    /// Severity of this kind.
    pub fn severity(self) -> Severity {
        use ProblemKind::*;
        match self {
            SourceUnavailable | NoTrustedKeys | OldCheckpointInvalid | ReadError
            | CompletenessUnknown => Severity::Unverifiable,
            StateMismatch | ShallowHistory | NoReflog => Severity::Warning,
            _ => Severity::Tampering,
        }
    }
}

/// The record (or file, or commit) a problem is about.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RecordRef {
    /// Sequence number, when known.
    pub seq: Option<u64>,
    /// Path in the ledger (`records/000042-...dsse.json`, `CHECKPOINT`).
    pub file: Option<String>,
    /// Ledger commit (history checks).
    pub commit: Option<String>,
}

/// One finding of verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What it concerns; `None` for the ledger as a whole.
    pub record: Option<RecordRef>,
    /// What is wrong.
    pub kind: ProblemKind,
    /// Severity (derived from `kind`).
    pub severity: Severity,
    /// Human explanation.
    pub message: String,
}

impl Problem {
    fn new(kind: ProblemKind, record: Option<RecordRef>, message: impl Into<String>) -> Problem {
        Problem {
            record,
            kind,
            severity: kind.severity(),
            message: message.into(),
        }
    }

    /// The seq named, if any.
    pub fn seq(&self) -> Option<u64> {
        self.record.as_ref().and_then(|r| r.seq)
    }

    /// The file named, if any.
    pub fn file(&self) -> Option<&str> {
        self.record.as_ref().and_then(|r| r.file.as_deref())
    }
}

fn at(seq: Option<u64>, file: Option<&str>) -> Option<RecordRef> {
    Some(RecordRef {
        seq,
        file: file.map(str::to_owned),
        commit: None,
    })
}

/// Overall result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyStatus {
    /// Everything verified.
    Intact,
    /// Tampering found.
    Tampered,
    /// Could not verify (and no tampering found).
    Unverifiable,
}

/// The checkpoint found in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointInfo {
    /// Origin.
    pub origin: String,
    /// Size.
    pub size: u64,
    /// Base64 root.
    pub root: String,
    /// Key that signed it, when trusted.
    pub key_id: Option<String>,
}

/// Result of the consistency check against an older checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsistencyInfo {
    /// Old size.
    pub old_size: u64,
    /// Current size.
    pub new_size: u64,
    /// RFC 6962 proof, hex.
    pub proof: Vec<String>,
    /// Whether it verified.
    pub verified: bool,
}

/// Everything verification found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The ledger checked.
    pub source: String,
    /// Overall status.
    pub status: VerifyStatus,
    /// Record files examined.
    pub records: u64,
    /// Records whose signature verified under a trusted key.
    pub verified_signatures: u64,
    /// The ledger's checkpoint.
    pub checkpoint: Option<CheckpointInfo>,
    /// The ledger's `CHECKPOINT` text when it verified (store it for the next audit).
    pub checkpoint_text: Option<String>,
    /// Base64 RFC 6962 root computed from the records.
    pub computed_root: Option<String>,
    /// Consistency with the auditor's older checkpoint.
    pub consistency: Option<ConsistencyInfo>,
    /// Ledger commits walked (git).
    pub commits_checked: u64,
    /// The completeness check against the recorded branch, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completeness: Option<CompletenessInfo>,
    /// Problems, in detection order.
    pub problems: Vec<Problem>,
    /// Commits named by records whose signature verified (`git.commit` and `changed_in`).
    #[serde(skip)]
    named_commits: HashSet<String>,
    /// The seq and commit of the first record (lowest seq) whose signature verified.
    #[serde(skip)]
    first_commit: Option<(u64, String)>,
    /// The seq and `git.ref` of the newest signed record that names a branch.
    #[serde(skip)]
    last_ref: Option<(u64, String)>,
    /// Parsed payloads in ledger order, when [`VerifyOptions::keep_payloads`].
    #[serde(skip)]
    pub payloads: Vec<RecordPayload>,
}

/// A record's parsed payload (Statement JSON), kept for export.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordPayload {
    /// Which record.
    pub record: RecordRef,
    /// Whether its signature verified under a trusted key (problems name the rest).
    pub signature_ok: bool,
    /// The Statement.
    pub payload: serde_json::Value,
}

impl VerifyReport {
    fn new(source: String) -> VerifyReport {
        VerifyReport {
            source,
            status: VerifyStatus::Intact,
            records: 0,
            verified_signatures: 0,
            checkpoint: None,
            checkpoint_text: None,
            computed_root: None,
            consistency: None,
            commits_checked: 0,
            completeness: None,
            problems: Vec::new(),
            named_commits: HashSet::new(),
            first_commit: None,
            last_ref: None,
            payloads: Vec::new(),
        }
    }

    fn push(&mut self, kind: ProblemKind, record: Option<RecordRef>, message: impl Into<String>) {
        self.problems.push(Problem::new(kind, record, message));
    }

    fn finish(mut self) -> VerifyReport {
        self.refresh_status();
        self
    }

    /// Recomputes `status` from the problems.
    fn refresh_status(&mut self) {
        self.status = if self
            .problems
            .iter()
            .any(|p| p.severity == Severity::Tampering)
        {
            VerifyStatus::Tampered
        } else if self
            .problems
            .iter()
            .any(|p| p.severity == Severity::Unverifiable)
        {
            VerifyStatus::Unverifiable
        } else {
            VerifyStatus::Intact
        };
    }

    /// 0 intact, 1 tampering found, 2 could not verify.
    pub fn exit_code(&self) -> i32 {
        match self.status {
            VerifyStatus::Intact => 0,
            VerifyStatus::Tampered => 1,
            VerifyStatus::Unverifiable => 2,
        }
    }

    /// True when nothing is wrong (warnings allowed).
    pub fn is_intact(&self) -> bool {
        self.status == VerifyStatus::Intact
    }

    /// Problems of one kind.
    pub fn problems_of(&self, kind: ProblemKind) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(move |p| p.kind == kind)
    }
}

/// Verifies the ledger at `source` against `keys`, optionally against an older checkpoint the
/// auditor kept (the text of a `CHECKPOINT`). Never panics on hostile input; problems are in
/// the report.
pub fn verify_ledger(
    source: &LedgerSource,
    keys: &TrustedKeys,
    old_checkpoint: Option<&str>,
) -> VerifyReport {
    verify_ledger_with(source, keys, old_checkpoint, &VerifyOptions::default())
}

/// [`verify_ledger`] with options.
pub fn verify_ledger_with(
    source: &LedgerSource,
    keys: &TrustedKeys,
    old_checkpoint: Option<&str>,
    options: &VerifyOptions,
) -> VerifyReport {
    let reader = Reader::open(source);
    run(
        source.describe(),
        reader,
        keys,
        old_checkpoint,
        options,
        &NoProgress,
        false,
    )
    .into_report()
}

/// Verifies the envelopes of a ledger given as one DSSE envelope per line, in seq order (the
/// `envelopes.jsonl` of an export bundle), with the ledger's `CHECKPOINT` read from the same
/// directory. Every check of [`verify_ledger_with`] applies except the shard layout, the
/// head state and the git history: line `n` must hold record `n` (a line out of place is
/// named like a record file whose name says another seq).
pub fn verify_envelopes_with(
    path: &Path,
    keys: &TrustedKeys,
    old_checkpoint: Option<&str>,
    options: &VerifyOptions,
) -> VerifyReport {
    let reader = Reader::open_envelopes(path);
    run(
        path.display().to_string(),
        reader,
        keys,
        old_checkpoint,
        options,
        &NoProgress,
        false,
    )
    .into_report()
}

/// Told how far verification (and an export's second read) has got, for a progress bar.
/// Called from worker threads.
pub trait Progress: Sync {
    /// The number of entries found under `records/`, once, before they are checked.
    fn start(&self, _entries: u64) {}
    /// `n` more entries checked, or read again by [`VerifiedLedger::read_records`].
    fn advance(&self, _n: u64) {}
}

/// No progress reporting.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// The whole verification; `keep` keeps the entries for [`VerifiedLedger::read_records`].
fn run(
    source: String,
    reader: Result<Reader, String>,
    keys: &TrustedKeys,
    old_checkpoint: Option<&str>,
    options: &VerifyOptions,
    progress: &dyn Progress,
    keep: bool,
) -> VerifiedLedger {
    let mut report = VerifyReport::new(source);
    let mut ledger = VerifiedLedger {
        report: VerifyReport::new(String::new()),
        reader: None,
        entries: Vec::new(),
        checked: Vec::new(),
    };
    if keys.is_empty() {
        report.push(
            ProblemKind::NoTrustedKeys,
            None,
            "no trusted public keys: nothing can be verified (pass --keys DIR with *.pem)",
        );
        ledger.report = report.finish();
        return ledger;
    }
    let reader = match reader {
        Ok(r) => r,
        Err(msg) => {
            report.push(ProblemKind::SourceUnavailable, None, msg);
            ledger.report = report.finish();
            return ledger;
        }
    };
    // The git history walk is serial and needs nothing from the per-record checks, so it runs
    // on its own thread beside them (which use every core through rayon); its problems are
    // added after theirs, in the order a serial run gives.
    let history = std::thread::scope(|scope| {
        let history = scope.spawn(|| git_history(&reader, options));
        if let Some(entries) = list_entries(&reader, &mut report) {
            let checked = check_entries(
                &reader,
                &entries,
                keys,
                old_checkpoint,
                options,
                progress,
                &mut report,
            );
            if keep {
                ledger.entries = entries;
                ledger.checked = checked;
            }
        }
        history.join()
    });
    match history {
        Ok(Some(h)) => {
            report.commits_checked += h.commits_checked;
            report.problems.extend(h.problems);
        }
        Ok(None) => {}
        Err(_) => report.push(
            ProblemKind::ReadError,
            None,
            "the git history check stopped unexpectedly; the history was not checked",
        ),
    }
    if let Some(spec) = &options.completeness {
        if !reader.is_envelopes() {
            check_completeness(spec, &mut report);
        }
    }
    ledger.report = report.finish();
    ledger.reader = Some(reader);
    ledger
}

/// The history and reflog checks of a git ledger (steps 5), in a report of their own; `None`
/// for other ledgers or when neither is asked for.
fn git_history(reader: &Reader, options: &VerifyOptions) -> Option<VerifyReport> {
    let Reader::Git {
        repo_path, refname, ..
    } = reader
    else {
        return None;
    };
    if !(options.check_history || options.check_reflog) {
        return None;
    }
    let mut report = VerifyReport::new(String::new());
    match Repository::open(repo_path) {
        Ok(repo) => {
            if options.check_history {
                check_history(&repo, refname, &mut report);
            }
            if options.check_reflog {
                check_reflog(&repo, refname, &mut report);
            }
        }
        Err(e) => report.push(
            ProblemKind::SourceUnavailable,
            None,
            format!("cannot open repository: {e}"),
        ),
    }
    Some(report)
}

/// The completeness check ([`super::completeness`]) of a verified ledger.
fn check_completeness(spec: &CompletenessSpec, report: &mut VerifyReport) {
    let Some((_, first)) = report.first_commit.clone() else {
        // No signed record names a commit: there is no start to compare from.
        return;
    };
    let unknown = |report: &mut VerifyReport, why: String| {
        report.push(
            ProblemKind::CompletenessUnknown,
            None,
            format!("cannot check that every release change was recorded: {why}"),
        )
    };
    let repo = match Repository::open(&spec.repo) {
        Ok(r) => r,
        Err(e) => return unknown(report, format!("cannot open {}: {e}", spec.repo.display())),
    };
    let resolves = |rev: &str| {
        repo.revparse_single(rev)
            .and_then(|o| o.peel_to_commit())
            .is_ok()
    };
    let branch = match &spec.branch {
        Some(b) => b.clone(),
        None => {
            // The branch the records say they record; the published copy first (a local
            // branch may hold commits nobody pushed, so no run recorded them yet).
            let mut candidates = Vec::new();
            if let Some((_, git_ref)) = &report.last_ref {
                if let Some(name) = git_ref.strip_prefix("refs/heads/") {
                    candidates.push(format!("refs/remotes/origin/{name}"));
                }
                candidates.push(git_ref.clone());
            }
            candidates.push("refs/remotes/origin/HEAD".to_owned());
            candidates.push("HEAD".to_owned());
            match candidates.iter().find(|c| resolves(c)) {
                Some(c) => c.clone(),
                None => {
                    return unknown(
                        report,
                        format!(
                            "none of {} resolves to a commit here; pass --default-branch REV \
                             naming the branch the ledger records",
                            candidates.join(", ")
                        ),
                    )
                }
            }
        }
    };
    let tip = match repo
        .revparse_single(&branch)
        .and_then(|o| o.peel_to_commit())
    {
        Ok(c) => c.id(),
        Err(e) => {
            return unknown(
                report,
                format!("the recorded branch {branch} does not resolve: {e}"),
            )
        }
    };
    match completeness::check(&repo, tip, &first, &report.named_commits, &spec.watched) {
        completeness::Completeness::Unknown(why) => unknown(report, why),
        completeness::Completeness::Checked {
            unrecorded,
            commits,
        } => {
            let mut missing = Vec::new();
            for u in &unrecorded {
                let c = &u.change;
                let mut what: Vec<String> = c.manifests.clone();
                if c.gate {
                    what.push("the gate configuration or policies".to_owned());
                }
                let id = c.commit.to_string();
                report.push(
                    ProblemKind::Unrecorded,
                    Some(RecordRef {
                        seq: None,
                        file: None,
                        commit: Some(id.clone()),
                    }),
                    format!(
                        "commit {} ({:?}) of {} changed {} but no record names it: records                          were removed from the end of the ledger (branch reset), or a record                          run failed or never ran; run `relgate record --changed --since-ledger`                          on {} to record what is missing",
                        id.get(..12).unwrap_or(&id),
                        c.summary,
                        branch,
                        what.join(", "),
                        branch,
                    ),
                );
                missing.push(id);
            }
            report.completeness = Some(CompletenessInfo {
                branch,
                since: first,
                commits,
                unrecorded: missing,
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading a verified ledger again (export)
// ---------------------------------------------------------------------------------------------

/// Records read back after verification, in the order they were read.
const READ_WINDOW: usize = 1024;

/// A ledger after full verification, ready to be read again record by record without holding
/// payloads: verification keeps only each record's place, payload hash and signature verdict.
/// `relgate export` writes its rows from [`VerifiedLedger::read_records`].
///
/// A record counts as verified when its signature verified under a trusted key, no
/// record-level problem (tampering or could-not-verify) names it, and the payload read again
/// hashes to the one verified. Problems name a record by seq or by file. Record-level kinds
/// are those about one record: `too_large`, `not_utf8`, `invalid_json`, `wrong_payload_type`,
/// `bad_base64`, `no_signature`, `bad_signature`, `untrusted_key`, `invalid_statement`,
/// `wrong_shard`, `file_seq_mismatch`, `seq_duplicate`, `seq_out_of_order`, `read_error`,
/// `changed_while_reading` and the history kinds `history_record_removed`,
/// `history_record_changed`, `history_out_of_order`, `history_rewritten`. A `prev_mismatch`
/// at record `s` marks record `s - 1`: the chain proves that the record now at `s - 1` is not
/// the one record `s` was signed after, while record `s` itself stands or falls with its own
/// signature. Ledger-wide kinds (`seq_gap`, the checkpoint and older-checkpoint kinds,
/// `history_fork`, `history_unexpected_file`, warnings) mark no record; they are in the
/// report and decide its status.
pub struct VerifiedLedger {
    report: VerifyReport,
    reader: Option<Reader>,
    entries: Vec<Entry>,
    checked: Vec<Checked>,
}

impl std::fmt::Debug for VerifiedLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedLedger")
            .field("report", &self.report)
            .field("entries", &self.entries.len())
            .finish()
    }
}

/// One record as read again by [`VerifiedLedger::read_records`].
#[derive(Debug, Clone)]
pub struct ReadRecord {
    /// The payload's seq, else the seq its place claims.
    pub seq: Option<u64>,
    /// Where it is (`records/000/000001-a-1.dsse.json`).
    pub file: String,
    /// The envelope bytes exactly as stored; `Err` when they could not be read.
    pub envelope: Result<Vec<u8>, String>,
    /// The decoded payload, when the envelope parses (whether or not it verified).
    pub payload: Option<Vec<u8>>,
    /// Whether the record verified (see [`VerifiedLedger`]).
    pub verified: bool,
}

/// The records problems name: (seqs, files).
fn unverified_records(report: &VerifyReport) -> (HashSet<u64>, HashSet<String>) {
    use ProblemKind::*;
    let mut seqs = HashSet::new();
    let mut files = HashSet::new();
    for p in &report.problems {
        if p.severity == Severity::Warning {
            continue;
        }
        match p.kind {
            PrevMismatch => {
                if let Some(s) = p.seq().and_then(|s| s.checked_sub(1)) {
                    seqs.insert(s);
                }
            }
            TooLarge | NotUtf8 | InvalidJson | WrongPayloadType | BadBase64 | NoSignature
            | BadSignature | UntrustedKey | InvalidStatement | WrongShard | FileSeqMismatch
            | SeqDuplicate | SeqOutOfOrder | ReadError | ChangedWhileReading
            | HistoryRecordRemoved | HistoryRecordChanged | HistoryOutOfOrder
            | HistoryRewritten => {
                if let Some(s) = p.seq() {
                    seqs.insert(s);
                }
                if let Some(f) = p.file() {
                    files.insert(f.to_owned());
                }
            }
            _ => {}
        }
    }
    (seqs, files)
}

impl VerifiedLedger {
    /// Verifies the ledger at `source` exactly as [`verify_ledger_with`] does, keeping what
    /// [`VerifiedLedger::read_records`] needs. `progress` hears of every record checked.
    pub fn verify(
        source: &LedgerSource,
        keys: &TrustedKeys,
        old_checkpoint: Option<&str>,
        options: &VerifyOptions,
        progress: &dyn Progress,
    ) -> VerifiedLedger {
        run(
            source.describe(),
            Reader::open(source),
            keys,
            old_checkpoint,
            options,
            progress,
            true,
        )
    }

    /// [`VerifiedLedger::verify`] for the envelopes of an export bundle (see
    /// [`verify_envelopes_with`]), so a bundle's rows can be rebuilt from what is signed.
    pub fn verify_envelopes(
        path: &Path,
        keys: &TrustedKeys,
        old_checkpoint: Option<&str>,
        options: &VerifyOptions,
        progress: &dyn Progress,
    ) -> VerifiedLedger {
        run(
            path.display().to_string(),
            Reader::open_envelopes(path),
            keys,
            old_checkpoint,
            options,
            progress,
            true,
        )
    }

    /// The verification report (including problems found while reading again).
    pub fn report(&self) -> &VerifyReport {
        &self.report
    }

    /// The verification report.
    pub fn into_report(self) -> VerifyReport {
        self.report
    }

    /// Record files that [`VerifiedLedger::read_records`] will read.
    pub fn record_files(&self) -> u64 {
        self.entries.iter().filter(|e| e.file_seq.is_some()).count() as u64
    }

    /// The ledger's `CHECKPOINT` bytes as stored, when it has one.
    pub fn checkpoint_bytes(&self) -> Option<Vec<u8>> {
        self.reader
            .as_ref()
            .and_then(|r| r.read_top(CHECKPOINT_FILE).ok().flatten())
    }

    /// Reads every record file again, in ledger order, a window at a time: `map` runs in
    /// parallel on each [`ReadRecord`], `sink` receives the results in ledger order. Memory
    /// holds one window of records, whatever the ledger's size. A payload that no longer
    /// hashes to the verified one (the ledger changed since it was verified) is reported as
    /// `changed_while_reading` and its record is not verified. Stops at the first error of
    /// `sink`.
    pub fn read_records<T: Send, E>(
        &mut self,
        map: impl Fn(ReadRecord) -> T + Sync,
        mut sink: impl FnMut(T) -> Result<(), E>,
        progress: &dyn Progress,
    ) -> Result<(), E> {
        let Some(reader) = &self.reader else {
            return Ok(());
        };
        let (seqs, files) = unverified_records(&self.report);
        let mut changed: Vec<Problem> = Vec::new();
        let mut result = Ok(());
        let records: Vec<usize> = (0..self.entries.len())
            .filter(|&i| self.entries[i].file_seq.is_some())
            .collect();
        'windows: for window in records.chunks(READ_WINDOW) {
            let (Some(&first), Some(&last)) = (window.first(), window.last()) else {
                continue;
            };
            // Entries without a record name lie between records only at the end of the
            // ordering (they sort last), so a window of record indices is contiguous.
            let entries = &self.entries[first..=last];
            let checked = &self.checked[first..=last];
            let items = par_read_chunks(reader, entries, BATCH, |base, chunk, read| {
                let out: Vec<(T, Option<Problem>)> = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, entry)| {
                        let c = checked[base + i];
                        read_again(entry, c, read(entry), &seqs, &files, &map)
                    })
                    .collect();
                progress.advance(chunk.len() as u64);
                out
            });
            for (item, problem) in items {
                changed.extend(problem);
                if let Err(e) = sink(item) {
                    result = Err(e);
                    break 'windows;
                }
            }
        }
        if !changed.is_empty() {
            self.report.problems.extend(changed);
            self.report.refresh_status();
        }
        result
    }
}

fn read_again<T>(
    entry: &Entry,
    checked: Checked,
    bytes: Result<Vec<u8>, ReadFail>,
    seqs: &HashSet<u64>,
    files: &HashSet<String>,
    map: &(impl Fn(ReadRecord) -> T + Sync),
) -> (T, Option<Problem>) {
    let named = checked.seq.is_some_and(|s| seqs.contains(&s))
        || entry.file_seq.is_some_and(|s| seqs.contains(&s))
        || files.contains(&entry.file);
    let mut problem = None;
    let (envelope, payload) = match bytes {
        Ok(b) => {
            let payload = Envelope::from_slice(&b)
                .ok()
                .and_then(|e| e.decode_payload().ok());
            (Ok(b), payload)
        }
        Err(ReadFail::TooLarge(size)) => (Err(format!("{size} bytes, too large")), None),
        Err(ReadFail::Io(e)) => (Err(e), None),
    };
    let same = match (&payload, checked.payload_sha) {
        (Some(p), Some(want)) => {
            let sha: Hash = Sha256::digest(p).into();
            sha == want
        }
        (None, None) => true,
        _ => false,
    };
    if !same {
        let message = match &envelope {
            Err(e) => format!(
                "{} could not be read again after verification: {e}",
                entry.file
            ),
            Ok(_) => format!(
                "{} changed after it was verified: the ledger was modified while it was read",
                entry.file
            ),
        };
        let kind = if envelope.is_err() {
            ProblemKind::ReadError
        } else {
            ProblemKind::ChangedWhileReading
        };
        problem = Some(Problem::new(
            kind,
            at(checked.seq, Some(&entry.file)),
            message,
        ));
    }
    let record = ReadRecord {
        seq: checked.seq,
        file: entry.file.clone(),
        envelope,
        payload,
        verified: checked.signature_ok && !named && same,
    };
    (map(record), problem)
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

enum Reader {
    Dir(PathBuf),
    Git {
        repo_path: PathBuf,
        refname: String,
        tree: Oid,
    },
    /// The envelopes of a ledger, one per line in seq order (`envelopes.jsonl` of an export
    /// bundle), with the ledger's `CHECKPOINT` beside the file.
    Envelopes {
        path: PathBuf,
        /// The file name, used to name lines (`envelopes.jsonl:12`).
        name: String,
    },
}

enum Loc {
    /// A regular file of a directory ledger, at `<ledger dir>/<Entry::file>` (no path kept:
    /// verification holds an entry per record).
    File,
    /// A regular file whose name is not UTF-8 (so `Entry::file` is lossy): its real path.
    Path(PathBuf),
    Blob(Oid),
    /// Bytes `offset..offset + len` of the envelopes file (one line, without its newline).
    Span {
        offset: u64,
        len: u64,
    },
    /// Not a regular file (directory, symlink, submodule).
    Foreign(&'static str),
}

struct Entry {
    /// Path in the ledger (`records/000/000001-a-1.dsse.json`), or `envelopes.jsonl:<line>`.
    file: String,
    /// The shard directory it is in; `None` directly under `records/` (and for lines).
    dir: Option<String>,
    /// The seq the entry's place claims: the seq in a record file name, the line number of
    /// an envelopes file; `None` for a file that is not a record file.
    file_seq: Option<u64>,
    loc: Loc,
}

enum ReadFail {
    TooLarge(u64),
    Io(String),
}

/// Resolves a ledger branch to an existing ref: `refs/...` as given, else `refs/heads/<b>`,
/// else `refs/remotes/<b>` (a fresh clone only has `origin/relgate/records`).
fn resolve_ref(repo: &Repository, branch: &str) -> Result<String, String> {
    let mut candidates = vec![ledger_refname(branch)];
    if !branch.starts_with("refs/") {
        candidates.push(format!("refs/remotes/{branch}"));
        if branch == DEFAULT_BRANCH {
            candidates.push(format!("refs/remotes/origin/{branch}"));
        }
    }
    for c in &candidates {
        if repo.find_reference(c).is_ok() {
            return Ok(c.clone());
        }
    }
    Err(format!(
        "ledger branch {branch:?} not found (looked for {})",
        candidates.join(", ")
    ))
}

/// Turns off libgit2's re-hashing of every object it reads (`strict_hash_verification`), for
/// the whole process, before a git ledger is read. Re-hashing each shard tree version of the
/// history walk (up to 1,000 entries, read once per commit) was most of the cost of verifying
/// a ledger of a commit per record. It is sound to skip:
/// - every object entered the object store through a step that computed its id from its bytes
///   (git's index-pack on fetch and clone, libgit2's object writes and pack indexer in
///   `relgate record`); re-hashing on read only catches bytes changed on disk afterwards,
///   which takes write access to `.git`, and whoever has that can rewrite the branch and its
///   reflog outright (what the auditor's kept checkpoint is for);
/// - the verdict does not rest on git's ids: every record's bytes are checked against its
///   Ed25519 signature, the SHA-256 `prev` chain and the signed RFC 6962 root, whatever id git
///   gives them;
/// - accidental corruption is still caught: zlib's Adler-32 of every loose object and packed
///   entry is checked on inflate, and an object that does not inflate is a read error.
///
/// Process-wide and one-way: the processes that read ledgers (`verify`, `export`, `collect`)
/// decide no gate, and nothing in them relies on the re-hash.
fn relax_object_hashing() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| git2::opts::strict_hash_verification(false));
}

impl Reader {
    fn open(source: &LedgerSource) -> Result<Reader, String> {
        match source {
            LedgerSource::Dir(dir) => {
                if !dir.join(RECORDS_DIR).is_dir() {
                    return Err(format!("{} has no {RECORDS_DIR}/ directory", dir.display()));
                }
                Ok(Reader::Dir(dir.clone()))
            }
            LedgerSource::Git { repo, branch } => {
                relax_object_hashing();
                let r = Repository::open(repo)
                    .map_err(|e| format!("cannot open repository {}: {e}", repo.display()))?;
                let refname = resolve_ref(&r, branch)?;
                let commit = r
                    .find_reference(&refname)
                    .and_then(|x| x.peel_to_commit())
                    .map_err(|e| format!("{refname}: {e}"))?;
                Ok(Reader::Git {
                    repo_path: repo.clone(),
                    refname,
                    tree: commit.tree_id(),
                })
            }
        }
    }

    fn open_envelopes(path: &Path) -> Result<Reader, String> {
        if !path.is_file() {
            return Err(format!("{} is not a file", path.display()));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Ok(Reader::Envelopes {
            path: path.to_path_buf(),
            name,
        })
    }

    /// Every entry under `records/`: the files of each shard directory, plus anything else
    /// found there (files directly under `records/`, directories that are not shards,
    /// subdirectories of shards), so nothing is skipped unseen.
    fn list(&self) -> Result<Vec<Entry>, String> {
        let mut out = Vec::new();
        match self {
            Reader::Dir(dir) => {
                let rd = dir.join(RECORDS_DIR);
                for (name, ft, path) in read_dir_entries(&rd)? {
                    if ft.is_dir() && is_shard_name(&name) {
                        for (file_name, ft, path) in read_dir_entries(&path)? {
                            out.push(Entry {
                                file: format!("{RECORDS_DIR}/{name}/{file_name}"),
                                file_seq: parse_record_file_name(&file_name),
                                dir: Some(name.clone()),
                                loc: dir_loc(&ft, path, "a directory inside a shard"),
                            });
                        }
                    } else {
                        out.push(Entry {
                            file: format!("{RECORDS_DIR}/{name}"),
                            file_seq: parse_record_file_name(&name),
                            dir: None,
                            loc: dir_loc(&ft, path, "a directory that is not a shard (NNN)"),
                        });
                    }
                }
            }
            Reader::Git {
                repo_path, tree, ..
            } => {
                let repo = Repository::open(repo_path).map_err(|e| e.to_string())?;
                let top = repo.find_tree(*tree).map_err(|e| e.to_string())?;
                let Some(entry) = top.get_name(RECORDS_DIR) else {
                    return Ok(out);
                };
                if entry.kind() != Some(ObjectType::Tree) {
                    return Err(format!("{RECORDS_DIR} is not a directory"));
                }
                let sub = repo.find_tree(entry.id()).map_err(|e| e.to_string())?;
                for e in sub.iter() {
                    let name = String::from_utf8_lossy(e.name_bytes()).into_owned();
                    if e.kind() == Some(ObjectType::Tree) && is_shard_name(&name) {
                        let shard = repo.find_tree(e.id()).map_err(|e| e.to_string())?;
                        for f in shard.iter() {
                            let file_name = String::from_utf8_lossy(f.name_bytes()).into_owned();
                            out.push(Entry {
                                file: format!("{RECORDS_DIR}/{name}/{file_name}"),
                                file_seq: parse_record_file_name(&file_name),
                                dir: Some(name.clone()),
                                loc: git_loc(&f, "a directory inside a shard"),
                            });
                        }
                    } else {
                        out.push(Entry {
                            file: format!("{RECORDS_DIR}/{name}"),
                            file_seq: parse_record_file_name(&name),
                            dir: None,
                            loc: git_loc(&e, "a directory that is not a shard (NNN)"),
                        });
                    }
                }
            }
            Reader::Envelopes { path, name } => {
                for (index, (offset, len)) in line_spans(path)?.into_iter().enumerate() {
                    let line = index as u64 + 1;
                    out.push(Entry {
                        file: format!("{name}:{line}"),
                        dir: None,
                        file_seq: Some(line),
                        loc: Loc::Span { offset, len },
                    });
                }
            }
        }
        Ok(out)
    }

    fn read_top(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        match self {
            Reader::Dir(dir) => {
                let p = dir.join(name);
                match fs::File::open(&p) {
                    Ok(f) => {
                        let mut buf = Vec::new();
                        f.take(MAX_ENVELOPE_BYTES)
                            .read_to_end(&mut buf)
                            .map_err(|e| format!("{}: {e}", p.display()))?;
                        Ok(Some(buf))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(format!("{}: {e}", p.display())),
                }
            }
            Reader::Git {
                repo_path, tree, ..
            } => {
                let repo = Repository::open(repo_path).map_err(|e| e.to_string())?;
                let top = repo.find_tree(*tree).map_err(|e| e.to_string())?;
                let Some(entry) = top.get_name(name) else {
                    return Ok(None);
                };
                let blob = repo
                    .find_blob(entry.id())
                    .map_err(|e| format!("{name}: {e}"))?;
                Ok(Some(blob.content().to_vec()))
            }
            // Only the checkpoint travels with the envelopes; there is no head state.
            Reader::Envelopes { path, .. } if name == CHECKPOINT_FILE => {
                let dir = path.parent().unwrap_or(Path::new("."));
                Reader::Dir(dir.to_path_buf()).read_top(name)
            }
            Reader::Envelopes { .. } => Ok(None),
        }
    }

    fn is_envelopes(&self) -> bool {
        matches!(self, Reader::Envelopes { .. })
    }

    /// Per-thread state for reading entries: a repository handle (git), an open file
    /// (envelopes), nothing (directories).
    fn thread_state(&self) -> ThreadReader {
        match self {
            Reader::Dir(dir) => ThreadReader::Dir(dir.clone()),
            Reader::Git { repo_path, .. } => ThreadReader::Git(Repository::open(repo_path).ok()),
            Reader::Envelopes { path, .. } => ThreadReader::Envelopes(fs::File::open(path)),
        }
    }
}

/// What one worker thread reads entries with.
enum ThreadReader {
    Dir(PathBuf),
    Git(Option<Repository>),
    Envelopes(std::io::Result<fs::File>),
}

impl ThreadReader {
    fn read(&self, entry: &Entry) -> Result<Vec<u8>, ReadFail> {
        match (self, &entry.loc) {
            (ThreadReader::Dir(dir), Loc::File) => read_path(&dir.join(&entry.file)),
            (ThreadReader::Dir(_), Loc::Path(p)) => read_path(p),
            (ThreadReader::Git(repo), Loc::Blob(oid)) => read_blob(repo.as_ref(), *oid),
            (ThreadReader::Envelopes(file), Loc::Span { offset, len }) => match file {
                Ok(f) => read_span(f, *offset, *len),
                Err(e) => Err(ReadFail::Io(e.to_string())),
            },
            _ => Err(ReadFail::Io("not a readable record".into())),
        }
    }
}

/// Reads `entries` in parallel, `chunk` at a time: `f(index of the chunk's first entry,
/// chunk, read)` per chunk; the results in entry order.
fn par_read_chunks<'a, T: Send>(
    reader: &Reader,
    entries: &'a [Entry],
    chunk: usize,
    f: impl Fn(usize, &'a [Entry], &dyn Fn(&Entry) -> Result<Vec<u8>, ReadFail>) -> Vec<T> + Sync,
) -> Vec<T> {
    par_read_chunked(reader, entries, chunk, f)
        .into_iter()
        .flatten()
        .collect()
}

/// [`par_read_chunks`] without flattening: one `Vec` per chunk, so a caller that only
/// iterates never holds the results twice.
fn par_read_chunked<'a, T: Send>(
    reader: &Reader,
    entries: &'a [Entry],
    chunk: usize,
    f: impl Fn(usize, &'a [Entry], &dyn Fn(&Entry) -> Result<Vec<u8>, ReadFail>) -> Vec<T> + Sync,
) -> Vec<Vec<T>> {
    entries
        .par_chunks(chunk.max(1))
        .enumerate()
        .map_init(
            || reader.thread_state(),
            |state, (index, entries)| {
                let read = |e: &Entry| state.read(e);
                f(index * chunk.max(1), entries, &read)
            },
        )
        .collect()
}

/// The entries of a directory: name, type (not following symlinks), path.
fn read_dir_entries(dir: &Path) -> Result<Vec<(String, fs::FileType, PathBuf)>, String> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let e = e.map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let ft = e.file_type().map_err(|e| format!("{name}: {e}"))?;
        out.push((name, ft, e.path()));
    }
    Ok(out)
}

fn dir_loc(ft: &fs::FileType, path: PathBuf, what_dir: &'static str) -> Loc {
    if ft.is_file() && path.file_name().and_then(|n| n.to_str()).is_some() {
        Loc::File
    } else if ft.is_file() {
        Loc::Path(path)
    } else if ft.is_dir() {
        Loc::Foreign(what_dir)
    } else {
        Loc::Foreign("not a regular file")
    }
}

fn git_loc(e: &git2::TreeEntry<'_>, what_dir: &'static str) -> Loc {
    match (e.kind(), e.filemode()) {
        (Some(ObjectType::Blob), 0o100_644 | 0o100_755) => Loc::Blob(e.id()),
        (Some(ObjectType::Tree), _) => Loc::Foreign(what_dir),
        _ => Loc::Foreign("not a regular file"),
    }
}

fn read_path(path: &Path) -> Result<Vec<u8>, ReadFail> {
    let f = fs::File::open(path).map_err(|e| ReadFail::Io(e.to_string()))?;
    let size = f.metadata().map_err(|e| ReadFail::Io(e.to_string()))?.len();
    if size > MAX_ENVELOPE_BYTES {
        return Err(ReadFail::TooLarge(size));
    }
    let mut buf = Vec::with_capacity(size as usize);
    f.take(MAX_ENVELOPE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ReadFail::Io(e.to_string()))?;
    if buf.len() as u64 > MAX_ENVELOPE_BYTES {
        return Err(ReadFail::TooLarge(buf.len() as u64));
    }
    Ok(buf)
}

/// One line of an envelopes file.
fn read_span(file: &fs::File, offset: u64, len: u64) -> Result<Vec<u8>, ReadFail> {
    use std::os::unix::fs::FileExt as _;
    if len > MAX_ENVELOPE_BYTES {
        return Err(ReadFail::TooLarge(len));
    }
    let mut buf = vec![0; len as usize];
    file.read_exact_at(&mut buf, offset)
        .map_err(|e| ReadFail::Io(e.to_string()))?;
    Ok(buf)
}

/// The lines of an envelopes file as (offset, length without the newline), read in blocks so
/// that a huge line is never held in memory. A final newline ends the last line, it does not
/// start an empty one.
fn line_spans(path: &Path) -> Result<Vec<(u64, u64)>, String> {
    let mut file = fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut spans = Vec::new();
    let mut block = vec![0u8; 64 * 1024];
    let mut start: u64 = 0;
    let mut pos: u64 = 0;
    loop {
        let n = match file.read(&mut block) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        for (i, b) in block[..n].iter().enumerate() {
            if *b == b'\n' {
                let end = pos + i as u64;
                spans.push((start, end - start));
                start = end + 1;
            }
        }
        pos += n as u64;
    }
    if pos > start {
        spans.push((start, pos - start));
    }
    Ok(spans)
}

fn read_blob(repo: Option<&Repository>, oid: Oid) -> Result<Vec<u8>, ReadFail> {
    let repo = repo.ok_or_else(|| ReadFail::Io("cannot open repository".into()))?;
    let odb = repo.odb().map_err(|e| ReadFail::Io(e.to_string()))?;
    let (size, _) = odb
        .read_header(oid)
        .map_err(|e| ReadFail::Io(e.to_string()))?;
    if size as u64 > MAX_ENVELOPE_BYTES {
        return Err(ReadFail::TooLarge(size as u64));
    }
    let obj = odb.read(oid).map_err(|e| ReadFail::Io(e.to_string()))?;
    Ok(obj.data().to_vec())
}

// ---------------------------------------------------------------------------------------------
// Per-record checks (parallel)
// ---------------------------------------------------------------------------------------------

/// What examining one entry found. Kept for every record until the ledger-wide checks, so it
/// borrows its file name from the entry and holds hashes as bytes.
struct RecordInfo<'a> {
    file: &'a str,
    file_seq: Option<u64>,
    seq: Option<u64>,
    prev: Option<Hash>,
    payload_sha: Option<Hash>,
    leaf: Option<Hash>,
    signature_ok: bool,
    problems: Vec<Problem>,
    payload: Option<serde_json::Value>,
    /// `git.commit`, when the record names one.
    commit: Option<String>,
    /// `changed_in`.
    changed_in: Vec<String>,
    /// `git.ref`, when the record names a branch.
    git_ref: Option<String>,
}

/// A signature check left for batch verification: one signature by a trusted key.
struct Deferred {
    key: VerifyingKey,
    key_id: String,
    signature: Signature,
    message: Vec<u8>,
}

fn examine<'a>(
    entry: &'a Entry,
    bytes: Result<Vec<u8>, ReadFail>,
    keys: &TrustedKeys,
    keep: bool,
    batch: bool,
) -> (RecordInfo<'a>, Option<Deferred>) {
    let file_seq = entry.file_seq;
    let mut info = RecordInfo {
        file: &entry.file,
        file_seq,
        seq: None,
        prev: None,
        payload_sha: None,
        leaf: None,
        signature_ok: false,
        problems: Vec::new(),
        payload: None,
        commit: None,
        changed_in: Vec::new(),
        git_ref: None,
    };
    let here = |seq: Option<u64>| at(seq, Some(&entry.file));
    if file_seq.is_none() {
        info.problems.push(Problem::new(
            ProblemKind::ForeignFile,
            here(None),
            format!(
                "{} is not a record file (expected NNNNNN-<name>-<version>.dsse.json)",
                entry.file
            ),
        ));
        return (info, None);
    }
    let bytes = match bytes {
        Ok(b) => b,
        Err(ReadFail::TooLarge(size)) => {
            info.problems.push(Problem::new(
                ProblemKind::TooLarge,
                here(file_seq),
                format!("{} is {size} bytes, above the {MAX_ENVELOPE_BYTES}-byte record limit; not read", entry.file),
            ));
            return (info, None);
        }
        Err(ReadFail::Io(e)) => {
            info.problems.push(Problem::new(
                ProblemKind::ReadError,
                here(file_seq),
                format!("cannot read {}: {e}", entry.file),
            ));
            return (info, None);
        }
    };
    let envelope = match Envelope::from_slice(&bytes) {
        Ok(e) => e,
        Err(e) => {
            let kind = match e {
                DsseError::TooLarge { .. } => ProblemKind::TooLarge,
                DsseError::NotUtf8 { .. } => ProblemKind::NotUtf8,
                DsseError::WrongPayloadType(_) => ProblemKind::WrongPayloadType,
                _ => ProblemKind::InvalidJson,
            };
            info.problems.push(Problem::new(
                kind,
                here(file_seq),
                format!("{}: {e}", entry.file),
            ));
            return (info, None);
        }
    };
    let payload = match envelope.decode_payload() {
        Ok(p) => p,
        Err(e) => {
            info.problems.push(Problem::new(
                ProblemKind::BadBase64,
                here(file_seq),
                format!("{}: {e}", entry.file),
            ));
            return (info, None);
        }
    };
    let sha: Hash = Sha256::digest(&payload).into();
    info.payload_sha = Some(sha);
    info.leaf = Some(merkle::leaf_hash(&payload));
    let head = PayloadHead::parse(&payload);
    if let Ok(h) = &head {
        info.seq = Some(h.predicate.change.seq);
        info.commit = h
            .predicate
            .change
            .git
            .as_ref()
            .map(|g| g.commit.clone())
            .filter(|c| !c.is_empty());
        info.changed_in = h.predicate.change.changed_in.clone();
        info.git_ref = h
            .predicate
            .change
            .git
            .as_ref()
            .and_then(|g| g.git_ref.clone())
            .filter(|r| r.starts_with("refs/heads/"));
        // PayloadHead::parse checked that prev is 64 lowercase hex digits.
        info.prev = hex::decode(&h.predicate.change.prev)
            .ok()
            .and_then(|b| Hash::try_from(b.as_slice()).ok());
    }
    let seq = info.seq.or(file_seq);
    let deferred = if batch {
        defer_signature(&envelope, &payload, keys)
    } else {
        None
    };
    let verified = if deferred.is_some() {
        Ok(())
    } else {
        envelope.verify(keys).map(|_| ())
    };
    match verified {
        Ok(()) => info.signature_ok = deferred.is_none(),
        Err(e) => {
            let kind = match &e {
                DsseError::BadBase64 { .. } => ProblemKind::BadBase64,
                DsseError::NoSignatures => ProblemKind::NoSignature,
                DsseError::UntrustedKey(_) => ProblemKind::UntrustedKey,
                DsseError::WrongPayloadType(_) => ProblemKind::WrongPayloadType,
                _ => ProblemKind::BadSignature,
            };
            let message = match &e {
                // Most often a key rotated out of the trusted directory instead of retired:
                // say so, so it is not read as a forged record without a second look.
                DsseError::UntrustedKey(ids) => format!(
                    "{}: signed by key {}, which is not among the trusted keys (neither the key \
                     directory nor its retired/ subdirectory): if it is a former signing key, \
                     retire it (keep its public key in <keys>/retired/) and this record \
                     verifies; otherwise this record was not made by a trusted signer",
                    entry.file,
                    ids.join(", ")
                ),
                _ => format!("{}: {e}", entry.file),
            };
            info.problems.push(Problem::new(kind, here(seq), message));
        }
    }
    if let Err(e) = head {
        info.problems.push(Problem::new(
            ProblemKind::InvalidStatement,
            here(seq),
            format!(
                "{}: payload is not a relgate change Statement: {e}",
                entry.file
            ),
        ));
    } else if keep {
        info.payload = serde_json::from_slice(&payload).ok();
    }
    (info, deferred)
}

/// Records examined per batch signature verification.
const BATCH: usize = 64;

/// The fast path: exactly one signature, by a trusted (non-weak) key, well-formed.
fn defer_signature(envelope: &Envelope, payload: &[u8], keys: &TrustedKeys) -> Option<Deferred> {
    let [sig] = envelope.signatures.as_slice() else {
        return None;
    };
    let key = keys.get(&sig.keyid)?;
    if key.is_weak() {
        return None;
    }
    let raw = B64.decode(sig.sig.as_bytes()).ok()?;
    let signature = Signature::from_slice(&raw).ok()?;
    Some(Deferred {
        key: *key,
        key_id: sig.keyid.clone(),
        signature,
        message: dsse::pae(&envelope.payload_type, payload),
    })
}

/// Examines a chunk of records; their deferred signatures are checked with one batch
/// verification, and only if the batch fails, one by one (strictly) to name the bad ones.
fn examine_chunk<'a>(
    chunk: &'a [Entry],
    mut read: impl FnMut(&Entry) -> Result<Vec<u8>, ReadFail>,
    keys: &TrustedKeys,
    options: &VerifyOptions,
) -> Vec<RecordInfo<'a>> {
    let batch = !options.strict_signatures;
    let mut infos = Vec::with_capacity(chunk.len());
    let mut pending: Vec<(usize, Deferred)> = Vec::new();
    for entry in chunk {
        let (info, deferred) = examine(entry, read(entry), keys, options.keep_payloads, batch);
        if let Some(d) = deferred {
            pending.push((infos.len(), d));
        }
        infos.push(info);
    }
    if pending.is_empty() {
        return infos;
    }
    let messages: Vec<&[u8]> = pending.iter().map(|(_, d)| d.message.as_slice()).collect();
    let signatures: Vec<Signature> = pending.iter().map(|(_, d)| d.signature).collect();
    let verifying_keys: Vec<VerifyingKey> = pending.iter().map(|(_, d)| d.key).collect();
    if ed25519_dalek::verify_batch(&messages, &signatures, &verifying_keys).is_ok() {
        for (i, _) in &pending {
            infos[*i].signature_ok = true;
        }
        return infos;
    }
    for (i, d) in &pending {
        let info = &mut infos[*i];
        if d.key.verify_strict(&d.message, &d.signature).is_ok() {
            info.signature_ok = true;
        } else {
            let seq = info.seq.or(info.file_seq);
            let message = format!(
                "{}: signature by trusted key {} does not verify (payload or signature altered)",
                info.file, d.key_id
            );
            info.problems.push(Problem::new(
                ProblemKind::BadSignature,
                at(seq, Some(info.file)),
                message,
            ));
        }
    }
    infos
}

fn read_and_examine<'a>(
    reader: &Reader,
    entries: &'a [Entry],
    keys: &TrustedKeys,
    options: &VerifyOptions,
    progress: &dyn Progress,
) -> Vec<Vec<RecordInfo<'a>>> {
    par_read_chunked(reader, entries, BATCH, |_, chunk, read| {
        let infos = examine_chunk(chunk, read, keys, options);
        progress.advance(chunk.len() as u64);
        infos
    })
}

// ---------------------------------------------------------------------------------------------
// Ledger-wide checks
// ---------------------------------------------------------------------------------------------

/// The entries of the ledger in ledger order (by the seq their place claims, then by path),
/// with foreign entries and records outside their shard reported. `None` when the ledger
/// cannot be listed (reported).
fn list_entries(reader: &Reader, report: &mut VerifyReport) -> Option<Vec<Entry>> {
    let mut entries = match reader.list() {
        Ok(e) => e,
        Err(msg) => {
            report.push(ProblemKind::SourceUnavailable, None, msg);
            return None;
        }
    };
    let mut foreign = Vec::new();
    entries.retain(|e| match &e.loc {
        Loc::Foreign(what) => {
            foreign.push(Problem::new(
                ProblemKind::ForeignFile,
                at(e.file_seq, Some(&e.file)),
                format!("{} is {what}, not a record file", e.file),
            ));
            false
        }
        _ => true,
    });
    report.problems.extend(foreign);
    // Each record file lives in the shard directory of its seq (lines of an envelopes file
    // have no shard).
    if !reader.is_envelopes() {
        for e in &entries {
            let Some(seq) = e.file_seq else {
                continue;
            };
            let want = shard_name(seq);
            if e.dir.as_deref() != Some(want.as_str()) {
                report.push(
                    ProblemKind::WrongShard,
                    at(Some(seq), Some(&e.file)),
                    format!(
                        "{} is not in its shard directory: record {seq} belongs in {RECORDS_DIR}/{want}/",
                        e.file
                    ),
                );
            }
        }
    }
    // Ledger order: by the seq the place claims, then by file name, then by path.
    fn key(e: &Entry) -> (u64, &str, &str) {
        let name = e.file.rsplit('/').next().unwrap_or_default();
        (e.file_seq.unwrap_or(u64::MAX), name, &e.file)
    }
    entries.sort_by(|a, b| key(a).cmp(&key(b)));
    Some(entries)
}

/// What verification keeps of each entry for reading it again ([`VerifiedLedger`]).
#[derive(Debug, Clone, Copy)]
struct Checked {
    /// Payload seq, else the seq of its place.
    seq: Option<u64>,
    /// SHA-256 of the payload that was verified.
    payload_sha: Option<Hash>,
    /// Its signature verified under a trusted key.
    signature_ok: bool,
}

/// Checks the listed entries (records, sequence, chain, checkpoints, state); one [`Checked`]
/// per entry, in entry order.
fn check_entries(
    reader: &Reader,
    entries: &[Entry],
    keys: &TrustedKeys,
    old_checkpoint: Option<&str>,
    options: &VerifyOptions,
    progress: &dyn Progress,
    report: &mut VerifyReport,
) -> Vec<Checked> {
    progress.start(entries.len() as u64);
    // Kept in chunks (one per batch) and viewed through references, so the records'
    // infos are never held twice.
    let mut chunks = read_and_examine(reader, entries, keys, options, progress);
    let checked = chunks
        .iter()
        .flatten()
        .map(|i| Checked {
            seq: i.seq.or(i.file_seq),
            payload_sha: i.payload_sha,
            signature_ok: i.signature_ok,
        })
        .collect();
    let mut infos: Vec<&mut RecordInfo<'_>> = chunks.iter_mut().flatten().collect();
    report.records = infos.len() as u64;
    for info in &mut infos {
        if info.signature_ok {
            report.verified_signatures += 1;
            // Only signed records vouch for a commit being recorded.
            if let Some(commit) = &info.commit {
                if let Some(seq) = info.seq {
                    if report.first_commit.as_ref().is_none_or(|(s, _)| seq < *s) {
                        report.first_commit = Some((seq, commit.clone()));
                    }
                }
                report.named_commits.insert(commit.clone());
            }
            if let (Some(git_ref), Some(seq)) = (&info.git_ref, info.seq) {
                if report.last_ref.as_ref().is_none_or(|(s, _)| seq > *s) {
                    report.last_ref = Some((seq, git_ref.clone()));
                }
            }
            report.named_commits.extend(info.changed_in.drain(..));
        }
        report.problems.append(&mut info.problems);
        if let Some(payload) = info.payload.take() {
            report.payloads.push(RecordPayload {
                record: RecordRef {
                    seq: info.seq,
                    file: Some(info.file.to_owned()),
                    commit: None,
                },
                signature_ok: info.signature_ok,
                payload,
            });
        }
    }
    // Foreign files take no part in the sequence.
    let infos: Vec<&RecordInfo<'_>> = infos
        .into_iter()
        .map(|i| &*i)
        .filter(|i| i.file_seq.is_some())
        .collect();

    check_sequence(&infos, report);
    check_chain(&infos, report);

    // Merkle tree over the records in ledger order.
    let leaves: Vec<Hash> = infos.iter().filter_map(|i| i.leaf).collect();
    let mut frontier = Frontier::new();
    for l in &leaves {
        frontier.append_leaf_hash(*l);
    }
    let root = frontier.root();
    report.computed_root = Some(B64.encode(root));
    let n = leaves.len() as u64;

    let genesis_origin = infos
        .iter()
        .find(|i| i.seq == Some(1))
        .and_then(|i| i.payload_sha)
        .map(|h| default_origin(&h));
    let state = match reader.read_top(STATE_FILE) {
        Ok(Some(b)) => serde_json::from_slice::<LedgerState>(&b).ok(),
        _ => None,
    };
    let expected_origin = options
        .expected_origin
        .clone()
        .or_else(|| state.as_ref().map(|s| s.origin.clone()))
        .or_else(|| genesis_origin.clone());

    let current = check_checkpoint(
        reader,
        keys,
        &leaves,
        root,
        expected_origin.as_deref(),
        genesis_origin.as_deref(),
        report,
    );
    if let Some(old) = old_checkpoint {
        check_old_checkpoint(
            old,
            keys,
            &leaves,
            root,
            current.as_ref(),
            expected_origin.as_deref(),
            report,
        );
    }
    // An envelopes file carries no head state to compare.
    if !reader.is_envelopes() {
        check_state(state.as_ref(), &frontier, n, &infos, report);
    }
    checked
}

fn check_sequence(infos: &[&RecordInfo<'_>], report: &mut VerifyReport) {
    for i in infos {
        if let (Some(fs), Some(ps)) = (i.file_seq, i.seq) {
            if fs != ps {
                report.push(
                    ProblemKind::FileSeqMismatch,
                    at(Some(ps), Some(i.file)),
                    format!("{} holds record seq {ps}, but its name says {fs}", i.file),
                );
            }
        }
    }
    let effective: Vec<(u64, &str)> = infos
        .iter()
        .filter_map(|i| i.seq.or(i.file_seq).map(|s| (s, i.file)))
        .collect();
    let mut all: Vec<u64> = effective.iter().map(|(s, _)| *s).collect();
    all.sort_unstable();
    all.dedup();
    let present_in = |lo: u64, hi: u64| -> bool {
        // Any seq in [lo, hi) present anywhere in the ledger?
        let idx = all.partition_point(|&s| s < lo);
        idx < all.len() && all[idx] < hi
    };
    let mut first_file: HashMap<u64, &str> = HashMap::with_capacity(effective.len());
    let mut expected: u64 = 1;
    for &(s, file) in &effective {
        if let Some(first) = first_file.get(&s) {
            report.push(
                ProblemKind::SeqDuplicate,
                at(Some(s), Some(file)),
                format!("record seq {s} appears again in {file} (first in {first})"),
            );
            continue;
        }
        first_file.insert(s, file);
        if s == expected {
            expected = s + 1;
        } else if s > expected {
            if present_in(expected, s) {
                report.push(
                    ProblemKind::SeqOutOfOrder,
                    at(Some(s), Some(file)),
                    format!(
                        "record seq {s} ({file}) comes before seq {expected}: records reordered"
                    ),
                );
            } else {
                let last = s - 1;
                let range = if last == expected {
                    format!("record {expected} is")
                } else {
                    format!("records {expected}..={last} are")
                };
                report.push(
                    ProblemKind::SeqGap,
                    at(Some(expected), None),
                    format!("{range} missing: the sequence jumps to {s} at {file}"),
                );
            }
            expected = s + 1;
        } else {
            report.push(
                ProblemKind::SeqOutOfOrder,
                at(Some(s), Some(file)),
                format!(
                    "record seq {s} ({file}) comes after seq {}: records reordered",
                    expected - 1
                ),
            );
        }
    }
}

fn check_chain(infos: &[&RecordInfo<'_>], report: &mut VerifyReport) {
    let mut by_seq: HashMap<u64, Hash> = HashMap::with_capacity(infos.len());
    for i in infos {
        if let (Some(s), Some(h)) = (i.seq, i.payload_sha) {
            by_seq.entry(s).or_insert(h);
        }
    }
    for i in infos {
        let (Some(s), Some(prev)) = (i.seq, &i.prev) else {
            continue;
        };
        // GENESIS_PREV is 64 zeros.
        let want: Option<Hash> = if s == 1 {
            Some([0; 32])
        } else {
            by_seq.get(&(s - 1)).copied()
        };
        match want {
            Some(w) if &w != prev => report.push(
                ProblemKind::PrevMismatch,
                at(Some(s), Some(i.file)),
                format!(
                    "record {s} ({}) has prev {}, but the payload of record {} hashes to {}",
                    i.file,
                    short(&hex::encode(prev)),
                    s.saturating_sub(1),
                    short(&hex::encode(w))
                ),
            ),
            // The predecessor is missing: reported as a gap.
            _ => {}
        }
    }
}

fn short(h: &str) -> String {
    h.chars().take(16).collect::<String>() + "…"
}

#[allow(clippy::too_many_arguments)]
fn check_checkpoint(
    reader: &Reader,
    keys: &TrustedKeys,
    leaves: &[Hash],
    root: Hash,
    expected_origin: Option<&str>,
    genesis_origin: Option<&str>,
    report: &mut VerifyReport,
) -> Option<super::checkpoint::Checkpoint> {
    let cp_ref = || at(None, Some(CHECKPOINT_FILE));
    let text = match reader.read_top(CHECKPOINT_FILE) {
        Ok(Some(b)) => match String::from_utf8(b) {
            Ok(t) => t,
            Err(_) => {
                report.push(
                    ProblemKind::CheckpointMalformed,
                    cp_ref(),
                    "CHECKPOINT is not UTF-8",
                );
                return None;
            }
        },
        Ok(None) => {
            if !leaves.is_empty() {
                report.push(
                    ProblemKind::CheckpointMissing,
                    cp_ref(),
                    "the ledger has records but no CHECKPOINT",
                );
            }
            return None;
        }
        Err(e) => {
            report.push(
                ProblemKind::ReadError,
                cp_ref(),
                format!("cannot read CHECKPOINT: {e}"),
            );
            return None;
        }
    };
    let verified = match open_checkpoint(&text, keys) {
        Ok(v) => v,
        Err(e) => {
            let kind = match e {
                CheckpointError::Malformed(_) => ProblemKind::CheckpointMalformed,
                CheckpointError::Untrusted(_) => ProblemKind::CheckpointUntrusted,
                CheckpointError::BadSignature(_) => ProblemKind::CheckpointBadSignature,
            };
            report.push(kind, cp_ref(), format!("CHECKPOINT: {e}"));
            return None;
        }
    };
    let cp = verified.checkpoint;
    report.checkpoint = Some(CheckpointInfo {
        origin: cp.origin.clone(),
        size: cp.size,
        root: B64.encode(cp.root),
        key_id: Some(verified.key_id.to_string()),
    });
    let n = leaves.len() as u64;
    let mut ok = true;
    if let Some(want) = expected_origin {
        if cp.origin != want {
            ok = false;
            report.push(
                ProblemKind::CheckpointOriginMismatch,
                cp_ref(),
                format!("CHECKPOINT is for ledger {:?}, this ledger is {want:?}: copied from another ledger", cp.origin),
            );
        }
    }
    if let Some(g) = genesis_origin {
        let default_shape = cp
            .origin
            .strip_prefix(ORIGIN_PREFIX)
            .is_some_and(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()));
        if ok && default_shape && cp.origin != g {
            ok = false;
            report.push(
                ProblemKind::CheckpointOriginMismatch,
                cp_ref(),
                format!(
                    "CHECKPOINT origin {:?} does not match this ledger's first record ({g:?})",
                    cp.origin
                ),
            );
        }
    }
    if cp.size > n {
        ok = false;
        report.push(
            ProblemKind::CheckpointSizeMismatch,
            at(Some(n + 1), Some(CHECKPOINT_FILE)),
            format!(
                "CHECKPOINT covers {} records but the ledger has {n}: record(s) {}..={} removed",
                cp.size,
                n + 1,
                cp.size
            ),
        );
    } else {
        let prefix_root = if cp.size == n {
            root
        } else {
            merkle::root_from_leaf_hashes(&leaves[..cp.size as usize])
        };
        if prefix_root != cp.root {
            ok = false;
            report.push(
                ProblemKind::CheckpointRootMismatch,
                cp_ref(),
                format!("CHECKPOINT root for {} records does not match the records: a record was changed", cp.size),
            );
        } else if cp.size < n {
            ok = false;
            report.push(
                ProblemKind::CheckpointStale,
                at(Some(cp.size + 1), Some(CHECKPOINT_FILE)),
                format!(
                    "CHECKPOINT covers only {} of {n} records: it was rolled back (records from {} on are not covered)",
                    cp.size,
                    cp.size + 1
                ),
            );
        }
    }
    if ok {
        report.checkpoint_text = Some(text);
    }
    Some(cp)
}

fn check_old_checkpoint(
    old: &str,
    keys: &TrustedKeys,
    leaves: &[Hash],
    root: Hash,
    current: Option<&super::checkpoint::Checkpoint>,
    expected_origin: Option<&str>,
    report: &mut VerifyReport,
) {
    let old_ref = || at(None, Some("old checkpoint"));
    let old = match open_checkpoint(old, keys) {
        Ok(v) => v.checkpoint,
        Err(e) => {
            report.push(
                ProblemKind::OldCheckpointInvalid,
                old_ref(),
                format!("the older checkpoint cannot be used: {e}"),
            );
            return;
        }
    };
    let this_origin = current.map(|c| c.origin.as_str()).or(expected_origin);
    if let Some(o) = this_origin {
        if old.origin != o {
            report.push(
                ProblemKind::LedgerMismatch,
                old_ref(),
                format!("the older checkpoint is for ledger {:?}, this ledger is {o:?}: a different ledger", old.origin),
            );
            return;
        }
    }
    let n = leaves.len() as u64;
    if old.size > n {
        report.push(
            ProblemKind::Rollback,
            at(Some(n + 1), Some("old checkpoint")),
            format!(
                "the older checkpoint covers {} records, the ledger now has {n}: rolled back (records {}..={} gone)",
                old.size,
                n + 1,
                old.size
            ),
        );
        return;
    }
    // The same proof a remote auditor would be sent: verify it against the computed root.
    let proof = merkle::consistency_proof(old.size, leaves).unwrap_or_default();
    let verified = merkle::verify_consistency(old.size, n, &old.root, &root, &proof).is_ok();
    report.consistency = Some(ConsistencyInfo {
        old_size: old.size,
        new_size: n,
        proof: proof.iter().map(hex::encode).collect(),
        verified,
    });
    if !verified {
        report.push(
            ProblemKind::ConsistencyFailed,
            old_ref(),
            format!(
                "the first {} records are not the ones the older checkpoint covered: the ledger history was rewritten",
                old.size
            ),
        );
    }
}

fn check_state(
    state: Option<&LedgerState>,
    frontier: &Frontier,
    n: u64,
    infos: &[&RecordInfo<'_>],
    report: &mut VerifyReport,
) {
    let Some(state) = state else {
        if n > 0 {
            report.push(
                ProblemKind::StateMismatch,
                at(None, Some(STATE_FILE)),
                format!("{STATE_FILE} is missing or unreadable; the next append rebuilds it from the records"),
            );
        }
        return;
    };
    let head_sha = infos.last().and_then(|i| i.payload_sha).map(hex::encode);
    let frontier_ok = Frontier::from_state(&state.frontier)
        .map(|f| f.root() == frontier.root())
        .unwrap_or(false);
    if state.size != n
        || head_sha.as_deref().unwrap_or(GENESIS_PREV) != state.head_sha256
        || !frontier_ok
    {
        report.push(
            ProblemKind::StateMismatch,
            at(None, Some(STATE_FILE)),
            format!(
                "{STATE_FILE} (size {}, head {}) does not describe the records (size {n}, head {}); \
                 the next append will refuse",
                state.size,
                short(&state.head_sha256),
                short(head_sha.as_deref().unwrap_or(GENESIS_PREV))
            ),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Git history
// ---------------------------------------------------------------------------------------------

fn records_tree<'r>(repo: &'r Repository, tree: &Tree<'_>) -> Option<Tree<'r>> {
    tree.get_name(RECORDS_DIR)
        .filter(|e| e.kind() == Some(ObjectType::Tree))
        .and_then(|e| repo.find_tree(e.id()).ok())
}

fn commit_ref(seq: Option<u64>, file: Option<String>, commit: Oid) -> Option<RecordRef> {
    Some(RecordRef {
        seq,
        file,
        commit: Some(commit.to_string()),
    })
}

/// One entry of a tree, as the history walk compares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Item {
    oid: Oid,
    /// A subtree.
    tree: bool,
    /// A regular file (blob with mode 100644 or 100755).
    file: bool,
}

/// The entries of tree `oid`, by name.
fn tree_items(repo: &Repository, oid: Oid) -> Result<BTreeMap<String, Item>, git2::Error> {
    let tree = repo.find_tree(oid)?;
    Ok(tree
        .iter()
        .map(|e| {
            let kind = e.kind();
            (
                String::from_utf8_lossy(e.name_bytes()).into_owned(),
                Item {
                    oid: e.id(),
                    tree: kind == Some(ObjectType::Tree),
                    file: kind == Some(ObjectType::Blob)
                        && matches!(e.filemode(), 0o100_644 | 0o100_755),
                },
            )
        })
        .collect())
}

/// What the walk carries from one commit to the next.
struct Walk<'a> {
    repo: &'a Repository,
    report: &'a mut VerifyReport,
    /// The commit being checked.
    id: Oid,
    /// Records the commit added: (seq, path).
    added: Vec<(u64, String)>,
    /// Raw bytes of the shard tree read last (usually the head shard of the previous commit,
    /// which the next append extends).
    shard_cache: Option<(Oid, Vec<u8>)>,
}

impl Walk<'_> {
    fn push(&mut self, kind: ProblemKind, seq: Option<u64>, path: &str, message: String) {
        self.report.push(
            kind,
            commit_ref(seq, Some(path.to_owned()), self.id),
            message,
        );
    }

    /// An entry the commit added to shard `shard`.
    fn added_entry(&mut self, shard: &str, file: bool, name: &str) {
        let path = format!("{RECORDS_DIR}/{shard}/{name}");
        match parse_record_file_name(name).filter(|_| file) {
            Some(seq) => self.added.push((seq, path)),
            None => {
                let id = self.id;
                self.push(
                    ProblemKind::HistoryUnexpectedFile,
                    None,
                    &path,
                    format!("commit {id} added {path}, which is not a record file"),
                );
            }
        }
    }

    fn removed_entry(&mut self, shard: &str, name: &str) {
        let path = format!("{RECORDS_DIR}/{shard}/{name}");
        let id = self.id;
        self.push(
            ProblemKind::HistoryRecordRemoved,
            parse_record_file_name(name),
            &path,
            format!("commit {id} removed {path}"),
        );
    }

    fn read_error(&mut self, e: git2::Error) {
        let id = self.id;
        self.report.push(
            ProblemKind::ReadError,
            commit_ref(None, None, id),
            format!("commit {id}: {e}"),
        );
    }

    /// Compares shard `shard` before (`old`, absent when new) and after the commit. An append
    /// leaves the old tree's bytes as a prefix of the new one's (entries sorted by zero-padded
    /// seq), so usually only the new entries are parsed; otherwise the entries are diffed.
    fn diff_shard(&mut self, shard: &str, old: Option<Oid>, new: Oid) {
        let old_raw = match old {
            None => Some(Vec::new()),
            Some(o) => match self.shard_cache.take() {
                Some((cached, raw)) if cached == o => Some(raw),
                _ => raw_object(self.repo, o),
            },
        };
        let new_raw = raw_object(self.repo, new);
        let appended = match (&old_raw, &new_raw) {
            (Some(o), Some(n)) => appended_entries(o, n),
            _ => None,
        };
        if let Some(entries) = appended {
            for (file, name) in entries {
                self.added_entry(shard, file, &name);
            }
        } else {
            let old_items = match old.map(|o| tree_items(self.repo, o)).transpose() {
                Ok(items) => items.unwrap_or_default(),
                Err(e) => return self.read_error(e),
            };
            let new_items = match tree_items(self.repo, new) {
                Ok(items) => items,
                Err(e) => return self.read_error(e),
            };
            let names: BTreeSet<&String> = old_items.keys().chain(new_items.keys()).collect();
            for name in names {
                match (old_items.get(name), new_items.get(name)) {
                    (None, Some(n)) => self.added_entry(shard, n.file, name),
                    (Some(_), None) => self.removed_entry(shard, name),
                    (Some(a), Some(b)) if a != b => {
                        let path = format!("{RECORDS_DIR}/{shard}/{name}");
                        let id = self.id;
                        self.push(
                            ProblemKind::HistoryRecordChanged,
                            parse_record_file_name(name),
                            &path,
                            format!("commit {id} changed {path}"),
                        );
                    }
                    _ => {}
                }
            }
        }
        self.shard_cache = new_raw.map(|raw| (new, raw));
    }

    /// Shard `shard` (tree `old`) disappeared: every record in it was removed.
    fn removed_shard(&mut self, shard: &str, old: Oid) {
        match tree_items(self.repo, old) {
            Ok(items) => {
                for name in items.keys() {
                    self.removed_entry(shard, name);
                }
            }
            Err(e) => self.read_error(e),
        }
    }
}

fn check_history(repo: &Repository, refname: &str, report: &mut VerifyReport) {
    let head = match repo
        .find_reference(refname)
        .and_then(|r| r.peel_to_commit())
    {
        Ok(c) => c,
        Err(e) => {
            report.push(
                ProblemKind::SourceUnavailable,
                None,
                format!("{refname}: {e}"),
            );
            return;
        }
    };
    // First-parent chain, newest first.
    let mut chain = Vec::new();
    let mut cur = Some(head);
    while let Some(c) = cur {
        if c.parent_count() > 1 {
            report.push(
                ProblemKind::HistoryFork,
                commit_ref(None, None, c.id()),
                format!(
                    "ledger commit {} is a merge of {} branches: the ledger was forked",
                    c.id(),
                    c.parent_count()
                ),
            );
        }
        let next = if c.parent_count() > 0 {
            match c.parent(0) {
                Ok(p) => Some(p),
                Err(e) => {
                    report.push(
                        ProblemKind::ShallowHistory,
                        commit_ref(None, None, c.id()),
                        format!(
                            "history before {} is not available ({e}); not checked",
                            c.id()
                        ),
                    );
                    None
                }
            }
        } else {
            None
        };
        chain.push(c.id());
        cur = next;
    }
    chain.reverse();
    if repo.is_shallow() {
        report.push(
            ProblemKind::ShallowHistory,
            None,
            "shallow clone: the ledger history before the shallow boundary was not checked",
        );
    }
    let allowed_top: HashSet<&str> = [RECORDS_DIR, CHECKPOINT_FILE, STATE_FILE]
        .into_iter()
        .collect();
    let mut reported_top: BTreeSet<String> = BTreeSet::new();
    let mut prev_records_oid: Option<Oid> = None;
    // The previous commit's `records/` tree (raw): one entry per shard, so unchanged shards
    // (the same tree oid) are skipped without reading them.
    let mut prev_raw: Vec<u8> = Vec::new();
    let mut next_seq: u64 = 1;
    let mut walk = Walk {
        repo,
        report,
        id: Oid::ZERO_SHA1,
        added: Vec::new(),
        shard_cache: None,
    };
    for id in chain {
        walk.report.commits_checked += 1;
        walk.id = id;
        let tree = match repo.find_commit(id).and_then(|c| c.tree()) {
            Ok(t) => t,
            Err(e) => {
                walk.read_error(e);
                continue;
            }
        };
        for e in tree.iter() {
            let name = String::from_utf8_lossy(e.name_bytes()).into_owned();
            if !allowed_top.contains(name.as_str()) && reported_top.insert(name.clone()) {
                walk.report.push(
                    ProblemKind::HistoryUnexpectedFile,
                    commit_ref(None, Some(name.clone()), id),
                    format!("commit {id} added {name}, which is not part of a ledger"),
                );
            }
        }
        let records_oid = tree
            .get_name(RECORDS_DIR)
            .filter(|e| e.kind() == Some(ObjectType::Tree))
            .map(|e| e.id());
        if records_oid == prev_records_oid {
            continue;
        }
        let raw = match records_oid {
            Some(o) => match read_raw(repo, o) {
                Ok(raw) => raw,
                Err(e) => {
                    walk.read_error(e);
                    continue;
                }
            },
            None => Vec::new(),
        };
        let (Some(old_entries), Some(new_entries)) = (parse_tree(&prev_raw), parse_tree(&raw))
        else {
            walk.read_error(git2::Error::from_str(&format!(
                "the {RECORDS_DIR}/ tree of commit {id} does not parse"
            )));
            continue;
        };
        // Both trees are in git's order, so one merge pass pairs the entries of the same name
        // and kind without building a map of the shards (a hostile unsorted tree can only make
        // entries unpaired, which are reported as added and removed, never hidden).
        for (name, old, new) in merge_entries(&old_entries, &new_entries) {
            if old == new {
                continue;
            }
            let name = String::from_utf8_lossy(name);
            let is_shard = |i: &Item| i.tree && is_shard_name(&name);
            let old_shard = old.filter(is_shard).map(|i| i.oid);
            match new {
                Some(n) if is_shard(&n) => walk.diff_shard(&name, old_shard, n.oid),
                Some(_) => {
                    let path = format!("{RECORDS_DIR}/{name}");
                    walk.push(
                        ProblemKind::HistoryUnexpectedFile,
                        parse_record_file_name(&name),
                        &path,
                        format!(
                            "commit {id} added {path}, which is not a shard directory ({RECORDS_DIR}/NNN/)"
                        ),
                    );
                    if let Some(o) = old_shard {
                        walk.removed_shard(&name, o);
                    }
                }
                None => {
                    if let Some(o) = old_shard {
                        walk.removed_shard(&name, o);
                    }
                }
            }
        }
        drop((old_entries, new_entries));
        let added = std::mem::take(&mut walk.added);
        check_added(added, &mut next_seq, id, walk.report);
        prev_records_oid = records_oid;
        prev_raw = raw;
    }
}

/// Records added by one commit must continue the sequence.
fn check_added(
    mut added: Vec<(u64, String)>,
    next_seq: &mut u64,
    id: Oid,
    report: &mut VerifyReport,
) {
    added.sort();
    for (s, path) in added {
        if s != *next_seq {
            report.push(
                ProblemKind::HistoryOutOfOrder,
                commit_ref(Some(s), Some(path.clone()), id),
                format!("commit {id} added record {s} ({path}) where record {next_seq} was due"),
            );
        }
        *next_seq = (*next_seq).max(s + 1);
    }
}

/// The raw (inflated) bytes of an object.
fn raw_object(repo: &Repository, oid: Oid) -> Option<Vec<u8>> {
    read_raw(repo, oid).ok()
}

/// The raw bytes of tree `oid` (an error when it is not a tree).
fn read_raw(repo: &Repository, oid: Oid) -> Result<Vec<u8>, git2::Error> {
    let odb = repo.odb()?;
    let obj = odb.read(oid)?;
    if obj.kind() != ObjectType::Tree {
        return Err(git2::Error::from_str(&format!("{oid} is not a tree")));
    }
    Ok(obj.data().to_vec())
}

/// One entry of a raw tree object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RawEntry<'a> {
    name: &'a [u8],
    item: Item,
}

/// The entries of a raw tree object (SHA-1 ids), `None` when the bytes are not a tree. Modes
/// are classified as libgit2 normalizes them: `40000` a tree, `100xxx` a regular file.
fn parse_tree(mut raw: &[u8]) -> Option<Vec<RawEntry<'_>>> {
    let mut out = Vec::new();
    while !raw.is_empty() {
        let space = raw.iter().position(|&b| b == b' ')?;
        let mode = u32::from_str_radix(std::str::from_utf8(&raw[..space]).ok()?, 8).ok()?;
        let nul = raw[space..].iter().position(|&b| b == 0)? + space;
        let id = raw.get(nul + 1..nul + 21)?;
        out.push(RawEntry {
            name: &raw[space + 1..nul],
            item: Item {
                oid: Oid::from_bytes(id).ok()?,
                tree: mode & 0o170_000 == 0o040_000,
                file: mode & 0o170_000 == 0o100_000,
            },
        });
        raw = &raw[nul + 21..];
    }
    Some(out)
}

/// git's order of tree entries: by name, a tree's name followed by `/`.
fn git_order(a: &RawEntry<'_>, b: &RawEntry<'_>) -> std::cmp::Ordering {
    let n = a.name.len().min(b.name.len());
    a.name[..n].cmp(&b.name[..n]).then_with(|| {
        let end = |e: &RawEntry<'_>| {
            e.name
                .get(n)
                .copied()
                .unwrap_or(if e.item.tree { b'/' } else { 0 })
        };
        end(a).cmp(&end(b))
    })
}

/// The entries of two sorted trees side by side: (name, old, new), each name once.
fn merge_entries<'a>(
    old: &[RawEntry<'a>],
    new: &[RawEntry<'a>],
) -> Vec<(&'a [u8], Option<Item>, Option<Item>)> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(new.len().max(old.len()));
    loop {
        let step = match (old.get(i), new.get(j)) {
            (None, None) => break,
            (Some(_), None) => Less,
            (None, Some(_)) => Greater,
            (Some(o), Some(n)) => git_order(o, n),
        };
        match step {
            Less => {
                out.push((old[i].name, Some(old[i].item), None));
                i += 1;
            }
            Greater => {
                out.push((new[j].name, None, Some(new[j].item)));
                j += 1;
            }
            Equal => {
                out.push((new[j].name, Some(old[i].item), Some(new[j].item)));
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// When `new` is `old` followed by whole tree entries, those entries as (is a regular file,
/// name); `None` when it is not (then the caller diffs) or the bytes do not parse.
fn appended_entries(old: &[u8], new: &[u8]) -> Option<Vec<(bool, String)>> {
    let mut rest = new.strip_prefix(old)?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ')?;
        let mode = &rest[..space];
        let nul = rest[space..].iter().position(|&b| b == 0)? + space;
        let name = std::str::from_utf8(&rest[space + 1..nul]).ok()?.to_owned();
        // SHA-1 object ids (20 bytes); other object formats take the diff path.
        let end = nul + 1 + 20;
        if rest.len() < end {
            return None;
        }
        out.push((mode == b"100644" || mode == b"100755", name));
        rest = &rest[end..];
    }
    Some(out)
}

fn is_fast_forward(repo: &Repository, old: Oid, new: Oid) -> bool {
    if old == new {
        return true;
    }
    // Ledger appends make `new` a child of `old`: check that in O(1) before a graph search.
    if let Ok(c) = repo.find_commit(new) {
        if c.parent_id(0).ok() == Some(old) {
            return true;
        }
    }
    repo.graph_descendant_of(new, old).unwrap_or(false)
}

/// Every file under a `records/` tree (in shards or not): path -> blob id.
fn record_files(repo: &Repository, records: &Tree<'_>) -> BTreeMap<String, Oid> {
    let mut out = BTreeMap::new();
    for e in records.iter() {
        let name = String::from_utf8_lossy(e.name_bytes()).into_owned();
        if e.kind() == Some(ObjectType::Tree) {
            if let Ok(shard) = repo.find_tree(e.id()) {
                for f in shard.iter() {
                    let file = String::from_utf8_lossy(f.name_bytes()).into_owned();
                    out.insert(format!("{RECORDS_DIR}/{name}/{file}"), f.id());
                }
            }
        } else {
            out.insert(format!("{RECORDS_DIR}/{name}"), e.id());
        }
    }
    out
}

fn check_reflog(repo: &Repository, refname: &str, report: &mut VerifyReport) {
    let log = match repo.reflog(refname) {
        Ok(l) => l,
        Err(_) => return,
    };
    if log.is_empty() {
        if refname.starts_with("refs/heads/") {
            report.push(
                ProblemKind::NoReflog,
                None,
                format!("no reflog for {refname}: forced updates in this clone cannot be detected from it"),
            );
        }
        return;
    }
    let current: Option<BTreeMap<String, Oid>> = repo
        .find_reference(refname)
        .and_then(|r| r.peel_to_commit())
        .and_then(|c| c.tree())
        .ok()
        .and_then(|t| records_tree(repo, &t))
        .map(|t| record_files(repo, &t));
    // Reflog entries are newest first; report oldest first.
    let entries: Vec<(Oid, Oid, String)> = log
        .iter()
        .map(|e| {
            let msg = String::from_utf8_lossy(e.message_bytes().unwrap_or_default()).into_owned();
            (e.id_old(), e.id_new(), msg)
        })
        .collect();
    for (old, new, message) in entries.into_iter().rev() {
        if old.is_zero() || is_fast_forward(repo, old, new) {
            continue;
        }
        // A forced update: which records of the old head are not in the current ledger?
        let old_records = repo
            .find_commit(old)
            .and_then(|c| c.tree())
            .ok()
            .and_then(|t| records_tree(repo, &t))
            .map(|t| record_files(repo, &t));
        let mut vanished: Vec<(u64, String)> = Vec::new();
        if let Some(old_files) = &old_records {
            for (path, oid) in old_files {
                let still = current.as_ref().and_then(|c| c.get(path)) == Some(oid);
                let name = path.rsplit('/').next().unwrap_or_default();
                if let (false, Some(s)) = (still, parse_record_file_name(name)) {
                    vanished.push((s, path.clone()));
                }
            }
        }
        vanished.sort();
        let what = if old_records.is_none() {
            "the old head is no longer available".to_owned()
        } else if let Some((s, path)) = vanished.first() {
            format!(
                "{} record(s) of the old head are missing or different now, from record {s} ({path})",
                vanished.len()
            )
        } else {
            "no record of the old head was lost".to_owned()
        };
        let first = vanished.first();
        report.push(
            ProblemKind::HistoryRewritten,
            Some(RecordRef {
                seq: first.map(|(s, _)| *s),
                file: first.map(|(_, path)| path.clone()),
                commit: Some(old.to_string()),
            }),
            format!("{refname} was force-updated from {old} to {new} ({message:?}): {what}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities() {
        assert_eq!(ProblemKind::BadSignature.severity(), Severity::Tampering);
        assert_eq!(
            ProblemKind::NoTrustedKeys.severity(),
            Severity::Unverifiable
        );
        assert_eq!(ProblemKind::StateMismatch.severity(), Severity::Warning);
    }
}
