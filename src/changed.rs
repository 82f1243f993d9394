//! `--changed`: which release manifests a git change touches (docs/changed.md).
//!
//! [`ChangeSet::compute`] resolves `--base` and `--head`, finds their merge base and diffs it
//! against head, like GitHub's three-dot pull-request diff, with renames followed. Without
//! `--head`, or with a `--head` naming the checked-out commit, the diff goes to the work tree
//! and index, so uncommitted (and untracked, not ignored) work counts: the gate reads the work
//! tree then, so it must select by it; and a developer runs this before committing, and the
//! pre-commit hook runs before the commit exists. Paths outside the gate root are dropped.
//!
//! [`check`] then selects, among the candidates — the manifests the normal discovery finds at
//! head (the config's `manifests` globs, or the PATH arguments) together with those the
//! `manifests` globs of the merge base's configuration find, since the change under check can
//! edit `relgate.yaml` itself:
//! - those added, modified or renamed by the change;
//! - those that reference a changed file: evaluation outputs, baselines, the prompt template,
//!   SLO `file` sources, the rollback runbook, repo-relative PRR evidence;
//! - all of them when `relgate.yaml`, a `.rego` file of a policy directory, or a `--config`,
//!   `--policy` or `--data` input changed (any decision can change). Over no candidate at all
//!   that is an error, like a plain check that finds no manifest.
//!
//! A path is changed when the diff names it or a directory above it ([`Touched`]): git records
//! a directory symlink or a submodule as one entry, whose retargeting changes every file below
//! it. Policy directories and config files are compared as written and by their real paths.
//!
//! Deleted manifests (under either configuration's globs) are not checked; the report lists
//! them as `removed`. A manifest renamed out of the manifest set is an error, not a removal:
//! the release would otherwise leave the gate by a rename (`x.yaml` -> `x.yml`).
//!
//! The rules ([`plan_rules`]): with `--rules base` (the default) the configuration and policy
//! directories are the merge base's, written out of git into a private temporary directory, so
//! the change under check cannot edit what judges it; the gate root is where the merge base
//! has `relgate.yaml`, so it cannot move the root either. [`check`] then adds a
//! `GATE-CONFIG-CHANGED` warning to every checked manifest listing what the change's own
//! configuration and policies would change once merged. A base without `relgate.yaml` whose
//! head adds one is the change that adopts relgate: the head's rules, with a note.
//!
//! Invariants. Fail closed: a revision that does not resolve, a missing merge base (unrelated
//! histories, a shallow clone) or an unreadable repository is an error, never an empty or a
//! full check; a manifest that cannot be parsed to see what it references is checked. Nothing
//! outside the gate root is read: references are confined as the gate confines them, and the
//! tree of a `--head` other than the checked-out commit is written into a private temporary
//! directory with its symlinks kept as symlinks, so confinement still refuses those that lead
//! out.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use git2::{Delta, DiffFindOptions, DiffOptions, ErrorCode, ObjectType, Oid, Repository, Tree};
use serde_json::{json, Value};

use crate::error::Result;
use crate::gate::{CheckSettings, Gate};
use crate::manifest;
use crate::report::{ChangedRange, Decision, Finding, ManifestResult, Removed, Report};

/// Rule id of the warning that a change edits the gate's own files (docs/changed.md).
pub const GATE_CONFIG_CHANGED: &str = "GATE-CONFIG-CHANGED";
use crate::workspace::{self, to_slash, Discovered, GateRoot, CONFIG_FILE};

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

/// Where a run's rules come from, decided before the gate opens.
pub enum RulesPlan {
    /// The checked files' own configuration and policies, with why (a note), if not plain.
    Head { note: Option<String> },
    /// The merge base's.
    Base(BaseRules),
}

/// The merge base's gate-root subtree, written out to read its configuration and policies.
pub struct BaseRules {
    /// The merge-base commit.
    pub commit: String,
    /// The subtree; [`HeadTree::root`] is the base's gate root.
    pub tree: HeadTree,
    /// `--config` as the same file in the written tree.
    pub config: Option<PathBuf>,
    /// A note when the head would find another gate root (a nearer or removed relgate.yaml).
    pub note: Option<String>,
}

/// Decides where the rules of a `--changed` run come from, and the gate root in the work tree.
///
/// With `--rules base` (the default) the gate root is the nearest directory at or above
/// `start` that holds relgate.yaml **at the merge base** (or the parent of `--config` when the
/// merge base has that file): a change cannot move the gate root by adding a nearer
/// relgate.yaml or deleting one. When the merge base has no configuration there, the change
/// introduces relgate: the head's rules are used, with a note. A `--config` outside the
/// repository is the operator's: read as given.
pub fn plan_rules(
    head_root: GateRoot,
    start: &Path,
    config: Option<&Path>,
    cwd: &Path,
    options: &ChangedOptions,
) -> Result<(GateRoot, RulesPlan), ChangedError> {
    if options.rules == Rules::Head {
        return Ok((
            head_root,
            RulesPlan::Head {
                note: Some(
                    "rules: the head's relgate.yaml and policies (--rules head): the change \
                     under check is judged by its own version of them"
                        .to_string(),
                ),
            },
        ));
    }
    let (repo, workdir) = open_repository(&head_root)?;
    let range = Range::resolve(&repo, options)?;
    let tree = repo
        .find_commit(range.merge_base)
        .and_then(|c| c.tree())
        .map_err(ChangedError::git("reading the merge base"))?;
    let has_file = |rel: &str| {
        tree.get_path(Path::new(rel))
            .is_ok_and(|e| matches!(e.filemode(), 0o100_644 | 0o100_755 | 0o100_664 | 0o120_000))
    };
    let join = |dir: &str, name: &str| {
        if dir.is_empty() {
            name.to_string()
        } else {
            format!("{dir}/{name}")
        }
    };
    let first_adoption = |shown: &str| RulesPlan::Head {
        note: Some(format!(
            "the base has no {shown}; the head's rules were used (first adoption)"
        )),
    };
    let (prefix, config_rel) = match config {
        Some(config) => match command_line_rel(&workdir, cwd, config) {
            None => {
                return Ok((
                    head_root,
                    RulesPlan::Head {
                        note: Some(format!(
                            "rules: --config {} is outside the repository, so it and the \
                             policy directories it names are read as given",
                            config.display()
                        )),
                    },
                ))
            }
            Some(rel) if has_file(&rel) => {
                let parent = rel.rsplit_once('/').map_or("", |(dir, _)| dir).to_string();
                (parent, Some(rel))
            }
            Some(rel) => return Ok((head_root, first_adoption(&rel))),
        },
        None => {
            let start = std::fs::canonicalize(start).unwrap_or_else(|_| start.to_path_buf());
            let start = if start.is_dir() {
                start
            } else {
                start.parent().map(Path::to_path_buf).unwrap_or(start)
            };
            let Some(rel_start) = start.strip_prefix(&workdir).ok().map(to_slash) else {
                return Ok((head_root, first_adoption(CONFIG_FILE)));
            };
            let mut dir = Some(rel_start.as_str());
            let mut found = None;
            while let Some(at) = dir {
                if has_file(&join(at, CONFIG_FILE)) {
                    found = Some(at.to_string());
                    break;
                }
                dir = match at.rsplit_once('/') {
                    Some((up, _)) => Some(up),
                    None if at.is_empty() => None,
                    None => Some(""),
                };
            }
            match found {
                Some(prefix) => (prefix, None),
                // The change adds relgate.yaml: it introduces relgate, and its rules are all
                // there is to judge it by.
                None if std::fs::symlink_metadata(head_root.dir.join(CONFIG_FILE)).is_ok() => {
                    return Ok((head_root, first_adoption(CONFIG_FILE)))
                }
                // Neither side has one: the built-in defaults decide, with the merge base's
                // `.relgate/policies` (a change cannot add an exception there either).
                None => match head_root.dir.strip_prefix(&workdir) {
                    Ok(rel) => (to_slash(rel), None),
                    Err(_) => return Ok((head_root, first_adoption(CONFIG_FILE))),
                },
            }
        }
    };
    let in_work_tree = workdir.join(&prefix);
    let root = GateRoot::at(&in_work_tree).map_err(|err| ChangedError::NoBaseGateRoot {
        prefix: join(&prefix, CONFIG_FILE),
        message: err.to_string(),
    })?;
    let note = (root.dir != head_root.dir).then(|| {
        format!(
            "the gate root is {} (where the merge base has {}), not {} as the head's files \
             would have it: a change cannot move the gate root; its own relgate.yaml takes \
             effect after merge",
            shown_dir(&prefix),
            join(&prefix, CONFIG_FILE),
            head_root
                .dir
                .strip_prefix(&workdir)
                .map(|rel| shown_dir(&to_slash(rel)))
                .unwrap_or_else(|_| head_root.dir.display().to_string()),
        )
    });
    let written = if prefix.is_empty()
        || tree
            .get_path(Path::new(&prefix))
            .is_ok_and(|e| e.kind() == Some(ObjectType::Tree))
    {
        write_tree(
            &repo,
            range.merge_base,
            &prefix,
            &range.merge_base.to_string(),
            "relgate-base-",
        )?
    } else {
        // The gate root is new with the change: the merge base has nothing of it (defaults).
        empty_tree(&prefix, &range.merge_base.to_string())?
    };
    let config = config_rel.map(|rel| written.top.join(rel));
    Ok((
        root,
        RulesPlan::Base(BaseRules {
            commit: range.merge_base.to_string(),
            tree: written,
            config,
            note,
        }),
    ))
}

/// A work-tree-relative directory as a reader sees it.
fn shown_dir(prefix: &str) -> String {
    if prefix.is_empty() {
        "the top of the repository".to_string()
    } else {
        format!("{prefix}/")
    }
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

/// A path written in a manifest or the config as a normalised gate-relative path (`.`
/// segments dropped), or `None` for an absolute path or one with `..` (the gate refuses those
/// anyway, whatever changed).
fn normalize(written: &str) -> Option<String> {
    let path = Path::new(written);
    if path.is_absolute() || written.starts_with('\\') {
        return None;
    }
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

/// A command-line path (relative to `cwd`) relative to `root`, `/`-separated; `None` when it
/// is outside. Existing paths are canonicalised (symlinks, `..`); others are cleaned lexically
/// (a deleted file has no canonical form).
fn command_line_rel(root: &Path, cwd: &Path, path: &Path) -> Option<String> {
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

/// Whether `path` is `dir` or below it (`dir` "" is the gate root).
fn is_under(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path == dir
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn is_yaml(path: &str) -> bool {
    path.ends_with(".yaml") || path.ends_with(".yml")
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

    /// `context.git` of a check of the head commit's tree.
    pub fn git_context(&self) -> Value {
        json!({"commit": self.range.head_commit, "ref": self.head_ref})
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
    fn file_at_merge_base(
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

    fn previous_digests(&self, removed: &[(String, Option<Oid>)]) -> Vec<Removed> {
        let repo = Repository::open(&self.git_dir).ok();
        removed
            .iter()
            .map(|(file, blob)| Removed {
                file: file.clone(),
                previous_digest: blob.and_then(|oid| {
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

/// A string at a JSON pointer.
fn at<'v>(value: &'v Value, pointer: &str) -> Option<&'v str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// Every path a manifest document names that the gate (or a reviewer) reads from the
/// repository, as written.
fn referenced_paths(manifest: &Value) -> Vec<&str> {
    let list = |pointer: &str| {
        manifest
            .pointer(pointer)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
    };
    let mut found: Vec<&str> = [
        "/spec/prompt/path",
        "/spec/prompt/baseline/path",
        "/spec/model/baseline/path",
        "/spec/rollback/runbook",
    ]
    .into_iter()
    .filter_map(|pointer| at(manifest, pointer))
    .collect();
    // The released artifact named by `uri` (a prompt without `path`, a model): the gate
    // digest-checks it when it is a repository path (`gate::repository_path`), so an edit to
    // that file must re-check the release, or swapping the prompt without re-pinning passes.
    for pointer in ["/spec/prompt/uri", "/spec/model/uri"] {
        found.extend(at(manifest, pointer).and_then(crate::gate::repository_path));
    }
    for evaluation in list("/spec/evaluations") {
        found.extend(at(evaluation, "/candidate/path"));
        found.extend(at(evaluation, "/baseline/path"));
    }
    for slo in list("/spec/slo") {
        found.extend(at(slo, "/source/file/path"));
    }
    for item in manifest
        .pointer("/spec/prr")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|items| items.values())
    {
        // Evidence is a URL or a repo-relative path; only the latter can change here.
        found.extend(at(item, "/evidence").filter(|e| !e.contains("://")));
    }
    found
}

/// The gate-relative paths a manifest file references: each as written (normalised) and, when
/// it resolves inside the gate root, as its real path (a symlink's target).
fn references(gate: &Gate, path: &Path, shown: &str) -> std::result::Result<Vec<String>, ()> {
    let source = manifest::read_limited(path, shown, gate.config.max_file_bytes).map_err(|_| ())?;
    let documents = manifest::parse_documents(&source).map_err(|_| ())?;
    let mut found = Vec::new();
    for document in &documents {
        for written in referenced_paths(&document.value) {
            if let Some(normal) = normalize(written) {
                found.push(normal);
            }
            if let Ok(real) = gate.root.confine(written) {
                found.push(gate.root.relative(&real));
            }
        }
    }
    // First seen first: a note then names the path as written before its real path.
    let mut seen = BTreeSet::new();
    found.retain(|path| seen.insert(path.clone()));
    Ok(found)
}

/// What the change touched, to ask "did this path, or a directory above it, change?".
///
/// A path is changed when the diff names it or a directory above it: git records a directory
/// symlink or a submodule as one entry, so retargeting `prompts -> prompts-v2` or moving the
/// submodule `prompts` changes every file below `prompts` without naming any of them. The real
/// path (inside the gate root) of each changed symlink at head counts as changed too, so files
/// reached through the link's target are covered under their real names as well.
struct Touched {
    /// Changed path (both sides of a rename) -> whether it may hold files (not a plain file).
    paths: std::collections::BTreeMap<String, bool>,
}

impl Touched {
    fn new(gate: &Gate, set: &ChangeSet) -> Self {
        let mut paths = std::collections::BTreeMap::new();
        for change in &set.changes {
            for path in std::iter::once(&change.path).chain(&change.old_path) {
                *paths.entry(path.clone()).or_insert(false) |= change.not_a_file;
            }
            if change.kind == ChangeKind::Deleted {
                continue;
            }
            let at_head = gate.root.dir.join(&change.path);
            let is_link =
                std::fs::symlink_metadata(&at_head).is_ok_and(|m| m.file_type().is_symlink());
            if !is_link {
                continue;
            }
            // A link leading out of the gate root is refused wherever it is read; only its
            // name matters here.
            if let Ok(real) = std::fs::canonicalize(&at_head) {
                if let Ok(rel) = real.strip_prefix(&gate.root.dir) {
                    *paths.entry(to_slash(rel)).or_insert(false) |= real.is_dir();
                }
            }
        }
        Self { paths }
    }

    /// The changed path that is `path` or a directory above it ("" when a link to the gate
    /// root itself changed).
    fn covering<'t>(&'t self, path: &str) -> Option<&'t str> {
        let mut end = Some(path.len());
        while let Some(at) = end {
            let prefix = path.get(..at).unwrap_or_default();
            if let Some((found, _)) = self.paths.get_key_value(prefix) {
                return Some(found);
            }
            end = prefix.rfind('/');
        }
        self.paths
            .get_key_value("")
            .map(|(found, _)| found.as_str())
    }
}

/// A path as the real path of what it names, relative to `root`, when it exists inside it.
fn real_rel(root: &Path, path: &Path) -> Option<String> {
    let real = std::fs::canonicalize(path).ok()?;
    real.strip_prefix(root).ok().map(to_slash)
}

/// A command-line path relative to `root`: as written (cleaned lexically) and as its real
/// path; empty when it is outside.
/// `path` with `.` dropped and each `..` removing the component before it, without touching
/// the file system (for paths that may not exist).
fn lexically_clean(path: &Path) -> PathBuf {
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

fn command_line_forms(root: &Path, cwd: &Path, path: &Path) -> Vec<String> {
    let cwd = std::fs::canonicalize(cwd).unwrap_or_else(|_| cwd.to_path_buf());
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    };
    let clean = lexically_clean(&absolute);
    let mut forms: Vec<String> = clean
        .strip_prefix(root)
        .ok()
        .map(to_slash)
        .into_iter()
        .collect();
    forms.extend(real_rel(root, &absolute));
    forms.dedup();
    forms
}

/// The changed inputs of every decision (config, policies, data): `(changed path, what it
/// is)`, sorted by path. A file input is changed when the diff names it or a directory above
/// it; a policy directory when the diff names a directory above it, the directory itself, or a
/// `.rego` file (or a link or submodule) inside it. Each is compared as written and as its real
/// path, so `teampol -> shared/pol` is changed by an edit to `shared/pol/deny.rego`.
fn gate_inputs_changed(
    gate: &Gate,
    settings: &CheckSettings,
    set: &ChangeSet,
    touched: &Touched,
) -> Vec<(String, &'static str)> {
    // (forms of the path relative to the gate root, is a directory of .rego files, what it is)
    let mut watched: Vec<(Vec<String>, bool, &'static str)> = Vec::new();
    let root = &gate.root.dir;
    let gate_forms = |rel: String| -> Vec<String> {
        let mut forms: Vec<String> = real_rel(root, &root.join(&rel)).into_iter().collect();
        forms.push(rel);
        forms
    };
    watched.push((
        gate_forms(CONFIG_FILE.to_string()),
        false,
        "the gate configuration",
    ));
    if let Some(file) = gate.config.file.as_deref().and_then(normalize) {
        watched.push((gate_forms(file), false, "the gate configuration"));
    }
    // Both sides' policy directories: with the merge base's rules, the head's configuration
    // can name new ones.
    let head_policies = gate.rules.head_config.iter().flat_map(|c| &c.policies);
    for dir in gate.config.policies.iter().chain(head_policies) {
        if let Some(dir) = normalize(dir) {
            watched.push((gate_forms(dir), true, "a policy directory of relgate.yaml"));
        }
    }
    let command_line = |p: &PathBuf| command_line_forms(&set.work_root, &settings.cwd, p);
    if let Some(config) = settings.config.as_ref() {
        watched.push((command_line(config), false, "the --config file"));
    }
    for dir in &settings.policy_dirs {
        watched.push((command_line(dir), true, "a --policy directory"));
    }
    for file in &settings.data_files {
        watched.push((command_line(file), false, "a --data file"));
    }
    let mut hits: Vec<(String, &'static str)> = touched
        .paths
        .iter()
        .filter_map(|(path, holds_files)| {
            watched.iter().find_map(|(forms, is_dir, what)| {
                let hit = forms.iter().any(|input| {
                    is_under(input, path)
                        || (*is_dir
                            && is_under(path, input)
                            && (path.ends_with(".rego") || *holds_files))
                });
                hit.then(|| (path.clone(), *what))
            })
        })
        .collect();
    hits.sort();
    hits.dedup_by(|a, b| a.0 == b.0);
    hits
}

/// Whether a path deleted by the change was a manifest the normal discovery would have picked,
/// under the configuration at head or at the merge base.
struct ManifestSet {
    globs: Vec<globset::GlobSet>,
    /// The globs' literal directories ([`workspace::glob_dirs`]), to tell which skipped
    /// directories discovery enters.
    glob_dirs: Vec<String>,
    /// PATH arguments relative to the gate root ("" is the root).
    args: Vec<String>,
}

impl ManifestSet {
    fn new(
        gate: &Gate,
        settings: &CheckSettings,
        set: &ChangeSet,
        base_globs: Option<&[String]>,
    ) -> Result<Self> {
        if settings.paths.is_empty() {
            let mut globs = vec![workspace::build_globset(&gate.config.manifests)?];
            let mut glob_dirs = workspace::glob_dirs(&gate.config.manifests);
            if let Some(base) = base_globs {
                globs.push(workspace::build_globset(base)?);
                glob_dirs.extend(workspace::glob_dirs(base));
            }
            return Ok(Self {
                globs,
                glob_dirs,
                args: Vec::new(),
            });
        }
        Ok(Self {
            globs: Vec::new(),
            glob_dirs: Vec::new(),
            args: settings
                .paths
                .iter()
                .filter_map(|p| command_line_rel(&set.work_root, &settings.cwd, p))
                .collect(),
        })
    }

    fn contains(&self, path: &str) -> bool {
        if path == CONFIG_FILE {
            return false;
        }
        let walked = |below: &str| {
            let mut dirs: Vec<&str> = below.split('/').collect();
            dirs.pop();
            !dirs.into_iter().any(workspace::is_skipped_dir)
        };
        if self.args.is_empty() {
            // As the glob walk does (`workspace::enters_skipped_dir`).
            let parts: Vec<&str> = path.split('/').collect();
            let entered = (0..parts.len().saturating_sub(1)).all(|i| {
                !workspace::is_skipped_dir(parts[i])
                    || workspace::enters_skipped_dir(&self.glob_dirs, &parts[..=i].join("/"))
            });
            self.globs.iter().any(|g| g.is_match(path)) && entered
        } else {
            self.args.iter().any(|arg| {
                path == arg
                    || (is_yaml(path)
                        && is_under(path, arg)
                        && walked(path.get(arg.len()..).unwrap_or_default()))
            })
        }
    }
}

/// The `manifests` globs of the configuration at the merge base, when they differ from head's,
/// and a note when that configuration could not be read.
///
/// The change under check can edit `relgate.yaml`: were only head's globs used, a change could
/// narrow them and edit (or delete) a release the base gates without it being checked or
/// listed. So what the merge base's configuration selects is a candidate as well.
struct BaseGlobs {
    globs: Option<Vec<String>>,
    note: Option<String>,
}

impl BaseGlobs {
    fn at_merge_base(gate: &Gate, settings: &CheckSettings, set: &ChangeSet) -> Result<Self> {
        let none = Self {
            globs: None,
            note: None,
        };
        // PATH arguments select the same files whatever either configuration says.
        if !settings.paths.is_empty() {
            return Ok(none);
        }
        // The merge base's rules decide: the other side is the head's configuration. Its
        // globs select candidates too, so a release the change moves under new globs (which
        // take effect after merge) is still checked.
        if let Some(head) = &gate.rules.head_config {
            return Ok(Self {
                globs: (head.manifests != gate.config.manifests).then(|| head.manifests.clone()),
                note: None,
            });
        }
        let in_tree = match &settings.config {
            Some(config) => match command_line_rel(&set.work_top, &settings.cwd, config) {
                Some(rel) => rel,
                // Outside the repository: not versioned, the same file on both sides.
                None => return Ok(none),
            },
            None if set.prefix.is_empty() => CONFIG_FILE.to_string(),
            None => format!("{}/{CONFIG_FILE}", set.prefix),
        };
        let defaults = || -> Result<Vec<String>> {
            Ok(globs_of(&crate::config::defaults()?).unwrap_or_default())
        };
        let read = set
            .file_at_merge_base(&in_tree, gate.config.max_file_bytes)
            .and_then(|bytes| match bytes {
                None => Ok(None),
                Some(bytes) => manifest_globs(&in_tree, bytes).map(Some),
            })
            .and_then(|globs| match globs {
                Some(globs) => workspace::build_globset(&globs)
                    .map(|_| Some(globs))
                    .map_err(|err| err.to_string()),
                None => Ok(None),
            });
        let (globs, note) = match read {
            Ok(Some(globs)) => (globs, None),
            Ok(None) => (defaults()?, None),
            Err(message) => (
                defaults()?,
                Some(format!(
                    "{in_tree} at the merge base cannot be read ({message}): the default \
                     `manifests` globs stand for what it selected"
                )),
            ),
        };
        Ok(Self {
            globs: (globs != gate.config.manifests).then_some(globs),
            note,
        })
    }
}

/// The `manifests` of a merged configuration, when it is a list of strings.
fn globs_of(config: &Value) -> Option<Vec<String>> {
    config
        .get("manifests")?
        .as_array()?
        .iter()
        .map(|glob| glob.as_str().map(str::to_string))
        .collect()
}

/// The `manifests` globs a configuration file's bytes give (merged with the defaults, as
/// [`crate::config::GateConfig::load`] does).
fn manifest_globs(shown: &str, bytes: Vec<u8>) -> std::result::Result<Vec<String>, String> {
    let source = manifest::SourceFile {
        path: shown.to_string(),
        digest: manifest::sha256_digest(&bytes),
        bytes,
    };
    let documents = manifest::parse_documents(&source).map_err(|err| err.to_string())?;
    let [document] = documents.as_slice() else {
        return Err(format!(
            "it holds {} YAML documents, not one",
            documents.len()
        ));
    };
    let mut merged = crate::config::defaults().map_err(|err| err.to_string())?;
    crate::config::merge(&mut merged, document.value.clone());
    globs_of(&merged).ok_or_else(|| "`manifests` is not a list of globs".to_string())
}

/// Checks what the change touches (see the module docs). `discover` are the PATH arguments
/// for discovery (the work tree's, or mapped into the head tree); `settings` are the
/// command line's, relative to the work tree.
pub fn check(
    gate: &Gate,
    settings: &CheckSettings,
    discover: &[PathBuf],
    set: &ChangeSet,
) -> Result<Report> {
    let mut notes = Vec::new();
    let touched = Touched::new(gate, set);

    let base = BaseGlobs::at_merge_base(gate, settings, set)?;
    let mut candidates = gate.discover(discover)?;
    if let Some(globs) = &base.globs {
        candidates.extend(
            workspace::discover_globs(&gate.root, globs)?
                .into_iter()
                .filter(|d| d.shown() != CONFIG_FILE),
        );
        candidates.sort_by(|a, b| a.shown().cmp(b.shown()));
        candidates.dedup_by(|a, b| a.shown() == b.shown());
        let (at_base, at_head) = if gate.rules.head_config.is_some() {
            (&gate.config.manifests, globs)
        } else {
            (globs, &gate.config.manifests)
        };
        notes.push(format!(
            "the change edits the `manifests` globs ({} at the merge base, {} at head): the \
             manifests either selects are candidates, so a change cannot take a release out of \
             the gate's sight",
            at_base.join(", "),
            at_head.join(", ")
        ));
    }
    notes.extend(base.note);

    let inputs = gate_inputs_changed(gate, settings, set, &touched);
    if let Some((path, what)) = inputs.first() {
        notes.push(format!(
            "{path} changed ({what}): every manifest is checked, since any decision can change"
        ));
        let mut listed: Vec<&str> = inputs.iter().take(5).map(|(p, _)| p.as_str()).collect();
        if inputs.len() > listed.len() {
            listed.push("…");
        }
        notes.push(if gate.rules.from == "base" {
            format!(
                "this change modifies the gate's configuration/policies ({}); the merge base's \
                 decided this check and the change's take effect after merge — protect them \
                 with CODEOWNERS (docs/changed.md)",
                listed.join(", ")
            )
        } else {
            format!(
                "this change modifies the gate's configuration/policies ({}); they decide this \
                 very check — protect them with CODEOWNERS (docs/changed.md)",
                listed.join(", ")
            )
        });
    }
    let everything = !inputs.is_empty();

    let mut selected = Vec::new();
    for found in &candidates {
        let take = match found {
            // Fail closed: a path discovery could not read is reported, changed or not.
            Discovered::Problem { .. } => true,
            Discovered::File { .. } if everything => true,
            Discovered::File { path, shown } => {
                let real = gate.root.relative(path);
                if let Some(dir) = touched.covering(shown).or_else(|| touched.covering(&real)) {
                    if dir != shown && dir != real {
                        notes.push(format!(
                            "{shown} is checked because {dir}, which holds it, changed"
                        ));
                    }
                    true
                } else {
                    match references(gate, path, shown) {
                        Ok(references) => match references
                            .iter()
                            .find_map(|r| touched.covering(r).map(|dir| (r, dir)))
                        {
                            Some((reference, dir)) if dir == reference => {
                                notes.push(format!(
                                    "{shown} is checked because {reference}, which it references, changed"
                                ));
                                true
                            }
                            Some((reference, dir)) => {
                                notes.push(format!(
                                    "{shown} is checked because {dir}, which holds {reference} that it references, changed"
                                ));
                                true
                            }
                            None => false,
                        },
                        Err(()) => {
                            notes.push(format!(
                                "{shown} is checked because it cannot be read to see which files it references"
                            ));
                            true
                        }
                    }
                }
            }
        };
        if take {
            selected.push(found.clone());
        }
    }

    let shown_at_head: BTreeSet<&str> = candidates.iter().map(Discovered::shown).collect();
    let manifests = ManifestSet::new(gate, settings, set, base.globs.as_deref())?;
    let removed: Vec<(String, Option<Oid>)> = set
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Deleted)
        .map(|c| (c.path.clone(), c.old_blob))
        .filter(|(path, _)| manifests.contains(path))
        .collect();
    // A manifest renamed or moved out of the manifest set (`x.yaml` -> `x.yml`, or into a
    // folder no glob covers) is not a removal: the release still exists, outside the gate's
    // sight. Each is an error, so the run cannot pass.
    let mut escaped: Vec<ManifestResult> = set
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Renamed && !shown_at_head.contains(c.path.as_str()))
        .filter_map(|c| c.old_path.as_deref().map(|old| (old, c.path.as_str())))
        .filter(|(old, _)| manifests.contains(old))
        .map(|(old, new)| {
            let selectors = if settings.paths.is_empty() {
                format!(
                    "the `manifests` globs ({})",
                    gate.config.manifests.join(", ")
                )
            } else {
                "the PATH arguments".to_string()
            };
            ManifestResult::error(
                old,
                0,
                1,
                None,
                format!(
                    "{old}: the change renames this release manifest to {new}, which \
                     {selectors} do not select, so it would leave the gate unchecked; keep it \
                     under the `manifests` globs (rename it back, or to a selected name), or \
                     delete it to retire the release"
                ),
            )
        })
        .collect();
    // A manifest "deleted" because a directory above it became a submodule (or another entry
    // that is not a plain file) whose files the check does not see: the release moved where
    // no check reads it (CI does not check submodules out by default), it was not retired.
    // Each is an error, not a silent removal.
    let covering = |path: &str| {
        set.changes
            .iter()
            .filter(|c| c.not_a_file && c.kind != ChangeKind::Deleted && c.path != path)
            .find(|c| is_under(path, &c.path) && !c.path.is_empty())
            .map(|c| c.path.clone())
    };
    let (moved_away, removed): (Vec<_>, Vec<_>) = removed
        .into_iter()
        .partition(|(path, _)| !shown_at_head.contains(path.as_str()) && covering(path).is_some());
    escaped.extend(moved_away.iter().map(|(path, _)| {
        let entry = covering(path).unwrap_or_default();
        ManifestResult::error(
            path,
            0,
            1,
            None,
            format!(
                "{path}: the change replaces {entry}, which held this release manifest, by a \
                 submodule or link whose files this check does not read, so the release would \
                 leave the gate unchecked; keep release manifests as files of this repository, \
                 or delete them to retire the releases"
            ),
        )
    }));
    let removed = set.previous_digests(&removed);

    // "Every manifest is checked" over no manifest at all checked nothing: the same error as
    // a plain check that finds none, or a change to the config could empty the gate and pass.
    let nothing_found = everything && candidates.is_empty();
    if nothing_found {
        let selectors = if settings.paths.is_empty() {
            let mut text = format!(
                "the `manifests` globs ({}",
                gate.config.manifests.join(", ")
            );
            if let Some(globs) = &base.globs {
                text.push_str(&format!("; at the merge base {}", globs.join(", ")));
            }
            text.push(')');
            text
        } else {
            "the PATH arguments".to_string()
        };
        notes.insert(
            0,
            format!(
                "no manifests found: the change touches the gate's configuration/policies, so \
                 every manifest is to be checked, but {selectors} select none between {}; \
                 nothing was checked, so nothing passes",
                set.describe()
            ),
        );
    } else if selected.is_empty() {
        notes.insert(
            0,
            format!("no release manifests changed between {}", set.describe()),
        );
    } else {
        notes.insert(
            0,
            format!(
                "checked the release manifests changed between {}",
                set.describe()
            ),
        );
    }
    let mut results = gate.check_files(&selected);
    if !gate.rules.edits.is_empty() {
        let finding = gate_config_changed(&gate.rules.edits);
        for result in &mut results {
            result.findings.push(Finding {
                line: result.line,
                ..finding.clone()
            });
            result.decide(settings.fail_on_warn);
        }
    }
    results.extend(escaped);
    let mut report = Report::changed(
        gate.policies.digest.clone(),
        results,
        notes,
        set.range.clone(),
        removed,
    );
    if nothing_found {
        report.decision = Decision::Error;
    }
    Ok(report)
}

/// The warning every checked manifest carries when the change edits the gate's own files
/// and the merge base's rules decided: reviewers see what the change would change once merged.
fn gate_config_changed(edits: &[String]) -> Finding {
    Finding {
        rule: GATE_CONFIG_CHANGED.to_string(),
        severity: crate::report::Severity::Warn,
        policy: "relgate.gate".to_string(),
        message: format!(
            "this change edits the gate's own files; the merge base's decided this check and \
             the change's take effect after merge: {}",
            edits.join("; ")
        ),
        path: None,
        line: 1,
        item: None,
        remediation: Some(
            "have the gate's owners review these edits (CODEOWNERS on relgate.yaml and the \
             policy directories); `relgate check --changed --rules head` shows the decision \
             under the change's own rules"
                .to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_drops_dots_and_refuses_escapes() {
        assert_eq!(normalize("./evals/a.json").as_deref(), Some("evals/a.json"));
        assert_eq!(normalize("evals//a.json").as_deref(), Some("evals/a.json"));
        assert_eq!(normalize("../a.json"), None);
        assert_eq!(normalize("/etc/passwd"), None);
    }

    #[test]
    fn is_under_means_the_directory_or_below() {
        assert!(is_under(".relgate/policies/a.rego", ".relgate/policies"));
        assert!(!is_under(".relgate/policies2/a.rego", ".relgate/policies"));
        assert!(is_under("anything", ""));
    }

    #[test]
    fn a_changed_directory_covers_what_lies_below_it() {
        let touched = |paths: &[&str]| Touched {
            paths: paths.iter().map(|p| ((*p).to_string(), true)).collect(),
        };
        let t = touched(&["prompts", "evals/a.json"]);
        assert_eq!(t.covering("prompts/answer.txt"), Some("prompts"));
        assert_eq!(t.covering("prompts/deep/er.txt"), Some("prompts"));
        assert_eq!(t.covering("prompts"), Some("prompts"));
        assert_eq!(t.covering("evals/a.json"), Some("evals/a.json"));
        assert_eq!(t.covering("prompts-v2/answer.txt"), None);
        assert_eq!(t.covering("evals/a.json.bak"), None);
        assert_eq!(t.covering("evals"), None);
        // A link to the gate root itself covers everything.
        assert_eq!(touched(&[""]).covering("any/thing"), Some(""));
    }

    #[test]
    fn the_merge_base_globs_are_read_as_the_config_loader_merges_them() {
        let globs = |text: &str| manifest_globs("relgate.yaml", text.as_bytes().to_vec());
        assert_eq!(
            globs("apiVersion: relgate.dev/v1\nkind: GateConfig\nmanifests: [a/*.yaml]\n"),
            Ok(vec!["a/*.yaml".to_string()])
        );
        // Not set: the default.
        assert_eq!(
            globs("apiVersion: relgate.dev/v1\nkind: GateConfig\n"),
            Ok(vec!["releases/**/*.yaml".to_string()])
        );
        assert!(globs("manifests: [1, 2]\n").is_err());
        assert!(globs("a: 1\n---\nb: 2\n").is_err());
        assert!(globs("manifests: [unclosed\n").is_err());
    }

    #[test]
    fn unsafe_tree_names_are_refused() {
        for name in ["", ".", "..", ".git", ".GIT", "a/b", "a\\b"] {
            assert!(!is_safe_entry_name(name), "{name:?}");
        }
        assert!(is_safe_entry_name(".relgate"));
    }

    #[test]
    fn every_path_field_is_collected() {
        let manifest = json!({"spec": {
            "prompt": {"path": "p.txt", "baseline": {"path": "p0.txt"}},
            "rollback": {"runbook": "docs/r.md"},
            "evaluations": [{"candidate": {"path": "c.json"}, "baseline": {"path": "b.json"}}],
            "slo": [{"source": {"file": {"path": "slo.json"}}}, {"source": {"prometheus": {}}}],
            "prr": {"A": {"evidence": "https://x"}, "B": {"evidence": "docs/b.md"}},
        }});
        let mut found = referenced_paths(&manifest);
        found.sort_unstable();
        assert_eq!(
            found,
            [
                "b.json",
                "c.json",
                "docs/b.md",
                "docs/r.md",
                "p.txt",
                "p0.txt",
                "slo.json"
            ]
        );
    }
}
