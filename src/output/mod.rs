//! Printers: one file per output format, each a pure function from a [`Report`] to text.
//! The CLI picks one per `--format` and sends it to stdout or its `--output` file.

pub mod json;
pub mod text;

use crate::report::Report;

/// Output formats of `relgate check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people: findings grouped per manifest with file:line and the fix.
    Text,
    /// One JSON object (DESIGN §7), stable field order.
    Json,
}

/// Renders `report` in `format`. `color` applies to text only.
pub fn render(report: &Report, format: Format, color: bool) -> String {
    match format {
        Format::Text => text::render(report, color),
        Format::Json => json::render(report),
    }
}
