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

use std::io::{self, BufWriter, Write};

use serde::Serialize;

use super::kpi::{Kpis, Ratio};
use super::ExportRow;
use crate::record::verify::{Severity, VerifyReport, VerifyStatus};

/// Longest list (problems, unverified rows, failed changes, weeks) written in full.
pub const MAX_LISTED: usize = 500;

/// Most weeks drawn in the weekly chart (the latest ones); the table lists every week.
pub const MAX_CHART_WEEKS: usize = 104;

/// Longest label drawn in a chart, in characters (the full text is in the bar's `<title>`).
const MAX_LABEL_CHARS: usize = 40;

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

/// HTML-escapes text for element content and quoted attribute values. Control characters
/// (other than tab and newline) become U+FFFD: they are not valid in HTML text.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(c),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A label cut to `MAX_LABEL_CHARS` characters (with an ellipsis), escaped.
fn label(text: &str) -> String {
    if text.chars().count() <= MAX_LABEL_CHARS {
        escape(text)
    } else {
        let cut: String = text.chars().take(MAX_LABEL_CHARS - 1).collect();
        format!("{}…", escape(&cut))
    }
}

fn opt(text: Option<&str>) -> String {
    text.map(escape).unwrap_or_else(|| "—".to_owned())
}

fn percent(rate: Option<f64>) -> String {
    match rate {
        Some(r) => format!("{:.1} %", r * 100.0),
        None => "no data".to_owned(),
    }
}

/// A duration for people: `2 h 30 min`, `1 d 4 h`, `45 s`.
pub fn human_duration(seconds: f64) -> String {
    let s = seconds.round().max(0.0) as u64;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min {} s", s % 60)
    } else {
        format!("{s} s")
    }
}

/// The text of a serde unit enum (`snake_case` kinds and severities).
fn enum_text<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "unknown".to_owned(),
    }
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

fn status_class(status: VerifyStatus) -> (&'static str, &'static str) {
    match status {
        VerifyStatus::Intact => ("intact", "Intact"),
        VerifyStatus::Tampered => ("tampered", "Tampered"),
        VerifyStatus::Unverifiable => ("unverifiable", "Could not verify"),
    }
}

fn write_verification(
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

fn more_note(w: &mut impl Write, total: usize, what: &str, hint: &str) -> io::Result<()> {
    if total > MAX_LISTED {
        writeln!(
            w,
            "<p class=\"note\">The first {MAX_LISTED} of {total} {what} are listed; {hint}.</p>"
        )?;
    }
    Ok(())
}

/// A horizontal gauge for a rate: the track is 0–100 %, the fill the rate.
fn gauge(w: &mut impl Write, id: &str, title: &str, ratio: &Ratio, basis: &str) -> io::Result<()> {
    const WIDTH: f64 = 300.0;
    let fill = ratio.rate.unwrap_or(0.0).clamp(0.0, 1.0) * WIDTH;
    let value = percent(ratio.rate);
    writeln!(
        w,
        "<div class=\"gauge\" id=\"{id}\">\n<h3>{title}</h3>\n<div class=\"value\">{value}</div>\n\
         <svg class=\"bar\" viewBox=\"0 0 {WIDTH} 18\" role=\"img\" aria-labelledby=\"{id}-t\">\
         <title id=\"{id}-t\">{title}: {value} ({} of {})</title>\
         <rect class=\"track\" x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"18\" rx=\"3\"></rect>\
         <rect class=\"fill\" x=\"0\" y=\"0\" width=\"{fill:.1}\" height=\"18\" rx=\"3\"></rect></svg>\n\
         <div class=\"basis\">{} of {} {basis}</div>\n</div>",
        ratio.numerator, ratio.denominator, ratio.numerator, ratio.denominator
    )
}

fn write_kpis(w: &mut impl Write, kpis: &Kpis) -> io::Result<()> {
    writeln!(
        w,
        "<section id=\"kpis\" aria-labelledby=\"kpis-h\">\n<h2 id=\"kpis-h\">Release KPIs</h2>\n<div class=\"gauges\">"
    )?;
    gauge(
        w,
        "gate-pass",
        "Gate pass rate",
        &kpis.gate_pass,
        "records passed",
    )?;
    gauge(
        w,
        "prr-compliance",
        "PRR compliance rate",
        &kpis.prr_compliance,
        "policy-evaluated records with no failing PRR rule",
    )?;
    gauge(
        w,
        "evaluation-gate-pass",
        "Evaluation gate pass rate",
        &kpis.evaluation_gate_pass,
        "records with evaluations had no failing EVAL/EVIDENCE rule",
    )?;
    gauge(
        w,
        "change-failure",
        "Change failure rate",
        &kpis.change_failure,
        "passed releases rolled back within 7 days",
    )?;
    let ftp = &kpis.fail_to_pass;
    writeln!(
        w,
        "<div class=\"gauge\" id=\"fail-to-pass\">\n<h3>Median time from first failed to first passed check</h3>\n\
         <div class=\"value\">{}</div>\n<div class=\"basis\">over {} releases blocked before they passed{}</div>\n</div>",
        ftp.median_seconds
            .map(human_duration)
            .unwrap_or_else(|| "no data".to_owned()),
        ftp.releases,
        ftp.median_seconds
            .map(|s| format!(" ({s:.0} s)"))
            .unwrap_or_default()
    )?;
    writeln!(
        w,
        "<div class=\"gauge\" id=\"decisions\">\n<h3>Decisions</h3>\n<div class=\"value\">{}</div>\n\
         <div class=\"basis\">{} pass, {} fail, {} error{}</div>\n</div>",
        kpis.records,
        kpis.decisions.pass,
        kpis.decisions.fail,
        kpis.decisions.error,
        if kpis.without_time > 0 {
            format!(
                "; {} with an unreadable time left out of the time-based figures",
                kpis.without_time
            )
        } else {
            String::new()
        }
    )?;
    writeln!(w, "</div>\n</section>")
}

fn legend(w: &mut impl Write) -> io::Result<()> {
    writeln!(
        w,
        "<ul class=\"legend\"><li><span class=\"swatch pass\"></span>pass</li>\
         <li><span class=\"swatch fail\"></span>fail (blocked)</li>\
         <li><span class=\"swatch error\"></span>error (could not decide)</li></ul>"
    )
}

/// A round axis maximum at or above `max` (1, 2, 5 × 10^k).
fn nice_max(max: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            if let Some(v) = step.checked_mul(m) {
                if v >= max {
                    return v.max(1);
                }
            }
        }
        match step.checked_mul(10) {
            Some(s) => step = s,
            None => return max.max(1),
        }
    }
}

fn write_weeks(w: &mut impl Write, kpis: &Kpis) -> io::Result<()> {
    writeln!(
        w,
        "<section id=\"weekly\" aria-labelledby=\"weekly-h\">\n<h2 id=\"weekly-h\">Decisions per week</h2>"
    )?;
    if kpis.weeks.is_empty() {
        writeln!(w, "<p>No decisions with a readable time.</p>\n</section>")?;
        return Ok(());
    }
    let shown = &kpis.weeks[kpis.weeks.len().saturating_sub(MAX_CHART_WEEKS)..];
    let (width, height) = (1000.0_f64, 280.0_f64);
    let (left, right, top, bottom) = (48.0, 12.0, 12.0, 44.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let max = nice_max(
        shown
            .iter()
            .map(|wk| wk.decisions.total())
            .max()
            .unwrap_or(0),
    );
    let slot = plot_w / shown.len() as f64;
    let bar = (slot * 0.7).clamp(1.0, 56.0);
    let y = |v: u64| top + plot_h - v as f64 / max as f64 * plot_h;
    writeln!(
        w,
        "<figure>\n<svg class=\"chart\" id=\"weeks-chart\" viewBox=\"0 0 {width} {height}\" role=\"img\" \
         aria-labelledby=\"weeks-t weeks-d\">\n<title id=\"weeks-t\">Decisions per ISO week</title>\n\
         <desc id=\"weeks-d\">Stacked bars, one per week from {} to {}: pass, fail and error decisions.</desc>",
        escape(&shown[0].week),
        escape(&shown[shown.len() - 1].week)
    )?;
    for v in [0, max / 2, max] {
        let yv = y(v);
        writeln!(
            w,
            "<line class=\"grid\" x1=\"{left}\" x2=\"{:.1}\" y1=\"{yv:.1}\" y2=\"{yv:.1}\"></line>\
             <text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{v}</text>",
            width - right,
            left - 6.0,
            yv + 4.0
        )?;
    }
    let label_every = shown.len().div_ceil(12).max(1);
    for (i, wk) in shown.iter().enumerate() {
        let x = left + i as f64 * slot + (slot - bar) / 2.0;
        let d = &wk.decisions;
        writeln!(
            w,
            "<g class=\"week\"><title>{} (week of {}): {} pass, {} fail, {} error</title>",
            escape(&wk.week),
            escape(&wk.starts),
            d.pass,
            d.fail,
            d.error
        )?;
        let mut base = 0u64;
        for (class, n) in [("pass", d.pass), ("fail", d.fail), ("error", d.error)] {
            if n == 0 {
                continue;
            }
            let (y1, y0) = (y(base + n), y(base));
            writeln!(
                w,
                "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{y1:.1}\" width=\"{bar:.1}\" height=\"{:.1}\"></rect>",
                y0 - y1
            )?;
            base += n;
        }
        if slot >= 24.0 && d.total() > 0 {
            writeln!(
                w,
                "<text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                x + bar / 2.0,
                y(d.total()) - 4.0,
                d.total()
            )?;
        }
        if i % label_every == 0 || i + 1 == shown.len() {
            writeln!(
                w,
                "<text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                x + bar / 2.0,
                height - bottom + 16.0,
                escape(&wk.week)
            )?;
        }
        writeln!(w, "</g>")?;
    }
    writeln!(w, "</svg>")?;
    if shown.len() < kpis.weeks.len() {
        writeln!(
            w,
            "<figcaption>The chart shows the latest {} of {} weeks; the table lists every week with decisions.</figcaption>",
            shown.len(),
            kpis.weeks.len()
        )?;
    }
    writeln!(w, "</figure>")?;
    legend(w)?;
    writeln!(
        w,
        "<table id=\"weeks-table\">\n<caption>Decisions per ISO week (weeks with decisions)</caption>\n\
         <thead><tr><th scope=\"col\">Week</th><th scope=\"col\">Monday</th><th scope=\"col\" class=\"num\">Pass</th>\
         <th scope=\"col\" class=\"num\">Fail</th><th scope=\"col\" class=\"num\">Error</th>\
         <th scope=\"col\" class=\"num\">Gate pass rate</th></tr></thead>\n<tbody>"
    )?;
    let with_decisions: Vec<_> = kpis
        .weeks
        .iter()
        .filter(|wk| wk.decisions.total() > 0)
        .collect();
    // Newest first when capped: the recent weeks matter most in an audit.
    for wk in with_decisions.iter().rev().take(MAX_LISTED).rev() {
        let d = &wk.decisions;
        writeln!(
            w,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&wk.week),
            escape(&wk.starts),
            d.pass,
            d.fail,
            d.error,
            percent(Some(d.pass as f64 / d.total() as f64))
        )?;
    }
    writeln!(w, "</tbody>\n</table>")?;
    more_note(
        w,
        with_decisions.len(),
        "weeks",
        "the latest are listed, the CSV has every record",
    )?;
    writeln!(w, "</section>")
}

fn write_rules(w: &mut impl Write, kpis: &Kpis) -> io::Result<()> {
    writeln!(
        w,
        "<section id=\"rules\" aria-labelledby=\"rules-h\">\n<h2 id=\"rules-h\">Top failing rules</h2>"
    )?;
    let rules = &kpis.top_failing_rules;
    if rules.is_empty() {
        writeln!(w, "<p>No rule failed.</p>\n</section>")?;
        return Ok(());
    }
    let (width, row_h, label_w) = (1000.0_f64, 26.0_f64, 330.0_f64);
    let bar_max = width - label_w - 80.0;
    let height = rules.len() as f64 * row_h + 8.0;
    let max = rules.iter().map(|r| r.records).max().unwrap_or(1).max(1);
    writeln!(
        w,
        "<figure>\n<svg class=\"chart\" id=\"rules-chart\" viewBox=\"0 0 {width} {height}\" role=\"img\" \
         aria-labelledby=\"rules-t rules-d\">\n<title id=\"rules-t\">Top failing rules</title>\n\
         <desc id=\"rules-d\">One bar per rule: the number of records it failed on, most first.</desc>"
    )?;
    for (i, r) in rules.iter().enumerate() {
        let y = 4.0 + i as f64 * row_h;
        let len = (r.records as f64 / max as f64 * bar_max).max(1.0);
        writeln!(
            w,
            "<g class=\"rule\"><title>{}: failed on {} records</title>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect class=\"fail rule-bar\" x=\"{label_w}\" y=\"{y:.1}\" width=\"{len:.1}\" height=\"{:.1}\"></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text></g>",
            escape(&r.rule),
            r.records,
            label_w - 8.0,
            y + row_h * 0.62,
            label(&r.rule),
            row_h - 8.0,
            label_w + len + 6.0,
            y + row_h * 0.62,
            r.records
        )?;
    }
    writeln!(
        w,
        "</svg>\n<figcaption>Records on which each rule was a deny finding (a rule counts once per record).</figcaption>\n</figure>\n</section>"
    )
}

fn write_services(w: &mut impl Write, kpis: &Kpis) -> io::Result<()> {
    writeln!(
        w,
        "<section id=\"services\" aria-labelledby=\"services-h\">\n<h2 id=\"services-h\">Per service</h2>"
    )?;
    if kpis.services.is_empty() {
        writeln!(w, "<p>No records.</p>\n</section>")?;
        return Ok(());
    }
    writeln!(
        w,
        "<table id=\"services-table\">\n<caption>Decisions per service</caption>\n\
         <thead><tr><th scope=\"col\">Service</th><th scope=\"col\" class=\"num\">Records</th>\
         <th scope=\"col\" class=\"num\">Pass</th><th scope=\"col\" class=\"num\">Fail</th>\
         <th scope=\"col\" class=\"num\">Error</th><th scope=\"col\" class=\"num\">Gate pass rate</th>\
         <th scope=\"col\">Last decision</th></tr></thead>\n<tbody>"
    )?;
    for s in &kpis.services {
        writeln!(
            w,
            "<tr><th scope=\"row\" class=\"text\">{}</th><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"time\">{}</td></tr>",
            s.service
                .as_deref()
                .map(escape)
                .unwrap_or_else(|| "(no service)".to_owned()),
            s.records,
            s.decisions.pass,
            s.decisions.fail,
            s.decisions.error,
            percent(s.gate_pass_rate),
            opt(s.last_decision.as_deref())
        )?;
    }
    writeln!(w, "</tbody>\n</table>\n</section>")
}

fn write_failed_changes(w: &mut impl Write, kpis: &Kpis) -> io::Result<()> {
    writeln!(
        w,
        "<section id=\"failed-changes\" aria-labelledby=\"failed-changes-h\">\n\
         <h2 id=\"failed-changes-h\">Changes counted as failed</h2>"
    )?;
    if kpis.failed_changes.is_empty() {
        writeln!(
            w,
            "<p>No passed release was rolled back within 7 days ({} passed releases).</p>\n</section>",
            kpis.change_failure.denominator
        )?;
        return Ok(());
    }
    writeln!(
        w,
        "<table id=\"failed-changes-table\">\n<caption>Releases undone by a rollback within 7 days</caption>\n\
         <thead><tr><th scope=\"col\">Service</th><th scope=\"col\">Environment</th>\
         <th scope=\"col\">Release</th><th scope=\"col\">First passed</th>\
         <th scope=\"col\">Rollback</th><th scope=\"col\">Rolled back</th>\
         <th scope=\"col\" class=\"num\">After</th></tr></thead>\n<tbody>"
    )?;
    for f in kpis.failed_changes.iter().take(MAX_LISTED) {
        let (r, b) = (&f.release, &f.rollback);
        writeln!(
            w,
            "<tr><td class=\"text\">{}</td><td>{}</td><td class=\"text\">{} {} (seq {})</td><td class=\"time\">{}</td>\
             <td class=\"text\">{} {} (seq {})</td><td class=\"time\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&r.service),
            opt(r.environment.as_deref()),
            escape(&r.name),
            escape(&r.version),
            r.seq,
            escape(&r.time),
            escape(&b.name),
            escape(&b.version),
            b.seq,
            escape(&b.time),
            human_duration(f.hours_to_rollback * 3600.0)
        )?;
    }
    writeln!(w, "</tbody>\n</table>")?;
    more_note(
        w,
        kpis.failed_changes.len(),
        "failed changes",
        "export JSONL to list all",
    )?;
    writeln!(w, "</section>")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_markup_quotes_and_controls() {
        assert_eq!(
            escape("<a href=\"x\" title='y'>&\u{0}\u{7}\tz\n"),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;\u{FFFD}\u{FFFD}\tz\n"
        );
        // Labels are cut by characters, never inside a multi-byte character or an entity.
        let long = "Ü".repeat(60);
        let cut = label(&long);
        assert_eq!(cut.chars().count(), MAX_LABEL_CHARS);
        assert!(cut.ends_with('…'));
        assert_eq!(label("<b>"), "&lt;b&gt;");
    }

    #[test]
    fn durations_and_axis_maxima_read_well() {
        assert_eq!(human_duration(9000.0), "2 h 30 min");
        assert_eq!(human_duration(86_400.0), "1 d 0 h");
        assert_eq!(human_duration(2700.0), "45 min 0 s");
        assert_eq!(human_duration(12.4), "12 s");
        assert_eq!(
            [0, 1, 3, 6, 10, 11, 37, 250].map(nice_max),
            [1, 1, 5, 10, 10, 20, 50, 500]
        );
    }
}
