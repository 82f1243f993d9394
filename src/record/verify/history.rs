//! The git history checks (step 5 of the module docs): the first-parent walk of the branch,
//! where every commit may only add records in seq order, and the reflog's fast-forwards.

use super::*;

pub(super) fn records_tree<'r>(repo: &'r Repository, tree: &Tree<'_>) -> Option<Tree<'r>> {
    tree.get_name(RECORDS_DIR)
        .filter(|e| e.kind() == Some(ObjectType::Tree))
        .and_then(|e| find_tree_capped(repo, e.id()).ok())
}

pub(super) fn commit_ref(seq: Option<u64>, file: Option<String>, commit: Oid) -> Option<RecordRef> {
    Some(RecordRef {
        seq,
        file,
        commit: Some(commit.to_string()),
    })
}

/// One entry of a tree, as the history walk compares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Item {
    pub(super) oid: Oid,
    /// A subtree.
    pub(super) tree: bool,
    /// A regular file (blob with mode 100644 or 100755).
    pub(super) file: bool,
    /// The entry's mode as written (`100644`, `100755`, `40000`, ...): a record whose mode
    /// alone changed is a changed record too (a checkout makes it executable).
    pub(super) mode: u32,
}

/// The entries of shard tree `oid`, by name.
pub(super) fn tree_items(
    repo: &Repository,
    oid: Oid,
) -> Result<BTreeMap<String, Item>, git2::Error> {
    // Shard trees only: refused above a shard's size before they are read, like the raw reads
    // of the walk (a 300,000-entry tree under every commit cost 0.3 s a commit here).
    // (`find_tree_capped` would read the header again for its larger limit.)
    check_tree_size_below(&repo.odb()?, oid, MAX_SHARD_TREE_BYTES)?;
    let tree = repo.find_tree(oid)?;
    check_canonical(&tree)?;
    Ok(tree
        .iter()
        .map(|e| {
            let kind = e.kind();
            (
                String::from_utf8_lossy(e.name_bytes()).into_owned(),
                Item {
                    oid: e.id(),
                    tree: kind == Some(ObjectType::Tree),
                    file: kind == Some(ObjectType::Blob)
                        && matches!(e.filemode(), 0o100_644 | 0o100_755),
                    mode: u32::try_from(e.filemode_raw()).unwrap_or(u32::MAX),
                },
            )
        })
        .collect())
}

/// What the walk carries from one commit to the next.
pub(super) struct Walk<'a> {
    pub(super) repo: &'a Repository,
    /// The object store of `repo`, opened once for the walk.
    pub(super) odb: &'a Odb<'a>,
    pub(super) report: &'a mut VerifyReport,
    /// The commit being checked.
    pub(super) id: Oid,
    /// Records the commit added: (seq, path).
    pub(super) added: Vec<(u64, String)>,
    /// The shard tree read last (usually the head shard of the previous commit, which the
    /// next append extends), kept as libgit2 returned it: copying it (up to 1,000 entries,
    /// once per commit) cost as much as comparing it.
    pub(super) shard_cache: Option<(Oid, OdbObject<'a>)>,
    /// What the current commit was found to do wrong, listed up to [`LISTED_PER_COMMIT`] per
    /// kind and counted beyond.
    pub(super) counted: Listing,
}

/// Problems listed up to a limit, the rest counted per kind, so that what verification holds
/// of a hostile history is bounded by the limit, not by the history.
#[derive(Default)]
pub(super) struct Listing {
    /// Per kind of problem, in the order first seen: how many are listed, and how many left
    /// out.
    kinds: Vec<(ProblemKind, usize, u64)>,
}

impl Listing {
    fn of(&mut self, kind: ProblemKind) -> &mut (ProblemKind, usize, u64) {
        let i = match self.kinds.iter().position(|(k, _, _)| *k == kind) {
            Some(i) => i,
            None => {
                self.kinds.push((kind, 0, 0));
                self.kinds.len() - 1
            }
        };
        &mut self.kinds[i]
    }

    /// Counts a problem of `kind`: true when it is among the first `limit` of its kind, to be
    /// listed; false when it is to be left out (and is counted).
    pub(super) fn admit(&mut self, kind: ProblemKind, limit: usize) -> bool {
        let (_, listed, unlisted) = self.of(kind);
        if *listed < limit {
            *listed += 1;
            true
        } else {
            *unlisted += 1;
            false
        }
    }

    /// Counts a problem of `kind` that is left out of the list.
    pub(super) fn leave_out(&mut self, kind: ProblemKind) {
        self.of(kind).2 += 1;
    }

    /// The kinds with problems left out and how many, in the order first seen; the counting
    /// starts again.
    pub(super) fn take_unlisted(&mut self) -> impl Iterator<Item = (ProblemKind, u64)> {
        std::mem::take(&mut self.kinds)
            .into_iter()
            .filter(|(_, _, n)| *n > 0)
            .map(|(kind, _, n)| (kind, n))
    }
}

/// Problems of one kind listed per commit of the history walk; more are counted in one
/// problem that says how many were left out. Per kind, so that junk cannot crowd a removed or
/// changed record out of the list. A tree can hold some 300,000 names not part of a ledger (up to the
/// 16 MiB size limit), and each commit can add a new such tree: listing every name held about
/// 140 MB per commit (20 commits took 3 GB), for a verdict the first name already decides.
pub(super) const LISTED_PER_COMMIT: usize = 100;

impl Walk<'_> {
    /// Counts a problem of kind `kind` of the current commit: true when it is past the
    /// [`LISTED_PER_COMMIT`] of its kind, to be left out of the list.
    pub(super) fn over_limit(&mut self, kind: ProblemKind) -> bool {
        !self.counted.admit(kind, LISTED_PER_COMMIT)
    }

    /// Ends the current commit: the problems left out of its list become one per kind that
    /// counts them.
    pub(super) fn finish_commit(&mut self) {
        let id = self.id;
        for (kind, n) in self.counted.take_unlisted() {
            self.report.push(
                kind,
                commit_ref(None, None, id),
                format!(
                    "commit {id}: {n} more problems like the ones above are not listed \
                     (the first {LISTED_PER_COMMIT} of a kind in a commit are)"
                ),
            );
        }
    }

    pub(super) fn push(
        &mut self,
        kind: ProblemKind,
        seq: Option<u64>,
        path: &str,
        message: String,
    ) {
        if self.over_limit(kind) {
            return;
        }
        self.report.push(
            kind,
            commit_ref(seq, Some(path.to_owned()), self.id),
            message,
        );
    }

    /// An entry the commit added to shard `shard`.
    pub(super) fn added_entry(&mut self, shard: &str, file: bool, name: &str) {
        let path = format!("{RECORDS_DIR}/{shard}/{name}");
        match parse_record_file_name(name).filter(|_| file) {
            Some(seq) => self.added.push((seq, path)),
            None => {
                let id = self.id;
                self.push(
                    ProblemKind::HistoryUnexpectedFile,
                    None,
                    &path,
                    format!("commit {id} added {path}, which is not a record file"),
                );
            }
        }
    }

    pub(super) fn removed_entry(&mut self, shard: &str, name: &str) {
        let path = format!("{RECORDS_DIR}/{shard}/{name}");
        let id = self.id;
        self.push(
            ProblemKind::HistoryRecordRemoved,
            parse_record_file_name(name),
            &path,
            format!("commit {id} removed {path}"),
        );
    }

    /// Tree `tree` of the current commit lists `name` twice or out of git's order.
    pub(super) fn disorder(&mut self, tree: Oid, name: &[u8]) {
        let id = self.id;
        let name = String::from_utf8_lossy(name);
        self.push(
            ProblemKind::HistoryUnexpectedFile,
            None,
            &name,
            format!(
                "commit {id}: tree {tree} lists {name} twice or out of git's order: git never \
                 writes such a tree, and a checkout may show another entry than verify reads"
            ),
        );
    }

    pub(super) fn read_error(&mut self, e: git2::Error) {
        let id = self.id;
        self.report.push(
            ProblemKind::ReadError,
            commit_ref(None, None, id),
            format!("commit {id}: {e}"),
        );
    }

    /// Compares shard `shard` before (`old`, absent when new) and after the commit. An append
    /// leaves the old tree's bytes as a prefix of the new one's (entries sorted by zero-padded
    /// seq), so usually only the new entries are parsed; otherwise the entries are diffed.
    pub(super) fn diff_shard(&mut self, shard: &str, old: Option<Oid>, new: Oid) {
        let cached = self.shard_cache.take().filter(|(id, _)| Some(*id) == old);
        let old_raw: Option<Option<OdbObject<'_>>> = match (old, cached) {
            (None, _) => Some(None),
            (Some(_), Some((_, obj))) => Some(Some(obj)),
            (Some(o), None) => read_tree_object(self.odb, o, MAX_SHARD_TREE_BYTES)
                .ok()
                .map(Some),
        };
        let new_raw = read_tree_object(self.odb, new, MAX_SHARD_TREE_BYTES).ok();
        let appended = match (&old_raw, &new_raw) {
            (Some(o), Some(n)) => appended_entries(o.as_ref().map_or(&[], |o| o.data()), n.data()),
            _ => None,
        };
        if let Some(entries) = appended {
            for (file, name) in entries {
                self.added_entry(shard, file, &name);
            }
        } else {
            let old_items = match old.map(|o| tree_items(self.repo, o)).transpose() {
                Ok(items) => items.unwrap_or_default(),
                Err(e) => return self.read_error(e),
            };
            let new_items = match tree_items(self.repo, new) {
                Ok(items) => items,
                Err(e) => return self.read_error(e),
            };
            let names: BTreeSet<&String> = old_items.keys().chain(new_items.keys()).collect();
            for name in names {
                match (old_items.get(name), new_items.get(name)) {
                    (None, Some(n)) => self.added_entry(shard, n.file, name),
                    (Some(_), None) => self.removed_entry(shard, name),
                    (Some(a), Some(b)) if a != b => {
                        let path = format!("{RECORDS_DIR}/{shard}/{name}");
                        let id = self.id;
                        let what = if a.oid == b.oid && a.mode != b.mode {
                            format!(
                                "commit {id} changed the mode of {path} from {:o} to {:o}",
                                a.mode, b.mode
                            )
                        } else {
                            format!("commit {id} changed {path}")
                        };
                        self.push(
                            ProblemKind::HistoryRecordChanged,
                            parse_record_file_name(name),
                            &path,
                            what,
                        );
                    }
                    _ => {}
                }
            }
        }
        self.shard_cache = new_raw.map(|obj| (new, obj));
    }

    /// Shard `shard` (tree `old`) disappeared: every record in it was removed.
    pub(super) fn removed_shard(&mut self, shard: &str, old: Oid) {
        match tree_items(self.repo, old) {
            Ok(items) => {
                for name in items.keys() {
                    self.removed_entry(shard, name);
                }
            }
            Err(e) => self.read_error(e),
        }
    }
}

/// Walks the first-parent history of `refname` (step 5) and returns that chain, which the
/// reflog check then uses to tell fast-forwards without reading a commit
/// ([`check_reflog`]); `None` when the branch could not be read.
pub(super) fn check_history(
    repo: &Repository,
    refname: &str,
    report: &mut VerifyReport,
) -> Option<FirstParents> {
    check_history_in(repo, refname, report, SEGMENT)
}

/// The first-parent chain of the ledger branch as the history walk read it: each commit with
/// its place (0 for the first commit), sorted by commit id so a place is a binary search away.
/// 24 bytes per commit, against a commit read per reflog entry without it.
pub(super) struct FirstParents(Vec<(Oid, u32)>);

impl FirstParents {
    fn new(oldest_first: impl Iterator<Item = Oid>) -> FirstParents {
        // A chain longer than u32::MAX commits cannot be walked in memory anyway; saturating
        // keeps such places equal, which only sends them to the graph search.
        let mut v: Vec<(Oid, u32)> = oldest_first
            .enumerate()
            .map(|(i, id)| (id, u32::try_from(i).unwrap_or(u32::MAX)))
            .collect();
        v.sort_unstable();
        FirstParents(v)
    }

    fn place(&self, id: Oid) -> Option<u32> {
        self.0
            .binary_search_by(|(c, _)| c.cmp(&id))
            .ok()
            .and_then(|i| self.0.get(i))
            .map(|&(_, place)| place)
    }

    /// True when `old` comes before `new` on the chain: `new` then descends from `old`
    /// through first parents, so moving the branch from `old` to `new` was a fast-forward.
    /// False says nothing (the pair may still be a fast-forward through a second parent).
    fn fast_forward(&self, old: Oid, new: Oid) -> bool {
        matches!((self.place(old), self.place(new)), (Some(o), Some(n)) if o < n)
    }
}

/// [`check_history`] with segments of `segment` commits.
fn check_history_in(
    repo: &Repository,
    refname: &str,
    report: &mut VerifyReport,
    segment: usize,
) -> Option<FirstParents> {
    let segment = segment.max(1);
    let head = match repo
        .find_reference(refname)
        .and_then(|r| r.peel_to_commit())
    {
        Ok(c) => c,
        Err(e) => {
            report.push(
                ProblemKind::SourceUnavailable,
                None,
                format!("{refname}: {e}"),
            );
            return None;
        }
    };
    // First-parent chain, newest first: (commit, its tree), so the walk below reads each
    // commit once, here.
    let mut chain: Vec<(Oid, Oid)> = Vec::new();
    let mut cur = Some(head);
    while let Some(c) = cur {
        if c.parent_count() > 1 {
            report.push(
                ProblemKind::HistoryFork,
                commit_ref(None, None, c.id()),
                format!(
                    "ledger commit {} is a merge of {} branches: the ledger was forked",
                    c.id(),
                    c.parent_count()
                ),
            );
        }
        let next = if c.parent_count() > 0 {
            match c.parent(0) {
                Ok(p) => Some(p),
                // Only a shallow clone may lack history; elsewhere a parent that cannot be read
                // (missing, or not a commit) is a damaged or doctored branch, and the history
                // before it cannot be checked.
                Err(e) if repo.is_shallow() => {
                    report.push(
                        ProblemKind::ShallowHistory,
                        commit_ref(None, None, c.id()),
                        format!(
                            "history before {} is not available ({e}); not checked",
                            c.id()
                        ),
                    );
                    None
                }
                Err(e) => {
                    report.push(
                        ProblemKind::ReadError,
                        commit_ref(None, None, c.id()),
                        format!(
                            "the parent of ledger commit {} cannot be read ({e}), and the \
                             repository is not a shallow clone: the history before it was not \
                             checked",
                            c.id()
                        ),
                    );
                    None
                }
            }
        } else {
            None
        };
        chain.push((c.id(), c.tree_id()));
        cur = next;
    }
    chain.reverse();
    if repo.is_shallow() {
        report.push(
            ProblemKind::ShallowHistory,
            None,
            "shallow clone: the ledger history before the shallow boundary was not checked",
        );
    }
    // The walk compares each commit with the one before it, in segments, each starting from
    // the `records/` tree of the commit before it; what each commit added is then checked
    // against the sequence in order. The segments are walked one after another on this thread,
    // beside the per-record checks: libgit2 shares one handle per packfile between threads,
    // behind locks taken several times per object read, and walking segments in parallel made
    // every reader wait (100,000 commits: 1.55 s on two threads against 1.25 s on one, with
    // the per-record checks slowed as well). What a commit was found to do is reported as soon
    // as it is walked, so it is held for that commit only.
    let git_dir = repo.path().to_owned();
    let mut next_seq: u64 = 1;
    // Problems past LISTED_IN_WALK, counted per kind.
    let mut unlisted = Listing::default();
    for (i, commits) in chain.chunks(segment).enumerate() {
        let before = i
            .checked_mul(segment)
            .and_then(|start| start.checked_sub(1))
            .and_then(|b| chain.get(b).copied());
        walk_segment(&git_dir, commits, before, |found| {
            report.commits_checked += 1;
            let id = found.id;
            for name in found.foreign_top {
                report.push(
                    ProblemKind::HistoryUnexpectedFile,
                    commit_ref(None, Some(name.clone()), id),
                    format!("commit {id} added {name}, which is not part of a ledger"),
                );
            }
            report.problems.extend(found.problems);
            check_added(found.added, &mut next_seq, id, report);
            if report.problems.len() > LISTED_IN_WALK {
                for p in report.problems.drain(LISTED_IN_WALK..) {
                    unlisted.leave_out(p.kind);
                }
            }
        });
    }
    for (kind, n) in unlisted.take_unlisted() {
        report.push(
            kind,
            None,
            format!(
                "{n} more problems like the ones above are not listed (the history walk lists \
                 the first {LISTED_IN_WALK})"
            ),
        );
    }
    Some(FirstParents::new(chain.iter().map(|&(id, _)| id)))
}

/// Problems the history walk lists in all; more are counted per kind. The limit per commit
/// ([`LISTED_PER_COMMIT`]) bounds one commit; this bounds a branch of many such commits (40,000
/// commits of 101 junk names each held 1 GB of problems).
const LISTED_IN_WALK: usize = 10_000;

/// Commits per segment of the history walk.
const SEGMENT: usize = 2048;

/// What the walk found in one commit, in the order a serial walk reports it.
struct CommitFindings {
    id: Oid,
    /// Names it added at the top of its tree that are not part of a ledger, in tree order.
    foreign_top: Vec<String>,
    /// The problems of its `records/` tree against the commit before.
    problems: Vec<Problem>,
    /// The records it added: (seq, path).
    added: Vec<(u64, String)>,
}

/// What the walk keeps of the commit before the one it compares.
#[derive(Default)]
struct Before {
    /// Its root tree.
    root: ParsedTree,
    /// Its `records/` tree (`None`: it has none).
    records_oid: Option<Oid>,
    records: ParsedTree,
}

/// The commit whose root tree is `tree`, as the walk keeps it.
fn before_of(odb: &Odb<'_>, tree: Oid) -> Result<Before, git2::Error> {
    let root = parse_root(odb, tree)?;
    let records_oid = records_entry(&root.view());
    let records = match records_oid {
        Some(o) => parse_records(odb, o)?,
        None => ParsedTree::default(),
    };
    Ok(Before {
        root,
        records_oid,
        records,
    })
}

/// The root tree `tree` of a ledger commit, read and parsed.
fn parse_root(odb: &Odb<'_>, tree: Oid) -> Result<ParsedTree, git2::Error> {
    let obj = read_tree_object(odb, tree, MAX_ROOT_TREE_BYTES)?;
    ParsedTree::parse(obj.data()).ok_or_else(|| {
        git2::Error::from_str(&format!(
            "the tree {tree} of a ledger commit does not parse"
        ))
    })
}

/// The `records/` directory among the entries of a root tree, when it is one.
fn records_entry(root: &[RawEntry<'_>]) -> Option<Oid> {
    root.iter()
        .find(|e| e.name == RECORDS_DIR.as_bytes() && e.item.tree)
        .map(|e| e.item.oid)
}

/// Tree `oid`, read and parsed (an error when it is not a tree or does not parse).
fn parse_records(odb: &Odb<'_>, oid: Oid) -> Result<ParsedTree, git2::Error> {
    let obj = read_tree_object(odb, oid, MAX_RECORDS_TREE_BYTES)?;
    ParsedTree::parse(obj.data()).ok_or_else(|| {
        git2::Error::from_str(&format!("the {RECORDS_DIR}/ tree {oid} does not parse"))
    })
}

/// A tree's raw bytes with its entries parsed once: the history walk compares each commit's
/// `records/` tree with the one before, and parsing both every time was a tenth of the walk.
#[derive(Default)]
pub(super) struct ParsedTree {
    raw: Vec<u8>,
    /// Each entry: its name as a range of `raw`, and what it is.
    entries: Vec<(std::ops::Range<usize>, Item)>,
}

impl ParsedTree {
    pub(super) fn parse(raw: &[u8]) -> Option<ParsedTree> {
        let base = raw.as_ptr() as usize;
        let entries = parse_tree(raw)?
            .into_iter()
            .map(|e| {
                // `e.name` is a subslice of `raw`: its place is its address minus raw's.
                let start = e.name.as_ptr() as usize - base;
                (start..start + e.name.len(), e.item)
            })
            .collect();
        Some(ParsedTree {
            raw: raw.to_vec(),
            entries,
        })
    }

    pub(super) fn view(&self) -> Vec<RawEntry<'_>> {
        self.entries
            .iter()
            .map(|(name, item)| RawEntry {
                name: self.raw.get(name.clone()).unwrap_or_default(),
                item: *item,
            })
            .collect()
    }
}

/// Walks `commits` (consecutive, oldest first, each with its tree), comparing each with the one
/// before it; the first with `before`, the commit before the segment (`None`: the segment
/// starts the branch).
fn walk_segment(
    git_dir: &Path,
    commits: &[(Oid, Oid)],
    before: Option<(Oid, Oid)>,
    mut found: impl FnMut(CommitFindings),
) {
    let repo = match Repository::open(git_dir) {
        Ok(r) => r,
        Err(e) => return unreadable(commits, &e).for_each(found),
    };
    let odb = match repo.odb() {
        Ok(o) => o,
        Err(e) => return unreadable(commits, &e).for_each(found),
    };
    // A commit before the segment that cannot be read is reported by the segment walking it;
    // this one then starts from an empty tree, so its records show as added out of order
    // rather than not at all.
    let mut before = before
        .and_then(|(_, tree)| before_of(&odb, tree).ok())
        .unwrap_or_default();
    let mut report = VerifyReport::new(String::new());
    let mut walk = Walk {
        repo: &repo,
        odb: &odb,
        report: &mut report,
        id: Oid::ZERO_SHA1,
        added: Vec::new(),
        shard_cache: None,
        counted: Listing::default(),
    };
    for &(id, tree) in commits {
        walk.id = id;
        let mut foreign_top = Vec::new();
        walk_commit(&mut walk, tree, &mut foreign_top, &mut before);
        walk.finish_commit();
        found(CommitFindings {
            id,
            foreign_top,
            problems: std::mem::take(&mut walk.report.problems),
            added: std::mem::take(&mut walk.added),
        });
    }
}

/// Every commit of a segment whose repository could not be opened, as a read error.
fn unreadable<'c>(
    commits: &'c [(Oid, Oid)],
    e: &'c git2::Error,
) -> impl Iterator<Item = CommitFindings> + 'c {
    commits.iter().map(move |&(id, _)| CommitFindings {
        id,
        foreign_top: Vec::new(),
        problems: vec![Problem::new(
            ProblemKind::ReadError,
            commit_ref(None, None, id),
            format!("commit {id}: {e}"),
        )],
        added: Vec::new(),
    })
}

/// Compares commit `walk.id` (its tree: `tree`) with the commit before it (`before`), and
/// makes it the commit before the next one.
fn walk_commit(walk: &mut Walk<'_>, tree: Oid, foreign_top: &mut Vec<String>, before: &mut Before) {
    let id = walk.id;
    // The root tree is read as raw bytes: a git2 `Tree` costs an object lookup and an
    // allocation per entry, once per commit.
    let root = match parse_root(walk.odb, tree) {
        Ok(t) => t,
        Err(e) => return walk.read_error(e),
    };
    let (old_top, new_top) = (before.root.view(), root.view());
    if let Some(name) = first_disorder(&new_top) {
        return walk.disorder(tree, name);
    }
    // A name that is not part of a ledger is named by the commit that added it (a stray file
    // is not named again by every commit after); a ledger's own name is checked for its type
    // whenever a commit changes it (`CHECKPOINT` made a directory hides files under it).
    for (name, old, new) in merge_entries(&old_top, &new_top) {
        let Some(new) = new else {
            continue;
        };
        if old == Some(new) {
            continue;
        }
        let name = String::from_utf8_lossy(name);
        let ledger_name = match name.as_ref() {
            RECORDS_DIR => Some(new.tree),
            CHECKPOINT_FILE | STATE_FILE => Some(new.file),
            _ => None,
        };
        match ledger_name {
            Some(true) => {}
            Some(false) => {
                let what = if name == RECORDS_DIR {
                    "a directory"
                } else {
                    "a regular file"
                };
                walk.push(
                    ProblemKind::HistoryUnexpectedFile,
                    None,
                    &name,
                    format!("commit {id} made {name} something other than {what}"),
                );
            }
            None if old.is_none() && !walk.over_limit(ProblemKind::HistoryUnexpectedFile) => {
                foreign_top.push(name.into_owned());
            }
            None => {}
        }
    }
    let records_oid = records_entry(&new_top);
    drop((old_top, new_top));
    before.root = root;
    if records_oid == before.records_oid {
        return;
    }
    let parsed = match records_oid {
        Some(o) => match parse_records(walk.odb, o) {
            Ok(p) => p,
            Err(e) => return walk.read_error(e),
        },
        None => ParsedTree::default(),
    };
    let (old_entries, new_entries) = (before.records.view(), parsed.view());
    if let Some(name) = first_disorder(&new_entries) {
        if let Some(o) = records_oid {
            return walk.disorder(o, name);
        }
    }
    // Both trees are in git's order, so one merge pass pairs the entries of the same name
    // and kind without building a map of the shards (a hostile unsorted tree can only make
    // entries unpaired, which are reported as added and removed, never hidden).
    for (name, old, new) in merge_entries(&old_entries, &new_entries) {
        if old == new {
            continue;
        }
        let name = String::from_utf8_lossy(name);
        let is_shard = |i: &Item| i.tree && is_shard_name(&name);
        let old_shard = old.filter(is_shard).map(|i| i.oid);
        match new {
            Some(n) if is_shard(&n) => walk.diff_shard(&name, old_shard, n.oid),
            Some(_) => {
                let path = format!("{RECORDS_DIR}/{name}");
                walk.push(
                    ProblemKind::HistoryUnexpectedFile,
                    parse_record_file_name(&name),
                    &path,
                    format!(
                        "commit {id} added {path}, which is not a shard directory ({RECORDS_DIR}/NNN/)"
                    ),
                );
                if let Some(o) = old_shard {
                    walk.removed_shard(&name, o);
                }
            }
            None => {
                if let Some(o) = old_shard {
                    walk.removed_shard(&name, o);
                }
            }
        }
    }
    drop((old_entries, new_entries));
    before.records_oid = records_oid;
    before.records = parsed;
}

/// Records added by one commit must continue the sequence.
pub(super) fn check_added(
    mut added: Vec<(u64, String)>,
    next_seq: &mut u64,
    id: Oid,
    report: &mut VerifyReport,
) {
    added.sort();
    // Listed up to LISTED_PER_COMMIT, like the walk's own problems: a commit can add some
    // 300,000 record names out of order.
    let mut listing = Listing::default();
    for (s, path) in added {
        if s != *next_seq && listing.admit(ProblemKind::HistoryOutOfOrder, LISTED_PER_COMMIT) {
            report.push(
                ProblemKind::HistoryOutOfOrder,
                commit_ref(Some(s), Some(path.clone()), id),
                format!("commit {id} added record {s} ({path}) where record {next_seq} was due"),
            );
        }
        *next_seq = (*next_seq).max(s + 1);
    }
    for (_, unlisted) in listing.take_unlisted() {
        report.push(
            ProblemKind::HistoryOutOfOrder,
            commit_ref(None, None, id),
            format!(
                "commit {id}: {unlisted} more records added out of order are not listed \
                 (the first {LISTED_PER_COMMIT} of a commit are)"
            ),
        );
    }
}

/// Tree `oid` as libgit2 read it, refused above `limit` bytes from its header first
/// ([`check_tree_size_below`]; an error when it is not a tree).
pub(super) fn read_tree_object<'o>(
    odb: &'o Odb<'_>,
    oid: Oid,
    limit: usize,
) -> Result<OdbObject<'o>, git2::Error> {
    check_tree_size_below(odb, oid, limit)?;
    let obj = odb.read(oid)?;
    if obj.kind() != ObjectType::Tree {
        return Err(git2::Error::from_str(&format!("{oid} is not a tree")));
    }
    Ok(obj)
}

/// One entry of a raw tree object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RawEntry<'a> {
    pub(super) name: &'a [u8],
    pub(super) item: Item,
}

/// The entries of a raw tree object (SHA-1 ids), `None` when the bytes are not a tree. Modes
/// are classified as libgit2 normalizes them: `40000` a tree, `100xxx` a regular file.
pub(super) fn parse_tree(mut raw: &[u8]) -> Option<Vec<RawEntry<'_>>> {
    let mut out = Vec::new();
    while !raw.is_empty() {
        let space = raw.iter().position(|&b| b == b' ')?;
        let mode = u32::from_str_radix(std::str::from_utf8(&raw[..space]).ok()?, 8).ok()?;
        let nul = raw[space..].iter().position(|&b| b == 0)? + space;
        let id = raw.get(nul + 1..nul + 21)?;
        out.push(RawEntry {
            name: &raw[space + 1..nul],
            item: Item {
                oid: Oid::from_bytes(id).ok()?,
                tree: mode & 0o170_000 == 0o040_000,
                file: mode & 0o170_000 == 0o100_000,
                mode,
            },
        });
        raw = &raw[nul + 21..];
    }
    Some(out)
}

/// git's order of tree entries: by name, a tree's name followed by `/`.
pub(super) fn git_order(a: &RawEntry<'_>, b: &RawEntry<'_>) -> std::cmp::Ordering {
    git_name_order(a.name, a.item.tree, b.name, b.item.tree)
}

/// The first entry of `entries` that is not after the one before it in git's order (a name
/// listed twice, or out of order), if any: see [`super::super::ledger::check_canonical`].
pub(super) fn first_disorder<'a>(entries: &[RawEntry<'a>]) -> Option<&'a [u8]> {
    entries
        .windows(2)
        .find(|w| git_order(&w[0], &w[1]) != std::cmp::Ordering::Less)
        .map(|w| w[1].name)
}

/// The entries of two sorted trees side by side: (name, old, new), each name once.
pub(super) fn merge_entries<'a>(
    old: &[RawEntry<'a>],
    new: &[RawEntry<'a>],
) -> Vec<(&'a [u8], Option<Item>, Option<Item>)> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(new.len().max(old.len()));
    loop {
        let step = match (old.get(i), new.get(j)) {
            (None, None) => break,
            (Some(_), None) => Less,
            (None, Some(_)) => Greater,
            (Some(o), Some(n)) => git_order(o, n),
        };
        match step {
            Less => {
                out.push((old[i].name, Some(old[i].item), None));
                i += 1;
            }
            Greater => {
                out.push((new[j].name, None, Some(new[j].item)));
                j += 1;
            }
            Equal => {
                out.push((new[j].name, Some(old[i].item), Some(new[j].item)));
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// When `new` is `old` followed by whole tree entries, those entries as (is a regular file,
/// name); `None` when it is not (then the caller diffs) or the bytes do not parse.
pub(super) fn appended_entries(old: &[u8], new: &[u8]) -> Option<Vec<(bool, String)>> {
    let mut rest = new.strip_prefix(old)?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ')?;
        let mode = &rest[..space];
        let nul = rest[space..].iter().position(|&b| b == 0)? + space;
        let name = std::str::from_utf8(&rest[space + 1..nul]).ok()?.to_owned();
        // SHA-1 object ids (20 bytes); other object formats take the diff path.
        let end = nul + 1 + 20;
        if rest.len() < end {
            return None;
        }
        out.push((mode == b"100644" || mode == b"100755", name));
        rest = &rest[end..];
    }
    Some(out)
}

pub(super) fn is_fast_forward(repo: &Repository, old: Oid, new: Oid) -> bool {
    if old == new {
        return true;
    }
    // Ledger appends make `new` a child of `old`: check that in O(1) before a graph search.
    if let Ok(c) = repo.find_commit(new) {
        if c.parent_id(0).ok() == Some(old) {
            return true;
        }
    }
    repo.graph_descendant_of(new, old).unwrap_or(false)
}

/// Every file under a `records/` tree (in shards or not): path -> blob id.
pub(super) fn record_files(repo: &Repository, records: &Tree<'_>) -> BTreeMap<String, Oid> {
    let mut out = BTreeMap::new();
    for e in records.iter() {
        let name = String::from_utf8_lossy(e.name_bytes()).into_owned();
        if e.kind() == Some(ObjectType::Tree) {
            if let Ok(shard) = find_tree_capped(repo, e.id()) {
                for f in shard.iter() {
                    let file = String::from_utf8_lossy(f.name_bytes()).into_owned();
                    out.insert(format!("{RECORDS_DIR}/{name}/{file}"), f.id());
                }
            }
        } else {
            out.insert(format!("{RECORDS_DIR}/{name}"), e.id());
        }
    }
    out
}

/// The reflog check (step 5): every update of the branch must be a fast-forward; a forced
/// update is named with the records of the old head that are missing now. `chain`, the
/// first-parent chain the history walk read, answers the usual append (the new head a child
/// of the old) without reading a commit; the rest fall back to reading the commit and, failing
/// that, a graph search.
pub(super) fn check_reflog(
    repo: &Repository,
    refname: &str,
    chain: Option<&FirstParents>,
    report: &mut VerifyReport,
) {
    // Read a line at a time from the reflog file, not through libgit2: `git_reflog_read` holds
    // the whole log, and a branch moved once per record has one entry per record (100,000
    // entries: about 50 MB, a third of the memory of verifying that ledger). Unlike libgit2,
    // which skips them silently, lines that are not entries are named.
    let path = repo.commondir().join("logs").join(refname);
    let no_reflog = |report: &mut VerifyReport| {
        if refname.starts_with("refs/heads/") {
            report.push(
                ProblemKind::NoReflog,
                None,
                format!("no reflog for {refname}: forced updates in this clone cannot be detected from it"),
            );
        }
    };
    // Git writes reflogs as regular files; anything else (a FIFO would block the read) is
    // treated as no reflog.
    let file = match fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() => fs::File::open(&path),
        Ok(_) => Err(std::io::Error::other("not a regular file")),
        Err(e) => Err(e),
    };
    let mut file = match file {
        Ok(f) => std::io::BufReader::new(f),
        Err(_) => return no_reflog(report),
    };
    // The current records, listed only when a forced update needs them compared (a listing
    // of every record file: it is not built for a branch that only ever moved forward).
    let mut current: Option<Option<BTreeMap<String, Oid>>> = None;
    let mut lines = 0u64;
    // Lines that are not entries: how many, and the first.
    let mut malformed: Option<(u64, u64)> = None;
    let mut line = Vec::new();
    // Reflog files are oldest first, as problems are reported.
    for number in 1u64.. {
        let whole = match read_line_capped(&mut file, &mut line, MAX_REFLOG_LINE) {
            Ok(Some(whole)) => whole,
            Ok(None) => break,
            Err(e) => {
                report.push(
                    ProblemKind::ReadError,
                    None,
                    format!(
                        "cannot read the reflog of {refname} ({}): {e}; forced updates from \
                         its line {number} on were not checked",
                        path.display()
                    ),
                );
                return;
            }
        };
        let parsed = if whole {
            parse_reflog_line(&line)
        } else {
            None
        };
        lines += 1;
        let Some((old, new, message)) = parsed else {
            let (count, _) = malformed.get_or_insert((0, number));
            *count += 1;
            continue;
        };
        if old.is_zero()
            || chain.is_some_and(|c| c.fast_forward(old, new))
            || is_fast_forward(repo, old, new)
        {
            continue;
        }
        let current = current.get_or_insert_with(|| {
            repo.find_reference(refname)
                .and_then(|r| r.peel_to_commit())
                .and_then(|c| c.tree())
                .ok()
                .and_then(|t| records_tree(repo, &t))
                .map(|t| record_files(repo, &t))
        });
        // A forced update: which records of the old head are not in the current ledger?
        let old_records = repo
            .find_commit(old)
            .and_then(|c| c.tree())
            .ok()
            .and_then(|t| records_tree(repo, &t))
            .map(|t| record_files(repo, &t));
        let mut vanished: Vec<(u64, String)> = Vec::new();
        if let Some(old_files) = &old_records {
            for (path, oid) in old_files {
                let still = current.as_ref().and_then(|c| c.get(path)) == Some(oid);
                let name = path.rsplit('/').next().unwrap_or_default();
                if let (false, Some(s)) = (still, parse_record_file_name(name)) {
                    vanished.push((s, path.clone()));
                }
            }
        }
        vanished.sort();
        let what = if old_records.is_none() {
            "the old head is no longer available".to_owned()
        } else if let Some((s, path)) = vanished.first() {
            format!(
                "{} record(s) of the old head are missing or different now, from record {s} ({path})",
                vanished.len()
            )
        } else {
            "no record of the old head was lost".to_owned()
        };
        let first = vanished.first();
        report.push(
            ProblemKind::HistoryRewritten,
            Some(RecordRef {
                seq: first.map(|(s, _)| *s),
                file: first.map(|(_, path)| path.clone()),
                commit: Some(old.to_string()),
            }),
            format!("{refname} was force-updated from {old} to {new} ({message:?}): {what}"),
        );
    }
    if let Some((count, first)) = malformed {
        report.push(
            ProblemKind::NoReflog,
            None,
            format!(
                "{count} line(s) of the reflog of {refname} ({}) are not reflog entries, the \
                 first line {first}: a forced update they recorded cannot be detected",
                path.display()
            ),
        );
    }
    if lines == 0 {
        no_reflog(report);
    }
}

/// Reflog lines longer than this are not entries: an entry is two ids, an identity, a time
/// and a one-line message.
const MAX_REFLOG_LINE: usize = 64 * 1024;

/// Reads the next line (without its newline) into `line`: `Some(true)` for a line of at most
/// `cap` bytes, `Some(false)` for a longer one (skipped, `line` left empty), `None` at the end.
/// Memory stays within `cap` whatever the file holds.
fn read_line_capped(
    reader: &mut impl std::io::BufRead,
    line: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<Option<bool>> {
    line.clear();
    let mut started = false;
    let mut too_long = false;
    loop {
        let block = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if block.is_empty() {
            return Ok(started.then_some(!too_long));
        }
        started = true;
        let newline = block.iter().position(|&b| b == b'\n');
        let part = &block[..newline.unwrap_or(block.len())];
        if !too_long {
            if line.len() + part.len() > cap {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(part);
            }
        }
        let used = newline.map_or(block.len(), |i| i + 1);
        reader.consume(used);
        if newline.is_some() {
            return Ok(Some(!too_long));
        }
    }
}

/// One line of a reflog file: `<old id> <new id> <name> <<email>> <time> <zone>\t<message>`;
/// the two ids and the message (lossy UTF-8, empty without a tab). `None` when the line does
/// not start with two full ids.
fn parse_reflog_line(line: &[u8]) -> Option<(Oid, Oid, String)> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let hex = |b: &[u8]| {
        std::str::from_utf8(b)
            .ok()
            .filter(|s| s.len() == 40 && s.bytes().all(|c| c.is_ascii_hexdigit()))
            .and_then(|s| Oid::from_str(s).ok())
    };
    let old = hex(line.get(..40)?)?;
    if line.get(40) != Some(&b' ') {
        return None;
    }
    let new = hex(line.get(41..81)?)?;
    if line.get(81) != Some(&b' ') {
        return None;
    }
    let message = match line.iter().position(|&b| b == b'\t') {
        Some(tab) => String::from_utf8_lossy(&line[tab + 1..]).into_owned(),
        None => String::new(),
    };
    Some((old, new, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::keys::Signer;
    use crate::record::ledger::{GitLedger, Ledger};
    use crate::record::statement::tests::sample_input;

    #[test]
    fn a_listing_lists_up_to_its_limit_per_kind_and_counts_the_rest() {
        use ProblemKind::{HistoryOutOfOrder as Order, HistoryRecordRemoved as Removed};
        let mut listing = Listing::default();
        let admitted: Vec<bool> = [Removed, Order, Removed, Removed, Order]
            .into_iter()
            .map(|kind| listing.admit(kind, 2))
            .collect();
        assert_eq!(admitted, [true, true, true, false, true]);
        listing.leave_out(Order);
        assert_eq!(
            listing.take_unlisted().collect::<Vec<_>>(),
            [(Removed, 1), (Order, 1)]
        );
        assert!(listing.admit(Removed, 1), "counting starts again");
        assert_eq!(listing.take_unlisted().count(), 0);
    }

    #[test]
    fn reflog_lines_are_read_within_a_cap_and_parsed_for_their_two_ids() {
        let a = "1".repeat(40);
        let b = "ab".repeat(20);
        let entry = format!("{a} {b} Relgate <relgate@example.com> 1700000000 +0000\tpush --force");
        let (old, new, message) = parse_reflog_line(entry.as_bytes()).expect("an entry");
        assert_eq!((old.to_string(), new.to_string()), (a.clone(), b.clone()));
        assert_eq!(message, "push --force");
        let no_message = format!("{a} {b} R <r@x> 1 +0000\r");
        assert_eq!(
            parse_reflog_line(no_message.as_bytes()).map(|e| e.2),
            Some(String::new())
        );
        for bad in [
            "".to_owned(),
            "garbage".to_owned(),
            format!("{a}  {b} x"),
            format!("{} {b} x", &a[..39]),
            format!("{a} {}g x", &b[..39]),
            format!("{a} {b}"),
        ] {
            assert!(parse_reflog_line(bad.as_bytes()).is_none(), "{bad:?}");
        }

        let text = format!("short\n{}\nlast", "x".repeat(100));
        let mut reader = std::io::BufReader::with_capacity(7, text.as_bytes());
        let mut line = Vec::new();
        let mut got = Vec::new();
        while let Some(whole) = read_line_capped(&mut reader, &mut line, 10).expect("read") {
            got.push((whole, String::from_utf8_lossy(&line).into_owned()));
            assert!(line.capacity() <= 64, "a long line was held");
        }
        assert_eq!(
            got,
            [
                (true, "short".to_owned()),
                (false, String::new()),
                (true, "last".to_owned())
            ]
        );
    }

    /// A commit on the ledger branch whose `records/` tree is the head's with `edit` applied.
    fn tamper(
        repo: &Repository,
        refname: &str,
        edit: impl FnOnce(&Repository, &mut git2::TreeBuilder<'_>),
    ) {
        let head = repo
            .find_reference(refname)
            .and_then(|r| r.peel_to_commit())
            .expect("head");
        let top = head.tree().expect("tree");
        let records = records_tree(repo, &top).expect("records/");
        // The records of these tests all sit in shard 000.
        let shard = repo
            .find_tree(records.get_name("000").expect("shard").id())
            .expect("shard tree");
        let mut shard_builder = repo.treebuilder(Some(&shard)).expect("builder");
        edit(repo, &mut shard_builder);
        let shard_id = shard_builder.write().expect("write shard");
        let mut records_builder = repo.treebuilder(Some(&records)).expect("builder");
        records_builder
            .insert("000", shard_id, 0o040_000)
            .expect("insert");
        let records_id = records_builder.write().expect("write records");
        let mut top_builder = repo.treebuilder(Some(&top)).expect("builder");
        top_builder
            .insert(RECORDS_DIR, records_id, 0o040_000)
            .expect("insert");
        let tree = repo
            .find_tree(top_builder.write().expect("write top"))
            .expect("top");
        let sig = git2::Signature::now("t", "t@example.com").expect("sig");
        let id = repo
            .commit(None, &sig, &sig, "tamper", &tree, &[&head])
            .expect("commit");
        repo.reference(refname, id, true, "tamper").expect("move");
    }

    /// Segments change how the walk is split, never what it finds: on a history with a record
    /// changed, one removed, a foreign file and a record added out of order, every segment
    /// size reports the same problems in the same order as one serial walk.
    #[test]
    fn segmented_walks_report_what_a_serial_walk_reports() {
        let dir = tempfile::tempdir().expect("tmp");
        let repo = Repository::init(dir.path()).expect("init");
        let refname = "refs/heads/relgate/records";
        let signer = Signer::from_seed([3; 32]);
        let mut ledger = GitLedger::open(dir.path()).expect("ledger");
        let append = |ledger: &mut GitLedger| {
            ledger.append(&sample_input(), &signer).expect("append");
        };
        for _ in 0..5 {
            append(&mut ledger);
        }
        let names: Vec<String> = {
            let head = repo
                .find_reference(refname)
                .and_then(|r| r.peel_to_commit())
                .expect("head");
            let records = records_tree(&repo, &head.tree().expect("tree")).expect("records/");
            let shard = repo
                .find_tree(records.get_name("000").expect("shard").id())
                .expect("shard");
            shard
                .iter()
                .filter_map(|e| e.name().ok().map(str::to_owned))
                .collect()
        };
        // Record 2 changed, then record 3 removed, then a foreign file, then record 9 where 6
        // was due.
        tamper(&repo, refname, |r, b| {
            let blob = r.blob(b"changed").expect("blob");
            b.insert(&names[1], blob, 0o100_644).expect("insert");
        });
        tamper(&repo, refname, |_, b| {
            b.remove(&names[2]).expect("remove");
        });
        tamper(&repo, refname, |r, b| {
            let blob = r.blob(b"foreign").expect("blob");
            b.insert("notes.txt", blob, 0o100_644).expect("insert");
        });
        tamper(&repo, refname, |r, b| {
            let blob = r.blob(b"nine").expect("blob");
            b.insert("000009-x-1.dsse.json", blob, 0o100_644)
                .expect("insert");
        });
        let commits = 9;
        let serial = {
            let mut report = VerifyReport::new(String::new());
            check_history_in(&repo, refname, &mut report, usize::MAX);
            report
        };
        assert_eq!(serial.commits_checked, commits);
        let kinds: Vec<ProblemKind> = serial.problems.iter().map(|p| p.kind).collect();
        for kind in [
            ProblemKind::HistoryRecordChanged,
            ProblemKind::HistoryRecordRemoved,
            ProblemKind::HistoryUnexpectedFile,
            ProblemKind::HistoryOutOfOrder,
        ] {
            assert!(kinds.contains(&kind), "{kind:?} missing: {kinds:?}");
        }
        for segment in 1..=commits as usize {
            let mut report = VerifyReport::new(String::new());
            check_history_in(&repo, refname, &mut report, segment);
            assert_eq!(report.commits_checked, commits, "segment {segment}");
            // Whole problems: kind, severity, record (seq, file, commit) and message.
            let got: Vec<String> = report.problems.iter().map(|p| format!("{p:?}")).collect();
            let want: Vec<String> = serial.problems.iter().map(|p| format!("{p:?}")).collect();
            assert_eq!(got, want, "segment {segment}");
        }
    }
}
