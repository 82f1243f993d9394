//! `relgate check`: from paths to a [`Report`]. Owns the check pipeline (ARCHITECTURE.md):
//! discover files, load documents, validate them against their schema, build each policy input
//! ([`input`]), evaluate the compiled policy set in parallel (one engine clone per worker), and
//! decide.
//!
//! - [`rules`]: which configuration and policies judge the run, and where the gate root is;
//!   under `--changed` the merge base's unless `--rules head`. [`GateRules`] says which, and
//!   the report carries it.
//! - [`select`]: which manifests a `--changed` run checks, given the git range that
//!   [`crate::changed`] computes.
//! - [`input`]: the policy input document, as typed structs.
//!
//! Invariant: every discovered file appears in the report, as results or as an error; nothing
//! is skipped silently. Errors of the git range ([`crate::changed::ChangedError`]) become the
//! library's [`Error`] here, at the boundary of the pipeline.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rayon::prelude::*;
use serde_json::Value;

use crate::changed::{ChangeSet, ChangedError, ChangedOptions};
use crate::config::GateConfig;
use crate::error::{Error, Result};
use crate::evidence::slo;
use crate::field_path;
use crate::manifest::{self, Document, SourceFile};
use crate::policy::{self, PolicyOptions, PolicySet};
use crate::report::{Exception, Finding, ManifestResult, Report, RulesUsed, Waiver};
use crate::schema;
use crate::workspace::{self, Discovered, GateRoot};

pub(crate) mod input;
pub mod rules;
mod select;

pub(crate) use input::GitContext;
use rules::{load_rules, plan_rules, LoadedRules};
pub(crate) use rules::{GateRules, RulesPlan};

/// The git range's errors, at the boundary of the pipeline: `changed` knows nothing of the
/// library's error type.
impl From<ChangedError> for Error {
    fn from(err: ChangedError) -> Self {
        Error::Changed(Box::new(err))
    }
}

/// Everything `check` needs, resolved from the command line and the environment by the CLI.
#[derive(Debug, Clone, Default)]
pub struct CheckSettings {
    /// Manifest files or directories; empty: the config's `manifests` globs.
    pub paths: Vec<PathBuf>,
    /// Directory the gate root is searched from when no path is given.
    pub cwd: PathBuf,
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--policy` directories (added to the config's `policies`).
    pub policy_dirs: Vec<PathBuf>,
    /// `--data` files.
    pub data_files: Vec<PathBuf>,
    /// `--namespace` packages.
    pub namespaces: Vec<String>,
    pub fail_on_warn: bool,
    /// `--max-file-bytes` (overrides config).
    pub max_file_bytes: Option<u64>,
    /// Limit of one policy evaluation.
    pub eval_timeout: Option<Duration>,
    /// `context.now` (RFC 3339 UTC).
    pub now: String,
    /// Parse team policies as Rego v0.
    pub rego_v0: bool,
    /// `--offline`: query no Prometheus; those SLOs become unknown.
    pub offline: bool,
    /// `--prometheus-timeout`: limit of one Prometheus request (default 5 s).
    pub prometheus_timeout: Option<Duration>,
    /// `--changed [--base REV] [--head REV]`: check only what the change touches
    /// (docs/changed.md).
    pub changed: Option<ChangedOptions>,
    /// The pull-request context (`input.context.pull_request`, docs/approvals.md), from
    /// `--pr-json` or the GitHub integration; `None` without one (approvals not evaluated).
    /// Validated by [`Gate::open`].
    pub pull_request: Option<Value>,
    /// Policy bundles (`bundles:` of relgate.yaml, docs/bundles.md): cache, auth, tag policy.
    pub bundles: crate::bundle::gate::BundleSettings,
}

/// From this many documents on, the bundle is compiled for the RVM (a few milliseconds, paid
/// back after about ten evaluations); smaller runs evaluate on the interpreter.
const RVM_MIN_DOCUMENTS: usize = 16;

/// A file read and split into documents, or why it could not be.
type LoadOutcome = std::result::Result<(SourceFile, Vec<Document>), manifest::InputError>;

/// Everything loaded once per run: root, config, compiled policies, git facts.
pub struct Gate {
    pub(crate) root: GateRoot,
    pub(crate) config: GateConfig,
    pub policies: PolicySet,
    /// Keep each result's manifest and policy input ([`Gate::keep_evaluated`]).
    keep_evaluated: bool,
    /// `context.git`.
    git: Option<GitContext>,
    now: String,
    fail_on_warn: bool,
    slo: slo::Options,
    /// The verified policy bundles this run loaded (docs/bundles.md).
    bundles: crate::bundle::gate::Loaded,
    /// `context.pull_request`: the validated context, or null.
    pull_request: Value,
    /// Where `config` and `policies` came from (docs/changed.md, "The gate's own files").
    pub(crate) rules: GateRules,
}

impl Gate {
    /// Resolves the gate root, loads the config and compiles the policies. With `--changed`
    /// the configuration and policies are the merge base's unless `--rules head`
    /// ([`rules::plan_rules`]).
    pub fn open(settings: &CheckSettings) -> Result<Self> {
        let (root, plan) = plan_rules(settings)?;
        Self::open_with(root, &plan, settings)
    }

    /// [`Gate::open`] with the rules (relgate.yaml, policies) of the merge base of `base` and
    /// HEAD, for a whole-tree check of a pull request (GitHub mode without `--changed`): the
    /// pull request must not be judged by its own edits to them (docs/changed.md).
    pub(crate) fn open_base_rules(settings: &CheckSettings, base: &str) -> Result<Self> {
        let (root, plan) = rules::base_plan(settings, base)?;
        Self::open_with(root, &plan, settings)
    }

    /// [`Gate::open`] at a known gate root (the head's files), with the rules `plan` says.
    fn open_with(root: GateRoot, plan: &RulesPlan, settings: &CheckSettings) -> Result<Self> {
        let LoadedRules {
            mut config,
            mut sources,
            rules,
            root: rules_root,
        } = load_rules(&root, plan, settings)?;
        // Policy bundles (docs/bundles.md): named by the config that decides, their keys read
        // from the same side; verified, then their config fragment is merged over that config
        // before anything reads it.
        let mut bundles = crate::bundle::gate::load(
            &rules_root,
            &mut config,
            &settings.bundles,
            settings.offline,
        )?;
        // A malformed context must stop the run, not make the approval rules silently miss.
        if let Some(context) = &settings.pull_request {
            crate::pull_request::validate(context, "pull-request context")?;
        }

        // `--policy` and `--data` are the operator's (the command line is trusted): read as
        // given, whichever side's rules decide. Each file is read once by real path
        // (`policy::read_policy_dirs`); a `--policy` file whose name is already among the
        // config's sources (the same directory named twice, or under base rules the head's copy
        // of a directory the base config names) is the same policy file and is not loaded twice:
        // two modules of one name would make the engine's rule lookup fail.
        let operator =
            policy::read_policy_dirs(Some(&root), &settings.policy_dirs, &|p| root.relative(p))?;
        for source in operator {
            if !sources.iter().any(|s| s.path == source.path) {
                sources.push(source);
            }
        }
        for source in &mut sources {
            source.v0 = settings.rego_v0;
        }
        // Bundle Rego is always v1, so it joins after the v0 switch.
        sources.append(&mut bundles.sources);
        let mut data = std::mem::take(&mut bundles.data);
        for file in &settings.data_files {
            data.push(policy::read_data_file(
                file,
                &root.relative(file),
                config.max_file_bytes,
            )?);
        }
        let mut namespaces = config.namespaces.clone();
        namespaces.extend(settings.namespaces.iter().cloned());
        namespaces.sort();
        namespaces.dedup();
        let policies = PolicySet::load(&PolicyOptions {
            sources,
            data,
            config: config.merged.clone(),
            namespaces,
            timeout: settings.eval_timeout,
            include_tests: false,
        })?;
        let mut slo_options = slo::Options {
            offline: settings.offline,
            request_timeout: settings
                .prometheus_timeout
                .unwrap_or(slo::DEFAULT_REQUEST_TIMEOUT),
            time: Some(settings.now.clone()).filter(|now| !now.is_empty()),
            max_body_bytes: config.max_file_bytes,
            ..slo::Options::default()
        };
        // Allowed Prometheus URLs and reading-file age bounds (error_budget.*): a setting
        // relgate cannot use stops the run (exit 2) rather than loosening the gate.
        slo_options
            .configure(&config.merged)
            .map_err(|message| Error::Config {
                path: config
                    .file
                    .clone()
                    .unwrap_or_else(|| workspace::CONFIG_FILE.to_string()),
                details: format!("  {message}"),
            })?;
        Ok(Self {
            git: input::git_context(&root),
            keep_evaluated: false,
            root,
            config,
            policies,
            now: settings.now.clone(),
            fail_on_warn: settings.fail_on_warn,
            slo: slo_options,
            pull_request: settings.pull_request.clone().unwrap_or(Value::Null),
            rules,
            bundles,
        })
    }

    /// The policy bundles loaded for this run (reference, verified digest, signing key), in
    /// config order: the hook for change records and reports.
    pub(crate) fn bundles(&self) -> &[crate::bundle::gate::LoadedBundle] {
        &self.bundles.bundles
    }

    /// Sets `context.git` (a check of a commit's tree outside the repository).
    fn set_git_context(&mut self, git: GitContext) {
        self.git = Some(git);
    }

    /// Makes every [`ManifestResult`] keep what was evaluated: the manifest document and the
    /// policy input (evidence digests, SLO readings), for change records. Off by default: a
    /// plain check does not hold every input in memory.
    pub(crate) fn keep_evaluated(&mut self) {
        self.keep_evaluated = true;
    }

    /// Sets `input.context.pull_request` for the documents checked from now on. For callers
    /// that read the pull request after opening the gate, because what they read depends on
    /// the loaded config (the teams named under `approvals`).
    /// The context is validated like `--pr-json`'s: a malformed one stops the run.
    pub(crate) fn set_pull_request(&mut self, pull_request: Option<Value>) -> Result<()> {
        if let Some(context) = &pull_request {
            crate::pull_request::validate(context, "pull-request context")?;
        }
        self.pull_request = pull_request.unwrap_or(Value::Null);
        Ok(())
    }

    /// Whether the approval rules had pull-request facts to work on.
    pub(crate) fn approvals_evaluated(&self) -> bool {
        !self.pull_request.is_null()
    }

    /// Files to check: the given paths, or the config's globs.
    pub fn discover(&self, paths: &[PathBuf]) -> Result<Vec<Discovered>> {
        let mut found = if paths.is_empty() {
            workspace::discover_globs(&self.root, &self.config.manifests)?
        } else {
            workspace::discover_paths(&self.root, paths)
        };
        // The gate's own config is not a manifest, even when a walked directory holds it.
        found.retain(|d| d.shown() != workspace::CONFIG_FILE);
        Ok(found)
    }

    /// Checks the discovered files, in parallel.
    pub fn check_files(&self, files: &[Discovered]) -> Vec<ManifestResult> {
        let loaded: Vec<(String, LoadOutcome)> = files
            .par_iter()
            .map(|found| (found.shown().to_string(), self.load(found)))
            .collect();
        let mut results = Vec::new();
        let mut work: Vec<(&SourceFile, &Document)> = Vec::new();
        for (shown, outcome) in &loaded {
            match outcome {
                Ok((source, documents)) => work.extend(documents.iter().map(|d| (source, d))),
                Err(error) => results.push(ManifestResult::error(
                    shown,
                    error.document.unwrap_or(0),
                    error.line.unwrap_or(1),
                    None,
                    error.to_string(),
                )),
            }
        }
        // Evidence that needs I/O is gathered for all documents at once, before evaluation.
        let manifests: Vec<&Value> = work.iter().map(|(_, document)| &document.value).collect();
        let slo_readings: Vec<Value> = slo::gather_blocking(&self.root, &manifests, &self.slo)
            .iter()
            .map(|readings| slo::to_value(readings))
            .collect();
        let jobs: Vec<_> = work.into_iter().zip(slo_readings).collect();
        // A few chunks per thread, each evaluated with one clone of the policy set: rayon's
        // `map_init` would clone (and build a VM) once per split job, far more often.
        let chunk = jobs
            .len()
            .div_ceil(rayon::current_num_threads().max(1) * 4)
            .max(1);
        let mut run_policies = self.policies.clone();
        if jobs.len() >= RVM_MIN_DOCUMENTS {
            run_policies.compile_rvm();
        }
        let checked: Vec<Vec<ManifestResult>> = jobs
            .par_chunks(chunk)
            .map(|chunk| {
                let mut policies = run_policies.clone();
                chunk
                    .iter()
                    .map(|((source, document), slo)| {
                        self.check_document(&mut policies, source, document, slo.clone())
                    })
                    .collect()
            })
            .collect();
        results.extend(checked.into_iter().flatten());
        results
    }

    fn load(&self, found: &Discovered) -> LoadOutcome {
        match found {
            Discovered::Problem { shown, error } => {
                Err(manifest::InputError::new(shown, None, error.to_string()))
            }
            Discovered::File { path, shown } => {
                let mut source = manifest::read_limited(path, shown, self.config.max_file_bytes)?;
                let documents = manifest::parse_documents(&source)?;
                // The digest is taken; the bytes are not needed any more and would otherwise
                // stay in memory for every file of the run.
                source.bytes = Vec::new();
                Ok((source, documents))
            }
        }
    }

    /// Validates and evaluates one document.
    fn check_document(
        &self,
        policies: &mut PolicySet,
        source: &SourceFile,
        document: &Document,
        slo: Value,
    ) -> ManifestResult {
        let manifest = &document.value;
        let text = |pointer: &str| manifest.pointer(pointer).map(value_text);
        let mut result = ManifestResult::error(
            &source.path,
            document.index,
            document.lines.start_line(),
            Some(source.digest.clone()),
            String::new(),
        );
        result.kind = text("/kind");
        result.name = text("/metadata/name");
        result.version = text("/metadata/version");
        result.error = None;
        let kind = match identify(manifest) {
            Ok(kind) => kind,
            Err(message) => {
                if self.keep_evaluated {
                    result.manifest = Some(manifest.clone());
                }
                result.error = Some(format!("{}:{}: {message}", source.path, result.line));
                result.decide(self.fail_on_warn);
                return result;
            }
        };
        match schema::validate(kind, manifest, &document.lines) {
            Ok(violations) if !violations.is_empty() => {
                result.findings = violations
                    .into_iter()
                    .map(|v| Finding {
                        rule: "SCHEMA".to_string(),
                        severity: crate::report::Severity::Deny,
                        policy: "relgate.schema".to_string(),
                        message: v.message,
                        path: Some(v.path).filter(|p| !p.is_empty()),
                        line: v.line,
                        item: None,
                        remediation: Some(format!(
                            "fix the field as the message says; `relgate schema {kind}` prints the full schema"
                        )),
                    })
                    .collect();
                result.notes.push(
                    "policies were not evaluated: the manifest does not match its schema; fix the SCHEMA findings first"
                        .to_string(),
                );
            }
            Ok(_) => {
                let evaluated = self
                    .input(source, document, slo)
                    .map_err(|err| err.to_string())
                    .and_then(|input| {
                        result.input = self.keep_evaluated.then(|| input.clone());
                        policies.evaluate(regorus::Value::from(input))
                    });
                match evaluated {
                    Ok(evaluation) => {
                        let to_finding = |f: policy::PolicyFinding| {
                            let path = f.path.as_deref().map(|p| {
                                field_path::parse(p)
                                    .map(|s| field_path::render(&s))
                                    .unwrap_or_else(|| p.to_string())
                            });
                            Finding {
                                line: path
                                    .as_deref()
                                    .map_or(result.line, |p| document.lines.line_of(p)),
                                rule: f.rule,
                                severity: f.severity,
                                policy: f.policy,
                                message: f.message,
                                path,
                                item: f.item,
                                remediation: f.remediation,
                            }
                        };
                        result.findings = evaluation.findings.into_iter().map(to_finding).collect();
                        result.exceptions = evaluation
                            .suppressed
                            .into_iter()
                            .map(|s| Exception {
                                finding: to_finding(s.finding),
                                exception: s.exception,
                                exception_policy: s.exception_policy,
                            })
                            .collect();
                    }
                    Err(message) => result.error = Some(message),
                }
            }
            Err(message) => result.error = Some(format!("internal schema error: {message}")),
        }
        // A kept policy input holds the manifest as `input.manifest` (the records read it
        // there), so a second copy is kept only where no policy input was built.
        if self.keep_evaluated && result.input.is_none() {
            result.manifest = Some(manifest.clone());
        }
        result.waivers = waivers(manifest, document);
        result.decide(self.fail_on_warn);
        result
    }
}

/// The schema kind of a document, or why it is not a relgate manifest.
fn identify(manifest: &Value) -> std::result::Result<&'static str, String> {
    let api_version = manifest.get("apiVersion");
    if api_version.and_then(Value::as_str) != Some(schema::API_VERSION) {
        return Err(match api_version {
            None => format!(
                "missing `apiVersion`; a release manifest starts with `apiVersion: {}`",
                schema::API_VERSION
            ),
            Some(v) => format!(
                "apiVersion {v} is not supported; expected `{}`",
                schema::API_VERSION
            ),
        });
    }
    match manifest.get("kind").and_then(Value::as_str) {
        Some("ModelRelease") => Ok("ModelRelease"),
        Some("PromptRelease") => Ok("PromptRelease"),
        Some("GateConfig") => Err("kind GateConfig is a gate configuration, not a release manifest; keep it in relgate.yaml or leave it out of the checked paths".to_string()),
        Some(other) => Err(format!("unknown kind `{other}`; expected ModelRelease or PromptRelease")),
        None => Err("missing `kind`; expected ModelRelease or PromptRelease".to_string()),
    }
}

/// A scalar as report text (a version written as a number still shows as written).
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn waivers(manifest: &Value, document: &Document) -> Vec<Waiver> {
    let Some(items) = manifest.pointer("/spec/prr").and_then(Value::as_object) else {
        return Vec::new();
    };
    items
        .iter()
        .filter(|(_, entry)| entry.get("status").and_then(Value::as_str) == Some("waived"))
        .map(|(item, entry)| {
            let waiver = entry.get("waiver");
            let field = |name: &str| waiver.and_then(|w| w.get(name)).map(value_text);
            Waiver {
                item: item.clone(),
                approver: field("approver"),
                expires: field("expires"),
                reason: field("reason"),
                line: document.lines.line_of_segments(&[
                    field_path::Segment::Key("spec".into()),
                    field_path::Segment::Key("prr".into()),
                    field_path::Segment::Key(item.clone()),
                ]),
            }
        })
        .collect()
}

/// The steps of [`check`] after [`Gate::open`]: discover, check, report. For callers that
/// need the opened gate before or after deciding (`relgate record` resolves its ledger first
/// and builds records from the gate's root and policies afterwards).
///
/// With `--changed`, the head must be what is checked out (the gate reads the work tree);
/// [`check`] also handles another head commit.
pub(crate) fn check_opened(gate: &Gate, settings: &CheckSettings) -> Result<Report> {
    if let Some(options) = &settings.changed {
        let set = ChangeSet::compute(&gate.root, options)?;
        if set.reads_commit {
            return Err(Error::Usage(format!(
                "--head {} is not the checked-out commit, and this command reads the work tree; \
                 check it out first (`git checkout {}`), or leave out --head",
                set.range.head, set.range.head
            )));
        }
        return select::check_change(gate, settings, &settings.paths, &set)
            .map(|report| with_approvals_flag(gate, report));
    }
    let files = gate.discover(&settings.paths)?;
    let results = gate.check_files(&files);
    let mut notes = Vec::new();
    if settings.paths.is_empty() {
        notes.push(format!(
            "manifests selected by {}",
            gate.config.manifests.join(", ")
        ));
    }
    let report = Report::new(gate.policies.digest.clone(), results, notes);
    Ok(with_approvals_flag(gate, report))
}

/// Every report says whether the approval rules had pull-request facts, and a `--changed`
/// report where its rules came from; one place sets both so no path through the check (plain,
/// `--changed`, another head commit) can forget them.
fn with_approvals_flag(gate: &Gate, mut report: Report) -> Report {
    report.approvals_evaluated = gate.approvals_evaluated();
    if report.changed.is_some() || gate.rules.commit.is_some() {
        report.rules = Some(RulesUsed {
            from: gate.rules.from,
            commit: gate.rules.commit.clone(),
        });
        report.notes.extend(gate.rules.notes.iter().cloned());
    }
    report.repository_prefix = repository_prefix(&gate.root.dir);
    report
}

/// `dir`'s path inside the git work tree holding it, `/`-separated (`ml/gate`); empty at the
/// top of the work tree, outside git, or when it cannot be told (then paths stay
/// gate-root-relative, as before).
pub(crate) fn repository_prefix(dir: &Path) -> String {
    let Ok(repo) = git2::Repository::discover(dir) else {
        return String::new();
    };
    let Some(work_tree) = repo.workdir().and_then(|w| w.canonicalize().ok()) else {
        return String::new();
    };
    let Ok(dir) = dir.canonicalize() else {
        return String::new();
    };
    match dir.strip_prefix(&work_tree) {
        Ok(rel) => rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/"),
        Err(_) => String::new(),
    }
}

/// Runs a whole check.
pub fn check(settings: &CheckSettings) -> Result<Report> {
    if let Some(options) = &settings.changed {
        let (work_root, plan) = plan_rules(settings)?;
        let set = ChangeSet::compute(&work_root, options)?;
        if set.reads_commit {
            // `--head` is another commit: the gate reads that commit's tree, written out.
            let tree = set.materialize()?;
            let paths: Vec<PathBuf> = settings
                .paths
                .iter()
                .map(|p| set.map_to_tree(&tree, &settings.cwd, p))
                .collect();
            let mut gate = Gate::open_with(
                GateRoot::at(&tree.root).map_err(|source| Error::Io {
                    path: tree.root.clone(),
                    source,
                })?,
                &plan,
                settings,
            )?;
            gate.set_git_context(GitContext {
                commit: Some(set.range.head_commit.clone()),
                reference: set.head_ref().map(str::to_string),
            });
            return select::check_change(&gate, settings, &paths, &set).map(|report| {
                let mut report = with_approvals_flag(&gate, report);
                // The gate read a copy of the tree in a temp dir: the prefix is the real root's.
                report.repository_prefix = repository_prefix(&work_root.dir);
                report
            });
        }
        let gate = Gate::open_with(work_root, &plan, settings)?;
        return select::check_change(&gate, settings, &settings.paths, &set)
            .map(|report| with_approvals_flag(&gate, report));
    }
    let gate = Gate::open(settings)?;
    check_opened(&gate, settings)
}
