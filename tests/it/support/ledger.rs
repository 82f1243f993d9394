//! Reading a ledger branch the way an auditor's tools see it: every file of its tree, by path;
//! and the packfiles a repository holds, for the tests of how runs are packed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use git2::Repository;

/// The files of a ledger branch, path -> bytes.
pub type Files = BTreeMap<String, Vec<u8>>;

/// Every blob of the tree `refname` names in the repository at `repo_path`, by its path.
pub fn ledger_files(repo_path: &Path, refname: &str) -> Files {
    let repo = Repository::open(repo_path).expect("open");
    let tree = repo
        .find_reference(refname)
        .and_then(|r| r.peel_to_tree())
        .expect("ledger branch");
    let mut out = Files::new();
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        if entry.kind() == Some(git2::ObjectType::Blob) {
            let blob = repo.find_blob(entry.id()).expect("blob");
            out.insert(
                format!("{dir}{}", entry.name().expect("utf8 name")),
                blob.content().to_vec(),
            );
        }
        git2::TreeWalkResult::Ok
    })
    .expect("walk");
    out
}

/// The packfiles (`*.pack`) of the (non-bare) repository at `repo_path`, sorted.
pub fn packfiles(repo_path: &Path) -> Vec<PathBuf> {
    let dir = repo_path.join(".git/objects/pack");
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "pack"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}
