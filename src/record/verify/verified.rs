//! Reading a verified ledger again for `relgate export` ([`VerifiedLedger`]): records read back
//! one window at a time, each with its verdict from verification.

use super::*;

/// Records read back after verification, in the order they were read.
pub(super) const READ_WINDOW: usize = 1024;

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
    pub(super) report: VerifyReport,
    pub(super) reader: Option<Reader>,
    pub(super) entries: Vec<Entry>,
    pub(super) checked: Vec<Checked>,
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
pub(super) fn unverified_records(report: &VerifyReport) -> (HashSet<u64>, HashSet<String>) {
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
    pub(crate) fn verify_envelopes(
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
    pub(crate) fn into_report(self) -> VerifyReport {
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

pub(super) fn read_again<T>(
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
