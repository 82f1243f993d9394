//! Generates a directory ledger of N varied, signed change records and its trusted key, for
//! timing `relgate export` and `relgate verify` (scripts/bench-export):
//!
//! `cargo run --release --example gen_ledger -- OUT_DIR N` writes `OUT_DIR/ledger` and
//! `OUT_DIR/keys/relgate.pem`; then `relgate export --ledger-dir OUT_DIR/ledger --keys
//! OUT_DIR/keys`. The records are those of the export benchmark (`benches/support/ledger.rs`).
//!
//! `gen_ledger OUT_DIR N --git` writes a git ledger instead, in the new repository
//! `OUT_DIR/repo`, a commit per record (as the Action makes it when each push records one
//! release; scripts/bench-ledger): `relgate verify --ledger relgate/records --keys
//! OUT_DIR/keys` in it.

#[path = "../benches/support/ledger.rs"]
mod ledger;

use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: gen_ledger OUT_DIR N [--git]";
    let out = PathBuf::from(args.next().ok_or(usage)?);
    let n: u64 = args.next().ok_or(usage)?.parse()?;
    let git = match args.next().as_deref() {
        None => false,
        Some("--git") => true,
        Some(_) => return Err(usage.into()),
    };
    let started = Instant::now();
    let place = out.join(if git { "repo" } else { "ledger" });
    if git {
        ledger::build_git_ledger(&place, n);
    } else {
        ledger::build_dir_ledger(&place, n);
    }
    ledger::write_public_key(&out.join("keys"));
    eprintln!(
        "generated {n} records in {} in {:.1?}",
        place.display(),
        started.elapsed()
    );
    Ok(())
}
