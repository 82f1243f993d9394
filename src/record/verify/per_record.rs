//! The per-record checks (step 1 of the module docs), run in parallel: each entry read, parsed,
//! hashed and its signature checked.

use super::*;

/// What examining one entry found: what the ledger-wide checks keep of it ([`Kept`]), and
/// what goes into the report as its chunk is folded ([`Examined`]).
pub(super) struct RecordInfo<'a> {
    pub(super) file: &'a str,
    pub(super) kept: Kept,
    pub(super) problems: Vec<Problem>,
    pub(super) payload: Option<serde_json::Value>,
    /// `git.commit`, when the record names one.
    pub(super) commit: Option<String>,
    /// `changed_in`.
    pub(super) changed_in: Vec<String>,
    /// `git.ref`, when the record names a branch.
    pub(super) git_ref: Option<String>,
}

/// A signature check left for batch verification: one signature by a trusted key.
pub(super) struct Deferred {
    pub(super) key: VerifyingKey,
    pub(super) key_id: String,
    pub(super) signature: Signature,
    pub(super) message: Vec<u8>,
}

/// Examines entry number `index` of the ledger's entries.
pub(super) fn examine<'a>(
    index: usize,
    entry: &'a Entry,
    bytes: Result<Vec<u8>, ReadFail>,
    keys: &TrustedKeys,
    keep: bool,
    batch: bool,
) -> (RecordInfo<'a>, Option<Deferred>) {
    let file_seq = entry.file_seq;
    let mut info = RecordInfo {
        file: &entry.file,
        kept: Kept {
            entry: index,
            file_seq,
            seq: None,
            prev: None,
            payload_sha: None,
            leaf: None,
            signature_ok: false,
        },
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
    info.kept.payload_sha = Some(sha);
    info.kept.leaf = Some(merkle::leaf_hash(&payload));
    let head = PayloadHead::parse(&payload);
    if let Ok(h) = &head {
        info.kept.seq = Some(h.predicate.change.seq);
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
        info.kept.prev = hex::decode(&h.predicate.change.prev)
            .ok()
            .and_then(|b| Hash::try_from(b.as_slice()).ok());
    }
    let seq = info.kept.seq.or(file_seq);
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
        Ok(()) => info.kept.signature_ok = deferred.is_none(),
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

/// Records examined per batch signature verification. 256 rather than 64: past about 190
/// points the batch's multiscalar multiplication switches to Pippenger's method, and the
/// whole verification took about 7% less CPU (measured on 20,000 records).
pub(super) const BATCH: usize = 256;

/// The fast path: exactly one signature, by a trusted (non-weak) key, well-formed.
pub(super) fn defer_signature(
    envelope: &Envelope,
    payload: &[u8],
    keys: &TrustedKeys,
) -> Option<Deferred> {
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

/// Examines a chunk of records, the first of them entry number `start`; their deferred
/// signatures are checked with one batch verification, and only if the batch fails, one by one
/// (strictly) to name the bad ones.
pub(super) fn examine_chunk<'a>(
    start: usize,
    chunk: &'a [Entry],
    mut read: impl FnMut(&Entry) -> Result<Vec<u8>, ReadFail>,
    keys: &TrustedKeys,
    options: &VerifyOptions,
) -> Vec<RecordInfo<'a>> {
    let batch = !options.strict_signatures;
    let mut infos = Vec::with_capacity(chunk.len());
    let mut pending: Vec<(usize, Deferred)> = Vec::new();
    for (i, entry) in chunk.iter().enumerate() {
        let (info, deferred) = examine(
            start + i,
            entry,
            read(entry),
            keys,
            options.keep_payloads,
            batch,
        );
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
            infos[*i].kept.signature_ok = true;
        }
        return infos;
    }
    for (i, d) in &pending {
        let info = &mut infos[*i];
        if d.key.verify_strict(&d.message, &d.signature).is_ok() {
            info.kept.signature_ok = true;
        } else {
            let seq = info.kept.seq.or(info.kept.file_seq);
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

/// What the ledger-wide checks keep of one record once its chunk is examined: its place,
/// seqs, hashes and verdict, with no string. The rest of its [`RecordInfo`] (problems, the
/// commits it names, its payload) goes into its chunk's [`Examined`] at once; keeping every
/// `RecordInfo` to the end was most of the memory of verifying a large ledger (about 600 bytes
/// a record, with the named commits as strings).
#[derive(Debug, Clone, Copy)]
pub(super) struct Kept {
    /// Index of its entry among those examined (the ledger's, or a window's), for the file
    /// name in messages.
    pub(super) entry: usize,
    pub(super) file_seq: Option<u64>,
    pub(super) seq: Option<u64>,
    pub(super) prev: Option<Hash>,
    pub(super) payload_sha: Option<Hash>,
    pub(super) leaf: Option<Hash>,
    pub(super) signature_ok: bool,
}

/// One chunk of examined records: what each record keeps, and what the report gains from
/// them, in entry order.
pub(super) struct Examined {
    pub(super) kept: Vec<Kept>,
    pub(super) problems: Vec<Problem>,
    pub(super) verified_signatures: u64,
    /// The commits signed records name (`git.commit`, `changed_in`), as object ids: a name
    /// that is not 40 lowercase hex digits names no commit git can show.
    pub(super) named_commits: Vec<Oid>,
    /// The lowest seq among signed records naming a commit, with that commit (the first such
    /// record on a tie).
    pub(super) first_commit: Option<(u64, String)>,
    /// The highest seq among signed records naming a branch, with that branch (the first such
    /// record on a tie).
    pub(super) last_ref: Option<(u64, String)>,
    pub(super) payloads: Vec<RecordPayload>,
}

impl Examined {
    /// Folds a chunk's infos.
    fn fold(infos: Vec<RecordInfo<'_>>) -> Examined {
        let mut out = Examined {
            kept: Vec::with_capacity(infos.len()),
            problems: Vec::new(),
            verified_signatures: 0,
            named_commits: Vec::new(),
            first_commit: None,
            last_ref: None,
            payloads: Vec::new(),
        };
        for mut info in infos {
            if info.kept.signature_ok {
                out.verified_signatures += 1;
                // Only signed records vouch for a commit being recorded.
                if let Some(commit) = info.commit.take() {
                    out.named_commits.extend(completeness::named_oid(&commit));
                    if let Some(seq) = info.kept.seq {
                        keep_lowest(&mut out.first_commit, (seq, commit));
                    }
                }
                if let (Some(git_ref), Some(seq)) = (info.git_ref.take(), info.kept.seq) {
                    keep_highest(&mut out.last_ref, (seq, git_ref));
                }
                out.named_commits.extend(
                    info.changed_in
                        .iter()
                        .filter_map(|c| completeness::named_oid(c)),
                );
            }
            out.problems.append(&mut info.problems);
            if let Some(payload) = info.payload.take() {
                out.payloads.push(RecordPayload {
                    record: RecordRef {
                        seq: info.kept.seq,
                        file: Some(info.file.to_owned()),
                        commit: None,
                    },
                    signature_ok: info.kept.signature_ok,
                    payload,
                });
            }
            out.kept.push(info.kept);
        }
        out
    }
}

/// Keeps `candidate` in `slot` when its seq is lower than the kept one's (the first on a tie).
pub(super) fn keep_lowest(slot: &mut Option<(u64, String)>, candidate: (u64, String)) {
    if slot.as_ref().is_none_or(|(s, _)| candidate.0 < *s) {
        *slot = Some(candidate);
    }
}

/// Keeps `candidate` in `slot` when its seq is higher than the kept one's (the first on a tie).
pub(super) fn keep_highest(slot: &mut Option<(u64, String)>, candidate: (u64, String)) {
    if slot.as_ref().is_none_or(|(s, _)| candidate.0 > *s) {
        *slot = Some(candidate);
    }
}

/// Reads and examines every entry in parallel, a chunk of [`BATCH`] at a time, each chunk
/// folded into an [`Examined`] on its worker; the chunks in entry order.
pub(super) fn read_and_examine(
    reader: &Reader,
    entries: &[Entry],
    keys: &TrustedKeys,
    options: &VerifyOptions,
    progress: &dyn Progress,
) -> Vec<Examined> {
    par_read_chunked(reader, entries, BATCH, |start, chunk, read| {
        let infos = examine_chunk(start, chunk, read, keys, options);
        progress.advance(chunk.len() as u64);
        Examined::fold(infos)
    })
}
