//! Text output of `relgate test`: one line per test (`PASS file:line data.pkg.test_x`), load
//! errors, coverage per file, and the closing `N passed, M failed` line (errors count as
//! failures there, as in `opa test`).

use std::fmt::Write as _;

use super::palette::Palette;
use crate::policy::testing::{Outcome, TestReport};

/// Renders `report`; `threshold` is the `--threshold` given with `--coverage`, if any.
pub(crate) fn render(report: &TestReport, threshold: Option<f64>, color: bool) -> String {
    let palette = Palette::new(color);
    let (red, green) = (palette.fail, palette.pass);
    let mut out = String::new();
    for error in &report.load_errors {
        let _ = writeln!(
            out,
            "{}LOAD ERROR{} {}: {}",
            red.render(),
            red.render_reset(),
            error.file,
            error.message
        );
    }
    for test in &report.tests {
        let (style, word) = match test.outcome {
            Outcome::Pass => (green, "PASS"),
            Outcome::Fail => (red, "FAIL"),
            Outcome::Error => (red, "ERROR"),
        };
        let _ = writeln!(
            out,
            "{}{word}{} {}:{} {}",
            style.render(),
            style.render_reset(),
            test.file,
            test.line,
            test.name
        );
        if let Some(message) = &test.message {
            let _ = writeln!(out, "      {message}");
        }
    }
    if let Some(coverage) = &report.coverage {
        let _ = writeln!(out, "coverage:");
        for file in &coverage.files {
            let _ = writeln!(
                out,
                "  {:>6.2}%  {}  ({} of {} lines; not covered: {})",
                file.percent,
                file.file,
                file.covered,
                file.covered + file.not_covered,
                file.not_covered_lines
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            );
        }
        let _ = writeln!(out, "  {:>6.2}%  total", coverage.percent);
        if let Some(threshold) = threshold.filter(|t| coverage.percent < *t) {
            let _ = writeln!(
                out,
                "{}coverage {:.2}% is below the threshold {threshold}%{}",
                red.render(),
                coverage.percent,
                red.render_reset()
            );
        }
    }
    if report.tests.is_empty() {
        let _ = writeln!(out, "no tests found");
    }
    let _ = writeln!(
        out,
        "{} passed, {} failed",
        report.passed,
        report.failed + report.errors
    );
    out
}
