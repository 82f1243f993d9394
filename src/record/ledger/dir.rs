//! The directory backend of the ledger: [`DirLedger`], records as files in a plain directory under
//! an exclusive lock (see the parent module's docs).

use super::*;

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
pub(super) fn list_dir(dir: &Path) -> Result<Vec<String>, RecordError> {
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
