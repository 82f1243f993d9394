//! Trees written out: a `--head` commit's gate-root subtree for the gate to read
//! ([`HeadTree`]), and the merge base opened for the rules of a change ([`MergeBase`]).
//!
//! A tree is written into a private temporary directory with its symlinks kept as symlinks,
//! so the gate's confinement still refuses those that lead out; entry names that could leave
//! the directory (`..`, `.git`, separators) are refused, and nesting is walked with an
//! explicit stack, not recursion.

use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid, Repository};

use super::range::{open_repository, Range};
use super::{ChangedError, ChangedOptions};
use crate::workspace::GateRoot;

/// The tree of a head commit, written out for the gate to read.
pub struct HeadTree {
    /// Removed (with the files) when dropped.
    _dir: tempfile::TempDir,
    /// The gate root inside it.
    pub root: PathBuf,
    /// The work-tree top inside it.
    pub top: PathBuf,
}

/// Writes the subtree `prefix` of `commit` into a new temporary directory (named `label…`).
/// Files are written as git stores them (no filters: an LFS file is its pointer); submodules
/// are not entered; symlinks stay symlinks. `head` names the revision in errors.
pub(super) fn write_tree(
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
