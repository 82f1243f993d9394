//! The append-only ledger of change records and its two backends.
//!
//! Layout (same in both): `records/<shard>/NNNNNN-<name>-<version>.dsse.json` (one DSSE
//! envelope per record, zero-padded seq, in the shard directory `seq / 1000` zero-padded to at
//! least 3 digits: [`record_path`]), `CHECKPOINT` (signed note with size and RFC 6962 root) and
//! `ledger-state.json` (the head: size, origin, last payload hash and Merkle frontier, so an
//! append reads O(1) state instead of every record). Sharding keeps every directory (git tree)
//! at most [`SHARD_SIZE`] entries, so a git append rewrites one small shard tree and the small
//! `records/` tree instead of a tree of all records.
//!
//! - [`GitLedger`] writes into a branch (`relgate/records` by default) of an existing repository
//!   with git2, straight into the object database: blobs, trees, one commit per record, then a
//!   compare-and-swap of the branch ref. No checkout; the work tree and index are never touched.
//!   A writer that loses the race re-reads the new head, recomputes seq and prev, and retries.
//!   A run of records ([`Ledger::append_all`]) is still a commit per record, but written into
//!   memory and packed by libgit2 (a packfile per shard), then one move of the branch
//!   ([`batch`]), all or nothing.
//! - [`DirLedger`] writes the same files into a plain directory under an exclusive advisory
//!   lock (`flock`), with a pending marker in the state file so an interrupted append is
//!   completed or discarded by the next one.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use git2::{ErrorCode, ObjectType, Oid, Repository, Tree};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::checkpoint::{default_origin, validate_origin, Checkpoint};
use super::dsse::{self, Envelope};
use super::keys::Signer;
use super::merkle::{Frontier, FrontierState};
use super::statement::{build_statement, PayloadHead, RecordInput, GENESIS_PREV};
use super::RecordError;

mod batch;

/// Default ledger branch.
pub const DEFAULT_BRANCH: &str = "relgate/records";
/// Directory of record files.
pub const RECORDS_DIR: &str = "records";
/// Signed checkpoint file.
pub const CHECKPOINT_FILE: &str = "CHECKPOINT";
/// Head state file.
pub const STATE_FILE: &str = "ledger-state.json";
/// Lock file of a [`DirLedger`].
pub const LOCK_FILE: &str = ".relgate-ledger.lock";
/// Suffix of record files.
pub const RECORD_SUFFIX: &str = ".dsse.json";
/// Records per shard directory under [`RECORDS_DIR`].
pub const SHARD_SIZE: u64 = 1000;
/// Longest sanitized name or version in a file name.
const MAX_COMPONENT: usize = 64;

/// Where a ledger lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerSource {
    /// A branch of a git repository.
    Git {
        /// Repository path (work tree or bare).
        repo: PathBuf,
        /// Branch name (`relgate/records`), or a full ref name (`refs/remotes/origin/relgate/records`).
        branch: String,
    },
    /// A plain directory.
    Dir(PathBuf),
}

impl LedgerSource {
    /// The default: branch [`DEFAULT_BRANCH`] of the repository at `repo`.
    pub fn git_default(repo: &Path) -> LedgerSource {
        LedgerSource::Git {
            repo: repo.to_owned(),
            branch: DEFAULT_BRANCH.to_owned(),
        }
    }

    /// Interprets the CLI's `--ledger REF|DIR` relative to the repository `repo`: absent means
    /// the default branch; an existing directory (that is not a git repository) is a
    /// directory ledger; anything else is a branch or ref of `repo`.
    pub fn from_cli(arg: Option<&str>, repo: &Path) -> LedgerSource {
        match arg {
            None => LedgerSource::git_default(repo),
            Some(a) => {
                let p = Path::new(a);
                if p.is_dir() && Repository::open(p).is_err() {
                    LedgerSource::Dir(p.to_owned())
                } else {
                    LedgerSource::Git {
                        repo: repo.to_owned(),
                        branch: a.to_owned(),
                    }
                }
            }
        }
    }

    /// Human-readable description.
    pub fn describe(&self) -> String {
        match self {
            LedgerSource::Git { repo, branch } => format!("{}@{}", repo.display(), branch),
            LedgerSource::Dir(d) => d.display().to_string(),
        }
    }
}

/// Options of a ledger writer.
#[derive(Debug, Clone)]
pub struct LedgerOptions {
    /// Checkpoint origin for a NEW ledger; default `relgate.dev/ledger/<16 hex of the first
    /// record's payload hash>`. An existing ledger keeps its origin.
    pub origin: Option<String>,
    /// Compare-and-swap attempts before [`RecordError::Contention`] (git backend).
    pub max_attempts: u32,
    /// Committer of ledger commits; default the repository's `user.name`/`user.email`, else
    /// `relgate <relgate@localhost>`.
    pub committer: Option<(String, String)>,
    /// fsync record, checkpoint and state files (directory backend).
    pub fsync: bool,
}

impl Default for LedgerOptions {
    fn default() -> Self {
        LedgerOptions {
            origin: None,
            max_attempts: 64,
            committer: None,
            fsync: true,
        }
    }
}

/// The head of a ledger, stored in [`STATE_FILE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerState {
    /// Format version (1).
    pub format: u32,
    /// Checkpoint origin.
    pub origin: String,
    /// Number of records (= seq of the head record).
    pub size: u64,
    /// Path of the head record (`records/...`), null when empty.
    pub head_file: Option<String>,
    /// Hex SHA-256 of the head record's payload ([`GENESIS_PREV`] when empty).
    pub head_sha256: String,
    /// Merkle frontier over all record payloads.
    pub frontier: FrontierState,
    /// Directory backend: an append that wrote its record but may not have finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingAppend>,
}

/// An append in progress (directory backend).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAppend {
    /// Its seq.
    pub seq: u64,
    /// Its file.
    pub file: String,
    /// Its payload hash.
    pub payload_sha256: String,
}

/// What an append wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendReceipt {
    /// Sequence number of the new record.
    pub seq: u64,
    /// Its path in the ledger (`records/000042-support-answer-17.dsse.json`).
    pub file: String,
    /// Hex SHA-256 of its payload (the next record's `prev`).
    pub payload_sha256: String,
    /// The new signed checkpoint text.
    pub checkpoint: String,
    /// The ledger's origin.
    pub origin: String,
    /// The ledger commit (git backend).
    pub commit: Option<String>,
    /// Attempts needed (1 without contention).
    pub attempts: u32,
}

/// A ledger that records can be appended to.
pub trait Ledger {
    /// Signs `input` as the next record and appends it, with a new checkpoint. Cost is O(1)
    /// in the number of records (plus O(log n) for the checkpoint); the git backend rewrites
    /// the head shard's tree (at most [`SHARD_SIZE`] entries) and the `records/` tree (one
    /// entry per shard).
    fn append(
        &mut self,
        input: &RecordInput,
        signer: &Signer,
    ) -> Result<AppendReceipt, RecordError>;
    /// Appends every input in order, one record (and, on a git branch, one commit) each, and
    /// pushes a receipt per record to `receipts` as it becomes part of the ledger. The default
    /// appends one by one (a failure leaves the records before it appended); the git backend
    /// writes the whole run into one packfile and moves the branch once, so a run is
    /// all-or-nothing and costs O(1) per record in the size of the ledger and of the repository.
    fn append_all(
        &mut self,
        inputs: &[RecordInput],
        signer: &Signer,
        receipts: &mut Vec<AppendReceipt>,
    ) -> Result<(), RecordError> {
        for input in inputs {
            receipts.push(self.append(input, signer)?);
        }
        Ok(())
    }
    /// The current head state, `None` for an empty ledger.
    fn state(&self) -> Result<Option<LedgerState>, RecordError>;
    /// The envelope bytes of the head (last) record, `None` for an empty ledger.
    fn head_record(&self) -> Result<Option<Vec<u8>>, RecordError>;
    /// Where the ledger lives (for [`super::verify::verify_ledger`]).
    fn source(&self) -> LedgerSource;
}

/// Opens the writer for `source`.
pub fn open_ledger(
    source: &LedgerSource,
    options: LedgerOptions,
) -> Result<Box<dyn Ledger>, RecordError> {
    Ok(match source {
        LedgerSource::Git { repo, branch } => {
            Box::new(GitLedger::open_with(repo, branch, options)?)
        }
        LedgerSource::Dir(dir) => Box::new(DirLedger::open_with(dir, options)?),
    })
}

/// The commit the ledger's last record evaluated (`git.commit`): the last commit the ledger
/// covers. `None` for an empty ledger or a last record that names no commit. The record's
/// signature is not checked here: a forged last record can only make a run record *less*,
/// which `relgate verify` reports (bad signature, and the commits no record names).
pub fn last_record_commit(ledger: &dyn Ledger) -> Result<Option<String>, RecordError> {
    let Some(bytes) = ledger.head_record()? else {
        return Ok(None);
    };
    let envelope = dsse::Envelope::from_slice(&bytes)
        .map_err(|e| RecordError::Inconsistent(format!("the last record: {e}")))?;
    let payload = envelope
        .decode_payload()
        .map_err(|e| RecordError::Inconsistent(format!("the last record: {e}")))?;
    let head = super::statement::PayloadHead::parse(&payload)
        .map_err(|e| RecordError::Inconsistent(format!("the last record: {e}")))?;
    Ok(head
        .predicate
        .change
        .git
        .map(|g| g.commit)
        .filter(|c| !c.is_empty()))
}

/// Text from a manifest as it may appear in a ledger commit message: one line, at most
/// [`MAX_MESSAGE_FIELD`] characters. Control characters (line breaks included) and the Unicode
/// line and paragraph separators become `\u{..}` escapes and a backslash is doubled, so the
/// text can neither start a new line (a forged trailer) nor be confused with an escape.
pub fn commit_message_text(text: &str) -> String {
    let mut out = String::new();
    for (count, c) in text.chars().enumerate() {
        if count == MAX_MESSAGE_FIELD {
            out.push_str("...");
            break;
        }
        match c {
            '\\' => out.push_str("\\\\"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out
}

/// Characters of one manifest field kept in a ledger commit message.
pub const MAX_MESSAGE_FIELD: usize = 120;

/// Sanitizes a manifest name or version for a file name: ASCII letters, digits, `.`, `_`
/// and `-` are kept, anything else becomes `_`; at most 64 characters; never empty, never
/// starting with `.`.
pub fn sanitize_component(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_COMPONENT)
        .collect();
    if out.is_empty() {
        out.push('_');
    }
    if out.starts_with('.') {
        out.replace_range(0..1, "_");
    }
    out
}

/// The file name (without directory) of record `seq` for manifest `name`/`version`.
pub fn record_file_name(seq: u64, name: &str, version: &str) -> String {
    format!(
        "{seq:06}-{}-{}{RECORD_SUFFIX}",
        sanitize_component(name),
        sanitize_component(version)
    )
}

/// The shard directory (under [`RECORDS_DIR`]) of record `seq`: `seq / 1000`, zero-padded to
/// at least 3 digits (`000` holds seqs 1..=999, `001` holds 1000..=1999, `1234` holds
/// 1,234,000..).
pub fn shard_name(seq: u64) -> String {
    format!("{:03}", seq / SHARD_SIZE)
}

/// True for a name that has the shape of a shard directory (3 or more ASCII digits). Whether a
/// record sits in the RIGHT shard is `dir == shard_name(seq)`.
pub fn is_shard_name(name: &str) -> bool {
    name.len() >= 3 && name.bytes().all(|b| b.is_ascii_digit())
}

/// The path of record `seq` in the ledger: `records/<shard>/<file name>`
/// (`records/000/000042-support-answer-17.dsse.json`).
pub fn record_path(seq: u64, name: &str, version: &str) -> String {
    format!(
        "{RECORDS_DIR}/{}/{}",
        shard_name(seq),
        record_file_name(seq, name, version)
    )
}

/// The seq encoded in a record file name (`000042-...dsse.json` -> 42), if it has that shape.
pub fn parse_record_file_name(name: &str) -> Option<u64> {
    if !name.ends_with(RECORD_SUFFIX) {
        return None;
    }
    let digits = name.bytes().take_while(u8::is_ascii_digit).count();
    if digits < 6 || name.as_bytes().get(digits) != Some(&b'-') {
        return None;
    }
    name[..digits].parse().ok()
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Everything one append writes, computed from the head state.
struct Prepared {
    seq: u64,
    file: String,
    envelope: Vec<u8>,
    payload_sha256: String,
    checkpoint: String,
    state: LedgerState,
}

fn prepare(
    state: Option<&LedgerState>,
    input: &RecordInput,
    signer: &Signer,
    origin: Option<&str>,
) -> Result<Prepared, RecordError> {
    let (seq, prev, mut frontier, existing_origin) = match state {
        None => (1, GENESIS_PREV.to_owned(), Frontier::new(), None),
        Some(s) => {
            let frontier = Frontier::from_state(&s.frontier)
                .map_err(|e| RecordError::Inconsistent(format!("{STATE_FILE}: {e}")))?;
            if frontier.size() != s.size {
                return Err(RecordError::Inconsistent(format!(
                    "{STATE_FILE}: frontier covers {} records, size is {}",
                    frontier.size(),
                    s.size
                )));
            }
            (
                s.size + 1,
                s.head_sha256.clone(),
                frontier,
                Some(s.origin.clone()),
            )
        }
    };
    let statement = build_statement(input, seq, &prev)?;
    let payload = statement.to_payload()?;
    let payload_hash = sha256(&payload);
    let envelope = dsse::sign_payload(&payload, signer).to_json();
    frontier.append(&payload);
    let origin = match (existing_origin, origin) {
        (Some(o), _) => o,
        (None, Some(o)) => o.to_owned(),
        (None, None) => default_origin(&payload_hash),
    };
    validate_origin(&origin).map_err(|e| RecordError::Input(e.to_string()))?;
    let checkpoint = Checkpoint {
        origin: origin.clone(),
        size: seq,
        root: frontier.root(),
        extensions: Vec::new(),
    }
    .sign(signer);
    let file = record_path(seq, &input.manifest.name, &input.manifest.version);
    let payload_sha256 = hex::encode(payload_hash);
    Ok(Prepared {
        seq,
        file: file.clone(),
        envelope,
        payload_sha256: payload_sha256.clone(),
        checkpoint,
        state: LedgerState {
            format: 1,
            origin,
            size: seq,
            head_file: Some(file),
            head_sha256: payload_sha256,
            frontier: frontier.to_state(),
            pending: None,
        },
    })
}

fn state_bytes(state: &LedgerState) -> Vec<u8> {
    // A struct of strings and integers always serializes.
    let mut out = serde_json::to_vec_pretty(state).unwrap_or_default();
    out.push(b'\n');
    out
}

fn parse_state(bytes: &[u8]) -> Result<LedgerState, RecordError> {
    let state: LedgerState = serde_json::from_slice(bytes)
        .map_err(|e| RecordError::Inconsistent(format!("{STATE_FILE} is unreadable: {e}")))?;
    if state.format != 1 {
        return Err(RecordError::Inconsistent(format!(
            "{STATE_FILE} has unknown format {}",
            state.format
        )));
    }
    Ok(state)
}

/// Checks that the head record named by the state really hashes to `head_sha256` (O(1)).
fn check_head(state: &LedgerState, head_bytes: Option<Vec<u8>>) -> Result<(), RecordError> {
    let Some(file) = &state.head_file else {
        if state.size == 0 {
            return Ok(());
        }
        return Err(RecordError::Inconsistent(format!(
            "{STATE_FILE} has size {} but no head file",
            state.size
        )));
    };
    let bytes = head_bytes.ok_or_else(|| {
        RecordError::Inconsistent(format!(
            "head record {file} named by {STATE_FILE} is missing"
        ))
    })?;
    let payload = Envelope::from_slice(&bytes)
        .and_then(|e| e.decode_payload())
        .map_err(|e| RecordError::Inconsistent(format!("head record {file}: {e}")))?;
    if hex::encode(sha256(&payload)) != state.head_sha256 {
        return Err(RecordError::Inconsistent(format!(
            "head record {file} does not match {STATE_FILE} (edited?)"
        )));
    }
    let head = PayloadHead::parse(&payload)
        .map_err(|e| RecordError::Inconsistent(format!("head record {file}: {e}")))?;
    if head.predicate.change.seq != state.size {
        return Err(RecordError::Inconsistent(format!(
            "head record {file} has seq {}, {STATE_FILE} says {}",
            head.predicate.change.seq, state.size
        )));
    }
    Ok(())
}

/// Rebuilds the head state from all records (only when the state file is missing, e.g. a
/// ledger written by hand or by an older version). O(n).
fn rebuild_state(
    mut records: Vec<(String, Vec<u8>)>,
    checkpoint: Option<&str>,
) -> Result<Option<LedgerState>, RecordError> {
    if records.is_empty() {
        return Ok(None);
    }
    records.sort_by(|a, b| {
        let sa = parse_record_file_name(a.0.rsplit('/').next().unwrap_or_default());
        let sb = parse_record_file_name(b.0.rsplit('/').next().unwrap_or_default());
        (sa, &a.0).cmp(&(sb, &b.0))
    });
    let mut frontier = Frontier::new();
    let mut head = (GENESIS_PREV.to_owned(), None);
    let mut genesis = None;
    for (i, (file, bytes)) in records.iter().enumerate() {
        let payload = Envelope::from_slice(bytes)
            .and_then(|e| e.decode_payload())
            .map_err(|e| RecordError::Inconsistent(format!("{file}: {e}")))?;
        let parsed = PayloadHead::parse(&payload)
            .map_err(|e| RecordError::Inconsistent(format!("{file}: {e}")))?;
        let want = i as u64 + 1;
        if parsed.predicate.change.seq != want || parsed.predicate.change.prev != head.0 {
            return Err(RecordError::Inconsistent(format!(
                "{file}: seq/prev chain broken while rebuilding {STATE_FILE}"
            )));
        }
        let h = sha256(&payload);
        genesis.get_or_insert(h);
        frontier.append(&payload);
        head = (hex::encode(h), Some(file.clone()));
    }
    let origin = checkpoint
        .and_then(|t| t.lines().next())
        .map(str::to_owned)
        .or_else(|| genesis.as_ref().map(default_origin))
        .unwrap_or_default();
    Ok(Some(LedgerState {
        format: 1,
        origin,
        size: frontier.size(),
        head_file: head.1,
        head_sha256: head.0,
        frontier: frontier.to_state(),
        pending: None,
    }))
}

fn backoff(attempt: u32) {
    let mut jitter = [0u8; 2];
    let _ = getrandom::fill(&mut jitter);
    let micros = u64::from(u16::from_le_bytes(jitter)) % 2000 + u64::from(attempt.min(20)) * 500;
    std::thread::sleep(Duration::from_micros(micros));
}

// ---------------------------------------------------------------------------------------------
// Git backend
// ---------------------------------------------------------------------------------------------

/// The subtree `name` of `tree`, `None` when absent or not a directory.
fn subtree<'r>(
    repo: &'r Repository,
    tree: &Tree<'_>,
    name: &str,
) -> Result<Option<Tree<'r>>, RecordError> {
    match tree.get_name(name) {
        Some(e) if e.kind() == Some(ObjectType::Tree) => Ok(Some(repo.find_tree(e.id())?)),
        _ => Ok(None),
    }
}

/// The commit branch `refname` of `repo` points to, `None` when the branch does not exist.
fn head_commit<'r>(
    repo: &'r Repository,
    refname: &str,
) -> Result<Option<git2::Commit<'r>>, RecordError> {
    match repo.find_reference(refname) {
        Ok(r) => Ok(Some(r.peel_to_commit()?)),
        Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A ledger on a branch of a git repository, written without checkout.
pub struct GitLedger {
    repo: Repository,
    repo_path: PathBuf,
    refname: String,
    options: LedgerOptions,
}

impl std::fmt::Debug for GitLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitLedger")
            .field("repo", &self.repo_path)
            .field("ref", &self.refname)
            .finish()
    }
}

/// Full ref name of a ledger branch given as `relgate/records` or `refs/...`.
pub fn ledger_refname(branch: &str) -> String {
    if branch.starts_with("refs/") {
        branch.to_owned()
    } else {
        format!("refs/heads/{branch}")
    }
}

impl GitLedger {
    /// Opens the ledger on branch [`DEFAULT_BRANCH`] of the repository at `repo`.
    pub fn open(repo: &Path) -> Result<GitLedger, RecordError> {
        GitLedger::open_with(repo, DEFAULT_BRANCH, LedgerOptions::default())
    }

    /// Opens the ledger on `branch` of the repository at `repo`.
    pub fn open_with(
        repo: &Path,
        branch: &str,
        options: LedgerOptions,
    ) -> Result<GitLedger, RecordError> {
        let refname = ledger_refname(branch);
        if !git2::Reference::is_valid_name(&refname) {
            return Err(RecordError::Input(format!(
                "{branch:?} is not a valid branch name"
            )));
        }
        Ok(GitLedger {
            repo: Repository::open(repo)?,
            repo_path: repo.to_owned(),
            refname,
            options,
        })
    }

    /// The full ref name written.
    pub fn refname(&self) -> &str {
        &self.refname
    }

    fn head_commit(&self) -> Result<Option<git2::Commit<'_>>, RecordError> {
        head_commit(&self.repo, &self.refname)
    }

    fn blob_at(&self, tree: &Tree<'_>, path: &str) -> Result<Option<Vec<u8>>, RecordError> {
        match tree.get_path(Path::new(path)) {
            Ok(entry) if entry.kind() == Some(ObjectType::Blob) => {
                Ok(Some(self.repo.find_blob(entry.id())?.content().to_vec()))
            }
            Ok(_) => Ok(None),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn state_of(&self, tree: &Tree<'_>) -> Result<Option<LedgerState>, RecordError> {
        if let Some(bytes) = self.blob_at(tree, STATE_FILE)? {
            let state = parse_state(&bytes)?;
            let head = match &state.head_file {
                Some(f) => self.blob_at(tree, f)?,
                None => None,
            };
            check_head(&state, head)?;
            return Ok(Some(state));
        }
        // No state file: rebuild from the records (recovery path, O(n)).
        let mut records = Vec::new();
        if let Some(sub) = subtree(&self.repo, tree, RECORDS_DIR)? {
            for shard in sub.iter() {
                let shard_name = shard.name().unwrap_or_default().to_owned();
                if shard.kind() != Some(ObjectType::Tree) || !is_shard_name(&shard_name) {
                    continue;
                }
                for e in self.repo.find_tree(shard.id())?.iter() {
                    let name = e.name().unwrap_or_default().to_owned();
                    if e.kind() != Some(ObjectType::Blob) || parse_record_file_name(&name).is_none()
                    {
                        continue;
                    }
                    let blob = self.repo.find_blob(e.id())?;
                    records.push((
                        format!("{RECORDS_DIR}/{shard_name}/{name}"),
                        blob.content().to_vec(),
                    ));
                }
            }
        }
        let checkpoint = self.blob_at(tree, CHECKPOINT_FILE)?;
        let cp_text = checkpoint
            .as_deref()
            .and_then(|b| std::str::from_utf8(b).ok());
        rebuild_state(records, cp_text)
    }

    fn signature(&self) -> Result<git2::Signature<'static>, RecordError> {
        if let Some((name, email)) = &self.options.committer {
            return Ok(git2::Signature::now(name, email)?);
        }
        match self.repo.signature() {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Ok(git2::Signature::now("relgate", "relgate@localhost")?),
        }
    }

    /// Compare-and-swap of the branch: only moves the ref from `from` (`None`: absent) to `to`.
    fn move_ref(&self, from: Option<Oid>, to: Oid, log: &str) -> Result<(), git2::Error> {
        // Creation is a compare-and-swap too: "currently absent" is the zero id, which
        // libgit2 checks under the ref's lock. A plain non-forced create checks for an
        // existing ref *before* taking the lock, so two first appends racing could both
        // succeed and the second would silently replace record 1.
        let from = from.unwrap_or(Oid::ZERO_SHA1);
        self.repo
            .reference_matching(&self.refname, to, true, from, log)
            .map(|_| ())
    }

    /// One attempt of [`Ledger::append_all`]: every record as its own commit, written through
    /// the run's in-memory object store into packfiles ([`batch`]), then one compare-and-swap
    /// of the branch.
    /// `Ok(None)`: another writer moved the branch meanwhile (the packs written stay as
    /// unreferenced objects, which `git gc` prunes).
    fn append_batch_once(
        &self,
        inputs: &[RecordInput],
        signer: &Signer,
        attempt: u32,
    ) -> Result<Option<Vec<AppendReceipt>>, RecordError> {
        let sig = self.signature()?;
        // Loose objects cost a file (and a directory lookup) each, seven per record; the run
        // writes into memory and packs per shard instead (see `batch`).
        let (head_id, receipts) = batch::with_run(self.repo.path(), |repo, packer| {
            let mut parent = head_commit(repo, &self.refname)?;
            let head_id = parent.as_ref().map(|c| c.id());
            let mut state = match &parent {
                Some(c) => self.state_of(&c.tree()?)?,
                None => None,
            };
            let mut receipts = Vec::with_capacity(inputs.len());
            for input in inputs {
                let prepared = prepare(
                    state.as_ref(),
                    input,
                    signer,
                    self.options.origin.as_deref(),
                )
                .map_err(|e| match e {
                    RecordError::Input(m) => {
                        RecordError::Input(format!("{}: {m}", input.manifest_path))
                    }
                    e => e,
                })?;
                packer.start_record(&shard_name(prepared.seq))?;
                let written = write_commit(repo, &sig, parent.as_ref(), &prepared, input)?;
                packer.add(&written)?;
                parent = Some(repo.find_commit(written.commit)?);
                receipts.push(AppendReceipt {
                    seq: prepared.seq,
                    file: prepared.file,
                    payload_sha256: prepared.payload_sha256,
                    checkpoint: prepared.checkpoint,
                    origin: prepared.state.origin.clone(),
                    commit: Some(written.commit.to_string()),
                    attempts: attempt,
                });
                state = Some(prepared.state);
            }
            packer.flush()?;
            Ok((head_id, receipts))
        })?;
        let (Some(first), Some(last)) = (receipts.first(), receipts.last()) else {
            return Ok(Some(receipts));
        };
        let Some(last_commit) = last.commit.as_deref().and_then(|c| Oid::from_str(c).ok()) else {
            return Err(RecordError::Inconsistent(
                "the run's last commit has no id".to_owned(),
            ));
        };
        let log = format!("relgate record {:06}..{:06}", first.seq, last.seq);
        match self.move_ref(head_id, last_commit, &log) {
            Ok(()) => Ok(Some(receipts)),
            Err(e)
                if matches!(
                    e.code(),
                    ErrorCode::Modified | ErrorCode::Exists | ErrorCode::Locked
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn write_commit(
        &self,
        parent: Option<&git2::Commit<'_>>,
        prepared: &Prepared,
        input: &RecordInput,
    ) -> Result<Oid, RecordError> {
        Ok(write_commit(&self.repo, &self.signature()?, parent, prepared, input)?.commit)
    }
}

/// Writes the blobs, trees and commit of one append into `repo`'s object database (whichever
/// backend takes writes: the loose objects, or the in-memory store of a run) and returns what
/// it wrote.
fn write_commit(
    repo: &Repository,
    sig: &git2::Signature<'_>,
    parent: Option<&git2::Commit<'_>>,
    prepared: &Prepared,
    input: &RecordInput,
) -> Result<batch::Written, RecordError> {
    let base_tree = parent.map(|c| c.tree()).transpose()?;
    let records_tree = match &base_tree {
        Some(t) => subtree(repo, t, RECORDS_DIR)?,
        None => None,
    };
    let shard = shard_name(prepared.seq);
    let shard_tree = match &records_tree {
        Some(t) => subtree(repo, t, &shard)?,
        None => None,
    };
    let file_name = prepared.file.rsplit('/').next().unwrap_or(&prepared.file);
    // Only the head shard (at most SHARD_SIZE entries) and the records tree (one entry per
    // shard) are rewritten; every other shard keeps its tree object.
    let mut shard_builder = repo.treebuilder(shard_tree.as_ref())?;
    if shard_builder.get(file_name)?.is_some() {
        return Err(RecordError::Inconsistent(format!(
            "{} already exists",
            prepared.file
        )));
    }
    let envelope = repo.blob(&prepared.envelope)?;
    shard_builder.insert(file_name, envelope, 0o100_644)?;
    let shard_oid = shard_builder.write()?;
    let mut records = repo.treebuilder(records_tree.as_ref())?;
    records.insert(&shard, shard_oid, 0o040_000)?;
    let records_oid = records.write()?;
    let mut top = repo.treebuilder(base_tree.as_ref())?;
    top.insert(RECORDS_DIR, records_oid, 0o040_000)?;
    let checkpoint = repo.blob(prepared.checkpoint.as_bytes())?;
    top.insert(CHECKPOINT_FILE, checkpoint, 0o100_644)?;
    let state = repo.blob(&state_bytes(&prepared.state))?;
    top.insert(STATE_FILE, state, 0o100_644)?;
    let tree = repo.find_tree(top.write()?)?;
    let message = commit_message(prepared, input);
    let parents: Vec<&git2::Commit<'_>> = parent.into_iter().collect();
    let commit = repo.commit(None, sig, sig, &message, &tree, &parents)?;
    Ok(batch::Written {
        commit,
        objects: vec![
            (tree.id(), None),
            (records_oid, Some(RECORDS_DIR.to_owned())),
            (shard_oid, Some(format!("{RECORDS_DIR}/{shard}"))),
            (envelope, Some(prepared.file.clone())),
            (checkpoint, Some(CHECKPOINT_FILE.to_owned())),
            (state, Some(STATE_FILE.to_owned())),
        ],
    })
}

/// The message of the ledger commit of one record.
fn commit_message(prepared: &Prepared, input: &RecordInput) -> String {
    // Name and version come from the manifest, which the pull-request author wrote: they
    // are escaped so they cannot add lines (forged trailers such as `Approved-by:`).
    format!(
        "relgate: record {:06} {} {} ({})\n",
        prepared.seq,
        commit_message_text(&input.manifest.name),
        commit_message_text(&input.manifest.version),
        input.decision.as_str()
    )
}

impl Ledger for GitLedger {
    fn append(
        &mut self,
        input: &RecordInput,
        signer: &Signer,
    ) -> Result<AppendReceipt, RecordError> {
        let attempts = self.options.max_attempts.max(1);
        for attempt in 1..=attempts {
            let head = self.head_commit()?;
            let state = match &head {
                Some(c) => self.state_of(&c.tree()?)?,
                None => None,
            };
            let prepared = prepare(
                state.as_ref(),
                input,
                signer,
                self.options.origin.as_deref(),
            )?;
            let commit = self.write_commit(head.as_ref(), &prepared, input)?;
            let log = format!("relgate record {:06}", prepared.seq);
            let result = self.move_ref(head.as_ref().map(|h| h.id()), commit, &log);
            match result {
                Ok(_) => {
                    return Ok(AppendReceipt {
                        seq: prepared.seq,
                        file: prepared.file,
                        payload_sha256: prepared.payload_sha256,
                        checkpoint: prepared.checkpoint,
                        origin: prepared.state.origin,
                        commit: Some(commit.to_string()),
                        attempts: attempt,
                    })
                }
                Err(e)
                    if matches!(
                        e.code(),
                        ErrorCode::Modified | ErrorCode::Exists | ErrorCode::Locked
                    ) =>
                {
                    backoff(attempt);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(RecordError::Contention { attempts })
    }

    fn append_all(
        &mut self,
        inputs: &[RecordInput],
        signer: &Signer,
        receipts: &mut Vec<AppendReceipt>,
    ) -> Result<(), RecordError> {
        if inputs.len() <= 1 {
            // One record: a handful of loose objects is cheaper than a pack and its index.
            for input in inputs {
                receipts.push(self.append(input, signer)?);
            }
            return Ok(());
        }
        let attempts = self.options.max_attempts.max(1);
        for attempt in 1..=attempts {
            if let Some(done) = self.append_batch_once(inputs, signer, attempt)? {
                receipts.extend(done);
                return Ok(());
            }
            backoff(attempt);
        }
        Err(RecordError::Contention { attempts })
    }

    fn state(&self) -> Result<Option<LedgerState>, RecordError> {
        match self.head_commit()? {
            Some(c) => self.state_of(&c.tree()?),
            None => Ok(None),
        }
    }

    fn head_record(&self) -> Result<Option<Vec<u8>>, RecordError> {
        let Some(commit) = self.head_commit()? else {
            return Ok(None);
        };
        let tree = commit.tree()?;
        match self.state_of(&tree)?.and_then(|s| s.head_file) {
            Some(file) => self.blob_at(&tree, &file),
            None => Ok(None),
        }
    }

    fn source(&self) -> LedgerSource {
        LedgerSource::Git {
            repo: self.repo_path.clone(),
            branch: self.refname.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Directory backend
// ---------------------------------------------------------------------------------------------

/// A ledger in a plain directory, serialized by an exclusive `flock` on [`LOCK_FILE`].
#[derive(Debug, Clone)]
pub struct DirLedger {
    dir: PathBuf,
    options: LedgerOptions,
}

impl DirLedger {
    /// Opens (creating if needed) a directory ledger.
    pub fn open(dir: &Path) -> Result<DirLedger, RecordError> {
        DirLedger::open_with(dir, LedgerOptions::default())
    }

    /// Opens (creating if needed) a directory ledger with options.
    pub fn open_with(dir: &Path, options: LedgerOptions) -> Result<DirLedger, RecordError> {
        let records = dir.join(RECORDS_DIR);
        fs::create_dir_all(&records).map_err(|e| RecordError::io(&records, e))?;
        Ok(DirLedger {
            dir: dir.to_owned(),
            options,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn read_opt(&self, rel: &str) -> Result<Option<Vec<u8>>, RecordError> {
        let path = self.dir.join(rel);
        match fs::File::open(&path) {
            Ok(f) => {
                let mut buf = Vec::new();
                f.take(dsse::MAX_ENVELOPE_BYTES + 1)
                    .read_to_end(&mut buf)
                    .map_err(|e| RecordError::io(&path, e))?;
                Ok(Some(buf))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RecordError::io(&path, e)),
        }
    }

    /// Writes `bytes` to `rel` atomically (temporary file + rename).
    fn write_atomic(&self, rel: &str, bytes: &[u8]) -> Result<(), RecordError> {
        let path = self.dir.join(rel);
        // The temporary file lives beside (not inside) records/, so a crash never leaves a
        // stray file among the records.
        let tmp = self.dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            rel.replace('/', "_")
        ));
        let mut f = fs::File::create(&tmp).map_err(|e| RecordError::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| RecordError::io(&tmp, e))?;
        if self.options.fsync {
            f.sync_all().map_err(|e| RecordError::io(&tmp, e))?;
        }
        drop(f);
        fs::rename(&tmp, &path).map_err(|e| RecordError::io(&path, e))
    }

    fn load_state(&self) -> Result<Option<LedgerState>, RecordError> {
        let Some(bytes) = self.read_opt(STATE_FILE)? else {
            // No state file: rebuild from the records (recovery path, O(n)).
            let records_dir = self.dir.join(RECORDS_DIR);
            let mut records = Vec::new();
            for shard in list_dir(&records_dir)? {
                if !is_shard_name(&shard) || !records_dir.join(&shard).is_dir() {
                    continue;
                }
                for name in list_dir(&records_dir.join(&shard))? {
                    if parse_record_file_name(&name).is_none() {
                        continue;
                    }
                    let rel = format!("{RECORDS_DIR}/{shard}/{name}");
                    if let Some(b) = self.read_opt(&rel)? {
                        records.push((rel, b));
                    }
                }
            }
            let cp = self.read_opt(CHECKPOINT_FILE)?;
            let cp_text = cp.as_deref().and_then(|b| std::str::from_utf8(b).ok());
            return rebuild_state(records, cp_text);
        };
        let mut state = parse_state(&bytes)?;
        if let Some(p) = state.pending.take() {
            // An earlier append stopped after announcing its record: adopt the record if it
            // was fully written, else forget it.
            if let Some(b) = self.read_opt(&p.file)? {
                {
                    let payload = Envelope::from_slice(&b)
                        .and_then(|e| e.decode_payload())
                        .map_err(|e| {
                            RecordError::Inconsistent(format!("pending {}: {e}", p.file))
                        })?;
                    if hex::encode(sha256(&payload)) != p.payload_sha256 || p.seq != state.size + 1
                    {
                        return Err(RecordError::Inconsistent(format!(
                            "pending record {} does not match {STATE_FILE}",
                            p.file
                        )));
                    }
                    let mut frontier = Frontier::from_state(&state.frontier)
                        .map_err(|e| RecordError::Inconsistent(e.to_string()))?;
                    frontier.append(&payload);
                    state.frontier = frontier.to_state();
                    state.size = p.seq;
                    state.head_file = Some(p.file);
                    state.head_sha256 = p.payload_sha256;
                }
            }
        }
        let head = match &state.head_file {
            Some(f) => self.read_opt(f)?,
            None => None,
        };
        check_head(&state, head)?;
        Ok(Some(state))
    }
}

/// The names of the entries of a directory.
fn list_dir(dir: &Path) -> Result<Vec<String>, RecordError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| RecordError::io(dir, e))? {
        let entry = entry.map_err(|e| RecordError::io(dir, e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    Ok(names)
}

impl Ledger for DirLedger {
    fn append(
        &mut self,
        input: &RecordInput,
        signer: &Signer,
    ) -> Result<AppendReceipt, RecordError> {
        let lock_path = self.dir.join(LOCK_FILE);
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(|e| RecordError::io(&lock_path, e))?;
        fs4::FileExt::lock(&lock).map_err(|e| RecordError::io(&lock_path, e))?;

        let state = self.load_state()?;
        let prepared = prepare(
            state.as_ref(),
            input,
            signer,
            self.options.origin.as_deref(),
        )?;
        let record_path = self.dir.join(&prepared.file);
        if record_path.exists() {
            return Err(RecordError::Inconsistent(format!(
                "{} already exists",
                prepared.file
            )));
        }
        if let Some(shard_dir) = record_path.parent() {
            fs::create_dir_all(shard_dir).map_err(|e| RecordError::io(shard_dir, e))?;
        }
        // 1. Announce the record, 2. write it, 3. checkpoint, 4. final state. A crash after 1
        // or 2 is resolved by the next append (see `load_state`).
        if let Some(mut announced) = state.clone() {
            announced.pending = Some(PendingAppend {
                seq: prepared.seq,
                file: prepared.file.clone(),
                payload_sha256: prepared.payload_sha256.clone(),
            });
            self.write_atomic(STATE_FILE, &state_bytes(&announced))?;
        }
        self.write_atomic(&prepared.file, &prepared.envelope)?;
        self.write_atomic(CHECKPOINT_FILE, prepared.checkpoint.as_bytes())?;
        self.write_atomic(STATE_FILE, &state_bytes(&prepared.state))?;
        drop(lock);
        Ok(AppendReceipt {
            seq: prepared.seq,
            file: prepared.file,
            payload_sha256: prepared.payload_sha256,
            checkpoint: prepared.checkpoint,
            origin: prepared.state.origin,
            commit: None,
            attempts: 1,
        })
    }

    fn state(&self) -> Result<Option<LedgerState>, RecordError> {
        self.load_state()
    }

    fn head_record(&self) -> Result<Option<Vec<u8>>, RecordError> {
        match self.load_state()?.and_then(|s| s.head_file) {
            Some(file) => self.read_opt(&file),
            None => Ok(None),
        }
    }

    fn source(&self) -> LedgerSource {
        LedgerSource::Dir(self.dir.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_sanitized_and_parse_back() {
        assert_eq!(
            record_file_name(42, "support-answer", "17"),
            "000042-support-answer-17.dsse.json"
        );
        assert_eq!(
            record_file_name(1, "../../etc/passwd", "v 1/2"),
            "000001-_._.._etc_passwd-v_1_2.dsse.json"
        );
        assert_eq!(sanitize_component(""), "_");
        assert_eq!(sanitize_component(".hidden"), "_hidden");
        assert_eq!(parse_record_file_name("000042-a-1.dsse.json"), Some(42));
        assert_eq!(
            parse_record_file_name("1234567-a-1.dsse.json"),
            Some(1_234_567)
        );
        assert_eq!(parse_record_file_name("42-a-1.dsse.json"), None);
        assert_eq!(parse_record_file_name("000042-a-1.json"), None);
    }

    #[test]
    fn records_are_sharded_by_thousands() {
        assert_eq!(shard_name(1), "000");
        assert_eq!(shard_name(999), "000");
        assert_eq!(shard_name(1000), "001");
        assert_eq!(shard_name(999_999), "999");
        assert_eq!(shard_name(1_000_000), "1000");
        assert_eq!(
            record_path(42, "support-answer", "17"),
            "records/000/000042-support-answer-17.dsse.json"
        );
        assert_eq!(
            record_path(1_234_567, "a", "1"),
            "records/1234/1234567-a-1.dsse.json"
        );
        assert!(is_shard_name("000") && is_shard_name("1234"));
        assert!(!is_shard_name("00") && !is_shard_name("00a") && !is_shard_name(""));
    }
}
