//! The clap definitions of the command line. Their doc comments are the `--help` text (the
//! `--help` snapshots hold them): change them as user-facing documentation. The handlers that
//! act on these arguments live beside this file, one per command.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use super::bundle;
use crate::output::Format;

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
pub(crate) struct Cli {
    /// When to colour text output: auto (a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto)]
    pub(crate) color: ColorWhen,
    #[command(subcommand)]
    pub(crate) command: Command,
}

pub(crate) use crate::output::ColorWhen;

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Decide on release manifests: pass (exit 0), blocked (exit 1) or could not decide (exit 2).
    Check(CheckArgs),
    /// Run Rego unit tests (`test_*` rules), like `opa test`.
    Test(TestArgs),
    /// Explain a rule: why it matters, how to fix it, an example (`--list`: every rule).
    Explain(ExplainArgs),
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
    Collect(CollectArgs),
    /// Shared, signed policy bundles over OCI registries: push, pull, verify (docs/bundles.md).
    Policy(bundle::PolicyArgs),
    /// Generate an Ed25519 key pair for signing change records and print its key id.
    Keygen {
        /// Directory for relgate-signing.pem (private) and relgate-signing.pub.pem (public);
        /// an existing key is never overwritten.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Run the git history checks of a ledger branch and print what they found as JSON: the
    /// process `verify`, `export` and `collect` start to walk the history beside their record
    /// checks. Not for use by hand; its output is not a stable interface.
    #[command(name = crate::record::verify::HISTORY_WALK_COMMAND, hide = true)]
    HistoryWalk {
        /// The repository (work tree or git directory).
        #[arg(long, value_name = "DIR")]
        repo: PathBuf,
        /// The full name of the ledger ref.
        #[arg(long = "ref", value_name = "REF")]
        refname: String,
        /// Skip the walk over every ledger commit.
        #[arg(long)]
        no_history: bool,
        /// Skip the reflog check.
        #[arg(long)]
        no_reflog: bool,
    },
}

/// Arguments of `relgate record`: those of `check`, plus where records go and what they say
/// about the run.
#[derive(Debug, clap::Args)]
pub(crate) struct RecordArgs {
    #[command(flatten)]
    pub(crate) check: CheckArgs,
    /// Private signing key (PKCS#8 PEM, from `relgate keygen` or `openssl genpkey -algorithm
    /// ed25519`). Default: the PEM text in the environment variable RELGATE_SIGNING_KEY.
    #[arg(long, value_name = "FILE")]
    pub(crate) key: Option<PathBuf>,
    /// Git branch of the ledger in the gate root's repository. Default: `ledger.branch` of
    /// relgate.yaml, else relgate/records.
    #[arg(long, value_name = "REF", conflicts_with = "ledger_dir")]
    pub(crate) ledger: Option<String>,
    /// Keep the ledger in this directory instead of a git branch (`ledger.dir` of
    /// relgate.yaml sets a default).
    #[arg(long, value_name = "DIR")]
    pub(crate) ledger_dir: Option<PathBuf>,
    /// URL of the CI run, recorded with each decision. Default on GitHub Actions:
    /// $GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID.
    #[arg(long, value_name = "URL")]
    pub(crate) ci_run_url: Option<String>,
    /// With --changed: start the range at the commit of the ledger's last record (the last
    /// commit the ledger covers) instead of --base, so a run catches up on every release change
    /// since the last recorded run, including those of runs that failed or were cancelled.
    /// --base is used only while the ledger is empty.
    #[arg(long, requires = "changed")]
    pub(crate) since_ledger: bool,
}

/// Which ledger to read and which keys to trust: the options `verify` and `export` share.
#[derive(Debug, clap::Args)]
pub(crate) struct LedgerSelection {
    /// Git branch (or full ref, e.g. refs/remotes/origin/relgate/records) of the ledger.
    /// Default: `ledger.branch` of relgate.yaml, else relgate/records (or
    /// origin/relgate/records in a fresh clone).
    #[arg(long, value_name = "REF", conflicts_with = "ledger_dir")]
    pub(crate) ledger: Option<String>,
    /// Read a ledger kept in this directory instead of a git branch.
    #[arg(long, value_name = "DIR")]
    pub(crate) ledger_dir: Option<PathBuf>,
    /// Directory of trusted public keys (*.pem; a private key there is an error). Default:
    /// .relgate/keys in the gate root.
    #[arg(long, value_name = "DIR")]
    pub(crate) keys: Option<PathBuf>,
    /// A CHECKPOINT kept from an earlier verify: also prove that the ledger only grew since.
    #[arg(long, value_name = "FILE")]
    pub(crate) checkpoint: Option<PathBuf>,
    /// The gate configuration, read for `ledger:` (default: relgate.yaml of the gate root).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

/// Arguments of `relgate verify`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) selection: LedgerSelection,
    /// Verify the envelopes of an export bundle instead of a ledger: one DSSE envelope per
    /// line in seq order (envelopes.jsonl), with the ledger's CHECKPOINT in the same
    /// directory. Checks everything but the shard layout and the git history.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["ledger", "ledger_dir"])]
    pub(crate) envelopes: Option<PathBuf>,
    /// Write the verified CHECKPOINT to this file, to keep for the next --checkpoint.
    #[arg(long, value_name = "FILE")]
    pub(crate) save_checkpoint: Option<PathBuf>,
    /// Output format: text, or json (the full verification report).
    #[arg(long, short = 'f', value_enum, default_value_t = VerifyFormat::Text)]
    pub(crate) format: VerifyFormat,
    /// Skip the git history checks (the walk over every ledger commit and the reflog); the
    /// records, their chain and the checkpoint are still verified.
    #[arg(long)]
    pub(crate) no_history: bool,
    /// Check every signature on its own (strict Ed25519), not 256 at a time in a batch.
    /// Slower; the two agree on every signature but one crafted, by a holder of a trusted
    /// private key, with a small-order component, which a batch may accept.
    #[arg(long)]
    pub(crate) strict_signatures: bool,
    /// The branch the ledger records, for the completeness check (every commit after the
    /// first record's that changed a manifest, relgate.yaml or a policy must be named by a
    /// record). Default: the branch the newest record names (origin/<branch> when the clone
    /// has it), else origin/HEAD, else HEAD.
    #[arg(long, value_name = "REV")]
    pub(crate) default_branch: Option<String>,
}

/// Arguments of `relgate export`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    pub(crate) selection: LedgerSelection,
    /// Output format. Default: csv, or none when only --bundle is asked for.
    #[arg(long, short = 'f', value_enum)]
    pub(crate) format: Option<crate::export::Format>,
    /// Keep decisions made on or after DATE: YYYY-MM-DD (from 00:00 UTC that day) or RFC 3339.
    #[arg(long, value_name = "DATE")]
    pub(crate) since: Option<String>,
    /// Keep decisions made on or before DATE: YYYY-MM-DD (through the end of that day, UTC)
    /// or RFC 3339 (that instant included).
    #[arg(long, value_name = "DATE")]
    pub(crate) until: Option<String>,
    /// Keep only this service (repeatable: any of them).
    #[arg(long = "service", value_name = "S")]
    pub(crate) services: Vec<String>,
    /// Keep only this environment (repeatable: any of them).
    #[arg(long = "environment", value_name = "E")]
    pub(crate) environments: Vec<String>,
    /// Write the export to FILE instead of stdout (written whole or not at all).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Export from the envelopes of an export bundle (envelopes.jsonl, with its CHECKPOINT
    /// beside it) instead of a ledger: how an auditor rebuilds a bundle's CSV from what is
    /// signed and compares.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["ledger", "ledger_dir"])]
    pub(crate) envelopes: Option<PathBuf>,
    /// Also write an audit bundle (.tar.gz): the envelopes, trusted public keys, CHECKPOINT,
    /// verification report, CSV, HTML report, VERIFY.md (how to check it offline) and SHA256SUMS.
    #[arg(long, value_name = "FILE.tar.gz")]
    pub(crate) bundle: Option<PathBuf>,
    /// Skip the git history checks of the ledger branch (the records, their chain and the
    /// checkpoint are still verified).
    #[arg(long)]
    pub(crate) no_history: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum VerifyFormat {
    Text,
    Json,
}

/// Arguments of `relgate check`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// Manifest files or directories (directories are searched for *.yaml, *.yml and *.json).
    /// Default: the `manifests` globs of relgate.yaml.
    pub(crate) paths: Vec<PathBuf>,
    /// A directory of team Rego policies, loaded beside the built-in bundle (repeatable).
    #[arg(long = "policy", short = 'p', value_name = "DIR")]
    pub(crate) policies: Vec<PathBuf>,
    /// A YAML or JSON data document added under `data` (repeatable).
    #[arg(long = "data", short = 'd', value_name = "FILE")]
    pub(crate) data: Vec<PathBuf>,
    /// The gate configuration (default: relgate.yaml found from the first path upward).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Output format (repeatable; pair each with an --output, the last may go to stdout).
    #[arg(long, short = 'f', value_enum, default_value = "text")]
    pub(crate) format: Vec<Format>,
    /// File for the matching --format (repeatable, in the same order).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub(crate) output: Vec<PathBuf>,
    /// Treat warnings as blocking (exit 1).
    #[arg(long)]
    pub(crate) fail_on_warn: bool,
    /// Evaluate this package too, besides `main` and the built-in bundle (repeatable).
    #[arg(long = "namespace", short = 'n', value_name = "NS")]
    pub(crate) namespaces: Vec<String>,
    /// Largest input file accepted, in bytes (default: max_file_bytes of relgate.yaml, 4 MiB).
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_file_bytes: Option<u64>,
    /// Wall-clock limit of one policy evaluation, in seconds; a policy that runs longer is an
    /// error (exit 2).
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub(crate) timeout: f64,
    /// Parse team policies as Rego v0 (OPA's --v0-compatible: `deny[msg] { … }` without `if`).
    #[arg(long)]
    pub(crate) v0_compatible: bool,
    /// Query no Prometheus: SLOs read from Prometheus become SLO-UNKNOWN (file sources are
    /// still read).
    #[arg(long)]
    pub(crate) offline: bool,
    /// Development only: resolve a policy bundle referenced by tag instead of refusing it
    /// (prints a warning; commit the digest it resolves to).
    #[arg(long)]
    pub(crate) allow_bundle_tag: bool,
    /// Limit of one Prometheus request, in seconds (failed requests are retried within an
    /// overall deadline).
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub(crate) prometheus_timeout: f64,
    /// Check only the manifests a git change touches: added, modified or renamed ones, those
    /// referencing a changed evaluation, prompt, baseline or SLO file, and all of them when
    /// relgate.yaml or a policy changed. The change is merge-base(base, head)..head; without
    /// --head (or with a --head naming the checked-out commit), uncommitted work-tree and index
    /// changes count too. Deleted manifests are listed
    /// as removed. Nothing changed: exit 0. See docs/changed.md.
    #[arg(long)]
    pub(crate) changed: bool,
    /// With --changed: the revision to compare with. Default: the upstream of the current
    /// branch, else origin/HEAD, main, master, origin/main, origin/master.
    #[arg(long, value_name = "REV", requires = "changed")]
    pub(crate) base: Option<String>,
    /// With --changed: the revision to check (default: HEAD and the work tree). The
    /// checked-out commit is read from the work tree, with its uncommitted changes; another
    /// commit is read from its own tree.
    #[arg(long, value_name = "REV", requires = "changed")]
    pub(crate) head: Option<String>,
    /// With --changed: whose relgate.yaml and policy directories decide. base (default): the
    /// merge base's, so a change cannot edit the rules it is judged by (its edits take effect
    /// after merge, and a GATE-CONFIG-CHANGED warning lists them); head: the checked files'
    /// own, to try a rule change locally. A base without relgate.yaml (the change that adopts
    /// relgate) uses the head's. --policy and --data are read as given either way.
    #[arg(long, value_enum, value_name = "FROM", default_value_t = crate::changed::Rules::Base, requires = "changed")]
    pub(crate) rules: crate::changed::Rules,
    /// GitHub mode, in a GitHub Actions job: read the pull request (author, labels, reviews,
    /// team membership) into `input.context.pull_request` before deciding, then publish the
    /// decision (--publish) and write $GITHUB_OUTPUT. Reads GITHUB_REPOSITORY, GITHUB_API_URL,
    /// GITHUB_EVENT_PATH, GITHUB_SHA and the other runner variables (docs/github.md).
    #[arg(long)]
    pub(crate) github: bool,
    /// GitHub API token (default: $RELGATE_GITHUB_TOKEN, else $GITHUB_TOKEN). Team membership
    /// needs a token with `read:org` (or a GitHub App with Members: read).
    #[arg(long, value_name = "TOKEN", requires = "github")]
    pub(crate) github_token: Option<String>,
    /// The pull request to read and comment on (default: `pull_request.number` of the event
    /// in $GITHUB_EVENT_PATH).
    #[arg(long, value_name = "N", requires = "github")]
    pub(crate) pull_request: Option<u64>,
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
    pub(crate) publish: Vec<crate::github::Target>,
    /// Pull-request context for the approval rules: a JSON file {number, author, labels,
    /// reviews, approvers, teams, ...} (docs/approvals.md). Without it approvals are not
    /// evaluated. `record` also takes the record-only shape {number, author, approvers,
    /// merged_by}, which is recorded but not evaluated.
    #[arg(long, value_name = "FILE", conflicts_with = "github")]
    pub(crate) pr_json: Option<PathBuf>,
}

/// Arguments of `relgate test`.
#[derive(Debug, clap::Args)]
pub(crate) struct TestArgs {
    /// Directories (or .rego files) holding policies and their *_test.rego tests.
    /// Default: the `policies` directories of relgate.yaml.
    pub(crate) paths: Vec<PathBuf>,
    /// Run the built-in bundle's own tests too.
    #[arg(long)]
    pub(crate) builtin: bool,
    /// Run a policy bundle's tests (docs/bundles.md): its Rego, `_test.rego` and data, with its
    /// config fragment merged over the config as in `check`. A directory, or a pushed bundle
    /// oci://REGISTRY/REPO@sha256:… (fetched and verified as `check` does, against --key).
    #[arg(long, value_name = "DIR|REF")]
    pub(crate) bundle: Option<PathBuf>,
    /// With --bundle oci://…: a trusted public key (PEM) that signs the bundle (repeatable).
    /// Default: the keys of the relgate.yaml `bundles:` entry for the same repository.
    #[arg(long = "key", value_name = "FILE", requires = "bundle")]
    pub(crate) keys: Vec<PathBuf>,
    /// A YAML or JSON data document added under `data` (repeatable).
    #[arg(long = "data", short = 'd', value_name = "FILE")]
    pub(crate) data: Vec<PathBuf>,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = TestFormat::Text)]
    pub(crate) format: TestFormat,
    /// Only run tests whose name (data.<package>.<rule>) contains this text.
    #[arg(long, value_name = "TEXT")]
    pub(crate) run: Option<String>,
    /// Report per-file line coverage of the policies (not of the tests).
    #[arg(long)]
    pub(crate) coverage: bool,
    /// With --coverage: fail (exit 1) when total coverage is below this percentage.
    #[arg(long, value_name = "PCT", requires = "coverage")]
    pub(crate) threshold: Option<f64>,
    /// Wall-clock limit of one test, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub(crate) timeout: f64,
    /// Parse team policies as Rego v0 (OPA's --v0-compatible: `deny[msg] { … }` without `if`).
    #[arg(long)]
    pub(crate) v0_compatible: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum TestFormat {
    Text,
    Json,
}

/// Arguments of `relgate explain`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExplainArgs {
    /// The rule id, as reports show it (e.g. PRR-MISSING); case does not matter.
    #[arg(required_unless_present = "list", conflicts_with = "list")]
    pub(crate) rule: Option<String>,
    /// List every rule: id, severity and title.
    #[arg(long)]
    pub(crate) list: bool,
}

/// Summary formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CollectFormat {
    /// Lines for people.
    Text,
    /// The whole summary as one JSON object.
    Json,
}

/// Arguments of `relgate collect`.
#[derive(Debug, clap::Args)]
pub(crate) struct CollectArgs {
    /// Repositories: `NAME=LOCATION` or `LOCATION`, a local clone, bare mirror or ledger
    /// directory, or a git URL (`file://`, `https://`, `ssh://`); the name defaults to the last
    /// path component without `.git`.
    #[arg(value_name = "REPO")]
    pub(crate) repos: Vec<String>,
    /// A YAML list of repositories (`repos:` entries of name, path or url, keys,
    /// keys_in_repo, ledger; docs/collect.md).
    #[arg(long = "repos", value_name = "FILE")]
    pub(crate) list: Option<PathBuf>,
    /// The dataset directory (created when missing).
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// The state file [default: OUT/_relgate-collect-state.json].
    #[arg(long, value_name = "FILE")]
    pub(crate) state: Option<PathBuf>,
    /// Where git URLs are mirrored [default: OUT/_relgate-mirrors].
    #[arg(long, value_name = "DIR")]
    pub(crate) cache: Option<PathBuf>,
    /// Trusted public keys (*.pem) for every repository that has no `keys:` of its own
    /// [default: .relgate/keys committed on each repository's default branch].
    #[arg(long, value_name = "DIR")]
    pub(crate) keys: Option<PathBuf>,
    /// The ledger branch of repositories given on the command line or without `ledger:`.
    #[arg(long, value_name = "BRANCH", default_value = crate::collect::source::DEFAULT_LEDGER)]
    pub(crate) ledger: String,
    /// Verify every ledger whole, even those the state file has collected before.
    #[arg(long)]
    pub(crate) full: bool,
    /// Skip the git history walk of the whole-ledger verification.
    #[arg(long)]
    pub(crate) no_history: bool,
    /// Summary format on stdout.
    #[arg(long, value_enum, default_value_t = CollectFormat::Text)]
    pub(crate) format: CollectFormat,
}
