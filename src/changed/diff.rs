//! The changed paths of a range: the merge base's tree against head's tree (or the work tree
//! and index, untracked files included), renames followed, kept inside the gate root and
//! relative to it, each marked when either side is not a plain file.

use std::path::Path;

use git2::{Delta, DiffFindOptions, DiffOptions, Oid, Repository, Tree};

use super::{Change, ChangeKind, ChangedError};
use crate::workspace::to_slash;

/// The changed paths between the merge base and head (or the work tree), inside `prefix`,
/// relative to it.
pub(super) fn diff(
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
    // The whole repository is compared, not only the gate root: a manifest moved out of the
    // root must be found as a rename (and refused), which needs both of its sides in the diff;
    // restricted to the root, it looked like a deletion and passed unchecked.
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
                // Moved out of the gate root: a rename whose new path (relative to the root,
                // through `..`) no glob can select.
                (Some(old), None) => delta
                    .new_file()
                    .path()
                    .map(|to| {
                        let up = prefix.split('/').filter(|p| !p.is_empty()).count();
                        format!("{}{}", "../".repeat(up), to_slash(to))
                    })
                    .map(|to| change(ChangeKind::Renamed, to, Some(old), old_blob)),
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
