//! A run of records on a git branch: one commit, written as packfiles by libgit2, and one move
//! of the branch.
//!
//! The run is one commit that adds all its records (`relgate verify` checks that a commit only
//! adds records, in seq order, whether it adds one or ten thousand). Each shard the run adds
//! records to gets one new tree, whatever the number of records: a commit per record would
//! write a new version of the head shard's tree (up to 1,000 entries, about 40 KB) for every
//! record, which cost about 3 ms of hashing, compression and delta search per decision.
//!
//! Where the objects go:
//! - the run opens its own handle on the repository whose object database is an in-memory
//!   store alone (libgit2's *mempack* backend; see [`with_run`]), so every blob and tree of the
//!   run is written to memory instead of to a loose file of its own;
//! - libgit2's packbuilder packs exactly the objects the run wrote (never the records already
//!   in the ledger: they are not walked). The objects are given their paths as names, which is
//!   what the packbuilder sorts its delta window by;
//! - the pack goes to the repository through libgit2's indexer (`Odb::packwriter`), which
//!   computes every object id again from the bytes and writes the index;
//! - each shard the run adds records to is packed through a run handle of its own, on a thread
//!   of its own (the shards' packs are independent, so a large run packs on every core), and
//!   the trees above the shards and the commit in one last small pack. Memory holds at most
//!   one shard's records ([`super::SHARD_SIZE`]) per thread however long the run: a run of n
//!   records writes about n / 1,000 + 1 packfiles, and moves the branch once at the end (all
//!   or nothing: packs of a run that loses the race are unreferenced objects, which `git gc`
//!   prunes).
//!
//! Cost per record: one signature, one blob, a tree-builder insert and its share of the pack.
//! Nothing depends on the number of records already in the ledger.

use std::io::Write as _;

use git2::{Buf, Mempack, Odb, Oid, PackBuilder, Repository};

use super::RecordError;

/// Priority of the in-memory store in the run's object database (its only backend).
const MEMPACK_PRIORITY: i32 = 999;

/// `pack.windowMemory` of the run's packbuilder: one byte, so its delta search window (ten
/// objects by default) keeps only the object before the one being packed. Objects are sorted
/// by path, so that neighbour is the previous record of the same shard, which differs from it
/// only in its fields and signature: one delta attempt per object finds nearly all the saving
/// ten do, at a tenth of the cost (the full window was about two thirds of the CPU time of
/// appending a run; measured: see docs/records.md).
const DELTA_WINDOW_MEMORY: u32 = 1;

/// Threads of libgit2's delta search. One: with a window of one object the search is short,
/// and the run's shards are already packed in parallel, one per core.
const DELTA_THREADS: u32 = 1;

/// Opens the run's own handle on the repository of `disk` and calls `f` with it and the
/// [`Packer`] that packs what `f` writes through it into `disk`'s object database.
///
/// The run's handle has an object database of its own that holds only the in-memory store:
/// `f` reads the ledger through `disk` and writes through the run's handle. libgit2 looks
/// every object it is asked to write up first (so it need not write it twice), and when the
/// object is not found it rescans the repository's pack directory before looking again: with
/// the repository's own backends behind the in-memory store, that rescan ran once per record,
/// and cost more the more packfiles the repository had. A record is new by construction, so
/// the lookup can only miss; against the in-memory store alone it is a hash-table probe.
/// libgit2 checks that the objects a tree entry or a commit names exist: what the run writes
/// is in the store, and the parent commit is copied into it ([`Packer::adopt`]).
pub(super) fn with_run<T>(
    disk: &Repository,
    f: impl FnOnce(&Repository, &mut Packer<'_>) -> Result<T, RecordError>,
) -> Result<T, RecordError> {
    let repo = Repository::open(disk.path())?;
    // The delta search's window, narrowed to the neighbouring object for this handle only (see
    // `DELTA_WINDOW_MEMORY`): a config file added in memory at the highest level, read by the
    // packbuilder's snapshot of this handle's configuration. Nothing is written to the
    // repository's own configuration.
    let mut tuning = tempfile::NamedTempFile::new()
        .map_err(|e| RecordError::Inconsistent(format!("cannot create a temporary file: {e}")))?;
    writeln!(tuning, "[pack]\n\twindowMemory = {DELTA_WINDOW_MEMORY}")
        .map_err(|e| RecordError::Inconsistent(format!("cannot write a temporary file: {e}")))?;
    repo.config()?
        .add_file(tuning.path(), git2::ConfigLevel::App, false)?;
    let odb = Odb::new()?;
    let mempack = odb.add_new_mempack_backend(MEMPACK_PRIORITY)?;
    repo.set_odb(&odb)?;
    let disk_odb = disk.odb()?;
    let mut packer = Packer {
        repo: &repo,
        odb: &odb,
        disk: &disk_odb,
        mempack: &mempack,
        builder: None,
    };
    f(&repo, &mut packer)
}

/// Packs the objects written through a run's handle into one packfile.
pub(super) struct Packer<'r> {
    repo: &'r Repository,
    /// The run's object database: the in-memory store alone.
    odb: &'r Odb<'r>,
    /// The repository's object database, which receives the packs.
    disk: &'r Odb<'r>,
    mempack: &'r Mempack<'r>,
    /// The objects written since the last pack.
    builder: Option<PackBuilder<'r>>,
}

impl Packer<'_> {
    /// Copies object `id` of the repository into the run's store, unpacked and not packed
    /// again: an object the run's next write names (the parent of its commit, a shard tree
    /// another handle packed), which libgit2 checks exists.
    pub(super) fn adopt(&self, id: Oid) -> Result<(), RecordError> {
        let object = self.disk.read(id)?;
        self.odb.write(object.kind(), object.data())?;
        Ok(())
    }

    /// Adds object `id` to the next pack; `name` is the path it sits at (the delta search's
    /// hint), `None` for a commit or the top tree.
    pub(super) fn add(&mut self, id: Oid, name: Option<&str>) -> Result<(), RecordError> {
        let builder = match &mut self.builder {
            Some(b) => b,
            None => {
                let mut b = self.repo.packbuilder()?;
                b.set_threads(DELTA_THREADS);
                self.builder.insert(b)
            }
        };
        builder.insert_object(id, name)?;
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
        let mut writer = self.disk.packwriter()?;
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
        with_run(&repo, |run, packer| {
            let mut tree = None;
            for i in 0..versions {
                let blob = run.blob(format!("record {i}\n").as_bytes())?;
                let mut b = run.treebuilder(tree.as_ref())?;
                b.insert(format!("{i:06}-name-1.dsse.json"), blob, 0o100_644)?;
                let id = b.write()?;
                full += run.find_tree(id)?.len() * 47;
                packer.add(blob, None)?;
                packer.add(id, Some("records/000"))?;
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
