//! `relgate collect` through the whole binary (docs/collect.md): real git repositories whose
//! ledgers are written with the library's `GitLedger` and real Ed25519 keys (public keys
//! committed on `main`), collected into a Parquet dataset. Three repositories collected, then
//! only new records read; a tampered record, a rewritten ledger and an untrusted key named
//! with the other repositories still written; a `file://` URL fetched with libgit2; the
//! Parquet schema against `schemas/collect.schema.json`; and DuckDB (the PyPI package) running
//! the KPI SQL of docs/collect.md, extracted from the doc, against the figures
//! `relgate export --format html` shows for each repository.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use git2::{Repository, Signature};
use relgate::record::keys::Signer;
use relgate::record::ledger::{GitLedger, Ledger};
use relgate::record::statement::{
    Decision, EvidenceDigest, GitInfo, ManifestSummary, PolicyRef, RecordInput,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::{project_root, Repo, Run};

const LEDGER_REF: &str = "refs/heads/relgate/records";

fn sha_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Commits every file of the work tree on the current branch (the DSL's `Repo::commit`).
fn commit_all(repo: &Repo, message: &str) {
    repo.commit(message);
}

/// Record `i` of a repository with seed `seed`: a mix of services, environments, kinds,
/// decisions, failing and warning rules, evidence, rollbacks and times over several days, so
/// every KPI has something to count.
fn input(seed: u64, i: u64) -> RecordInput {
    let services = ["search", "support-bot", "ranker"];
    let decision = if i % 11 == 0 {
        Decision::Error
    } else if i % 5 == 0 || i % 7 == 2 {
        Decision::Fail
    } else {
        Decision::Pass
    };
    let failed: &[&str] = match (decision, i % 4) {
        (Decision::Fail, 0) => &["PRR-MISSING"],
        (Decision::Fail, 1) => &["EVAL-THRESHOLD"],
        (Decision::Fail, 2) => &["SCHEMA"],
        (Decision::Fail, _) => &["EVIDENCE-UNREADABLE", "PRR-OWNER"],
        _ => &[],
    };
    let warned: &[&str] = if i % 7 == 3 { &["EVAL-DRIFT"] } else { &[] };
    let finding = |rule: &str, severity: &str| {
        serde_json::json!({"rule": rule, "severity": severity, "policy": "relgate.test",
                           "message": format!("{rule} fired"), "path": null, "line": 1})
    };
    let mut findings: Vec<Value> = failed.iter().map(|r| finding(r, "deny")).collect();
    findings.extend(warned.iter().map(|r| finding(r, "warn")));
    let error = decision == Decision::Error;
    let name = format!("rel-{}", (i * 7 + seed) % 5);
    let version = ((i / 3) % 4).to_string();
    // Minutes after 2026-01-05T00:00:00Z: about 5 hours apart, a little different per repo.
    let minutes = i * (300 + seed * 7);
    let time = chrono::DateTime::parse_from_rfc3339("2026-01-05T00:00:00Z")
        .expect("time")
        .with_timezone(&chrono::Utc)
        + chrono::Duration::minutes(minutes as i64);
    let time = time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    RecordInput {
        manifest_path: format!("releases/{name}.yaml"),
        manifest_sha256: sha_hex(format!("{seed}-{i}").as_bytes()),
        artifact: None,
        decision,
        findings,
        manifest: ManifestSummary {
            kind: if error {
                String::new()
            } else if i % 4 == 0 {
                "ModelRelease".into()
            } else {
                "PromptRelease".into()
            },
            name: if error { String::new() } else { name },
            version: if error { String::new() } else { version },
            service: Some(services[((i + seed) % 3) as usize].to_owned()),
            environment: (!error)
                .then(|| if i % 3 == 0 { "staging" } else { "production" }.to_owned()),
            tier: Some((i % 3) as u8),
            change_type: (!error)
                .then(|| if i % 9 == 4 { "rollback" } else { "feature" }.to_owned()),
            owner: None,
            ticket: (i % 2 == 0).then(|| format!("AIR-{i}")),
            baseline: None,
            candidate: None,
        },
        git: GitInfo {
            repo: format!("https://git.example.com/acme/r{seed}"),
            commit: sha_hex(format!("c{seed}-{i}").as_bytes())[..40].to_owned(),
            git_ref: Some("refs/heads/main".into()),
        },
        changed_in: Vec::new(),
        pull_request: None,
        slo_readings: vec![],
        bundles: Vec::new(),
        ci_run_url: None,
        evidence: if i % 3 != 0 {
            vec![EvidenceDigest {
                uri: format!("evals/e{i}.json"),
                sha256: sha_hex(&i.to_be_bytes()),
            }]
        } else {
            vec![]
        },
        policy: PolicyRef {
            uri: "relgate:builtin@0.1.0".into(),
            sha256: sha_hex(b"policy bundle"),
        },
        verifier_version: "0.1.0".into(),
        time_verified: time,
    }
}

/// A repository whose `main` commits the public key of `signer` in `.relgate/keys/`, with
/// `n` records on `relgate/records`.
fn ledger_repo(seed: u64, n: u64, signer: &Signer) -> Repo {
    let repo = Repo::git();
    repo.file(".relgate/keys/ci.pem", signer.public_key_pem());
    repo.file("README.md", format!("repository {seed}\n"));
    commit_all(&repo, "init");
    append(&repo, signer, seed, 1..=n);
    repo
}

fn append(repo: &Repo, signer: &Signer, seed: u64, seqs: std::ops::RangeInclusive<u64>) {
    let mut ledger = GitLedger::open(repo.path()).expect("open ledger");
    for i in seqs {
        let receipt = ledger.append(&input(seed, i), signer).expect("append");
        assert_eq!(receipt.seq, i);
    }
}

fn signer(n: u8) -> Signer {
    Signer::from_seed([n; 32])
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// Runs `relgate collect ARGS --out DS --format json` in `work`.
fn collect(work: &Repo, args: &[String]) -> Run {
    let mut all: Vec<&str> = vec!["collect", "--out", "ds", "--format", "json"];
    all.extend(args.iter().map(String::as_str));
    work.run(&all)
}

fn repo_arg(name: &str, repo: &Repo) -> String {
    format!("{name}={}", path_str(repo.path()))
}

/// The summary entry of one repository.
fn entry<'a>(summary: &'a Value, name: &str) -> &'a Value {
    summary["repos"]
        .as_array()
        .expect("repos")
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {summary:#}"))
}

/// Part files under `dir`, relative, sorted.
fn parts(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter(|e| e.path().extension().is_some_and(|x| x == "parquet"))
        .map(|e| {
            e.path()
                .strip_prefix(dir)
                .expect("inside")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    out.sort();
    out
}

/// Runs DuckDB (PyPI `duckdb`) with `sql` statements over the dataset; each result as a list
/// of rows (lists of JSON values).
fn duckdb(dataset: &Path, sql: &[String]) -> Vec<Vec<Vec<Value>>> {
    let script = r#"
import json, sys
import duckdb
dataset, statements = sys.argv[1], json.loads(sys.stdin.read())
con = duckdb.connect()
con.execute(f"CREATE VIEW records AS SELECT * FROM read_parquet('{dataset}/repo=*/date=*/*.parquet', hive_partitioning = true)")
out = []
for s in statements:
    out.append([[v if isinstance(v, (int, float, str, bool, type(None))) else str(v) for v in row] for row in con.execute(s).fetchall()])
print(json.dumps(out))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script, path_str(dataset)])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (scripts/test installs the duckdb package)");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(serde_json::to_string(sql).expect("json").as_bytes())
            .expect("write");
    }
    let out = child.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "duckdb failed (is the PyPI package installed? scripts/test installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("duckdb output")
}

fn count_rows(dataset: &Path) -> BTreeMap<String, (i64, i64)> {
    let result = duckdb(
        dataset,
        &[
            "SELECT repo, count(*), count(DISTINCT seq) FROM records GROUP BY repo ORDER BY repo"
                .to_owned(),
        ],
    );
    result[0]
        .iter()
        .map(|r| {
            (
                r[0].as_str().expect("repo").to_owned(),
                (r[1].as_i64().expect("n"), r[2].as_i64().expect("d")),
            )
        })
        .collect()
}

#[test]
fn collects_three_repositories_then_reads_only_new_records() {
    let (s1, s2, s3) = (signer(1), signer(2), signer(3));
    let a = ledger_repo(1, 20, &s1);
    let b = ledger_repo(2, 25, &s2);
    let c = ledger_repo(3, 30, &s3);
    let work = Repo::new();
    let args = vec![repo_arg("a", &a), repo_arg("b", &b), repo_arg("c", &c)];
    let run = collect(&work, &args);
    run.exit(0).no_panic();
    let summary = run.json();
    assert_eq!(summary["totals"]["repos"], 3);
    assert_eq!(summary["totals"]["records"], 75);
    assert_eq!(summary["totals"]["new_records"], 75);
    for (name, n) in [("a", 20), ("b", 25), ("c", 30)] {
        let e = entry(&summary, name);
        assert_eq!(e["status"], "collected");
        assert_eq!(e["mode"], "full");
        assert_eq!(e["records"], n);
        assert_eq!(e["new_records"], n);
        assert_eq!(
            e["keys"], "HEAD:.relgate/keys",
            "keys from the default branch"
        );
    }
    let ds = work.path().join("ds");
    let first_parts = parts(&ds);
    assert!(
        first_parts
            .iter()
            .any(|p| p.starts_with("repo=a/date=2026-01-05/part-0000000001-")),
        "{first_parts:?}"
    );
    assert_eq!(
        count_rows(&ds),
        BTreeMap::from([
            ("a".to_owned(), (20, 20)),
            ("b".to_owned(), (25, 25)),
            ("c".to_owned(), (30, 30))
        ])
    );

    // New records in two repositories: the next run reads exactly those.
    append(&b, &s2, 2, 26..=28);
    append(&c, &s3, 3, 31..=32);
    let run = collect(&work, &args);
    run.exit(0);
    let summary = run.json();
    assert_eq!(summary["totals"]["new_records"], 5);
    assert_eq!(summary["totals"]["records_read"], 5, "{summary:#}");
    assert_eq!(summary["totals"]["records"], 80);
    for (name, read) in [("a", 0), ("b", 3), ("c", 2)] {
        let e = entry(&summary, name);
        assert_eq!(e["mode"], "incremental");
        assert_eq!(e["records_read"], read, "{name}");
        assert_eq!(e["new_records"], read, "{name}");
    }
    // New part files named by the seq range they hold (one per date): 26 to 28.
    let b_parts: Vec<&str> = entry(&summary, "b")["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .map(|p| p.as_str().expect("part"))
        .collect();
    assert!(
        b_parts[0].contains("/part-0000000026-")
            && b_parts[b_parts.len() - 1].ends_with("-0000000028.parquet"),
        "{b_parts:?}"
    );
    assert_eq!(
        count_rows(&ds),
        BTreeMap::from([
            ("a".to_owned(), (20, 20)),
            ("b".to_owned(), (28, 28)),
            ("c".to_owned(), (32, 32))
        ])
    );

    // Nothing new: nothing read, nothing written.
    let before = parts(&ds);
    let run = collect(&work, &args);
    run.exit(0);
    assert_eq!(run.json()["totals"]["records_read"], 0);
    assert_eq!(parts(&ds), before);

    // --full re-verifies every ledger whole and still writes only what is new (nothing).
    let mut full = args.clone();
    full.push("--full".into());
    let run = collect(&work, &full);
    run.exit(0);
    let summary = run.json();
    assert_eq!(summary["totals"]["records_read"], 80);
    assert_eq!(summary["totals"]["new_records"], 0);
    assert_eq!(parts(&ds), before);

    // The text summary names every repository and the totals.
    work.run(&["collect", "--out", "ds", &args[0], &args[1], &args[2]])
        .exit(0)
        .stdout_has("ok        a: 20 records, 0 new, 0 read (incremental)")
        .stdout_has(
            "relgate collect: 3 repositories, 3 collected, 0 failed; 80 records, 0 new, 0 read",
        );
}

/// Rewrites one file of the ledger branch in a new commit on top of it.
fn edit_ledger_file(repo: &Repo, seq: u64, edit: impl FnOnce(Vec<u8>) -> Vec<u8>) {
    let r = Repository::open(repo.path()).expect("open");
    let head = r
        .find_reference(LEDGER_REF)
        .and_then(|x| x.peel_to_commit())
        .expect("head");
    let tree = head.tree().expect("tree");
    let shard = format!("records/{:03}", seq / 1000);
    let shard_tree = r
        .find_tree(tree.get_path(Path::new(&shard)).expect("shard").id())
        .expect("shard tree");
    let prefix = format!("{seq:06}-");
    let entry = shard_tree
        .iter()
        .find(|e| e.name().is_ok_and(|n| n.starts_with(&prefix)))
        .expect("record file");
    let path = format!("{shard}/{}", entry.name().expect("name"));
    let old = r.find_blob(entry.id()).expect("blob").content().to_vec();
    let blob = r.blob(&edit(old)).expect("new blob");
    let mut update = git2::build::TreeUpdateBuilder::new();
    update.upsert(&path, blob, git2::FileMode::Blob);
    let new_tree = r
        .find_tree(update.create_updated(&r, &tree).expect("update"))
        .expect("tree");
    let sig = Signature::now("mallory", "mallory@example.com").expect("sig");
    let commit = r
        .commit(None, &sig, &sig, "fix a typo", &new_tree, &[&head])
        .expect("commit");
    r.reference(LEDGER_REF, commit, true, "push")
        .expect("move ref");
}

/// A record whose payload says `pass` where it said `fail`, signature kept.
fn flip_decision(envelope: Vec<u8>) -> Vec<u8> {
    let mut env: Value = serde_json::from_slice(&envelope).expect("envelope");
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = b64
        .decode(env["payload"].as_str().expect("payload"))
        .expect("base64");
    let text = String::from_utf8(payload).expect("utf8");
    let forged = text.replace("\"decision\":\"fail\"", "\"decision\":\"pass\"");
    assert_ne!(forged, text, "the record was a fail");
    env["payload"] = Value::String(b64.encode(forged));
    serde_json::to_vec_pretty(&env).expect("json")
}

#[test]
fn a_tampered_record_is_named_and_the_other_repositories_are_collected() {
    let (s1, s2, s3) = (signer(1), signer(2), signer(3));
    let a = ledger_repo(1, 12, &s1);
    let b = ledger_repo(2, 12, &s2);
    let c = ledger_repo(3, 12, &s3);
    // Record 5 of b failed; someone makes it a pass.
    edit_ledger_file(&b, 5, flip_decision);
    let work = Repo::new();
    let args = vec![repo_arg("a", &a), repo_arg("b", &b), repo_arg("c", &c)];
    let run = collect(&work, &args);
    run.exit(1).no_panic();
    let summary = run.json();
    let e = entry(&summary, "b");
    assert_eq!(e["status"], "failed");
    assert_eq!(e["new_records"], 0);
    let problems = e["problems"].to_string();
    assert!(
        problems.contains("record 5") && problems.contains("bad_signature"),
        "{problems}"
    );
    assert_eq!(summary["totals"]["failed"], 1);
    assert_eq!(summary["totals"]["collected"], 2);
    let ds = work.path().join("ds");
    assert!(!ds.join("repo=b").exists(), "no row of b is written");
    let counts = count_rows(&ds);
    assert_eq!(counts.keys().collect::<Vec<_>>(), ["a", "c"]);
    // The text summary names it; exit 1.
    work.run(&["collect", "--out", "ds", &args[0], &args[1], &args[2]])
        .exit(1)
        .stdout_has("FAILED    b: rows withheld")
        .stdout_has("b: record 5, records/000/000005-")
        .stdout_has("relgate collect: exit 1: not collected: b");

    // A record tampered after an incremental base: the new record is read and named.
    append(&a, &s1, 1, 13..=14);
    edit_ledger_file(&a, 14, |env| {
        let mut v: Value = serde_json::from_slice(&env).expect("env");
        let sig = v["signatures"][0]["sig"].as_str().expect("sig").to_owned();
        let mut raw = base64::engine::general_purpose::STANDARD
            .decode(sig)
            .expect("b64");
        raw[0] ^= 1;
        v["signatures"][0]["sig"] =
            Value::String(base64::engine::general_purpose::STANDARD.encode(raw));
        serde_json::to_vec_pretty(&v).expect("json")
    });
    let run = collect(&work, &args[..1]);
    run.exit(1);
    let summary = run.json();
    let e = entry(&summary, "a");
    assert_eq!(e["mode"], "incremental");
    assert_eq!(e["status"], "failed");
    assert!(e["problems"].to_string().contains("record 14"), "{e:#}");
    assert_eq!(count_rows(&ds)["a"], (12, 12), "no row of a's new records");
}

/// Replaces the ledger branch by a new ledger of `n` records: records `1..keep` as before, the
/// rest from another seed, all signed by `signer` (a holder of the CI key rewrites history).
fn rewrite_ledger(repo: &Repo, signer: &Signer, seed: u64, keep: u64, n: u64) {
    let r = Repository::open(repo.path()).expect("open");
    r.find_reference(LEDGER_REF)
        .expect("ledger")
        .delete()
        .expect("delete");
    let mut ledger = GitLedger::open(repo.path()).expect("open ledger");
    for i in 1..=n {
        let s = if i < keep { seed } else { seed + 100 };
        ledger.append(&input(s, i), signer).expect("append");
    }
}

#[test]
fn a_rewritten_ledger_is_reported_and_its_state_kept() {
    let (s1, s2) = (signer(1), signer(2));
    let a = ledger_repo(1, 10, &s1);
    let b = ledger_repo(2, 10, &s2);
    let work = Repo::new();
    let args = vec![repo_arg("a", &a), repo_arg("b", &b)];
    collect(&work, &args).exit(0);
    let state_path = work.path().join("ds/_relgate-collect-state.json");
    let state_before: Value =
        serde_json::from_slice(&std::fs::read(&state_path).expect("state")).expect("json");

    // a: records 1..4 kept, 5.. re-signed with other content, and two more: same origin,
    // a valid signed checkpoint, but not an extension of what was collected.
    rewrite_ledger(&a, &s1, 1, 5, 12);
    // b: a whole new ledger (another origin).
    rewrite_ledger(&b, &s2, 2, 1, 11);
    let run = collect(&work, &args);
    run.exit(1).no_panic();
    let summary = run.json();
    for name in ["a", "b"] {
        let e = entry(&summary, name);
        assert_eq!(e["status"], "rewritten", "{e:#}");
        assert_eq!(e["new_records"], 0);
    }
    assert!(
        entry(&summary, "a")["problems"]
            .to_string()
            .contains("records already collected were rewritten"),
        "{summary:#}"
    );
    assert!(
        entry(&summary, "b")["problems"]
            .to_string()
            .contains("the ledger was replaced"),
        "{summary:#}"
    );
    let state_after: Value =
        serde_json::from_slice(&std::fs::read(&state_path).expect("state")).expect("json");
    assert_eq!(state_after, state_before, "the state is kept");
    let ds = work.path().join("ds");
    assert_eq!(count_rows(&ds)["a"], (10, 10));

    // --full checks the whole ledger against the kept checkpoint: still rewritten.
    let mut full = args.clone();
    full.push("--full".into());
    let run = collect(&work, &full);
    run.exit(1);
    assert_eq!(entry(&run.json(), "a")["status"], "rewritten");
    work.run(&["collect", "--out", "ds", &args[0]])
        .exit(1)
        .stdout_has("REWRITTEN a: rows withheld");
}

#[test]
fn records_signed_by_an_untrusted_key_are_withheld() {
    // The repository trusts signer 1 but its ledger is signed by signer 9.
    let good = ledger_repo(1, 6, &signer(1));
    let bad = Repo::git();
    bad.file(".relgate/keys/ci.pem", signer(1).public_key_pem());
    commit_all(&bad, "init");
    append(&bad, &signer(9), 4, 1..=6);
    let work = Repo::new();
    let run = collect(&work, &[repo_arg("good", &good), repo_arg("bad", &bad)]);
    run.exit(1);
    let summary = run.json();
    let e = entry(&summary, "bad");
    assert_eq!(e["status"], "failed");
    assert!(e["problems"].to_string().contains("untrusted_key"), "{e:#}");
    assert_eq!(entry(&summary, "good")["status"], "collected");

    // --keys overrides the repositories' committed keys: a key directory that trusts neither.
    let keys = Repo::new();
    keys.file("k.pem", signer(7).public_key_pem());
    let run = collect(
        &Repo::new(),
        &[
            repo_arg("good", &good),
            "--keys".into(),
            path_str(keys.path()).into(),
        ],
    );
    run.exit(1);
    assert!(entry(&run.json(), "good")["problems"]
        .to_string()
        .contains("untrusted_key"));

    // A key directory committed with a private key is an error, not a silent skip.
    let leaky = Repo::git();
    leaky.file(
        ".relgate/keys/ci.pem",
        signer(1).private_key_pem().expect("pem"),
    );
    commit_all(&leaky, "init");
    append(&leaky, &signer(1), 1, 1..=2);
    let run = collect(&Repo::new(), &[repo_arg("leaky", &leaky)]);
    run.exit(1);
    assert!(entry(&run.json(), "leaky")["problems"]
        .to_string()
        .contains("ci.pem"));
}

#[test]
fn a_git_url_is_fetched_and_collected_incrementally() {
    let s = signer(5);
    let origin = ledger_repo(5, 8, &s);
    let url = format!("file://{}", path_str(origin.path()));
    let work = Repo::new();
    let list = format!(
        "repos:\n  - name: remote\n    url: {url}\n  - path: {}\n    name: local\n",
        path_str(origin.path())
    );
    work.file("repos.yaml", &list);
    let run = collect(&work, &["--repos".into(), "repos.yaml".into()]);
    run.exit(0);
    let summary = run.json();
    let e = entry(&summary, "remote");
    assert_eq!(e["status"], "collected", "{e:#}");
    assert_eq!(e["records"], 8);
    assert_eq!(e["keys"], "refs/relgate-collect/HEAD:.relgate/keys");
    let mirror = work.path().join("ds/_relgate-mirrors/remote.git");
    let m = Repository::open_bare(&mirror).expect("bare mirror");
    let refs: Vec<String> = m
        .references()
        .expect("refs")
        .flatten()
        .filter_map(|r| r.name().ok().map(str::to_owned))
        .collect();
    assert_eq!(
        refs.len(),
        2,
        "only the ledger branch and the default branch are fetched: {refs:?}"
    );

    append(&origin, &s, 5, 9..=10);
    let run = collect(&work, &["--repos".into(), "repos.yaml".into()]);
    run.exit(0);
    let summary = run.json();
    let e = entry(&summary, "remote");
    assert_eq!(e["mode"], "incremental");
    assert_eq!(e["records_read"], 2);
    assert_eq!(count_rows(&work.path().join("ds"))["remote"], (10, 10));

    // The ledger branch deleted on the remote: the mirror still holds the old ref, which must
    // not be collected as "nothing new".
    let remote = Repository::open(origin.path()).expect("origin");
    remote
        .find_reference("refs/heads/relgate/records")
        .and_then(|mut r| r.delete())
        .expect("delete the ledger branch");
    let run = collect(&work, &["--repos".into(), "repos.yaml".into()]);
    run.exit(1);
    let summary = run.json();
    let e = entry(&summary, "remote");
    assert_ne!(e["status"], "collected", "{e:#}");
    assert!(
        e["problems"]
            .to_string()
            .contains("has no refs/heads/relgate/records"),
        "{e:#}"
    );

    // An unreachable URL is that repository's failure, named.
    let run = collect(
        &Repo::new(),
        &[format!("gone=file://{}/nope", path_str(origin.path()))],
    );
    run.exit(1);
    assert!(entry(&run.json(), "gone")["problems"]
        .to_string()
        .contains("cannot fetch"));
}

#[test]
fn bad_lists_are_refused_before_anything_is_read() {
    let work = Repo::new();
    work.file(
        "dup.yaml",
        "repos:\n  - {name: a, path: x}\n  - {name: a, path: y}\n",
    );
    work.run(&["collect", "--out", "ds", "--repos", "dup.yaml"])
        .exit(2)
        .says("given twice");
    work.file("bad.yaml", "repos:\n  - {name: ../../etc, path: x}\n");
    work.run(&["collect", "--out", "ds", "--repos", "bad.yaml"])
        .exit(2)
        .says("repos[0].name");
    work.file("typo.yaml", "repos:\n  - {name: a, pth: x}\n");
    work.run(&["collect", "--out", "ds", "--repos", "typo.yaml"])
        .exit(2)
        .says("pth");
    work.run(&["collect", "--out", "ds"])
        .exit(2)
        .says("no repository to collect");
    // A ledger branch cannot add a refspec of its own to a fetch.
    work.file(
        "refspec.yaml",
        "repos:\n  - {name: a, url: 'file:///x', ledger: 'x:refs/heads/y'}\n",
    );
    work.run(&["collect", "--out", "ds", "--repos", "refspec.yaml"])
        .exit(2)
        .says("repos[0].ledger");
    work.run(&["collect", "--out", "ds", "a=b=c"]).exit(1);
    // A corrupt state file stops the run (exit 2) rather than collecting everything again.
    work.file("ds/_relgate-collect-state.json", "{not json");
    let repo = ledger_repo(1, 2, &signer(1));
    work.run(&["collect", "--out", "ds", &repo_arg("a", &repo)])
        .exit(2)
        .says("_relgate-collect-state.json");
}

/// The Parquet files carry exactly the published schema: names, order, physical types,
/// logical string annotations, and required/optional as the schema file says.
#[test]
fn parquet_schema_matches_the_published_schema() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let a = ledger_repo(1, 5, &signer(1));
    let work = Repo::new();
    collect(&work, &[repo_arg("a", &a)]).exit(0);
    let ds = work.path().join("ds");
    let part = ds.join(&parts(&ds)[0]);
    let reader =
        SerializedFileReader::new(std::fs::File::open(&part).expect("open")).expect("parquet");
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    let published: Value = serde_json::from_slice(
        &std::fs::read(project_root().join("schemas/collect.schema.json")).expect("schema"),
    )
    .expect("json");
    let columns = published["columns"].as_array().expect("columns");
    let root = schema.root_schema();
    let fields = root.get_fields();
    assert_eq!(fields.len(), columns.len());
    for (field, col) in fields.iter().zip(columns) {
        let name = col["name"].as_str().expect("name");
        assert_eq!(field.name(), name);
        let info = field.get_basic_info();
        let nullable = col["nullable"].as_bool().expect("nullable");
        assert_eq!(
            info.repetition(),
            if nullable {
                parquet::basic::Repetition::OPTIONAL
            } else {
                parquet::basic::Repetition::REQUIRED
            },
            "{name}"
        );
        let want = col["type"].as_str().expect("type");
        let got = if field.is_group() {
            let list = &field.get_fields()[0];
            let element = &list.get_fields()[0];
            assert_eq!(
                info.logical_type_ref(),
                Some(&parquet::basic::LogicalType::List)
            );
            assert_eq!(
                list.get_basic_info().repetition(),
                parquet::basic::Repetition::REPEATED
            );
            assert_eq!(
                element.get_basic_info().logical_type_ref(),
                Some(&parquet::basic::LogicalType::String)
            );
            "list<string>".to_owned()
        } else {
            match (field.get_physical_type(), info.logical_type_ref()) {
                (parquet::basic::Type::BYTE_ARRAY, Some(parquet::basic::LogicalType::String)) => {
                    "string".to_owned()
                }
                (parquet::basic::Type::INT64, None) => "int64".to_owned(),
                (parquet::basic::Type::INT32, None) => "int32".to_owned(),
                (parquet::basic::Type::BOOLEAN, None) => "boolean".to_owned(),
                other => format!("{other:?}"),
            }
        };
        assert_eq!(got, want, "{name}");
    }
    // The export's CSV header is the same columns after `repo`.
    let names: Vec<&str> = columns
        .iter()
        .map(|c| c["name"].as_str().expect("n"))
        .collect();
    assert_eq!(names[0], "repo");
    assert_eq!(&names[1..], relgate::export::ExportRow::COLUMNS);
    // DuckDB reads the same columns, plus the `date` partition.
    let described = duckdb(&ds, &["DESCRIBE SELECT * FROM records".to_owned()]);
    let duck: Vec<&str> = described[0]
        .iter()
        .map(|r| r[0].as_str().expect("col"))
        .collect();
    let mut want = names.clone();
    want.push("date");
    assert_eq!(duck, want);
}

/// The `sql` blocks of docs/collect.md that start with `-- kpi: NAME`.
fn kpi_sql() -> BTreeMap<String, String> {
    let doc = std::fs::read_to_string(project_root().join("docs/collect.md")).expect("doc");
    let mut out = BTreeMap::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```sql" {
            continue;
        }
        let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        if let Some(name) = block
            .first()
            .and_then(|l| l.trim().strip_prefix("-- kpi: "))
        {
            out.insert(name.trim().to_owned(), block.join("\n"));
        }
    }
    out
}

/// (numerator, denominator) of a gauge of the HTML report.
fn gauge(html: &str, id: &str) -> (i64, i64) {
    let at = html
        .find(&format!("<div class=\"gauge\" id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no gauge {id}"));
    let basis = &html[at..];
    let start = basis.find("<div class=\"basis\">").expect("basis") + "<div class=\"basis\">".len();
    let words: Vec<&str> = basis[start..].split_whitespace().take(3).collect();
    assert_eq!(words[1], "of", "{words:?}");
    (
        words[0].parse().expect("numerator"),
        words[2].parse().expect("denominator"),
    )
}

/// (releases, median seconds) of the fail-to-pass gauge.
fn fail_to_pass(html: &str) -> (i64, Option<i64>) {
    let at = html.find("id=\"fail-to-pass\"").expect("fail-to-pass");
    let rest = &html[at..];
    let over = rest.find("over ").expect("over") + 5;
    let releases = rest[over..]
        .split_whitespace()
        .next()
        .expect("n")
        .parse()
        .expect("releases");
    let end = rest.find("</div>\n</div>").expect("end");
    let seconds = rest[..end].rfind(" s)").map(|e| {
        let open = rest[..e].rfind('(').expect("(");
        rest[open + 1..e].parse().expect("seconds")
    });
    (releases, seconds)
}

#[test]
fn duckdb_reproduces_the_html_report_kpis_per_repository() {
    let repos: Vec<(String, Repo)> = (1..=3u64)
        .map(|seed| {
            (
                format!("r{seed}"),
                ledger_repo(seed, 40 + seed * 15, &signer(seed as u8)),
            )
        })
        .collect();
    let work = Repo::new();
    let args: Vec<String> = repos.iter().map(|(n, r)| repo_arg(n, r)).collect();
    collect(&work, &args).exit(0);
    let ds = work.path().join("ds");
    let sql = kpi_sql();
    let names = [
        "gate_pass",
        "prr_compliance",
        "evaluation_gate_pass",
        "change_failure",
        "fail_to_pass",
    ];
    assert_eq!(
        sql.keys().map(String::as_str).collect::<Vec<_>>(),
        {
            let mut n = names.to_vec();
            n.sort();
            n
        },
        "docs/collect.md has one `-- kpi:` block per KPI"
    );
    let statements: Vec<String> = names.iter().map(|n| sql[*n].clone()).collect();
    let results = duckdb(&ds, &statements);
    let by_repo = |i: usize| -> BTreeMap<String, Vec<Value>> {
        results[i]
            .iter()
            .map(|r| (r[0].as_str().expect("repo").to_owned(), r[1..].to_vec()))
            .collect()
    };
    let mut compared = 0;
    for (name, repo) in &repos {
        let run = repo.run(&["export", "--format", "html", "--ledger", "relgate/records"]);
        run.exit(0);
        let html = &run.stdout;
        for (i, id) in [
            "gate-pass",
            "prr-compliance",
            "evaluation-gate-pass",
            "change-failure",
        ]
        .iter()
        .enumerate()
        {
            let want = gauge(html, id);
            let row = by_repo(i).get(name).cloned().unwrap_or_default();
            let got = match row.as_slice() {
                [] => (0, 0),
                [n, d] => (n.as_i64().expect("n"), d.as_i64().expect("d")),
                other => panic!("{id}: {other:?}"),
            };
            assert_eq!(got, want, "{name} {id}");
            compared += 1;
        }
        let (releases, seconds) = fail_to_pass(html);
        let row = by_repo(4).get(name).cloned().unwrap_or_default();
        let got = match row.as_slice() {
            [] => (0, None),
            [n, m] => (n.as_i64().expect("n"), m.as_f64().map(|s| s.round() as i64)),
            other => panic!("fail_to_pass: {other:?}"),
        };
        assert_eq!(got, (releases, seconds), "{name} fail_to_pass");
        compared += 1;
    }
    assert_eq!(compared, 15);
    // The fixture exercises every KPI: some failed changes and some fail-to-pass releases.
    let failed_changes: i64 = results[3].iter().map(|r| r[1].as_i64().expect("n")).sum();
    assert!(failed_changes > 0, "{:?}", results[3]);
    assert!(results[4].iter().all(|r| r[1].as_i64().expect("n") > 0));
}

#[test]
fn a_local_clone_gives_the_keys_of_its_default_branch_not_of_the_checked_out_one() {
    // A clone checked out on a pull request's branch that swaps the committed key for its
    // author's, with a ledger that key signed: the default branch's key must decide.
    let owner = signer(6);
    let origin = ledger_repo(6, 3, &owner);
    let clone = Repo::clone_of(&origin);
    let status = std::process::Command::new("git")
        .args(["checkout", "-q", "-b", "pr"])
        .current_dir(clone.path())
        .status()
        .expect("git checkout");
    assert!(status.success());
    let author = signer(7);
    clone.file(".relgate/keys/ci.pem", author.public_key_pem());
    commit_all(&clone, "rotate the key");
    append(&clone, &author, 7, 1..=2);
    let run = collect(&Repo::new(), &[repo_arg("pr", &clone)]);
    run.exit(1);
    let summary = run.json();
    let e = entry(&summary, "pr");
    assert_eq!(e["keys"], "refs/remotes/origin/HEAD:.relgate/keys", "{e:#}");
    assert_ne!(e["status"], "collected", "{e:#}");
}
