//! CSV export rows: RFC 4180 (comma separated, CRLF line ends, fields quoted when they hold a
//! comma, a quote or a line break, quotes doubled) written by the `csv` crate, one header line
//! of [`ExportRow::COLUMNS`], one line per row.
//!
//! Cells are spreadsheet-safe: a cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage
//! return would be taken for a formula by Excel, LibreOffice or Google Sheets (CSV injection,
//! OWASP), so such a cell is written with a leading `'`, which spreadsheets show as text. The
//! value is otherwise unchanged; an auditor reading the raw file strips that one quote. Lists
//! (rules, approvers, evidence files) are joined with `;`; the JSONL export keeps them as arrays.

use std::borrow::Cow;
use std::io::Write;

use super::ExportRow;

/// Characters that make a spreadsheet read a cell as a formula (OWASP CSV injection).
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A cell as written: prefixed with `'` when it begins like a formula.
pub fn neutralize(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(FORMULA_START) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// The cells of `row`, in [`ExportRow::COLUMNS`] order, before neutralizing.
pub fn cells(row: &ExportRow) -> [String; 22] {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let num = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
    [
        row.seq.to_string(),
        row.time.clone(),
        opt(&row.service),
        row.name.clone(),
        row.version.clone(),
        row.kind.clone(),
        opt(&row.environment),
        num(row.tier.map(u64::from)),
        opt(&row.change_type),
        row.decision.as_str().to_owned(),
        row.failed_rules.join(";"),
        row.warned_rules.join(";"),
        row.approvers.join(";"),
        opt(&row.requester),
        num(row.pull_request),
        opt(&row.merged_by),
        row.commit.clone(),
        opt(&row.ticket),
        row.policy_digest.clone(),
        row.manifest_path.clone(),
        row.evidence.join(";"),
        row.verified.to_string(),
    ]
}

/// Writes rows as CSV: the header on creation, then a line per [`CsvRows::write`].
pub struct CsvRows<W: Write> {
    writer: csv::Writer<W>,
}

impl<W: Write> CsvRows<W> {
    /// Starts the CSV with its header line.
    pub fn new(out: W) -> std::io::Result<Self> {
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(out);
        writer
            .write_record(ExportRow::COLUMNS)
            .map_err(std::io::Error::from)?;
        Ok(Self { writer })
    }

    /// Writes one row.
    pub fn write(&mut self, row: &ExportRow) -> std::io::Result<()> {
        let cells = cells(row);
        self.writer
            .write_record(cells.iter().map(|c| neutralize(c).into_owned()))
            .map_err(std::io::Error::from)
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(self) -> std::io::Result<W> {
        self.writer
            .into_inner()
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralized_and_others_kept() {
        for bad in ["=1+1", "+SUM(A1)", "-2", "@cmd", "\tx", "\rx"] {
            assert_eq!(neutralize(bad), format!("'{bad}"));
        }
        for good in ["", "a=b", "AIR-1", " =x", "'quoted", "1.5"] {
            assert_eq!(neutralize(good), good);
        }
    }
}
