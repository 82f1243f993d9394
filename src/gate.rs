//! `relgate check`: from paths to a [`Report`]. Owns the pipeline of DESIGN §2 for the gate
//! core: discover files, load documents, validate them against their schema, build each
//! policy input, evaluate the compiled policy set in parallel (one engine clone per worker),
//! and decide.
//!
//! Invariant: every discovered file appears in the report, as results or as an error; nothing
//! is skipped silently.

use std::path::PathBuf;
use std::time::Duration;

use rayon::prelude::*;
use serde_json::{json, Value};

use crate::changed::{self, ChangeSet, ChangedOptions};
use crate::config::GateConfig;
use crate::error::{Error, Result};
use crate::evidence::slo;
use crate::field_path;
use crate::manifest::{self, Document, SourceFile};
use crate::policy::{self, PolicyOptions, PolicySet, PolicySource};
use crate::report::{Exception, Finding, ManifestResult, Report, Waiver};
use crate::schema;
use crate::workspace::{self, Discovered, GateRoot};

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
    pub root: GateRoot,
    pub config: GateConfig,
    pub policies: PolicySet,
    /// Keep each result's manifest and policy input ([`Gate::keep_evaluated`]).
    keep_evaluated: bool,
    git: Value,
    now: String,
    fail_on_warn: bool,
    slo: slo::Options,
    /// The verified policy bundles this run loaded (docs/bundles.md).
    bundles: crate::bundle::gate::Loaded,
    /// `context.pull_request`: the validated context, or null.
    pull_request: Value,
}

impl Gate {
    /// Resolves the gate root, loads the config and compiles the policies.
    pub fn open(settings: &CheckSettings) -> Result<Self> {
        Self::open_at(gate_root(settings)?, settings)
    }

    /// [`Gate::open`] at a known gate root.
    fn open_at(root: GateRoot, settings: &CheckSettings) -> Result<Self> {
        let mut config =
            GateConfig::load(&root, settings.config.as_deref(), settings.max_file_bytes)?;
        // Policy bundles (docs/bundles.md): verified, then their config fragment is merged over
        // the repository's config before anything reads it.
        let mut bundles =
            crate::bundle::gate::load(&root, &mut config, &settings.bundles, settings.offline)?;
        // A malformed context must stop the run, not make the approval rules silently miss.
        if let Some(context) = &settings.pull_request {
            crate::pull_request::validate(context, "pull-request context")?;
        }

        let mut sources: Vec<PolicySource> = Vec::new();
        let config_dirs = policy::resolve_dirs(&root.dir, &config.policies);
        for dir in &config_dirs {
            // Config directories are optional (the default names `.relgate/policies`).
            if dir.is_dir() {
                let confined = root.confine_existing(dir, &root.relative(dir))?;
                sources.extend(policy::read_dir_sources(&confined, &|p| root.relative(p))?);
            }
        }
        for dir in &settings.policy_dirs {
            sources.extend(policy::read_dir_sources(dir, &|p| root.relative(p))?);
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
        let slo_options = slo::Options {
            offline: settings.offline,
            request_timeout: settings
                .prometheus_timeout
                .unwrap_or(slo::DEFAULT_REQUEST_TIMEOUT),
            time: Some(settings.now.clone()).filter(|now| !now.is_empty()),
            max_body_bytes: config.max_file_bytes,
            ..slo::Options::default()
        };
        Ok(Self {
            git: git_context(&root),
            keep_evaluated: false,
            root,
            config,
            policies,
            now: settings.now.clone(),
            fail_on_warn: settings.fail_on_warn,
            slo: slo_options,
            pull_request: settings.pull_request.clone().unwrap_or(Value::Null),
            bundles,
        })
    }

    /// The policy bundles loaded for this run (reference, verified digest, signing key), in
    /// config order: the hook for change records and reports.
    pub fn bundles(&self) -> &[crate::bundle::gate::LoadedBundle] {
        &self.bundles.bundles
    }

    /// Warnings from loading bundles (a tag resolved with `--allow-bundle-tag`), for the CLI.
    pub fn bundle_warnings(&self) -> &[String] {
        &self.bundles.warnings
    }

    /// Sets `context.git` (a check of a commit's tree outside the repository).
    pub(crate) fn set_git_context(&mut self, git: Value) {
        self.git = git;
    }

    /// Makes every [`ManifestResult`] keep what was evaluated: the manifest document and the
    /// policy input (evidence digests, SLO readings), for change records. Off by default: a
    /// plain check does not hold every input in memory.
    pub fn keep_evaluated(&mut self) {
        self.keep_evaluated = true;
    }

    /// Sets `input.context.pull_request` for the documents checked from now on. For callers
    /// that read the pull request after opening the gate, because what they read depends on
    /// the loaded config (the teams named under `approvals`).
    /// The context is validated like `--pr-json`'s: a malformed one stops the run.
    pub fn set_pull_request(&mut self, pull_request: Option<Value>) -> Result<()> {
        if let Some(context) = &pull_request {
            crate::pull_request::validate(context, "pull-request context")?;
        }
        self.pull_request = pull_request.unwrap_or(Value::Null);
        Ok(())
    }

    /// Whether the approval rules had pull-request facts to work on.
    pub fn approvals_evaluated(&self) -> bool {
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
        let slo_readings = slo::gather_blocking(&self.root, &manifests, &self.slo);
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
        if self.keep_evaluated {
            result.manifest = Some(manifest.clone());
        }

        let kind = match identify(manifest) {
            Ok(kind) => kind,
            Err(message) => {
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
                        severity: "deny".to_string(),
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
                let input = self.input(source, document, slo);
                result.input = self.keep_evaluated.then(|| input.clone());
                match policies.evaluate(regorus::Value::from(input)) {
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
                                severity: f.severity.to_string(),
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
        result.waivers = waivers(manifest, document);
        result.decide(self.fail_on_warn);
        result
    }

    /// The policy input document (docs/policy-contract.md). `slo` is the document's
    /// `evidence.slo` (from [`slo::gather`]).
    pub fn input(&self, source: &SourceFile, document: &Document, slo: Value) -> Value {
        let manifest = &document.value;
        let mut artifacts = Vec::new();
        if manifest.get("kind").and_then(Value::as_str) == Some("PromptRelease") {
            let prompt = manifest.pointer("/spec/prompt");
            let registry = prompt
                .and_then(|p| p.get("registry"))
                .and_then(Value::as_str);
            if registry == Some("git") {
                let written = prompt
                    .and_then(|p| p.get("path"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let declared = prompt
                    .and_then(|p| p.get("digest"))
                    .cloned()
                    .unwrap_or(Value::Null);
                let (digest, error) = match self.root.confine(written) {
                    Ok(path) => {
                        match manifest::read_limited(&path, written, self.config.max_file_bytes) {
                            Ok(file) => (Value::String(file.digest), Value::Null),
                            Err(err) => (Value::Null, Value::String(err.to_string())),
                        }
                    }
                    Err(err) => (Value::Null, Value::String(err.to_string())),
                };
                artifacts.push(json!({
                    "role": "prompt",
                    "path": written,
                    "declared_digest": declared,
                    "digest": digest,
                    "error": error,
                }));
            }
        }
        let evaluations =
            crate::evidence::gather_evaluations(&self.root, manifest, self.config.max_file_bytes);
        let mut input = json!({
            "manifest": manifest,
            "file": {"path": source.path, "digest": source.digest, "document": document.index},
            "evidence": {"artifacts": artifacts, "evaluations": evaluations, "slo": []},
            "context": {
                "now": self.now,
                "today": self.now.get(..10).unwrap_or_default(),
                "git": self.git,
                "pull_request": self.pull_request,
            },
        });
        input["evidence"]["slo"] = slo;
        input
    }
}

/// The gate root of a run: the parent of `--config`, else found from the first path or the
/// current directory.
fn gate_root(settings: &CheckSettings) -> Result<GateRoot> {
    let start = match (&settings.config, settings.paths.first()) {
        (Some(config), _) => config.parent().map(PathBuf::from).unwrap_or_default(),
        (None, Some(path)) => path.clone(),
        (None, None) => settings.cwd.clone(),
    };
    let start = if start.as_os_str().is_empty() {
        settings.cwd.clone()
    } else {
        start
    };
    match &settings.config {
        Some(_) => GateRoot::at(&start),
        None => GateRoot::discover(&start, &settings.cwd),
    }
    .map_err(|source| Error::Io {
        path: start.clone(),
        source,
    })
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

/// `{commit, ref}` of the repository holding the gate root, or null outside git.
fn git_context(root: &GateRoot) -> Value {
    let Ok(repo) = git2::Repository::discover(&root.dir) else {
        return Value::Null;
    };
    let head = repo.head().ok();
    json!({
        "commit": head.as_ref().and_then(|h| h.target()).map(|oid| oid.to_string()),
        "ref": head.as_ref().and_then(|h| h.name().ok().map(str::to_string)),
    })
}

/// The steps of [`check`] after [`Gate::open`]: discover, check, report. For callers that
/// need the opened gate before or after deciding (`relgate record` resolves its ledger first
/// and builds records from the gate's root and policies afterwards).
///
/// With `--changed`, the head must be what is checked out (the gate reads the work tree);
/// [`check`] also handles another head commit.
pub fn check_opened(gate: &Gate, settings: &CheckSettings) -> Result<Report> {
    if let Some(options) = &settings.changed {
        let set = ChangeSet::compute(&gate.root, options)?;
        if set.reads_commit {
            return Err(Error::Usage(format!(
                "--head {} is not the checked-out commit, and this command reads the work tree; \
                 check it out first (`git checkout {}`), or leave out --head",
                set.range.head, set.range.head
            )));
        }
        return changed::check(gate, settings, &settings.paths, &set)
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

/// Every report says whether the approval rules had pull-request facts; one place sets it so
/// no path through the check (plain, `--changed`, another head commit) can forget it.
fn with_approvals_flag(gate: &Gate, mut report: Report) -> Report {
    report.approvals_evaluated = gate.approvals_evaluated();
    report
}

/// Runs a whole check.
pub fn check(settings: &CheckSettings) -> Result<Report> {
    if let Some(options) = &settings.changed {
        let work_root = gate_root(settings)?;
        let set = ChangeSet::compute(&work_root, options)?;
        if set.reads_commit {
            // `--head` is another commit: the gate reads that commit's tree, written out.
            let tree = set.materialize()?;
            let paths: Vec<PathBuf> = settings
                .paths
                .iter()
                .map(|p| set.map_to_tree(&tree, &settings.cwd, p))
                .collect();
            let mut gate = Gate::open_at(
                GateRoot::at(&tree.root).map_err(|source| Error::Io {
                    path: tree.root.clone(),
                    source,
                })?,
                settings,
            )?;
            gate.set_git_context(set.git_context());
            return changed::check(&gate, settings, &paths, &set)
                .map(|report| with_approvals_flag(&gate, report));
        }
        let gate = Gate::open_at(work_root, settings)?;
        return changed::check(&gate, settings, &settings.paths, &set)
            .map(|report| with_approvals_flag(&gate, report));
    }
    let gate = Gate::open(settings)?;
    check_opened(&gate, settings)
}
