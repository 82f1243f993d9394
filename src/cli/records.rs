//! `relgate record`, `relgate verify` and `relgate keygen`: the command-line side of the change
//! records (docs/records.md), and the ledger and key resolution `relgate export` shares with
//! `verify` ([`select`]). Part of the CLI module: it resolves arguments, relgate.yaml and
//! the environment (`RELGATE_SIGNING_KEY`, `GITHUB_*`) into library calls, prints, and maps
//! outcomes to exit codes. The records themselves are built by [`crate::recording`] and
//! written and checked by [`crate::record`].

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{
    check_settings, print_report, read_pr_json, LedgerSelection, RecordArgs, VerifyArgs,
    VerifyFormat,
};
use crate::config::GateConfig;
use crate::exit_status::ExitStatus;
use crate::gate::{self, Gate};
use crate::output;
use crate::record::keys::{self, Signer, TrustedKeys};
use crate::record::ledger::{
    last_record_commit, open_ledger, AppendReceipt, LedgerOptions, LedgerSource,
};
use crate::record::verify::{verify_envelopes_with, verify_ledger_with, VerifyOptions};
use crate::recording::{self, LedgerConfig, LedgerStart, RepoFacts, RunEnvironment, RunFacts};
use crate::workspace::GateRoot;

/// Environment variable holding the PEM text of the private signing key.
pub const SIGNING_KEY_ENV: &str = "RELGATE_SIGNING_KEY";
/// Trusted public keys, relative to the gate root.
pub const DEFAULT_KEYS_DIR: &str = ".relgate/keys";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `relgate keygen --out DIR`.
pub fn keygen(out: &Path) -> anyhow::Result<ExitStatus> {
    let id = keys::keygen(out)
        .with_context(|| format!("cannot create a signing key in {}", out.display()))?;
    writeln!(std::io::stdout().lock(), "{id}")?;
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "wrote {} (private: keep it secret) and {} (public)",
        out.join(keys::PRIVATE_KEY_FILE).display(),
        out.join(keys::PUBLIC_KEY_FILE).display()
    )?;
    writeln!(
        err,
        "next: commit the public key as {DEFAULT_KEYS_DIR}/<name>.pem; store the private key's \
         PEM as the CI secret {SIGNING_KEY_ENV} (or pass --key FILE) and delete this copy. \
         `relgate verify` refuses a key directory that holds a private key."
    )?;
    Ok(ExitStatus::Pass)
}

// ---------------------------------------------------------------------------------------------
// record
// ---------------------------------------------------------------------------------------------

/// The signing key: `--key FILE`, else the PEM in `RELGATE_SIGNING_KEY`.
fn signing_key(key: Option<&Path>) -> anyhow::Result<Signer> {
    if let Some(path) = key {
        return Signer::from_file(path).context("cannot load the signing key");
    }
    let Some(pem) = env(SIGNING_KEY_ENV) else {
        anyhow::bail!(
            "no signing key: pass --key FILE (a PKCS#8 PEM private key from `relgate keygen`) \
             or set {SIGNING_KEY_ENV} to the key's PEM text"
        );
    };
    if !pem.contains("-----BEGIN") {
        // Never echo the value: it may be a secret in the wrong format.
        anyhow::bail!(
            "{SIGNING_KEY_ENV} must hold the PEM text of the private key \
             (-----BEGIN PRIVATE KEY-----...), not a path; use --key FILE for a key file"
        );
    }
    Signer::from_pem(&pem).with_context(|| format!("{SIGNING_KEY_ENV} is not a usable key"))
}

/// Where the ledger is: the command line, else `ledger:` of relgate.yaml, else the default
/// branch of the gate root's repository.
fn ledger_source(
    ledger: Option<&str>,
    ledger_dir: Option<&Path>,
    config: &LedgerConfig,
    root: &GateRoot,
    repo_dir: Option<&Path>,
) -> anyhow::Result<LedgerSource> {
    if let Some(dir) = ledger_dir {
        return Ok(LedgerSource::Dir(dir.to_path_buf()));
    }
    if ledger.is_none() {
        if let Some(dir) = &config.dir {
            return Ok(LedgerSource::Dir(dir.clone()));
        }
    }
    let branch = ledger
        .map(str::to_owned)
        .or_else(|| config.branch.clone())
        .unwrap_or_else(|| crate::record::ledger::DEFAULT_BRANCH.to_owned());
    let Some(repo) = repo_dir else {
        anyhow::bail!(
            "the gate root {} is not in a git repository, so there is no branch {branch} to \
             keep the ledger on; pass --ledger-dir DIR (or set ledger.dir in relgate.yaml)",
            root.dir.display()
        );
    };
    Ok(LedgerSource::Git {
        repo: repo.to_path_buf(),
        branch,
    })
}

/// Refuses a ledger named on the command line that is not the one `ledger:` of relgate.yaml
/// names: the records would go where neither `relgate verify` (which reads the config) nor
/// whoever pushes the named branch looks.
fn check_ledger_agrees(
    branch: Option<&str>,
    dir: Option<&Path>,
    config: &LedgerConfig,
) -> anyhow::Result<()> {
    use crate::record::ledger::ledger_refname;
    let configured = match (&config.dir, &config.branch) {
        (Some(d), _) => format!("ledger.dir {}", d.display()),
        (None, Some(b)) => format!("ledger.branch {b}"),
        (None, None) => return Ok(()),
    };
    let agrees = match (branch, dir, &config.dir, &config.branch) {
        (Some(b), _, None, Some(c)) => ledger_refname(b) == ledger_refname(c),
        (None, Some(d), Some(c), _) => {
            let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
            real(d) == real(c)
        }
        (None, None, _, _) => true,
        _ => false,
    };
    if agrees {
        return Ok(());
    }
    let given = match (branch, dir) {
        (Some(b), _) => format!("--ledger {b}"),
        (None, Some(d)) => format!("--ledger-dir {}", d.display()),
        (None, None) => String::new(),
    };
    anyhow::bail!(
        "{given} disagrees with {configured} in relgate.yaml: records would be written where \
         `relgate verify` (and whoever publishes {given}) does not look. Make them agree: \
         remove `ledger:` from relgate.yaml or set it to the same ledger (with the GitHub \
         Action: its ledger-branch input)"
    )
}

/// The first-parent commits of a `--changed` range that changed manifests, the config or
/// policies (for each record's `changed_in`); empty without `--changed` or outside git.
fn range_changes(
    gate: &Gate,
    settings: &gate::CheckSettings,
    repo: &RepoFacts,
) -> anyhow::Result<Vec<crate::record::completeness::CommitChange>> {
    use crate::record::completeness::{first_parent_changes, WatchedPaths};
    let (Some(changed), Some(repo_dir)) = (&settings.changed, &repo.repo_dir) else {
        return Ok(Vec::new());
    };
    let Some(base) = &changed.base else {
        return Ok(Vec::new());
    };
    let r = git2::Repository::open(repo_dir)
        .with_context(|| format!("cannot open {}", repo_dir.display()))?;
    let head_rev = changed.head.as_deref().unwrap_or("HEAD");
    let resolve = |rev: &str| {
        r.revparse_single(rev)
            .and_then(|o| o.peel_to_commit())
            .map(|c| c.id())
            .with_context(|| format!("cannot resolve {rev} to a commit"))
    };
    let head = resolve(head_rev)?;
    let base = r
        .merge_base(resolve(base)?, head)
        .with_context(|| format!("no merge base of {base} and {head_rev}"))?;
    let mut configs = vec![crate::workspace::CONFIG_FILE.to_owned()];
    if let Some(file) = &gate.config.file {
        configs.push(file.clone());
    }
    let watched = WatchedPaths::new(
        &repo.prefix,
        &gate.config.manifests,
        &configs,
        &gate.config.policies,
    )
    .map_err(anyhow::Error::msg)?;
    first_parent_changes(&r, head, Some(base), &watched)
        .with_context(|| format!("cannot read the history {base}..{head_rev}"))
}

/// The run's facts that come from the environment.
fn run_environment() -> RunEnvironment {
    RunEnvironment {
        repo_url: match (env("GITHUB_SERVER_URL"), env("GITHUB_REPOSITORY")) {
            (Some(server), Some(repository)) => {
                Some(format!("{}/{repository}", server.trim_end_matches('/')))
            }
            _ => None,
        },
        git_ref: env("GITHUB_REF"),
        commit: env("GITHUB_SHA"),
    }
}

fn seq_range(receipts: &[AppendReceipt]) -> String {
    match (receipts.first(), receipts.last()) {
        (Some(first), Some(last)) if first.seq == last.seq => format!("record {}", first.seq),
        (Some(first), Some(last)) => format!("records {}..{}", first.seq, last.seq),
        _ => "no records".to_owned(),
    }
}

/// A push can carry several merges (a merge queue batch, merges pushed together), and GitHub
/// names the pull request of the pushed head only. A manifest whose last change in the range
/// came with another commit must not be decided, nor recorded, with that pull request's
/// approvals: it is decided again with the pull-request context marked unavailable, so a
/// release that needs approvals is blocked (APPROVAL-MISSING, saying why) instead of signed as
/// approved.
fn decide_without_borrowed_approvals(
    gate: &mut Gate,
    settings: &gate::CheckSettings,
    run: &recording::RunFacts,
    report: &mut crate::report::Report,
) -> anyhow::Result<()> {
    let borrowed: std::collections::BTreeSet<String> = report
        .results
        .iter()
        .filter(|r| {
            run.pull_request.is_some()
                && run.pull_request_for(&run.repo.repo_path(&r.file)).is_none()
        })
        .map(|r| r.file.clone())
        .collect();
    if borrowed.is_empty() {
        return Ok(());
    }
    let head = run.pull_request_commit.as_deref().unwrap_or_default();
    gate.set_pull_request(Some(crate::pull_request::unavailable(&format!(
        "the manifest was last changed by a commit of this push other than {}, whose pull \
         request was read; who reviewed that change is not known",
        head.get(..12).unwrap_or(head)
    ))))?;
    let again = gate::check_opened(gate, settings)?;
    report.replace_results(&borrowed, again.results);
    Ok(())
}

/// Frees `value` on a thread of its own. A run of 10,000 records holds a few hundred MiB of
/// small allocations (parsed manifests, policy inputs, record inputs) whose freeing took about
/// 0.6 s on the main thread with glibc's malloc, and takes 70–100 ms with jemalloc (the
/// binary's allocator; measured on 10,000 manifests), still time the main thread's serial
/// chain building would wait for. Nothing waits for the thread: when the process exits first,
/// the operating system reclaims the memory at once.
fn drop_elsewhere<T: Send + 'static>(value: T) {
    let spawned = std::thread::Builder::new()
        .name("relgate-free".into())
        .spawn(move || drop(value));
    // Without a thread (the system refused one) the value is already gone: `spawn` dropped
    // the closure and with it the value, on this thread.
    drop(spawned);
}

/// `relgate record`.
pub fn record(args: RecordArgs, color: bool) -> anyhow::Result<ExitStatus> {
    // Everything that can stop the records is checked before anything is decided or printed.
    let mut settings = check_settings(&args.check)?;
    let signer = signing_key(args.key.as_deref())?;
    let github = match args.check.github {
        true => Some(super::github::start(&args.check, true)?),
        false => None,
    };
    let mut pull_request = read_pr_json(&args.check, &mut settings, true)?;
    let ci_run_url = args.ci_run_url.clone().or_else(|| {
        recording::github_run_url(
            env("GITHUB_SERVER_URL").as_deref(),
            env("GITHUB_REPOSITORY").as_deref(),
            env("GITHUB_RUN_ID").as_deref(),
        )
    });
    let mut gate = Gate::open(&settings)?;
    gate.keep_evaluated();
    let mut pr_context = None;
    if let Some(github) = &github {
        // The merged pull request's facts: the record shows who approved.
        let found = github
            .record_context(gate.config.merged.get("approvals"))
            .context("cannot read the pull request to record")?;
        github.verify_checkout(&gate.root.dir, found.context.as_ref())?;
        if let Some(note) = &found.note {
            writeln!(std::io::stderr().lock(), "relgate record: {note}")?;
        }
        pull_request = found
            .context
            .as_ref()
            .and_then(crate::pull_request::record_info);
        gate.set_pull_request(found.context.clone())?;
        pr_context = found.context;
    }
    let repo = RepoFacts::discover(&gate.root, &run_environment());
    let ledger_config = LedgerConfig::from_config(&gate.config, &gate.root);
    // A ledger named on the command line (the Action always names the branch it pushes) must
    // be the one relgate.yaml names, else records land where the pusher and `relgate verify`
    // do not look and are lost.
    check_ledger_agrees(
        args.ledger.as_deref(),
        args.ledger_dir.as_deref(),
        &ledger_config,
    )?;
    let source = ledger_source(
        args.ledger.as_deref(),
        args.ledger_dir.as_deref(),
        &ledger_config,
        &gate.root,
        repo.repo_dir.as_deref(),
    )?;
    let start = match &source {
        LedgerSource::Git { repo, branch } => recording::prepare_git_ledger(repo, branch)
            .with_context(|| format!("cannot open the ledger {}", source.describe()))?,
        LedgerSource::Dir(_) => LedgerStart::Existing,
    };
    let mut ledger = open_ledger(&source, LedgerOptions::default())
        .with_context(|| format!("cannot open the ledger {}", source.describe()))?;
    if let Some(pinned) = &ledger_config.origin {
        check_pinned_origin(ledger.as_ref(), pinned, &source)?;
    }
    if args.since_ledger {
        let last = last_record_commit(ledger.as_ref())
            .with_context(|| format!("cannot read the last record of {}", source.describe()))?;
        if let (Some(commit), Some(changed)) = (last, settings.changed.as_mut()) {
            writeln!(
                std::io::stderr().lock(),
                "relgate record: recording every change since {}, the last commit the ledger \
                 covers",
                commit.get(..12).unwrap_or(&commit)
            )?;
            changed.base = Some(commit);
        }
    }

    let mut report = gate::check_opened(&gate, &settings)?;
    let changes = range_changes(&gate, &settings, &repo)?;

    let mut run = RunFacts::new(
        &gate,
        &report,
        repo,
        pull_request,
        ci_run_url,
        settings.now.clone(),
    );
    // Pull-request facts from GitHub belong to the pushed head's merge only; a manifest whose
    // last change came with an earlier commit of the range is not recorded with them.
    run.pull_request_commit = github
        .as_ref()
        .map(|_| run.repo.git.commit.clone())
        .filter(|c| !c.is_empty());
    run.changes = changes;
    if pr_context.is_some() {
        decide_without_borrowed_approvals(&mut gate, &settings, &run, &mut report)?;
    }
    print_report(&report, &args.check, color)?;
    let where_to = ledger.source().describe();
    let mut err = std::io::stderr().lock();
    match (&start, &source) {
        (LedgerStart::FromRemote { remote_ref, commit }, _) => writeln!(
            err,
            "relgate record: continuing the ledger of {remote_ref} (commit {})",
            commit.get(..12).unwrap_or(commit)
        )?,
        (LedgerStart::New, LedgerSource::Git { branch, .. }) if !report.results.is_empty() => {
            writeln!(
                err,
                "relgate record: starting a new ledger on {branch}: neither {branch} nor \
                 origin/{branch} exists here (if the ledger exists elsewhere, fetch it first: \
                 git fetch origin {branch}:{branch})"
            )?
        }
        _ => {}
    }
    // Built in parallel (each is a few serializations of one result), reported in order.
    let built: Vec<_> = {
        use rayon::prelude::*;
        report
            .results
            .par_iter()
            .map(|result| recording::record_input(result, &run))
            .collect()
    };
    // The kept manifests and policy inputs are not needed past this point; they are freed on
    // another thread while the ledger is written (see `drop_elsewhere`).
    drop_elsewhere(
        report
            .results
            .iter_mut()
            .map(|r| (r.manifest.take(), r.input.take()))
            .collect::<Vec<_>>(),
    );
    let mut inputs = Vec::with_capacity(built.len());
    for built in built {
        let input = match built {
            Ok(input) => {
                if input.pull_request.is_none() && run.pull_request.is_some() {
                    writeln!(
                        err,
                        "relgate record: {} was last changed before the pushed head {}: \
                         recorded without the pull request of the head",
                        input.manifest_path,
                        run.repo
                            .git
                            .commit
                            .get(..12)
                            .unwrap_or(&run.repo.git.commit)
                    )?;
                }
                input
            }
            Err(not) => {
                writeln!(
                    err,
                    "relgate record: not recorded: {} (document {}): {}",
                    not.file, not.document, not.reason
                )?;
                continue;
            }
        };
        inputs.push(input);
    }
    // All of a run's records at once: on a git branch packfiles and one move of the branch
    // (all or nothing), so recording costs O(1) per decision however large the ledger is.
    let mut receipts: Vec<AppendReceipt> = Vec::new();
    let mut failed = false;
    if let Err(e) = ledger.append_all(&inputs, &signer, &mut receipts) {
        let kept = match receipts.len() {
            0 => "no record of this run was appended".to_owned(),
            n => format!("the first {n} were appended"),
        };
        let what = match inputs.as_slice() {
            [one] => format!("the record of {}", one.manifest_path),
            all => format!("the {} records of this run", all.len()),
        };
        writeln!(
            err,
            "relgate record: error: cannot append {what} to {where_to} ({kept}): {e}"
        )?;
        failed = true;
    }
    match receipts.last() {
        Some(last) => {
            let commit = last
                .commit
                .as_deref()
                .map(|c| format!(" (commit {})", c.get(..12).unwrap_or(c)))
                .unwrap_or_default();
            writeln!(
                err,
                "relgate record: appended {} signed by key {} to {where_to}{commit}",
                seq_range(&receipts),
                signer.key_id()
            )?;
            writeln!(
                err,
                "relgate record: checkpoint: {} records, ledger {}",
                last.seq, last.origin
            )?;
            if let LedgerSource::Git { branch, repo } = &source {
                writeln!(
                    err,
                    "relgate record: publish it with: git push origin {branch}"
                )?;
                if let Some(hint) = crate::record::housekeeping::hint_for(repo) {
                    writeln!(err, "relgate record: hint: {hint}")?;
                }
            }
        }
        None => writeln!(err, "relgate record: no records appended to {where_to}")?,
    }
    drop(err);
    drop_elsewhere(inputs);
    let publish_failed = match &github {
        Some(github) => super::github::publish(
            github,
            &report,
            &args.check,
            &gate,
            pr_context,
            &settings.now,
        )?,
        None => false,
    };
    if failed {
        writeln!(
            std::io::stderr().lock(),
            "relgate record: exit 2: not every decision was recorded (run `relgate verify`)"
        )?;
        return Ok(ExitStatus::Error);
    }
    if publish_failed {
        return Ok(ExitStatus::Error);
    }
    Ok(report.decision.into())
}

// ---------------------------------------------------------------------------------------------
// verify
// ---------------------------------------------------------------------------------------------

/// The gate root for commands that do not evaluate: from `--config`, else found from the
/// current directory.
fn gate_root(config: Option<&Path>) -> anyhow::Result<GateRoot> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let root = match config.and_then(Path::parent) {
        Some(dir) if !dir.as_os_str().is_empty() => GateRoot::at(dir),
        _ => GateRoot::discover(&cwd, &cwd),
    };
    root.with_context(|| format!("cannot find the gate root from {}", cwd.display()))
}

/// What `verify` and `export` read, resolved from their shared options.
pub(super) struct Selected {
    /// The ledger (`None` when not asked for: `verify --envelopes`).
    pub source: Option<LedgerSource>,
    /// Where the trusted keys came from.
    pub keys_dir: PathBuf,
    /// The trusted keys.
    pub keys: TrustedKeys,
    /// The text of the older checkpoint given with `--checkpoint`.
    pub old_checkpoint: Option<String>,
    /// What the completeness check needs (`verify`): the repository, its gate root and
    /// configuration; `None` outside git or without a ledger to read.
    pub recorded: Option<RecordedRepo>,
    /// `ledger.origin` of relgate.yaml: the origin the ledger must have.
    pub pinned_origin: Option<String>,
}

/// The repository a ledger records, for the completeness check.
pub(super) struct RecordedRepo {
    /// Its work tree (or git directory).
    pub repo_dir: PathBuf,
    /// The paths whose changes need a record.
    pub watched: crate::record::completeness::WatchedPaths,
}

impl RecordedRepo {
    /// The completeness check against `branch` (default: see
    /// [`crate::record::verify::CompletenessSpec::branch`]).
    fn spec(&self, branch: Option<&str>) -> crate::record::verify::CompletenessSpec {
        crate::record::verify::CompletenessSpec {
            repo: self.repo_dir.clone(),
            branch: branch.map(str::to_owned),
            watched: self.watched.clone(),
        }
    }
}

/// With `ledger.origin` pinned, `record` appends only to that ledger: one without records, or
/// with another origin, is a ledger deleted or emptied by a push (no key needed), and starting
/// it afresh would hide what it held.
fn check_pinned_origin(
    ledger: &dyn crate::record::Ledger,
    pinned: &str,
    source: &LedgerSource,
) -> anyhow::Result<()> {
    let state = ledger
        .state()
        .with_context(|| format!("cannot read the ledger {}", source.describe()))?;
    match state {
        Some(state) if state.origin == pinned => Ok(()),
        Some(state) => anyhow::bail!(
            "the ledger {} is {:?}, but relgate.yaml pins ledger.origin {pinned:?}: it was \
             replaced; restore the pinned ledger (git push origin <its last commit>:<branch>), \
             or change ledger.origin in a reviewed change of relgate.yaml",
            source.describe(),
            state.origin
        ),
        None => anyhow::bail!(
            "the ledger {} has no records, but relgate.yaml pins ledger.origin {pinned:?}: \
             the ledger was deleted or emptied; restore it (git push origin <its last \
             commit>:<branch>) instead of starting a new one, or remove ledger.origin in a \
             reviewed change of relgate.yaml",
            source.describe()
        ),
    }
}

/// Resolves the ledger (when `with_source`), the trusted keys and the older checkpoint of the
/// options `verify` and `export` share. Without a usable key directory nothing can be
/// verified: an error (exit 2).
pub(super) fn select(sel: &LedgerSelection, with_source: bool) -> anyhow::Result<Selected> {
    let root = gate_root(sel.config.as_deref())?;
    let mut recorded = None;
    let mut pinned_origin = None;
    let source = if with_source {
        let config = GateConfig::load(&root, sel.config.as_deref(), None)?;
        let ledger_config = LedgerConfig::from_config(&config, &root);
        pinned_origin = ledger_config.origin.clone();
        let repo_dir = git2::Repository::discover(&root.dir).ok().map(|r| {
            let dir = r.workdir().unwrap_or_else(|| r.path());
            std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
        });
        if let Some(dir) = &repo_dir {
            let root_dir = std::fs::canonicalize(&root.dir).unwrap_or_else(|_| root.dir.clone());
            let prefix = match root_dir.strip_prefix(dir) {
                Ok(rel) if rel.as_os_str().is_empty() => String::new(),
                Ok(rel) => format!("{}/", rel.to_string_lossy().replace('\\', "/")),
                Err(_) => String::new(),
            };
            let mut configs = vec![crate::workspace::CONFIG_FILE.to_owned()];
            configs.extend(config.file.clone());
            let watched = crate::record::completeness::WatchedPaths::new(
                &prefix,
                &config.manifests,
                &configs,
                &config.policies,
            )
            .map_err(anyhow::Error::msg)?;
            recorded = Some(RecordedRepo {
                repo_dir: dir.clone(),
                watched,
            });
        }
        Some(ledger_source(
            sel.ledger.as_deref(),
            sel.ledger_dir.as_deref(),
            &ledger_config,
            &root,
            repo_dir.as_deref(),
        )?)
    } else {
        None
    };
    let keys_dir = match &sel.keys {
        Some(dir) => dir.clone(),
        None => {
            // The repository's own key directory is what its commits hold: a symbolic link
            // (`.relgate` or `.relgate/keys`) would make the trust root whatever it points at,
            // changing without a commit. An explicit --keys is the caller's own choice.
            let mut at = root.dir.clone();
            for part in Path::new(DEFAULT_KEYS_DIR).components() {
                at.push(part);
                if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
                    anyhow::bail!(
                        "{} is a symbolic link; the trusted keys are read only from the \
                         repository's own {DEFAULT_KEYS_DIR} directory: replace the link with \
                         the directory, or pass --keys DIR",
                        at.display()
                    );
                }
            }
            root.dir.join(DEFAULT_KEYS_DIR)
        }
    };
    if !keys_dir.is_dir() {
        anyhow::bail!(
            "no trusted keys: {} is not a directory; pass --keys DIR with the public keys \
             (*.pem) whose records you trust",
            keys_dir.display()
        );
    }
    let keys = TrustedKeys::load_dir(&keys_dir).with_context(|| {
        format!(
            "cannot load the trusted keys of {} (it may hold only public keys)",
            keys_dir.display()
        )
    })?;
    let old_checkpoint = match &sel.checkpoint {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the checkpoint {}", path.display()))?,
        ),
        None => None,
    };
    Ok(Selected {
        source,
        keys_dir,
        keys,
        old_checkpoint,
        recorded,
        pinned_origin,
    })
}

/// The program to run a ledger's history checks in ([`VerifyOptions::history_process`]):
/// this one. `None` (a thread) when the running executable cannot be named.
pub(super) fn history_process() -> Option<std::path::PathBuf> {
    std::env::current_exe().ok()
}

/// `relgate verify`.
pub fn verify(args: VerifyArgs, color: bool) -> anyhow::Result<ExitStatus> {
    let selected = select(&args.selection, args.envelopes.is_none())?;
    let options = VerifyOptions {
        check_history: !args.no_history,
        check_reflog: !args.no_history,
        strict_signatures: args.strict_signatures,
        completeness: selected
            .recorded
            .as_ref()
            .map(|r| r.spec(args.default_branch.as_deref())),
        expected_origin: selected.pinned_origin.clone(),
        history_process: history_process(),
        ..VerifyOptions::default()
    };
    let old = selected.old_checkpoint.as_deref();
    let report = match (&args.envelopes, &selected.source) {
        (Some(envelopes), _) => verify_envelopes_with(envelopes, &selected.keys, old, &options),
        (None, Some(source)) => verify_ledger_with(source, &selected.keys, old, &options),
        (None, None) => anyhow::bail!("no ledger to verify"),
    };
    let text = match args.format {
        VerifyFormat::Json => {
            let mut text = serde_json::to_string_pretty(&report)?;
            text.push('\n');
            text
        }
        VerifyFormat::Text => output::verify::render(&report, &selected.keys_dir, color),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    if let (None, Some(LedgerSource::Git { repo, .. })) = (&args.envelopes, &selected.source) {
        if let Some(hint) = crate::record::housekeeping::hint_for(repo) {
            writeln!(std::io::stderr().lock(), "relgate verify: hint: {hint}")?;
        }
    }
    if let Some(path) = &args.save_checkpoint {
        match &report.checkpoint_text {
            Some(checkpoint) => std::fs::write(path, checkpoint)
                .with_context(|| format!("cannot write {}", path.display()))?,
            None => writeln!(
                std::io::stderr().lock(),
                "relgate verify: no verified checkpoint to save in {}",
                path.display()
            )?,
        }
    }
    Ok(report.status.into())
}
