//! The git backend of the ledger: [`GitLedger`], records as commits on a branch (see the
//! parent module's docs).

use rayon::prelude::*;

use super::*;
use crate::report::Decision;

/// The subtree `name` of `tree`, `None` when absent or not a directory.
pub(super) fn subtree<'r>(
    repo: &'r Repository,
    tree: &Tree<'_>,
    name: &str,
) -> Result<Option<Tree<'r>>, RecordError> {
    match tree.get_name(name) {
        Some(e) if e.kind() == Some(ObjectType::Tree) => Ok(Some(find_tree_capped(repo, e.id())?)),
        _ => Ok(None),
    }
}

/// The commit branch `refname` of `repo` points to, `None` when the branch does not exist.
pub(super) fn head_commit<'r>(
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
pub(crate) fn ledger_refname(branch: &str) -> String {
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
                match read_blob_capped(&self.repo, entry.id()) {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(CappedRead::Git(e)) => Err(e.into()),
                    Err(too_large) => {
                        Err(RecordError::Inconsistent(format!("{path}: {too_large}")))
                    }
                }
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
                for e in find_tree_capped(&self.repo, shard.id())?.iter() {
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

    /// One attempt of [`Ledger::append_all`]: the whole run as ONE commit, its objects written
    /// as packfiles ([`batch`]: one per shard the run fills, the shards packed in parallel, each
    /// through a handle of its own), then one compare-and-swap of the branch.
    /// `Ok(None)`: another writer moved the branch meanwhile (the packs written stay as
    /// unreferenced objects, which `git gc` prunes).
    fn append_batch_once(
        &self,
        inputs: &[RecordInput],
        signer: &Signer,
        attempt: u32,
    ) -> Result<Option<Vec<AppendReceipt>>, RecordError> {
        let sig = self.signature()?;
        let parent = head_commit(&self.repo, &self.refname)?;
        let head_id = parent.as_ref().map(|c| c.id());
        let base_tree = parent
            .as_ref()
            .map(|c| find_tree_capped(&self.repo, c.tree_id()))
            .transpose()?;
        let state = match &base_tree {
            Some(t) => self.state_of(t)?,
            None => None,
        };
        // The chain first (each payload names the hash of the one before: serial), then
        // every signature, in parallel.
        let mut chain = Chain::from_state(state.as_ref())?;
        let links = inputs
            .iter()
            .map(|input| {
                chain
                    .extend(input, self.options.origin.as_deref())
                    .map_err(|e| match e {
                        RecordError::Input(m) => {
                            RecordError::Input(format!("{}: {m}", input.manifest_path))
                        }
                        e => e,
                    })
            })
            .collect::<Result<Vec<Link>, RecordError>>()?;
        let (Some(first), Some(last)) = (links.first(), links.last()) else {
            return Err(RecordError::Inconsistent(
                "a run of records without records".to_owned(),
            ));
        };
        let envelopes: Vec<Vec<u8>> = links
            .par_iter()
            .map(|link| dsse::sign_payload(&link.payload, signer).to_json())
            .collect();
        let records_tree = match &base_tree {
            Some(t) => subtree(&self.repo, t, RECORDS_DIR)?,
            None => None,
        };
        // The run's records by shard (consecutive seqs), each with the tree it extends.
        let mut shards: Vec<ShardRun> = Vec::new();
        for (i, link) in links.iter().enumerate() {
            let name = shard_name(link.seq);
            match shards.last_mut() {
                Some(s) if s.name == name => s.links.end = i + 1,
                _ => {
                    let existing = match records_tree.as_ref().and_then(|t| t.get_name(&name)) {
                        Some(e) if e.kind() == Some(ObjectType::Tree) => Some(e.id()),
                        _ => None,
                    };
                    shards.push(ShardRun {
                        name,
                        existing,
                        links: i..i + 1,
                    });
                }
            }
        }
        let mut decisions = [0usize; 3];
        for input in inputs {
            decisions[match input.decision {
                Decision::Pass => 0,
                Decision::Fail => 1,
                Decision::Error => 2,
            }] += 1;
        }
        let checkpoint_text = chain.checkpoint(signer);
        let head_state = chain.state(&last.file);
        let Some((last_shard, other_shards)) = shards.split_last() else {
            return Err(RecordError::Inconsistent(
                "a run of records without a shard".to_owned(),
            ));
        };
        let repo_path = self.repo.path();
        let commit = batch::with_run(&self.repo, |repo, packer| {
            // Every shard but the last is hashed, delta-compressed, packed and indexed on a
            // thread of its own (nothing in one shard's pack depends on another's; this was the
            // serial third of a large run), while this thread writes the last shard, which goes
            // into the run's final pack with the trees above it and the commit: a run that fills
            // one shard, as most do, is still one packfile.
            let (other_trees, last_tree) = std::thread::scope(|scope| {
                let others = (!other_shards.is_empty()).then(|| {
                    scope.spawn(|| {
                        other_shards
                            .par_iter()
                            .map(|shard| pack_shard(repo_path, shard, &links, &envelopes))
                            .collect::<Result<Vec<Oid>, RecordError>>()
                    })
                });
                let last_tree =
                    write_shard(&self.repo, repo, packer, last_shard, &links, &envelopes);
                let other_trees = match others {
                    None => Ok(Vec::new()),
                    Some(handle) => handle.join().unwrap_or_else(|_| {
                        Err(RecordError::Inconsistent(
                            "the thread packing the run's shards stopped".to_owned(),
                        ))
                    }),
                };
                (other_trees, last_tree)
            });
            let (other_trees, last_tree) = (other_trees?, last_tree?);
            let mut records = repo.treebuilder(records_tree.as_ref())?;
            for (shard, tree) in other_shards.iter().zip(&other_trees) {
                // libgit2 checks that a tree entry names an object the handle can read: the
                // shard's tree (already packed) is copied into the run's store, not packed again.
                packer.adopt(*tree)?;
                records.insert(&shard.name, *tree, 0o040_000)?;
            }
            records.insert(&last_shard.name, last_tree, 0o040_000)?;
            let records_oid = records.write()?;
            let mut top = repo.treebuilder(base_tree.as_ref())?;
            top.insert(RECORDS_DIR, records_oid, 0o040_000)?;
            let checkpoint = repo.blob(checkpoint_text.as_bytes())?;
            top.insert(CHECKPOINT_FILE, checkpoint, 0o100_644)?;
            let state_blob = repo.blob(&state_bytes(&head_state))?;
            top.insert(STATE_FILE, state_blob, 0o100_644)?;
            let tree = repo.find_tree(top.write()?)?;
            let message = run_message(first.seq, last.seq, decisions);
            // libgit2 drops, without an error, a parent that belongs to another handle: the
            // parent is copied into the run's store and passed as the run handle's own.
            let run_parent = match &parent {
                Some(p) => {
                    packer.adopt(p.id())?;
                    Some(repo.find_commit(p.id())?)
                }
                None => None,
            };
            let parents: Vec<&git2::Commit<'_>> = run_parent.iter().collect();
            let commit = repo.commit(None, &sig, &sig, &message, &tree, &parents)?;
            packer.add(commit, None)?;
            packer.add(tree.id(), None)?;
            packer.add(records_oid, Some(RECORDS_DIR))?;
            packer.add(checkpoint, Some(CHECKPOINT_FILE))?;
            packer.add(state_blob, Some(STATE_FILE))?;
            packer.flush()?;
            Ok(commit)
        })?;
        let receipts: Vec<AppendReceipt> = links
            .iter()
            .map(|link| AppendReceipt {
                seq: link.seq,
                file: link.file.clone(),
                payload_sha256: link.payload_sha256.clone(),
                checkpoint: checkpoint_text.clone(),
                origin: head_state.origin.clone(),
                commit: Some(commit.to_string()),
                attempts: attempt,
            })
            .collect();
        let log = format!("relgate record {:06}..{:06}", first.seq, last.seq);
        match self.move_ref(head_id, commit, &log) {
            Ok(()) => Ok(Some(receipts)),
            Err(e) if lost_race(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn write_commit(
        &self,
        parent: Option<&git2::Commit<'_>>,
        prepared: &Prepared,
        input: &RecordInput,
    ) -> Result<Oid, RecordError> {
        write_commit(&self.repo, &self.signature()?, parent, prepared, input)
    }
}

/// Writes the blobs, trees and commit of one append into `repo`'s object database (loose
/// objects) and returns the commit.
fn write_commit(
    repo: &Repository,
    sig: &git2::Signature<'_>,
    parent: Option<&git2::Commit<'_>>,
    prepared: &Prepared,
    input: &RecordInput,
) -> Result<Oid, RecordError> {
    let base_tree = parent
        .map(|c| find_tree_capped(repo, c.tree_id()))
        .transpose()?;
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
    Ok(repo.commit(None, sig, sig, &message, &tree, &parents)?)
}

/// True when a compare-and-swap of the branch failed because another writer moved (or is
/// moving) it: the append is retried on the new head.
fn lost_race(e: &git2::Error) -> bool {
    matches!(
        e.code(),
        ErrorCode::Modified | ErrorCode::Exists | ErrorCode::Locked
    )
}

/// The records of one run that go to one shard: `links` indexes the run's links (and
/// envelopes); `existing` is the shard's tree before the run, if it has one.
struct ShardRun {
    name: String,
    existing: Option<Oid>,
    links: std::ops::Range<usize>,
}

/// Writes the records of `shard` and its new tree as one packfile into the repository at
/// `repo_path`, through handles of its own (a `Repository` is not shared between threads),
/// and returns the tree.
fn pack_shard(
    repo_path: &Path,
    shard: &ShardRun,
    links: &[Link],
    envelopes: &[Vec<u8>],
) -> Result<Oid, RecordError> {
    let disk = Repository::open(repo_path)?;
    batch::with_run(&disk, |repo, packer| {
        let tree = write_shard(&disk, repo, packer, shard, links, envelopes)?;
        packer.flush()?;
        Ok(tree)
    })
}

/// Writes the records of `shard` and its new tree through the run's handle `repo`, adds them
/// to `packer`'s next pack and returns the tree; the shard's tree before the run is read
/// through `disk`.
fn write_shard(
    disk: &Repository,
    repo: &Repository,
    packer: &mut batch::Packer<'_>,
    shard: &ShardRun,
    links: &[Link],
    envelopes: &[Vec<u8>],
) -> Result<Oid, RecordError> {
    let existing = shard
        .existing
        .map(|id| find_tree_capped(disk, id))
        .transpose()?;
    let mut builder = repo.treebuilder(existing.as_ref())?;
    for i in shard.links.clone() {
        let (Some(link), Some(envelope)) = (links.get(i), envelopes.get(i)) else {
            return Err(RecordError::Inconsistent(format!(
                "record {i} of the run is missing"
            )));
        };
        let file_name = link.file.rsplit('/').next().unwrap_or(&link.file);
        if builder.get(file_name)?.is_some() {
            return Err(RecordError::Inconsistent(format!(
                "{} already exists",
                link.file
            )));
        }
        let blob = repo.blob(envelope)?;
        builder.insert(file_name, blob, 0o100_644)?;
        packer.add(blob, Some(&link.file))?;
    }
    let tree = builder.write()?;
    packer.add(tree, Some(&format!("{RECORDS_DIR}/{}", shard.name)))?;
    Ok(tree)
}

/// The message of the ledger commit of a run: the seq range and the decisions, counted. No
/// manifest text: a run's manifests are in its records, and the message cannot carry a forged
/// line.
fn run_message(first: u64, last: u64, decisions: [usize; 3]) -> String {
    let [pass, fail, error] = decisions;
    format!(
        "relgate: record {first:06}..{last:06} ({} records: {pass} pass, {fail} fail, {error} error)\n",
        last - first + 1
    )
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
                Some(c) => self.state_of(&find_tree_capped(&self.repo, c.tree_id())?)?,
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
                Err(e) if lost_race(&e) => backoff(attempt),
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
            Some(c) => self.state_of(&find_tree_capped(&self.repo, c.tree_id())?),
            None => Ok(None),
        }
    }

    fn head_record(&self) -> Result<Option<Vec<u8>>, RecordError> {
        let Some(commit) = self.head_commit()? else {
            return Ok(None);
        };
        let tree = find_tree_capped(&self.repo, commit.tree_id())?;
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
