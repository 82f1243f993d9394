//! The command line: clap definitions ([`args`], their doc comments are the `--help` text),
//! resolution of arguments and environment into the library's settings, and the exit code. This
//! is the only module that reads the environment or prints. `main` and the dispatch live here;
//! each command's handler lives in its own file beside this one.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;

use crate::exit_status::ExitStatus;
use crate::output;
use crate::{init, schema};

mod args;
mod bundle;
mod check;
mod collect;
mod explain;
mod export;
mod github;
// Still marks crate-internal items `pub`; `cargo fix --lib` narrows them (then drop the allow).
#[allow(unreachable_pub)]
mod records;
mod test;

pub(crate) use args::*;
use check::{check_settings, print_report, read_pr_json};

/// Parses arguments and runs; the process exit code.
pub fn main() -> ExitStatus {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            // Help and version are successes; every other parse problem is a usage error.
            return if err.use_stderr() {
                ExitStatus::Error
            } else {
                ExitStatus::Pass
            };
        }
    };
    match run(cli) {
        Ok(status) => status,
        Err(err) => {
            // Errors quote file names and messages from the pull request: escaped for the log.
            let message = format!("relgate: error: {err:#}");
            let message = output::text::guard_log(
                &output::text::multiline(&message),
                output::text::LogSyntax::Plain,
                false,
            );
            let _ = writeln!(std::io::stderr(), "{message}");
            ExitStatus::Error
        }
    }
}

fn color_enabled(when: ColorWhen) -> bool {
    when.enabled_for(output::palette::Stream::Stdout)
}

/// A time limit given in seconds on the command line (`flag` names it in the error).
pub(super) fn seconds(flag: &str, secs: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{flag} must be a positive number of seconds"))
}

/// `context.now` outside GitHub mode (see [`now_for`]).
pub(super) fn now() -> anyhow::Result<String> {
    now_for(false)
}

/// `context.now`: `RELGATE_NOW` (RFC 3339, for reproducible runs and tests) or the clock.
/// In GitHub mode (`github`) always the clock: an earlier step of the job can set any variable
/// through $GITHUB_ENV, and a moved clock revives expired waivers and backdates records. The
/// ignored override is reported (`github::environment_notes`).
pub(super) fn now_for(github: bool) -> anyhow::Result<String> {
    match std::env::var("RELGATE_NOW") {
        Ok(text) if !github => {
            let parsed = chrono::DateTime::parse_from_rfc3339(&text).with_context(|| {
                format!("RELGATE_NOW={text} is not an RFC 3339 time (e.g. 2026-11-27T12:00:00Z)")
            })?;
            Ok(parsed
                .with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        }
        _ => Ok(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitStatus> {
    let color = color_enabled(cli.color);
    match cli.command {
        Command::Check(args) => check::check(args, color),
        Command::Test(args) => test::test(args, color),
        Command::Explain(args) => explain::explain(args),
        Command::Schema { kind } => {
            let mut stdout = std::io::stdout().lock();
            match kind {
                None => {
                    for (kind, _) in schema::KINDS {
                        writeln!(stdout, "{kind}")?;
                    }
                    Ok(ExitStatus::Pass)
                }
                Some(kind) => match schema::schema_text(&kind) {
                    Some(text) => {
                        write!(stdout, "{text}")?;
                        Ok(ExitStatus::Pass)
                    }
                    None => anyhow::bail!(
                        "unknown kind `{kind}`; known kinds: {}",
                        schema::KINDS
                            .iter()
                            .map(|(k, _)| *k)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
            }
        }
        Command::Init { dir, force } => {
            let written = init::scaffold(&dir, force)?;
            let mut stdout = std::io::stdout().lock();
            for file in written {
                writeln!(stdout, "created {}", file.display())?;
            }
            writeln!(stdout, "next: relgate check  (from {})", dir.display())?;
            Ok(ExitStatus::Pass)
        }
        Command::Record(args) => records::record(args, color),
        Command::Verify(args) => records::verify(args, color),
        Command::Collect(args) => collect::collect(args),
        Command::Export(args) => export::export(args, cli.color),
        Command::Policy(args) => bundle::policy(args),
        Command::Keygen { out } => records::keygen(&out),
        Command::HistoryWalk {
            repo,
            refname,
            no_history,
            no_reflog,
        } => {
            println!(
                "{}",
                crate::record::verify::history_walk_json(&repo, &refname, !no_history, !no_reflog)
            );
            Ok(ExitStatus::Pass)
        }
    }
}
