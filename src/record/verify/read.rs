//! Reading a ledger: the [`Reader`] of each source (a directory, a git branch, an export bundle's
//! `envelopes.jsonl`) and its entries, with the raw object reads of git ledgers.

use super::*;

pub(super) enum Reader {
    Dir(PathBuf),
    Git {
        repo_path: PathBuf,
        refname: String,
        tree: Oid,
    },
    /// The envelopes of a ledger, one per line in seq order (`envelopes.jsonl` of an export
    /// bundle), with the ledger's `CHECKPOINT` beside the file.
    Envelopes {
        path: PathBuf,
        /// The file name, used to name lines (`envelopes.jsonl:12`).
        name: String,
    },
}

pub(super) enum Loc {
    /// A regular file of a directory ledger, at `<ledger dir>/<Entry::file>` (no path kept:
    /// verification holds an entry per record).
    File,
    /// A regular file whose name is not UTF-8 (so `Entry::file` is lossy): its real path.
    Path(PathBuf),
    Blob(Oid),
    /// Bytes `offset..offset + len` of the envelopes file (one line, without its newline).
    Span {
        offset: u64,
        len: u64,
    },
    /// Not a regular file (directory, symlink, submodule).
    Foreign(&'static str),
}

pub(super) struct Entry {
    /// Path in the ledger (`records/000/000001-a-1.dsse.json`), or `envelopes.jsonl:<line>`.
    pub(super) file: String,
    /// The shard directory it is in; `None` directly under `records/` (and for lines).
    pub(super) dir: Option<String>,
    /// The seq the entry's place claims: the seq in a record file name, the line number of
    /// an envelopes file; `None` for a file that is not a record file.
    pub(super) file_seq: Option<u64>,
    pub(super) loc: Loc,
}

pub(super) enum ReadFail {
    TooLarge(u64),
    Io(String),
}

/// Resolves a ledger branch to an existing ref: `refs/...` as given, else `refs/heads/<b>`,
/// else `refs/remotes/<b>` (a fresh clone only has `origin/relgate/records`).
pub(super) fn resolve_ref(repo: &Repository, branch: &str) -> Result<String, String> {
    let mut candidates = vec![ledger_refname(branch)];
    if !branch.starts_with("refs/") {
        candidates.push(format!("refs/remotes/{branch}"));
        if branch == DEFAULT_BRANCH {
            candidates.push(format!("refs/remotes/origin/{branch}"));
        }
    }
    for c in &candidates {
        if repo.find_reference(c).is_ok() {
            return Ok(c.clone());
        }
    }
    Err(format!(
        "ledger branch {branch:?} not found (looked for {})",
        candidates.join(", ")
    ))
}

/// Sets libgit2 up for reading a ledger, for the whole process, before a git ledger is read.
///
/// Object re-hashing on read (`strict_hash_verification`) is turned off. Re-hashing each
/// shard tree version of the history walk (up to 1,000 entries, read once per commit) was
/// most of the cost of verifying a ledger of a commit per record. It is sound to skip:
/// - every object entered the object store through a step that computed its id from its bytes
///   (git's index-pack on fetch and clone, libgit2's object writes and pack indexer in
///   `relgate record`); re-hashing on read only catches bytes changed on disk afterwards,
///   which takes write access to `.git`, and whoever has that can rewrite the branch and its
///   reflog outright (what the auditor's kept checkpoint is for);
/// - the verdict does not rest on git's ids: every record's bytes are checked against its
///   Ed25519 signature, the SHA-256 `prev` chain and the signed RFC 6962 root, whatever id git
///   gives them;
/// - accidental corruption is still caught: zlib's Adler-32 of every loose object and packed
///   entry is checked on inflate, and an object that does not inflate is a read error.
///
/// The object cache is turned off. A verification reads each commit and tree once (the walk
/// keeps the one shard tree it reads again as raw bytes), so the cache only held objects
/// nobody asked for twice: up to its 256 MiB limit, about 85 MiB of the peak memory of
/// verifying 100,000 records of a commit each, for no speed.
///
/// Process-wide and one-way: the processes that read ledgers (`verify`, `export`, `collect`)
/// decide no gate, and nothing in them relies on the re-hash or the cache.
pub(super) fn tune_libgit2_for_reading() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        git2::opts::strict_hash_verification(false);
        git2::opts::enable_caching(false);
    });
}

impl Reader {
    pub(super) fn open(source: &LedgerSource) -> Result<Reader, String> {
        match source {
            LedgerSource::Dir(dir) => {
                if !dir.join(RECORDS_DIR).is_dir() {
                    return Err(format!("{} has no {RECORDS_DIR}/ directory", dir.display()));
                }
                Ok(Reader::Dir(dir.clone()))
            }
            LedgerSource::Git { repo, branch } => {
                tune_libgit2_for_reading();
                let r = Repository::open(repo)
                    .map_err(|e| format!("cannot open repository {}: {e}", repo.display()))?;
                let refname = resolve_ref(&r, branch)?;
                let commit = r
                    .find_reference(&refname)
                    .and_then(|x| x.peel_to_commit())
                    .map_err(|e| format!("{refname}: {e}"))?;
                Ok(Reader::Git {
                    repo_path: repo.clone(),
                    refname,
                    tree: commit.tree_id(),
                })
            }
        }
    }

    pub(super) fn open_envelopes(path: &Path) -> Result<Reader, String> {
        if !path.is_file() {
            return Err(format!("{} is not a file", path.display()));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Ok(Reader::Envelopes {
            path: path.to_path_buf(),
            name,
        })
    }

    /// Every entry under `records/`: the files of each shard directory, plus anything else
    /// found there (files directly under `records/`, directories that are not shards,
    /// subdirectories of shards), so nothing is skipped unseen.
    pub(super) fn list(&self) -> Result<Vec<Entry>, String> {
        let mut out = Vec::new();
        match self {
            Reader::Dir(dir) => {
                let rd = dir.join(RECORDS_DIR);
                for (name, ft, path) in read_dir_entries(&rd)? {
                    if ft.is_dir() && is_shard_name(&name) {
                        dir_shard_entries(&name, &path, &mut out)?;
                    } else {
                        out.push(Entry {
                            file: format!("{RECORDS_DIR}/{name}"),
                            file_seq: parse_record_file_name(&name),
                            dir: None,
                            loc: dir_loc(&ft, path, "a directory that is not a shard (NNN)"),
                        });
                    }
                }
            }
            Reader::Git {
                repo_path, tree, ..
            } => {
                let repo = Repository::open(repo_path).map_err(|e| e.to_string())?;
                let top = find_tree_capped(&repo, *tree).map_err(|e| e.to_string())?;
                let Some(entry) = top.get_name(RECORDS_DIR) else {
                    return Ok(out);
                };
                if entry.kind() != Some(ObjectType::Tree) {
                    return Err(format!("{RECORDS_DIR} is not a directory"));
                }
                let sub = find_tree_capped(&repo, entry.id()).map_err(|e| e.to_string())?;
                for e in sub.iter() {
                    let name = String::from_utf8_lossy(e.name_bytes()).into_owned();
                    if e.kind() == Some(ObjectType::Tree) && is_shard_name(&name) {
                        git_shard_entries(&repo, &name, e.id(), &mut out)?;
                    } else {
                        out.push(Entry {
                            file: format!("{RECORDS_DIR}/{name}"),
                            file_seq: parse_record_file_name(&name),
                            dir: None,
                            loc: git_loc(&e, "a directory that is not a shard (NNN)"),
                        });
                    }
                }
            }
            Reader::Envelopes { path, name } => {
                for (index, (offset, len)) in line_spans(path)?.into_iter().enumerate() {
                    let line = index as u64 + 1;
                    out.push(Entry {
                        file: format!("{name}:{line}"),
                        dir: None,
                        file_seq: Some(line),
                        loc: Loc::Span { offset, len },
                    });
                }
            }
        }
        Ok(out)
    }

    /// The shard directories under `records/` in seq order, when they are all there is and
    /// each is named as relgate names it (`shard_name`); `None` otherwise, or when they cannot
    /// be listed: then [`Reader::list`] lists everything and the checks name what is wrong.
    /// Envelopes files have no shards.
    pub(super) fn canonical_shards(&self) -> Option<Vec<Shard>> {
        let mut shards = Vec::new();
        let mut add = |name: String, loc: ShardLoc| {
            let number = name.parse::<u64>().ok()?;
            let first = number.checked_mul(SHARD_SIZE)?;
            (is_shard_name(&name) && shard_name(first) == name).then(|| {
                shards.push(Shard { number, name, loc });
            })
        };
        match self {
            Reader::Dir(dir) => {
                for (name, ft, path) in read_dir_entries(&dir.join(RECORDS_DIR)).ok()? {
                    if !ft.is_dir() {
                        return None;
                    }
                    add(name, ShardLoc::Dir(path))?;
                }
            }
            Reader::Git {
                repo_path, tree, ..
            } => {
                let repo = Repository::open(repo_path).ok()?;
                let top = find_tree_capped(&repo, *tree).ok()?;
                let entry = top.get_name(RECORDS_DIR)?;
                let sub = find_tree_capped(&repo, entry.id()).ok()?;
                for e in sub.iter() {
                    if e.kind() != Some(ObjectType::Tree) {
                        return None;
                    }
                    add(
                        std::str::from_utf8(e.name_bytes()).ok()?.to_owned(),
                        ShardLoc::Tree(e.id()),
                    )?;
                }
            }
            Reader::Envelopes { .. } => return None,
        }
        shards.sort_by_key(|s| s.number);
        Some(shards)
    }

    /// The entries of one shard of [`Reader::canonical_shards`]; `repo` is the ledger's
    /// repository, for git ledgers.
    pub(super) fn list_shard(
        &self,
        repo: Option<&Repository>,
        shard: &Shard,
    ) -> Result<Vec<Entry>, String> {
        let mut out = Vec::new();
        match (&shard.loc, repo) {
            (ShardLoc::Dir(path), _) => dir_shard_entries(&shard.name, path, &mut out)?,
            (ShardLoc::Tree(oid), Some(repo)) => {
                git_shard_entries(repo, &shard.name, *oid, &mut out)?
            }
            (ShardLoc::Tree(_), None) => return Err("no repository to read the shard from".into()),
        }
        Ok(out)
    }

    pub(super) fn read_top(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        match self {
            Reader::Dir(dir) => {
                let p = dir.join(name);
                match fs::symlink_metadata(&p) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(format!("{}: {e}", p.display())),
                    Ok(_) => {}
                }
                // A FIFO or device here would block the read forever or never end it.
                match read_path(&p) {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(ReadFail::TooLarge(size)) => Err(format!(
                        "{}: {size} bytes, above the {MAX_ENVELOPE_BYTES}-byte limit; not read",
                        p.display()
                    )),
                    Err(ReadFail::Io(e)) => Err(format!("{}: {e}", p.display())),
                }
            }
            Reader::Git {
                repo_path, tree, ..
            } => {
                let repo = Repository::open(repo_path).map_err(|e| e.to_string())?;
                let top = find_tree_capped(&repo, *tree).map_err(|e| e.to_string())?;
                let Some(entry) = top.get_name(name) else {
                    return Ok(None);
                };
                read_blob_capped(&repo, entry.id())
                    .map(Some)
                    .map_err(|e| e.to_string())
            }
            // Only the checkpoint travels with the envelopes; there is no head state.
            Reader::Envelopes { path, .. } if name == CHECKPOINT_FILE => {
                let dir = path.parent().unwrap_or(Path::new("."));
                Reader::Dir(dir.to_path_buf()).read_top(name)
            }
            Reader::Envelopes { .. } => Ok(None),
        }
    }

    pub(super) fn is_envelopes(&self) -> bool {
        matches!(self, Reader::Envelopes { .. })
    }

    /// Per-thread state for reading entries: a repository handle (git), an open file
    /// (envelopes), nothing (directories).
    pub(super) fn thread_state(&self) -> ThreadReader {
        match self {
            Reader::Dir(dir) => ThreadReader::Dir(dir.clone()),
            Reader::Git { repo_path, .. } => ThreadReader::Git(Repository::open(repo_path).ok()),
            Reader::Envelopes { path, .. } => ThreadReader::Envelopes(fs::File::open(path)),
        }
    }
}

/// A shard directory under `records/`, named as relgate names it.
pub(super) struct Shard {
    /// Its number: the shard of records `number * 1000 ..`.
    pub(super) number: u64,
    pub(super) name: String,
    pub(super) loc: ShardLoc,
}

pub(super) enum ShardLoc {
    Dir(PathBuf),
    Tree(Oid),
}

/// The entries of shard directory `name` at `path`.
fn dir_shard_entries(name: &str, path: &Path, out: &mut Vec<Entry>) -> Result<(), String> {
    for (file_name, ft, path) in read_dir_entries(path)? {
        out.push(Entry {
            file: format!("{RECORDS_DIR}/{name}/{file_name}"),
            file_seq: parse_record_file_name(&file_name),
            dir: Some(name.to_owned()),
            loc: dir_loc(&ft, path, "a directory inside a shard"),
        });
    }
    Ok(())
}

/// The entries of shard tree `oid`, named `name`.
fn git_shard_entries(
    repo: &Repository,
    name: &str,
    oid: Oid,
    out: &mut Vec<Entry>,
) -> Result<(), String> {
    let shard = find_tree_capped(repo, oid).map_err(|e| e.to_string())?;
    for f in shard.iter() {
        let file_name = String::from_utf8_lossy(f.name_bytes()).into_owned();
        out.push(Entry {
            file: format!("{RECORDS_DIR}/{name}/{file_name}"),
            file_seq: parse_record_file_name(&file_name),
            dir: Some(name.to_owned()),
            loc: git_loc(&f, "a directory inside a shard"),
        });
    }
    Ok(())
}

/// What one worker thread reads entries with.
pub(super) enum ThreadReader {
    Dir(PathBuf),
    Git(Option<Repository>),
    Envelopes(std::io::Result<fs::File>),
}

impl ThreadReader {
    pub(super) fn read(&self, entry: &Entry) -> Result<Vec<u8>, ReadFail> {
        match (self, &entry.loc) {
            (ThreadReader::Dir(dir), Loc::File) => read_path(&dir.join(&entry.file)),
            (ThreadReader::Dir(_), Loc::Path(p)) => read_path(p),
            (ThreadReader::Git(repo), Loc::Blob(oid)) => read_blob(repo.as_ref(), *oid),
            (ThreadReader::Envelopes(file), Loc::Span { offset, len }) => match file {
                Ok(f) => read_span(f, *offset, *len),
                Err(e) => Err(ReadFail::Io(e.to_string())),
            },
            _ => Err(ReadFail::Io("not a readable record".into())),
        }
    }
}

/// Reads `entries` in parallel, `chunk` at a time: `f(index of the chunk's first entry,
/// chunk, read)` per chunk; the results in entry order.
pub(super) fn par_read_chunks<'a, T: Send>(
    reader: &Reader,
    entries: &'a [Entry],
    chunk: usize,
    f: impl Fn(usize, &'a [Entry], &dyn Fn(&Entry) -> Result<Vec<u8>, ReadFail>) -> Vec<T> + Sync,
) -> Vec<T> {
    par_read_chunked(reader, entries, chunk, f)
        .into_iter()
        .flatten()
        .collect()
}

/// Reads `entries` in parallel, `chunk` at a time: one result of `f(index of the chunk's first
/// entry, chunk, read)` per chunk, in entry order, so a caller that folds each chunk never
/// holds the per-entry results of all of them.
pub(super) fn par_read_chunked<'a, T: Send>(
    reader: &Reader,
    entries: &'a [Entry],
    chunk: usize,
    f: impl Fn(usize, &'a [Entry], &dyn Fn(&Entry) -> Result<Vec<u8>, ReadFail>) -> T + Sync,
) -> Vec<T> {
    entries
        .par_chunks(chunk.max(1))
        .enumerate()
        .map_init(
            || reader.thread_state(),
            |state, (index, entries)| {
                let read = |e: &Entry| state.read(e);
                f(index * chunk.max(1), entries, &read)
            },
        )
        .collect()
}

/// The entries of a directory: name, type (not following symlinks), path.
pub(super) fn read_dir_entries(dir: &Path) -> Result<Vec<(String, fs::FileType, PathBuf)>, String> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let e = e.map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let ft = e.file_type().map_err(|e| format!("{name}: {e}"))?;
        out.push((name, ft, e.path()));
    }
    Ok(out)
}

pub(super) fn dir_loc(ft: &fs::FileType, path: PathBuf, what_dir: &'static str) -> Loc {
    if ft.is_file() && path.file_name().and_then(|n| n.to_str()).is_some() {
        Loc::File
    } else if ft.is_file() {
        Loc::Path(path)
    } else if ft.is_dir() {
        Loc::Foreign(what_dir)
    } else {
        Loc::Foreign("not a regular file")
    }
}

pub(super) fn git_loc(e: &git2::TreeEntry<'_>, what_dir: &'static str) -> Loc {
    match (e.kind(), e.filemode()) {
        (Some(ObjectType::Blob), 0o100_644 | 0o100_755) => Loc::Blob(e.id()),
        (Some(ObjectType::Tree), _) => Loc::Foreign(what_dir),
        _ => Loc::Foreign("not a regular file"),
    }
}

/// A regular file of at most [`MAX_ENVELOPE_BYTES`] ([`read_file_capped`]).
pub(super) fn read_path(path: &Path) -> Result<Vec<u8>, ReadFail> {
    read_file_capped(path).map_err(|e| match e {
        CappedRead::TooLarge(size) => ReadFail::TooLarge(size),
        other => ReadFail::Io(other.to_string()),
    })
}

/// One line of an envelopes file.
pub(super) fn read_span(file: &fs::File, offset: u64, len: u64) -> Result<Vec<u8>, ReadFail> {
    use std::os::unix::fs::FileExt as _;
    if len > MAX_ENVELOPE_BYTES {
        return Err(ReadFail::TooLarge(len));
    }
    let mut buf = vec![0; len as usize];
    file.read_exact_at(&mut buf, offset)
        .map_err(|e| ReadFail::Io(e.to_string()))?;
    Ok(buf)
}

/// The lines of an envelopes file as (offset, length without the newline), read in blocks so
/// that a huge line is never held in memory. A final newline ends the last line, it does not
/// start an empty one.
pub(super) fn line_spans(path: &Path) -> Result<Vec<(u64, u64)>, String> {
    let mut file = fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut spans = Vec::new();
    let mut block = vec![0u8; 64 * 1024];
    let mut start: u64 = 0;
    let mut pos: u64 = 0;
    loop {
        let n = match file.read(&mut block) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        for (i, b) in block[..n].iter().enumerate() {
            if *b == b'\n' {
                let end = pos + i as u64;
                spans.push((start, end - start));
                start = end + 1;
            }
        }
        pos += n as u64;
    }
    if pos > start {
        spans.push((start, pos - start));
    }
    Ok(spans)
}

pub(super) fn read_blob(repo: Option<&Repository>, oid: Oid) -> Result<Vec<u8>, ReadFail> {
    let repo = repo.ok_or_else(|| ReadFail::Io("cannot open repository".into()))?;
    read_blob_capped(repo, oid).map_err(|e| match e {
        CappedRead::TooLarge(size) => ReadFail::TooLarge(size),
        CappedRead::Git(e) => ReadFail::Io(e.to_string()),
        CappedRead::Io(e) => ReadFail::Io(e),
    })
}
