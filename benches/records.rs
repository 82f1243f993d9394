//! Ledger benchmarks: verification throughput of a ~100,000-record directory ledger, the
//! latency of one append at ~1,000 vs ~100,000 records (directory and git backends), and the
//! verification of a git ledger built by real appends, with and without the history walk.
//!
//! `cargo bench --bench records -- --warm-up-time 1 --measurement-time 5 --noplot`
//! `RELGATE_BENCH_RECORDS` (default 99,998) and `RELGATE_BENCH_SMALL_RECORDS` (default 998) set
//! the ledger sizes, `RELGATE_BENCH_GIT_COMMITS` (default 5,000) the git history bench.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};

const REF: &str = "refs/heads/relgate/records";
use git2::Repository;
use relgate::record::keys::{Signer, TrustedKeys};
use relgate::record::ledger::{
    DirLedger, GitLedger, Ledger, LedgerOptions, LedgerSource, CHECKPOINT_FILE, RECORDS_DIR,
    STATE_FILE,
};
use relgate::record::statement::{Decision, GitInfo, ManifestSummary, PolicyRef, RecordInput};
use relgate::record::verify::{verify_ledger, verify_ledger_with, VerifyOptions, VerifyStatus};
use sha2::{Digest, Sha256};

fn input(i: u64) -> RecordInput {
    let h = |s: String| hex::encode(Sha256::digest(s.as_bytes()));
    RecordInput {
        manifest_path: format!("releases/r{}.yaml", i % 50),
        manifest_sha256: h(format!("m{i}")),
        artifact: None,
        decision: if i % 4 == 0 {
            Decision::Fail
        } else {
            Decision::Pass
        },
        findings: if i % 4 == 0 {
            vec![
                serde_json::json!({"rule": "EVAL-THRESHOLD", "severity": "deny",
                "message": "pass_rate 0.91 below min 0.95", "path": "spec.evaluations[0]", "line": 30}),
            ]
        } else {
            vec![]
        },
        manifest: ManifestSummary {
            kind: "PromptRelease".into(),
            name: format!("prompt-{}", i % 50),
            version: format!("{i}"),
            service: Some("support-bot".into()),
            environment: Some("production".into()),
            tier: Some(1),
            change_type: Some("feature".into()),
            owner: None,
            ticket: Some(format!("AIR-{i}")),
            baseline: Some(format!("{}", i.saturating_sub(1))),
            candidate: Some(format!("{i}")),
        },
        git: GitInfo {
            repo: "https://git.example.com/acme/assistants".into(),
            commit: h(format!("c{i}"))[..40].to_owned(),
            git_ref: Some("refs/heads/main".into()),
        },
        changed_in: Vec::new(),
        pull_request: None,
        slo_readings: vec![],
        ci_run_url: None,
        evidence: vec![],
        policy: PolicyRef {
            uri: "relgate:builtin@0.1.0".into(),
            sha256: h("policy".into()),
        },
        bundles: Vec::new(),
        verifier_version: "0.1.0".into(),
        time_verified: "2026-01-31T12:00:00Z".into(),
    }
}

fn signer() -> Signer {
    Signer::from_seed([0x42; 32])
}

fn no_fsync() -> LedgerOptions {
    LedgerOptions {
        fsync: false,
        ..Default::default()
    }
}

fn build_dir_ledger(dir: &Path, n: u64) {
    let started = Instant::now();
    let mut ledger = DirLedger::open_with(dir, no_fsync()).expect("open");
    let s = signer();
    for i in 1..=n {
        ledger.append(&input(i), &s).expect("append");
    }
    eprintln!("built {n}-record dir ledger in {:.1?}", started.elapsed());
}

/// A git ledger with the same files as the directory ledger, in a single commit (building it
/// by n appends would take n commits).
fn build_git_ledger_from_dir(dir: &Path, repo_path: &Path) {
    let repo = Repository::init(repo_path).expect("init");
    let mut records = repo.treebuilder(None).expect("tb");
    for shard in std::fs::read_dir(dir.join(RECORDS_DIR)).expect("ls") {
        let shard = shard.expect("entry");
        let mut files = repo.treebuilder(None).expect("tb");
        for e in std::fs::read_dir(shard.path()).expect("ls") {
            let e = e.expect("entry");
            let blob = repo
                .blob(&std::fs::read(e.path()).expect("read"))
                .expect("blob");
            files
                .insert(e.file_name().to_str().expect("utf8"), blob, 0o100_644)
                .expect("insert");
        }
        records
            .insert(
                shard.file_name().to_str().expect("utf8"),
                files.write().expect("write"),
                0o040_000,
            )
            .expect("insert");
    }
    let mut top = repo.treebuilder(None).expect("tb");
    top.insert(RECORDS_DIR, records.write().expect("write"), 0o040_000)
        .expect("insert");
    for f in ["CHECKPOINT", "ledger-state.json"] {
        let blob = repo
            .blob(&std::fs::read(dir.join(f)).expect("read"))
            .expect("blob");
        top.insert(f, blob, 0o100_644).expect("insert");
    }
    let tree = repo.find_tree(top.write().expect("write")).expect("tree");
    let sig = git2::Signature::now("bench", "bench@example.com").expect("sig");
    let commit = repo
        .commit(None, &sig, &sig, "ledger", &tree, &[])
        .expect("commit");
    repo.reference(REF, commit, true, "bench").expect("ref");
}

/// CPU time (user + system) of this process so far, from /proc (Linux; 100 ticks/s).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesized command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn bench_records(c: &mut Criterion) {
    // Sizes are 998 mod 1000 by default: the appended record then goes into a shard that
    // already holds 998 records, the most expensive append for the git backend (it rewrites
    // that shard's tree); an append that opens a new shard costs less.
    let n: u64 = std::env::var("RELGATE_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(99_998);
    let small_n: u64 = std::env::var("RELGATE_BENCH_SMALL_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(998);
    let tmp = tempfile::TempDir::new().expect("tmp");
    let big = tmp.path().join("big");
    let small = tmp.path().join("small");
    build_dir_ledger(&big, n);
    build_dir_ledger(&small, small_n);
    let mut keys = TrustedKeys::new();
    keys.insert(signer().verifying_key());

    // Sanity: the generated ledger verifies. Best of three wall-clock runs, plus the CPU time
    // they used: on a shared machine the CPU-time figure is what an idle machine would see.
    let mut best = f64::MAX;
    let cpu_before = cpu_seconds();
    for _ in 0..3 {
        let started = Instant::now();
        let report = verify_ledger(&LedgerSource::Dir(big.clone()), &keys, None);
        best = best.min(started.elapsed().as_secs_f64());
        assert_eq!(
            report.status,
            VerifyStatus::Intact,
            "{:?}",
            report.problems.first()
        );
    }
    let threads = rayon::current_num_threads();
    if let (Some(before), Some(after)) = (cpu_before, cpu_seconds()) {
        let per_run = (after - before) / 3.0;
        eprintln!(
            "verification of {n} records: best {best:.2} s = {:.0} records/s wall; \
             {per_run:.2} CPU-s per run = {:.0} records/s with {threads} idle cores",
            n as f64 / best,
            n as f64 * threads as f64 / per_run
        );
    }

    let mut group = c.benchmark_group("verify");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n));
    group.bench_function(BenchmarkId::new("dir", n), |b| {
        b.iter(|| {
            let r = verify_ledger(&LedgerSource::Dir(big.clone()), &keys, None);
            assert_eq!(r.records, n);
        })
    });
    group.finish();

    // Append latency at a fixed ledger size: each iteration appends one record, and the
    // untimed setup of the next iteration removes it again (record file, state, checkpoint
    // restored; the git ref reset), so the ledger stays at exactly `size` records.
    let mut group = c.benchmark_group("append");
    group.sample_size(30);
    let s = signer();
    let next = input(n + 1);
    for (size, dir) in [(small_n, &small), (n, &big)] {
        for (label, options) in [("dir", no_fsync()), ("dir_fsync", LedgerOptions::default())] {
            let mut ledger = DirLedger::open_with(dir, options).expect("open");
            let state = std::fs::read(dir.join(STATE_FILE)).expect("state");
            let checkpoint = std::fs::read(dir.join(CHECKPOINT_FILE)).expect("checkpoint");
            let last: RefCell<Option<PathBuf>> = RefCell::new(None);
            group.bench_function(BenchmarkId::new(label, size), |b| {
                b.iter_batched(
                    || {
                        if let Some(p) = last.borrow_mut().take() {
                            std::fs::remove_file(p).expect("rm");
                            std::fs::write(dir.join(STATE_FILE), &state).expect("state");
                            std::fs::write(dir.join(CHECKPOINT_FILE), &checkpoint).expect("cp");
                        }
                    },
                    |()| {
                        let r = ledger.append(&next, &s).expect("append");
                        assert_eq!(r.seq, size + 1);
                        *last.borrow_mut() = Some(dir.join(r.file));
                    },
                    BatchSize::PerIteration,
                )
            });
            let leftover = last.borrow_mut().take();
            if let Some(p) = leftover {
                std::fs::remove_file(p).expect("rm");
                std::fs::write(dir.join(STATE_FILE), &state).expect("state");
                std::fs::write(dir.join(CHECKPOINT_FILE), &checkpoint).expect("cp");
            }
        }
    }
    group.sample_size(10);
    for (size, dir) in [(small_n, &small), (n, &big)] {
        let repo_path = tmp.path().join(format!("git-{size}"));
        build_git_ledger_from_dir(dir, &repo_path);
        let repo = Repository::open(&repo_path).expect("open");
        let base = repo.refname_to_id(REF).expect("ref");
        let mut ledger = GitLedger::open(&repo_path).expect("open");
        group.bench_function(BenchmarkId::new("git", size), |b| {
            b.iter_batched(
                || {
                    repo.reference(REF, base, true, "bench reset")
                        .expect("reset");
                },
                |()| {
                    let r = ledger.append(&next, &s).expect("append");
                    assert_eq!(r.seq, size + 1);
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();

    // Verification of a git ledger built by real appends (one commit per record), with and
    // without the history walk.
    let commits: u64 = std::env::var("RELGATE_BENCH_GIT_COMMITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let repo_path = tmp.path().join("git-history");
    Repository::init(&repo_path).expect("init");
    let started = Instant::now();
    {
        let mut ledger =
            GitLedger::open_with(&repo_path, "relgate/records", no_fsync()).expect("open");
        for i in 1..=commits {
            ledger.append(&input(i), &s).expect("append");
        }
    }
    eprintln!(
        "built {commits}-commit git ledger in {:.1?}",
        started.elapsed()
    );
    let source = LedgerSource::git_default(&repo_path);
    let mut group = c.benchmark_group("verify_git");
    group.sample_size(10);
    group.throughput(Throughput::Elements(commits));
    for (label, history) in [("with_history", true), ("records_only", false)] {
        let options = VerifyOptions {
            check_history: history,
            check_reflog: history,
            ..Default::default()
        };
        group.bench_function(BenchmarkId::new(label, commits), |b| {
            b.iter(|| {
                let r = verify_ledger_with(&source, &keys, None, &options);
                assert!(r.is_intact(), "{:?}", r.problems.first());
                assert_eq!(r.records, commits);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_records);
criterion_main!(benches);
