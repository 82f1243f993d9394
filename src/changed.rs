//! The git range of `--changed` (docs/changed.md): what a change is, in git terms.
//!
//! [`ChangeSet::compute`] resolves `--base` and `--head`, finds their merge base and diffs it
//! against head, like GitHub's three-dot pull-request diff, with renames followed. Without
//! `--head`, or with a `--head` naming the checked-out commit, the diff goes to the work tree
//! and index, so uncommitted (and untracked, not ignored) work counts: the gate reads the work
//! tree then, so it must select by it; and a developer runs this before committing, and the
//! pre-commit hook runs before the commit exists. Paths outside the gate root are dropped.
//! [`ChangeSet::materialize`] writes the tree of a `--head` other than the checked-out commit
//! out for the gate to read; [`MergeBase`] reads the merge base's tree for the rules of a
//! change and writes the gate root's subtree out.
//!
//! What the change selects (which manifests, which notes) and which rules judge it are the
//! gate's (`gate::select`, `gate::rules`): this module knows git, not the gate. Its errors
//! ([`ChangedError`]) are converted to the library's at that boundary.
//!
//! Invariants. Fail closed: a revision that does not resolve, a missing merge base (unrelated
//! histories, a shallow clone) or an unreadable repository is an error, never an empty or a
//! full range. A tree is written into a private temporary directory with its symlinks kept as
//! symlinks, so the gate's confinement still refuses those that lead out; entry names that
//! could leave the directory (`..`, `.git`, separators) are refused.

use std::path::{Component, Path, PathBuf};

use git2::{Delta, DiffFindOptions, DiffOptions, ErrorCode, ObjectType, Oid, Repository, Tree};

use crate::manifest;
use crate::report::{ChangedRange, Removed};
use crate::workspace::{to_slash, GateRoot};

/// `--changed` with its `--base` and `--head`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangedOptions {
    /// Base revision; default: the upstream of HEAD, else `origin/HEAD`, `main`, `master`,
    /// `origin/main`, `origin/master` (the first that resolves).
    pub base: Option<String>,
    /// Head revision; default: HEAD plus the uncommitted work-tree and index changes (which
    /// also count when this names the checked-out commit).
    pub head: Option<String>,
    /// `--rules`: whose configuration and policies decide (default: the merge base's).
    pub rules: Rules,
}

/// `--rules`: where the gate's own files (relgate.yaml, its policy directories) are read from
/// under `--changed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Rules {
    /// The merge base's: the change under check cannot edit the rules it is judged by (its
    /// edits take effect after merge).
    #[default]
    Base,
    /// The head's (the work tree's, or `--head`'s): to try a change to the rules locally.
    Head,
}

/// Why the change set could not be computed. Each message names what to do.
#[derive(Debug, thiserror::Error)]
pub enum ChangedError {
    #[error("--changed needs a git repository, and the gate root {root} is not in one ({message}); run it inside a clone, or name the manifests to check as PATH arguments")]
    NotARepository { root: String, message: String },
    #[error("--changed needs a work tree, and {0} is a bare repository")]
    Bare(String),
    #[error("{flag} {rev}: {message}; {hint}")]
    BadRevision {
        flag: &'static str,
        rev: String,
        message: String,
        hint: String,
    },
    #[error("--changed: HEAD has no commit yet, so there is nothing to compare with; commit first, or pass --base and --head")]
    UnbornHead,
    #[error("--changed: no base revision to compare with: tried {tried}; pass --base REV (e.g. --base origin/main after `git fetch origin main`), or set an upstream with `git branch --set-upstream-to origin/main`")]
    NoBase { tried: String },
    #[error("--changed: {base} and {head} have no merge base: {hint}")]
    NoMergeBase {
        base: String,
        head: String,
        hint: String,
    },
    #[error("--changed: the gate root {prefix} does not exist in {head}; check out that revision, or run from a gate root it has")]
    NoGateRootAtHead { prefix: String, head: String },
    #[error("--changed: cannot write the tree of {head} to a temporary directory: {message}")]
    Materialize { head: String, message: String },
    #[error("--changed: the merge base has {prefix}, so its directory is the gate root, but that directory cannot be used in the work tree ({message}); restore it, or pass --rules head to try the change's own rules")]
    NoBaseGateRoot { prefix: String, message: String },
    #[error("--changed: git: {context}: {message}")]
    Git { context: String, message: String },
}

impl ChangedError {
    fn git(context: impl Into<String>) -> impl FnOnce(git2::Error) -> Self {
        let context = context.into();
        move |err| Self::Git {
            context,
            message: err.message().to_string(),
        }
    }
}

/// How a path changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    Added,
    Modified,
    Renamed,
    Deleted,
}

/// One changed path, relative to the gate root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    /// The path at head; for a deletion, the deleted path.
    pub path: String,
    /// The path at the merge base, for a rename.
    pub old_path: Option<String>,
    /// The blob at the merge base (deletions and renames), for `removed[].previous_digest`.
    old_blob: Option<Oid>,
    /// Either side is not a plain file: a symlink, a submodule (gitlink) or a directory. What
    /// lies below such a path can change without any path below it being in the diff.
    pub not_a_file: bool,
}

/// The resolved range and the paths it changed inside the gate root.
#[derive(Debug, Clone)]
pub struct ChangeSet {
    pub range: ChangedRange,
    /// The head is not what is checked out: its files are read from its commit's tree
    /// ([`ChangeSet::materialize`]), not from the work tree.
    pub reads_commit: bool,
    /// Sorted by path.
    pub changes: Vec<Change>,
    /// The full ref name `--head` names, when it names a ref (for `context.git.ref`).
    head_ref: Option<String>,
    /// The repository's git directory, to reopen it.
    git_dir: PathBuf,
    /// The gate root in the work tree (canonical).
    work_root: PathBuf,
    /// The top of the work tree (canonical).
    work_top: PathBuf,
    /// The gate root relative to the work-tree top, `/`-separated ("" at the top).
    prefix: String,
}

/// The tree of a head commit, written out for the gate to read.
pub struct HeadTree {
    /// Removed (with the files) when dropped.
    _dir: tempfile::TempDir,
    /// The gate root inside it.
    pub root: PathBuf,
    /// The work-tree top inside it.
    pub top: PathBuf,
}

fn short(oid: Oid) -> String {
    oid.to_string().chars().take(12).collect()
}

/// A command-line path (relative to `cwd`) relative to `root`, `/`-separated; `None` when it
/// is outside. Existing paths are canonicalised (symlinks, `..`); others are cleaned lexically
/// (a deleted file has no canonical form).
pub fn command_line_rel(root: &Path, cwd: &Path, path: &Path) -> Option<String> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::fs::canonicalize(cwd)
            .unwrap_or_else(|_| cwd.to_path_buf())
            .join(path)
    };
    let absolute = std::fs::canonicalize(&absolute).unwrap_or_else(|_| lexically_clean(&absolute));
    absolute.strip_prefix(root).ok().map(to_slash)
}

impl ChangeSet {
    /// Resolves the range for the gate root `root` (in the work tree) and diffs it.
    pub fn compute(root: &GateRoot, options: &ChangedOptions) -> Result<Self, ChangedError> {
        let (repo, workdir) = open_repository(root)?;
        let prefix = root.dir.strip_prefix(&workdir).map(to_slash).map_err(|_| {
            ChangedError::NotARepository {
                root: root.dir.display().to_string(),
                message: format!("it is outside the work tree {}", workdir.display()),
            }
        })?;
        let Range {
            base,
            base_commit,
            head,
            head_commit,
            head_ref,
            work_tree,
            checked_out,
            merge_base,
        } = Range::resolve(&repo, options)?;

        let changes = diff(&repo, merge_base, head_commit, work_tree, &prefix)?;
        Ok(Self {
            range: ChangedRange {
                base,
                base_commit: base_commit.to_string(),
                merge_base: merge_base.to_string(),
                head,
                head_commit: head_commit.to_string(),
                work_tree,
            },
            reads_commit: !work_tree && checked_out != Some(head_commit),
            changes,
            head_ref,
            git_dir: repo.path().to_path_buf(),
            work_root: root.dir.clone(),
            work_top: workdir,
            prefix,
        })
    }

    /// "origin/main (merge base 1a2b3c4d5e6f) and the work tree on HEAD (9f8e7d6c5b4a)", or
    /// "... and feature (9f8e7d6c5b4a)" with `--head`.
    pub fn describe(&self) -> String {
        let r = &self.range;
        let oid = |text: &str| Oid::from_str(text).map(short).unwrap_or_default();
        format!(
            "{} (merge base {}) and {}{} ({})",
            r.base,
            oid(&r.merge_base),
            if r.work_tree { "the work tree on " } else { "" },
            r.head,
            oid(&r.head_commit),
        )
    }

    /// The full ref name `--head` names, when it names a ref (`context.git.ref` of a check of
    /// the head commit's tree).
    pub fn head_ref(&self) -> Option<&str> {
        self.head_ref.as_deref()
    }

    /// The gate root in the work tree (canonical).
    pub fn work_root(&self) -> &Path {
        &self.work_root
    }

    /// The top of the work tree (canonical).
    pub fn work_top(&self) -> &Path {
        &self.work_top
    }

    /// The gate root relative to the work-tree top, `/`-separated ("" at the top).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Writes the gate root's subtree of the head commit into a new temporary directory.
    /// Files are written as git stores them (no filters: an LFS file is its pointer);
    /// submodules are not entered.
    pub fn materialize(&self) -> Result<HeadTree, ChangedError> {
        let repo = Repository::open(&self.git_dir).map_err(ChangedError::git("reopening"))?;
        let oid = Oid::from_str(&self.range.head_commit)
            .map_err(ChangedError::git("reading the head commit"))?;
        write_tree(&repo, oid, &self.prefix, &self.range.head, "relgate-head-")
    }

    /// A command-line path of the work tree, as the same path in `tree`.
    pub fn map_to_tree(&self, tree: &HeadTree, cwd: &Path, path: &Path) -> PathBuf {
        match command_line_rel(&self.work_top, cwd, path) {
            Some(rel) => tree.top.join(rel),
            // Outside the repository: the path is read as given.
            None => path.to_path_buf(),
        }
    }

    /// The bytes of the file at `path` (relative to the work-tree top) in the merge base's
    /// tree, following symlinks inside the tree; `None` when there is no such file. An error
    /// (the message) when it cannot be read as a file.
    pub fn file_at_merge_base(
        &self,
        path: &str,
        max_bytes: u64,
    ) -> std::result::Result<Option<Vec<u8>>, String> {
        let repo = Repository::open(&self.git_dir).map_err(|e| e.message().to_string())?;
        let tree = Oid::from_str(&self.range.merge_base)
            .and_then(|oid| repo.find_commit(oid))
            .and_then(|commit| commit.tree())
            .map_err(|e| e.message().to_string())?;
        let mut path = path.to_string();
        // A bound on links to links (git's own is 40; a cycle must end).
        for _ in 0..40 {
            let entry = match tree.get_path(Path::new(&path)) {
                Ok(entry) => entry,
                Err(err) if err.code() == ErrorCode::NotFound => return Ok(None),
                Err(err) => return Err(err.message().to_string()),
            };
            let blob = match entry.filemode() {
                0o100_644 | 0o100_755 | 0o120_000 => repo
                    .find_blob(entry.id())
                    .map_err(|e| e.message().to_string())?,
                _ => return Err(format!("{path} is not a file there")),
            };
            if entry.filemode() != 0o120_000 {
                if blob.size() as u64 > max_bytes {
                    return Err(format!(
                        "{path} is larger than the limit of {max_bytes} bytes"
                    ));
                }
                return Ok(Some(blob.content().to_vec()));
            }
            let target = std::str::from_utf8(blob.content())
                .map_err(|_| format!("{path} is a symlink to a name that is not UTF-8"))?;
            let mut parts: Vec<&str> = path.split('/').collect();
            parts.pop();
            for component in Path::new(target).components() {
                match component {
                    Component::Normal(part) => {
                        parts.push(part.to_str().unwrap_or_default());
                    }
                    Component::CurDir => {}
                    Component::ParentDir if !parts.is_empty() => {
                        parts.pop();
                    }
                    _ => return Err(format!("{path} is a symlink leading out of the repository")),
                }
            }
            path = parts.join("/");
        }
        Err(format!("{path}: too many levels of symlinks"))
    }

    /// The `removed` entries of a report for deleted paths of this change: each with the
    /// sha256 of its content at the merge base, when it can be read.
    pub fn previous_digests(&self, removed: &[&Change]) -> Vec<Removed> {
        let repo = Repository::open(&self.git_dir).ok();
        removed
            .iter()
            .map(|change| Removed {
                file: change.path.clone(),
                previous_digest: change.old_blob.and_then(|oid| {
                    let repo = repo.as_ref()?;
                    let blob = repo.find_blob(oid).ok()?;
                    Some(manifest::sha256_digest(blob.content()))
                }),
            })
            .collect()
    }
}

/// Writes the subtree `prefix` of `commit` into a new temporary directory (named `label…`).
/// Files are written as git stores them (no filters: an LFS file is its pointer); submodules
/// are not entered; symlinks stay symlinks. `head` names the revision in errors.
fn write_tree(
    repo: &Repository,
    commit: Oid,
    prefix: &str,
    head: &str,
    label: &str,
) -> Result<HeadTree, ChangedError> {
    let head = head.to_string();
    let fail = |message: String| ChangedError::Materialize {
        head: head.clone(),
        message,
    };
    let mut tree = repo
        .find_commit(commit)
        .and_then(|c| c.tree())
        .map_err(ChangedError::git("reading the head tree"))?;
    if !prefix.is_empty() {
        let missing = || ChangedError::NoGateRootAtHead {
            prefix: prefix.to_string(),
            head: head.clone(),
        };
        let entry = tree.get_path(Path::new(prefix)).map_err(|_| missing())?;
        tree = entry
            .to_object(repo)
            .and_then(|o| o.peel_to_tree())
            .map_err(|_| missing())?;
    }
    let dir = tempfile::Builder::new()
        .prefix(label)
        .tempdir()
        .map_err(|e| fail(e.to_string()))?;
    let top = std::fs::canonicalize(dir.path()).map_err(|e| fail(e.to_string()))?;
    let root = top.join(prefix);
    std::fs::create_dir_all(&root).map_err(|e| fail(e.to_string()))?;
    // An explicit stack: a hostile tree can nest deeper than the call stack would like.
    let mut pending = vec![(tree.id(), root.clone())];
    while let Some((tree_id, dir_path)) = pending.pop() {
        let tree = repo
            .find_tree(tree_id)
            .map_err(ChangedError::git("reading a tree"))?;
        for entry in tree.iter() {
            let name = entry
                    .name()
                    .ok()
                    .filter(|n| is_safe_entry_name(n))
                    .ok_or_else(|| {
                        fail(format!(
                            "the tree holds an entry named {:?} under {}, which is not a safe file name",
                            String::from_utf8_lossy(entry.name_bytes()),
                            dir_path.display()
                        ))
                    })?;
            let path = dir_path.join(name);
            match entry.kind() {
                Some(ObjectType::Tree) => {
                    std::fs::create_dir(&path)
                        .map_err(|e| fail(format!("{}: {e}", path.display())))?;
                    pending.push((entry.id(), path));
                }
                Some(ObjectType::Blob) => {
                    let blob = repo
                        .find_blob(entry.id())
                        .map_err(ChangedError::git("reading a file"))?;
                    write_blob(&path, blob.content(), entry.filemode() == 0o120_000)
                        .map_err(|e| fail(format!("{}: {e}", path.display())))?;
                }
                // A submodule (a commit entry): not part of this repository's files.
                _ => {}
            }
        }
    }
    Ok(HeadTree {
        _dir: dir,
        root,
        top,
    })
}

/// An empty temporary tree whose gate root is `prefix` (for a gate root the merge base lacks).
fn empty_tree(prefix: &str, head: &str) -> Result<HeadTree, ChangedError> {
    let fail = |message: String| ChangedError::Materialize {
        head: head.to_string(),
        message,
    };
    let dir = tempfile::Builder::new()
        .prefix("relgate-base-")
        .tempdir()
        .map_err(|e| fail(e.to_string()))?;
    let top = std::fs::canonicalize(dir.path()).map_err(|e| fail(e.to_string()))?;
    let root = top.join(prefix);
    std::fs::create_dir_all(&root).map_err(|e| fail(e.to_string()))?;
    Ok(HeadTree {
        _dir: dir,
        root,
        top,
    })
}

/// Git forbids these in trees; a crafted tree may still hold them.
fn is_safe_entry_name(name: &str) -> bool {
    !(name.is_empty()
        || name == "."
        || name == ".."
        || name.eq_ignore_ascii_case(".git")
        || name.contains(['/', '\\', '\0']))
}

fn write_blob(path: &Path, content: &[u8], symlink: bool) -> std::io::Result<()> {
    if symlink {
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt as _;
            return std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(content), path);
        }
        // Elsewhere the link is not written: whatever reads through it finds no file.
        #[cfg(not(unix))]
        return Ok(());
    }
    std::fs::write(path, content)
}

/// The repository holding the gate root `root` and its work-tree top (canonical).
fn open_repository(root: &GateRoot) -> Result<(Repository, PathBuf), ChangedError> {
    let repo = Repository::discover(&root.dir).map_err(|err| ChangedError::NotARepository {
        root: root.dir.display().to_string(),
        message: err.message().to_string(),
    })?;
    let workdir = repo
        .workdir()
        .ok_or_else(|| ChangedError::Bare(repo.path().display().to_string()))?;
    let workdir = std::fs::canonicalize(workdir).unwrap_or_else(|_| workdir.to_path_buf());
    Ok((repo, workdir))
}

/// `--base` and `--head` resolved, and their merge base.
struct Range {
    base: String,
    base_commit: Oid,
    head: String,
    head_commit: Oid,
    head_ref: Option<String>,
    work_tree: bool,
    checked_out: Option<Oid>,
    merge_base: Oid,
}

impl Range {
    fn resolve(repo: &Repository, options: &ChangedOptions) -> Result<Self, ChangedError> {
        let checked_out = match repo.head() {
            Ok(head) => Some(
                head.peel_to_commit()
                    .map_err(ChangedError::git("reading HEAD"))?
                    .id(),
            ),
            Err(err)
                if err.code() == ErrorCode::UnbornBranch || err.code() == ErrorCode::NotFound =>
            {
                None
            }
            Err(err) => return Err(ChangedError::git("reading HEAD")(err)),
        };
        let (head, head_commit, head_ref, work_tree) = match &options.head {
            None => (
                "HEAD".to_string(),
                checked_out.ok_or(ChangedError::UnbornHead)?,
                None,
                true,
            ),
            Some(rev) => {
                let commit = resolve(repo, "--head", rev)?;
                let head_ref = repo
                    .resolve_reference_from_short_name(rev)
                    .ok()
                    .and_then(|r| r.name().ok().map(str::to_string));
                // The checked-out commit's files are read from the work tree, so its
                // uncommitted changes must be in the diff too: otherwise a manifest edited on
                // disk is read for the check but never selected by it.
                let work_tree = checked_out == Some(commit);
                (rev.clone(), commit, head_ref, work_tree)
            }
        };
        let (base, base_commit) = match &options.base {
            Some(rev) => (rev.clone(), resolve(repo, "--base", rev)?),
            None => default_base(repo)?,
        };
        let merge_base = match repo.merge_base(base_commit, head_commit) {
            Ok(oid) => oid,
            Err(err) if err.code() == ErrorCode::NotFound => {
                let hint = if repo.is_shallow() {
                    "this clone is shallow, so the history that joins them was not fetched; \
                     fetch it (`git fetch --unshallow`, or `fetch-depth: 0` in actions/checkout)"
                        .to_string()
                } else {
                    format!(
                        "they share no history (unrelated histories); pass a --base that {head} \
                         branched from"
                    )
                };
                return Err(ChangedError::NoMergeBase { base, head, hint });
            }
            Err(err) => return Err(ChangedError::git("finding the merge base")(err)),
        };
        Ok(Self {
            base,
            base_commit,
            head,
            head_commit,
            head_ref,
            work_tree,
            checked_out,
            merge_base,
        })
    }
}

/// A revision's commit, or an error saying how to make it resolve.
fn resolve(repo: &Repository, flag: &'static str, rev: &str) -> Result<Oid, ChangedError> {
    let bad = |message: String| ChangedError::BadRevision {
        flag,
        rev: rev.to_string(),
        message,
        hint: fetch_hint(repo, rev),
    };
    let object = repo
        .revparse_single(rev)
        .map_err(|err| bad(format!("no such revision here ({})", err.message())))?;
    object.peel_to_commit().map(|c| c.id()).map_err(|_| {
        bad(format!(
            "names a {}, not a commit",
            object.kind().map_or("object", |k| k.str())
        ))
    })
}

fn fetch_hint(repo: &Repository, rev: &str) -> String {
    let remote_branch = rev.split_once('/').filter(|(remote, _)| {
        repo.remotes()
            .map(|names| names.iter().flatten().any(|n| n == Some(*remote)))
            .unwrap_or(false)
    });
    let fetch = match remote_branch {
        Some((remote, branch)) => format!("fetch it with `git fetch {remote} {branch}`"),
        None => "name a branch, tag or commit of this repository (`git rev-parse --verify REV` \
                 must succeed); fetch a remote branch first, e.g. `git fetch origin main` and \
                 name it origin/main"
            .to_string(),
    };
    if repo.is_shallow() {
        format!(
            "{fetch}; this clone is shallow: in GitHub Actions set `fetch-depth: 0` on \
             actions/checkout"
        )
    } else {
        fetch
    }
}

/// The default base: the upstream of the checked-out branch, else the first of `origin/HEAD`,
/// `main`, `master`, `origin/main`, `origin/master` that resolves.
fn default_base(repo: &Repository) -> Result<(String, Oid), ChangedError> {
    let mut tried = Vec::new();
    if let Ok(head) = repo.head() {
        if head.is_branch() {
            if let Ok(name) = head.shorthand() {
                match repo
                    .find_branch(name, git2::BranchType::Local)
                    .and_then(|b| b.upstream())
                {
                    Ok(upstream) => {
                        let label = upstream
                            .name()
                            .ok()
                            .flatten()
                            .unwrap_or("the upstream")
                            .to_string();
                        if let Ok(commit) = upstream.get().peel_to_commit() {
                            return Ok((label, commit.id()));
                        }
                        tried.push(label);
                    }
                    Err(_) => tried.push(format!("the upstream of {name} (none)")),
                }
            }
        }
    }
    for candidate in [
        "origin/HEAD",
        "main",
        "master",
        "origin/main",
        "origin/master",
    ] {
        if let Ok(commit) = repo
            .revparse_single(candidate)
            .and_then(|o| o.peel_to_commit())
        {
            return Ok((candidate.to_string(), commit.id()));
        }
        tried.push(candidate.to_string());
    }
    Err(ChangedError::NoBase {
        tried: tried.join(", "),
    })
}

/// The changed paths between the merge base and head (or the work tree), inside `prefix`,
/// relative to it.
fn diff(
    repo: &Repository,
    merge_base: Oid,
    head: Oid,
    work_tree: bool,
    prefix: &str,
) -> Result<Vec<Change>, ChangedError> {
    let base_tree = repo
        .find_commit(merge_base)
        .and_then(|c| c.tree())
        .map_err(ChangedError::git("reading the merge base"))?;
    let mut options = DiffOptions::new();
    options.include_typechange(true);
    if !prefix.is_empty() {
        options.pathspec(prefix).disable_pathspec_match(true);
    }
    let mut diff = if work_tree {
        options.include_untracked(true).recurse_untracked_dirs(true);
        repo.diff_tree_to_workdir_with_index(Some(&base_tree), Some(&mut options))
            .map_err(ChangedError::git(
                "comparing the merge base with the work tree",
            ))?
    } else {
        let head_tree = repo
            .find_commit(head)
            .and_then(|c| c.tree())
            .map_err(ChangedError::git("reading the head commit"))?;
        repo.diff_tree_to_tree(Some(&base_tree), Some(&head_tree), Some(&mut options))
            .map_err(ChangedError::git("comparing the merge base with head"))?
    };
    let mut find = DiffFindOptions::new();
    find.renames(true).for_untracked(true);
    diff.find_similar(Some(&mut find))
        .map_err(ChangedError::git("finding renames"))?;

    let inside = |path: Option<&Path>| -> Option<String> {
        let path = to_slash(path?);
        if prefix.is_empty() {
            Some(path)
        } else {
            path.strip_prefix(prefix)?
                .strip_prefix('/')
                .map(str::to_string)
        }
    };
    let mut changes = Vec::new();
    for delta in diff.deltas() {
        let old = inside(delta.old_file().path());
        let new = inside(delta.new_file().path());
        let old_blob = Some(delta.old_file().id()).filter(|oid| !oid.is_zero());
        let change = |kind, path: String, old_path: Option<String>, old_blob| Change {
            kind,
            path,
            old_path,
            old_blob,
            not_a_file: false,
        };
        let found = match delta.status() {
            Delta::Added | Delta::Untracked | Delta::Copied => {
                new.map(|p| change(ChangeKind::Added, p, None, None))
            }
            // A conflicted or unreadable file is read by the gate like any changed one; the
            // gate then reports what it finds (or cannot read).
            Delta::Modified | Delta::Typechange | Delta::Conflicted | Delta::Unreadable => {
                new.map(|p| change(ChangeKind::Modified, p, None, None))
            }
            Delta::Deleted => old.map(|p| change(ChangeKind::Deleted, p, None, old_blob)),
            Delta::Renamed => match (old, new) {
                (Some(old), Some(new)) => {
                    Some(change(ChangeKind::Renamed, new, Some(old), old_blob))
                }
                (Some(old), None) => Some(change(ChangeKind::Deleted, old, None, old_blob)),
                (None, Some(new)) => Some(change(ChangeKind::Added, new, None, None)),
                (None, None) => None,
            },
            Delta::Unmodified | Delta::Ignored => None,
        };
        changes.extend(found);
    }
    changes.sort_by(|a, b| (&a.path, a.kind).cmp(&(&b.path, b.kind)));
    changes.dedup_by(|a, b| a.path == b.path && a.kind == b.kind);

    // Whether each side is a symlink, a submodule or a directory, from the trees (whose
    // `filemode` is normalised; the diff's own mode accessor panics on the odd modes old or
    // crafted trees hold) and, for the work tree, from the file system.
    let head_tree = if work_tree {
        None
    } else {
        Some(
            repo.find_commit(head)
                .and_then(|c| c.tree())
                .map_err(ChangedError::git("reading the head commit"))?,
        )
    };
    let top = repo.workdir().map(Path::to_path_buf);
    let in_tree = |path: &str| -> String {
        if prefix.is_empty() {
            path.to_string()
        } else {
            format!("{prefix}/{path}")
        }
    };
    for change in &mut changes {
        let old = change.old_path.as_deref().unwrap_or(&change.path);
        let old_special = not_a_file_in(&base_tree, &in_tree(old));
        let new_special = match (&head_tree, &top) {
            (Some(tree), _) => not_a_file_in(tree, &in_tree(&change.path)),
            (None, Some(top)) => std::fs::symlink_metadata(top.join(in_tree(&change.path)))
                .is_ok_and(|m| !m.file_type().is_file()),
            (None, None) => false,
        };
        change.not_a_file = old_special || new_special;
    }
    Ok(changes)
}

/// Whether `path` is in `tree` as something other than a plain file (symlink, submodule,
/// directory).
fn not_a_file_in(tree: &Tree<'_>, path: &str) -> bool {
    tree.get_path(Path::new(path))
        .is_ok_and(|entry| !matches!(entry.filemode(), 0o100_644 | 0o100_755 | 0o100_664))
}

/// `path` with `.` dropped and each `..` removing the component before it, without touching
/// the file system (for paths that may not exist).
pub fn lexically_clean(path: &Path) -> PathBuf {
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                clean.pop();
            }
            Component::CurDir => {}
            other => clean.push(other),
        }
    }
    clean
}

/// The merge base of a `--changed` range, opened to read the gate's own files from it: the
/// rules of a change are the merge base's (`gate::rules`).
pub struct MergeBase {
    repo: Repository,
    oid: Oid,
    /// The top of the work tree (canonical).
    pub workdir: PathBuf,
}

impl MergeBase {
    /// Resolves the range of `options` from the repository holding `root` (in the work tree)
    /// and opens its merge base.
    pub fn resolve(root: &GateRoot, options: &ChangedOptions) -> Result<Self, ChangedError> {
        let (repo, workdir) = open_repository(root)?;
        let oid = Range::resolve(&repo, options)?.merge_base;
        // Read once here, so a merge base whose tree cannot be read is an error now rather
        // than a file that looks absent later.
        repo.find_commit(oid)
            .and_then(|c| c.tree())
            .map_err(ChangedError::git("reading the merge base"))?;
        Ok(Self { repo, oid, workdir })
    }

    /// The merge-base commit (hex).
    pub fn commit(&self) -> String {
        self.oid.to_string()
    }

    /// The file mode and kind of `rel` (relative to the work-tree top) in the merge base's
    /// tree, `None` when it has no such entry. A tree that cannot be read is an error, not an
    /// absent file: "no relgate.yaml at the merge base" would let the head's rules decide.
    fn entry(&self, rel: &str) -> Result<Option<(i32, Option<ObjectType>)>, ChangedError> {
        let tree = self
            .repo
            .find_commit(self.oid)
            .and_then(|c| c.tree())
            .map_err(ChangedError::git("reading the merge base"))?;
        let entry = tree.get_path(Path::new(rel)).ok();
        Ok(entry.map(|entry| (entry.filemode(), entry.kind())))
    }

    /// Whether the merge base has `rel` as a file (or a symlink, which the gate then reads in
    /// the written tree, confined).
    pub fn has_file(&self, rel: &str) -> Result<bool, ChangedError> {
        Ok(self
            .entry(rel)?
            .is_some_and(|(mode, _)| matches!(mode, 0o100_644 | 0o100_755 | 0o100_664 | 0o120_000)))
    }

    /// Writes the subtree `prefix` of the merge base into a new temporary directory; an empty
    /// one when the merge base has no such directory (the gate root is new with the change).
    pub fn write_subtree(&self, prefix: &str) -> Result<HeadTree, ChangedError> {
        let commit = self.commit();
        let is_dir = prefix.is_empty()
            || self
                .entry(prefix)?
                .is_some_and(|(_, kind)| kind == Some(ObjectType::Tree));
        if is_dir {
            write_tree(&self.repo, self.oid, prefix, &commit, "relgate-base-")
        } else {
            empty_tree(prefix, &commit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_tree_names_are_refused() {
        for name in ["", ".", "..", ".git", ".GIT", "a/b", "a\\b"] {
            assert!(!is_safe_entry_name(name), "{name:?}");
        }
        assert!(is_safe_entry_name(".relgate"));
    }
}
