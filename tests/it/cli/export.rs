//! `relgate export` after `relgate record` through the whole binary, on a real git repository:
//! the CSV of the recorded decisions and, once a record on the ledger branch is edited, the
//! problems and verdict printed on stderr (snapshots; commit ids and digests redacted).

use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use git2::{IndexAddOption, Repository, Signature};

use crate::support::{project_root, Repo};

/// Replaces every run of 12 or more hex digits (commit ids, digests, key ids) with `<hex>`.
fn redact(text: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    for c in text.chars().chain(std::iter::once('\u{0}')) {
        if c.is_ascii_hexdigit() {
            run.push(c);
            continue;
        }
        if run.len() >= 12 {
            out.push_str("<hex>");
        } else {
            out.push_str(&run);
        }
        run.clear();
        if c != '\u{0}' {
            out.push(c);
        }
    }
    out
}

/// The evaluation demo (a passing and a blocked release), committed, its decisions recorded
/// with a key the repository trusts.
fn recorded_repo() -> (Repo, tempfile::TempDir) {
    let repo = Repo::git();
    repo.copy_dir(&project_root().join("tests/fixtures/evals/demo"), ".");
    let key_dir = tempfile::tempdir().expect("tmp");
    let out = key_dir.path().join("k");
    let out_arg = out.to_str().expect("utf8").to_owned();
    repo.run_env(&["keygen", "--out", &out_arg], &[]).exit(0);
    repo.file(
        ".relgate/keys/ci.pem",
        std::fs::read(out.join("relgate-signing.pub.pem")).expect("public key"),
    );
    let r = Repository::open(repo.path()).expect("open");
    let mut index = r.index().expect("index");
    index
        .add_all(["*"].iter(), IndexAddOption::DEFAULT, None)
        .expect("add");
    index.write().expect("write");
    let tree = r
        .find_tree(index.write_tree().expect("tree"))
        .expect("tree");
    let sig = Signature::now("dev", "dev@example.com").expect("sig");
    r.commit(Some("HEAD"), &sig, &sig, "init", &tree, &[])
        .expect("commit");
    let key: PathBuf = out.join("relgate-signing.pem");
    repo.run_env(&["record", "--key", key.to_str().expect("utf8")], &[])
        .exit(1);
    (repo, key_dir)
}

#[test]
fn export_csv_of_recorded_decisions() {
    let (repo, _keys) = recorded_repo();
    let run = repo.run_env(&["export"], &[]);
    run.exit(0)
        .stderr_has("INTACT")
        .stderr_has("2 rows of 2 records (filter: none); wrote CSV to stdout");
    insta::assert_snapshot!("export_csv", redact(&run.stdout));
}

#[test]
fn export_of_an_edited_ledger_prints_the_problems_and_exits_1() {
    let (repo, _keys) = recorded_repo();
    // Edit record 1 on the ledger branch in a new commit (push access, no key).
    let r = Repository::open(repo.path()).expect("open");
    let reference = "refs/heads/relgate/records";
    let head = r
        .find_reference(reference)
        .and_then(|x| x.peel_to_commit())
        .expect("ledger");
    let tree = head.tree().expect("tree");
    let records = r
        .find_tree(tree.get_name("records").expect("records").id())
        .expect("tree");
    let shard = r
        .find_tree(records.get_name("000").expect("shard").id())
        .expect("tree");
    let entry = shard
        .iter()
        .find(|e| e.name().is_ok_and(|n| n.starts_with("000001-")))
        .expect("record 1");
    let name = entry.name().expect("utf8").to_owned();
    let mut env: serde_json::Value =
        serde_json::from_slice(r.find_blob(entry.id()).expect("blob").content()).expect("json");
    let payload = B64
        .decode(env["payload"].as_str().expect("payload"))
        .expect("base64");
    let mut statement: serde_json::Value = serde_json::from_slice(&payload).expect("json");
    statement["predicate"]["https://relgate.dev/change/v1"]["manifest"]["ticket"] =
        "EDITED-1".into();
    env["payload"] = B64
        .encode(serde_json::to_vec(&statement).expect("json"))
        .into();
    let blob = r
        .blob(&serde_json::to_vec_pretty(&env).expect("json"))
        .expect("blob");
    let mut sb = r.treebuilder(Some(&shard)).expect("tb");
    sb.insert(&name, blob, 0o100_644).expect("insert");
    let mut rb = r.treebuilder(Some(&records)).expect("tb");
    rb.insert("000", sb.write().expect("write"), 0o040_000)
        .expect("insert");
    let mut tb = r.treebuilder(Some(&tree)).expect("tb");
    tb.insert("records", rb.write().expect("write"), 0o040_000)
        .expect("insert");
    let new_tree = r.find_tree(tb.write().expect("write")).expect("tree");
    let sig = Signature::now("mallory", "m@example.com").expect("sig");
    let commit = r
        .commit(None, &sig, &sig, "fix", &new_tree, &[&head])
        .expect("commit");
    r.reference(reference, commit, true, "push").expect("ref");

    let run = repo.run_env(&["export", "--format", "jsonl"], &[]);
    run.exit(1);
    let rows: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl"))
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["verified"], false);
    assert_eq!(rows[1]["verified"], true);
    insta::assert_snapshot!("export_tampered_stderr", redact(&run.stderr));
}
