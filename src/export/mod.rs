//! `relgate export` (docs/export.md): turns a verified ledger into evidence an auditor accepts.
//! It owns the export row model ([`row`]), the row writers ([`csv`], [`jsonl`], the HTML
//! report in [`html`]), the row filter ([`filter`]), the offline-verifiable bundle
//! ([`bundle`]) and [`export_rows`], which reads a [`VerifiedLedger`] once more and feeds
//! every writer. It reads records only through [`crate::record::verify`], so every exported
//! row says whether its record verified.
//!
//! Memory: CSV and JSONL rows are written as the ledger is read, a window of records at a
//! time, so memory does not grow with the ledger's payloads (verification keeps a few dozen
//! bytes per record: place, payload hash, verdict). The HTML report aggregates, so it holds
//! its rows.

pub(crate) mod bundle;
pub(crate) mod csv;
pub(crate) mod filter;
pub mod html;
pub(crate) mod jsonl;
pub mod kpi;
pub(crate) mod row;

use std::io::Write;

pub use bundle::{Bundle, BundleInfo};
pub use filter::RowFilter;
pub use row::ExportRow;

use crate::record::statement::Statement;
use crate::record::verify::{Progress, ReadRecord, VerifiedLedger};

/// Output formats of `relgate export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// RFC 4180 CSV with a header line, spreadsheet-safe cells.
    Csv,
    /// One compact JSON object per line.
    Jsonl,
    /// A self-contained HTML report with charts and KPIs.
    Html,
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// An output could not be written.
    #[error("cannot write {what}")]
    Write {
        /// Which output.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A record that has no row in the export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unexported {
    /// Its seq, when known.
    pub(crate) seq: Option<u64>,
    /// Its file.
    pub(crate) file: String,
    /// Whether the record verified (then the export is incomplete).
    pub(crate) verified: bool,
    /// Why it has no row.
    pub(crate) reason: String,
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportOutcome {
    /// Records read.
    pub(crate) records: u64,
    /// Rows written (after the filter).
    pub rows: u64,
    /// Records without a row for another reason than the filter.
    pub(crate) unexported: Vec<Unexported>,
}

impl ExportOutcome {
    /// True when a verified record is missing from the export (could not be read as a change
    /// Statement, or a date filter could not place it): the export is incomplete.
    pub(crate) fn incomplete(&self) -> bool {
        self.unexported.iter().any(|u| u.verified)
    }
}

/// Where rows go.
pub struct Targets<'a> {
    /// The `--format` output.
    pub output: Option<(Format, &'a mut dyn Write)>,
    /// The `--bundle` being built.
    pub bundle: Option<&'a mut Bundle>,
}

/// One record, prepared in parallel.
struct Item {
    seq: Option<u64>,
    file: String,
    verified: bool,
    /// The row, or why there is none.
    row: Result<ExportRow, String>,
    /// Whether the filter keeps the row; `Err` when a date filter cannot place it.
    kept: Result<bool, String>,
    /// The `envelopes.jsonl` line (bundles only).
    line: Option<Vec<u8>>,
}

fn prepare(record: ReadRecord, filter: &RowFilter, with_lines: bool) -> Item {
    let line = with_lines.then(|| {
        bundle::envelope_line(
            &record.file,
            record.envelope.as_deref().map_err(String::as_str),
        )
    });
    let row = match &record.payload {
        None => Err(match &record.envelope {
            Err(e) => format!("the record could not be read: {e}"),
            Ok(_) => "the record is not a DSSE envelope with a base64 payload".to_owned(),
        }),
        Some(payload) => Statement::from_payload(payload)
            .map(|s| ExportRow::from_statement(&s, record.verified))
            .map_err(|e| format!("the payload is not a relgate change Statement: {e}")),
    };
    let kept = match &row {
        Ok(r) => filter.keeps(r).map_err(|e| e.to_string()),
        Err(_) => Ok(false),
    };
    Item {
        seq: record.seq,
        file: record.file,
        verified: record.verified,
        row,
        kept,
        line,
    }
}

/// Writes the rows of every record of `ledger` that `filter` keeps to the targets, in ledger
/// order, and every record's envelope to the bundle. The HTML report is written at the end
/// with the verification report as it stands after the read (which may have found more).
/// The bundle is not finished here: the caller finishes it with the final report.
pub fn export_rows(
    ledger: &mut VerifiedLedger,
    filter: &RowFilter,
    targets: Targets<'_>,
    progress: &dyn Progress,
    generated_at: &str,
) -> Result<ExportOutcome, ExportError> {
    let Targets { output, mut bundle } = targets;
    let write_err = |what: &str| {
        let what = what.to_owned();
        move |source| ExportError::Write { what, source }
    };
    enum Out<'w> {
        None,
        Csv(Box<csv::CsvRows<&'w mut dyn Write>>),
        Jsonl(&'w mut dyn Write),
        Html(&'w mut dyn Write, Vec<ExportRow>),
    }
    let mut out = match output {
        None => Out::None,
        Some((Format::Csv, w)) => Out::Csv(Box::new(
            csv::CsvRows::new(w).map_err(write_err("the CSV"))?,
        )),
        Some((Format::Jsonl, w)) => Out::Jsonl(w),
        Some((Format::Html, w)) => Out::Html(w, Vec::new()),
    };
    let mut outcome = ExportOutcome::default();
    let with_lines = bundle.is_some();
    ledger.read_records(
        |record| prepare(record, filter, with_lines),
        |item: Item| -> Result<(), ExportError> {
            outcome.records += 1;
            if let (Some(b), Some(line)) = (bundle.as_deref_mut(), &item.line) {
                b.add_envelope(line).map_err(write_err("the bundle"))?;
            }
            let row = match (item.row, item.kept) {
                (Ok(row), Ok(true)) => row,
                (Ok(_), Ok(false)) => return Ok(()),
                (Ok(_), Err(reason)) | (Err(reason), _) => {
                    outcome.unexported.push(Unexported {
                        seq: item.seq,
                        file: item.file,
                        verified: item.verified,
                        reason,
                    });
                    return Ok(());
                }
            };
            outcome.rows += 1;
            if let Some(b) = bundle.as_deref_mut() {
                b.add_row(&row).map_err(write_err("the bundle"))?;
            }
            match &mut out {
                Out::None => {}
                Out::Csv(w) => w.write(&row).map_err(write_err("the CSV"))?,
                Out::Jsonl(w) => jsonl::write_row(*w, &row).map_err(write_err("the JSONL"))?,
                Out::Html(_, rows) => rows.push(row),
            }
            Ok(())
        },
        progress,
    )?;
    match out {
        Out::None => {}
        Out::Csv(w) => {
            w.finish()
                .and_then(|w| w.flush())
                .map_err(write_err("the CSV"))?;
        }
        Out::Jsonl(w) => w.flush().map_err(write_err("the JSONL"))?,
        Out::Html(w, rows) => {
            html::write_html(w, &rows, ledger.report(), generated_at)
                .and_then(|()| w.flush())
                .map_err(write_err("the HTML report"))?;
        }
    }
    Ok(outcome)
}
