//! `relgate collect`: the command-line side of [`crate::collect`] (docs/collect.md). It reads
//! the repository list (arguments and `--repos FILE`), runs the collection with a progress bar
//! on a terminal (not in CI), prints the summary (text, or JSON with `--format json`) on
//! stdout, and maps the outcome to an exit code: 0 every repository collected, 1 at least one
//! failed verification or was rewritten (the others are written), 2 could not run.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal as _, Write as _};

use super::{CollectArgs, CollectFormat};
use crate::collect::source::{self, RepoSpec};
use crate::collect::{self as lib, CollectOptions, CollectProgress, RepoOutcome, RepoStatus};
use crate::exit_status::ExitStatus;
use crate::output::text::{guard_log, multiline, LogSyntax};

/// A bar over repositories, on a terminal outside CI only.
struct Bar(Option<ProgressBar>);

impl CollectProgress for Bar {
    fn repo_done(&self, outcome: &RepoOutcome) {
        if let Some(bar) = &self.0 {
            bar.set_message(outcome.name.clone());
            bar.inc(1);
        }
    }
}

/// `relgate collect`.
pub(crate) fn collect(args: CollectArgs) -> anyhow::Result<ExitStatus> {
    let mut specs: Vec<RepoSpec> = Vec::new();
    if let Some(list) = &args.list {
        specs.extend(source::read_list(list, &args.ledger)?);
    }
    for arg in &args.repos {
        specs.push(source::parse_arg(arg, &args.ledger)?);
    }
    if specs.is_empty() {
        anyhow::bail!("no repository to collect: pass REPO arguments or --repos FILE");
    }
    source::check_unique(&specs)?;
    let options = CollectOptions {
        state: args
            .state
            .clone()
            .unwrap_or_else(|| args.out.join("_relgate-collect-state.json")),
        cache: args
            .cache
            .clone()
            .unwrap_or_else(|| args.out.join("_relgate-mirrors")),
        out: args.out.clone(),
        keys: args.keys.clone(),
        full: args.full,
        check_history: !args.no_history,
        history_process: super::records::history_process(),
    };
    let wanted = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
    let bar = Bar(wanted.then(|| {
        let bar =
            ProgressBar::with_draw_target(Some(specs.len() as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("collecting [{bar:30}] {pos}/{len} repositories {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    }));
    let summary = lib::collect(&specs, &options, &bar)?;
    if let Some(b) = &bar.0 {
        b.finish_and_clear();
    }
    let mut out = std::io::stdout().lock();
    match args.format {
        CollectFormat::Json => {
            let text = serde_json::to_string_pretty(&summary)?;
            writeln!(out, "{}", guard_log(&text, LogSyntax::Json, false))?;
        }
        CollectFormat::Text => {
            let text = render_text(&summary, &args.out);
            out.write_all(guard_log(&multiline(&text), LogSyntax::Plain, false).as_bytes())?;
        }
    }
    out.flush()?;
    Ok(summary.status())
}

fn render_text(summary: &lib::Summary, out: &std::path::Path) -> String {
    let mut s = String::new();
    for r in &summary.repos {
        let mode = match r.mode {
            Some(lib::Mode::Full) => "full",
            Some(lib::Mode::Incremental) => "incremental",
            None => "-",
        };
        match r.status {
            RepoStatus::Collected => s.push_str(&format!(
                "ok        {}: {} records, {} new, {} read ({mode})\n",
                r.name, r.records, r.new_records, r.records_read
            )),
            RepoStatus::Failed | RepoStatus::Rewritten => {
                let what = if r.status == RepoStatus::Rewritten {
                    "REWRITTEN"
                } else {
                    "FAILED   "
                };
                s.push_str(&format!(
                    "{what} {}: rows withheld ({} source {})\n",
                    r.name, mode, r.source
                ));
                for p in &r.problems {
                    s.push_str(&format!("          {}: {p}\n", r.name));
                }
            }
        }
    }
    let t = &summary.totals;
    s.push_str(&format!(
        "relgate collect: {} repositories, {} collected, {} failed; {} records, {} new, {} \
         read; dataset {}\n",
        t.repos,
        t.collected,
        t.failed,
        t.records,
        t.new_records,
        t.records_read,
        out.display()
    ));
    if t.failed > 0 {
        let names: Vec<&str> = summary
            .repos
            .iter()
            .filter(|r| r.status != RepoStatus::Collected)
            .map(|r| r.name.as_str())
            .collect();
        s.push_str(&format!(
            "relgate collect: exit 1: not collected: {} (their rows are withheld; the others \
             are written)\n",
            names.join(", ")
        ));
    }
    s
}
