//! The KPI gauges and the inline SVG charts: decisions per ISO week (stacked bars, the latest
//! [`super::MAX_CHART_WEEKS`] weeks, with the table of every week), and the top failing rules.
//! Coordinates are written with fixed precision, so the same KPIs give the same bytes.

use std::io::{self, Write};

use super::text::{escape, human_duration, label, percent};
use super::{more_note, MAX_CHART_WEEKS, MAX_LISTED};
use crate::export::kpi::{Kpis, Ratio};

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

pub(super) fn write_kpis(w: &mut impl Write, kpis: &Kpis) -> io::Result<()> {
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

pub(super) fn write_weeks(w: &mut impl Write, kpis: &Kpis) -> io::Result<()> {
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

pub(super) fn write_rules(w: &mut impl Write, kpis: &Kpis) -> io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_maxima_are_round() {
        assert_eq!(
            [0, 1, 3, 6, 10, 11, 37, 250].map(nice_max),
            [1, 1, 5, 10, 10, 20, 50, 500]
        );
    }
}
