//! `relgate keygen`, `relgate record` and `relgate verify` through the whole binary, on real git
//! repositories: records of passing, failing and erroring manifests, what they contain, that
//! the work tree and index are never touched, tampering named by verify, keys from a file or
//! the environment, untrusted and missing keys, directory ledgers, the ledger configured in
//! relgate.yaml, and a round trip of `examples/demo`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use git2::{Oid, Repository, Signature};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::{dev_release, project_root, Repo, Run};

const LEDGER_REF: &str = "refs/heads/relgate/records";

use crate::support::ledger::Files;

/// Commits every file of the work tree on the current branch (the DSL's `Repo::commit`).
fn commit_all(repo: &Repo, message: &str) -> Oid {
    Oid::from_str(&repo.commit(message)).expect("commit id")
}

/// A key pair made by `relgate keygen`, the private half outside the repository.
struct Keys {
    _dir: tempfile::TempDir,
    private: PathBuf,
    public: PathBuf,
    id: String,
}

impl Keys {
    fn private(&self) -> &str {
        self.private.to_str().expect("utf8 path")
    }

    fn pem(&self) -> String {
        std::fs::read_to_string(&self.private).expect("read key")
    }
}

fn keygen(repo: &Repo) -> Keys {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("keys");
    let run = repo.run_env(&["keygen", "--out", out.to_str().expect("utf8")], &[]);
    run.exit(0).stderr_has("relgate-signing.pub.pem");
    let id = run.stdout.trim().to_owned();
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id:?}"
    );
    Keys {
        _dir: dir,
        private: out.join("relgate-signing.pem"),
        public: out.join("relgate-signing.pub.pem"),
        id,
    }
}

/// Trusts `keys` in the repository: its public key in `.relgate/keys/`.
fn trust(repo: &Repo, keys: &Keys) {
    repo.file(
        &format!(".relgate/keys/{}.pem", &keys.id[..12]),
        std::fs::read(&keys.public).expect("public key"),
    );
}

/// The evaluation-evidence demo (one passing, one blocked release) plus a manifest relgate
/// cannot decide on, committed, with a trusted key.
fn gated_repo() -> (Repo, Keys) {
    let repo = Repo::git();
    repo.copy_dir(&project_root().join("tests/fixtures/evals/demo"), ".");
    repo.file(
        "releases/broken.yaml",
        "apiVersion: relgate.dev/v1\nkind: Nope\n",
    );
    let keys = keygen(&repo);
    trust(&repo, &keys);
    commit_all(&repo, "init");
    (repo, keys)
}

/// Everything about the main repository that a ledger append must not change.
fn git_state(repo: &Repo) -> (Vec<String>, Option<Oid>, Option<String>, Vec<u8>) {
    let r = Repository::open(repo.path()).expect("open");
    let mut options = git2::StatusOptions::new();
    options.include_untracked(true).include_ignored(false);
    let statuses: Vec<String> = r
        .statuses(Some(&mut options))
        .expect("status")
        .iter()
        .map(|s| format!("{:?} {}", s.status(), s.path().unwrap_or_default()))
        .collect();
    let head = r.head().expect("head");
    (
        statuses,
        head.target(),
        head.name().ok().map(str::to_owned),
        std::fs::read(r.path().join("index")).expect("index file"),
    )
}

/// The files of the ledger branch.
fn ledger_files(repo: &Repo, refname: &str) -> Files {
    crate::support::ledger::ledger_files(repo.path(), refname)
}

/// The records of a ledger (files under records/), in seq order.
fn records(files: &Files) -> Vec<(&String, Value)> {
    files
        .iter()
        .filter(|(path, _)| path.starts_with("records/"))
        .map(|(path, bytes)| (path, payload(bytes)))
        .collect()
}

fn payload(envelope: &[u8]) -> Value {
    let env: Value = serde_json::from_slice(envelope).expect("envelope json");
    let bytes = B64
        .decode(env["payload"].as_str().expect("payload"))
        .expect("base64");
    serde_json::from_slice(&bytes).expect("statement json")
}

fn change(statement: &Value) -> &Value {
    &statement["predicate"]["https://relgate.dev/change/v1"]
}

/// Writes the tree holding `files` (paths with `/`).
fn write_tree(r: &Repository, files: &[(&str, Oid)]) -> Oid {
    let mut builder = r.treebuilder(None).expect("tb");
    let mut dirs: BTreeMap<&str, Vec<(&str, Oid)>> = BTreeMap::new();
    for (path, oid) in files {
        match path.split_once('/') {
            Some((dir, rest)) => dirs.entry(dir).or_default().push((rest, *oid)),
            None => {
                builder.insert(path, *oid, 0o100_644).expect("insert");
            }
        }
    }
    for (dir, entries) in dirs {
        builder
            .insert(dir, write_tree(r, &entries), 0o040_000)
            .expect("insert");
    }
    builder.write().expect("write")
}

/// Commits an edited copy of the ledger on top of the ledger branch, as someone with push
/// access to the branch (but not the signing key) could.
fn tamper_ledger(repo: &Repo, edit: impl FnOnce(&mut Files)) {
    let mut files = ledger_files(repo, LEDGER_REF);
    edit(&mut files);
    let r = Repository::open(repo.path()).expect("open");
    let blobs: Vec<(&str, Oid)> = files
        .iter()
        .map(|(p, b)| (p.as_str(), r.blob(b).expect("blob")))
        .collect();
    let tree = r.find_tree(write_tree(&r, &blobs)).expect("tree");
    let head = r
        .find_reference(LEDGER_REF)
        .and_then(|x| x.peel_to_commit())
        .expect("head");
    let sig = Signature::now("mallory", "mallory@example.com").expect("sig");
    let commit = r
        .commit(None, &sig, &sig, "fix a typo", &tree, &[&head])
        .expect("commit");
    r.reference(LEDGER_REF, commit, true, "push")
        .expect("move ref");
}

fn record(repo: &Repo, keys: &Keys, extra: &[&str]) -> Run {
    let mut args = vec!["record", "--key", keys.private()];
    args.extend_from_slice(extra);
    repo.run_env(&args, &[])
}

#[test]
fn keygen_prints_the_key_id_and_never_overwrites() {
    let repo = Repo::new();
    let run = repo.run_env(&["keygen", "--out", "k"], &[]);
    run.exit(0);
    let id = run.stdout.trim();
    assert_eq!(id.len(), 64);
    let public = std::fs::read(repo.path().join("k/relgate-signing.pub.pem")).expect("public");
    let pem = String::from_utf8(public).expect("utf8");
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    let private = std::fs::read(repo.path().join("k/relgate-signing.pem")).expect("private");
    repo.run_env(&["keygen", "--out", "k"], &[])
        .exit(2)
        .stderr_has("refusing to overwrite");
    assert_eq!(
        std::fs::read(repo.path().join("k/relgate-signing.pem")).expect("private"),
        private,
        "the key was overwritten"
    );
}

#[test]
fn record_appends_one_record_per_decision_then_verify_names_tampering() {
    let (repo, keys) = gated_repo();
    let before = git_state(&repo);
    assert!(before.0.is_empty(), "work tree not clean: {:?}", before.0);

    // pass, fail and error: the run's decision is error (exit 2), every decision recorded.
    let run = record(
        &repo,
        &keys,
        &[
            "--format",
            "json",
            "--ci-run-url",
            "https://ci.example.com/runs/7",
        ],
    );
    run.exit(2)
        .stderr_has("appended records 1..3")
        .stderr_has("relgate/records")
        .stderr_has("checkpoint: 3 records");
    let report = run.json();
    assert_eq!(report["summary"]["manifests"], 3);
    assert_eq!(
        before,
        git_state(&repo),
        "record touched the work tree, index or HEAD"
    );

    let files = ledger_files(&repo, LEDGER_REF);
    assert!(files.contains_key("CHECKPOINT"), "{:?}", files.keys());
    let recs = records(&files);
    let paths: Vec<&str> = recs.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "records/000/000001-_-_.dsse.json",
            "records/000/000002-greet-user-formal-3.dsse.json",
            "records/000/000003-greet-user-2.dsse.json",
        ],
        "records follow the report order (by file)"
    );
    let head = Repository::open(repo.path())
        .expect("open")
        .head()
        .expect("head")
        .target()
        .expect("commit")
        .to_string();
    for (i, (_, statement)) in recs.iter().enumerate() {
        let c = change(statement);
        let result = &report["results"][i];
        assert_eq!(c["seq"], i + 1);
        assert_eq!(c["decision"], result["decision"]);
        assert_eq!(c["manifest"]["path"], result["file"]);
        assert_eq!(c["manifest"]["digest"], result["digest"]);
        assert_eq!(c["findings"], result["findings"]);
        assert_eq!(c["git"]["commit"], head.as_str());
        assert!(c["git"]["ref"]
            .as_str()
            .is_some_and(|r| r.starts_with("refs/heads/")));
        assert_eq!(c["ci_run_url"], "https://ci.example.com/runs/7");
        assert_eq!(c["pull_request"], Value::Null);
        let p = &statement["predicate"];
        assert_eq!(
            format!(
                "sha256:{}",
                p["policy"]["digest"]["sha256"].as_str().expect("digest")
            ),
            report["policy_digest"].as_str().expect("policy digest")
        );
        assert_eq!(p["timeVerified"], crate::support::NOW);
        assert_eq!(
            statement["subject"][0]["name"], result["file"],
            "the manifest is the first subject"
        );
    }
    // The error record: a manifest of unknown kind, recorded as FAILED.
    let broken = &recs[0].1;
    assert_eq!(change(broken)["decision"], "error");
    assert_eq!(broken["predicate"]["verificationResult"], "FAILED");
    assert_eq!(change(broken)["manifest"]["kind"], "Nope");
    // The blocked release: findings, the prompt's digest as read, the evidence files' digests.
    let fail = &recs[1].1;
    assert_eq!(change(fail)["decision"], "fail");
    assert!(change(fail)["findings"]
        .as_array()
        .is_some_and(|f| f.iter().any(|f| f["rule"] == "EVAL-PROMPT-MISMATCH")));
    assert_eq!(fail["subject"][1]["name"], "prompts/greet-formal.prompt");
    assert_eq!(
        fail["subject"][1]["digest"]["sha256"],
        "263baf09c2533dd9fc4e32a478af2329e3aefc59dc67f1307f0cdc633b2b6fd5"
    );
    let summary = &change(fail)["manifest"];
    assert_eq!(summary["name"], "greet-user-formal");
    assert_eq!(summary["environment"], "staging");
    assert_eq!(summary["tier"], 3);
    assert_eq!(summary["owner"]["team"], "assistants");
    assert_eq!(summary["baseline"], "1");
    assert_eq!(summary["candidate"], "3");
    let evidence: Vec<(&str, &str)> = change(fail)["evidence"]
        .as_array()
        .expect("evidence")
        .iter()
        .map(|e| {
            (
                e["uri"].as_str().expect("uri"),
                e["sha256"].as_str().expect("sha256"),
            )
        })
        .collect();
    for file in [
        "evals/french-greeting-output.json",
        "evals/greet-v1.promptfoo.json",
        "evals/inspect-log-formats.json",
    ] {
        let bytes = std::fs::read(repo.path().join(file)).expect("evidence file");
        let sha = hex::encode(Sha256::digest(&bytes));
        assert!(
            evidence.contains(&(file, sha.as_str())),
            "{file} missing from {evidence:?}"
        );
    }
    assert_eq!(
        fail["predicate"]["inputAttestations"]
            .as_array()
            .map(Vec::len),
        Some(evidence.len())
    );
    assert_eq!(recs[2].1["predicate"]["verificationResult"], "PASSED");

    // verify: intact.
    repo.run_env(&["verify"], &[])
        .exit(0)
        .stdout_has("INTACT")
        .stdout_has("3 records, 3 signatures verified, 1 ledger commits checked")
        .stdout_has("checkpoint to keep");
    let json = repo.run_env(&["verify", "--format", "json"], &[]);
    json.exit(0);
    let verified = json.json();
    assert_eq!(verified["status"], "intact");
    assert_eq!(verified["records"], 3);
    assert_eq!(before, git_state(&repo), "verify touched the repository");

    // Someone edits record 2 on the ledger branch (decision fail -> pass).
    tamper_ledger(&repo, |files| {
        let path = "records/000/000002-greet-user-formal-3.dsse.json";
        let mut env: Value = serde_json::from_slice(&files[path]).expect("json");
        let text = String::from_utf8(
            B64.decode(env["payload"].as_str().expect("payload"))
                .expect("b64"),
        )
        .expect("utf8")
        .replace("\"decision\":\"fail\"", "\"decision\":\"pass\"");
        env["payload"] = B64.encode(text).into();
        files.insert(path.to_owned(), serde_json::to_vec(&env).expect("json"));
    });
    repo.run_env(&["verify"], &[])
        .exit(1)
        .stdout_has("TAMPERED record 2, records/000/000002-greet-user-formal-3.dsse.json")
        .stdout_has("[bad_signature]")
        .stdout_has("[history_record_changed]")
        .stdout_has("[prev_mismatch]")
        .stdout_lacks("checkpoint to keep");
    let json = repo.run_env(&["verify", "--format", "json"], &[]);
    json.exit(1);
    let problems = json.json()["problems"].clone();
    assert!(
        problems
            .as_array()
            .expect("problems")
            .iter()
            .any(|p| p["kind"] == "bad_signature" && p["record"]["seq"] == 2),
        "{problems:#}"
    );
}

/// A record describes its manifest whichever way the gate stopped: the gate keeps one copy of
/// each manifest (inside the policy input when policies ran, on its own when the schema
/// stopped them), and the record must read it from either place.
#[test]
fn records_describe_manifests_that_policies_did_not_evaluate() {
    let (repo, keys) = gated_repo();
    repo.file(
        "releases/half.yaml",
        "apiVersion: relgate.dev/v1\nkind: PromptRelease\nmetadata:\n  name: half-done\n  version: \"9\"\n  environment: production\n",
    );
    commit_all(&repo, "a manifest without a spec");
    record(&repo, &keys, &[]).exit(2);
    let files = ledger_files(&repo, LEDGER_REF);
    let recs = records(&files);
    let (path, half) = recs
        .iter()
        .find(|(_, s)| change(s)["manifest"]["path"] == "releases/half.yaml")
        .expect("the schema-failing manifest is recorded");
    assert!(path.ends_with("-half-done-9.dsse.json"), "{path}");
    let summary = &change(half)["manifest"];
    assert_eq!(change(half)["decision"], "fail");
    assert!(change(half)["findings"]
        .as_array()
        .is_some_and(|f| f.iter().all(|f| f["rule"] == "SCHEMA")));
    assert_eq!(summary["kind"], "PromptRelease");
    assert_eq!(summary["name"], "half-done");
    assert_eq!(summary["environment"], "production");
    // A manifest the policies evaluated is described from the policy input's copy.
    let (_, evaluated) = recs
        .iter()
        .find(|(_, s)| change(s)["manifest"]["name"] == "greet-user-formal")
        .expect("the evaluated manifest is recorded");
    assert_eq!(change(evaluated)["manifest"]["environment"], "staging");
    assert_eq!(change(evaluated)["manifest"]["owner"]["team"], "assistants");
}

#[test]
fn record_takes_the_key_and_run_context_from_the_environment() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("answer"))
        .file(
            "pr.json",
            r#"{"number": 512, "author": {"login": "dana"}, "approvers": ["bob", "erin"], "merged_by": "bob"}"#,
        );
    let keys = keygen(&repo);
    trust(&repo, &keys);
    commit_all(&repo, "init");
    let pem = keys.pem();
    let run = repo.run_env(
        &["record", "releases", "--pr-json", "pr.json"],
        &[
            ("RELGATE_SIGNING_KEY", pem.as_str()),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "acme/assistants"),
            ("GITHUB_RUN_ID", "9001"),
        ],
    );
    run.exit(0)
        .stdout_has("PASS  releases/a.yaml")
        .stderr_has("appended record 1")
        .stderr_has(&keys.id);
    let files = ledger_files(&repo, LEDGER_REF);
    let recs = records(&files);
    assert_eq!(recs.len(), 1);
    let c = change(&recs[0].1);
    assert_eq!(
        c["ci_run_url"],
        "https://github.com/acme/assistants/actions/runs/9001"
    );
    // No origin remote: the repository is named from the GitHub environment.
    assert_eq!(c["git"]["repo"], "https://github.com/acme/assistants");
    assert_eq!(
        c["pull_request"],
        serde_json::json!({"number": 512, "author": "dana", "approvers": ["bob", "erin"], "merged_by": "bob"})
    );
    repo.run_env(&["verify"], &[]).exit(0).stdout_has("INTACT");

    // A path in the variable instead of the PEM is refused without echoing it.
    let run = repo.run_env(
        &["record", "releases"],
        &[("RELGATE_SIGNING_KEY", "/secret/path/key.pem")],
    );
    run.exit(2).stderr_has("must hold the PEM text");
    assert!(!run.stderr.contains("/secret/path"), "{}", run.stderr);
}

#[test]
fn origin_credentials_never_reach_a_record() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("answer"));
    let keys = keygen(&repo);
    trust(&repo, &keys);
    commit_all(&repo, "init");
    Repository::open(repo.path())
        .expect("open")
        .remote(
            "origin",
            "https://x-access-token:ghs_SECRET@github.com/acme/assistants.git",
        )
        .expect("remote");
    record(&repo, &keys, &[]).exit(0);
    let files = ledger_files(&repo, LEDGER_REF);
    let c = change(&records(&files)[0].1).clone();
    assert_eq!(c["git"]["repo"], "https://github.com/acme/assistants.git");
    for bytes in files.values() {
        assert!(
            !String::from_utf8_lossy(bytes).contains("SECRET"),
            "a credential leaked into the ledger"
        );
    }
}

#[test]
fn records_signed_by_a_key_that_is_not_trusted_fail_verification() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("answer"));
    let trusted = keygen(&repo);
    let other = keygen(&repo);
    trust(&repo, &trusted);
    commit_all(&repo, "init");
    record(&repo, &other, &[]).exit(0);
    repo.run_env(&["verify"], &[])
        .exit(1)
        .stdout_has("[untrusted_key]")
        .stdout_has(&other.id)
        .stdout_has("record 1");
}

#[test]
fn record_without_a_key_decides_nothing_and_exits_2() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("answer"));
    commit_all(&repo, "init");
    let run = repo.run_env(&["record"], &[]);
    run.exit(2)
        .stderr_has("no signing key")
        .stderr_has("RELGATE_SIGNING_KEY");
    assert_eq!(run.stdout, "", "nothing is evaluated without a key");
    repo.run_env(&["record", "--key", "missing.pem"], &[])
        .exit(2)
        .stderr_has("missing.pem");
    let r = Repository::open(repo.path()).expect("open");
    assert!(
        r.find_reference(LEDGER_REF).is_err(),
        "no ledger without a key"
    );
    // verify: no ledger and no keys are "could not verify", not tampering.
    repo.run_env(&["verify"], &[])
        .exit(2)
        .stderr_has(".relgate/keys");
    let keys = keygen(&repo);
    trust(&repo, &keys);
    repo.run_env(&["verify"], &[])
        .exit(2)
        .stdout_has("COULD NOT VERIFY")
        .stdout_has("[source_unavailable]");
}

#[test]
fn a_failed_append_is_exit_2_after_the_report() {
    let (repo, keys) = gated_repo();
    record(&repo, &keys, &["releases/greet-pass.yaml"]).exit(0);
    // The head record is replaced: the next append must refuse to extend a broken chain.
    tamper_ledger(&repo, |files| {
        let path = "records/000/000001-greet-user-2.dsse.json".to_owned();
        let mut bytes = files[&path].clone();
        let last = bytes.len() - 3;
        bytes[last] ^= 1;
        files.insert(path, bytes);
    });
    record(&repo, &keys, &["releases/greet-pass.yaml"])
        .exit(2)
        .stdout_has("PASS  releases/greet-pass.yaml")
        .stderr_has("cannot append the record of releases/greet-pass.yaml")
        .stderr_has("relgate verify");
}

#[test]
fn a_file_that_cannot_be_read_is_reported_and_not_recorded() {
    let (repo, keys) = gated_repo();
    record(
        &repo,
        &keys,
        &["releases/greet-pass.yaml", "releases/missing.yaml"],
    )
    .exit(2)
    .stderr_has("not recorded: releases/missing.yaml")
    .stderr_has("appended record 1 ");
}

#[test]
fn ledger_in_a_directory_round_trip() {
    // Not a git repository: the ledger must be a directory.
    let repo = Repo::new();
    repo.file("releases/a.yaml", dev_release("answer"));
    let keys = keygen(&repo);
    record(&repo, &keys, &[])
        .exit(2)
        .stderr_has("not in a git repository")
        .stderr_has("--ledger-dir");
    record(&repo, &keys, &["--ledger-dir", "ledger"])
        .exit(0)
        .stderr_has("appended record 1");
    assert!(repo
        .path()
        .join("ledger/records/000/000001-answer-2.dsse.json")
        .is_file());
    let key_dir = keys.public.parent().expect("dir").to_str().expect("utf8");
    // The key directory holds the private key too: verify refuses it.
    repo.run_env(
        &["verify", "--ledger-dir", "ledger", "--keys", key_dir],
        &[],
    )
    .exit(2)
    .stderr_has("only public keys");
    let trusted = repo.path().join("trusted");
    std::fs::create_dir(&trusted).expect("mkdir");
    std::fs::copy(&keys.public, trusted.join("k.pem")).expect("copy");
    repo.run_env(
        &[
            "verify",
            "--ledger-dir",
            "ledger",
            "--keys",
            "trusted",
            "--save-checkpoint",
            "kept.checkpoint",
        ],
        &[],
    )
    .exit(0)
    .stdout_has("INTACT");
    let kept = std::fs::read_to_string(repo.path().join("kept.checkpoint")).expect("kept");
    assert!(kept.contains("\n1\n"), "{kept}");
    record(&repo, &keys, &["--ledger-dir", "ledger"])
        .exit(0)
        .stderr_has("appended record 2");
    repo.run_env(
        &[
            "verify",
            "--ledger-dir",
            "ledger",
            "--keys",
            "trusted",
            "--checkpoint",
            "kept.checkpoint",
        ],
        &[],
    )
    .exit(0)
    .stdout_has("the older checkpoint (size 1) is a prefix of the ledger (size 2)");
    // Record 1 edited in place.
    let first = repo
        .path()
        .join("ledger/records/000/000001-answer-2.dsse.json");
    let text = std::fs::read_to_string(&first).expect("read");
    let mut env: Value = serde_json::from_str(&text).expect("json");
    env["signatures"][0]["sig"] = B64.encode([1u8; 64]).into();
    std::fs::write(&first, serde_json::to_vec(&env).expect("json")).expect("write");
    repo.run_env(
        &["verify", "--ledger-dir", "ledger", "--keys", "trusted"],
        &[],
    )
    .exit(1)
    .stdout_has("TAMPERED record 1, records/000/000001-answer-2.dsse.json");
}

#[test]
fn ledger_branch_from_relgate_yaml_and_no_history() {
    let repo = Repo::git();
    repo.file("releases/a.yaml", dev_release("answer")).file(
        "relgate.yaml",
        "apiVersion: relgate.dev/v1\nkind: GateConfig\nledger: {branch: audit/ledger}\n",
    );
    let keys = keygen(&repo);
    trust(&repo, &keys);
    commit_all(&repo, "init");
    record(&repo, &keys, &[])
        .exit(0)
        .stderr_has("refs/heads/audit/ledger");
    let r = Repository::open(repo.path()).expect("open");
    assert!(r.find_reference("refs/heads/audit/ledger").is_ok());
    assert!(r.find_reference(LEDGER_REF).is_err());
    repo.run_env(&["verify"], &[]).exit(0).stdout_has("INTACT");
    // --ledger must agree with the configuration: records written where `relgate verify`
    // does not look would be lost.
    record(&repo, &keys, &["--ledger", "relgate/records"])
        .exit(2)
        .stderr_has("disagrees with ledger.branch audit/ledger in relgate.yaml");
    assert!(r.find_reference(LEDGER_REF).is_err());
    repo.file(
        "relgate.yaml",
        "apiVersion: relgate.dev/v1\nkind: GateConfig\n",
    );
    record(&repo, &keys, &["--ledger", "relgate/records"]).exit(0);
    assert!(r.find_reference(LEDGER_REF).is_ok());
    // A record changed and restored in two later commits: only the history shows it.
    let original = ledger_files(&repo, LEDGER_REF);
    tamper_ledger(&repo, |files| {
        let path = "records/000/000001-answer-2.dsse.json".to_owned();
        let mut bytes = files[&path].clone();
        bytes.push(b'\n');
        files.insert(path, bytes);
    });
    tamper_ledger(&repo, |files| *files = original);
    repo.run_env(&["verify", "--ledger", "relgate/records"], &[])
        .exit(1)
        .stdout_has("[history_record_changed]");
    repo.run_env(
        &["verify", "--ledger", "relgate/records", "--no-history"],
        &[],
    )
    .exit(0)
    .stdout_has("0 ledger commits checked");
    // Each signature on its own: the same verdict on honest signatures.
    repo.run_env(
        &[
            "verify",
            "--ledger",
            "relgate/records",
            "--no-history",
            "--strict-signatures",
        ],
        &[],
    )
    .exit(0);
    // An invalid ledger key is a configuration error.
    repo.file(
        "relgate.yaml",
        "apiVersion: relgate.dev/v1\nkind: GateConfig\nledger: {branch: 3}\n",
    );
    repo.run_env(&["verify"], &[])
        .exit(2)
        .stderr_has("relgate.yaml");
}

#[test]
fn record_in_a_fresh_clone_continues_the_published_ledger() {
    let (origin, keys) = gated_repo();
    record(&origin, &keys, &["releases/greet-pass.yaml"])
        .exit(0)
        .stderr_has("starting a new ledger on relgate/records");
    let clone = Repo::clone_of(&origin);
    let r = Repository::open(clone.path()).expect("open");
    assert!(r.find_reference(LEDGER_REF).is_err());
    assert!(r
        .find_reference("refs/remotes/origin/relgate/records")
        .is_ok());
    // verify reads origin/relgate/records when there is no local branch.
    clone
        .run_env(&["verify"], &[])
        .exit(0)
        .stdout_has("1 records");
    let before = git_state(&clone);
    record(&clone, &keys, &["releases/greet-pass.yaml"])
        .exit(0)
        .stderr_has("continuing the ledger of refs/remotes/origin/relgate/records")
        .stderr_has("appended record 2 ");
    assert_eq!(before, git_state(&clone));
    clone
        .run_env(&["verify"], &[])
        .exit(0)
        .stdout_has("2 records, 2 signatures verified, 2 ledger commits checked");
}

#[test]
fn a_gate_root_below_the_repository_root_records_repository_paths() {
    let repo = Repo::git();
    repo.file("svc/releases/a.yaml", dev_release("answer"))
        .file(
            "svc/relgate.yaml",
            "apiVersion: relgate.dev/v1\nkind: GateConfig\n",
        );
    let keys = keygen(&repo);
    repo.file(
        &format!("svc/.relgate/keys/{}.pem", &keys.id[..12]),
        std::fs::read(&keys.public).expect("public key"),
    );
    commit_all(&repo, "init");
    repo.run_env(&["record", "svc/releases", "--key", keys.private()], &[])
        .exit(0);
    let files = ledger_files(&repo, LEDGER_REF);
    let recs = records(&files);
    assert_eq!(recs[0].0, "records/000/000001-answer-2.dsse.json");
    let statement = &recs[0].1;
    assert_eq!(statement["subject"][0]["name"], "svc/releases/a.yaml");
    assert_eq!(change(statement)["manifest"]["path"], "svc/releases/a.yaml");
    assert!(statement["predicate"]["resourceUri"]
        .as_str()
        .is_some_and(|u| u.contains("/svc/releases/a.yaml@")));
    // verify from the gate root finds its keys in svc/.relgate/keys.
    repo.run_in_env("svc", &["verify"], &[])
        .exit(0)
        .stdout_has("INTACT");
}

#[test]
fn demo_round_trip() {
    let repo = Repo::git();
    repo.copy_dir(&project_root().join("examples/demo"), ".");
    commit_all(&repo, "demo");
    // keygen into the repository's key directory, then take the private key out of it.
    repo.run_env(&["keygen", "--out", ".relgate/keys"], &[])
        .exit(0);
    let secret = tempfile::tempdir().expect("tmp");
    let key = secret.path().join("relgate-signing.pem");
    std::fs::rename(repo.path().join(".relgate/keys/relgate-signing.pem"), &key).expect("mv");
    commit_all(&repo, "trust the record-signing key");
    let before = git_state(&repo);
    let check = repo.run_env(&["check", "--format", "json"], &[]);
    check.exit(1);
    let manifests = check.json()["summary"]["manifests"]
        .as_u64()
        .expect("manifest count");
    assert!(manifests > 5, "{manifests}");
    let run = repo.run_env(&["record", "--key", key.to_str().expect("utf8")], &[]);
    run.exit(1)
        .stdout_has("FAIL")
        .stderr_has(&format!("appended records 1..{manifests}"));
    assert_eq!(before, git_state(&repo));
    repo.run_env(&["verify"], &[]).exit(0).stdout_has(&format!(
        "{manifests} records, {manifests} signatures verified, 1 ledger commits checked"
    ));
    // Once more: the ledger grows, the old checkpoint is consistent with it.
    let kept = repo.path().join("kept");
    repo.run_env(
        &["verify", "--save-checkpoint", kept.to_str().expect("utf8")],
        &[],
    )
    .exit(0);
    repo.run_env(&["record", "--key", key.to_str().expect("utf8")], &[])
        .exit(1);
    repo.run_env(
        &["verify", "--checkpoint", kept.to_str().expect("utf8")],
        &[],
    )
    .exit(0)
    .stdout_has("is a prefix of");
}

/// The packfiles of the repository.
fn packs(repo: &Repo) -> Vec<PathBuf> {
    crate::support::ledger::packfiles(repo.path())
}

#[test]
fn a_run_is_one_packfile_and_one_commit() {
    let (repo, keys) = gated_repo();
    let before = packs(&repo);
    record(&repo, &keys, &[])
        .exit(2)
        .stderr_has("appended records 1..3 ");
    let after = packs(&repo);
    assert_eq!(after.len(), before.len() + 1, "{after:?}");
    let r = Repository::open(repo.path()).expect("open");
    // Every object of the branch is in that pack, none is loose.
    let mut walk = r.revwalk().expect("walk");
    walk.push_ref(LEDGER_REF).expect("ref");
    let commits: Vec<Oid> = walk.map(|c| c.expect("commit")).collect();
    assert_eq!(commits.len(), 1, "one commit per run");
    for c in &commits {
        let loose = r
            .path()
            .join("objects")
            .join(&c.to_string()[..2])
            .join(&c.to_string()[2..]);
        assert!(!loose.exists(), "{c} is a loose object");
        let commit = r.find_commit(*c).expect("commit");
        assert_eq!(
            commit.message().unwrap_or_default(),
            "relgate: record 000001..000003 (3 records: 1 pass, 1 fail, 1 error)\n"
        );
    }
    repo.run_env(&["verify"], &[])
        .exit(0)
        .stdout_has("INTACT")
        .stdout_has("3 records, 3 signatures verified, 1 ledger commits checked");
    // The next run continues the chain in a second pack.
    record(&repo, &keys, &[])
        .exit(2)
        .stderr_has("appended records 4..6 ");
    assert_eq!(packs(&repo).len(), before.len() + 2);
    repo.run_env(&["verify"], &[]).exit(0).stdout_has("INTACT");
}

#[test]
fn a_record_changed_inside_its_packfile_is_caught() {
    let (repo, keys) = gated_repo();
    record(&repo, &keys, &[]).exit(2);
    let pack = packs(&repo).pop().expect("a pack");
    let files = ledger_files(&repo, LEDGER_REF);
    let (path, _) = files
        .iter()
        .find(|(p, _)| p.starts_with("records/000/000002-"))
        .expect("record 2");
    let r = Repository::open(repo.path()).expect("open");
    let blob = r
        .find_reference(LEDGER_REF)
        .and_then(|x| x.peel_to_tree())
        .and_then(|t| t.get_path(std::path::Path::new(path)))
        .expect("entry")
        .id();
    drop(r);
    // Where the record's blob sits in the pack, from git's own reading of the index.
    let index = std::fs::File::open(pack.with_extension("idx")).expect("idx");
    let out = std::process::Command::new("git")
        .args(["show-index"])
        .stdin(index)
        .output()
        .expect("git show-index");
    let offset: usize = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains(&blob.to_string()))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|o| o.parse().ok())
        .expect("the record's offset");
    let original = std::fs::read(&pack).expect("pack");
    for at in [offset + 8, offset + 40, offset + 120] {
        let mut bytes = original.clone();
        bytes[at] ^= 0x20;
        std::fs::write(&pack, &bytes).expect("write pack");
        let run = repo.run_env(&["verify"], &[]);
        assert!(
            matches!(run.code, Some(1 | 2)),
            "byte {at} changed: {run:?}"
        );
        run.stdout_lacks("INTACT");
    }
    std::fs::write(&pack, &original).expect("restore");
    repo.run_env(&["verify"], &[]).exit(0);
}

#[test]
fn verify_advises_git_gc_when_loose_objects_pile_up() {
    let (repo, keys) = gated_repo();
    record(&repo, &keys, &[]).exit(2);
    let clean = repo.run_env(&["verify"], &[]);
    clean.exit(0);
    assert!(!clean.stderr.contains("hint:"), "{}", clean.stderr);
    // Objects a fetch leaves loose, or single-record runs, in numbers git's gc --auto acts on.
    // git estimates from the fan-out directory 17 alone (times 256), and so does relgate:
    // 30 objects there read as about 7,680.
    let r = Repository::open(repo.path()).expect("open");
    let mut written = 0;
    for i in 0.. {
        let bytes = format!("object {i}\n");
        let id = Oid::hash_object(git2::ObjectType::Blob, bytes.as_bytes()).expect("hash");
        if id.as_bytes()[0] == 0x17 {
            r.blob(bytes.as_bytes()).expect("blob");
            written += 1;
            if written == 30 {
                break;
            }
        }
    }
    repo.run_env(&["verify"], &[])
        .exit(0)
        .stderr_has("relgate verify: hint: the repository holds about ")
        .stderr_has(" loose objects")
        .stderr_has("gc`");
    record(&repo, &keys, &[])
        .exit(2)
        .stderr_has("relgate record: hint: ");
    let gc = std::process::Command::new("git")
        .args(["gc", "-q", "--prune=now"])
        .current_dir(repo.path())
        .status()
        .expect("git gc");
    assert!(gc.success());
    let after = repo.run_env(&["verify"], &[]);
    after.exit(0).stdout_has("INTACT");
    assert!(!after.stderr.contains("hint:"), "{}", after.stderr);
}
