//! The ledger cannot lose its tail or lie about what was merged: a ledger branch reset to an
//! older commit (no key needed), records lost between runs, a `ledger:` in relgate.yaml that
//! diverts the records, and manifest text that forges lines of a ledger commit message.

use std::path::PathBuf;

use relgate::record::keys::TrustedKeys;
use relgate::record::ledger::LedgerSource;
use relgate::record::verify::{verify_ledger_with, ProblemKind, VerifyOptions, VerifyStatus};

use crate::support::{dev_release, relgate_bin, Repo, Run};

const LEDGER: &str = "refs/heads/relgate/records";

/// A signing key made by `relgate keygen`, its public half trusted in the repository.
struct Key {
    _dir: tempfile::TempDir,
    private: PathBuf,
}

impl Key {
    fn private(&self) -> &str {
        self.private.to_str().expect("utf8 path")
    }
}

fn trusted_key(repo: &Repo) -> Key {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("keys");
    let run = repo.run(&["keygen", "--out", out.to_str().expect("utf8")]);
    run.exit(0);
    repo.file(
        ".relgate/keys/ci.pem",
        std::fs::read(out.join("relgate-signing.pub.pem")).expect("public key"),
    );
    Key {
        _dir: dir,
        private: out.join("relgate-signing.pem"),
    }
}

fn record(repo: &Repo, key: &Key, extra: &[&str]) -> Run {
    let mut args = vec!["record", "--key", key.private()];
    args.extend_from_slice(extra);
    repo.run(&args)
}

fn release(name: &str, version: &str) -> String {
    dev_release(name).replace("version: \"2\"", &format!("version: \"{version}\""))
}

/// The commit at the tip of the ledger branch.
fn tip_commit(git: &git2::Repository) -> git2::Commit<'_> {
    git.find_reference(LEDGER)
        .and_then(|r| r.peel_to_commit())
        .expect("ledger branch")
}

fn ledger_tip(repo: &Repo) -> String {
    let r = git2::Repository::open(repo.path()).expect("open");
    let tip = tip_commit(&r).id().to_string();
    tip
}

/// A repository with two releases, recorded once (the ledger's first record names `c1`).
fn recorded_repo() -> (Repo, Key, String) {
    let repo = Repo::git();
    let key = trusted_key(&repo);
    repo.file("releases/a.yaml", release("a", "1"))
        .file("releases/b.yaml", release("b", "1"));
    let c1 = repo.commit("two releases");
    record(&repo, &key, &[]).exit(0);
    (repo, key, c1)
}

/// [`recorded_repo`] and a libgit2 handle on it, for the tests that doctor its ledger branch.
fn recorded_git() -> (Repo, git2::Repository) {
    let (repo, _key, _) = recorded_repo();
    let git = git2::Repository::open(repo.path()).expect("open");
    (repo, git)
}

/// Commits `tree` on the ledger branch over `parent`, as someone without the signing key
/// would (plain git, no record).
fn commit_on_ledger(
    git: &git2::Repository,
    tree: &git2::Tree<'_>,
    parent: &git2::Commit<'_>,
    message: &str,
) -> git2::Oid {
    let who = git2::Signature::now("mallory", "mallory@example.com").expect("sig");
    git.commit(Some(LEDGER), &who, &who, message, tree, &[parent])
        .expect("commit")
}

#[test]
fn a_ledger_reset_to_an_older_commit_is_reported_with_the_unrecorded_commits() {
    let (repo, key, c1) = recorded_repo();
    let short_tip = ledger_tip(&repo);
    repo.file("releases/b.yaml", release("b", "2"));
    let c2 = repo.commit("release b 2");
    record(&repo, &key, &["--changed", "--base", &c1])
        .exit(0)
        .stderr_has("appended record 3 ");
    repo.run(&["verify"]).exit(0).stdout_has("3 records");

    // Anyone who can push the ledger branch cuts its tail: no key needed.
    let r = git2::Repository::open(repo.path()).expect("open");
    r.reference(
        LEDGER,
        git2::Oid::from_str(&short_tip).expect("oid"),
        true,
        "cut",
    )
    .expect("reset");
    let clone = Repo::clone_of(&repo);
    let run = clone.run(&["verify"]);
    run.exit(1)
        .stdout_has(&c2[..12])
        .stdout_has("releases/b.yaml")
        .stdout_has("no record names it");
    let json = clone.run(&["verify", "--format", "json"]).json();
    assert_eq!(json["completeness"]["unrecorded"], serde_json::json!([c2]));
    assert!(json["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .any(|p| p["kind"] == "unrecorded"));
}

#[test]
fn commits_that_change_nothing_the_gate_reads_need_no_record() {
    let (repo, _key, _c1) = recorded_repo();
    repo.file("README.md", "docs only\n");
    repo.commit("docs");
    repo.remove("releases/a.yaml");
    repo.commit("retire a: a deleted manifest has nothing left to decide");
    repo.run(&["verify"])
        .exit(0)
        .stdout_lacks("no record names");
}

#[test]
fn a_policy_change_after_the_last_record_must_be_recorded() {
    let (repo, _key, _c1) = recorded_repo();
    repo.file("relgate.yaml", "manifests: [\"releases/**/*.yaml\"]\n");
    let c2 = repo.commit("config");
    repo.run(&["verify"])
        .exit(1)
        .stdout_has(&c2[..12])
        .stdout_has("the gate configuration or policies");
}

#[test]
fn a_run_catches_up_on_the_releases_of_a_lost_run() {
    let (repo, key, c1) = recorded_repo();
    repo.file("releases/b.yaml", release("b", "2"));
    let c2 = repo.commit("release b 2 (its record run was cancelled)");
    repo.file("releases/a.yaml", release("a", "2"));
    let c3 = repo.commit("release a 2");
    // The next run's push event says `before` = c2: from there, b 2 is never recorded.
    let run = record(&repo, &key, &["--changed", "--base", &c2, "--since-ledger"]);
    run.exit(0)
        .stderr_has(&format!("recording every change since {}", &c1[..12]))
        .stderr_has("appended records 3..4 ");
    repo.run(&["verify"]).exit(0).stdout_lacks(&c2[..12]);
    // b's record names the commit that changed it; a's names the head.
    let json = repo.run(&["verify", "--format", "json"]).json();
    assert_eq!(json["completeness"]["unrecorded"], serde_json::json!([]));
    let r = git2::Repository::open(repo.path()).expect("open");
    let tree = r
        .find_reference(LEDGER)
        .and_then(|x| x.peel_to_tree())
        .expect("ledger tree");
    let b = tree
        .get_path(std::path::Path::new("records/000/000003-b-2.dsse.json"))
        .or_else(|_| tree.get_path(std::path::Path::new("records/000/000004-b-2.dsse.json")))
        .expect("b's record");
    let envelope: serde_json::Value =
        serde_json::from_slice(r.find_blob(b.id()).expect("blob").content()).expect("json");
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().expect("payload"))
        .expect("base64");
    let statement: serde_json::Value = serde_json::from_slice(&payload).expect("statement");
    let change = &statement["predicate"]["https://relgate.dev/change/v1"];
    assert_eq!(change["git"]["commit"], serde_json::json!(c3));
    assert_eq!(change["changed_in"], serde_json::json!([c2]));
}

#[test]
fn without_catching_up_the_lost_release_is_named_by_verify() {
    let (repo, key, _c1) = recorded_repo();
    repo.file("releases/b.yaml", release("b", "2"));
    let c2 = repo.commit("release b 2 (its record run failed)");
    repo.file("releases/a.yaml", release("a", "2"));
    let c3 = repo.commit("release a 2");
    record(&repo, &key, &["--changed", "--base", &c2]).exit(0);
    repo.run(&["verify"])
        .exit(1)
        .stdout_has(&c2[..12])
        .stdout_lacks(&c3[..12]);
}

#[test]
fn a_ledger_in_relgate_yaml_cannot_divert_the_records_of_a_named_branch() {
    let repo = Repo::git();
    let key = trusted_key(&repo);
    repo.file("releases/a.yaml", release("a", "1"))
        .file("relgate.yaml", "ledger:\n  branch: elsewhere/records\n");
    repo.commit("init");
    record(&repo, &key, &["--ledger", "relgate/records"])
        .exit(2)
        .stderr_has("--ledger relgate/records disagrees with ledger.branch elsewhere/records");
    let r = git2::Repository::open(repo.path()).expect("open");
    assert!(r.find_reference(LEDGER).is_err());
    assert!(r.find_reference("refs/heads/elsewhere/records").is_err());
    // The same branch, written either way, agrees.
    record(&repo, &key, &["--ledger", "refs/heads/elsewhere/records"]).exit(0);
}

#[test]
fn manifest_text_cannot_forge_lines_of_a_ledger_commit_message() {
    let repo = Repo::git();
    let key = trusted_key(&repo);
    repo.file(
        "releases/a.yaml",
        release("a", "1").replace(
            "version: \"1\"",
            "version: \"1\\n\\nApproved-by: alice\\nSigned-off-by: security\\u2028x\"",
        ),
    );
    repo.commit("init");
    // The version is recorded (the decision is whatever the gate says), never as lines.
    record(&repo, &key, &[]);
    let r = git2::Repository::open(repo.path()).expect("open");
    let commit = tip_commit(&r);
    let message = commit.message().expect("utf8 message");
    assert_eq!(message.lines().count(), 1, "{message:?}");
    assert!(
        message.contains("1\\u{a}\\u{a}Approved-by: alice\\u{a}Signed-off-by: security\\u{2028}x"),
        "{message:?}"
    );
    let trailers = git2::message_trailers_strs(message).expect("trailers");
    assert_eq!(trailers.len(), 0, "{message:?}");
}

#[test]
fn a_rotated_key_is_retired_not_deleted_and_a_deleted_one_is_named() {
    let (repo, old_key, _c1) = recorded_repo();
    // Rotation: the old public key moves to retired/, the new one is trusted, CI signs with it.
    let old_pem = std::fs::read(repo.path().join(".relgate/keys/ci.pem")).expect("old key");
    std::fs::remove_file(repo.path().join(".relgate/keys/ci.pem")).expect("rm");
    repo.file(".relgate/keys/retired/ci-2025.pem", &old_pem);
    let new_key = trusted_key(&repo);
    repo.file("releases/a.yaml", release("a", "2"));
    let c2 = repo.commit("rotate the signing key; release a 2");
    record(&repo, &new_key, &["releases/a.yaml"]).exit(0);
    repo.run(&["verify"])
        .exit(0)
        .stdout_has("3 records, 3 signatures verified");
    drop(old_key);
    // Deleted instead of retired: the old records are named with what to do, not just "bad".
    std::fs::remove_file(repo.path().join(".relgate/keys/retired/ci-2025.pem")).expect("rm");
    repo.run(&["verify"])
        .exit(1)
        .stdout_has("[untrusted_key]")
        .stdout_has("which is not among the trusted keys")
        .stdout_has("retire it (keep its public key in <keys>/retired/)")
        .stdout_lacks(&c2[..12]);
}

/// Replaces `name` at the top of the ledger's tree with `bytes`, in a commit on top of the
/// ledger branch: what anyone who can push the branch can do, no key needed.
fn commit_ledger_file(repo: &Repo, name: &str, bytes: &[u8]) {
    let r = git2::Repository::open(repo.path()).expect("open");
    let tip = tip_commit(&r);
    let blob = r.blob(bytes).expect("blob");
    let mut tree = r
        .treebuilder(Some(&tip.tree().expect("tree")))
        .expect("treebuilder");
    tree.insert(name, blob, 0o100_644).expect("insert");
    let tree = r.find_tree(tree.write().expect("write")).expect("tree");
    let who = git2::Signature::now("x", "x@example.com").expect("signature");
    r.commit(Some(LEDGER), &who, &who, "relgate: record", &tree, &[&tip])
        .expect("commit");
}

#[test]
fn a_ledger_file_that_inflates_past_the_limit_is_refused_unread() {
    // 9 MiB of zeros packs into a few KiB; read whole, a few GB would stop the process.
    let (repo, key, _) = recorded_repo();
    commit_ledger_file(&repo, "CHECKPOINT", &vec![0; 9 << 20]);
    repo.run(&["verify", "--no-history"])
        .exit(2)
        .stdout_has("CHECKPOINT")
        .stdout_has("9437184 bytes, above the 8388608-byte limit of a ledger file; not read");
    commit_ledger_file(&repo, "ledger-state.json", &vec![0; 9 << 20]);
    repo.file("releases/c.yaml", release("c", "1"));
    repo.commit("release c");
    record(&repo, &key, &[])
        .exit(2)
        .stderr_has("ledger-state.json: 9437184 bytes, above the 8388608-byte limit");
}

#[cfg(unix)]
#[test]
fn a_checkpoint_that_is_a_fifo_is_refused_not_waited_for() {
    // A directory ledger (or an export bundle, which tar can carry a FIFO in) whose CHECKPOINT
    // is a named pipe: opening it for reading would wait for a writer forever.
    let (repo, _key, _) = recorded_repo();
    let dir = tempfile::tempdir().expect("tmp");
    let archive = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "git archive relgate/records | tar -x -C '{}'",
            dir.path().display()
        ))
        .current_dir(repo.path())
        .status()
        .expect("git archive");
    assert!(archive.success());
    let checkpoint = dir.path().join("CHECKPOINT");
    std::fs::remove_file(&checkpoint).expect("rm");
    let fifo = std::process::Command::new("mkfifo")
        .arg(&checkpoint)
        .status()
        .expect("mkfifo");
    assert!(fifo.success());
    let mut cmd = std::process::Command::new(crate::support::relgate_bin());
    cmd.args(["verify", "--ledger-dir"])
        .arg(dir.path())
        .args(["--keys", ".relgate/keys"])
        .current_dir(repo.path());
    let run = crate::support::run_with_deadline(cmd, std::time::Duration::from_secs(60));
    assert_eq!(run.code, Some(2), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("not a regular file (a named pipe (FIFO))"),
        "{}",
        run.stdout
    );
}

/// The ledger branch of `repo` pointed at `commit` (or deleted), as a push can do.
fn move_ledger(repo: &Repo, commit: Option<git2::Oid>) {
    let r = git2::Repository::open(repo.path()).expect("open");
    match commit {
        Some(oid) => {
            r.reference(LEDGER, oid, true, "push").expect("move");
        }
        None => r
            .find_reference(LEDGER)
            .and_then(|mut b| b.delete())
            .expect("delete"),
    }
}

#[test]
fn a_ledger_emptied_by_a_push_is_not_intact() {
    // An orphan commit with an empty tree: no records, no CHECKPOINT, no key needed.
    let (repo, _key, c1) = recorded_repo();
    let r = git2::Repository::open(repo.path()).expect("open");
    let empty = r
        .find_tree(r.treebuilder(None).and_then(|t| t.write()).expect("tree"))
        .expect("tree");
    let who = git2::Signature::now("x", "x@example.com").expect("signature");
    let orphan = r
        .commit(None, &who, &who, "relgate: empty", &empty, &[])
        .expect("commit");
    move_ledger(&repo, Some(orphan));
    let clone = Repo::clone_of(&repo);
    clone
        .run(&["verify"])
        .exit(1)
        .stdout_has("0 records")
        .stdout_has(&c1[..12])
        .stdout_has("no record names it");
}

#[test]
fn a_pinned_origin_stops_a_deleted_ledger_from_starting_again() {
    let (repo, key, _) = recorded_repo();
    let r = git2::Repository::open(repo.path()).expect("open");
    let tip = tip_commit(&r);
    let checkpoint = tip
        .tree()
        .expect("tree")
        .get_name("CHECKPOINT")
        .expect("CHECKPOINT")
        .to_object(&r)
        .expect("blob")
        .peel_to_blob()
        .expect("blob");
    let origin = String::from_utf8_lossy(checkpoint.content())
        .lines()
        .next()
        .expect("origin line")
        .to_owned();
    let unpinned = std::fs::read_to_string(repo.path().join("relgate.yaml"))
        .unwrap_or_else(|_| "apiVersion: relgate.dev/v1\nkind: GateConfig\n".to_owned());
    let pinned = format!("{unpinned}\nledger:\n  origin: {origin}\n");
    repo.file("relgate.yaml", &pinned);
    repo.commit("pin the ledger's origin");
    record(&repo, &key, &[]).exit(0);
    repo.run(&["verify"]).exit(0);

    // The branch is deleted (a push, no key): the next run refuses to start a new ledger.
    let old_tip = ledger_tip(&repo);
    move_ledger(&repo, None);
    repo.file("releases/c.yaml", release("c", "1"));
    repo.commit("release c");
    record(&repo, &key, &[])
        .exit(2)
        .stderr_has("has no records, but relgate.yaml pins ledger.origin");

    // A ledger started again anyway (by a run without the pin) is another ledger.
    repo.file("relgate.yaml", &unpinned);
    record(&repo, &key, &[]).exit(0);
    repo.file("relgate.yaml", &pinned);
    repo.run(&["verify"])
        .exit(1)
        .stdout_has("but relgate.yaml pins this ledger's origin")
        .stdout_has(&origin);
    record(&repo, &key, &[])
        .exit(2)
        .stderr_has("but relgate.yaml pins ledger.origin");

    // Restored, the pinned ledger verifies again.
    move_ledger(&repo, Some(git2::Oid::from_str(&old_tip).expect("oid")));
    repo.run(&["verify", "--no-history"])
        .exit(1)
        .stdout_has("releases/c.yaml");
}

#[cfg(unix)]
#[test]
fn the_repositorys_key_directory_is_never_a_symbolic_link() {
    // `.relgate/keys` linked elsewhere would make the trust root whatever the link points at,
    // changing without a commit: verify refuses it (exit 2) and names the link. An explicit
    // --keys of the same directory is the caller's choice and verifies.
    let (repo, _key, _) = recorded_repo();
    verify_keys_linked(&repo, ".relgate/keys");
    // A linked `.relgate` likewise.
    let (repo, _key, _) = recorded_repo();
    verify_keys_linked(&repo, ".relgate");
}

#[cfg(unix)]
fn verify_keys_linked(repo: &Repo, link: &str) {
    repo.run(&["verify"]).exit(0);
    let elsewhere = tempfile::tempdir().expect("tmp");
    let moved = elsewhere.path().join("moved");
    std::fs::rename(repo.path().join(link), &moved).expect("move");
    std::os::unix::fs::symlink(&moved, repo.path().join(link)).expect("link");
    repo.run(&["verify"])
        .exit(2)
        .stderr_has(&format!("{link} is a symbolic link"));
    let keys = repo.path().join(".relgate/keys");
    repo.run(&["verify", "--keys", keys.to_str().expect("utf8")])
        .exit(0);
}

/// A tree of 4,500 entries with 4,000-byte names (about 17 MiB, above the 16 MiB limit of a
/// ledger tree), each naming `blob`.
fn huge_tree(git: &git2::Repository, blob: git2::Oid) -> git2::Oid {
    let mut tree = git.treebuilder(None).expect("builder");
    let long = "x".repeat(4000);
    for i in 0..4500 {
        tree.insert(format!("{i:06}-{long}.dsse.json"), blob, 0o100_644)
            .expect("insert");
    }
    let id = tree.write().expect("tree");
    let size = git.odb().expect("odb").read_header(id).expect("header").0;
    assert!(size > 16 << 20, "{size}");
    id
}

#[test]
fn record_refuses_a_ledger_whose_tip_tree_is_too_large() {
    // `record` read the tip's tree whole (a 400 MiB one took 1.9 GB and 19 s) and appended to
    // a ledger verify refuses. It now refuses it from the object header, and appends nothing.
    let (repo, key, _) = recorded_repo();
    let git = git2::Repository::open(repo.path()).expect("open");
    let tip = tip_commit(&git);
    let mut top = git
        .treebuilder(Some(&tip.tree().expect("tree")))
        .expect("builder");
    let blob = git.blob(b"junk").expect("blob");
    let junk = huge_tree(&git, blob);
    // The junk entries at the top itself: copy them into the tip's tree.
    for entry in git.find_tree(junk).expect("junk").iter() {
        top.insert(entry.name_bytes(), entry.id(), 0o100_644)
            .expect("insert");
    }
    let top = git.find_tree(top.write().expect("top")).expect("top tree");
    let bad = commit_on_ledger(&git, &top, &tip, "a huge root");
    repo.file("releases/c.yaml", release("c", "1"));
    repo.commit("a third release");
    record(&repo, &key, &[])
        .exit(2)
        .says("-byte limit of a ledger directory; not read");
    assert_eq!(ledger_tip(&repo), bad.to_string(), "nothing appended");
}

#[test]
fn a_ledger_tree_too_large_to_be_a_shard_is_refused_unread() {
    // Whoever can push the ledger branch can commit a tree that packs small and inflates big;
    // the history walk reads a shard tree per commit. A shard of 1,000 records is about 80 KB:
    // a 17 MiB one is refused from its object header, by name, and verify fails (exit 1).
    let (repo, git) = recorded_git();
    let tip = tip_commit(&git);
    let blob = git.blob(b"{}").expect("blob");
    let shard = huge_tree(&git, blob);
    let records = tip
        .tree()
        .expect("tree")
        .get_name("records")
        .expect("records")
        .id();
    let mut records = git
        .treebuilder(Some(&git.find_tree(records).expect("records tree")))
        .expect("builder");
    records.insert("999", shard, 0o040_000).expect("insert");
    let records = records.write().expect("records");
    let mut top = git
        .treebuilder(Some(&tip.tree().expect("tree")))
        .expect("builder");
    top.insert("records", records, 0o040_000).expect("insert");
    let top = git.find_tree(top.write().expect("top")).expect("top tree");
    commit_on_ledger(&git, &top, &tip, "a huge shard");
    let size = git
        .odb()
        .expect("odb")
        .read_header(shard)
        .expect("header")
        .0;
    assert!(size > 16 << 20, "{size}");
    repo.run(&["verify"])
        .exit(1)
        .says("-byte limit of a ledger directory; not read");
}

/// Commits `count` junk trees onto the ledger, each its tip's tree plus `names` new names
/// (made by `name(commit, i)`) at `place` (`""`: the top; else a shard under `records/`).
fn commit_junk(
    git: &git2::Repository,
    place: &str,
    count: usize,
    names: usize,
    name: impl Fn(usize, usize) -> String,
) {
    let blob = git.blob(b"{}").expect("blob");
    for c in 0..count {
        let tip = tip_commit(git);
        let root = tip.tree().expect("tree");
        let mut junk = git.treebuilder(None).expect("builder");
        for i in 0..names {
            junk.insert(name(c, i), blob, 0o100_644).expect("insert");
        }
        let junk = git
            .find_tree(junk.write().expect("junk"))
            .expect("junk tree");
        let mut top = git.treebuilder(Some(&root)).expect("builder");
        if place.is_empty() {
            for entry in junk.iter() {
                top.insert(entry.name_bytes(), entry.id(), 0o100_644)
                    .expect("insert");
            }
        } else {
            let records = root.get_name("records").expect("records").id();
            let mut records = git
                .treebuilder(Some(&git.find_tree(records).expect("records tree")))
                .expect("builder");
            records.insert(place, junk.id(), 0o040_000).expect("insert");
            top.insert("records", records.write().expect("records"), 0o040_000)
                .expect("insert");
        }
        let top = git.find_tree(top.write().expect("top")).expect("top tree");
        commit_on_ledger(git, &top, &tip, "junk");
    }
}

#[test]
fn what_a_ledger_commit_does_wrong_is_listed_up_to_a_limit_then_counted() {
    // Each commit of a ledger can add a tree of some 300,000 names that are not part of a
    // ledger: listing every one held about 140 MB per commit (20 commits took 3 GB). A
    // commit's problems are listed up to 100 and the rest counted; the verdict is the same.
    let (repo, git) = recorded_git();
    commit_junk(&git, "", 3, 250, |c, i| format!("junk-{c}-{i:04}"));
    let run = repo.run(&["verify"]);
    run.exit(1)
        .stdout_has("junk-0-0000")
        .stdout_has("junk-2-0099")
        .stdout_lacks("junk-0-0100")
        .stdout_has("150 more problems like the ones above are not listed");
    assert_eq!(
        run.stdout
            .matches("more problems like the ones above")
            .count(),
        3
    );
    assert_eq!(
        run.stdout.matches("which is not part of a ledger").count(),
        300,
        "{}",
        run.stdout
    );

    // Record names added out of order to a shard: the same.
    let (repo, git) = recorded_git();
    commit_junk(&git, "500", 1, 250, |_, i| {
        format!("{:06}-x-1.dsse.json", 500_000 + 2 * i)
    });
    let run = repo.run(&["verify"]);
    run.exit(1)
        .stdout_has("150 more records added out of order are not listed");
    assert_eq!(
        run.stdout.matches("where record").count(),
        100,
        "{}",
        run.stdout
    );

    // The limit is per kind of problem: junk cannot crowd a removed record out of the list.
    let (repo, git) = recorded_git();
    commit_junk(&git, "000", 1, 150, |_, i| format!("junk-{i:04}"));
    let run = repo.run(&["verify"]);
    run.exit(1)
        .stdout_has("removed records/000/000001-")
        .stdout_has("removed records/000/000002-")
        .stdout_has("50 more problems like the ones above are not listed");
}

/// Commits onto the ledger a root tree of raw bytes: the tip's tree with `extra` appended
/// (git never writes such a tree; `git hash-object --literally` does).
fn commit_raw_root(git: &git2::Repository, extra: &[u8]) -> git2::Oid {
    let tip = tip_commit(git);
    let odb = git.odb().expect("odb");
    let mut raw = odb.read(tip.tree_id()).expect("tree").data().to_vec();
    raw.extend_from_slice(extra);
    let tree = odb.write(git2::ObjectType::Tree, &raw).expect("write tree");
    let tree = git.find_tree(tree).expect("tree");
    commit_on_ledger(git, &tree, &tip, "raw tree")
}

/// A raw tree entry.
fn raw_entry(mode: &str, name: &str, id: git2::Oid) -> Vec<u8> {
    let mut out = format!("{mode} {name}\0").into_bytes();
    out.extend_from_slice(id.as_bytes());
    out
}

#[test]
fn a_tree_that_lists_records_twice_is_tampering_not_a_second_ledger() {
    // A second `records` entry after the genuine one: libgit2 (and verify) read the first, a
    // checkout and `git archive` the second, with record 2 replaced. It verified INTACT.
    let (repo, git) = recorded_git();
    let tip = tip_commit(&git);
    let records = tip
        .tree()
        .expect("tree")
        .get_name("records")
        .expect("records")
        .id();
    let mut forged = git
        .treebuilder(Some(&git.find_tree(records).expect("records tree")))
        .expect("builder");
    let shard = git
        .find_tree(
            git.find_tree(records)
                .expect("tree")
                .get_name("000")
                .expect("shard")
                .id(),
        )
        .expect("shard");
    let name = shard
        .iter()
        .map(|e| e.name().expect("utf8").to_owned())
        .find(|n| n.starts_with("000002-"))
        .expect("record 2");
    let mut shard = git.treebuilder(Some(&shard)).expect("builder");
    shard
        .insert(&name, git.blob(b"{}").expect("blob"), 0o100_644)
        .expect("insert");
    forged
        .insert("000", shard.write().expect("shard"), 0o040_000)
        .expect("insert");
    let forged = forged.write().expect("records");
    commit_raw_root(&git, &raw_entry("40000", "records", forged));
    repo.run(&["verify"])
        .exit(1)
        .stdout_has("lists records twice or out of git's order");
    // Without the history walk, the tip's tree is refused unread (and the release commit
    // then counts as unrecorded).
    repo.run(&["verify", "--no-history"])
        .exit(1)
        .stdout_has("lists records twice or out of git's order");
}

/// Commits on the ledger branch, as someone without the key would, a `CHECKPOINT` made a
/// directory holding a script, then the tree of the head before it again; returns that head
/// and the restoring commit.
fn checkpoint_made_a_directory_then_restored(git: &git2::Repository) -> (git2::Oid, git2::Oid) {
    let tip = tip_commit(git);
    let root = tip.tree().expect("tree");
    let mut dir = git.treebuilder(None).expect("builder");
    dir.insert("evil.sh", git.blob(b"echo hi").expect("blob"), 0o100_755)
        .expect("insert");
    let mut top = git.treebuilder(Some(&root)).expect("builder");
    top.insert("CHECKPOINT", dir.write().expect("dir"), 0o040_000)
        .expect("insert");
    let top = git.find_tree(top.write().expect("top")).expect("top");
    let bad = commit_on_ledger(git, &top, &tip, "a directory");
    let bad = git.find_commit(bad).expect("commit");
    let restored = commit_on_ledger(git, &root, &bad, "restored");
    (tip.id(), restored)
}

#[test]
fn a_ledger_name_turned_into_a_directory_is_named_even_when_restored() {
    // `CHECKPOINT` made a directory holding another file, then restored: the file under it
    // was no name the walk counted as added, and the ledger verified INTACT.
    let (repo, git) = recorded_git();
    checkpoint_made_a_directory_then_restored(&git);
    repo.run(&["verify"])
        .exit(1)
        .stdout_has("made CHECKPOINT something other than a regular file");
}

#[test]
fn a_record_made_executable_is_a_changed_record() {
    // The same bytes under mode 100755: a checkout of the ledger makes the record executable.
    // The walk compared record entries by id and kind only, and this verified INTACT.
    let (repo, git) = recorded_git();
    let tip = tip_commit(&git);
    let root = tip.tree().expect("tree");
    let records = git
        .find_tree(root.get_name("records").expect("records").id())
        .expect("records tree");
    let shard_entry = records.iter().next().expect("a shard");
    let shard_name = shard_entry.name().expect("utf-8").to_owned();
    let shard = git.find_tree(shard_entry.id()).expect("shard");
    let first = shard.iter().next().expect("a record");
    let record_name = first.name().expect("utf-8").to_owned();
    let mut edited = git.treebuilder(Some(&shard)).expect("builder");
    edited
        .insert(&record_name, first.id(), 0o100_755)
        .expect("insert");
    let mut recs = git.treebuilder(Some(&records)).expect("builder");
    recs.insert(&shard_name, edited.write().expect("shard"), 0o040_000)
        .expect("insert");
    let mut top = git.treebuilder(Some(&root)).expect("builder");
    top.insert("records", recs.write().expect("records"), 0o040_000)
        .expect("insert");
    let top = git.find_tree(top.write().expect("top")).expect("top");
    commit_on_ledger(&git, &top, &tip, "chmod +x");
    repo.run(&["verify"]).exit(1).stdout_has(&format!(
        "changed the mode of records/{shard_name}/{record_name} from 100644 to 100755"
    ));
}

#[test]
fn a_parent_that_cannot_be_read_is_not_a_shallow_clone() {
    // A ledger commit whose parent is a blob: outside a shallow clone that is a doctored
    // branch, and the history before it cannot be checked (it was only a warning).
    let (repo, git) = recorded_git();
    let tip = tip_commit(&git);
    let blob = git.blob(b"not a commit").expect("blob");
    let raw = format!(
        "tree {}\nparent {blob}\nauthor m <m@example.com> 1700000000 +0000\ncommitter m <m@example.com> 1700000000 +0000\n\nodd parent\n",
        tip.tree_id()
    );
    let odd = git
        .odb()
        .expect("odb")
        .write(git2::ObjectType::Commit, raw.as_bytes())
        .expect("commit");
    git.reference(LEDGER, odd, true, "odd parent").expect("ref");
    repo.run(&["verify", "--no-history"]).exit(0);
    // (The reflog also shows the branch moved to a commit that does not descend from the old
    // head: exit 1.)
    repo.run(&["verify"])
        .exit(1)
        .stdout_has("is not a shallow clone: the history before it was not checked");
}

#[test]
fn the_history_walk_lists_ten_thousand_problems_at_most() {
    // 60 commits each replacing a shard's junk with 101 new names: 202 problems a commit,
    // held to the end. 40,000 such commits held 1 GB; the walk now lists 10,000 in all.
    let (repo, git) = recorded_git();
    commit_junk(&git, "500", 60, 101, |c, i| format!("j{c:02}-{i:03}"));
    let run = repo.run(&["verify"]);
    run.exit(1)
        .stdout_has("(the history walk lists the first 10000)");
    let listed = run.stdout.matches("[history_").count();
    assert!(listed <= 10_002, "{listed}");
}

#[test]
fn the_history_walk_reads_no_tree_larger_than_a_ledger_writes() {
    // Two 300,000-entry shard trees (10.8 MB each, under the 16 MiB limit of any ledger tree)
    // alternating under 100 commits packed into 1.4 MB and took 31 s to walk. The walk refuses
    // a shard tree above 512 KiB (1,000 records need about 175 KB) and a top-level tree above
    // 64 KiB (a ledger's holds three entries) from the object header, unread.
    let long = "x".repeat(100);
    let (repo, git) = recorded_git();
    commit_junk(&git, "500", 2, 5000, |c, i| format!("{c}-{i:04}-{long}"));
    repo.run(&["verify"])
        .exit(1)
        .stdout_has("-byte limit of a ledger directory; not read")
        .stdout_has(&format!("above the {}-byte limit", 512 << 10));
    let (repo, git) = recorded_git();
    commit_junk(&git, "", 1, 1000, |c, i| format!("{c}-{i:04}-{long}"));
    repo.run(&["verify"])
        .exit(2)
        .stdout_has(&format!("above the {}-byte limit", 64 << 10));
}

/// The ledger of [`recorded_git`] after someone without the key doctored its history: a commit
/// making `CHECKPOINT` a directory and one restoring it, the branch forced back to before them
/// and on to the restoring commit again (a forced update in the reflog). The head's files are
/// intact: only the history checks find anything.
fn doctored_history() -> (Repo, LedgerSource, TrustedKeys) {
    let (repo, git) = recorded_git();
    let (tip, restored) = checkpoint_made_a_directory_then_restored(&git);
    git.reference(LEDGER, tip, true, "reset: moving back")
        .expect("force");
    git.reference(LEDGER, restored, true, "merge: fast-forward")
        .expect("forward");
    let keys = TrustedKeys::load_dir(&repo.path().join(".relgate/keys")).expect("keys");
    let source = LedgerSource::Git {
        repo: repo.path().to_owned(),
        branch: LEDGER.to_owned(),
    };
    (repo, source, keys)
}

#[test]
fn the_history_checks_find_the_same_in_a_process_of_their_own_as_on_a_thread() {
    // `relgate verify` walks the history in a child process (`relgate history-walk`): libgit2
    // shares its pack locks and delta-base cache between the threads of a process. What the
    // child finds must be what a thread finds, byte for byte.
    let (_repo, source, keys) = doctored_history();
    let json = |history_process: Option<PathBuf>| {
        let options = VerifyOptions {
            history_process,
            ..VerifyOptions::default()
        };
        serde_json::to_string_pretty(&verify_ledger_with(&source, &keys, None, &options))
            .expect("json")
    };
    let on_thread = json(None);
    let in_process = json(Some(relgate_bin().to_owned()));
    assert_eq!(on_thread, in_process);
    for kind in ["history_unexpected_file", "history_rewritten"] {
        assert!(in_process.contains(kind), "{kind} missing: {in_process}");
    }
}

#[cfg(unix)]
#[test]
fn a_history_process_that_fails_or_says_nothing_readable_leaves_the_ledger_unverified() {
    // Fails closed: a child that exits non-zero or prints what is not its findings means the
    // history was not checked (exit 2), never an intact ledger; one that cannot be started at
    // all leaves the checks to a thread, which finds what it always found.
    let (repo, source, keys) = doctored_history();
    let verify = |exe: &str| {
        let options = VerifyOptions {
            history_process: Some(PathBuf::from(exe)),
            ..VerifyOptions::default()
        };
        verify_ledger_with(&source, &keys, None, &options)
    };
    for (exe, says) in [
        ("/bin/false", "the history check process failed"),
        ("/bin/echo", "printed what does not parse"),
    ] {
        let report = verify(exe);
        let [read_error] = report.problems.as_slice() else {
            panic!("{exe}: not one problem: {:?}", report.problems);
        };
        assert_eq!(read_error.kind, ProblemKind::ReadError, "{exe}");
        assert!(read_error.message.contains(says), "{}", read_error.message);
        assert!(
            read_error.message.contains("the history was not checked"),
            "{}",
            read_error.message
        );
        assert_eq!(report.status, VerifyStatus::Unverifiable, "{exe}");
        assert_eq!(report.commits_checked, 0, "{exe}");
    }
    let missing = repo.path().join("no-such-program");
    let report = verify(missing.to_str().expect("utf8"));
    assert!(report.commits_checked > 0, "{:?}", report.problems);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.kind == ProblemKind::HistoryRewritten),
        "{:?}",
        report.problems
    );
}
