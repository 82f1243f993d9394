//! The ledger-wide checks (steps 2 to 4 of the module docs): order, the `prev` chain, the
//! checkpoint, an older checkpoint's consistency proof, the head state.

use super::*;

/// The entries of the ledger in ledger order (by the seq their place claims, then by path),
/// with foreign entries and records outside their shard reported. `None` when the ledger
/// cannot be listed (reported).
pub(super) fn list_entries(reader: &Reader, report: &mut VerifyReport) -> Option<Vec<Entry>> {
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
    entries.sort_by(|a, b| ledger_order(a).cmp(&ledger_order(b)));
    Some(entries)
}

/// Ledger order: by the seq the place claims, then by file name, then by path.
pub(super) fn ledger_order(e: &Entry) -> (u64, &str, &str) {
    let name = e.file.rsplit('/').next().unwrap_or_default();
    (e.file_seq.unwrap_or(u64::MAX), name, &e.file)
}

/// What verification keeps of each entry for reading it again ([`VerifiedLedger`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Checked {
    /// Payload seq, else the seq of its place.
    pub(super) seq: Option<u64>,
    /// SHA-256 of the payload that was verified.
    pub(super) payload_sha: Option<Hash>,
    /// Its signature verified under a trusted key.
    pub(super) signature_ok: bool,
}

/// Checks the listed entries (records, sequence, chain, checkpoints, state); with `keep`, one
/// [`Checked`] per entry, in entry order (for [`VerifiedLedger`]), else none.
#[allow(clippy::too_many_arguments)]
pub(super) fn check_entries(
    reader: &Reader,
    entries: &[Entry],
    keys: &TrustedKeys,
    old_checkpoint: Option<&str>,
    options: &VerifyOptions,
    progress: &dyn Progress,
    keep: bool,
    report: &mut VerifyReport,
) -> Vec<Checked> {
    progress.start(entries.len() as u64);
    // Each chunk is folded into the report in entry order as it is taken, so only the
    // records' `Kept` parts are held to the end, in their chunks (moved, not copied into one
    // vector, which would hold them twice for a while).
    let examined = read_and_examine(reader, entries, keys, options, progress);
    let mut kept: Vec<Vec<Kept>> = Vec::with_capacity(examined.len());
    for chunk in examined {
        kept.push(fold_chunk(chunk, report));
    }
    report.records = kept.iter().map(|c| c.len() as u64).sum();
    let checked = if keep {
        kept.iter()
            .flatten()
            .map(|k| Checked {
                seq: k.seq.or(k.file_seq),
                payload_sha: k.payload_sha,
                signature_ok: k.signature_ok,
            })
            .collect()
    } else {
        Vec::new()
    };
    let records = Records::new(&kept, entries);

    if records.in_order {
        let mut in_order = InOrder::default();
        for k in records.iter() {
            in_order.take(k, records.file(k));
        }
        in_order.report(report);
    } else {
        check_sequence(records, report);
        check_chain(records, report);
    }

    // Merkle tree over the records in ledger order.
    let leaves: Vec<Hash> = records.iter().filter_map(|k| k.leaf).collect();
    let mut frontier = Frontier::new();
    for l in &leaves {
        frontier.append_leaf_hash(*l);
    }
    let prefix_root = |size: u64| {
        leaves
            .get(..usize::try_from(size).ok()?)
            .map(merkle::root_from_leaf_hashes)
    };
    let records_end = RecordsEnd {
        frontier: &frontier,
        leaves: Some(&leaves),
        prefix_root: &prefix_root,
        genesis_sha: records
            .iter()
            .find(|k| k.seq == Some(1))
            .and_then(|k| k.payload_sha),
        head_sha: records.iter().last().and_then(|k| k.payload_sha),
    };
    check_records_end(reader, keys, old_checkpoint, options, &records_end, report);
    checked
}

/// What the checks after the last record need of the records: the Merkle tree (its frontier,
/// the root of a prefix, every leaf when there are), the payload hash of record 1 and of the
/// last record.
pub(super) struct RecordsEnd<'a> {
    pub(super) frontier: &'a Frontier,
    /// Every leaf, for an older checkpoint's consistency proof; `None` when they were not kept
    /// (then no older checkpoint was given).
    pub(super) leaves: Option<&'a [Hash]>,
    /// The root of the first `size` leaves, for a checkpoint that covers fewer records.
    pub(super) prefix_root: &'a dyn Fn(u64) -> Option<Hash>,
    pub(super) genesis_sha: Option<Hash>,
    pub(super) head_sha: Option<Hash>,
}

/// The checks after the last record, whichever way the records were checked: the computed
/// root, the checkpoint, an older checkpoint, the head state.
pub(super) fn check_records_end(
    reader: &Reader,
    keys: &TrustedKeys,
    old_checkpoint: Option<&str>,
    options: &VerifyOptions,
    end: &RecordsEnd<'_>,
    report: &mut VerifyReport,
) {
    let root = end.frontier.root();
    report.computed_root = Some(B64.encode(root));
    let n = end.frontier.size();
    let genesis_origin = end.genesis_sha.map(|h| default_origin(&h));
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
        n,
        root,
        end.prefix_root,
        expected_origin.as_deref(),
        genesis_origin.as_deref(),
        options.expected_origin.as_deref(),
        report,
    );
    if let (Some(old), Some(leaves)) = (old_checkpoint, end.leaves) {
        check_old_checkpoint(
            old,
            keys,
            leaves,
            root,
            current.as_ref(),
            expected_origin.as_deref(),
            report,
        );
    }
    // An envelopes file carries no head state to compare.
    if !reader.is_envelopes() {
        check_state(state.as_ref(), end.frontier, n, end.head_sha, report);
    }
}

/// Adds what a chunk of examined records tells the report (problems, signatures, named commits,
/// first commit, newest branch, payloads); what the ledger-wide checks need is returned.
pub(super) fn fold_chunk(mut chunk: Examined, report: &mut VerifyReport) -> Vec<Kept> {
    report.verified_signatures += chunk.verified_signatures;
    if let Some(first) = chunk.first_commit {
        keep_lowest(&mut report.first_commit, first);
    }
    if let Some(last) = chunk.last_ref {
        keep_highest(&mut report.last_ref, last);
    }
    report.named_commits.extend(chunk.named_commits);
    report.problems.append(&mut chunk.problems);
    report.payloads.append(&mut chunk.payloads);
    chunk.kept
}

/// The records of the ledger in ledger order, in the chunks they were examined in, with the
/// entries their `entry` indexes, for file names in messages. Foreign entries (not record
/// files) take no part in the sequence: [`Records::iter`] leaves them out.
#[derive(Clone, Copy)]
pub(super) struct Records<'a> {
    chunks: &'a [Vec<Kept>],
    entries: &'a [Entry],
    /// The records' seqs (the payload's, else the file name's) run 1, 2, 3, ... in ledger
    /// order, as in every intact ledger: then no seq is missing, repeated or out of place,
    /// and the record before each is its predecessor, so the sequence and chain checks need
    /// no index of the ledger by seq.
    in_order: bool,
}

impl<'a> Records<'a> {
    pub(super) fn new(chunks: &'a [Vec<Kept>], entries: &'a [Entry]) -> Records<'a> {
        let mut records = Records {
            chunks,
            entries,
            in_order: false,
        };
        records.in_order = (1u64..)
            .zip(records.iter())
            .all(|(want, k)| k.seq.or(k.file_seq) == Some(want));
        records
    }

    /// The records in ledger order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &'a Kept> + 'a {
        self.chunks
            .iter()
            .flatten()
            .filter(|k| k.file_seq.is_some())
    }

    fn file(&self, k: &Kept) -> &'a str {
        &self.entries[k.entry].file
    }
}

pub(super) fn check_sequence(records: Records<'_>, report: &mut VerifyReport) {
    for k in records.iter() {
        if let (Some(fs), Some(ps)) = (k.file_seq, k.seq) {
            if fs != ps {
                report
                    .problems
                    .push(file_seq_mismatch(fs, ps, records.file(k)));
            }
        }
    }
    let effective: Vec<(u64, &str)> = records
        .iter()
        .filter_map(|k| k.seq.or(k.file_seq).map(|s| (s, records.file(k))))
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

pub(super) fn check_chain(records: Records<'_>, report: &mut VerifyReport) {
    // The payload hash of each seq's first record.
    let mut by_seq: HashMap<u64, Hash> = HashMap::new();
    for k in records.iter() {
        if let (Some(s), Some(h)) = (k.seq, k.payload_sha) {
            by_seq.entry(s).or_insert(h);
        }
    }
    for k in records.iter() {
        let (Some(s), Some(prev)) = (k.seq, &k.prev) else {
            continue;
        };
        // GENESIS_PREV is 64 zeros.
        let want: Option<Hash> = if s == 1 {
            Some([0; 32])
        } else {
            by_seq.get(&(s - 1)).copied()
        };
        // Without a predecessor, the gap is what is named.
        if let Some(w) = want.filter(|w| w != prev) {
            report
                .problems
                .push(prev_mismatch(s, records.file(k), prev, &w));
        }
    }
}

fn prev_mismatch(seq: u64, file: &str, prev: &Hash, want: &Hash) -> Problem {
    Problem::new(
        ProblemKind::PrevMismatch,
        at(Some(seq), Some(file)),
        format!(
            "record {seq} ({file}) has prev {}, but the payload of record {} hashes to {}",
            short(&hex::encode(prev)),
            seq.saturating_sub(1),
            short(&hex::encode(want))
        ),
    )
}

fn file_seq_mismatch(file_seq: u64, seq: u64, file: &str) -> Problem {
    Problem::new(
        ProblemKind::FileSeqMismatch,
        at(Some(seq), Some(file)),
        format!("{file} holds record seq {seq}, but its name says {file_seq}"),
    )
}

/// The sequence and chain checks of records whose seqs (the payload's, else the file name's)
/// run 1, 2, 3, ... in ledger order, as in every intact ledger, taken one record at a time:
/// no seq is then missing, repeated or out of place, and the record of seq s - 1 is the one
/// before (no other record can claim that seq), so no index of the ledger by seq is built.
/// Finds what [`check_sequence`] and [`check_chain`] find for such records, in their order.
#[derive(Default)]
pub(super) struct InOrder {
    /// Records taken.
    taken: u64,
    /// The seq and payload hash of the record before.
    before: Option<(Option<u64>, Option<Hash>)>,
    sequence: Vec<Problem>,
    chain: Vec<Problem>,
}

impl InOrder {
    /// Takes the next record; false (and nothing taken) when its seq is not the next one.
    pub(super) fn take(&mut self, k: &Kept, file: &str) -> bool {
        if k.seq.or(k.file_seq) != Some(self.taken + 1) {
            return false;
        }
        self.taken += 1;
        if let (Some(fs), Some(ps)) = (k.file_seq, k.seq) {
            if fs != ps {
                self.sequence.push(file_seq_mismatch(fs, ps, file));
            }
        }
        let before = self.before.replace((k.seq, k.payload_sha));
        if let (Some(s), Some(prev)) = (k.seq, &k.prev) {
            let want = if s == 1 {
                Some([0; 32])
            } else {
                before
                    .filter(|(seq, _)| *seq == Some(s - 1))
                    .and_then(|(_, sha)| sha)
            };
            if let Some(w) = want.filter(|w| w != prev) {
                self.chain.push(prev_mismatch(s, file, prev, &w));
            }
        }
        true
    }

    /// Adds the problems found, the sequence's before the chain's.
    pub(super) fn report(mut self, report: &mut VerifyReport) {
        report.problems.append(&mut self.sequence);
        report.problems.append(&mut self.chain);
    }
}

pub(super) fn short(h: &str) -> String {
    h.chars().take(16).collect::<String>() + "…"
}

#[allow(clippy::too_many_arguments)]
pub(super) fn check_checkpoint(
    reader: &Reader,
    keys: &TrustedKeys,
    n: u64,
    root: Hash,
    prefix_root: &dyn Fn(u64) -> Option<Hash>,
    expected_origin: Option<&str>,
    genesis_origin: Option<&str>,
    pinned_origin: Option<&str>,
    report: &mut VerifyReport,
) -> Option<crate::record::checkpoint::Checkpoint> {
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
            if n > 0 {
                report.push(
                    ProblemKind::CheckpointMissing,
                    cp_ref(),
                    "the ledger has records but no CHECKPOINT",
                );
            } else if let Some(origin) = pinned_origin {
                // Only a ledger emptied or started again looks like this.
                report.push(
                    ProblemKind::CheckpointMissing,
                    cp_ref(),
                    format!("the ledger has no records and no CHECKPOINT, but relgate.yaml pins its origin {origin:?} (ledger.origin): it was deleted or emptied"),
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
    let mut ok = true;
    if let Some(want) = expected_origin {
        if cp.origin != want {
            ok = false;
            report.push(
                ProblemKind::CheckpointOriginMismatch,
                cp_ref(),
                if pinned_origin == Some(want) {
                    format!("CHECKPOINT is for ledger {:?}, but relgate.yaml pins this ledger's origin {want:?} (ledger.origin): the ledger was replaced", cp.origin)
                } else {
                    format!("CHECKPOINT is for ledger {:?}, this ledger is {want:?}: copied from another ledger", cp.origin)
                },
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
            // Records removed from the end when the rest run 1..=n; otherwise some are
            // missing at the gaps the sequence check names (n says how many are left, not
            // which).
            format!(
                "CHECKPOINT covers {} records but the ledger has {n}: {} record(s) missing \
                 (records {}..={} removed from the end, unless the sequence problems name gaps)",
                cp.size,
                cp.size - n,
                n + 1,
                cp.size
            ),
        );
    } else {
        let prefix_root = if cp.size == n {
            Some(root)
        } else {
            prefix_root(cp.size)
        };
        if prefix_root.is_none() {
            ok = false;
            report.push(
                ProblemKind::ReadError,
                cp_ref(),
                format!(
                    "the root of the first {} records was not kept: CHECKPOINT changed while \
                     it was being verified; run verify again",
                    cp.size
                ),
            );
        } else if prefix_root != Some(cp.root) {
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

pub(super) fn check_old_checkpoint(
    old: &str,
    keys: &TrustedKeys,
    leaves: &[Hash],
    root: Hash,
    current: Option<&crate::record::checkpoint::Checkpoint>,
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

pub(super) fn check_state(
    state: Option<&LedgerState>,
    frontier: &Frontier,
    n: u64,
    head_sha: Option<Hash>,
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
    let head_sha = head_sha.map(hex::encode);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64) -> Entry {
        Entry {
            file: format!("records/000/{seq:06}-m-1.dsse.json"),
            dir: Some("000".into()),
            file_seq: Some(seq),
            loc: Loc::File,
        }
    }

    /// Records 1..=n chained by `prev`, each record's payload hash `[seq; 32]`.
    fn chained(n: u64) -> Vec<Kept> {
        (1..=n)
            .map(|seq| Kept {
                entry: (seq - 1) as usize,
                file_seq: Some(seq),
                seq: Some(seq),
                prev: Some([(seq - 1) as u8; 32]),
                payload_sha: Some([seq as u8; 32]),
                leaf: Some([seq as u8; 32]),
                signature_ok: true,
            })
            .collect()
    }

    /// What the general checks find.
    fn problems(records: Records<'_>) -> Vec<String> {
        let mut report = VerifyReport::new(String::new());
        check_sequence(records, &mut report);
        check_chain(records, &mut report);
        described(&report)
    }

    /// What [`InOrder`] finds, taking every record.
    fn in_order_problems(records: Records<'_>) -> Vec<String> {
        let mut in_order = InOrder::default();
        for k in records.iter() {
            assert!(in_order.take(k, records.file(k)), "record {k:?} refused");
        }
        let mut report = VerifyReport::new(String::new());
        in_order.report(&mut report);
        described(&report)
    }

    fn described(report: &VerifyReport) -> Vec<String> {
        report
            .problems
            .iter()
            .map(|p| format!("{:?} {}", p.kind, p.message))
            .collect()
    }

    #[test]
    fn records_in_order_are_checked_one_at_a_time_as_the_index_by_seq_checks_them() {
        let entries: Vec<Entry> = (1..=60).map(entry).collect();
        let mut kept = chained(60);
        kept[19].prev = Some([99; 32]); // record 20 does not chain
        kept[29].seq = None; // record 30's payload is not a Statement: 31 is not checked
        kept[29].prev = None;
        kept[39].payload_sha = None; // record 40 not decoded: 41 is not checked
        kept[44].file_seq = Some(46); // record 45 sits in a file named 46
        kept[0].prev = Some([1; 32]); // record 1 must have the genesis prev
                                      // In chunks of 7, as verification examines them: the chain crosses their bounds.
        let chunks: Vec<Vec<Kept>> = kept.chunks(7).map(<[Kept]>::to_vec).collect();
        let records = Records::new(&chunks, &entries);
        assert!(records.in_order);
        let found = in_order_problems(records);
        assert_eq!(found, problems(records));
        let kinds: Vec<&str> = found
            .iter()
            .map(|p| p.split(' ').next().unwrap_or_default())
            .collect();
        assert_eq!(
            kinds,
            ["FileSeqMismatch", "PrevMismatch", "PrevMismatch"],
            "{found:#?}"
        );
        assert!(found[1].contains("record 1 "), "{found:#?}");
        assert!(found[2].contains("record 20 "), "{found:#?}");
    }

    #[test]
    fn records_out_of_order_take_the_index_by_seq() {
        let entries: Vec<Entry> = (1..=5).map(entry).collect();
        let mut kept = chained(5);
        kept.swap(1, 2);
        let chunks = [kept];
        let records = Records::new(&chunks, &entries);
        assert!(!records.in_order);
        let mut in_order = InOrder::default();
        let taken = records
            .iter()
            .take_while(|k| in_order.take(k, records.file(k)))
            .count();
        assert_eq!(taken, 1, "the record out of place is refused");
        let found = problems(records);
        assert!(
            found.iter().any(|p| p.starts_with("SeqOutOfOrder")),
            "{found:#?}"
        );
        // The chain is intact by seq, whatever the order of the files.
        assert!(
            !found.iter().any(|p| p.starts_with("PrevMismatch")),
            "{found:#?}"
        );
    }
}
