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
//!
//! Layout: this file holds the vocabulary (options, errors, [`Change`], [`ChangeSet`]) and the
//! paths of a change; `range.rs` resolves `--base`/`--head` and their merge base; `diff.rs`
//! lists the changed paths; `tree.rs` writes a commit's tree out ([`HeadTree`]) and reads the
//! merge base for the rules of a change ([`MergeBase`]).

mod diff;
mod range;
mod tree;

use std::path::{Component, Path, PathBuf};

use git2::{ErrorCode, Oid, Repository};

use crate::manifest;
use crate::report::{ChangedRange, Removed};
use crate::workspace::{to_slash, GateRoot};

use diff::diff;
use range::{open_repository, Range};
use tree::write_tree;
pub use tree::{HeadTree, MergeBase};

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
