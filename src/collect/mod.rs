//! `relgate collect` (docs/collect.md): many repositories' ledgers, each verified, into one
//! Parquet dataset partitioned `repo=<name>/date=<YYYY-MM-DD>/part-<first>-<last>.parquet`
//! (hive style) with the columns of `relgate export` plus `repo` (`schemas/collect.schema.json`).
//!
//! Per repository ([`collect_repo`], run in parallel with rayon):
//! - **First run** (no state for it) or `--full`: the whole ledger is verified with
//!   [`VerifiedLedger::verify`] (signatures against that repository's trusted keys, chain,
//!   checkpoint, git history, and consistency with the state's checkpoint when there is one),
//!   then read again for its rows.
//! - **Incremental** (state kept): the signed `CHECKPOINT` is verified with the trusted keys;
//!   only the records after the state's size are read ([`incremental`]): each signature, seq
//!   and `prev` (the chain continues from the state's head hash), their leaves extend the
//!   state's Merkle frontier to the checkpoint's root, and an RFC 6962 consistency proof from
//!   the state's checkpoint to the new one, built from the frontier and the new leaves
//!   ([`consistency`]), verifies. A ledger that does not extend what was collected (rewritten,
//!   rolled back, another ledger) is reported as rewritten and the state is kept.
//! - Rows are taken only up to the verified checkpoint's size, and only from a repository
//!   that verified: a repository that fails is reported by name and ALL its rows of this run
//!   are withheld (never written, never marked), its state entry unchanged. The `verified`
//!   column is therefore always true.
//! - Part files are written per date, named by the seq range they hold, so the same run gives
//!   the same names; part files of a run that stopped before saving the state (first seq past
//!   the state's size) are deleted before new ones are written.

pub(crate) mod consistency;
pub(crate) mod dataset;
pub(crate) mod incremental;
pub(crate) mod source;
pub(crate) mod state;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::exit_status::ExitStatus;
use crate::export::kpi::parse_time;
use crate::export::ExportRow;
use crate::record::checkpoint::open_checkpoint;
use crate::record::keys::TrustedKeys;
use crate::record::ledger::LedgerSource;
use crate::record::merkle::{self, Frontier};
use crate::record::statement::{Statement, GENESIS_PREV};
use crate::record::verify::{NoProgress, ProblemKind, VerifiedLedger, VerifyOptions, VerifyStatus};
use dataset::{DatasetError, DatasetSchema};
use source::{LedgerFiles, RepoSpec};
use state::{CollectState, RepoState};

/// The hive partition value of rows whose time cannot be read (Hive's name for null).
pub(crate) const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// Problems listed per failed repository before "and N more".
const LIST_PROBLEMS: usize = 10;

/// Options of a collection.
#[derive(Debug, Clone)]
pub(crate) struct CollectOptions {
    /// The dataset directory.
    pub(crate) out: PathBuf,
    /// The state file.
    pub(crate) state: PathBuf,
    /// Where URLs are mirrored.
    pub(crate) cache: PathBuf,
    /// Trusted keys for every repository without its own.
    pub(crate) keys: Option<PathBuf>,
    /// Verify every ledger whole even when a state exists.
    pub(crate) full: bool,
    /// Walk the git history of the ledger branch (full verification).
    pub(crate) check_history: bool,
    /// The program to run each ledger's history checks in
    /// ([`VerifyOptions::history_process`]).
    pub(crate) history_process: Option<PathBuf>,
}

/// What happened to one repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RepoStatus {
    /// Verified; its new rows were written.
    Collected,
    /// Verification failed (tampering, untrusted key, unreadable): rows withheld.
    Failed,
    /// The ledger does not extend the collected checkpoint: rows withheld, state kept.
    Rewritten,
}

/// How a repository was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Mode {
    /// The whole ledger.
    Full,
    /// Checkpoint, consistency and the new records.
    Incremental,
}

/// One repository's result.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RepoOutcome {
    /// Its name.
    pub(crate) name: String,
    /// Where it was read.
    pub(crate) source: String,
    /// Collected, failed or rewritten.
    pub(crate) status: RepoStatus,
    /// How it was verified (`None` when it could not be opened).
    pub(crate) mode: Option<Mode>,
    /// Where the trusted keys came from.
    pub(crate) keys: Option<String>,
    /// Records in the dataset for it after this run (the verified checkpoint's size; the
    /// earlier size when it failed).
    pub(crate) records: u64,
    /// Rows written by this run.
    pub(crate) new_records: u64,
    /// Record files read by this run.
    pub(crate) records_read: u64,
    /// Part files written, relative to the dataset directory.
    pub(crate) parts: Vec<String>,
    /// Why it failed: problems with the record or file they concern.
    pub(crate) problems: Vec<String>,
    #[serde(skip)]
    new_state: Option<RepoState>,
}

/// Totals of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Totals {
    /// Repositories given.
    pub(crate) repos: u64,
    /// Collected.
    pub(crate) collected: u64,
    /// Failed or rewritten.
    pub(crate) failed: u64,
    /// Records in the dataset of the collected repositories.
    pub(crate) records: u64,
    /// Rows written.
    pub(crate) new_records: u64,
    /// Record files read.
    pub(crate) records_read: u64,
}

/// A run's result.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Summary {
    /// Per repository, in the order given.
    pub(crate) repos: Vec<RepoOutcome>,
    /// Totals.
    pub(crate) totals: Totals,
}

impl Summary {
    /// Pass when every repository collected, blocked when at least one failed or was rewritten.
    pub(crate) fn status(&self) -> ExitStatus {
        if self.totals.failed > 0 {
            ExitStatus::Blocked
        } else {
            ExitStatus::Pass
        }
    }
}

/// Why a run could not happen at all (exit 2).
#[derive(Debug, thiserror::Error)]
pub(crate) enum CollectError {
    /// The state file.
    #[error(transparent)]
    State(#[from] state::StateError),
    /// The dataset schema.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// The output directory.
    #[error("cannot use the dataset directory {path}: {detail}")]
    Out {
        /// It.
        path: String,
        /// Why.
        detail: String,
    },
}

/// Told when a repository is done (for a progress bar).
pub(crate) trait CollectProgress: Sync {
    /// One more repository done.
    fn repo_done(&self, _outcome: &RepoOutcome) {}
}

/// Collects every repository of `specs` (names unique) into `options.out`, updating the state
/// file for the repositories that verified.
pub(crate) fn collect(
    specs: &[RepoSpec],
    options: &CollectOptions,
    progress: &dyn CollectProgress,
) -> Result<Summary, CollectError> {
    let schema = DatasetSchema::published()?;
    fs::create_dir_all(&options.out).map_err(|e| CollectError::Out {
        path: options.out.display().to_string(),
        detail: e.to_string(),
    })?;
    let mut state = CollectState::load(&options.state)?;
    let outcomes: Vec<RepoOutcome> = specs
        .par_iter()
        .map(|spec| {
            let outcome = collect_repo(spec, state.repos.get(&spec.name), options, &schema);
            progress.repo_done(&outcome);
            outcome
        })
        .collect();
    let mut totals = Totals {
        repos: outcomes.len() as u64,
        ..Totals::default()
    };
    for o in &outcomes {
        totals.records_read += o.records_read;
        if o.status == RepoStatus::Collected {
            totals.collected += 1;
            totals.records += o.records;
            totals.new_records += o.new_records;
            if let Some(s) = &o.new_state {
                state.repos.insert(o.name.clone(), s.clone());
            }
        } else {
            totals.failed += 1;
        }
    }
    state.save(&options.state)?;
    Ok(Summary {
        repos: outcomes,
        totals,
    })
}

/// The rows a verification let through, and the state after them.
pub(crate) struct Verified {
    mode: Mode,
    rows: Vec<ExportRow>,
    records_read: u64,
    state: RepoState,
}

/// Why a repository's rows are withheld.
pub(crate) struct Withheld {
    status: RepoStatus,
    mode: Option<Mode>,
    records_read: u64,
    problems: Vec<String>,
}

impl Withheld {
    fn failed(mode: Option<Mode>, problem: String) -> Withheld {
        Withheld {
            status: RepoStatus::Failed,
            mode,
            records_read: 0,
            problems: vec![problem],
        }
    }
}

/// Collects one repository; never panics, every failure is in the outcome.
pub(crate) fn collect_repo(
    spec: &RepoSpec,
    old: Option<&RepoState>,
    options: &CollectOptions,
    schema: &DatasetSchema,
) -> RepoOutcome {
    let mut outcome = RepoOutcome {
        name: spec.name.clone(),
        source: spec.location.describe(),
        status: RepoStatus::Failed,
        mode: None,
        keys: None,
        records: old.map_or(0, |s| s.size),
        new_records: 0,
        records_read: 0,
        parts: Vec::new(),
        problems: Vec::new(),
        new_state: None,
    };
    let result = open_and_verify(spec, old, options, &mut outcome.keys);
    match result {
        Ok(v) => {
            let old_size = old.map_or(0, |s| s.size);
            match write_rows(&options.out, schema, &spec.name, old_size, &v.rows) {
                Ok(parts) => {
                    outcome.status = RepoStatus::Collected;
                    outcome.mode = Some(v.mode);
                    outcome.records = v.state.size;
                    outcome.new_records = v.rows.len() as u64;
                    outcome.records_read = v.records_read;
                    outcome.parts = parts;
                    outcome.new_state = Some(v.state);
                }
                Err(e) => {
                    outcome.mode = Some(v.mode);
                    outcome.records_read = v.records_read;
                    outcome.problems.push(e.to_string());
                }
            }
        }
        Err(w) => {
            outcome.status = w.status;
            outcome.mode = w.mode;
            outcome.records_read = w.records_read;
            outcome.problems = w.problems;
        }
    }
    outcome
}

/// Opens (fetches) a repository, loads its keys (noting where from in `keys_from`) and
/// verifies what this run may collect from it.
fn open_and_verify(
    spec: &RepoSpec,
    old: Option<&RepoState>,
    options: &CollectOptions,
    keys_from: &mut Option<String>,
) -> Result<Verified, Withheld> {
    let opened = source::open(spec, &options.cache).map_err(|e| Withheld::failed(None, e))?;
    let (keys, from) = source::load_keys(spec, &opened, options.keys.as_deref())
        .map_err(|e| Withheld::failed(None, e))?;
    *keys_from = Some(from);
    let describe = spec.location.describe();
    match old {
        Some(s) if !options.full => incremental::verify_new(&opened.source, &keys, s, &describe),
        _ => verify_full(&opened.source, &keys, old, options, &describe),
    }
}

/// Verifies the whole ledger and takes the rows after `old`'s size.
fn verify_full(
    source: &LedgerSource,
    keys: &TrustedKeys,
    old: Option<&RepoState>,
    options: &CollectOptions,
    describe: &str,
) -> Result<Verified, Withheld> {
    let verify_options = VerifyOptions {
        check_history: options.check_history,
        check_reflog: options.check_history,
        history_process: options.history_process.clone(),
        ..VerifyOptions::default()
    };
    let mut ledger = VerifiedLedger::verify(
        source,
        keys,
        old.map(|s| s.checkpoint.as_str()),
        &verify_options,
        &NoProgress,
    );
    let withheld = |ledger: &VerifiedLedger, read: u64| {
        let report = ledger.report();
        let rewritten = report.problems.iter().any(|p| {
            matches!(
                p.kind,
                ProblemKind::ConsistencyFailed
                    | ProblemKind::Rollback
                    | ProblemKind::LedgerMismatch
            )
        });
        let mut problems: Vec<String> = report
            .problems
            .iter()
            .filter(|p| p.severity != crate::record::verify::Severity::Warning)
            .map(|p| {
                let at = p
                    .record
                    .as_ref()
                    .map(|r| {
                        let mut s = Vec::new();
                        if let Some(seq) = r.seq {
                            s.push(format!("record {seq}"));
                        }
                        if let Some(f) = &r.file {
                            s.push(f.clone());
                        }
                        if let Some(c) = &r.commit {
                            s.push(format!("commit {}", &c[..c.len().min(12)]));
                        }
                        format!("{}: ", s.join(", "))
                    })
                    .unwrap_or_default();
                format!("{at}{}: {}", kind_name(p.kind), p.message)
            })
            .collect();
        let more = problems.len().saturating_sub(LIST_PROBLEMS);
        problems.truncate(LIST_PROBLEMS);
        if more > 0 {
            problems.push(format!(
                "... and {more} more (run relgate verify on {describe})"
            ));
        }
        Withheld {
            status: if rewritten {
                RepoStatus::Rewritten
            } else {
                RepoStatus::Failed
            },
            mode: Some(Mode::Full),
            records_read: read,
            problems,
        }
    };
    if ledger.report().status != VerifyStatus::Intact {
        let n = ledger.report().records;
        return Err(withheld(&ledger, n));
    }
    let Some(text) = ledger.report().checkpoint_text.clone() else {
        return Err(Withheld::failed(
            Some(Mode::Full),
            "the ledger has no verified CHECKPOINT".into(),
        ));
    };
    let checkpoint = open_checkpoint(&text, keys)
        .map_err(|e| Withheld::failed(Some(Mode::Full), format!("CHECKPOINT: {e}")))?
        .checkpoint;
    let old_size = old.map_or(0, |s| s.size);
    let mut frontier = Frontier::new();
    let mut head = GENESIS_PREV.to_owned();
    let mut rows = Vec::new();
    let mut read = 0u64;
    let mut bad: Option<String> = None;
    let sink_result: Result<(), std::convert::Infallible> = ledger.read_records(
        |record| {
            let leaf = record.payload.as_deref().map(merkle::leaf_hash);
            let sha = record
                .payload
                .as_deref()
                .map(|p| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(p)));
            let row = record.payload.as_deref().map(Statement::from_payload);
            (record.seq, record.file, record.verified, leaf, sha, row)
        },
        |(seq, file, verified, leaf, sha, row)| {
            read += 1;
            let (Some(seq), true, Some(leaf), Some(sha), Some(Ok(statement))) =
                (seq, verified, leaf, sha, row)
            else {
                bad.get_or_insert_with(|| format!("{file}: did not verify on the second read"));
                return Ok(());
            };
            if seq > checkpoint.size {
                // Not covered by the signed checkpoint (an append in progress): next run.
                return Ok(());
            }
            frontier.append_leaf_hash(leaf);
            if seq == checkpoint.size {
                head = sha;
            }
            if seq > old_size {
                rows.push(ExportRow::from_statement(&statement, true));
            }
            Ok(())
        },
        &NoProgress,
    );
    let _ = sink_result;
    if ledger.report().status != VerifyStatus::Intact {
        return Err(withheld(&ledger, read));
    }
    if let Some(b) = bad {
        return Err(Withheld::failed(Some(Mode::Full), b));
    }
    if frontier.size() != checkpoint.size || frontier.root() != checkpoint.root {
        return Err(Withheld::failed(
            Some(Mode::Full),
            format!(
                "the records read again do not give the checkpoint's tree (size {}): the ledger \
                 changed while it was read; run collect again",
                checkpoint.size
            ),
        ));
    }
    Ok(Verified {
        mode: Mode::Full,
        rows,
        records_read: read,
        state: RepoState {
            source: describe.to_owned(),
            origin: checkpoint.origin.clone(),
            size: checkpoint.size,
            root: hex::encode(checkpoint.root),
            head_sha256: head,
            frontier: frontier.to_state(),
            checkpoint: text,
        },
    })
}

/// The snake_case name of a problem kind, as `relgate verify --format json` prints it.
fn kind_name(kind: ProblemKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{kind:?}"))
}

/// The `date=` partition of a row: the UTC date of its time.
fn date_of(row: &ExportRow) -> String {
    parse_time(&row.time)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| NULL_PARTITION.to_owned())
}

/// Part file name of a seq range: fixed width so names sort in seq order.
fn part_name(first: u64, last: u64) -> String {
    format!("part-{first:010}-{last:010}.parquet")
}

/// The first seq of a part file name.
fn part_first_seq(name: &str) -> Option<u64> {
    let rest = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let (first, _) = rest.split_once('-')?;
    first.parse().ok()
}

/// Deletes part files of `repo` whose first seq is past `old_size` (left by a run that stopped
/// before it saved the state), then writes `rows` (seqs after `old_size`), one part per date.
fn write_rows(
    out: &Path,
    schema: &DatasetSchema,
    repo: &str,
    old_size: u64,
    rows: &[ExportRow],
) -> Result<Vec<String>, String> {
    let repo_dir = out.join(format!("repo={repo}"));
    if let Ok(dates) = fs::read_dir(&repo_dir) {
        for date in dates.flatten() {
            let Ok(parts) = fs::read_dir(date.path()) else {
                continue;
            };
            for part in parts.flatten() {
                let name = part.file_name().to_string_lossy().into_owned();
                if part_first_seq(&name).is_some_and(|s| s > old_size) {
                    fs::remove_file(part.path()).map_err(|e| {
                        format!(
                            "cannot remove the stale part {}: {e}",
                            part.path().display()
                        )
                    })?;
                }
            }
        }
    }
    let mut by_date: BTreeMap<String, Vec<ExportRow>> = BTreeMap::new();
    for row in rows {
        by_date.entry(date_of(row)).or_default().push(row.clone());
    }
    let mut written = Vec::new();
    for (date, mut rows) in by_date {
        rows.sort_by_key(|r| r.seq);
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            continue;
        };
        let dir = repo_dir.join(format!("date={date}"));
        fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let name = part_name(first.seq, last.seq);
        dataset::write_part(&dir.join(&name), schema, repo, &rows).map_err(|e| e.to_string())?;
        written.push(format!("repo={repo}/date={date}/{name}"));
    }
    Ok(written)
}

/// Used by the incremental path.
pub(crate) fn open_files(source: &LedgerSource) -> Result<LedgerFiles, String> {
    LedgerFiles::open(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names_sort_and_parse() {
        assert_eq!(part_name(1, 2000), "part-0000000001-0000002000.parquet");
        assert_eq!(part_first_seq(&part_name(2001, 2010)), Some(2001));
        assert_eq!(part_first_seq("part-x.parquet"), None);
    }
}
