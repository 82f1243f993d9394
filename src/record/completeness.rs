//! Completeness of the ledger against the branch it records (docs/records.md, "Completeness").
//!
//! A ledger whose tail was cut off (the branch reset to an older commit, which needs no key)
//! still verifies record by record: every remaining signature, the chain and the checkpoint of
//! that older commit are genuine. What betrays the cut is the default branch: it went on
//! changing release manifests after the last record. So `relgate verify` walks the default
//! branch's first-parent history after the commit of the ledger's first record and checks
//! that every commit that changed a release manifest (added, modified or renamed a file the
//! `manifests` globs select), `relgate.yaml` or a policy directory of it is *named* by a
//! record: as the record's evaluated commit (`git.commit`) or in its `changed_in` list.
//!
//! The same definition ([`WatchedPaths`], [`first_parent_changes`]) is what `relgate record`
//! uses to fill `changed_in`, so a run that records a range of commits at once (a push of
//! several merges, or a run catching up after a lost one) names every commit it covers.
//!
//! Cost: a first-parent walk, and one tree-to-tree diff per commit that no record names (a
//! named commit needs no diff). Git compares trees by object id and descends only into
//! subtrees that differ, so a diffed commit costs in proportion to the directories it
//! changed, not to the size of the repository or of the ledger; records contribute a hash-set
//! insert each.

use std::collections::HashSet;

use git2::{Delta, DiffOptions, Oid, Repository, Sort};
use globset::GlobSet;

/// What a path of the recorded repository is to the gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Watched {
    /// A release manifest (selected by the `manifests` globs).
    Manifest,
    /// The gate's configuration or a policy: every decision depends on it.
    Gate,
}

/// The paths whose changes must be recorded, as repository paths.
#[derive(Debug, Clone)]
pub struct WatchedPaths {
    /// The gate root relative to the repository root, `""` or ending in `/`.
    prefix: String,
    /// The `manifests` globs (relative to the gate root).
    manifests: GlobSet,
    /// Configuration files (relative to the gate root).
    config_files: Vec<String>,
    /// Policy directories (relative to the gate root, no trailing `/`).
    policy_dirs: Vec<String>,
}

impl WatchedPaths {
    /// `prefix`: the gate root in the repository (`""` or `dir/`); `manifest_globs`,
    /// `config_files` and `policy_dirs` relative to the gate root, as relgate.yaml writes them.
    pub fn new(
        prefix: &str,
        manifest_globs: &[String],
        config_files: &[String],
        policy_dirs: &[String],
    ) -> Result<WatchedPaths, String> {
        let manifests =
            crate::workspace::build_globset(manifest_globs).map_err(|e| e.to_string())?;
        let clean = |p: &String| {
            p.trim_start_matches("./")
                .trim_end_matches('/')
                .replace('\\', "/")
        };
        Ok(WatchedPaths {
            prefix: prefix.to_owned(),
            manifests,
            config_files: config_files.iter().map(clean).collect(),
            policy_dirs: policy_dirs
                .iter()
                .map(clean)
                .filter(|d| !d.is_empty())
                .collect(),
        })
    }

    /// What `repo_path` is to the gate, if anything.
    pub(crate) fn classify(&self, repo_path: &str) -> Option<Watched> {
        let rel = repo_path.strip_prefix(self.prefix.as_str())?;
        if self.config_files.iter().any(|c| c == rel)
            || self.policy_dirs.iter().any(|d| {
                rel.strip_prefix(d.as_str())
                    .is_some_and(|r| r.starts_with('/'))
            })
        {
            return Some(Watched::Gate);
        }
        self.manifests.is_match(rel).then_some(Watched::Manifest)
    }
}

/// One first-parent commit that changed watched paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitChange {
    /// The commit.
    pub commit: Oid,
    /// Manifests it added, modified or renamed to (repository paths, sorted).
    pub manifests: Vec<String>,
    /// Whether it changed the configuration or a policy.
    pub gate: bool,
    /// Its subject line (for messages).
    pub summary: String,
}

/// The commits on the first-parent chain of `tip` down to, not including, `stop` (all of it
/// when `None`) that changed watched paths, oldest first. A deleted manifest needs no record
/// (there is nothing left to decide on) and does not count; a deleted policy does.
pub(crate) fn first_parent_changes(
    repo: &Repository,
    tip: Oid,
    stop: Option<Oid>,
    watched: &WatchedPaths,
) -> Result<Vec<CommitChange>, git2::Error> {
    first_parent_changes_except(repo, tip, stop, watched, &|_| false)
}

/// [`first_parent_changes`] without the commits `skip` accepts, which are not diffed at all:
/// the completeness check skips the commits records already name, so a complete ledger costs
/// a walk, not a diff per commit.
fn first_parent_changes_except(
    repo: &Repository,
    tip: Oid,
    stop: Option<Oid>,
    watched: &WatchedPaths,
    skip: &dyn Fn(Oid) -> bool,
) -> Result<Vec<CommitChange>, git2::Error> {
    let mut walk = repo.revwalk()?;
    walk.set_sorting(Sort::TOPOLOGICAL)?;
    walk.simplify_first_parent()?;
    walk.push(tip)?;
    if let Some(stop) = stop {
        walk.hide(stop)?;
    }
    let mut out = Vec::new();
    let mut options = DiffOptions::new();
    options.skip_binary_check(true).ignore_submodules(false);
    for oid in walk {
        let oid = oid?;
        if skip(oid) {
            continue;
        }
        let commit = repo.find_commit(oid)?;
        let tree = commit.tree()?;
        let parent_tree = match commit.parent(0) {
            Ok(p) => Some(p.tree()?),
            Err(_) => None,
        };
        let diff = repo.diff_tree_to_tree(parent_tree.as_ref(), Some(&tree), Some(&mut options))?;
        let mut manifests: Vec<String> = Vec::new();
        let mut gate = false;
        for delta in diff.deltas() {
            let path_of =
                |f: git2::DiffFile<'_>| f.path().and_then(|p| p.to_str()).map(str::to_owned);
            let old = path_of(delta.old_file());
            let new = path_of(delta.new_file());
            for path in [&old, &new].into_iter().flatten() {
                if watched.classify(path) == Some(Watched::Gate) {
                    gate = true;
                }
            }
            if delta.status() != Delta::Deleted {
                if let Some(path) = new {
                    if watched.classify(&path) == Some(Watched::Manifest) {
                        manifests.push(path);
                    }
                }
            }
        }
        if gate || !manifests.is_empty() {
            manifests.sort();
            manifests.dedup();
            out.push(CommitChange {
                commit: oid,
                manifests,
                gate,
                summary: String::from_utf8_lossy(commit.summary_bytes().unwrap_or_default())
                    .into_owned(),
            });
        }
    }
    out.reverse();
    Ok(out)
}

/// The commits of `changes` that a record of the manifest at `repo_path` evaluated at `head`
/// covers (it changed the manifest or the gate), oldest first, `head` itself left out (the
/// record names it as its commit).
pub fn changed_in(changes: &[CommitChange], repo_path: &str, head: Oid) -> Vec<String> {
    changes
        .iter()
        .filter(|c| c.commit != head && (c.gate || c.manifests.iter().any(|m| m == repo_path)))
        .map(|c| c.commit.to_string())
        .collect()
}

/// A commit no record names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrecorded {
    /// The commit and what it changed.
    pub change: CommitChange,
}

/// Where the completeness check stands for a ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completeness {
    /// The commits after the first record that no record names (empty: complete), and how many
    /// first-parent commits were examined.
    Checked {
        unrecorded: Vec<Unrecorded>,
        commits: u64,
    },
    /// It could not be checked, and why.
    Unknown(String),
}

/// The commit a record names (`git.commit`, an entry of `changed_in`), when the name is a full
/// commit id as git prints it: 40 lowercase hex digits. Any other name matches no commit of
/// the history (the check compares ids as git prints them), so it is not kept; a short id is
/// never padded into one.
pub(crate) fn named_oid(name: &str) -> Option<Oid> {
    if name.len() != 40 || !name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    Oid::from_str(name).ok()
}

/// Checks the first-parent history of `tip` after `first` (the commit of the ledger's first
/// record) against the commits the records name.
pub fn check(
    repo: &Repository,
    tip: Oid,
    first: Option<&str>,
    named: &HashSet<Oid>,
    watched: &WatchedPaths,
) -> Completeness {
    // Without a first record (an empty ledger) the whole first-parent history is compared:
    // an empty ledger beside recorded releases is a ledger emptied by a push.
    let first_oid = match first {
        None => None,
        Some(first) => {
            let Ok(first_oid) = Oid::from_str(first) else {
                return Completeness::Unknown(format!(
                    "the ledger's first record names commit {first:?}, which is not a commit id"
                ));
            };
            if repo.find_commit(first_oid).is_err() {
                return Completeness::Unknown(format!(
                    "the ledger's first record names commit {first}, which this repository does \
                     not have (a shallow clone? fetch the whole history: git fetch --unshallow, \
                     or actions/checkout with fetch-depth: 0)"
                ));
            }
            if tip != first_oid && !repo.graph_descendant_of(tip, first_oid).unwrap_or(false) {
                return Completeness::Unknown(format!(
                    "the ledger's first record names commit {first}, which is not in the \
                     history of the default branch ({tip}); pass --default-branch REV naming \
                     the branch the ledger records"
                ));
            }
            Some(first_oid)
        }
    };
    let mut walk_count = 0u64;
    let is_named = |oid: Oid| named.contains(&oid);
    let changes = match first_parent_changes_except(repo, tip, first_oid, watched, &is_named) {
        Ok(c) => c,
        Err(e) => return Completeness::Unknown(format!("cannot read the branch history: {e}")),
    };
    if let Ok(mut walk) = repo.revwalk() {
        if walk.simplify_first_parent().is_ok() && walk.push(tip).is_ok() {
            if let Some(first_oid) = first_oid {
                let _ = walk.hide(first_oid);
            }
            walk_count = walk.count() as u64;
        }
    }
    let unrecorded = changes
        .into_iter()
        .map(|change| Unrecorded { change })
        .collect();
    Completeness::Checked {
        unrecorded,
        commits: walk_count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_separates_manifests_gate_files_and_the_rest() {
        let w = WatchedPaths::new(
            "gate/",
            &["releases/**/*.yaml".to_owned()],
            &["relgate.yaml".to_owned()],
            &["./team-policies/".to_owned()],
        )
        .expect("globs");
        assert_eq!(
            w.classify("gate/releases/a/b.yaml"),
            Some(Watched::Manifest)
        );
        assert_eq!(w.classify("gate/relgate.yaml"), Some(Watched::Gate));
        assert_eq!(w.classify("gate/team-policies/x.rego"), Some(Watched::Gate));
        assert_eq!(w.classify("gate/team-policies-other/x.rego"), None);
        assert_eq!(w.classify("releases/a.yaml"), None);
        assert_eq!(w.classify("gate/README.md"), None);
    }
}
