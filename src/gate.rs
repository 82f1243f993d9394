//! `relgate check`: from paths to a [`Report`]. Owns the check pipeline (ARCHITECTURE.md) for the gate
//! core: discover files, load documents, validate them against their schema, build each
//! policy input, evaluate the compiled policy set in parallel (one engine clone per worker),
//! and decide.
//!
//! Under `--changed` the configuration and policies are loaded from the merge base unless
//! `--rules head` ([`changed::plan_rules`]); [`GateRules`] says which, and the report carries
//! it.
//!
//! Invariant: every discovered file appears in the report, as results or as an error; nothing
//! is skipped silently.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rayon::prelude::*;
use serde_json::{json, Value};

use crate::changed::{self, ChangeSet, ChangedOptions, RulesPlan};
use crate::config::GateConfig;
use crate::error::{Error, Result};
use crate::evidence::slo;
use crate::field_path;
use crate::manifest::{self, Document, SourceFile};
use crate::policy::{self, PolicyOptions, PolicySet, PolicySource};
use crate::report::{Exception, Finding, ManifestResult, Report, RulesUsed, Waiver};
use crate::schema;
use crate::workspace::{self, Discovered, GateRoot, CONFIG_FILE};

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
    /// Where `config` and `policies` came from (docs/changed.md, "The gate's own files").
    pub rules: GateRules,
}

/// Where a gate's configuration and policies were read from.
#[derive(Debug, Clone)]
pub struct GateRules {
    /// `base` or `head`.
    pub from: &'static str,
    /// The merge-base commit of `from: base`.
    pub commit: Option<String>,
    /// Run notes on the choice (first adoption, a moved gate root, `--rules head`).
    pub notes: Vec<String>,
    /// With base rules: the head's configuration, whose `manifests` globs still select
    /// candidates and whose policy directories are watched for changes.
    pub head_config: Option<GateConfig>,
    /// With base rules: what the change's edits to the gate's own files change in effect, one
    /// line each (empty: no edit with an effect).
    pub edits: Vec<String>,
}

impl GateRules {
    fn head(notes: Vec<String>) -> Self {
        Self {
            from: "head",
            commit: None,
            notes,
            head_config: None,
            edits: Vec::new(),
        }
    }
}

impl Gate {
    /// Resolves the gate root, loads the config and compiles the policies. With `--changed`
    /// the configuration and policies are the merge base's unless `--rules head`
    /// ([`changed::plan_rules`]).
    pub fn open(settings: &CheckSettings) -> Result<Self> {
        let (root, plan) = plan_rules(settings)?;
        Self::open_with(root, &plan, settings)
    }

    /// [`Gate::open`] with the rules (relgate.yaml, policies) of the merge base of `base` and
    /// HEAD, for a whole-tree check of a pull request (GitHub mode without `--changed`): the
    /// pull request must not be judged by its own edits to them (docs/changed.md).
    pub fn open_base_rules(settings: &CheckSettings, base: &str) -> Result<Self> {
        let options = ChangedOptions {
            base: Some(base.to_owned()),
            head: None,
            rules: changed::Rules::Base,
        };
        let (root, plan) = changed::plan_rules(
            gate_root(settings)?,
            &root_start(settings),
            settings.config.as_deref(),
            &settings.cwd,
            &options,
        )?;
        Self::open_with(root, &plan, settings)
    }

    /// [`Gate::open`] at a known gate root (the head's files), with the rules `plan` says.
    fn open_with(root: GateRoot, plan: &RulesPlan, settings: &CheckSettings) -> Result<Self> {
        let head_config =
            GateConfig::load(&root, settings.config.as_deref(), settings.max_file_bytes)?;
        let head_sources = config_sources(&root, &head_config)?;
        let (mut config, mut sources, rules, rules_root) = match plan {
            RulesPlan::Head { note } => (
                head_config,
                head_sources,
                GateRules::head(note.iter().cloned().collect()),
                root.clone(),
            ),
            RulesPlan::Base(base) => {
                let base_root = GateRoot::at(&base.tree.root).map_err(|source| Error::Io {
                    path: base.tree.root.clone(),
                    source,
                })?;
                // The merge base's relgate.yaml is named explicitly, so one that cannot be read
                // is an error, not the defaults; without one (a repository on the defaults)
                // the defaults decide.
                let file = base.config.clone().or_else(|| {
                    let file = base.tree.root.join(CONFIG_FILE);
                    std::fs::symlink_metadata(&file).is_ok().then_some(file)
                });
                let config =
                    GateConfig::load(&base_root, file.as_deref(), settings.max_file_bytes)?;
                let sources = config_sources(&base_root, &config)?;
                let edits = rule_edits(&config, &sources, &head_config, &head_sources);
                let mut notes = vec![format!(
                    "rules: relgate.yaml and policies of the merge base {} (the change's own \
                     take effect after merge; --rules head tries them)",
                    base.commit.get(..12).unwrap_or(&base.commit)
                )];
                notes.extend(base.note.clone());
                let rules = GateRules {
                    from: "base",
                    commit: Some(base.commit.clone()),
                    notes,
                    head_config: Some(head_config),
                    edits,
                };
                (config, sources, rules, base_root)
            }
        };
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
            git: git_context(&root),
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
        result.waivers = waivers(manifest, document);
        result.decide(self.fail_on_warn);
        result
    }

    /// The released files that live in the repository, each with its sha256, for
    /// ARTIFACT-DIGEST and EVAL-PROMPT-MISMATCH (`input.evidence.artifacts`).
    ///
    /// The manifest's `registry` does not decide whether a file is checked: a PR author could
    /// otherwise write `registry: other` beside a repository `path` and ship an unreviewed
    /// prompt. So a prompt (`spec.prompt.path`, else `spec.prompt.uri`) or model
    /// (`spec.model.uri`) written as a relative path (optionally after `file:`) that names a
    /// file inside the gate root is always
    /// digest-checked. `registry: git` promises a repository file, so for it a path that is
    /// missing is an artifact with an error (fail closed); for another registry a path that
    /// names no file is the registry's own name and nothing is recorded. A path that exists
    /// but cannot be used (a symlink out of the root, unreadable, too large) is an error for
    /// every registry.
    fn artifacts(&self, manifest: &Value) -> Vec<Value> {
        let (role, section) = match manifest.get("kind").and_then(Value::as_str) {
            Some("PromptRelease") => ("prompt", "/spec/prompt"),
            Some("ModelRelease") => ("model", "/spec/model"),
            _ => return Vec::new(),
        };
        let Some(section) = manifest.pointer(section) else {
            return Vec::new();
        };
        let registry = section.get("registry").and_then(Value::as_str);
        // A prompt's `path`, else (like a model's) a `uri` that is a repository path: a
        // `uri: file:prompts/answer.prompt` must not dodge the check either.
        let written = section
            .get("path")
            .filter(|_| role == "prompt")
            .and_then(Value::as_str)
            .or_else(|| {
                section
                    .get("uri")
                    .and_then(Value::as_str)
                    .and_then(repository_path)
            });
        let promised = role == "prompt" && registry == Some("git");
        let written = match written {
            Some(written) => written,
            // registry git without a path is a SCHEMA finding; ARTIFACT-DIGEST still fails
            // closed on the missing artifact.
            None if promised => "",
            None => return Vec::new(),
        };
        let (digest, error) = match self.root.confine(written) {
            Ok(path) if !promised && path.is_dir() => return Vec::new(),
            Ok(path) => match manifest::read_limited(&path, written, self.config.max_file_bytes) {
                Ok(file) => (Value::String(file.digest), Value::Null),
                Err(err) => (Value::Null, Value::String(err.to_string())),
            },
            Err(crate::workspace::PathError::NotFound { .. }) if !promised => return Vec::new(),
            Err(err) => (Value::Null, Value::String(err.to_string())),
        };
        vec![json!({
            "role": role,
            "path": written,
            "declared_digest": section.get("digest").cloned().unwrap_or(Value::Null),
            "digest": digest,
            "error": error,
        })]
    }

    /// The policy input document (docs/policy-contract.md). `slo` is the document's
    /// `evidence.slo` (from [`slo::gather`]).
    pub fn input(&self, source: &SourceFile, document: &Document, slo: Value) -> Value {
        let manifest = &document.value;
        let artifacts = self.artifacts(manifest);
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

/// The repository path a model `uri` names, if it can name one: a relative path
/// (`models/ranker.onnx`), also after `file:` or `file://`. A URI with a scheme (`s3://…`,
/// `hf://…`, `models:/…`) or an absolute path is not a file of the repository. Anything else
/// (`registry.example/ml/scorer:31`) is tried as a path and skipped when no such file exists.
pub(crate) fn repository_path(uri: &str) -> Option<&str> {
    let rest = uri
        .strip_prefix("file://")
        .or_else(|| uri.strip_prefix("file:"))
        .unwrap_or(uri);
    let first = rest.split('/').next().unwrap_or_default();
    if rest.is_empty() || rest.starts_with('/') || rest.contains("://") || first.ends_with(':') {
        return None;
    }
    Some(rest)
}

/// Where the gate root is searched from: the parent of `--config`, else the first path, else
/// the current directory.
fn root_start(settings: &CheckSettings) -> PathBuf {
    let start = match (&settings.config, settings.paths.first()) {
        (Some(config), _) => config.parent().map(PathBuf::from).unwrap_or_default(),
        (None, Some(path)) => path.clone(),
        (None, None) => settings.cwd.clone(),
    };
    if start.as_os_str().is_empty() {
        settings.cwd.clone()
    } else {
        start
    }
}

/// The gate root of a run as the checked files have it: the parent of `--config`, else found
/// from the first path or the current directory.
fn gate_root(settings: &CheckSettings) -> Result<GateRoot> {
    let start = root_start(settings);
    match &settings.config {
        Some(_) => GateRoot::at(&start),
        None => GateRoot::discover(&start, &settings.cwd),
    }
    .map_err(|source| Error::Io {
        path: start.clone(),
        source,
    })
}

/// The gate root (in the work tree) and where the rules come from: the head's without
/// `--changed`; with it, [`changed::plan_rules`].
fn plan_rules(settings: &CheckSettings) -> Result<(GateRoot, RulesPlan)> {
    let head_root = gate_root(settings)?;
    match &settings.changed {
        None => Ok((head_root, RulesPlan::Head { note: None })),
        Some(options) => Ok(changed::plan_rules(
            head_root,
            &root_start(settings),
            settings.config.as_deref(),
            &settings.cwd,
            options,
        )?),
    }
}

/// The team policies of a configuration's `policies` directories under `root` (a missing
/// directory is skipped: the default names `.relgate/policies`).
fn config_sources(root: &GateRoot, config: &GateConfig) -> Result<Vec<PolicySource>> {
    // Config directories are optional (the default names `.relgate/policies`) and must be
    // inside the root. They are read in one pass, so a file two of them reach is loaded once.
    let mut dirs = Vec::new();
    for dir in policy::resolve_dirs(&root.dir, &config.policies) {
        if dir.symlink_metadata().is_ok() {
            dirs.push(root.confine_existing(&dir, &root.relative(&dir))?);
        }
    }
    policy::read_policy_dirs(Some(root), &dirs, &|p| root.relative(p))
}

/// Most lines [`rule_edits`] lists; the rest are counted.
const MAX_EDIT_LINES: usize = 12;

/// What the head's configuration and policies change against the base's, in effect: each
/// configuration value that differs (by its dotted path in the merged configuration) and each
/// team policy file added, modified or removed (values in key order, then files by path, removed
/// files last); empty when nothing differs.
fn rule_edits(
    base: &GateConfig,
    base_sources: &[PolicySource],
    head: &GateConfig,
    head_sources: &[PolicySource],
) -> Vec<String> {
    let mut lines = Vec::new();
    let file = head.file.as_deref().unwrap_or(CONFIG_FILE);
    config_diff(&base.merged, &head.merged, "", &mut |path, was, now| {
        lines.push(format!("{file}: {path} {was} -> {now}"));
    });
    let texts = |sources: &[PolicySource]| -> std::collections::BTreeMap<String, String> {
        sources
            .iter()
            .map(|s| (s.path.clone(), s.text.clone()))
            .collect()
    };
    let (before, after) = (texts(base_sources), texts(head_sources));
    for (path, text) in &after {
        match before.get(path) {
            None => lines.push(format!("{path} (added)")),
            Some(old) if old != text => lines.push(format!("{path} (modified)")),
            Some(_) => {}
        }
    }
    for path in before.keys().filter(|p| !after.contains_key(*p)) {
        lines.push(format!("{path} (removed)"));
    }
    if lines.len() > MAX_EDIT_LINES {
        let more = lines.len() - MAX_EDIT_LINES;
        lines.truncate(MAX_EDIT_LINES);
        lines.push(format!("… and {more} more"));
    }
    lines
}

/// Calls `found(path, base value, head value)` for each leaf that differs (objects are
/// compared key by key, anything else as a whole), in key order.
fn config_diff(
    base: &Value,
    head: &Value,
    path: &str,
    found: &mut dyn FnMut(&str, String, String),
) {
    let show = |value: Option<&Value>| match value {
        None => "(unset)".to_string(),
        Some(value) => {
            let text = value.to_string();
            match text.char_indices().nth(60) {
                Some((cut, _)) => format!("{}…", &text[..cut]),
                None => text,
            }
        }
    };
    match (base, head) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => config_diff(x, y, &child, found),
                    (x, y) => found(&child, show(x), show(y)),
                }
            }
        }
        (a, b) if a != b => found(path, show(Some(a)), show(Some(b))),
        _ => {}
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
pub fn repository_prefix(dir: &Path) -> String {
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
            gate.set_git_context(set.git_context());
            return changed::check(&gate, settings, &paths, &set).map(|report| {
                let mut report = with_approvals_flag(&gate, report);
                // The gate read a copy of the tree in a temp dir: the prefix is the real root's.
                report.repository_prefix = repository_prefix(&work_root.dir);
                report
            });
        }
        let gate = Gate::open_with(work_root, &plan, settings)?;
        return changed::check(&gate, settings, &settings.paths, &set)
            .map(|report| with_approvals_flag(&gate, report));
    }
    let gate = Gate::open(settings)?;
    check_opened(&gate, settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(merged: Value) -> GateConfig {
        GateConfig {
            file: Some(CONFIG_FILE.to_string()),
            merged,
            manifests: Vec::new(),
            policies: Vec::new(),
            namespaces: Vec::new(),
            max_file_bytes: 1,
        }
    }

    fn source(path: &str, text: &str) -> PolicySource {
        PolicySource {
            path: path.to_string(),
            text: text.to_string(),
            builtin: false,
            v0: false,
        }
    }

    #[test]
    fn rule_edits_name_each_changed_value_and_policy_file() {
        let base = config(json!({"prr": {"required": {"dev": {"3": ["PRR-SEC-01"]}}}, "a": 1}));
        let head = config(json!({"prr": {"required": {"dev": {"3": []}}}, "b": true}));
        let edits = rule_edits(
            &base,
            &[
                source("p/kept.rego", "x"),
                source("p/gone.rego", "y"),
                source("p/edit.rego", "1"),
            ],
            &head,
            &[
                source("p/kept.rego", "x"),
                source("p/new.rego", "z"),
                source("p/edit.rego", "2"),
            ],
        );
        assert_eq!(
            edits,
            [
                "relgate.yaml: a 1 -> (unset)",
                "relgate.yaml: b (unset) -> true",
                "relgate.yaml: prr.required.dev.3 [\"PRR-SEC-01\"] -> []",
                "p/edit.rego (modified)",
                "p/new.rego (added)",
                "p/gone.rego (removed)",
            ]
        );
        // Nothing differs: nothing to say.
        assert!(rule_edits(&base, &[], &base, &[]).is_empty());
    }

    #[test]
    fn rule_edits_are_bounded() {
        let many: Vec<PolicySource> = (0..20)
            .map(|i| source(&format!("p/{i:02}.rego"), ""))
            .collect();
        let empty = config(json!({}));
        let edits = rule_edits(&empty, &[], &empty, &many);
        assert_eq!(edits.len(), MAX_EDIT_LINES + 1);
        assert_eq!(edits.last().map(String::as_str), Some("… and 8 more"));
    }
}
