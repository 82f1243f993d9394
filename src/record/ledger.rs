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
//!   A run of records ([`Ledger::append_all`], one `relgate record`) is ONE commit that adds
//!   all its records, with one checkpoint for its last record, written into memory and packed
//!   by libgit2 (a packfile per shard it fills), then one move of the branch ([`batch`]), all
//!   or nothing. `relgate verify`'s history walk accepts a commit that adds several records in
//!   seq order, exactly as it accepts one that adds one.
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
mod dir;
mod git;

pub use self::dir::*;
pub use self::git::*;

/// Default ledger branch.
pub const DEFAULT_BRANCH: &str = "relgate/records";
/// Directory of record files.
pub const RECORDS_DIR: &str = "records";
/// Signed checkpoint file.
pub const CHECKPOINT_FILE: &str = "CHECKPOINT";
/// Head state file.
pub const STATE_FILE: &str = "ledger-state.json";
/// Lock file of a [`DirLedger`].
pub(crate) const LOCK_FILE: &str = ".relgate-ledger.lock";
/// Suffix of record files.
pub(crate) const RECORD_SUFFIX: &str = ".dsse.json";
/// Records per shard directory under [`RECORDS_DIR`].
pub(crate) const SHARD_SIZE: u64 = 1000;
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
    /// Appends every input in order, one record each, and pushes a receipt per record to
    /// `receipts` as it becomes part of the ledger. The default appends one by one (a failure
    /// leaves the records before it appended); the git backend writes the run as one commit
    /// (into packfiles, one per shard it fills, with one checkpoint: every receipt carries the
    /// run's commit and its checkpoint) and moves the branch once, so a run is all-or-nothing
    /// and costs O(1) per record in the size of the ledger and of the repository.
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
pub(crate) fn last_record_commit(ledger: &dyn Ledger) -> Result<Option<String>, RecordError> {
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
pub(crate) fn commit_message_text(text: &str) -> String {
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
pub(crate) const MAX_MESSAGE_FIELD: usize = 120;

/// Sanitizes a manifest name or version for a file name: ASCII letters, digits, `.`, `_`
/// and `-` are kept, anything else becomes `_`; at most 64 characters; never empty, never
/// starting with `.`.
pub(crate) fn sanitize_component(s: &str) -> String {
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
pub(crate) fn record_file_name(seq: u64, name: &str, version: &str) -> String {
    format!(
        "{seq:06}-{}-{}{RECORD_SUFFIX}",
        sanitize_component(name),
        sanitize_component(version)
    )
}

/// Why [`read_blob_capped`] returned no bytes.
#[derive(Debug)]
pub(crate) enum CappedRead {
    /// The blob's (or file's) size, above the limit: nothing of it was read.
    TooLarge(u64),
    Git(git2::Error),
    /// A file of a directory ledger could not be opened or read (or is not a regular file).
    Io(String),
}

impl std::fmt::Display for CappedRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CappedRead::TooLarge(size) => write!(f, "{size} bytes, above the {MAX_LEDGER_FILE_BYTES}-byte limit of a ledger file; not read"),
            CappedRead::Git(e) => write!(f, "{}", e.message()),
            CappedRead::Io(e) => write!(f, "{e}"),
        }
    }
}

/// The largest ledger file (record, `CHECKPOINT`, head state) relgate reads.
pub(crate) const MAX_LEDGER_FILE_BYTES: u64 = dsse::MAX_ENVELOPE_BYTES;

/// The bytes of a file of a directory ledger, refused above [`MAX_LEDGER_FILE_BYTES`]; a FIFO,
/// device or directory is refused without blocking ([`crate::manifest::open_regular`]).
pub(crate) fn read_file_capped(path: &Path) -> Result<Vec<u8>, CappedRead> {
    let shown = path.display().to_string();
    let file =
        crate::manifest::open_regular(path, &shown).map_err(|e| CappedRead::Io(e.message))?;
    let size = file
        .metadata()
        .map_err(|e| CappedRead::Io(e.to_string()))?
        .len();
    if size > MAX_LEDGER_FILE_BYTES {
        return Err(CappedRead::TooLarge(size));
    }
    // The file may grow between the size check and the read: read one byte past the limit.
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(MAX_LEDGER_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CappedRead::Io(e.to_string()))?;
    if bytes.len() as u64 > MAX_LEDGER_FILE_BYTES {
        return Err(CappedRead::TooLarge(bytes.len() as u64));
    }
    Ok(bytes)
}

/// The largest tree of a git ledger relgate reads: a shard tree holds at most [`SHARD_SIZE`]
/// entries (about 80 KB) and `records/` one entry per shard (about 3.5 MB for 100 million
/// records), so anything near this is not a ledger relgate wrote.
pub(crate) const MAX_LEDGER_TREE_BYTES: usize = 16 << 20;

/// The largest top-level tree of a ledger commit the history walk reads: a ledger's holds
/// three entries. The walk reads one per commit, so a tree as large as
/// [`MAX_LEDGER_TREE_BYTES`] in each of many commits (each a small delta of the last in the
/// pack) would cost seconds per commit.
pub(crate) const MAX_ROOT_TREE_BYTES: usize = 64 << 10;

/// The largest `records/` tree the history walk reads: one entry (about 31 bytes) per shard,
/// so 4 MiB holds 135 million records.
pub(crate) const MAX_RECORDS_TREE_BYTES: usize = 4 << 20;

/// The largest shard tree the history walk reads: [`SHARD_SIZE`] entries of at most about
/// 175 bytes (a name and a version of at most [`MAX_COMPONENT`] characters each), with room.
pub(crate) const MAX_SHARD_TREE_BYTES: usize = 512 << 10;

/// Refuses tree `oid` when it is not a tree or its size is above [`MAX_LEDGER_TREE_BYTES`],
/// from git's object header, before it is inflated: whoever can push the ledger branch can
/// commit a tree that packs small and inflates to gigabytes, read once per commit by the
/// history walk.
pub(crate) fn check_tree_size(repo: &Repository, oid: Oid) -> Result<(), git2::Error> {
    check_tree_size_in(&repo.odb()?, oid)
}

/// [`check_tree_size`] in an object store already opened (the history walk reads three trees
/// per commit).
pub(crate) fn check_tree_size_in(odb: &git2::Odb<'_>, oid: Oid) -> Result<(), git2::Error> {
    check_tree_size_below(odb, oid, MAX_LEDGER_TREE_BYTES)
}

/// [`check_tree_size_in`] with the limit `limit` (bytes).
pub(crate) fn check_tree_size_below(
    odb: &git2::Odb<'_>,
    oid: Oid,
    limit: usize,
) -> Result<(), git2::Error> {
    let (size, kind) = odb.read_header(oid)?;
    if kind != ObjectType::Tree {
        return Err(git2::Error::from_str(&format!(
            "object {oid} is a {kind}, not a directory"
        )));
    }
    if size > limit {
        return Err(git2::Error::from_str(&format!(
            "tree {oid} is {size} bytes, above the {limit}-byte limit of a ledger directory; \
             not read"
        )));
    }
    Ok(())
}

/// git's order of tree entries: by name bytes, a tree's name compared as if followed by `/`.
pub(crate) fn git_name_order(a: &[u8], a_tree: bool, b: &[u8], b_tree: bool) -> std::cmp::Ordering {
    let n = a.len().min(b.len());
    a[..n].cmp(&b[..n]).then_with(|| {
        let end =
            |name: &[u8], tree: bool| name.get(n).copied().unwrap_or(if tree { b'/' } else { 0 });
        end(a, a_tree).cmp(&end(b, b_tree))
    })
}

/// Refuses a tree whose entries are not in git's order, each name once. git never writes one,
/// and readers disagree on it: libgit2 finds a name by binary search, a checkout takes another
/// of two entries of the same name. A ledger commit whose tree lists `records` twice showed
/// verify one set of records and every checkout another.
pub(crate) fn check_canonical(tree: &Tree<'_>) -> Result<(), git2::Error> {
    let mut last: Option<(Vec<u8>, bool)> = None;
    for e in tree.iter() {
        let is_tree = e.kind() == Some(ObjectType::Tree);
        if let Some((name, was_tree)) = &last {
            if git_name_order(name, *was_tree, e.name_bytes(), is_tree) != std::cmp::Ordering::Less
            {
                return Err(git2::Error::from_str(&format!(
                    "tree {} lists {} twice or out of git's order: git never writes such a \
                     tree, and a checkout may show another entry than the one read",
                    tree.id(),
                    String::from_utf8_lossy(e.name_bytes())
                )));
            }
        }
        last = Some((e.name_bytes().to_vec(), is_tree));
    }
    Ok(())
}

/// Tree `oid` of a git ledger, refused by [`check_tree_size`] before it is read.
pub(crate) fn find_tree_capped(repo: &Repository, oid: Oid) -> Result<Tree<'_>, git2::Error> {
    check_tree_size(repo, oid)?;
    let tree = repo.find_tree(oid)?;
    check_canonical(&tree)?;
    Ok(tree)
}

/// The bytes of blob `oid`, refused above [`MAX_LEDGER_FILE_BYTES`] before any of it is
/// inflated: git's object header gives the size, so a blob that packs into a few megabytes and
/// inflates to gigabytes (whoever can push the ledger branch can commit one, no key needed) is
/// never loaded. Every read of a file of a git ledger goes through here.
pub(crate) fn read_blob_capped(repo: &Repository, oid: Oid) -> Result<Vec<u8>, CappedRead> {
    let odb = repo.odb().map_err(CappedRead::Git)?;
    let (size, kind) = odb.read_header(oid).map_err(CappedRead::Git)?;
    if kind != ObjectType::Blob {
        return Err(CappedRead::Git(git2::Error::from_str(&format!(
            "object {oid} is a {kind}, not a file"
        ))));
    }
    if size as u64 > MAX_LEDGER_FILE_BYTES {
        return Err(CappedRead::TooLarge(size as u64));
    }
    let object = odb.read(oid).map_err(CappedRead::Git)?;
    Ok(object.data().to_vec())
}

/// The shard directory (under [`RECORDS_DIR`]) of record `seq`: `seq / 1000`, zero-padded to
/// at least 3 digits (`000` holds seqs 1..=999, `001` holds 1000..=1999, `1234` holds
/// 1,234,000..).
pub fn shard_name(seq: u64) -> String {
    format!("{:03}", seq / SHARD_SIZE)
}

/// True for a name that has the shape of a shard directory (3 or more ASCII digits). Whether a
/// record sits in the RIGHT shard is `dir == shard_name(seq)`.
pub(crate) fn is_shard_name(name: &str) -> bool {
    name.len() >= 3 && name.bytes().all(|b| b.is_ascii_digit())
}

/// The path of record `seq` in the ledger: `records/<shard>/<file name>`
/// (`records/000/000042-support-answer-17.dsse.json`).
pub(crate) fn record_path(seq: u64, name: &str, version: &str) -> String {
    format!(
        "{RECORDS_DIR}/{}/{}",
        shard_name(seq),
        record_file_name(seq, name, version)
    )
}

/// The seq encoded in a record file name (`000042-...dsse.json` -> 42), if it has that shape.
pub(crate) fn parse_record_file_name(name: &str) -> Option<u64> {
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
    let mut chain = Chain::from_state(state)?;
    let link = chain.extend(input, origin)?;
    let envelope = dsse::sign_payload(&link.payload, signer).to_json();
    let state = chain.state(&link.file);
    Ok(Prepared {
        seq: link.seq,
        checkpoint: chain.checkpoint(signer),
        file: link.file,
        envelope,
        payload_sha256: state.head_sha256.clone(),
        state,
    })
}

/// The head of a ledger as appends extend it: the size, the last payload's hash, the Merkle
/// frontier and the origin. A run of records extends one chain record by record (each
/// payload names the hash of the one before, so this part is serial), then signs the
/// payloads, in parallel, and one checkpoint for the last.
struct Chain {
    size: u64,
    prev: String,
    frontier: Frontier,
    origin: Option<String>,
}

/// One record's place in the chain, not yet signed.
struct Link {
    seq: u64,
    /// Its path in the ledger.
    file: String,
    payload: Vec<u8>,
    /// Hex SHA-256 of the payload.
    payload_sha256: String,
}

impl Chain {
    /// The chain of the ledger whose head is `state` (`None`: an empty ledger).
    fn from_state(state: Option<&LedgerState>) -> Result<Chain, RecordError> {
        let Some(s) = state else {
            return Ok(Chain {
                size: 0,
                prev: GENESIS_PREV.to_owned(),
                frontier: Frontier::new(),
                origin: None,
            });
        };
        let frontier = Frontier::from_state(&s.frontier)
            .map_err(|e| RecordError::Inconsistent(format!("{STATE_FILE}: {e}")))?;
        if frontier.size() != s.size {
            return Err(RecordError::Inconsistent(format!(
                "{STATE_FILE}: frontier covers {} records, size is {}",
                frontier.size(),
                s.size
            )));
        }
        Ok(Chain {
            size: s.size,
            prev: s.head_sha256.clone(),
            frontier,
            origin: Some(s.origin.clone()),
        })
    }

    /// The payload of `input` as the next record. A new ledger takes `origin`, else the
    /// default origin of its first record; an existing one keeps its own.
    fn extend(&mut self, input: &RecordInput, origin: Option<&str>) -> Result<Link, RecordError> {
        let seq = self.size + 1;
        let statement = build_statement(input, seq, &self.prev)?;
        let payload = statement.to_payload()?;
        let payload_hash = sha256(&payload);
        if self.origin.is_none() {
            let origin = match origin {
                Some(o) => o.to_owned(),
                None => default_origin(&payload_hash),
            };
            validate_origin(&origin).map_err(|e| RecordError::Input(e.to_string()))?;
            self.origin = Some(origin);
        }
        self.frontier.append(&payload);
        self.prev = hex::encode(payload_hash);
        self.size = seq;
        Ok(Link {
            seq,
            file: record_path(seq, &input.manifest.name, &input.manifest.version),
            payload,
            payload_sha256: self.prev.clone(),
        })
    }

    /// The head state after the last record, whose file is `head_file`.
    fn state(&self, head_file: &str) -> LedgerState {
        LedgerState {
            format: 1,
            origin: self.origin.clone().unwrap_or_default(),
            size: self.size,
            head_file: Some(head_file.to_owned()),
            head_sha256: self.prev.clone(),
            frontier: self.frontier.to_state(),
            pending: None,
        }
    }

    /// The signed checkpoint of the chain as it stands.
    fn checkpoint(&self, signer: &Signer) -> String {
        Checkpoint {
            origin: self.origin.clone().unwrap_or_default(),
            size: self.size,
            root: self.frontier.root(),
            extensions: Vec::new(),
        }
        .sign(signer)
    }
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

/// The wait after losing a compare-and-swap: 0.5 ms steps up to 10 ms, plus up to 2 ms of
/// jitter so racing writers do not retry in lockstep.
fn backoff(attempt: u32) {
    const STEP: Duration = Duration::from_micros(500);
    crate::backoff::Backoff::linear(STEP, STEP.saturating_mul(20))
        .with_jitter(Duration::from_millis(2))
        .sleep(attempt);
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
