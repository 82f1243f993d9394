//! The self-contained HTML audit report of `relgate export --format html` (docs/export-report.md): the
//! verdict of the ledger verification, the release KPIs of [`super::kpi`] as inline SVG
//! charts, and tables per week, per service and of the changes counted as failed.
//!
//! One file an auditor can archive and open offline: inline CSS and SVG, no script, no font,
//! image, stylesheet or link that could load anything, and a Content-Security-Policy that
//! forbids loads anyway. Every string from the ledger (manifest names, services, rule ids,
//! problem messages) is attacker-controlled and HTML-escaped. The same rows, verification
//! report and `generated_at` always give the same bytes (no clock, no map iteration order,
//! fixed number formatting). Long lists are capped at [`MAX_LISTED`] entries with a note
//! pointing at the CSV/`relgate verify`, so the page stays readable for 100,000 records.
//!
//! Layout: this file writes the page (head, header, the definitions, the CSS); `text.rs`
//! escapes and formats every value written; `verification.rs` the verification verdict and
//! its problems; `charts.rs` the KPI gauges and the SVG charts (decisions per week, top
//! failing rules); `tables.rs` the per-service and failed-change tables.

mod charts;
mod tables;
mod text;
mod verification;

use std::io::{self, BufWriter, Write};

use super::kpi::Kpis;
use super::ExportRow;
use crate::record::verify::VerifyReport;
use charts::{write_kpis, write_rules, write_weeks};
use tables::{write_failed_changes, write_services};
use text::escape;
use verification::write_verification;

/// Longest list (problems, unverified rows, failed changes, weeks) written in full.
pub const MAX_LISTED: usize = 500;

/// Most weeks drawn in the weekly chart (the latest ones); the table lists every week.
pub const MAX_CHART_WEEKS: usize = 104;

const STYLE: &str = r#"
:root { --pass: #007a5a; --fail: #c4480b; --error: #7a7a7a; --accent: #1f5fa8; --ink: #1b1f24;
        --muted: #5a6270; --line: #d5d9e0; --track: #e8ebf0; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); background: #fff; margin: 0 auto; padding: 24px 32px; max-width: 1180px;
       line-height: 1.45; font-size: 15px; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.25em; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.05em; margin: 18px 0 6px; }
p.meta, p.note, figcaption { color: var(--muted); font-size: 0.9em; }
.verdict { border: 2px solid var(--line); border-left-width: 10px; border-radius: 4px; padding: 12px 16px; }
.verdict.intact { border-color: var(--pass); }
.verdict.tampered { border-color: var(--fail); background: #fff4ef; }
.verdict.unverifiable { border-color: #b08500; background: #fffbea; }
.verdict h2 { border: 0; margin: 0 0 8px; padding: 0; }
.status { font-weight: 700; text-transform: uppercase; letter-spacing: 0.04em; }
.intact .status { color: var(--pass); }
.tampered .status { color: var(--fail); }
.unverifiable .status { color: #8a6800; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.gauges { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 12px 24px; }
.gauge { border: 1px solid var(--line); border-radius: 4px; padding: 10px 12px; break-inside: avoid; }
.gauge h3 { margin: 0 0 2px; font-size: 0.95em; }
.gauge .value { font-size: 1.6em; font-weight: 700; }
.gauge .basis { color: var(--muted); font-size: 0.85em; }
svg { display: block; }
figure { margin: 0; }
tbody th { background: none; }
svg.chart { width: 100%; height: auto; max-width: 1100px; }
svg.bar { width: 100%; height: auto; max-width: 320px; margin: 4px 0; }
svg text { font-family: inherit; fill: var(--ink); }
.track { fill: var(--track); }
.fill { fill: var(--accent); }
.pass { fill: var(--pass); }
.fail { fill: var(--fail); }
.error { fill: var(--error); }
.grid { stroke: var(--line); stroke-width: 1; }
.axis { fill: var(--muted); font-size: 11px; }
.legend { display: flex; gap: 18px; font-size: 0.9em; margin: 4px 0; padding: 0; list-style: none; }
.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 6px; vertical-align: -1px; }
.swatch.pass { background: var(--pass); } .swatch.fail { background: var(--fail); } .swatch.error { background: var(--error); }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; margin: 6px 0 12px; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f5f8; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.text { overflow-wrap: anywhere; }
td.time { white-space: nowrap; }
tr.unverified td { background: #fff4ef; }
.flag { color: var(--fail); font-weight: 700; }
dl.defs dt { font-weight: 600; margin-top: 6px; }
dl.defs dd { margin: 0 0 0 16px; color: var(--muted); font-size: 0.9em; }
@page { size: A4; margin: 14mm; }
@media print {
  body { padding: 0; max-width: none; font-size: 10pt; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  h2 { break-after: avoid; }
  figure, .verdict, .gauge, tr { break-inside: avoid; }
  thead { display: table-header-group; }
  svg.chart { max-width: 100%; }
}
"#;

/// Writes the HTML report of `rows` (one per record, as exported) and the ledger's
/// `verification`. `generated_at` is printed as given (an RFC 3339 time by convention); it is
/// the only input besides the data, so output is deterministic.
pub fn write_html(
    out: &mut dyn Write,
    rows: &[ExportRow],
    verification: &VerifyReport,
    generated_at: &str,
) -> io::Result<()> {
    let kpis = Kpis::compute(rows);
    let mut w = BufWriter::new(out);
    write_head(&mut w)?;
    write_header(&mut w, &kpis, verification, generated_at)?;
    write_verification(&mut w, rows, verification)?;
    write_kpis(&mut w, &kpis)?;
    write_weeks(&mut w, &kpis)?;
    write_rules(&mut w, &kpis)?;
    write_services(&mut w, &kpis)?;
    write_failed_changes(&mut w, &kpis)?;
    write_definitions(&mut w)?;
    writeln!(w, "</main>\n</body>\n</html>")?;
    w.flush()
}

fn write_head(w: &mut impl Write) -> io::Result<()> {
    writeln!(
        w,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">"
    )?;
    // Defence in depth: even if something slipped through escaping, nothing loads or runs.
    writeln!(
        w,
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'\">"
    )?;
    writeln!(
        w,
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"relgate {}\">\n\
         <title>relgate audit report</title>\n<style>{STYLE}</style>\n</head>\n<body>",
        env!("CARGO_PKG_VERSION")
    )
}

fn write_header(
    w: &mut impl Write,
    kpis: &Kpis,
    verification: &VerifyReport,
    generated_at: &str,
) -> io::Result<()> {
    writeln!(w, "<header>\n<h1>Release gate audit report</h1>")?;
    write!(
        w,
        "<p class=\"meta\">Generated {} by relgate {} from the ledger {}. {} records",
        escape(generated_at),
        env!("CARGO_PKG_VERSION"),
        escape(&verification.source),
        kpis.records
    )?;
    if let (Some(first), Some(last)) = (&kpis.first_decision, &kpis.last_decision) {
        write!(w, ", decided from {} to {}", escape(first), escape(last))?;
    }
    writeln!(w, ".</p>\n</header>\n<main>")
}

/// A note under a list cut at [`MAX_LISTED`] entries: how many there are, and where to find all.
pub(super) fn more_note(
    w: &mut impl Write,
    total: usize,
    what: &str,
    hint: &str,
) -> io::Result<()> {
    if total > MAX_LISTED {
        writeln!(
            w,
            "<p class=\"note\">The first {MAX_LISTED} of {total} {what} are listed; {hint}.</p>"
        )?;
    }
    Ok(())
}

fn write_definitions(w: &mut impl Write) -> io::Result<()> {
    writeln!(
        w,
        "<section id=\"definitions\" aria-labelledby=\"definitions-h\">\n<h2 id=\"definitions-h\">How the figures are computed</h2>\n<dl class=\"defs\">\n\
<dt>Gate pass rate</dt><dd>Records with decision pass / all records.</dd>\n\
<dt>Policy-evaluated record</dt><dd>Decision pass or fail, no SCHEMA failure (the policies did not run) and kind ModelRelease or PromptRelease.</dd>\n\
<dt>PRR compliance rate</dt><dd>Policy-evaluated records with no failing PRR-* rule / policy-evaluated records.</dd>\n\
<dt>Evaluation gate pass rate</dt><dd>Among policy-evaluated records that read evaluation files or had an EVAL-*/EVIDENCE-* finding, the share with no failing EVAL-* or EVIDENCE-* rule.</dd>\n\
<dt>Change failure rate</dt><dd>A release is one (service, environment, name, version), dated by its first passing record. Each passing rollback release (change_type rollback) marks as failed the passed non-rollback release of the same service and environment it most plausibly undid: one released before it and at most 7 days before it, with the rollback's name if any, else the latest. Failed releases / all passed non-rollback releases.</dd>\n\
<dt>Time from first failed to first passed check</dt><dd>For each (name, version, environment) with a fail before its first pass: first pass time − first fail time; the median over these releases. Error decisions are not failed checks.</dd>\n\
<dt>Decisions per week</dt><dd>Pass, fail and error decisions per ISO 8601 week of the decision time in UTC.</dd>\n\
<dt>Top failing rules</dt><dd>Records on which each rule was a deny finding, the 10 largest, ties by rule name.</dd>\n\
</dl>\n<p class=\"note\">Figures describe the records in this export (its date and service filters apply). \
Records that did not verify are included and flagged above. A release in the last 7 days may still be rolled back later.</p>\n</section>"
    )
}
