//! Generates a directory ledger of N varied, signed change records and its trusted key, for
//! timing `relgate export` and `relgate verify` (scripts/bench-export):
//!
//! `cargo run --release --example gen_ledger -- OUT_DIR N` writes `OUT_DIR/ledger` and
//! `OUT_DIR/keys/relgate.pem`; then `relgate export --ledger-dir OUT_DIR/ledger --keys
//! OUT_DIR/keys`. The records are those of the export benchmark (`benches/support/ledger.rs`).

#[path = "../benches/support/ledger.rs"]
mod ledger;

use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: gen_ledger OUT_DIR N";
    let out = PathBuf::from(args.next().ok_or(usage)?);
    let n: u64 = args.next().ok_or(usage)?.parse()?;
    let started = Instant::now();
    ledger::build_dir_ledger(&out.join("ledger"), n);
    ledger::write_public_key(&out.join("keys"));
    eprintln!(
        "generated {n} records in {} in {:.1?}",
        out.join("ledger").display(),
        started.elapsed()
    );
    Ok(())
}
