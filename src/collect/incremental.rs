//! Incremental verification of a ledger from the collect state: reads the signed
//! `CHECKPOINT` and only the records after the state's size.
//!
//! Checks, in order (any failure withholds every row of the repository for this run):
//! 1. `CHECKPOINT` is a signed note by a trusted key and names the state's origin (else the
//!    ledger was replaced: rewritten).
//! 2. Its size is not below the state's (else rolled back: rewritten); at equal size its root
//!    equals the state's (else rewritten).
//! 3. Records `size + 1 ..= checkpoint size`: exactly one file per seq, in the shard of its
//!    seq; a DSSE envelope signed by a trusted key; a change Statement whose seq is the file's.
//! 4. The state's frontier extended by the new leaves has the checkpoint's root, and the RFC
//!    6962 consistency proof from the state's checkpoint (size, root) to the new one, built
//!    from the frontier and the new leaves ([`super::consistency`]), verifies: the collected
//!    records are a prefix of the signed tree. A rewrite of an already collected record
//!    therefore fails here (rewritten), without reading the old records.
//! 5. Every new record's `prev` is the SHA-256 of the payload before it (the state's head hash
//!    for the first); checked last so that a rewrite is reported as one.
//!
//! Not checked here (the full path and `relgate verify` do): the git history of the ledger
//! branch and the files of records already collected. `relgate collect --full` re-verifies
//! everything.

use sha2::{Digest, Sha256};

use super::consistency::proof_from_frontier;
use super::state::RepoState;
use super::{open_files, Mode, RepoStatus, Verified, Withheld};
use crate::export::ExportRow;
use crate::record::checkpoint::{open_checkpoint, MAX_CHECKPOINT_BYTES};
use crate::record::dsse::Envelope;
use crate::record::keys::TrustedKeys;
use crate::record::ledger::{
    parse_record_file_name, shard_name, LedgerSource, CHECKPOINT_FILE, RECORDS_DIR,
};
use crate::record::merkle::{self, Frontier, Hash};
use crate::record::statement::{PayloadHead, Statement};

fn failed(status: RepoStatus, read: u64, problem: String) -> Withheld {
    Withheld {
        status,
        mode: Some(Mode::Incremental),
        records_read: read,
        problems: vec![problem],
    }
}

/// Verifies what was added to the ledger at `source` since `old` and returns its rows.
pub(crate) fn verify_new(
    source: &LedgerSource,
    keys: &TrustedKeys,
    old: &RepoState,
    describe: &str,
) -> Result<Verified, Withheld> {
    let fail = |p: String| failed(RepoStatus::Failed, 0, p);
    let rewritten = |p: String| failed(RepoStatus::Rewritten, 0, p);
    let files = open_files(source).map_err(fail)?;
    let text = files
        .read(CHECKPOINT_FILE)
        .map_err(fail)?
        .ok_or_else(|| fail("CHECKPOINT: missing".into()))?;
    if text.len() > MAX_CHECKPOINT_BYTES {
        return Err(fail(format!("CHECKPOINT: {} bytes, too large", text.len())));
    }
    let text = String::from_utf8(text).map_err(|_| fail("CHECKPOINT: not UTF-8".into()))?;
    let checkpoint = open_checkpoint(&text, keys)
        .map_err(|e| fail(format!("CHECKPOINT: {e}")))?
        .checkpoint;
    if checkpoint.origin != old.origin {
        return Err(rewritten(format!(
            "CHECKPOINT names the ledger {:?}, the collected one is {:?}: the ledger was \
             replaced; it is not collected (the state is kept)",
            checkpoint.origin, old.origin
        )));
    }
    let old_root = merkle::parse_hash(&old.root).map_err(|e| fail(format!("state: {e}")))?;
    let mut frontier =
        Frontier::from_state(&old.frontier).map_err(|e| fail(format!("state: {e}")))?;
    if frontier.size() != old.size || frontier.root() != old_root {
        return Err(fail(
            "the state file's frontier does not match its checkpoint; restore the state file \
             or collect with --full"
                .into(),
        ));
    }
    if checkpoint.size < old.size {
        return Err(rewritten(format!(
            "CHECKPOINT covers {} records, {} were collected: the ledger was rolled back or \
             rewritten; it is not collected (the state is kept)",
            checkpoint.size, old.size
        )));
    }
    let old_frontier = frontier.clone();
    let mut prev = old.head_sha256.clone();
    let mut leaves: Vec<Hash> = Vec::new();
    let mut rows = Vec::new();
    let mut read = 0u64;
    let mut shard = String::new();
    let mut names: Vec<(u64, String)> = Vec::new();
    let mut broken_chain: Option<String> = None;
    for seq in old.size + 1..=checkpoint.size {
        let at_fail = |read: u64, p: String| failed(RepoStatus::Failed, read, p);
        let want_shard = shard_name(seq);
        if want_shard != shard {
            shard = want_shard;
            let dir = format!("{RECORDS_DIR}/{shard}");
            names = files
                .list(&dir)
                .map_err(|e| at_fail(read, e))?
                .into_iter()
                .filter_map(|n| parse_record_file_name(&n).map(|s| (s, n)))
                .collect();
        }
        let mut matching = names.iter().filter(|(s, _)| *s == seq);
        let name = match (matching.next(), matching.next()) {
            (Some((_, n)), None) => n.clone(),
            (None, _) => {
                return Err(at_fail(
                    read,
                    format!(
                        "record {seq}: no file in {RECORDS_DIR}/{shard}/ although CHECKPOINT \
                         covers {} records",
                        checkpoint.size
                    ),
                ))
            }
            (Some(_), Some(_)) => {
                return Err(at_fail(
                    read,
                    format!("record {seq}: more than one file in {RECORDS_DIR}/{shard}/"),
                ))
            }
        };
        let file = format!("{RECORDS_DIR}/{shard}/{name}");
        let bytes = files
            .read(&file)
            .map_err(|e| at_fail(read, e))?
            .ok_or_else(|| at_fail(read, format!("{file}: vanished while reading")))?;
        read += 1;
        let here = |p: String| at_fail(read, format!("record {seq}, {file}: {p}"));
        let envelope = Envelope::from_slice(&bytes).map_err(|e| here(e.to_string()))?;
        let verified = envelope.verify(keys).map_err(|e| here(e.to_string()))?;
        let payload = verified.payload;
        let head: PayloadHead = serde_json::from_slice(&payload)
            .map_err(|e| here(format!("not a relgate change Statement: {e}")))?;
        if head.predicate.change.seq != seq {
            return Err(here(format!(
                "the payload says seq {}",
                head.predicate.change.seq
            )));
        }
        // A broken chain is judged after the Merkle checks: when the collected records were
        // rewritten, the first new record's `prev` names the rewritten head, and the
        // consistency proof is what tells a rewrite from a bad new record.
        if head.predicate.change.prev != prev && broken_chain.is_none() {
            broken_chain = Some(format!(
                "record {seq}, {file}: prev is {}, the payload before it hashes to {prev}: the \
                 chain is broken",
                head.predicate.change.prev
            ));
        }
        let statement = Statement::from_payload(&payload)
            .map_err(|e| here(format!("not a relgate change Statement: {e}")))?;
        rows.push(ExportRow::from_statement(&statement, true));
        prev = hex::encode(Sha256::digest(&payload));
        let leaf = merkle::leaf_hash(&payload);
        leaves.push(leaf);
        frontier.append_leaf_hash(leaf);
    }
    if frontier.root() != checkpoint.root {
        return Err(failed(
            RepoStatus::Rewritten,
            read,
            format!(
                "the collected {} records and the {} new ones do not give the root CHECKPOINT \
                 signs for {} records: records already collected were rewritten; it is not \
                 collected (the state is kept)",
                old.size,
                leaves.len(),
                checkpoint.size
            ),
        ));
    }
    let proof = proof_from_frontier(&old_frontier, &leaves)
        .map_err(|e| failed(RepoStatus::Rewritten, read, e.to_string()))?;
    merkle::verify_consistency(
        old.size,
        checkpoint.size,
        &old_root,
        &checkpoint.root,
        &proof,
    )
    .map_err(|e| {
        failed(
            RepoStatus::Rewritten,
            read,
            format!(
                "RFC 6962 consistency from the collected checkpoint ({} records) to the \
                     current one ({} records): {e}",
                old.size, checkpoint.size
            ),
        )
    })?;
    if let Some(problem) = broken_chain {
        return Err(failed(RepoStatus::Failed, read, problem));
    }
    Ok(Verified {
        mode: Mode::Incremental,
        rows,
        records_read: read,
        state: RepoState {
            source: describe.to_owned(),
            origin: checkpoint.origin.clone(),
            size: checkpoint.size,
            root: hex::encode(checkpoint.root),
            head_sha256: prev,
            frontier: frontier.to_state(),
            checkpoint: text,
        },
    })
}
