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
//! older checkpoint. Without trusted keys nothing can be verified. A ledger branch deleted and
//! started again (no key needed) is a different ledger: caught by the origin pinned in
//! relgate.yaml (`VerifyOptions::expected_origin`), an older checkpoint, or a reflog. A ledger
//! emptied in place has no first record to compare from: completeness then compares the whole
//! recorded branch.
//!
//! Cost: records are read, hashed and their signatures checked in parallel (rayon), 256 at a
//! time with Ed25519 batch verification (see [`VerifyOptions::strict_signatures`]), streaming
//! (payloads are dropped after hashing; each chunk's problems and named commits go into the
//! report as the chunk is taken, and only each record's seqs and hashes, [`Kept`], are held for
//! the ledger-wide checks); sequence, chain and Merkle checks are linear, and need no index by
//! seq when the seqs run in order. Without an export to serve, a ledger in order is checked a
//! window of shards at a time, in bounded memory (`stream.rs`), and the whole-ledger checks
//! run only when a record is out of place. The git
//! history walk compares each commit's `records/` tree with its parent's: one entry per shard,
//! and shards whose tree oid did not change are skipped unread. A changed shard (at most 1000
//! entries) is usually the previous one plus appended entries (a byte prefix, so only the new
//! entries are parsed); otherwise its entries are diffed. So the walk costs about
//! O(commits × (records / 1000)) for the shard lists, not O(commits × records); consecutive
//! `records/` trees are compared as raw bytes in one merge pass. The walk and the reflog check
//! run beside the per-record checks, in a process of their own when the caller names the
//! `relgate` binary ([`VerifyOptions::history_process`], `walk_process.rs`: libgit2 shares
//! locks and caches between threads), else on a thread; the reflog check tells appends by the
//! first-parent chain the walk read, without reading a commit per reflog entry.
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};
use git2::{ObjectType, Odb, OdbObject, Oid, Repository, Tree};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::checkpoint::{default_origin, open_checkpoint, CheckpointError, ORIGIN_PREFIX};
use super::completeness::{self, WatchedPaths};
use super::dsse::{self, DsseError, Envelope, MAX_ENVELOPE_BYTES};
use super::keys::TrustedKeys;
use super::ledger::{
    check_canonical, check_tree_size_below, find_tree_capped, git_name_order, is_shard_name,
    ledger_refname, parse_record_file_name, read_blob_capped, read_file_capped, shard_name,
    CappedRead, LedgerSource, LedgerState, CHECKPOINT_FILE, DEFAULT_BRANCH, MAX_RECORDS_TREE_BYTES,
    MAX_ROOT_TREE_BYTES, MAX_SHARD_TREE_BYTES, RECORDS_DIR, SHARD_SIZE, STATE_FILE,
};
use super::merkle::{self, Frontier, Hash};
use super::statement::{PayloadHead, GENESIS_PREV};

mod history;
mod ledger_wide;
mod per_record;
mod read;
mod stream;
mod verified;
mod walk_process;

pub use self::verified::*;
pub use self::walk_process::{history_walk_json, HISTORY_WALK_COMMAND};
use self::{history::*, ledger_wide::*, per_record::*, read::*, stream::*};

/// Options of [`verify_ledger_with`].
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Walk the git branch history (git ledgers).
    pub check_history: bool,
    /// Check the branch reflog for forced updates (git ledgers).
    pub check_reflog: bool,
    /// The origin the checkpoint must carry (`ledger.origin` of relgate.yaml); then a ledger
    /// without records or checkpoint is a problem too. Default: the one in the ledger state,
    /// else the default origin derived from the first record.
    pub expected_origin: Option<String>,
    /// Keep each record's parsed payload in [`VerifyReport::payloads`] (for export).
    pub keep_payloads: bool,
    /// Check every signature on its own with `verify_strict` instead of in batches of 256.
    /// Batch verification (the default, about 2.5x faster) accepts exactly the honestly
    /// produced signatures single verification accepts; a failing batch is re-checked one by
    /// one, so every bad record is named either way. The two can differ only on signatures a
    /// holder of a trusted private key deliberately crafts with small-order components.
    pub strict_signatures: bool,
    /// Check the ledger against the branch it records ([`super::completeness`]): every
    /// commit after the first record's that changed a manifest, the config or a policy must be
    /// named by a record. `None`: not checked (no repository, or an envelopes file).
    pub completeness: Option<CompletenessSpec>,
    /// Run the git history checks (`check_history`, `check_reflog`) in a child process of this
    /// executable, which must be the `relgate` binary (it answers [`HISTORY_WALK_COMMAND`]),
    /// beside the record checks; `None`: on a thread of this process. A process reads faster:
    /// libgit2 shares pack locks and its delta-base cache between the threads of a process
    /// (`walk_process.rs`). A child that cannot be started leaves the checks to a thread.
    pub history_process: Option<PathBuf>,
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
    /// The commit of the ledger's first record, where the comparison starts; empty for a
    /// ledger without records, compared from the branch's first commit.
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
            history_process: None,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
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
    named_commits: HashSet<Oid>,
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
pub(crate) fn verify_envelopes_with(
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
/// Without `keep`, a ledger in order is checked window by window, which does not know the
/// number of entries before it starts, so `progress` hears only of the whole-ledger checks
/// (the callers without `keep` report no progress).
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
    // beside them (which use every core through rayon), in a process or on a thread of its
    // own; its problems are added after theirs, in the order a serial run gives.
    let history = std::thread::scope(|scope| {
        let walk = HistoryWalk::start(&reader, options, scope);
        // An export keeps every entry to read the records again, and an envelopes file has
        // no shards: the full checks. Otherwise window by window, unless the ledger is not
        // in order (then the full checks name what is wrong).
        let streamed = if keep {
            None
        } else {
            check_streaming(&reader, &report.source, keys, old_checkpoint, options)
        };
        if let Some(streamed) = streamed {
            report = streamed;
        } else if let Some(entries) = list_entries(&reader, &mut report) {
            let checked = check_entries(
                &reader,
                &entries,
                keys,
                old_checkpoint,
                options,
                progress,
                keep,
                &mut report,
            );
            if keep {
                ledger.entries = entries;
                ledger.checked = checked;
            }
        }
        walk.finish(&reader, options)
    });
    match history {
        Some(Ok(h)) => {
            report.commits_checked += h.commits_checked;
            report.problems.extend(h.problems);
        }
        None => {}
        Some(Err(why)) => report.push(
            ProblemKind::ReadError,
            None,
            format!("{why}; the history was not checked"),
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

/// Where the git history checks (step 5) of a verification run.
enum HistoryWalk<'scope> {
    /// Not asked for, or not a git ledger.
    Skipped,
    /// In a child process ([`VerifyOptions::history_process`]).
    Process(walk_process::WalkChild),
    /// On a thread beside the record checks.
    Thread(std::thread::ScopedJoinHandle<'scope, VerifyReport>),
    /// No thread to be had: on this thread, after the record checks.
    Later,
}

impl<'scope> HistoryWalk<'scope> {
    /// Starts the history checks of `reader`'s ledger, if it has any to run.
    fn start<'env>(
        reader: &'scope Reader,
        options: &'scope VerifyOptions,
        scope: &'scope std::thread::Scope<'scope, 'env>,
    ) -> HistoryWalk<'scope> {
        let Some((repo, refname)) = history_target(reader, options) else {
            return HistoryWalk::Skipped;
        };
        let (history, reflog) = (options.check_history, options.check_reflog);
        if let Some(exe) = &options.history_process {
            if let Ok(child) = walk_process::WalkChild::spawn(exe, repo, refname, history, reflog) {
                return HistoryWalk::Process(child);
            }
        }
        // Named, so a profile or a stack dump tells the walk from the rayon workers.
        std::thread::Builder::new()
            .name("relgate-history".to_owned())
            .spawn_scoped(scope, move || {
                history_report(repo, refname, history, reflog)
            })
            .map_or(HistoryWalk::Later, HistoryWalk::Thread)
    }

    /// What the history checks found; `None` when none ran, `Err` when they stopped before
    /// saying (the history is then not checked).
    fn finish(
        self,
        reader: &Reader,
        options: &VerifyOptions,
    ) -> Option<Result<VerifyReport, String>> {
        match self {
            HistoryWalk::Skipped => None,
            HistoryWalk::Process(child) => Some(child.finish()),
            HistoryWalk::Thread(thread) => Some(
                thread
                    .join()
                    .map_err(|_| "the git history check stopped unexpectedly".to_owned()),
            ),
            HistoryWalk::Later => history_target(reader, options).map(|(repo, refname)| {
                Ok(history_report(
                    repo,
                    refname,
                    options.check_history,
                    options.check_reflog,
                ))
            }),
        }
    }
}

/// The repository and ref whose history the checks of step 5 read: `None` for other ledgers
/// or when neither check is asked for.
fn history_target<'r>(reader: &'r Reader, options: &VerifyOptions) -> Option<(&'r Path, &'r str)> {
    let Reader::Git {
        repo_path, refname, ..
    } = reader
    else {
        return None;
    };
    (options.check_history || options.check_reflog)
        .then_some((repo_path.as_path(), refname.as_str()))
}

/// The history and reflog checks (step 5) of the ledger at `refname` of the repository at
/// `repo`, in a report of their own.
fn history_report(repo: &Path, refname: &str, walk: bool, reflog: bool) -> VerifyReport {
    tune_libgit2_for_reading();
    let mut report = VerifyReport::new(String::new());
    match Repository::open(repo) {
        Ok(repo) => {
            let chain = if walk {
                check_history(&repo, refname, &mut report)
            } else {
                None
            };
            if reflog {
                check_reflog(&repo, refname, chain.as_ref(), &mut report);
            }
        }
        Err(e) => report.push(
            ProblemKind::SourceUnavailable,
            None,
            format!("cannot open repository: {e}"),
        ),
    }
    report
}

/// The completeness check ([`super::completeness`]) of a verified ledger.
fn check_completeness(spec: &CompletenessSpec, report: &mut VerifyReport) {
    let first = match report.first_commit.clone() {
        Some((_, first)) => Some(first),
        // An empty ledger: compared from the branch's first commit, so a ledger emptied by a
        // push (an orphan commit, or the branch deleted and started again) does not pass as
        // intact beside the releases it recorded.
        None if report.records == 0 => None,
        // Records that name no commit (made outside git): no start to compare from.
        None => return,
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
    match completeness::check(
        &repo,
        tip,
        first.as_deref(),
        &report.named_commits,
        &spec.watched,
    ) {
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
                        "commit {} ({:?}) of {} changed {} but no record names it: records \
                         were removed from the end of the ledger (branch reset), or a record \
                         run failed or never ran; run `relgate record --changed --since-ledger` \
                         on {} to record what is missing",
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
                since: first.unwrap_or_default(),
                commits,
                unrecorded: missing,
            });
        }
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
