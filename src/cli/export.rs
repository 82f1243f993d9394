//! `relgate export`: the command-line side of the audit export (docs/export.md). It resolves
//! the ledger and keys exactly as `relgate verify` does ([`super::records::select`]),
//! verifies the ledger, streams the rows to stdout or `--output` and into the `--bundle`,
//! prints the verification problems and verdict on stderr, and maps the outcome to an exit
//! code: 0 intact, 1 tampering found (the export is still written), 2 could not verify or
//! the export is incomplete.

use std::fs::{self, File};
use std::io::{BufWriter, IsTerminal as _, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{records, ColorWhen, ExportArgs};
use crate::exit_status::ExitStatus;
use crate::export::{self, Bundle, BundleInfo, ExportOutcome, Format, RowFilter, Targets};
use crate::output;
use crate::record::verify::{Progress, VerifiedLedger, VerifyOptions, VerifyStatus};

/// Ledgers above this many records get a progress bar (on a terminal, outside CI).
const PROGRESS_ABOVE: u64 = 1_000;

/// A progress bar on stderr, shown only for a large ledger when stderr is a terminal and `CI`
/// is not set.
struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    fn new() -> Bar {
        let wanted = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        Bar {
            bar: wanted.then(|| ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())),
        }
    }

    /// Starts a phase over `total` records.
    fn phase(&self, message: &'static str, total: u64) {
        let Some(bar) = &self.bar else {
            return;
        };
        if total <= PROGRESS_ABOVE {
            return;
        }
        bar.set_message(message);
        bar.set_length(total);
        bar.set_position(0);
        if bar.is_hidden() {
            let style = ProgressStyle::with_template(
                "{msg:>9} [{bar:30}] {human_pos}/{human_len} records, {eta} left",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }

    fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn start(&self, entries: u64) {
        self.phase("verifying", entries);
    }

    fn advance(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }
}

/// A file written under a temporary name beside its target and renamed into place by
/// [`Staged::commit`]; removed when dropped uncommitted, so a failed export leaves no partial
/// file.
struct Staged {
    tmp: PathBuf,
    target: PathBuf,
    done: bool,
}

impl Staged {
    fn create(target: &Path) -> anyhow::Result<(Staged, BufWriter<File>)> {
        let name = target
            .file_name()
            .with_context(|| format!("--output {} is not a file name", target.display()))?;
        let tmp = target.with_file_name(format!(
            ".{}.tmp-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let file = File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        Ok((
            Staged {
                tmp,
                target: target.to_path_buf(),
                done: false,
            },
            BufWriter::with_capacity(256 * 1024, file),
        ))
    }

    fn commit(mut self, writer: BufWriter<File>) -> anyhow::Result<()> {
        let file = writer
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {}", self.tmp.display()))?;
        file.sync_all()
            .with_context(|| format!("cannot write {}", self.tmp.display()))?;
        fs::rename(&self.tmp, &self.target)
            .with_context(|| format!("cannot write {}", self.target.display()))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.done {
            // Best effort: the export already failed with its own error.
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// `relgate export`.
pub(crate) fn export(args: ExportArgs, color: ColorWhen) -> anyhow::Result<ExitStatus> {
    // Everything that can be wrong with the arguments is found before the ledger is read.
    let filter = RowFilter::new(
        args.since.as_deref(),
        args.until.as_deref(),
        args.services.clone(),
        args.environments.clone(),
    )?;
    let format = args
        .format
        .or((args.bundle.is_none() || args.output.is_some()).then_some(Format::Csv));
    let generated_at = super::now()?;
    let selected = records::select(&args.selection, args.envelopes.is_none())?;
    let options = VerifyOptions {
        check_history: !args.no_history,
        check_reflog: !args.no_history,
        expected_origin: selected.pinned_origin.clone(),
        history_process: records::history_process(),
        ..VerifyOptions::default()
    };

    let bar = Bar::new();
    let (mut ledger, described) = match (&args.envelopes, &selected.source) {
        (Some(envelopes), _) => (
            VerifiedLedger::verify_envelopes(
                envelopes,
                &selected.keys,
                selected.old_checkpoint.as_deref(),
                &options,
                &bar,
            ),
            envelopes.display().to_string(),
        ),
        (None, Some(source)) => (
            VerifiedLedger::verify(
                source,
                &selected.keys,
                selected.old_checkpoint.as_deref(),
                &options,
                &bar,
            ),
            source.describe(),
        ),
        (None, None) => {
            anyhow::bail!("no ledger to export (pass --ledger REF or --ledger-dir DIR)")
        }
    };
    let color = color.enabled_for(crate::output::palette::Stream::Stderr);
    // Could not verify (no usable keys, unreadable ledger, a bad --checkpoint): exit 2 and
    // write nothing, so an earlier export at --output is not replaced by unverified rows.
    if ledger.report().status == VerifyStatus::Unverifiable {
        bar.clear();
        let mut err = std::io::stderr().lock();
        err.write_all(output::verify::render_summary(ledger.report(), color).as_bytes())?;
        writeln!(
            err,
            "relgate export: nothing exported: the ledger {} could not be verified",
            described
        )?;
        return Ok(ExitStatus::Error);
    }
    bar.phase("exporting", ledger.record_files());

    let mut staged = None;
    let mut file_out = None;
    let mut stdout_out = None;
    if format.is_some() {
        match &args.output {
            Some(path) => {
                let (s, w) = Staged::create(path)?;
                staged = Some(s);
                file_out = Some(w);
            }
            None => stdout_out = Some(BufWriter::new(std::io::stdout().lock())),
        }
    }
    let mut bundle = match &args.bundle {
        Some(path) => Some(
            Bundle::create(path)
                .with_context(|| format!("cannot write the bundle {}", path.display()))?,
        ),
        None => None,
    };
    let output: Option<(Format, &mut dyn Write)> = match (format, &mut file_out, &mut stdout_out) {
        (Some(f), Some(w), _) => Some((f, w)),
        (Some(f), None, Some(w)) => Some((f, w)),
        _ => None,
    };
    let outcome = export::export_rows(
        &mut ledger,
        &filter,
        Targets {
            output,
            bundle: bundle.as_mut(),
        },
        &bar,
        &generated_at,
    )?;
    bar.clear();
    // The bundle is finished before the --output file replaces an earlier one: a bundle that
    // cannot be written fails the run with both targets as they were.
    if let (Some(b), Some(path)) = (bundle, &args.bundle) {
        b.finish(
            ledger.report(),
            &selected.keys,
            ledger.checkpoint_bytes().as_deref(),
            &BundleInfo {
                generated_at: generated_at.clone(),
                filter: filter.describe(),
                filter_args: filter_args(&args),
            },
        )
        .with_context(|| format!("cannot write the bundle {}", path.display()))?;
    }
    if let (Some(s), Some(w)) = (staged, file_out) {
        s.commit(w)?;
    }
    if let Some(mut w) = stdout_out {
        w.flush().context("cannot write the export to stdout")?;
    }
    summarize(&args, format, &filter, ledger.report(), &outcome, color)?;
    // A verified ledger whose export is incomplete could not be exported: 2, not a pass.
    Ok(match ExitStatus::from(ledger.report().status) {
        ExitStatus::Pass if outcome.incomplete() => ExitStatus::Error,
        status => status,
    })
}

/// The filter as `relgate export` flags, for VERIFY.md's command that rebuilds the CSV.
fn filter_args(args: &ExportArgs) -> Vec<String> {
    let mut out = Vec::new();
    for (flag, value) in [("--since", &args.since), ("--until", &args.until)] {
        if let Some(v) = value {
            out.extend([flag.to_owned(), v.clone()]);
        }
    }
    for s in &args.services {
        out.extend(["--service".to_owned(), s.clone()]);
    }
    for e in &args.environments {
        out.extend(["--environment".to_owned(), e.clone()]);
    }
    out
}

/// Unexported records listed on stderr before "and N more".
const LIST_AT_MOST: usize = 20;

fn summarize(
    args: &ExportArgs,
    format: Option<Format>,
    filter: &RowFilter,
    report: &crate::record::verify::VerifyReport,
    outcome: &ExportOutcome,
    color: bool,
) -> anyhow::Result<()> {
    let mut err = std::io::stderr().lock();
    err.write_all(output::verify::render_summary(report, color).as_bytes())?;
    for u in outcome.unexported.iter().take(LIST_AT_MOST) {
        let seq = u.seq.map(|s| format!("record {s}, ")).unwrap_or_default();
        writeln!(
            err,
            "relgate export: not exported: {seq}{}: {}",
            u.file, u.reason
        )?;
    }
    if outcome.unexported.len() > LIST_AT_MOST {
        writeln!(
            err,
            "relgate export: ... and {} more records not exported",
            outcome.unexported.len() - LIST_AT_MOST
        )?;
    }
    let mut wrote = Vec::new();
    if let Some(f) = format {
        let name = match f {
            Format::Csv => "CSV",
            Format::Jsonl => "JSONL",
            Format::Html => "HTML",
        };
        let to = args
            .output
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "stdout".to_owned());
        wrote.push(format!("{name} to {to}"));
    }
    if let Some(b) = &args.bundle {
        wrote.push(format!("bundle {}", b.display()));
    }
    writeln!(
        err,
        "relgate export: {} rows of {} records (filter: {}); wrote {}",
        outcome.rows,
        outcome.records,
        filter.describe(),
        wrote.join(", ")
    )?;
    if outcome.rows == 0 && outcome.records > 0 && filter.describe() != "none" {
        // Service and environment match exactly (case and spaces count): say so rather than
        // let an empty export look like an empty quarter.
        writeln!(
            err,
            "relgate export: warning: no record matched the filter; --service and \
             --environment match the recorded value exactly (case-sensitive)"
        )?;
    }
    if outcome.incomplete() {
        writeln!(
            err,
            "relgate export: exit 2: verified records are missing from the export (listed above)"
        )?;
    }
    Ok(())
}
