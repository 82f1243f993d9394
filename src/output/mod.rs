//! Printers: one file per output format, each a pure function from a [`Report`] to text.
//! The CLI picks one per `--format` and sends it to stdout or its `--output` file.

pub(crate) mod github;
pub(crate) mod gitlab;
pub(crate) mod json;
pub(crate) mod junit;
pub(crate) mod markdown;
pub(crate) mod palette;
pub(crate) mod sarif;
pub(crate) mod test_report;
pub(crate) mod text;
pub(crate) mod verify;

use crate::report::Report;

pub(crate) use palette::ColorWhen;

/// Output formats of `relgate check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// For people: findings grouped per manifest with file:line and the fix.
    Text,
    /// One JSON object (docs/report.md), stable field order.
    Json,
    /// A pull-request comment or job summary (GitHub-flavoured Markdown, sticky-comment marker).
    Markdown,
    /// JUnit XML: a test suite per manifest, a test case per policy area.
    Junit,
    /// SARIF 2.1.0 for code scanning, stable fingerprints per finding.
    Sarif,
    /// GitHub Actions workflow commands: an annotation per finding at file:line.
    Github,
    /// GitLab Code Quality report (Code Climate JSON) for merge-request widgets.
    Gitlab,
}

/// Renders `report` in `format`. `color` applies to text only.
pub(crate) fn render(report: &Report, format: Format, color: bool) -> String {
    match format {
        Format::Text => text::render(report, color),
        Format::Json => json::render(report),
        Format::Markdown => markdown::render(report),
        Format::Junit => junit::render(report),
        Format::Sarif => sarif::render(report),
        Format::Github => github::render(report),
        Format::Gitlab => gitlab::render(report),
    }
}
