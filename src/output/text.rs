//! `--format text`: for a person at a terminal. Findings are grouped per manifest, each with
//! `file:line`, the rule, the message, the field and the remedy; run notes (including that
//! approvals were not evaluated without pull-request context) and a summary line close the run.
//! Colour only when asked (the CLI decides from the tty, `NO_COLOR` and `--color`).

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};

use crate::report::{Decision, ManifestResult, Report, APPROVALS_NOT_EVALUATED};

struct Palette {
    pass: Style,
    fail: Style,
    error: Style,
    warn: Style,
    dim: Style,
    bold: Style,
}

impl Palette {
    fn new(color: bool) -> Self {
        let style = |s: Style| if color { s } else { Style::new() };
        Self {
            pass: style(AnsiColor::Green.on_default().bold()),
            fail: style(AnsiColor::Red.on_default().bold()),
            error: style(AnsiColor::Magenta.on_default().bold()),
            warn: style(AnsiColor::Yellow.on_default().bold()),
            dim: style(Style::new().dimmed()),
            bold: style(Style::new().bold()),
        }
    }

    fn decision(&self, decision: Decision) -> (Style, &'static str) {
        match decision {
            Decision::Pass => (self.pass, "PASS "),
            Decision::Fail => (self.fail, "FAIL "),
            Decision::Error => (self.error, "ERROR"),
        }
    }
}

pub fn render(report: &Report, color: bool) -> String {
    let p = Palette::new(color);
    let mut out = String::new();
    for result in &report.results {
        manifest(&mut out, result, &p);
    }
    for removed in report.removed.iter().flatten() {
        let _ = writeln!(
            out,
            "{}removed:{} {} (deleted by the change; not checked)",
            p.dim.render(),
            p.dim.render_reset(),
            removed.file
        );
    }
    let approvals = (!report.approvals_evaluated).then_some(APPROVALS_NOT_EVALUATED);
    for note in report.notes.iter().map(String::as_str).chain(approvals) {
        let _ = writeln!(
            out,
            "{}note:{} {note}",
            p.dim.render(),
            p.dim.render_reset()
        );
    }
    let s = &report.summary;
    let (style, word) = p.decision(report.decision);
    let _ = writeln!(
        out,
        "{}{}{}: {} manifest{}, {} passed, {} failed, {} error{}, {} warning{}",
        style.render(),
        word.trim_end(),
        style.render_reset(),
        s.manifests,
        plural(s.manifests),
        s.passed,
        s.failed,
        s.errors,
        plural(s.errors),
        s.warnings,
        plural(s.warnings),
    );
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn manifest(out: &mut String, result: &ManifestResult, p: &Palette) {
    let (style, word) = p.decision(result.decision);
    let what = match (&result.kind, &result.name, &result.version) {
        (Some(kind), Some(name), Some(version)) => format!("{kind} {name}@{version}"),
        (Some(kind), Some(name), None) => format!("{kind} {name}"),
        _ => String::new(),
    };
    let document = if result.document > 0 {
        format!(" (document {})", result.document)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "{}{word}{} {}{}:{}{}{document}  {what}",
        style.render(),
        style.render_reset(),
        p.bold.render(),
        result.file,
        result.line,
        p.bold.render_reset(),
    );
    if let Some(error) = &result.error {
        let _ = writeln!(out, "      {error}");
    }
    for finding in &result.findings {
        let style = if finding.severity == "warn" {
            p.warn
        } else {
            p.fail
        };
        let _ = writeln!(
            out,
            "      {}:{}  {}{}{}  {}",
            result.file,
            finding.line,
            style.render(),
            finding.rule,
            style.render_reset(),
            finding.message
        );
        if let Some(path) = &finding.path {
            let _ = writeln!(
                out,
                "          {}field:{} {path}",
                p.dim.render(),
                p.dim.render_reset()
            );
        }
        if let Some(fix) = &finding.remediation {
            let _ = writeln!(
                out,
                "          {}fix:{} {fix}",
                p.dim.render(),
                p.dim.render_reset()
            );
        }
    }
    for exception in &result.exceptions {
        let _ = writeln!(
            out,
            "      {}:{}  {}excepted{} {} by exception `{}` in {}: {}",
            result.file,
            exception.finding.line,
            p.dim.render(),
            p.dim.render_reset(),
            exception.finding.rule,
            exception.exception,
            exception.exception_policy,
            exception.finding.message
        );
    }
    for waiver in &result.waivers {
        let _ = writeln!(
            out,
            "      {}:{}  {}waived{} {} by {} until {}",
            result.file,
            waiver.line,
            p.dim.render(),
            p.dim.render_reset(),
            waiver.item,
            waiver.approver.as_deref().unwrap_or("(no approver)"),
            waiver.expires.as_deref().unwrap_or("(no expiry)"),
        );
    }
    for note in &result.notes {
        let _ = writeln!(
            out,
            "      {}note:{} {note}",
            p.dim.render(),
            p.dim.render_reset()
        );
    }
}
