//! Verification in bounded memory, the way an intact ledger is checked: the records are listed,
//! read and checked one window of shards at a time, in seq order, and the sequence, chain,
//! Merkle tree and head checks fold over them as they come; nothing is kept per record but the
//! commits a signed record names (for the completeness check) and, with an older checkpoint to
//! prove consistency from, each record's Merkle leaf.
//!
//! It gives the report the full checks ([`check_entries`]) give, problems in the same order,
//! for the ledgers it accepts: only shard directories under `records/`, each named as relgate
//! names it and holding record files in their own shard, whose seqs run 1, 2, 3, ... Anything
//! else (a foreign or misplaced file, a gap, a duplicate, records out of order, a listing that
//! fails) stops it, and the full checks run instead, which name what is wrong. A tampered
//! ledger is then read twice; an intact one once, in a window's memory.

use super::*;

/// Record entries per window: enough that the batches of a window keep every core busy, few
/// enough that a window's entries and kept parts stay a few megabytes. (Tests use windows of
/// two shards, so a small ledger spans several.)
const WINDOW_ENTRIES: usize = if cfg!(test) { 1_500 } else { 16 * 1024 };

// A window holds at least one whole batch, so each window but the last makes progress.
const _: () = assert!(WINDOW_ENTRIES >= BATCH);

/// What the checks carry from one record to the next.
struct Fold {
    /// The sequence and chain checks.
    in_order: InOrder,
    frontier: Frontier,
    /// Every leaf, only when an older checkpoint's consistency proof needs them.
    kept_leaves: Option<Vec<Hash>>,
    /// The sizes whose roots the checkpoint check may need, and the roots once reached.
    roots: BTreeMap<u64, Option<Hash>>,
    /// The payload hash of the first record of seq 1 (the default origin), once seen.
    genesis: Option<Option<Hash>>,
    /// The payload hash of the last record.
    head: Option<Hash>,
}

/// Verifies the records, chain, checkpoints and head state of `reader`'s ledger window by
/// window. `None` when the ledger is not one it accepts (see the module docs): the caller then
/// runs [`list_entries`] and [`check_entries`].
pub(super) fn check_streaming(
    reader: &Reader,
    source: &str,
    keys: &TrustedKeys,
    old_checkpoint: Option<&str>,
    options: &VerifyOptions,
) -> Option<VerifyReport> {
    let shards = reader.canonical_shards()?;
    let repo = match reader {
        Reader::Git { repo_path, .. } => Some(Repository::open(repo_path).ok()?),
        _ => None,
    };
    let mut report = VerifyReport::new(source.to_owned());
    // The root of the checkpoint's size, filled in when the fold gets there (at once for a
    // checkpoint of no records).
    let mut roots = BTreeMap::new();
    if let Some(size) = checkpoint_size(reader, keys) {
        roots.insert(
            size,
            (size == 0).then(|| merkle::root_from_leaf_hashes(&[])),
        );
    }
    let mut fold = Fold {
        in_order: InOrder::default(),
        frontier: Frontier::new(),
        kept_leaves: old_checkpoint.map(|_| Vec::new()),
        roots,
        genesis: None,
        head: None,
    };
    let mut shards = shards.iter().peekable();
    let mut window: Vec<Entry> = Vec::new();
    while shards.peek().is_some() || !window.is_empty() {
        while window.len() < WINDOW_ENTRIES {
            let Some(shard) = shards.next() else { break };
            let mut entries = reader.list_shard(repo.as_ref(), shard).ok()?;
            // Record files, in their own shard, readable as they are named.
            let placed = entries.iter().all(|e| {
                matches!(e.loc, Loc::Blob(_) | Loc::File)
                    && e.file_seq.is_some_and(|seq| shard_name(seq) == shard.name)
            });
            if !placed {
                return None;
            }
            entries.sort_by(|a, b| ledger_order(a).cmp(&ledger_order(b)));
            window.append(&mut entries);
        }
        // Every window but the last ends on a whole batch, and the rest opens the next: the
        // records are then checked in the same batches of BATCH as the whole-ledger checks
        // would check them. Batch verification can decide a signature crafted with a
        // small-order component by which signatures share its batch, so this keeps the two
        // paths' verdicts the same on every ledger.
        let whole = if shards.peek().is_some() {
            window.len() / BATCH * BATCH
        } else {
            window.len()
        };
        let next = window.split_off(whole);
        for chunk in read_and_examine(reader, &window, keys, options, &NoProgress) {
            let kept = fold_chunk(chunk, &mut report);
            report.records += kept.len() as u64;
            for k in &kept {
                fold.take(k, &window[k.entry].file)?;
            }
        }
        window = next;
    }
    fold.finish(reader, keys, old_checkpoint, options, &mut report);
    Some(report)
}

/// The size of the ledger's checkpoint, when it has a valid one: the checkpoint check compares
/// the root of that many records with it.
fn checkpoint_size(reader: &Reader, keys: &TrustedKeys) -> Option<u64> {
    let bytes = reader.read_top(CHECKPOINT_FILE).ok()??;
    let text = String::from_utf8(bytes).ok()?;
    Some(open_checkpoint(&text, keys).ok()?.checkpoint.size)
}

impl Fold {
    /// Takes the next record in ledger order; `None` when it is not the one the sequence
    /// expects (the full checks must name what is wrong).
    fn take(&mut self, k: &Kept, file: &str) -> Option<()> {
        if !self.in_order.take(k, file) {
            return None;
        }
        if let Some(leaf) = k.leaf {
            self.frontier.append_leaf_hash(leaf);
            if let Some(root) = self.roots.get_mut(&self.frontier.size()) {
                *root = Some(self.frontier.root());
            }
            if let Some(all) = &mut self.kept_leaves {
                all.push(leaf);
            }
        }
        if self.genesis.is_none() && k.seq == Some(1) {
            self.genesis = Some(k.payload_sha);
        }
        self.head = k.payload_sha;
        Some(())
    }

    /// The checks after the last record: the checkpoint, an older checkpoint, the head state,
    /// as [`check_entries`] runs them.
    fn finish(
        self,
        reader: &Reader,
        keys: &TrustedKeys,
        old_checkpoint: Option<&str>,
        options: &VerifyOptions,
        report: &mut VerifyReport,
    ) {
        self.in_order.report(report);
        let prefix_root = |size: u64| self.roots.get(&size).copied().flatten();
        let end = RecordsEnd {
            frontier: &self.frontier,
            leaves: self.kept_leaves.as_deref(),
            prefix_root: &prefix_root,
            genesis_sha: self.genesis.flatten(),
            head_sha: self.head,
        };
        check_records_end(reader, keys, old_checkpoint, options, &end, report);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::dsse::sign_payload;
    use crate::record::keys::Signer;
    use crate::record::ledger::{DirLedger, GitLedger, Ledger};
    use crate::record::statement::tests::sample_input;

    /// The record file of `seq` in directory ledger `dir`.
    fn record_file(dir: &Path, seq: u64) -> PathBuf {
        let shard = dir.join(RECORDS_DIR).join(shard_name(seq));
        let prefix = format!("{seq:06}-");
        fs::read_dir(&shard)
            .expect("shard")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix))
            })
            .expect("record file")
    }

    /// Rewrites record `seq`'s payload with `edit` and signs it again with `signer`.
    fn resign(dir: &Path, seq: u64, signer: &Signer, edit: impl FnOnce(&mut serde_json::Value)) {
        let path = record_file(dir, seq);
        let envelope = Envelope::from_slice(&fs::read(&path).expect("read")).expect("envelope");
        let mut payload: serde_json::Value =
            serde_json::from_slice(&envelope.decode_payload().expect("payload")).expect("json");
        edit(&mut payload);
        let bytes = serde_json::to_vec(&payload).expect("json");
        fs::write(&path, sign_payload(&bytes, signer).to_json()).expect("write");
    }

    /// The report of the window-by-window checks, and that of the whole-ledger checks (what
    /// an export runs), as JSON.
    fn both(dir: &Path, keys: &TrustedKeys, old: Option<&str>) -> (String, String) {
        both_of(&Reader::Dir(dir.to_path_buf()), keys, old)
    }

    fn both_of(reader: &Reader, keys: &TrustedKeys, old: Option<&str>) -> (String, String) {
        let options = VerifyOptions::default();
        let streamed = check_streaming(reader, "ledger", keys, old, &options)
            .expect("the ledger is in order: checked window by window");
        let mut whole = VerifyReport::new("ledger".to_owned());
        let entries = list_entries(reader, &mut whole).expect("listed");
        check_entries(
            reader,
            &entries,
            keys,
            old,
            &options,
            &NoProgress,
            false,
            &mut whole,
        );
        let json = |r: &VerifyReport| serde_json::to_string_pretty(r).expect("json");
        (json(&streamed), json(&whole))
    }

    /// On ledgers whose records are in order, problems and all, the window-by-window checks
    /// report what the whole-ledger checks report, byte for byte: a clean ledger across shards
    /// and windows, with an older checkpoint, a record changed and signed again (its
    /// successor's `prev` breaks), a signature broken, a record whose name says another seq,
    /// a rolled-back checkpoint, and a head state that does not match.
    #[test]
    fn window_by_window_checks_report_what_the_whole_ledger_checks_report() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("ledger");
        let signer = Signer::from_seed([7; 32]);
        let mut keys = TrustedKeys::new();
        keys.insert(signer.verifying_key());
        let mut ledger = DirLedger::open(&dir).expect("ledger");
        // Four shards in two windows.
        let n = 3_300;
        let mut checkpoints = vec![String::new()];
        for _ in 0..n {
            let receipt = ledger.append(&sample_input(), &signer).expect("append");
            checkpoints.push(receipt.checkpoint);
        }
        let same = |old: Option<&str>, what: &str| {
            let (streamed, whole) = both(&dir, &keys, old);
            assert_eq!(streamed, whole, "{what}");
            streamed
        };
        let clean = same(None, "clean");
        assert!(!clean.contains("\"kind\""), "{clean}");
        same(Some(&checkpoints[1_500]), "with an older checkpoint");
        // The checkpoint's root is then that of the first n - 10 records, kept on the way.
        fs::write(dir.join(CHECKPOINT_FILE), &checkpoints[n as usize - 10]).expect("write");
        let found = same(None, "rolled back");
        assert!(found.contains("checkpoint_stale"), "{found}");
        // Rolled back to no record at all: the root of none is known from the start.
        let last = open_checkpoint(&checkpoints[n as usize], &keys).expect("checkpoint");
        let none = crate::record::checkpoint::Checkpoint {
            size: 0,
            root: merkle::root_from_leaf_hashes(&[]),
            ..last.checkpoint
        };
        fs::write(dir.join(CHECKPOINT_FILE), none.sign(&signer)).expect("write");
        let found = same(None, "rolled back to nothing");
        assert!(found.contains("checkpoint_stale"), "{found}");
        fs::write(dir.join(CHECKPOINT_FILE), &checkpoints[n as usize]).expect("write");

        resign(&dir, 1_200, &signer, |p| {
            p["predicate"]["https://relgate.dev/change/v1"]["decision"] = "pass".into();
        });
        let path = record_file(&dir, 2_500);
        let mut envelope: serde_json::Value =
            serde_json::from_slice(&fs::read(&path).expect("read")).expect("json");
        envelope["signatures"][0]["sig"] = B64.encode([1u8; 64]).into();
        fs::write(&path, serde_json::to_vec(&envelope).expect("json")).expect("write");
        // The last record renamed as the next one: still in order, its name says another seq.
        let last = record_file(&dir, n);
        let name = last.file_name().and_then(|f| f.to_str()).expect("name");
        let renamed = format!("{:06}{}", n + 1, &name[6..]);
        fs::rename(&last, last.with_file_name(renamed)).expect("rename");
        let found = same(Some(&checkpoints[1_500]), "tampered");
        for kind in [
            "prev_mismatch",
            "bad_signature",
            "checkpoint_root_mismatch",
            "file_seq_mismatch",
        ] {
            assert!(found.contains(kind), "{kind} missing: {found}");
        }

        fs::remove_file(dir.join(STATE_FILE)).expect("state");
        let found = same(None, "no head state");
        assert!(found.contains("state_mismatch"), "{found}");
    }

    /// The same on a git ledger of two runs (the shards are trees, read through libgit2), and
    /// a ledger the windows refuse (a file that is not a record) is left to the whole-ledger
    /// checks.
    #[test]
    fn a_git_ledger_is_checked_window_by_window_and_a_foreign_file_stops_it() {
        let tmp = tempfile::tempdir().expect("tmp");
        Repository::init(tmp.path()).expect("init");
        let signer = Signer::from_seed([8; 32]);
        let mut keys = TrustedKeys::new();
        keys.insert(signer.verifying_key());
        let mut ledger = GitLedger::open(tmp.path()).expect("ledger");
        let mut receipts = Vec::new();
        let run = |n| vec![sample_input(); n];
        ledger
            .append_all(&run(1_600), &signer, &mut receipts)
            .expect("run 1");
        let older = receipts[0].checkpoint.clone();
        ledger
            .append_all(&run(1_700), &signer, &mut receipts)
            .expect("run 2");
        let reader = Reader::open(&ledger.source()).expect("reader");
        for old in [None, Some(older.as_str())] {
            let (streamed, whole) = both_of(&reader, &keys, old);
            assert_eq!(streamed, whole);
            assert!(!streamed.contains("\"kind\""), "{streamed}");
        }

        let dir = tmp.path().join("dir");
        let mut ledger = DirLedger::open(&dir).expect("ledger");
        ledger.append(&sample_input(), &signer).expect("append");
        fs::write(dir.join(RECORDS_DIR).join("000").join("notes.txt"), "hi").expect("write");
        let reader = Reader::Dir(dir);
        assert!(
            check_streaming(&reader, "ledger", &keys, None, &VerifyOptions::default()).is_none()
        );
    }

    /// Signs `message` as the holder of `seed` would, with the nonce point moved by a point of
    /// order 2: strict verification rejects the signature; a batch accepts it when the
    /// coefficient the batch gives it is even, so the verdict depends on the batch.
    fn torsioned_signature(seed: [u8; 32], message: &[u8]) -> [u8; 64] {
        use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
        use curve25519_dalek::scalar::Scalar;
        use sha2::Sha512;
        let h = Sha512::digest(seed);
        let mut a_bytes = [0u8; 32];
        a_bytes.copy_from_slice(&h[..32]);
        a_bytes[0] &= 248;
        a_bytes[31] &= 127;
        a_bytes[31] |= 64;
        let a = Scalar::from_bytes_mod_order(a_bytes);
        let public = (ED25519_BASEPOINT_POINT * a).compress();
        let r = Scalar::from(0x5eed_u64);
        let nonce = (ED25519_BASEPOINT_POINT * r + EIGHT_TORSION[4]).compress();
        let k = Scalar::from_hash(
            Sha512::new()
                .chain_update(nonce.as_bytes())
                .chain_update(public.as_bytes())
                .chain_update(message),
        );
        let s = r + k * a;
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(nonce.as_bytes());
        signature[32..].copy_from_slice(s.as_bytes());
        signature
    }

    /// Signatures crafted by a key holder with a small-order component, at places where a
    /// window's batches would differ from the whole ledger's had the windows not ended on
    /// whole batches: both paths give the same report, and strict verification names each.
    #[test]
    fn both_paths_judge_a_crafted_signature_in_the_same_batch() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("ledger");
        let seed = [9; 32];
        let signer = Signer::from_seed(seed);
        let mut keys = TrustedKeys::new();
        keys.insert(signer.verifying_key());
        let mut ledger = DirLedger::open(&dir).expect("ledger");
        for _ in 0..3_300 {
            ledger.append(&sample_input(), &signer).expect("append");
        }
        // The first window takes shards 000 and 001 (1,999 records) and checks 1,792 of them
        // (7 batches); these are in the rest, or later.
        let crafted = [1_800u64, 1_900, 1_990, 2_100, 3_250];
        for seq in crafted {
            let path = record_file(&dir, seq);
            let mut envelope: serde_json::Value =
                serde_json::from_slice(&fs::read(&path).expect("read")).expect("json");
            let parsed = Envelope::from_slice(&fs::read(&path).expect("read")).expect("envelope");
            let message = dsse::pae(
                &parsed.payload_type,
                &parsed.decode_payload().expect("payload"),
            );
            envelope["signatures"][0]["sig"] =
                B64.encode(torsioned_signature(seed, &message)).into();
            fs::write(&path, serde_json::to_vec(&envelope).expect("json")).expect("write");
        }
        let (streamed, whole) = both(&dir, &keys, None);
        assert_eq!(streamed, whole);

        let reader = Reader::Dir(dir.clone());
        let strict = VerifyOptions {
            strict_signatures: true,
            ..VerifyOptions::default()
        };
        let report = check_streaming(&reader, "ledger", &keys, None, &strict).expect("in order");
        let named: Vec<u64> = report
            .problems
            .iter()
            .filter(|p| p.kind == ProblemKind::BadSignature)
            .filter_map(|p| p.record.as_ref().and_then(|r| r.seq))
            .collect();
        assert_eq!(named, crafted);
    }
}
