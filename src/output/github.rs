//! `--format github`: GitHub Actions workflow commands, one per finding, so a run shows
//! annotations at the manifest's `file:line`:
//! `::error file=<path>,line=<n>,title=<RULE>::<message>` for a deny finding, `::warning …` for a
//! warn finding, and `::error file=<path>,line=<n>,title=relgate error::<error>` for a manifest
//! that could not be evaluated. Run-level notes are `::notice` (`::error` when nothing was
//! checked). A finding's remedy follows its message on a new line.
//!
//! Paths are printed as in the report, relative to the gate root. GitHub resolves them against
//! the repository root, so run the gate from the repository root (the Action does) for the
//! annotations to land on the right file.

use std::fmt::Write as _;

use crate::report::{Decision, Report};

pub(crate) fn render(report: &Report) -> String {
    let mut out = String::new();
    for result in &report.results {
        let file = property(&result.file);
        if let Some(error) = &result.error {
            let _ = writeln!(
                out,
                "::error file={file},line={},title=relgate error::{}",
                result.line,
                data(error)
            );
        }
        for f in &result.findings {
            let command = if f.severity.is_warn() {
                "warning"
            } else {
                "error"
            };
            let mut message = f.message.clone();
            if let Some(fix) = &f.remediation {
                let _ = write!(message, "\nfix: {fix}");
            }
            let _ = writeln!(
                out,
                "::{command} file={file},line={},title={}::{}",
                f.line,
                property(&f.rule),
                data(&message)
            );
        }
    }
    // Nothing checked is an error, except a `--changed` run that found nothing changed.
    let command = if report.results.is_empty() && report.decision != Decision::Pass {
        "error"
    } else {
        "notice"
    };
    for removed in report.removed.iter().flatten() {
        let _ = writeln!(
            out,
            "::notice title=relgate::{}",
            data(&format!(
                "removed: {} (deleted by the change; not checked)",
                removed.file
            ))
        );
    }
    for note in &report.notes {
        let _ = writeln!(out, "::{command} title=relgate::{}", data(note));
    }
    out
}

/// Escapes a command's message: `%`, CR and LF.
pub(crate) fn data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a property value: as [`data`], plus `:` and `,`.
pub(crate) fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::{data, property};

    #[test]
    fn escapes_follow_the_runner() {
        assert_eq!(data("50% a:b,c\r\nd"), "50%25 a:b,c%0D%0Ad");
        assert_eq!(property("50% a:b,c\nd"), "50%25 a%3Ab%2Cc%0Ad");
    }
}
