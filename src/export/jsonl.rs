//! JSONL export rows: one compact JSON object per line, keys in [`ExportRow::COLUMNS`] order,
//! lists as arrays, unknown values as `null`. Values are written as recorded (no spreadsheet
//! escaping: JSONL is read by programs, not spreadsheets).

use std::io::Write;

use super::ExportRow;

/// Writes `row` as one line.
pub(crate) fn write_row(out: &mut dyn Write, row: &ExportRow) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, row).map_err(std::io::Error::from)?;
    out.write_all(b"\n")
}
