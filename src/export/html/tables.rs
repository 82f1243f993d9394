//! The tables of the report that have no chart: decisions per service, and the releases
//! counted as failed (undone by a rollback within 7 days), the latter capped at
//! [`super::MAX_LISTED`].

use std::io::{self, Write};

use super::text::{escape, human_duration, opt, percent};
use super::{more_note, MAX_LISTED};
use crate::export::kpi::Kpis;

pub(super) fn write_services(w: &mut impl Write, kpis: &Kpis) -> io::Result<()> {
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

pub(super) fn write_failed_changes(w: &mut impl Write, kpis: &Kpis) -> io::Result<()> {
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
