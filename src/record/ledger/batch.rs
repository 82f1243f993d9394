//! A run of records on a git branch, written as packfiles by libgit2 and one move of the branch.
//!
//! Each record is still its own commit (so the append-only history check of `relgate verify`
//! is the same for a run of 10,000 as for a run of one), written with the same libgit2 calls as
//! a single append. What differs is where the objects go:
//!
//! - the run opens its own handle on the repository and puts an in-memory object store
//!   (libgit2's *mempack* backend) in front of its object database, so every blob, tree and
//!   commit of the run is written to memory instead of to a loose file of its own (seven files
//!   and directory lookups per record otherwise);
//! - libgit2's packbuilder packs exactly the objects the run wrote (never the records already
//!   in the ledger: they are not walked) and searches deltas among them, so each new version of
//!   the head shard's tree (one entry more than the last) is stored as a small delta against
//!   its neighbour. The objects are given their paths as names, which is what the packbuilder
//!   sorts its delta window by, so versions of one tree sit next to each other;
//! - the pack goes to the repository through libgit2's indexer (`Odb::packwriter`), which
//!   resolves every delta, computes every object id again from the bytes and writes the index;
//! - the in-memory store is emptied after each pack. A pack is written whenever the run moves
//!   to the next shard, so memory holds at most one shard's worth of tree versions ([`super::
//!   SHARD_SIZE`] records) however long the run: a run of n records writes about n / 1,000 + 1
//!   packfiles, and moves the branch once at the end (all or nothing: packs of a run that loses
//!   the race are unreferenced objects, which `git gc` prunes).
//!
//! Cost per record: two signatures, libgit2's tree rewrite and hashing of the head shard (at
//! most 1,000 entries) and of the small `records/` and top trees, and its share of the delta
//! search and zlib. Nothing depends on the number of records already in the ledger.

use std::io::Write as _;

use git2::{Buf, Mempack, Odb, Oid, PackBuilder, Repository};

use super::RecordError;

/// Priority of the in-memory store among the object database's backends: above the loose and
/// packed backends (1 and 2), so libgit2 writes there and finds the run's objects there first.
const MEMPACK_PRIORITY: i32 = 999;

/// Threads of libgit2's delta search. One: the search over one shard's versions is short (a
/// delta against the neighbouring version is found first), and relgate runs in CI beside
/// other work, where spawning a thread per core for it costs more than it saves (measured:
/// see docs/records.md).
const DELTA_THREADS: u32 = 1;

/// The objects one record's commit wrote, with the path each sits at (the packbuilder's name
/// hint; `None` for the commit).
#[derive(Debug)]
pub(super) struct Written {
    pub(super) commit: Oid,
    pub(super) objects: Vec<(Oid, Option<String>)>,
}

/// Opens the run's own handle on the repository at `git_dir` and calls `f` with it and the
/// [`Packer`] that packs what `f` writes through it. The in-memory store is attached to this
/// handle only (a backend cannot be removed from an object database), and dropped with it.
pub(super) fn with_run<T>(
    git_dir: &std::path::Path,
    f: impl FnOnce(&Repository, &mut Packer<'_>) -> Result<T, RecordError>,
) -> Result<T, RecordError> {
    let repo = Repository::open(git_dir)?;
    let odb = repo.odb()?;
    let mempack = odb.add_new_mempack_backend(MEMPACK_PRIORITY)?;
    let mut packer = Packer {
        repo: &repo,
        odb: &odb,
        mempack: &mempack,
        builder: None,
        shard: None,
    };
    f(&repo, &mut packer)
}

/// Packs the objects of a run, a packfile per shard.
pub(super) struct Packer<'r> {
    repo: &'r Repository,
    odb: &'r Odb<'r>,
    mempack: &'r Mempack<'r>,
    /// The objects written since the last pack.
    builder: Option<PackBuilder<'r>>,
    /// The shard those objects' record(s) went to.
    shard: Option<String>,
}

impl Packer<'_> {
    /// Called before the objects of a record in `shard` are written: when the run moves to a
    /// new shard, the previous shard's objects are packed first (afterwards the in-memory
    /// store is emptied, so nothing of the new record may be in it yet).
    pub(super) fn start_record(&mut self, shard: &str) -> Result<(), RecordError> {
        if self.shard.as_deref() != Some(shard) {
            self.flush()?;
            self.shard = Some(shard.to_owned());
        }
        Ok(())
    }

    /// Adds the objects one record wrote to the next pack.
    pub(super) fn add(&mut self, written: &Written) -> Result<(), RecordError> {
        let builder = match &mut self.builder {
            Some(b) => b,
            None => {
                let mut b = self.repo.packbuilder()?;
                b.set_threads(DELTA_THREADS);
                self.builder.insert(b)
            }
        };
        builder.insert_object(written.commit, None)?;
        for (id, name) in &written.objects {
            builder.insert_object(*id, name.as_deref())?;
        }
        Ok(())
    }

    /// Writes the objects added since the last pack as one packfile into the repository, then
    /// empties the in-memory store.
    pub(super) fn flush(&mut self) -> Result<(), RecordError> {
        let Some(mut builder) = self.builder.take() else {
            return Ok(());
        };
        let mut buf = Buf::new();
        builder.write_buf(&mut buf)?;
        drop(builder);
        let mut writer = self.odb.packwriter()?;
        writer
            .write_all(&buf)
            .map_err(|e| RecordError::Inconsistent(format!("cannot write the packfile: {e}")))?;
        writer.commit()?;
        // Only now that the objects are on disk (indexed) may the memory copy go.
        self.mempack.reset()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use git2::ObjectType;

    /// The pack of a shard's successive tree versions is small: libgit2 stores each version as
    /// a delta against its neighbour, so the pack grows by far less than a full tree per
    /// version.
    #[test]
    fn successive_tree_versions_are_packed_as_deltas() {
        let dir = tempfile::tempdir().expect("tmp");
        let repo = Repository::init_bare(dir.path()).expect("init");
        let versions = 300;
        let mut full = 0usize;
        with_run(repo.path(), |run, packer| {
            packer.start_record("000")?;
            let mut tree = None;
            for i in 0..versions {
                let blob = run.blob(format!("record {i}\n").as_bytes())?;
                let mut b = run.treebuilder(tree.as_ref())?;
                b.insert(format!("{i:06}-name-1.dsse.json"), blob, 0o100_644)?;
                let id = b.write()?;
                full += run.find_tree(id)?.len() * 47;
                packer.add(&Written {
                    commit: blob,
                    objects: vec![(id, Some("records/000".to_owned()))],
                })?;
                tree = Some(run.find_tree(id)?);
            }
            packer.flush()
        })
        .expect("run");
        let pack_dir = dir.path().join("objects/pack");
        let packs: Vec<_> = std::fs::read_dir(&pack_dir)
            .expect("pack dir")
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
            .collect();
        assert_eq!(packs.len(), 1);
        let size = packs[0].metadata().expect("meta").len() as usize;
        // Whole trees would be about `full` bytes (over 2 MB for 300 versions); deltas keep
        // the pack to tens of bytes per version.
        assert!(
            size * 50 < full,
            "pack {size} bytes vs {full} of whole trees"
        );
        // Nothing is loose, and every version reads back from the pack.
        let reopened = Repository::open(dir.path()).expect("open");
        let odb = reopened.odb().expect("odb");
        let mut trees = 0;
        odb.foreach(|id| {
            if odb.read_header(*id).map(|(_, k)| k) == Ok(ObjectType::Tree) {
                trees += 1;
            }
            true
        })
        .expect("foreach");
        assert_eq!(trees, versions);
        let loose = std::fs::read_dir(dir.path().join("objects"))
            .expect("objects")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().len() == 2)
            .count();
        assert_eq!(loose, 0, "no loose object directory");
    }
}
