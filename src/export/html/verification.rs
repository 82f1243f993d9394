//! The verification section: the ledger's verdict (intact, tampered, could not verify), the
//! facts behind it (signatures, checkpoint, consistency), the problems verification found and
//! the rows whose record did not verify, each list capped at [`super::MAX_LISTED`].

use std::io::{self, Write};

use super::text::{enum_text, escape, opt};
use super::{more_note, MAX_LISTED};
use crate::export::ExportRow;
use crate::record::verify::{Severity, VerifyReport, VerifyStatus};

fn status_class(status: VerifyStatus) -> (&'static str, &'static str) {
    match status {
        VerifyStatus::Intact => ("intact", "Intact"),
        VerifyStatus::Tampered => ("tampered", "Tampered"),
        VerifyStatus::Unverifiable => ("unverifiable", "Could not verify"),
    }
}

pub(super) fn write_verification(
    w: &mut impl Write,
    rows: &[ExportRow],
    report: &VerifyReport,
) -> io::Result<()> {
    let (class, text) = status_class(report.status);
    let count = |s: Severity| report.problems.iter().filter(|p| p.severity == s).count();
    let unverified: Vec<&ExportRow> = rows.iter().filter(|r| !r.verified).collect();
    writeln!(
        w,
        "<section class=\"verdict {class}\" id=\"verification\" aria-labelledby=\"verification-h\">\n\
         <h2 id=\"verification-h\">Ledger verification: <span class=\"status\">{text}</span></h2>"
    )?;
    let summary = match report.status {
        VerifyStatus::Intact => "Every record's signature verified under a trusted key, the sequence and hash chain are unbroken and the signed checkpoint covers exactly these records.",
        VerifyStatus::Tampered => "The ledger was altered: the problems below name what. The figures in this report include the records that did not verify; they are flagged.",
        VerifyStatus::Unverifiable => "The ledger could not be fully checked (see the problems below); the figures in this report are unverified.",
    };
    writeln!(w, "<p>{summary}</p>\n<dl class=\"facts\">")?;
    let mut fact = |name: &str, value: String| writeln!(w, "<dt>{name}</dt><dd>{value}</dd>");
    fact("Ledger", escape(&report.source))?;
    fact("Record files examined", report.records.to_string())?;
    fact(
        "Signatures verified",
        report.verified_signatures.to_string(),
    )?;
    fact(
        "Rows not verified",
        if unverified.is_empty() {
            "0".to_owned()
        } else {
            format!("<span class=\"flag\">{}</span>", unverified.len())
        },
    )?;
    fact(
        "Problems",
        format!(
            "{} tampering, {} could not verify, {} warnings",
            count(Severity::Tampering),
            count(Severity::Unverifiable),
            count(Severity::Warning)
        ),
    )?;
    match &report.checkpoint {
        Some(cp) => {
            fact("Checkpoint origin", escape(&cp.origin))?;
            fact("Checkpoint size", cp.size.to_string())?;
            fact("Checkpoint root", escape(&cp.root))?;
            fact("Checkpoint key", opt(cp.key_id.as_deref()))?;
        }
        None => fact("Checkpoint", "none".to_owned())?,
    }
    fact(
        "Root computed from records",
        opt(report.computed_root.as_deref()),
    )?;
    if report.commits_checked > 0 {
        fact("Ledger commits walked", report.commits_checked.to_string())?;
    }
    if let Some(c) = &report.consistency {
        fact(
            "Consistency with the kept checkpoint",
            format!(
                "{} → {} records: {}",
                c.old_size,
                c.new_size,
                if c.verified {
                    "proved"
                } else {
                    "<span class=\"flag\">failed</span>"
                }
            ),
        )?;
    }
    writeln!(w, "</dl>")?;

    if !report.problems.is_empty() {
        writeln!(
            w,
            "<table id=\"problems\">\n<caption>Problems found by verification</caption>\n\
             <thead><tr><th scope=\"col\">Severity</th><th scope=\"col\">Kind</th>\
             <th scope=\"col\" class=\"num\">Seq</th><th scope=\"col\">File / commit</th>\
             <th scope=\"col\">What</th></tr></thead>\n<tbody>"
        )?;
        for p in report.problems.iter().take(MAX_LISTED) {
            let record = p.record.as_ref();
            let place = [
                record.and_then(|r| r.file.as_deref()),
                record.and_then(|r| r.commit.as_deref()),
            ]
            .iter()
            .flatten()
            .map(|s| escape(s))
            .collect::<Vec<_>>()
            .join("<br>");
            writeln!(
                w,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"text\">{}</td>\
                 <td class=\"text\">{}</td></tr>",
                escape(&enum_text(&p.severity)),
                escape(&enum_text(&p.kind)),
                p.seq().map(|s| s.to_string()).unwrap_or_default(),
                place,
                escape(&p.message)
            )?;
        }
        writeln!(w, "</tbody>\n</table>")?;
        more_note(
            w,
            report.problems.len(),
            "problems",
            "run relgate verify for all",
        )?;
    }

    if !unverified.is_empty() {
        writeln!(
            w,
            "<table id=\"unverified\">\n<caption>Rows whose record did not verify</caption>\n\
             <thead><tr><th scope=\"col\" class=\"num\">Seq</th><th scope=\"col\">Time</th>\
             <th scope=\"col\">Service</th><th scope=\"col\">Release</th>\
             <th scope=\"col\">Decision</th></tr></thead>\n<tbody>"
        )?;
        for r in unverified.iter().take(MAX_LISTED) {
            writeln!(
                w,
                "<tr class=\"unverified\"><td class=\"num\">{}</td><td class=\"time\">{}</td><td class=\"text\">{}</td>\
                 <td class=\"text\">{} {}</td><td>{}</td></tr>",
                r.seq,
                escape(&r.time),
                opt(r.service.as_deref()),
                escape(&r.name),
                escape(&r.version),
                r.decision.as_str()
            )?;
        }
        writeln!(w, "</tbody>\n</table>")?;
        more_note(w, unverified.len(), "rows", "the CSV has a verified column")?;
    }
    writeln!(w, "</section>")
}
