//! Text output of a ledger verification: `relgate verify`'s report on stdout, and the problem
//! list and verdict `relgate export` prints on stderr. One line per problem with the record,
//! file and commit it concerns, its message and kind; the counts; the checkpoint; the verdict.
//! Colour only when asked, styled with anstyle like the other text printers.

use std::fmt::Write as _;
use std::path::Path;

use super::palette::Palette;
use crate::record::verify::{Problem, Severity, VerifyReport};

/// The whole report of `relgate verify`: where from, every problem, the counts, the
/// checkpoint, the verdict and the checkpoint to keep.
pub(crate) fn render(report: &VerifyReport, keys_dir: &Path, color: bool) -> String {
    let p = Palette::new(color);
    let mut out = String::new();
    let _ = writeln!(out, "ledger {}", report.source);
    let _ = writeln!(out, "trusted keys from {}", keys_dir.display());
    problems(&mut out, report, &p);
    let _ = writeln!(
        out,
        "{} records, {} signatures verified, {} ledger commits checked",
        report.records, report.verified_signatures, report.commits_checked
    );
    if let Some(checkpoint) = &report.checkpoint {
        let _ = writeln!(
            out,
            "checkpoint: {} records, ledger {}, signed by key {}",
            checkpoint.size,
            checkpoint.origin,
            checkpoint.key_id.as_deref().unwrap_or("?")
        );
    }
    if let Some(consistency) = &report.consistency {
        let _ = writeln!(
            out,
            "the older checkpoint (size {}) {} the ledger (size {})",
            consistency.old_size,
            if consistency.verified {
                "is a prefix of"
            } else {
                "is NOT a prefix of"
            },
            consistency.new_size
        );
    }
    verdict(&mut out, report, &p);
    if let Some(text) = &report.checkpoint_text {
        let _ = writeln!(
            out,
            "\n{}checkpoint to keep{} (store it; next time pass it with --checkpoint FILE):\n{}",
            p.bold.render(),
            p.bold.render_reset(),
            text.trim_end()
        );
    }
    out
}

/// The problems, one per line, then the verdict line: what `relgate export` prints on stderr.
pub(crate) fn render_summary(report: &VerifyReport, color: bool) -> String {
    let p = Palette::new(color);
    let mut out = String::new();
    problems(&mut out, report, &p);
    verdict(&mut out, report, &p);
    out
}

fn problems(out: &mut String, report: &VerifyReport, p: &Palette) {
    for problem in &report.problems {
        let (style, label) = match problem.severity {
            Severity::Tampering => (p.fail, "TAMPERED"),
            Severity::Unverifiable => (p.fail, "UNVERIFIABLE"),
            Severity::Warning => (p.warn, "WARNING"),
        };
        let _ = writeln!(
            out,
            "{}{label}{} {}: {} [{}]",
            style.render(),
            style.render_reset(),
            place(problem),
            problem.message,
            kind_name(problem)
        );
    }
}

fn verdict(out: &mut String, report: &VerifyReport, p: &Palette) {
    let count = |severity: Severity| {
        report
            .problems
            .iter()
            .filter(|problem| problem.severity == severity)
            .count()
    };
    let _ = match report.exit_code() {
        0 => writeln!(
            out,
            "{}INTACT{}: every record verified ({} warnings)",
            p.pass.render(),
            p.pass.render_reset(),
            count(Severity::Warning)
        ),
        1 => writeln!(
            out,
            "{}TAMPERED{}: {} problems show the ledger was altered",
            p.fail.render(),
            p.fail.render_reset(),
            count(Severity::Tampering)
        ),
        _ => writeln!(
            out,
            "{}COULD NOT VERIFY{}: {} problems kept the ledger from being checked",
            p.fail.render(),
            p.fail.render_reset(),
            count(Severity::Unverifiable)
        ),
    };
}

/// The problem kind as in the JSON report (`bad_signature`).
pub(crate) fn kind_name(problem: &Problem) -> String {
    serde_json::to_value(problem.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Where a problem is: `record 5, records/000/000005-a-1.dsse.json, commit 1a2b3c4d5e6f`.
pub(crate) fn place(problem: &Problem) -> String {
    let mut parts = Vec::new();
    if let Some(r) = &problem.record {
        if let Some(seq) = r.seq {
            parts.push(format!("record {seq}"));
        }
        if let Some(file) = &r.file {
            parts.push(file.clone());
        }
        if let Some(commit) = &r.commit {
            parts.push(format!("commit {}", commit.get(..12).unwrap_or(commit)));
        }
    }
    if parts.is_empty() {
        "ledger".to_owned()
    } else {
        parts.join(", ")
    }
}
