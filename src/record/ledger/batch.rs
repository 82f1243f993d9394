//! A run of records on a git branch, written as ONE packfile and one move of the branch.
//!
//! Each record is still its own commit (so the append-only history check of `relgate verify`
//! is the same for a run of 10,000 as for a run of one), but the objects are built here as
//! raw git objects in memory instead of through libgit2's object database one at a time:
//!
//! - the head shard's tree is the previous one with the new entry inserted in git's order
//!   (normally appended: file names start with the zero-padded seq), the `records/` tree the
//!   previous one with the shard's entry replaced, and the top tree the previous one with
//!   `records`, `CHECKPOINT` and `ledger-state.json` replaced (any other entry is kept, as the
//!   single-record path keeps it, so `relgate verify` still names it);
//! - object ids are SHA-1 of `<type> <size>\0<bytes>`, as git computes them;
//! - the pack stores each new version of a shard tree and of the `records/` tree as a delta
//!   against its previous version in the same pack (copy the unchanged prefix and suffix,
//!   insert the new bytes; a chain is cut every [`MAX_DEPTH`] versions, as git does), so a
//!   shard of 1,000 records costs about a hundred bytes per record instead of a full tree;
//! - the pack goes to the repository through libgit2's indexer (`Odb::packwriter`), which
//!   resolves every delta, computes every object id again from the bytes and writes the
//!   index: an object this code got wrong could not hide behind a wrong id.
//!
//! Cost per record: two signatures, the hashing of the objects (the shard tree dominates:
//! at most 1,000 entries), and a few hundred bytes of zlib. Nothing depends on the number of
//! records already in the ledger.

use std::io::Write as _;

use flate2::write::ZlibEncoder;
use flate2::Compression;
use git2::{ObjectType, Oid, Repository};
use sha1::{Digest as _, Sha1};

use super::{
    commit_message_text, shard_name, state_bytes, Prepared, RecordError, CHECKPOINT_FILE,
    RECORDS_DIR, STATE_FILE,
};
use crate::record::statement::RecordInput;

/// Longest delta chain in a pack written here (git's default `pack.depth` is 50): reading an
/// object resolves at most this many deltas.
pub(super) const MAX_DEPTH: u32 = 50;

const MODE_TREE: &[u8] = b"40000";
const MODE_FILE: &[u8] = b"100644";

/// The id git gives an object of `kind` with these bytes.
pub(super) fn object_id(kind: ObjectType, data: &[u8]) -> Oid {
    let mut h = Sha1::new();
    h.update(kind.str().as_bytes());
    h.update(b" ");
    h.update(data.len().to_string().as_bytes());
    h.update([0u8]);
    h.update(data);
    let digest: [u8; 20] = h.finalize().into();
    // 20 bytes is always a valid SHA-1 object id.
    Oid::from_bytes(&digest).unwrap_or(Oid::ZERO_SHA1)
}

/// One entry of a raw tree: (start, end) of the whole entry, the name's range, whether it is
/// a tree.
struct Span {
    start: usize,
    end: usize,
    name: (usize, usize),
    tree: bool,
}

/// The entries of a raw tree (SHA-1 ids), `None` when the bytes are not a tree.
fn spans(raw: &[u8]) -> Option<Vec<Span>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < raw.len() {
        let space = raw[pos..].iter().position(|&b| b == b' ')? + pos;
        let nul = raw[space..].iter().position(|&b| b == 0)? + space;
        let end = nul + 21;
        if end > raw.len() {
            return None;
        }
        out.push(Span {
            start: pos,
            end,
            name: (space + 1, nul),
            tree: &raw[pos..space] == MODE_TREE,
        });
        pos = end;
    }
    Some(out)
}

/// git's order of tree entries: by name bytes, a tree's name read as ending in `/`.
fn git_cmp(a: &[u8], a_tree: bool, b: &[u8], b_tree: bool) -> std::cmp::Ordering {
    let n = a.len().min(b.len());
    a[..n].cmp(&b[..n]).then_with(|| {
        let end =
            |name: &[u8], tree: bool| name.get(n).copied().unwrap_or(if tree { b'/' } else { 0 });
        end(a, a_tree).cmp(&end(b, b_tree))
    })
}

/// `raw` (a tree) with entry `name` set to (`mode`, `oid`): an entry of the same name (of any
/// kind) is replaced, else the entry is inserted where git's order puts it. With `fresh`, an
/// existing entry of that name is an error instead. `None`: `raw` is not a tree.
fn tree_with(
    raw: &[u8],
    name: &str,
    mode: &[u8],
    oid: Oid,
    fresh: bool,
) -> Result<Option<Vec<u8>>, RecordError> {
    let Some(entries) = spans(raw) else {
        return Ok(None);
    };
    let tree = mode == MODE_TREE;
    let mut out = Vec::with_capacity(raw.len() + name.len() + 28);
    let mut placed = false;
    for e in &entries {
        let existing = &raw[e.name.0..e.name.1];
        if existing == name.as_bytes() {
            if fresh {
                return Err(RecordError::Inconsistent(format!("{name} already exists")));
            }
            continue;
        }
        if !placed && git_cmp(name.as_bytes(), tree, existing, e.tree).is_lt() {
            push_entry(&mut out, name, mode, oid);
            placed = true;
        }
        out.extend_from_slice(&raw[e.start..e.end]);
    }
    if !placed {
        push_entry(&mut out, name, mode, oid);
    }
    Ok(Some(out))
}

fn push_entry(out: &mut Vec<u8>, name: &str, mode: &[u8], oid: Oid) {
    out.extend_from_slice(mode);
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.extend_from_slice(oid.as_bytes());
}

/// A git delta that turns `base` into `target`: copy their common prefix and suffix from the
/// base, insert the rest.
fn delta(base: &[u8], target: &[u8]) -> Vec<u8> {
    let prefix = base.iter().zip(target).take_while(|(a, b)| a == b).count();
    let room = base.len().min(target.len()) - prefix;
    let suffix = base
        .iter()
        .rev()
        .zip(target.iter().rev())
        .take(room)
        .take_while(|(a, b)| a == b)
        .count();
    let mut out = Vec::with_capacity(32 + target.len() - prefix - suffix);
    varint(&mut out, base.len());
    varint(&mut out, target.len());
    copy(&mut out, 0, prefix);
    for chunk in target[prefix..target.len() - suffix].chunks(0x7f) {
        // An insert of 1..=127 bytes: the count is the opcode.
        out.push(chunk.len() as u8);
        out.extend_from_slice(chunk);
    }
    copy(&mut out, base.len() - suffix, suffix);
    out
}

/// The size varint of a delta header (7 bits at a time, least significant first).
fn varint(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Copy instructions for `len` bytes of the base from `offset` (at most 0xffffff each).
fn copy(out: &mut Vec<u8>, mut offset: usize, mut len: usize) {
    while len > 0 {
        let n = len.min(0xff_ffff);
        let mut op = 0x80u8;
        let at = out.len();
        out.push(0);
        for i in 0..4 {
            let b = ((offset >> (8 * i)) & 0xff) as u8;
            if b != 0 {
                op |= 1 << i;
                out.push(b);
            }
        }
        for i in 0..3 {
            let b = ((n >> (8 * i)) & 0xff) as u8;
            if b != 0 {
                op |= 0x10 << i;
                out.push(b);
            }
        }
        out[at] = op;
        offset += n;
        len -= n;
    }
}

/// The last version of a tree written into the pack: its bytes, its entry's offset and how
/// many deltas lead to it.
struct Version {
    raw: Vec<u8>,
    offset: Option<u64>,
    depth: u32,
}

/// A packfile being written in memory.
struct Pack {
    bytes: Vec<u8>,
    count: u32,
}

impl Pack {
    fn new() -> Pack {
        let mut bytes = Vec::with_capacity(1 << 20);
        bytes.extend_from_slice(b"PACK");
        bytes.extend_from_slice(&2u32.to_be_bytes());
        bytes.extend_from_slice(&0u32.to_be_bytes());
        Pack { bytes, count: 0 }
    }

    /// Appends an entry (type code, inflated size, optional OFS_DELTA base offset, data) and
    /// returns its offset.
    fn entry(&mut self, code: u8, data: &[u8], base: Option<u64>) -> Result<u64, RecordError> {
        let offset = self.bytes.len() as u64;
        let mut size = data.len();
        let mut byte = (code << 4) | (size & 0x0f) as u8;
        size >>= 4;
        while size > 0 {
            self.bytes.push(byte | 0x80);
            byte = (size & 0x7f) as u8;
            size >>= 7;
        }
        self.bytes.push(byte);
        if let Some(base) = base {
            // The distance back to the base, big-endian base-128 where each continuation
            // adds one (git's OFS_DELTA encoding).
            let mut n = offset - base;
            let mut enc = vec![(n & 0x7f) as u8];
            n >>= 7;
            while n > 0 {
                n -= 1;
                enc.push(0x80 | (n & 0x7f) as u8);
                n >>= 7;
            }
            enc.reverse();
            self.bytes.extend_from_slice(&enc);
        }
        let mut z = ZlibEncoder::new(&mut self.bytes, Compression::fast());
        z.write_all(data)
            .and_then(|()| z.finish().map(|_| ()))
            .map_err(|e| RecordError::Inconsistent(format!("cannot compress an object: {e}")))?;
        self.count += 1;
        Ok(offset)
    }

    /// A whole object.
    fn object(&mut self, kind: ObjectType, data: &[u8]) -> Result<(Oid, u64), RecordError> {
        let code = match kind {
            ObjectType::Commit => 1,
            ObjectType::Tree => 2,
            _ => 3,
        };
        Ok((object_id(kind, data), self.entry(code, data, None)?))
    }

    /// A new version of a tree: a delta against the last one when that is in this pack and
    /// the chain is not too long, else whole.
    fn tree(&mut self, last: &mut Version, raw: Vec<u8>) -> Result<Oid, RecordError> {
        let id = object_id(ObjectType::Tree, &raw);
        let (offset, depth) = match last.offset.filter(|_| last.depth < MAX_DEPTH) {
            Some(base) => (
                self.entry(6, &delta(&last.raw, &raw), Some(base))?,
                last.depth + 1,
            ),
            None => (self.entry(2, &raw, None)?, 0),
        };
        *last = Version {
            raw,
            offset: Some(offset),
            depth,
        };
        Ok(id)
    }

    fn finish(mut self) -> Vec<u8> {
        self.bytes[8..12].copy_from_slice(&self.count.to_be_bytes());
        let trailer: [u8; 20] = Sha1::digest(&self.bytes).into();
        self.bytes.extend_from_slice(&trailer);
        self.bytes
    }
}

/// The commit object bytes, formatted as libgit2 and git write them.
fn commit_bytes(
    tree: Oid,
    parent: Option<Oid>,
    sig: &git2::Signature<'_>,
    message: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + message.len());
    out.extend_from_slice(format!("tree {tree}\n").as_bytes());
    if let Some(p) = parent {
        out.extend_from_slice(format!("parent {p}\n").as_bytes());
    }
    let when = sig.when();
    let minutes = when.offset_minutes();
    let person = |out: &mut Vec<u8>, role: &str| {
        out.extend_from_slice(role.as_bytes());
        out.push(b' ');
        out.extend_from_slice(sig.name_bytes());
        out.extend_from_slice(b" <");
        out.extend_from_slice(sig.email_bytes());
        out.extend_from_slice(
            format!(
                "> {} {}{:02}{:02}\n",
                when.seconds(),
                if minutes < 0 { '-' } else { '+' },
                minutes.abs() / 60,
                minutes.abs() % 60
            )
            .as_bytes(),
        );
    };
    person(&mut out, "author");
    person(&mut out, "committer");
    out.push(b'\n');
    out.extend_from_slice(message.as_bytes());
    out
}

/// The message of the ledger commit of one record.
pub(super) fn commit_message(prepared: &Prepared, input: &RecordInput) -> String {
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

/// Records being appended after the branch's head, as objects of one pack.
pub(super) struct Batch {
    pack: Pack,
    parent: Option<Oid>,
    top: Vec<u8>,
    records: Version,
    /// The head shard: its name and last version.
    shard: Option<(String, Version)>,
}

/// The raw bytes of object `oid`, which must be a tree.
fn read_tree(repo: &Repository, oid: Oid) -> Result<Vec<u8>, RecordError> {
    let odb = repo.odb()?;
    let obj = odb.read(oid)?;
    if obj.kind() != ObjectType::Tree {
        return Err(RecordError::Inconsistent(format!("{oid} is not a tree")));
    }
    Ok(obj.data().to_vec())
}

/// The id of entry `name` of raw tree `raw` when it is a tree.
fn subtree_id(raw: &[u8], name: &str) -> Option<Oid> {
    spans(raw)?.into_iter().find_map(|e| {
        (e.tree && &raw[e.name.0..e.name.1] == name.as_bytes())
            .then(|| Oid::from_bytes(&raw[e.end - 20..e.end]).ok())
            .flatten()
    })
}

fn not_a_tree(what: &str) -> RecordError {
    RecordError::Inconsistent(format!("{what} of the ledger head is not a readable tree"))
}

impl Batch {
    /// Starts after commit `head` (`None`: an empty ledger).
    pub(super) fn start(
        repo: &Repository,
        head: Option<&git2::Commit<'_>>,
    ) -> Result<Batch, RecordError> {
        let top = match head {
            Some(c) => read_tree(repo, c.tree_id())?,
            None => Vec::new(),
        };
        let records = match subtree_id(&top, RECORDS_DIR) {
            Some(id) => read_tree(repo, id)?,
            None => Vec::new(),
        };
        Ok(Batch {
            pack: Pack::new(),
            parent: head.map(|c| c.id()),
            top,
            records: Version {
                raw: records,
                offset: None,
                depth: 0,
            },
            shard: None,
        })
    }

    /// Adds the commit of one prepared record; returns its id.
    pub(super) fn add(
        &mut self,
        repo: &Repository,
        sig: &git2::Signature<'_>,
        prepared: &Prepared,
        input: &RecordInput,
    ) -> Result<Oid, RecordError> {
        let shard = shard_name(prepared.seq);
        if self.shard.as_ref().map(|(name, _)| name) != Some(&shard) {
            let raw = match subtree_id(&self.records.raw, &shard) {
                Some(id) => read_tree(repo, id)?,
                None => Vec::new(),
            };
            self.shard = Some((
                shard.clone(),
                Version {
                    raw,
                    offset: None,
                    depth: 0,
                },
            ));
        }
        let file_name = prepared.file.rsplit('/').next().unwrap_or(&prepared.file);
        let (blob, _) = self.pack.object(ObjectType::Blob, &prepared.envelope)?;
        let Some((_, last)) = self.shard.as_mut() else {
            return Err(not_a_tree(&shard));
        };
        let shard_raw = tree_with(&last.raw, file_name, MODE_FILE, blob, true)
            .map_err(|_| RecordError::Inconsistent(format!("{} already exists", prepared.file)))?
            .ok_or_else(|| not_a_tree(&format!("{RECORDS_DIR}/{shard}")))?;
        let shard_id = self.pack.tree(last, shard_raw)?;
        let records_raw = tree_with(&self.records.raw, &shard, MODE_TREE, shard_id, false)?
            .ok_or_else(|| not_a_tree(RECORDS_DIR))?;
        let records_id = self.pack.tree(&mut self.records, records_raw)?;
        let (checkpoint, _) = self
            .pack
            .object(ObjectType::Blob, prepared.checkpoint.as_bytes())?;
        let (state, _) = self
            .pack
            .object(ObjectType::Blob, &state_bytes(&prepared.state))?;
        let not_top = || not_a_tree("the top tree");
        let top =
            tree_with(&self.top, RECORDS_DIR, MODE_TREE, records_id, false)?.ok_or_else(not_top)?;
        let top =
            tree_with(&top, CHECKPOINT_FILE, MODE_FILE, checkpoint, false)?.ok_or_else(not_top)?;
        let top = tree_with(&top, STATE_FILE, MODE_FILE, state, false)?.ok_or_else(not_top)?;
        let (top_id, _) = self.pack.object(ObjectType::Tree, &top)?;
        self.top = top;
        let commit = commit_bytes(top_id, self.parent, sig, &commit_message(prepared, input));
        let (commit_id, _) = self.pack.object(ObjectType::Commit, &commit)?;
        self.parent = Some(commit_id);
        Ok(commit_id)
    }

    /// Writes the pack into `repo`'s object database (indexed by libgit2).
    pub(super) fn write(self, repo: &Repository) -> Result<(), RecordError> {
        let bytes = self.pack.finish();
        let odb = repo.odb()?;
        let mut writer = odb.packwriter()?;
        writer
            .write_all(&bytes)
            .map_err(|e| RecordError::Inconsistent(format!("cannot write the packfile: {e}")))?;
        writer.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids_are_gits() {
        assert_eq!(
            object_id(ObjectType::Blob, b"hello\n"),
            Oid::hash_object(ObjectType::Blob, b"hello\n").expect("hash")
        );
    }

    #[test]
    fn commits_are_formatted_as_libgit2_formats_them() {
        let dir = tempfile::tempdir().expect("tmp");
        let repo = Repository::init_bare(dir.path()).expect("init");
        let tree = repo
            .find_tree(
                repo.treebuilder(None)
                    .and_then(|b| b.write())
                    .expect("tree"),
            )
            .expect("tree");
        for offset in [0, 330, -90] {
            let sig = git2::Signature::new(
                "relgate",
                "relgate@localhost",
                &git2::Time::new(1_767_225_600, offset),
            )
            .expect("sig");
            let parent = repo
                .find_commit(
                    repo.commit(None, &sig, &sig, "one\n", &tree, &[])
                        .expect("c"),
                )
                .expect("commit");
            let message = "relgate: record 000002 a 1 (pass)\n";
            let want = repo
                .commit_create_buffer(&sig, &sig, message, &tree, &[&parent])
                .expect("buffer");
            assert_eq!(
                String::from_utf8_lossy(&commit_bytes(tree.id(), Some(parent.id()), &sig, message)),
                String::from_utf8_lossy(&want)
            );
        }
    }

    #[test]
    fn deltas_apply_to_their_target() {
        // Prefix/suffix deltas, applied by a straightforward reading of git's delta format.
        fn apply(base: &[u8], d: &[u8]) -> Vec<u8> {
            let mut pos = 0;
            let mut read_varint = || {
                let (mut n, mut shift) = (0usize, 0);
                loop {
                    let b = d[pos];
                    pos += 1;
                    n |= usize::from(b & 0x7f) << shift;
                    shift += 7;
                    if b & 0x80 == 0 {
                        return n;
                    }
                }
            };
            assert_eq!(read_varint(), base.len());
            let size = read_varint();
            let mut out = Vec::new();
            while pos < d.len() {
                let op = d[pos];
                pos += 1;
                if op & 0x80 != 0 {
                    let (mut off, mut len) = (0usize, 0usize);
                    for i in 0..4 {
                        if op & (1 << i) != 0 {
                            off |= usize::from(d[pos]) << (8 * i);
                            pos += 1;
                        }
                    }
                    for i in 0..3 {
                        if op & (0x10 << i) != 0 {
                            len |= usize::from(d[pos]) << (8 * i);
                            pos += 1;
                        }
                    }
                    if len == 0 {
                        len = 0x10000;
                    }
                    out.extend_from_slice(&base[off..off + len]);
                } else {
                    out.extend_from_slice(&d[pos..pos + usize::from(op)]);
                    pos += usize::from(op);
                }
            }
            assert_eq!(out.len(), size);
            out
        }
        let base: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let mut appended = base.clone();
        appended.extend_from_slice(&[7; 300]);
        let mut middle = base.clone();
        middle[40_000..40_020].copy_from_slice(&[9; 20]);
        for target in [appended, middle, Vec::new(), base[..10].to_vec()] {
            assert_eq!(apply(&base, &delta(&base, &target)), target);
        }
    }

    #[test]
    fn trees_keep_gits_order_and_refuse_a_second_record_of_a_name() {
        let a = Oid::hash_object(ObjectType::Blob, b"a").expect("hash");
        let mut raw = Vec::new();
        for name in [
            "000002-x-1.dsse.json",
            "000001-x-1.dsse.json",
            "000003-x-1.dsse.json",
        ] {
            raw = tree_with(&raw, name, MODE_FILE, a, true)
                .expect("new")
                .expect("tree");
        }
        let names: Vec<String> = spans(&raw)
            .expect("tree")
            .iter()
            .map(|e| String::from_utf8_lossy(&raw[e.name.0..e.name.1]).into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "000001-x-1.dsse.json",
                "000002-x-1.dsse.json",
                "000003-x-1.dsse.json"
            ]
        );
        assert!(tree_with(&raw, "000002-x-1.dsse.json", MODE_FILE, a, true).is_err());
        // A tree named like a file sorts as if followed by `/`: "a-b" < "a/" < "a0".
        let t = tree_with(&[], "a0", MODE_FILE, a, false)
            .expect("ok")
            .expect("tree");
        let t = tree_with(&t, "a-b", MODE_FILE, a, false)
            .expect("ok")
            .expect("tree");
        let t = tree_with(&t, "a", MODE_TREE, a, false)
            .expect("ok")
            .expect("tree");
        let order: Vec<String> = spans(&t)
            .expect("tree")
            .iter()
            .map(|e| String::from_utf8_lossy(&t[e.name.0..e.name.1]).into_owned())
            .collect();
        assert_eq!(order, ["a-b", "a", "a0"]);
    }
}
