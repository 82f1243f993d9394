//! Reading a ledger branch the way an auditor's tools see it: every file of its tree, by path.

use std::collections::BTreeMap;
use std::path::Path;

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
