//! The git housekeeping a ledger branch needs, advised rather than left to chance.
//!
//! Reading a ledger costs a lookup per object. Loose objects cost a file each (an `open` and an
//! inflate of a separate file); every packfile adds an index to search. `relgate record`
//! writes a run of more than one record as packfiles (one per shard of 1,000 records it
//! touches), but a repository still gathers loose objects (single-record runs, `git fetch` of
//! fewer than 100 objects) and packfiles (at least one per run). git's own `gc --auto` sees to this in clones where git commands run; a repository
//! only relgate writes to never runs it. So `relgate record` and `relgate verify` check the
//! object database after their work and print a `hint:` to run `git gc` (which packs loose
//! objects and packfiles into one, and writes the commit-graph) once it passes the limits git
//! itself uses for `gc --auto`: [`LOOSE_LIMIT`] loose objects or [`PACK_LIMIT`] packfiles.
//!
//! relgate does not repack by itself: the branch shares the object database with the rest of
//! the repository, and deleting objects or packfiles there is git's business, not a release
//! gate's.

use std::fs;
use std::path::Path;

/// Loose objects (estimated) past which `git gc` is advised (git's `gc.auto` default).
pub(crate) const LOOSE_LIMIT: u64 = 6700;
/// Packfiles past which `git gc` is advised (git's `gc.autoPackLimit` default).
pub(crate) const PACK_LIMIT: u64 = 50;

/// What the object database holds, as far as housekeeping is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ObjectStore {
    /// Loose objects, estimated as git does: those in `objects/17/` times 256.
    pub loose_estimate: u64,
    /// Packfiles in `objects/pack/`.
    pub packs: u64,
}

impl ObjectStore {
    /// Counts the object store of the repository whose git directory is `git_dir`. Unreadable
    /// directories count as empty: this is advice, never a verdict.
    pub(crate) fn inspect(git_dir: &Path) -> ObjectStore {
        let objects = git_dir.join("objects");
        let count = |dir: &Path, keep: &dyn Fn(&str) -> bool| -> u64 {
            fs::read_dir(dir)
                .map(|rd| {
                    rd.filter_map(Result::ok)
                        .filter(|e| e.file_name().to_str().is_some_and(keep))
                        .count() as u64
                })
                .unwrap_or(0)
        };
        // Object ids are uniformly distributed, so one fan-out directory of 256 is a fair
        // sample (the one git samples too); counting all 256 would cost as much as the lookups
        // the hint is about.
        let sample = count(&objects.join("17"), &|n| {
            n.len() == 38 && n.bytes().all(|b| b.is_ascii_hexdigit())
        });
        ObjectStore {
            loose_estimate: sample * 256,
            packs: count(&objects.join("pack"), &|n| n.ends_with(".pack")),
        }
    }

    /// The advice for this store, `None` when it needs none. `shown` names the repository in
    /// the command to run.
    pub(crate) fn hint(&self, shown: &Path) -> Option<String> {
        let mut why = Vec::new();
        if self.loose_estimate > LOOSE_LIMIT {
            why.push(format!("about {} loose objects", self.loose_estimate));
        }
        if self.packs > PACK_LIMIT {
            why.push(format!("{} packfiles", self.packs));
        }
        if why.is_empty() {
            return None;
        }
        Some(format!(
            "the repository holds {}, which slows reading the ledger; run `git -C {} gc` \
             (it packs them into one packfile and writes the commit-graph)",
            why.join(" and "),
            shown.display()
        ))
    }
}

/// The housekeeping hint for the repository at `repo` (work tree or git directory), if any.
pub(crate) fn hint_for(repo: &Path) -> Option<String> {
    let r = git2::Repository::open(repo).ok()?;
    ObjectStore::inspect(r.path()).hint(repo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hint_names_what_passed_the_limits() {
        let fine = ObjectStore {
            loose_estimate: LOOSE_LIMIT,
            packs: PACK_LIMIT,
        };
        assert_eq!(fine.hint(Path::new("r")), None);
        let both = ObjectStore {
            loose_estimate: 7168,
            packs: 51,
        };
        let hint = both.hint(Path::new("/w/r")).expect("hint");
        assert!(
            hint.contains("about 7168 loose objects and 51 packfiles"),
            "{hint}"
        );
        assert!(hint.contains("`git -C /w/r gc`"), "{hint}");
    }
}
