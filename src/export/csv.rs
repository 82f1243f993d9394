//! CSV export rows: RFC 4180 (comma separated, CRLF line ends, fields quoted when they hold a
//! comma, a quote or a line break, quotes doubled) written by the `csv` crate, one header line
//! of [`ExportRow::COLUMNS`], one line per row.
//!
//! Cells are spreadsheet-safe (CSV injection, OWASP). Every part of a cell, split at `;` (lists
//! are joined with `;`, and spreadsheets in many locales import `;`-separated), that begins —
//! after any leading whitespace — with `=`, `+`, `-`, `@`, `|` or their full-width forms, or
//! with a tab, a carriage return or a `'`, is written with a `'` in front, which spreadsheets
//! show as text. Because a part that already began with `'` gets one too, the rule is exactly
//! reversible: strip one leading `'` from every `;`-separated part that has one. The JSONL
//! export keeps values raw and lists as arrays.

use std::borrow::Cow;
use std::io::Write;

use super::ExportRow;

/// Characters that make a spreadsheet read a cell as a formula (OWASP CSV injection), with
/// their full-width forms (East Asian spreadsheet locales take those too) and `|` (DDE).
const FORMULA_START: [char; 9] = [
    '=', '+', '-', '@', '|', '\u{FF1D}', '\u{FF0B}', '\u{FF0D}', '\u{FF20}',
];

/// Whether a `;`-separated part of a cell needs the `'` prefix.
fn risky(part: &str) -> bool {
    part.starts_with(['\'', '\t', '\r']) || part.trim_start().starts_with(FORMULA_START)
}

/// A cell as written: every `;`-separated part that begins like a formula (or with `'`) gets
/// a leading `'`.
pub(crate) fn neutralize(cell: &str) -> Cow<'_, str> {
    if !cell.split(';').any(risky) {
        return Cow::Borrowed(cell);
    }
    let parts: Vec<Cow<'_, str>> = cell
        .split(';')
        .map(|part| match risky(part) {
            true => Cow::Owned(format!("'{part}")),
            false => Cow::Borrowed(part),
        })
        .collect();
    Cow::Owned(parts.join(";"))
}

/// The cells of `row`, in [`ExportRow::COLUMNS`] order, before neutralizing.
pub(crate) fn cells(row: &ExportRow) -> [String; 23] {
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
        row.bundles
            .iter()
            .map(bundle_cell)
            .collect::<Vec<_>>()
            .join(";"),
        row.manifest_path.clone(),
        row.evidence.join(";"),
        row.verified.to_string(),
    ]
}

/// One bundle in the `bundles` cell: `REF keyid=KEYID`, the reference pinned to the verified
/// digest (a tag written with `--allow-bundle-tag` gets `@DIGEST` appended) so the cell alone
/// names the exact rules.
pub(crate) fn bundle_cell(bundle: &crate::record::statement::BundleUsed) -> String {
    let pinned = if bundle.reference.ends_with(&format!("@{}", bundle.digest)) {
        bundle.reference.clone()
    } else {
        format!("{}@{}", bundle.reference, bundle.digest)
    };
    format!("{pinned} keyid={}", bundle.keyid)
}

/// Writes rows as CSV: the header on creation, then a line per [`CsvRows::write`].
pub(crate) struct CsvRows<W: Write> {
    writer: csv::Writer<W>,
}

impl<W: Write> CsvRows<W> {
    /// Starts the CSV with its header line.
    pub(crate) fn new(out: W) -> std::io::Result<Self> {
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(out);
        writer
            .write_record(ExportRow::COLUMNS)
            .map_err(std::io::Error::from)?;
        Ok(Self { writer })
    }

    /// Writes one row.
    pub(crate) fn write(&mut self, row: &ExportRow) -> std::io::Result<()> {
        let cells = cells(row);
        self.writer
            .write_record(cells.iter().map(|c| neutralize(c).into_owned()))
            .map_err(std::io::Error::from)
    }

    /// Flushes and returns the underlying writer.
    pub(crate) fn finish(self) -> std::io::Result<W> {
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
        for bad in [
            "=1+1",
            "+SUM(A1)",
            "-2",
            "@cmd",
            "\tx",
            "\rx",
            " =1+1",
            "\n=1",
            "|calc",
            "\u{FF1D}1+1",
            "'=1+1",
            "'plain",
        ] {
            assert_eq!(neutralize(bad), format!("'{bad}"), "{bad:?}");
        }
        for good in ["", "a=b", "AIR-1", "1.5", "x;y", "name@example.com"] {
            assert_eq!(neutralize(good), good);
        }
    }

    #[test]
    fn every_list_part_is_neutralized_and_the_rule_reverses() {
        assert_eq!(neutralize(" =1+3;=1+2"), "' =1+3;'=1+2");
        assert_eq!(neutralize("a;=1+1"), "a;'=1+1");
        assert_eq!(neutralize("evals/x;=1+9.json"), "evals/x;'=1+9.json");
        // Reversal: one `'` off every part that has one.
        let undo = |cell: &str| -> String {
            cell.split(';')
                .map(|p| p.strip_prefix('\'').unwrap_or(p))
                .collect::<Vec<_>>()
                .join(";")
        };
        for original in ["'=1+1", "=1+1", "a;'b;=c", "plain"] {
            assert_eq!(undo(&neutralize(original)), original);
        }
    }
}
