//! Export benchmark: `relgate export --format csv` of a generated 10,000- and 100,000-record
//! directory ledger through the library (full verification, then every record read again and
//! written as a CSV row to a sink), and the same with a bundle. The whole-process wall time and
//! peak RSS of the binary are measured by `scripts/bench-export`.
//!
//! `TMPDIR=/dev/shm cargo bench --bench export -- --noplot`
//! `RELGATE_BENCH_EXPORT_SIZES` (default `10000,100000`) sets the ledger sizes.

#[path = "support/ledger.rs"]
mod gen;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use relgate::export::{export_rows, Bundle, BundleInfo, Format, RowFilter, Targets};
use relgate::record::keys::TrustedKeys;
use relgate::record::ledger::LedgerSource;
use relgate::record::verify::{NoProgress, VerifiedLedger, VerifyOptions, VerifyStatus};

fn export_csv(source: &LedgerSource, keys: &TrustedKeys) -> u64 {
    let mut ledger =
        VerifiedLedger::verify(source, keys, None, &VerifyOptions::default(), &NoProgress);
    assert_eq!(ledger.report().status, VerifyStatus::Intact);
    let mut sink = std::io::sink();
    let outcome = export_rows(
        &mut ledger,
        &RowFilter::default(),
        Targets {
            output: Some((Format::Csv, &mut sink)),
            bundle: None,
        },
        &NoProgress,
        "2026-11-27T12:00:00Z",
    )
    .expect("export");
    outcome.rows
}

fn export_bundle(source: &LedgerSource, keys: &TrustedKeys, target: &std::path::Path) -> u64 {
    let mut ledger =
        VerifiedLedger::verify(source, keys, None, &VerifyOptions::default(), &NoProgress);
    let mut bundle = Bundle::create(target).expect("bundle");
    let outcome = export_rows(
        &mut ledger,
        &RowFilter::default(),
        Targets {
            output: None,
            bundle: Some(&mut bundle),
        },
        &NoProgress,
        "2026-11-27T12:00:00Z",
    )
    .expect("export");
    bundle
        .finish(
            ledger.report(),
            keys,
            ledger.checkpoint_bytes().as_deref(),
            &BundleInfo {
                generated_at: "2026-11-27T12:00:00Z".into(),
                filter: "none".into(),
                filter_args: Vec::new(),
            },
        )
        .expect("finish");
    outcome.rows
}

fn bench_export(c: &mut Criterion) {
    let sizes: Vec<u64> = std::env::var("RELGATE_BENCH_EXPORT_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000]);
    let tmp = tempfile::TempDir::new().expect("tmp");
    let mut keys = TrustedKeys::new();
    keys.insert(gen::signer().verifying_key());
    let mut group = c.benchmark_group("export");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    for n in sizes {
        let dir = tmp.path().join(format!("ledger-{n}"));
        let started = Instant::now();
        gen::build_dir_ledger(&dir, n);
        eprintln!("built {n}-record ledger in {:.1?}", started.elapsed());
        let source = LedgerSource::Dir(dir);
        group.throughput(Throughput::Elements(n));
        group.measurement_time(Duration::from_secs(if n > 20_000 { 60 } else { 10 }));
        group.bench_function(BenchmarkId::new("csv", n), |b| {
            b.iter(|| assert_eq!(export_csv(&source, &keys), n))
        });
        let target = tmp.path().join(format!("bundle-{n}.tar.gz"));
        group.bench_function(BenchmarkId::new("bundle", n), |b| {
            b.iter(|| assert_eq!(export_bundle(&source, &keys, &target), n))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_export);
criterion_main!(benches);
