//! Resolving the range of `--changed`: the repository holding the gate root, `--base` (or the
//! default base) and `--head` to commits, and their merge base. Fail closed: a revision that
//! does not resolve or a missing merge base is an error that says how to fix it (fetch the
//! branch, unshallow the clone), never an empty or a full range.

use std::path::PathBuf;

use git2::{ErrorCode, Oid, Repository};

use super::{ChangedError, ChangedOptions};
use crate::workspace::GateRoot;

/// The repository holding the gate root `root` and its work-tree top (canonical).
pub(super) fn open_repository(root: &GateRoot) -> Result<(Repository, PathBuf), ChangedError> {
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
pub(super) struct Range {
    pub(super) base: String,
    pub(super) base_commit: Oid,
    pub(super) head: String,
    pub(super) head_commit: Oid,
    pub(super) head_ref: Option<String>,
    pub(super) work_tree: bool,
    pub(super) checked_out: Option<Oid>,
    pub(super) merge_base: Oid,
}

impl Range {
    pub(super) fn resolve(
        repo: &Repository,
        options: &ChangedOptions,
    ) -> Result<Self, ChangedError> {
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
