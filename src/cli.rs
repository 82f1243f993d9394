//! The command line: clap definitions (their doc comments are the `--help` text), resolution of
//! arguments and environment into the library's settings, and the exit code. This is the only
//! module that reads the environment or prints.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::changed::ChangedOptions;
use crate::gate::{self, CheckSettings};
use crate::output::{self, Format};
use crate::policy::testing::{self, TestOptions};
use crate::policy::{self, PolicySource};
use crate::{init, schema};

mod bundle;
mod collect;
mod export;
mod github;
mod records;

/// relgate: a release gate for ML model and LLM prompt releases.
///
/// Evaluates release manifests (YAML in git) against Rego policies: production readiness,
/// evaluation thresholds, error budgets and PII logging. Exit codes: 0 pass, 1 blocked by
/// policy, 2 could not decide (usage, input, policy or internal error).
#[derive(Debug, Parser)]
#[command(
    name = "relgate",
    // The commit too: a bug report then names the exact build (see build.rs).
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("RELGATE_COMMIT"), ")"),
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// When to colour text output: auto (a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Decide on release manifests: pass (exit 0), blocked (exit 1) or could not decide (exit 2).
    Check(CheckArgs),
    /// Run Rego unit tests (`test_*` rules), like `opa test`.
    Test(TestArgs),
    /// Print the JSON Schema of a kind (ModelRelease, PromptRelease, GateConfig, Input).
    Schema {
        /// The kind; without it, lists the kinds.
        kind: Option<String>,
    },
    /// Scaffold relgate.yaml, a sample release and a GitHub workflow in a repository.
    Init {
        /// Directory to scaffold (default: the current directory).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Overwrite files that already exist.
        #[arg(long)]
        force: bool,
    },
    /// Decide like `check`, then append a signed change record per decision to the ledger.
    ///
    /// One record per manifest decision (pass, fail or error), in report order, on the ledger
    /// branch (written without checkout) or in a ledger directory. Exit codes as `check`; 2
    /// also when a record cannot be signed or appended.
    Record(RecordArgs),
    /// Verify the change-record ledger: exit 0 intact, 1 tampering found, 2 could not verify.
    ///
    /// Checks every record's signature by a trusted key, the sequence and hash chain, the
    /// signed checkpoint (and consistency with an older one), and the git history of the
    /// ledger branch; every problem is named with the record it concerns.
    Verify(VerifyArgs),
    /// Export the verified ledger for an audit: CSV, JSONL or an HTML report, and a bundle.
    ///
    /// Verifies every record while reading (each row's `verified` column says whether its
    /// record verified) and writes one row per record. Exit 0 intact, 1 tampering found (the
    /// export is still written and the problems are printed on stderr), 2 could not verify
    /// or a verified record could not be exported.
    Export(ExportArgs),
    /// Collect many repositories' verified ledgers into one Parquet dataset (docs/collect.md).
    ///
    /// Each ledger is verified against that repository's trusted keys before any row is
    /// taken; a repository that fails is named and its rows are withheld. Incremental: a state
    /// file keeps each repository's checkpoint. Exit 0 all collected, 1 a repository failed
    /// verification or was rewritten (the others are written), 2 could not run.
    Collect(collect::CollectArgs),
    /// Shared, signed policy bundles over OCI registries: push, pull, verify (docs/bundles.md).
    Policy(bundle::PolicyArgs),
    /// Generate an Ed25519 key pair for signing change records and print its key id.
    Keygen {
        /// Directory for relgate-signing.pem (private) and relgate-signing.pub.pem (public);
        /// an existing key is never overwritten.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// Arguments of `relgate record`: those of `check`, plus where records go and what they say
/// about the run.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    #[command(flatten)]
    pub check: CheckArgs,
    /// Private signing key (PKCS#8 PEM, from `relgate keygen` or `openssl genpkey -algorithm
    /// ed25519`). Default: the PEM text in the environment variable RELGATE_SIGNING_KEY.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Git branch of the ledger in the gate root's repository. Default: `ledger.branch` of
    /// relgate.yaml, else relgate/records.
    #[arg(long, value_name = "REF", conflicts_with = "ledger_dir")]
    pub ledger: Option<String>,
    /// Keep the ledger in this directory instead of a git branch (`ledger.dir` of
    /// relgate.yaml sets a default).
    #[arg(long, value_name = "DIR")]
    pub ledger_dir: Option<PathBuf>,
    /// URL of the CI run, recorded with each decision. Default on GitHub Actions:
    /// $GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID.
    #[arg(long, value_name = "URL")]
    pub ci_run_url: Option<String>,
    /// With --changed: start the range at the commit of the ledger's last record (the last
    /// commit the ledger covers) instead of --base, so a run catches up on every release change
    /// since the last recorded run, including those of runs that failed or were cancelled.
    /// --base is used only while the ledger is empty.
    #[arg(long, requires = "changed")]
    pub since_ledger: bool,
}

/// Which ledger to read and which keys to trust: the options `verify` and `export` share.
#[derive(Debug, clap::Args)]
pub struct LedgerSelection {
    /// Git branch (or full ref, e.g. refs/remotes/origin/relgate/records) of the ledger.
    /// Default: `ledger.branch` of relgate.yaml, else relgate/records (or
    /// origin/relgate/records in a fresh clone).
    #[arg(long, value_name = "REF", conflicts_with = "ledger_dir")]
    pub ledger: Option<String>,
    /// Read a ledger kept in this directory instead of a git branch.
    #[arg(long, value_name = "DIR")]
    pub ledger_dir: Option<PathBuf>,
    /// Directory of trusted public keys (*.pem; a private key there is an error). Default:
    /// .relgate/keys in the gate root.
    #[arg(long, value_name = "DIR")]
    pub keys: Option<PathBuf>,
    /// A CHECKPOINT kept from an earlier verify: also prove that the ledger only grew since.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// The gate configuration, read for `ledger:` (default: relgate.yaml of the gate root).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Arguments of `relgate verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub selection: LedgerSelection,
    /// Verify the envelopes of an export bundle instead of a ledger: one DSSE envelope per
    /// line in seq order (envelopes.jsonl), with the ledger's CHECKPOINT in the same
    /// directory. Checks everything but the shard layout and the git history.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["ledger", "ledger_dir"])]
    pub envelopes: Option<PathBuf>,
    /// Write the verified CHECKPOINT to this file, to keep for the next --checkpoint.
    #[arg(long, value_name = "FILE")]
    pub save_checkpoint: Option<PathBuf>,
    /// Output format: text, or json (the full verification report).
    #[arg(long, short = 'f', value_enum, default_value_t = VerifyFormat::Text)]
    pub format: VerifyFormat,
    /// Skip the git history checks (the walk over every ledger commit and the reflog); the
    /// records, their chain and the checkpoint are still verified.
    #[arg(long)]
    pub no_history: bool,
    /// The branch the ledger records, for the completeness check (every commit after the
    /// first record's that changed a manifest, relgate.yaml or a policy must be named by a
    /// record). Default: the branch the newest record names (origin/<branch> when the clone
    /// has it), else origin/HEAD, else HEAD.
    #[arg(long, value_name = "REV")]
    pub default_branch: Option<String>,
}

/// Arguments of `relgate export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub selection: LedgerSelection,
    /// Output format. Default: csv, or none when only --bundle is asked for.
    #[arg(long, short = 'f', value_enum)]
    pub format: Option<crate::export::Format>,
    /// Keep decisions made on or after DATE: YYYY-MM-DD (from 00:00 UTC that day) or RFC 3339.
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Keep decisions made on or before DATE: YYYY-MM-DD (through the end of that day, UTC)
    /// or RFC 3339 (that instant included).
    #[arg(long, value_name = "DATE")]
    pub until: Option<String>,
    /// Keep only this service (repeatable: any of them).
    #[arg(long = "service", value_name = "S")]
    pub services: Vec<String>,
    /// Keep only this environment (repeatable: any of them).
    #[arg(long = "environment", value_name = "E")]
    pub environments: Vec<String>,
    /// Write the export to FILE instead of stdout (written whole or not at all).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Export from the envelopes of an export bundle (envelopes.jsonl, with its CHECKPOINT
    /// beside it) instead of a ledger: how an auditor rebuilds a bundle's CSV from what is
    /// signed and compares.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["ledger", "ledger_dir"])]
    pub envelopes: Option<PathBuf>,
    /// Also write an audit bundle (.tar.gz): the envelopes, trusted public keys, CHECKPOINT,
    /// verification report, CSV, HTML report, VERIFY.md (how to check it offline) and SHA256SUMS.
    #[arg(long, value_name = "FILE.tar.gz")]
    pub bundle: Option<PathBuf>,
    /// Skip the git history checks of the ledger branch (the records, their chain and the
    /// checkpoint are still verified).
    #[arg(long)]
    pub no_history: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VerifyFormat {
    Text,
    Json,
}

/// Arguments of `relgate check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Manifest files or directories (directories are searched for *.yaml, *.yml and *.json).
    /// Default: the `manifests` globs of relgate.yaml.
    pub paths: Vec<PathBuf>,
    /// A directory of team Rego policies, loaded beside the built-in bundle (repeatable).
    #[arg(long = "policy", short = 'p', value_name = "DIR")]
    pub policies: Vec<PathBuf>,
    /// A YAML or JSON data document added under `data` (repeatable).
    #[arg(long = "data", short = 'd', value_name = "FILE")]
    pub data: Vec<PathBuf>,
    /// The gate configuration (default: relgate.yaml found from the first path upward).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output format (repeatable; pair each with an --output, the last may go to stdout).
    #[arg(long, short = 'f', value_enum, default_value = "text")]
    pub format: Vec<Format>,
    /// File for the matching --format (repeatable, in the same order).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Vec<PathBuf>,
    /// Treat warnings as blocking (exit 1).
    #[arg(long)]
    pub fail_on_warn: bool,
    /// Evaluate this package too, besides `main` and the built-in bundle (repeatable).
    #[arg(long = "namespace", short = 'n', value_name = "NS")]
    pub namespaces: Vec<String>,
    /// Largest input file accepted, in bytes (default: max_file_bytes of relgate.yaml, 4 MiB).
    #[arg(long, value_name = "BYTES")]
    pub max_file_bytes: Option<u64>,
    /// Wall-clock limit of one policy evaluation, in seconds; a policy that runs longer is an
    /// error (exit 2).
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub timeout: f64,
    /// Parse team policies as Rego v0 (OPA's --v0-compatible: `deny[msg] { … }` without `if`).
    #[arg(long)]
    pub v0_compatible: bool,
    /// Query no Prometheus: SLOs read from Prometheus become SLO-UNKNOWN (file sources are
    /// still read).
    #[arg(long)]
    pub offline: bool,
    /// Development only: resolve a policy bundle referenced by tag instead of refusing it
    /// (prints a warning; commit the digest it resolves to).
    #[arg(long)]
    pub allow_bundle_tag: bool,
    /// Limit of one Prometheus request, in seconds (failed requests are retried within an
    /// overall deadline).
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub prometheus_timeout: f64,
    /// Check only the manifests a git change touches: added, modified or renamed ones, those
    /// referencing a changed evaluation, prompt, baseline or SLO file, and all of them when
    /// relgate.yaml or a policy changed. The change is merge-base(base, head)..head; without
    /// --head (or with a --head naming the checked-out commit), uncommitted work-tree and index
    /// changes count too. Deleted manifests are listed
    /// as removed. Nothing changed: exit 0. See docs/changed.md.
    #[arg(long)]
    pub changed: bool,
    /// With --changed: the revision to compare with. Default: the upstream of the current
    /// branch, else origin/HEAD, main, master, origin/main, origin/master.
    #[arg(long, value_name = "REV", requires = "changed")]
    pub base: Option<String>,
    /// With --changed: the revision to check (default: HEAD and the work tree). The
    /// checked-out commit is read from the work tree, with its uncommitted changes; another
    /// commit is read from its own tree.
    #[arg(long, value_name = "REV", requires = "changed")]
    pub head: Option<String>,
    /// With --changed: whose relgate.yaml and policy directories decide. base (default): the
    /// merge base's, so a change cannot edit the rules it is judged by (its edits take effect
    /// after merge, and a GATE-CONFIG-CHANGED warning lists them); head: the checked files'
    /// own, to try a rule change locally. A base without relgate.yaml (the change that adopts
    /// relgate) uses the head's. --policy and --data are read as given either way.
    #[arg(long, value_enum, value_name = "FROM", default_value_t = crate::changed::Rules::Base, requires = "changed")]
    pub rules: crate::changed::Rules,
    /// GitHub mode, in a GitHub Actions job: read the pull request (author, labels, reviews,
    /// team membership) into `input.context.pull_request` before deciding, then publish the
    /// decision (--publish) and write $GITHUB_OUTPUT. Reads GITHUB_REPOSITORY, GITHUB_API_URL,
    /// GITHUB_EVENT_PATH, GITHUB_SHA and the other runner variables (docs/github.md).
    #[arg(long)]
    pub github: bool,
    /// GitHub API token (default: $RELGATE_GITHUB_TOKEN, else $GITHUB_TOKEN). Team membership
    /// needs a token with `read:org` (or a GitHub App with Members: read).
    #[arg(long, value_name = "TOKEN", requires = "github")]
    pub github_token: Option<String>,
    /// The pull request to read and comment on (default: `pull_request.number` of the event
    /// in $GITHUB_EVENT_PATH).
    #[arg(long, value_name = "N", requires = "github")]
    pub pull_request: Option<u64>,
    /// Where GitHub mode publishes, comma-separated: comment (one sticky comment per
    /// workflow), check-run (annotations at file:line), summary ($GITHUB_STEP_SUMMARY), or
    /// none. Default: comment,check-run,summary.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        value_name = "WHERE",
        requires = "github"
    )]
    pub publish: Vec<crate::github::Target>,
    /// Pull-request context for the approval rules: a JSON file {number, author, labels,
    /// reviews, approvers, teams, ...} (docs/approvals.md). Without it approvals are not
    /// evaluated. `record` also takes the record-only shape {number, author, approvers,
    /// merged_by}, which is recorded but not evaluated.
    #[arg(long, value_name = "FILE", conflicts_with = "github")]
    pub pr_json: Option<PathBuf>,
}

/// Arguments of `relgate test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Directories (or .rego files) holding policies and their *_test.rego tests.
    /// Default: the `policies` directories of relgate.yaml.
    pub paths: Vec<PathBuf>,
    /// Run the built-in bundle's own tests too.
    #[arg(long)]
    pub builtin: bool,
    /// Run a policy bundle directory's tests (docs/bundles.md): its Rego, `_test.rego` and
    /// data, with its config fragment merged over the config as in `check`.
    #[arg(long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
    /// A YAML or JSON data document added under `data` (repeatable).
    #[arg(long = "data", short = 'd', value_name = "FILE")]
    pub data: Vec<PathBuf>,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = TestFormat::Text)]
    pub format: TestFormat,
    /// Only run tests whose name (data.<package>.<rule>) contains this text.
    #[arg(long, value_name = "TEXT")]
    pub run: Option<String>,
    /// Report per-file line coverage of the policies (not of the tests).
    #[arg(long)]
    pub coverage: bool,
    /// With --coverage: fail (exit 1) when total coverage is below this percentage.
    #[arg(long, value_name = "PCT", requires = "coverage")]
    pub threshold: Option<f64>,
    /// Wall-clock limit of one test, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub timeout: f64,
    /// Parse team policies as Rego v0 (OPA's --v0-compatible: `deny[msg] { … }` without `if`).
    #[arg(long)]
    pub v0_compatible: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TestFormat {
    Text,
    Json,
}

/// Parses arguments and runs; the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            // Help and version are successes; every other parse problem is a usage error.
            return if err.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            // Errors quote file names and messages from the pull request: escaped for the log.
            let message = format!("relgate: error: {err:#}");
            let message = output::text::guard_log(
                &output::text::multiline(&message),
                output::text::LogSyntax::Plain,
                false,
            );
            let _ = writeln!(std::io::stderr(), "{message}");
            ExitCode::from(2)
        }
    }
}

fn color_enabled(when: ColorWhen) -> bool {
    match when {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto => {
            anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never
        }
    }
}

fn timeout(secs: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .context("--timeout must be a positive number of seconds")
}

/// `context.now` outside GitHub mode (see [`now_for`]).
fn now() -> anyhow::Result<String> {
    now_for(false)
}

/// `context.now`: `RELGATE_NOW` (RFC 3339, for reproducible runs and tests) or the clock.
/// In GitHub mode (`github`) always the clock: an earlier step of the job can set any variable
/// through $GITHUB_ENV, and a moved clock revives expired waivers and backdates records. The
/// ignored override is reported (`github::environment_notes`).
fn now_for(github: bool) -> anyhow::Result<String> {
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

fn run(cli: Cli) -> anyhow::Result<u8> {
    let color = color_enabled(cli.color);
    match cli.command {
        Command::Check(args) => check(args, color),
        Command::Test(args) => test(args, color),
        Command::Schema { kind } => {
            let mut stdout = std::io::stdout().lock();
            match kind {
                None => {
                    for (kind, _) in schema::KINDS {
                        writeln!(stdout, "{kind}")?;
                    }
                    Ok(0)
                }
                Some(kind) => match schema::schema_text(&kind) {
                    Some(text) => {
                        write!(stdout, "{text}")?;
                        Ok(0)
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
            Ok(0)
        }
        Command::Record(args) => records::record(args, color),
        Command::Verify(args) => records::verify(args, color),
        Command::Export(args) => export::export(args, cli.color),
        Command::Collect(args) => collect::collect(args),
        Command::Policy(args) => bundle::policy(args),
        Command::Keygen { out } => records::keygen(&out),
    }
}

/// `CheckSettings` from the `check` arguments (shared by `check` and `record`).
fn check_settings(args: &CheckArgs) -> anyhow::Result<CheckSettings> {
    if args.output.len() > args.format.len() {
        anyhow::bail!(
            "{} --output given for {} --format; pair each output with a format",
            args.output.len(),
            args.format.len()
        );
    }
    if args.format.len() > args.output.len() + 1 {
        anyhow::bail!(
            "only one --format can go to stdout; give an --output for each of the others"
        );
    }
    Ok(CheckSettings {
        paths: args.paths.clone(),
        cwd: std::env::current_dir().context("cannot read the current directory")?,
        config: args.config.clone(),
        policy_dirs: args.policies.clone(),
        data_files: args.data.clone(),
        namespaces: args.namespaces.clone(),
        fail_on_warn: args.fail_on_warn,
        max_file_bytes: args.max_file_bytes,
        eval_timeout: Some(timeout(args.timeout)?),
        rego_v0: args.v0_compatible,
        now: now_for(args.github)?,
        offline: args.offline,
        prometheus_timeout: Some(
            Duration::try_from_secs_f64(args.prometheus_timeout)
                .ok()
                .filter(|d| !d.is_zero())
                .context("--prometheus-timeout must be a positive number of seconds")?,
        ),
        changed: args.changed.then(|| ChangedOptions {
            base: args.base.clone(),
            head: args.head.clone(),
            rules: args.rules,
        }),
        pull_request: None,
        bundles: bundle::settings(None, args.allow_bundle_tag),
    })
}

/// Reads `--pr-json` (shared by `check` and `record`): a full context goes into
/// `settings.pull_request`; the record-only shape is refused unless `for_record`. Returns the
/// pull-request summary for change records.
fn read_pr_json(
    args: &CheckArgs,
    settings: &mut CheckSettings,
    for_record: bool,
) -> anyhow::Result<Option<crate::record::statement::PullRequestInfo>> {
    use crate::pull_request::{self, PrJson};
    let Some(path) = &args.pr_json else {
        return Ok(None);
    };
    let shown = path.display().to_string();
    let limit = args
        .max_file_bytes
        .unwrap_or(crate::manifest::DEFAULT_MAX_FILE_BYTES);
    let pr = pull_request::read(path, &shown, limit)?;
    let info = pr.record_info();
    match pr {
        PrJson::Context(context) => settings.pull_request = Some(context),
        PrJson::RecordOnly(_) if for_record => {}
        PrJson::RecordOnly(_) => anyhow::bail!(
            "{shown}: has no `reviews`: --pr-json needs the full pull-request context \
             {{number, author, labels, reviews, approvers, teams, ...}} for the approval rules \
             (docs/approvals.md); the shape {{number, author, approvers, merged_by}} is only \
             for `relgate record`"
        ),
    }
    Ok(info)
}

/// Prints the report in every requested format (shared by `check` and `record`).
fn print_report(
    report: &crate::report::Report,
    args: &CheckArgs,
    color: bool,
) -> anyhow::Result<()> {
    for (index, format) in args.format.iter().enumerate() {
        match args.output.get(index) {
            Some(path) => {
                let text = output::render(report, *format, false);
                std::fs::write(path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            None => {
                let text = output::render(report, *format, color);
                // stdout is a CI log: no line of it may read as a workflow command.
                let syntax = match format {
                    // GitLab's report is JSON too: `#\\#[` would be an invalid escape in it.
                    Format::Json | Format::Sarif | Format::Gitlab => output::text::LogSyntax::Json,
                    Format::Junit => output::text::LogSyntax::Xml,
                    _ => output::text::LogSyntax::Plain,
                };
                let text = output::text::guard_log(&text, syntax, *format == Format::Github);
                std::io::stdout().lock().write_all(text.as_bytes())?;
            }
        }
    }
    Ok(())
}

fn check(args: CheckArgs, color: bool) -> anyhow::Result<u8> {
    let mut settings = check_settings(&args)?;
    read_pr_json(&args, &mut settings, false)?;
    if args.allow_bundle_tag {
        eprintln!(
            "warning: --allow-bundle-tag: policy bundles referenced by tag are resolved; a tag can \
             move, so pin each bundle by the digest before relying on this run"
        );
    }
    if args.github {
        return github::check(&args, &settings, color);
    }
    let report = gate::check(&settings)?;
    print_report(&report, &args, color)?;
    Ok(report.decision.exit_code())
}

fn read_test_sources(paths: &[PathBuf]) -> anyhow::Result<Vec<PolicySource>> {
    let cwd = std::env::current_dir()?;
    let shown = |p: &Path| {
        let relative = p.strip_prefix(&cwd).unwrap_or(p);
        let relative = relative.strip_prefix(".").unwrap_or(relative);
        relative.to_string_lossy().replace('\\', "/")
    };
    let mut sources = Vec::new();
    for path in paths {
        if path.is_file() {
            sources.push(PolicySource {
                path: shown(path),
                text: std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
                builtin: false,
                v0: false,
            });
        } else {
            sources.extend(policy::read_dir_sources(path, &shown)?);
        }
    }
    Ok(sources)
}

fn test(args: TestArgs, color: bool) -> anyhow::Result<u8> {
    let cwd = std::env::current_dir()?;
    let root = crate::workspace::GateRoot::discover(args.paths.first().unwrap_or(&cwd), &cwd)?;
    let mut config = crate::config::GateConfig::load(&root, None, None)?;
    let mut paths = args.paths.clone();
    if paths.is_empty() && !args.builtin && args.bundle.is_none() {
        paths = policy::resolve_dirs(&root.dir, &config.policies)
            .into_iter()
            .filter(|p| p.is_dir())
            .collect();
        if paths.is_empty() {
            anyhow::bail!(
                "no policy directories to test: give a DIR, use --builtin, or create {}",
                config.policies.join(", ")
            );
        }
    }
    let mut sources = read_test_sources(&paths)?;
    for source in &mut sources {
        source.v0 = args.v0_compatible;
    }
    if args.builtin {
        sources.extend(policy::builtin_sources());
    }
    let mut data = Vec::new();
    if let Some(dir) = &args.bundle {
        bundle::test_inputs(dir, &mut config, &mut sources, &mut data)?;
    }
    for file in &args.data {
        data.push(policy::read_data_file(
            file,
            &file.display().to_string(),
            config.max_file_bytes,
        )?);
    }
    let report = testing::run(&TestOptions {
        sources,
        config: config.merged,
        data,
        coverage: args.coverage,
        filter: args.run,
        timeout: Some(timeout(args.timeout)?),
    })?;
    let below_threshold = match (&report.coverage, args.threshold) {
        (Some(coverage), Some(threshold)) => coverage.percent < threshold,
        _ => false,
    };
    let out = match args.format {
        TestFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        TestFormat::Text => output::test_report::render(&report, args.threshold, color),
    };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(
        if !report.load_errors.is_empty() || report.tests.is_empty() {
            2
        } else if report.failed + report.errors > 0 || below_threshold {
            1
        } else {
            0
        },
    )
}
