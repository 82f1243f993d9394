//! Which release manifests a change selects under `--changed` (docs/changed.md), given its
//! git range ([`ChangeSet`]).
//!
//! [`check_change`] selects, among the candidates — the manifests the normal discovery finds at
//! head (the config's `manifests` globs, or the PATH arguments) together with those the
//! `manifests` globs of the merge base's configuration find, since the change under check can
//! edit `relgate.yaml` itself:
//! - those added, modified or renamed by the change;
//! - those that reference a changed file: evaluation outputs, baselines, the prompt template,
//!   the released artifact's repository path, SLO `file` sources, the rollback runbook,
//!   repo-relative PRR evidence;
//! - all of them when `relgate.yaml`, a `.rego` file of a policy directory, or a `--config`,
//!   `--policy` or `--data` input changed (any decision can change). Over no candidate at all
//!   that is an error, like a plain check that finds no manifest.
//!
//! A path is changed when the diff names it or a directory above it ([`Touched`]): git records
//! a directory symlink or a submodule as one entry, whose retargeting changes every file below
//! it. Policy directories and config files are compared as written and by their real paths.
//!
//! Deleted manifests (under either configuration's globs) are not checked; the report lists
//! them as `removed`. A manifest renamed out of the manifest set is an error, not a removal:
//! the release would otherwise leave the gate by a rename (`x.yaml` -> `x.yml`). When the
//! change edits the gate's own files and the merge base's rules decide, every checked manifest
//! carries `GATE-CONFIG-CHANGED` ([`super::rules`]).
//!
//! Invariant (fail closed): a manifest that cannot be parsed to see what it references is
//! checked; nothing outside the gate root is read: references are confined as the gate
//! confines them.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::rules::gate_config_changed;
use super::{CheckSettings, Gate};
use crate::changed::{command_line_rel, lexically_clean, Change, ChangeKind, ChangeSet};
use crate::error::Result;
use crate::manifest;
use crate::report::{Decision, Finding, ManifestResult, Report};
use crate::workspace::{self, to_slash, Discovered, CONFIG_FILE};

/// A path written in a manifest or the config as a normalised gate-relative path (`.`
/// segments dropped), or `None` for an absolute path or one with `..` (the gate refuses those
/// anyway, whatever changed).
fn normalize(written: &str) -> Option<String> {
    let path = Path::new(written);
    if path.is_absolute() || written.starts_with('\\') {
        return None;
    }
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

/// Whether `path` is `dir` or below it (`dir` "" is the gate root).
fn is_under(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path == dir
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn is_yaml(path: &str) -> bool {
    path.ends_with(".yaml") || path.ends_with(".yml")
}

/// A string at a JSON pointer.
fn at<'v>(value: &'v Value, pointer: &str) -> Option<&'v str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// Every path a manifest document names that the gate (or a reviewer) reads from the
/// repository, as written.
fn referenced_paths(manifest: &Value) -> Vec<&str> {
    let list = |pointer: &str| {
        manifest
            .pointer(pointer)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
    };
    let mut found: Vec<&str> = [
        "/spec/prompt/path",
        "/spec/prompt/baseline/path",
        "/spec/model/baseline/path",
        "/spec/rollback/runbook",
    ]
    .into_iter()
    .filter_map(|pointer| at(manifest, pointer))
    .collect();
    // The released artifact named by `uri` (a prompt without `path`, a model): the gate
    // digest-checks it when it is a repository path (`gate::repository_path`), so an edit to
    // that file must re-check the release, or swapping the prompt without re-pinning passes.
    for pointer in ["/spec/prompt/uri", "/spec/model/uri"] {
        found.extend(at(manifest, pointer).and_then(super::input::repository_path));
    }
    for evaluation in list("/spec/evaluations") {
        found.extend(at(evaluation, "/candidate/path"));
        found.extend(at(evaluation, "/baseline/path"));
    }
    for slo in list("/spec/slo") {
        found.extend(at(slo, "/source/file/path"));
    }
    for item in manifest
        .pointer("/spec/prr")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|items| items.values())
    {
        // Evidence is a URL or a repo-relative path; only the latter can change here.
        found.extend(at(item, "/evidence").filter(|e| !e.contains("://")));
    }
    found
}

/// The gate-relative paths a manifest file references: each as written (normalised) and, when
/// it resolves inside the gate root, as its real path (a symlink's target).
fn references(gate: &Gate, path: &Path, shown: &str) -> std::result::Result<Vec<String>, ()> {
    let source = manifest::read_limited(path, shown, gate.config.max_file_bytes).map_err(|_| ())?;
    let documents = manifest::parse_documents(&source).map_err(|_| ())?;
    let mut found = Vec::new();
    for document in &documents {
        for written in referenced_paths(&document.value) {
            if let Some(normal) = normalize(written) {
                found.push(normal);
            }
            if let Ok(real) = gate.root.confine(written) {
                found.push(gate.root.relative(&real));
            }
        }
    }
    // First seen first: a note then names the path as written before its real path.
    let mut seen = BTreeSet::new();
    found.retain(|path| seen.insert(path.clone()));
    Ok(found)
}

/// What the change touched, to ask "did this path, or a directory above it, change?".
///
/// A path is changed when the diff names it or a directory above it: git records a directory
/// symlink or a submodule as one entry, so retargeting `prompts -> prompts-v2` or moving the
/// submodule `prompts` changes every file below `prompts` without naming any of them. The real
/// path (inside the gate root) of each changed symlink at head counts as changed too, so files
/// reached through the link's target are covered under their real names as well.
struct Touched {
    /// Changed path (both sides of a rename) -> whether it may hold files (not a plain file).
    paths: std::collections::BTreeMap<String, bool>,
}

impl Touched {
    fn new(gate: &Gate, set: &ChangeSet) -> Self {
        let mut paths = std::collections::BTreeMap::new();
        for change in &set.changes {
            for path in std::iter::once(&change.path).chain(&change.old_path) {
                *paths.entry(path.clone()).or_insert(false) |= change.not_a_file;
            }
            if change.kind == ChangeKind::Deleted {
                continue;
            }
            let at_head = gate.root.dir.join(&change.path);
            let is_link =
                std::fs::symlink_metadata(&at_head).is_ok_and(|m| m.file_type().is_symlink());
            if !is_link {
                continue;
            }
            // A link leading out of the gate root is refused wherever it is read; only its
            // name matters here.
            if let Ok(real) = std::fs::canonicalize(&at_head) {
                if let Ok(rel) = real.strip_prefix(&gate.root.dir) {
                    *paths.entry(to_slash(rel)).or_insert(false) |= real.is_dir();
                }
            }
        }
        Self { paths }
    }

    /// The changed path that is `path` or a directory above it ("" when a link to the gate
    /// root itself changed).
    fn covering<'t>(&'t self, path: &str) -> Option<&'t str> {
        let mut end = Some(path.len());
        while let Some(at) = end {
            let prefix = path.get(..at).unwrap_or_default();
            if let Some((found, _)) = self.paths.get_key_value(prefix) {
                return Some(found);
            }
            end = prefix.rfind('/');
        }
        self.paths
            .get_key_value("")
            .map(|(found, _)| found.as_str())
    }
}

/// A path as the real path of what it names, relative to `root`, when it exists inside it.
fn real_rel(root: &Path, path: &Path) -> Option<String> {
    let real = std::fs::canonicalize(path).ok()?;
    real.strip_prefix(root).ok().map(to_slash)
}

/// A command-line path relative to `root`: as written (cleaned lexically) and as its real
/// path; empty when it is outside.
fn command_line_forms(root: &Path, cwd: &Path, path: &Path) -> Vec<String> {
    let cwd = std::fs::canonicalize(cwd).unwrap_or_else(|_| cwd.to_path_buf());
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    };
    let clean = lexically_clean(&absolute);
    let mut forms: Vec<String> = clean
        .strip_prefix(root)
        .ok()
        .map(to_slash)
        .into_iter()
        .collect();
    forms.extend(real_rel(root, &absolute));
    forms.dedup();
    forms
}

/// The changed inputs of every decision (config, policies, data): `(changed path, what it
/// is)`, sorted by path. A file input is changed when the diff names it or a directory above
/// it; a policy directory when the diff names a directory above it, the directory itself, or a
/// `.rego` file (or a link or submodule) inside it. Each is compared as written and as its real
/// path, so `teampol -> shared/pol` is changed by an edit to `shared/pol/deny.rego`.
fn gate_inputs_changed(
    gate: &Gate,
    settings: &CheckSettings,
    set: &ChangeSet,
    touched: &Touched,
) -> Vec<(String, &'static str)> {
    // (forms of the path relative to the gate root, is a directory of .rego files, what it is)
    let mut watched: Vec<(Vec<String>, bool, &'static str)> = Vec::new();
    let root = &gate.root.dir;
    let gate_forms = |rel: String| -> Vec<String> {
        let mut forms: Vec<String> = real_rel(root, &root.join(&rel)).into_iter().collect();
        forms.push(rel);
        forms
    };
    watched.push((
        gate_forms(CONFIG_FILE.to_string()),
        false,
        "the gate configuration",
    ));
    if let Some(file) = gate.config.file.as_deref().and_then(normalize) {
        watched.push((gate_forms(file), false, "the gate configuration"));
    }
    // Both sides' policy directories: with the merge base's rules, the head's configuration
    // can name new ones.
    let head_policies = gate.rules.head_config.iter().flat_map(|c| &c.policies);
    for dir in gate.config.policies.iter().chain(head_policies) {
        if let Some(dir) = normalize(dir) {
            watched.push((gate_forms(dir), true, "a policy directory of relgate.yaml"));
        }
    }
    let command_line = |p: &PathBuf| command_line_forms(set.work_root(), &settings.cwd, p);
    if let Some(config) = settings.config.as_ref() {
        watched.push((command_line(config), false, "the --config file"));
    }
    for dir in &settings.policy_dirs {
        watched.push((command_line(dir), true, "a --policy directory"));
    }
    for file in &settings.data_files {
        watched.push((command_line(file), false, "a --data file"));
    }
    let mut hits: Vec<(String, &'static str)> = touched
        .paths
        .iter()
        .filter_map(|(path, holds_files)| {
            watched.iter().find_map(|(forms, is_dir, what)| {
                let hit = forms.iter().any(|input| {
                    is_under(input, path)
                        || (*is_dir
                            && is_under(path, input)
                            && (path.ends_with(".rego") || *holds_files))
                });
                hit.then(|| (path.clone(), *what))
            })
        })
        .collect();
    hits.sort();
    hits.dedup_by(|a, b| a.0 == b.0);
    hits
}

/// Whether a path deleted by the change was a manifest the normal discovery would have picked,
/// under the configuration at head or at the merge base.
struct ManifestSet {
    globs: Vec<globset::GlobSet>,
    /// The globs' literal directories ([`workspace::glob_dirs`]), to tell which skipped
    /// directories discovery enters.
    glob_dirs: Vec<String>,
    /// PATH arguments relative to the gate root ("" is the root).
    args: Vec<String>,
}

impl ManifestSet {
    fn new(
        gate: &Gate,
        settings: &CheckSettings,
        set: &ChangeSet,
        base_globs: Option<&[String]>,
    ) -> Result<Self> {
        if settings.paths.is_empty() {
            let mut globs = vec![workspace::build_globset(&gate.config.manifests)?];
            let mut glob_dirs = workspace::glob_dirs(&gate.config.manifests);
            if let Some(base) = base_globs {
                globs.push(workspace::build_globset(base)?);
                glob_dirs.extend(workspace::glob_dirs(base));
            }
            return Ok(Self {
                globs,
                glob_dirs,
                args: Vec::new(),
            });
        }
        Ok(Self {
            globs: Vec::new(),
            glob_dirs: Vec::new(),
            args: settings
                .paths
                .iter()
                .filter_map(|p| command_line_rel(set.work_root(), &settings.cwd, p))
                .collect(),
        })
    }

    fn contains(&self, path: &str) -> bool {
        if path == CONFIG_FILE {
            return false;
        }
        let walked = |below: &str| {
            let mut dirs: Vec<&str> = below.split('/').collect();
            dirs.pop();
            !dirs.into_iter().any(workspace::is_skipped_dir)
        };
        if self.args.is_empty() {
            // As the glob walk does (`workspace::enters_skipped_dir`).
            let parts: Vec<&str> = path.split('/').collect();
            let entered = (0..parts.len().saturating_sub(1)).all(|i| {
                !workspace::is_skipped_dir(parts[i])
                    || workspace::enters_skipped_dir(&self.glob_dirs, &parts[..=i].join("/"))
            });
            self.globs.iter().any(|g| g.is_match(path)) && entered
        } else {
            self.args.iter().any(|arg| {
                path == arg
                    || (is_yaml(path)
                        && is_under(path, arg)
                        && walked(path.get(arg.len()..).unwrap_or_default()))
            })
        }
    }
}

/// The `manifests` globs of the configuration at the merge base, when they differ from head's,
/// and a note when that configuration could not be read.
///
/// The change under check can edit `relgate.yaml`: were only head's globs used, a change could
/// narrow them and edit (or delete) a release the base gates without it being checked or
/// listed. So what the merge base's configuration selects is a candidate as well.
struct BaseGlobs {
    globs: Option<Vec<String>>,
    note: Option<String>,
}

impl BaseGlobs {
    fn at_merge_base(gate: &Gate, settings: &CheckSettings, set: &ChangeSet) -> Result<Self> {
        let none = Self {
            globs: None,
            note: None,
        };
        // PATH arguments select the same files whatever either configuration says.
        if !settings.paths.is_empty() {
            return Ok(none);
        }
        // The merge base's rules decide: the other side is the head's configuration. Its
        // globs select candidates too, so a release the change moves under new globs (which
        // take effect after merge) is still checked.
        if let Some(head) = &gate.rules.head_config {
            return Ok(Self {
                globs: (head.manifests != gate.config.manifests).then(|| head.manifests.clone()),
                note: None,
            });
        }
        let in_tree = match &settings.config {
            Some(config) => match command_line_rel(set.work_top(), &settings.cwd, config) {
                Some(rel) => rel,
                // Outside the repository: not versioned, the same file on both sides.
                None => return Ok(none),
            },
            None if set.prefix().is_empty() => CONFIG_FILE.to_string(),
            None => format!("{}/{CONFIG_FILE}", set.prefix()),
        };
        let defaults = || -> Result<Vec<String>> {
            Ok(globs_of(&crate::config::defaults()?).unwrap_or_default())
        };
        let read = set
            .file_at_merge_base(&in_tree, gate.config.max_file_bytes)
            .and_then(|bytes| match bytes {
                None => Ok(None),
                Some(bytes) => manifest_globs(&in_tree, bytes).map(Some),
            })
            .and_then(|globs| match globs {
                Some(globs) => workspace::build_globset(&globs)
                    .map(|_| Some(globs))
                    .map_err(|err| err.to_string()),
                None => Ok(None),
            });
        let (globs, note) = match read {
            Ok(Some(globs)) => (globs, None),
            Ok(None) => (defaults()?, None),
            Err(message) => (
                defaults()?,
                Some(format!(
                    "{in_tree} at the merge base cannot be read ({message}): the default \
                     `manifests` globs stand for what it selected"
                )),
            ),
        };
        Ok(Self {
            globs: (globs != gate.config.manifests).then_some(globs),
            note,
        })
    }
}

/// The `manifests` of a merged configuration, when it is a list of strings.
fn globs_of(config: &Value) -> Option<Vec<String>> {
    config
        .get("manifests")?
        .as_array()?
        .iter()
        .map(|glob| glob.as_str().map(str::to_string))
        .collect()
}

/// The `manifests` globs a configuration file's bytes give (merged with the defaults, as
/// [`crate::config::GateConfig::load`] does).
fn manifest_globs(shown: &str, bytes: Vec<u8>) -> std::result::Result<Vec<String>, String> {
    let source = manifest::SourceFile {
        path: shown.to_string(),
        digest: manifest::sha256_digest(&bytes),
        bytes,
    };
    let documents = manifest::parse_documents(&source).map_err(|err| err.to_string())?;
    let [document] = documents.as_slice() else {
        return Err(format!(
            "it holds {} YAML documents, not one",
            documents.len()
        ));
    };
    let mut merged = crate::config::defaults().map_err(|err| err.to_string())?;
    crate::config::merge(&mut merged, document.value.clone());
    globs_of(&merged).ok_or_else(|| "`manifests` is not a list of globs".to_string())
}

/// Checks what the change touches (see the module docs). `discover` are the PATH arguments
/// for discovery (the work tree's, or mapped into the head tree); `settings` are the
/// command line's, relative to the work tree.
pub(super) fn check_change(
    gate: &Gate,
    settings: &CheckSettings,
    discover: &[PathBuf],
    set: &ChangeSet,
) -> Result<Report> {
    let mut notes = Vec::new();
    let touched = Touched::new(gate, set);

    let base = BaseGlobs::at_merge_base(gate, settings, set)?;
    let mut candidates = gate.discover(discover)?;
    if let Some(globs) = &base.globs {
        candidates.extend(
            workspace::discover_globs(&gate.root, globs)?
                .into_iter()
                .filter(|d| d.shown() != CONFIG_FILE),
        );
        candidates.sort_by(|a, b| a.shown().cmp(b.shown()));
        candidates.dedup_by(|a, b| a.shown() == b.shown());
        let (at_base, at_head) = if gate.rules.head_config.is_some() {
            (&gate.config.manifests, globs)
        } else {
            (globs, &gate.config.manifests)
        };
        notes.push(format!(
            "the change edits the `manifests` globs ({} at the merge base, {} at head): the \
             manifests either selects are candidates, so a change cannot take a release out of \
             the gate's sight",
            at_base.join(", "),
            at_head.join(", ")
        ));
    }
    notes.extend(base.note);

    let inputs = gate_inputs_changed(gate, settings, set, &touched);
    if let Some((path, what)) = inputs.first() {
        notes.push(format!(
            "{path} changed ({what}): every manifest is checked, since any decision can change"
        ));
        let mut listed: Vec<&str> = inputs.iter().take(5).map(|(p, _)| p.as_str()).collect();
        if inputs.len() > listed.len() {
            listed.push("…");
        }
        notes.push(if gate.rules.from == "base" {
            format!(
                "this change modifies the gate's configuration/policies ({}); the merge base's \
                 decided this check and the change's take effect after merge — protect them \
                 with CODEOWNERS (docs/changed.md)",
                listed.join(", ")
            )
        } else {
            format!(
                "this change modifies the gate's configuration/policies ({}); they decide this \
                 very check — protect them with CODEOWNERS (docs/changed.md)",
                listed.join(", ")
            )
        });
    }
    let everything = !inputs.is_empty();

    let mut selected = Vec::new();
    for found in &candidates {
        let take = match found {
            // Fail closed: a path discovery could not read is reported, changed or not.
            Discovered::Problem { .. } => true,
            Discovered::File { .. } if everything => true,
            Discovered::File { path, shown } => {
                let real = gate.root.relative(path);
                if let Some(dir) = touched.covering(shown).or_else(|| touched.covering(&real)) {
                    if dir != shown && dir != real {
                        notes.push(format!(
                            "{shown} is checked because {dir}, which holds it, changed"
                        ));
                    }
                    true
                } else {
                    match references(gate, path, shown) {
                        Ok(references) => match references
                            .iter()
                            .find_map(|r| touched.covering(r).map(|dir| (r, dir)))
                        {
                            Some((reference, dir)) if dir == reference => {
                                notes.push(format!(
                                    "{shown} is checked because {reference}, which it references, changed"
                                ));
                                true
                            }
                            Some((reference, dir)) => {
                                notes.push(format!(
                                    "{shown} is checked because {dir}, which holds {reference} that it references, changed"
                                ));
                                true
                            }
                            None => false,
                        },
                        Err(()) => {
                            notes.push(format!(
                                "{shown} is checked because it cannot be read to see which files it references"
                            ));
                            true
                        }
                    }
                }
            }
        };
        if take {
            selected.push(found.clone());
        }
    }

    let shown_at_head: BTreeSet<&str> = candidates.iter().map(Discovered::shown).collect();
    let manifests = ManifestSet::new(gate, settings, set, base.globs.as_deref())?;
    let removed: Vec<&Change> = set
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Deleted)
        .filter(|c| manifests.contains(&c.path))
        .collect();
    // A manifest renamed or moved out of the manifest set (`x.yaml` -> `x.yml`, or into a
    // folder no glob covers) is not a removal: the release still exists, outside the gate's
    // sight. Each is an error, so the run cannot pass.
    let mut escaped: Vec<ManifestResult> = set
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Renamed && !shown_at_head.contains(c.path.as_str()))
        .filter_map(|c| c.old_path.as_deref().map(|old| (old, c.path.as_str())))
        .filter(|(old, _)| manifests.contains(old))
        .map(|(old, new)| {
            let selectors = if settings.paths.is_empty() {
                format!(
                    "the `manifests` globs ({})",
                    gate.config.manifests.join(", ")
                )
            } else {
                "the PATH arguments".to_string()
            };
            ManifestResult::error(
                old,
                0,
                1,
                None,
                format!(
                    "{old}: the change renames this release manifest to {new}, which \
                     {selectors} do not select, so it would leave the gate unchecked; keep it \
                     under the `manifests` globs (rename it back, or to a selected name), or \
                     delete it to retire the release"
                ),
            )
        })
        .collect();
    // A manifest "deleted" because a directory above it became a submodule (or another entry
    // that is not a plain file) whose files the check does not see: the release moved where
    // no check reads it (CI does not check submodules out by default), it was not retired.
    // Each is an error, not a silent removal.
    let covering = |path: &str| {
        set.changes
            .iter()
            .filter(|c| c.not_a_file && c.kind != ChangeKind::Deleted && c.path != path)
            .find(|c| is_under(path, &c.path) && !c.path.is_empty())
            .map(|c| c.path.clone())
    };
    let (moved_away, removed): (Vec<_>, Vec<_>) = removed
        .into_iter()
        .partition(|c| !shown_at_head.contains(c.path.as_str()) && covering(&c.path).is_some());
    escaped.extend(moved_away.iter().map(|change| {
        let path = &change.path;
        let entry = covering(path).unwrap_or_default();
        ManifestResult::error(
            path,
            0,
            1,
            None,
            format!(
                "{path}: the change replaces {entry}, which held this release manifest, by a \
                 submodule or link whose files this check does not read, so the release would \
                 leave the gate unchecked; keep release manifests as files of this repository, \
                 or delete them to retire the releases"
            ),
        )
    }));
    let removed = set.previous_digests(&removed);

    // "Every manifest is checked" over no manifest at all checked nothing: the same error as
    // a plain check that finds none, or a change to the config could empty the gate and pass.
    let nothing_found = everything && candidates.is_empty();
    if nothing_found {
        let selectors = if settings.paths.is_empty() {
            let mut text = format!(
                "the `manifests` globs ({}",
                gate.config.manifests.join(", ")
            );
            if let Some(globs) = &base.globs {
                text.push_str(&format!("; at the merge base {}", globs.join(", ")));
            }
            text.push(')');
            text
        } else {
            "the PATH arguments".to_string()
        };
        notes.insert(
            0,
            format!(
                "no manifests found: the change touches the gate's configuration/policies, so \
                 every manifest is to be checked, but {selectors} select none between {}; \
                 nothing was checked, so nothing passes",
                set.describe()
            ),
        );
    } else if selected.is_empty() {
        notes.insert(
            0,
            format!("no release manifests changed between {}", set.describe()),
        );
    } else {
        notes.insert(
            0,
            format!(
                "checked the release manifests changed between {}",
                set.describe()
            ),
        );
    }
    let mut results = gate.check_files(&selected);
    if !gate.rules.edits.is_empty() {
        let finding = gate_config_changed(&gate.rules.edits);
        for result in &mut results {
            result.findings.push(Finding {
                line: result.line,
                ..finding.clone()
            });
            result.decide(settings.fail_on_warn);
        }
    }
    results.extend(escaped);
    let mut report = Report::changed(
        gate.policies.digest.clone(),
        results,
        notes,
        set.range.clone(),
        removed,
    );
    if nothing_found {
        report.decision = Decision::Error;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn normalize_drops_dots_and_refuses_escapes() {
        assert_eq!(normalize("./evals/a.json").as_deref(), Some("evals/a.json"));
        assert_eq!(normalize("evals//a.json").as_deref(), Some("evals/a.json"));
        assert_eq!(normalize("../a.json"), None);
        assert_eq!(normalize("/etc/passwd"), None);
    }

    #[test]
    fn is_under_means_the_directory_or_below() {
        assert!(is_under(".relgate/policies/a.rego", ".relgate/policies"));
        assert!(!is_under(".relgate/policies2/a.rego", ".relgate/policies"));
        assert!(is_under("anything", ""));
    }

    #[test]
    fn a_changed_directory_covers_what_lies_below_it() {
        let touched = |paths: &[&str]| Touched {
            paths: paths.iter().map(|p| ((*p).to_string(), true)).collect(),
        };
        let t = touched(&["prompts", "evals/a.json"]);
        assert_eq!(t.covering("prompts/answer.txt"), Some("prompts"));
        assert_eq!(t.covering("prompts/deep/er.txt"), Some("prompts"));
        assert_eq!(t.covering("prompts"), Some("prompts"));
        assert_eq!(t.covering("evals/a.json"), Some("evals/a.json"));
        assert_eq!(t.covering("prompts-v2/answer.txt"), None);
        assert_eq!(t.covering("evals/a.json.bak"), None);
        assert_eq!(t.covering("evals"), None);
        // A link to the gate root itself covers everything.
        assert_eq!(touched(&[""]).covering("any/thing"), Some(""));
    }

    #[test]
    fn the_merge_base_globs_are_read_as_the_config_loader_merges_them() {
        let globs = |text: &str| manifest_globs("relgate.yaml", text.as_bytes().to_vec());
        assert_eq!(
            globs("apiVersion: relgate.dev/v1\nkind: GateConfig\nmanifests: [a/*.yaml]\n"),
            Ok(vec!["a/*.yaml".to_string()])
        );
        // Not set: the default.
        assert_eq!(
            globs("apiVersion: relgate.dev/v1\nkind: GateConfig\n"),
            Ok(vec!["releases/**/*.yaml".to_string()])
        );
        assert!(globs("manifests: [1, 2]\n").is_err());
        assert!(globs("a: 1\n---\nb: 2\n").is_err());
        assert!(globs("manifests: [unclosed\n").is_err());
    }

    #[test]
    fn every_path_field_is_collected() {
        let manifest = json!({"spec": {
            "prompt": {"path": "p.txt", "baseline": {"path": "p0.txt"}},
            "rollback": {"runbook": "docs/r.md"},
            "evaluations": [{"candidate": {"path": "c.json"}, "baseline": {"path": "b.json"}}],
            "slo": [{"source": {"file": {"path": "slo.json"}}}, {"source": {"prometheus": {}}}],
            "prr": {"A": {"evidence": "https://x"}, "B": {"evidence": "docs/b.md"}},
        }});
        let mut found = referenced_paths(&manifest);
        found.sort_unstable();
        assert_eq!(
            found,
            [
                "b.json",
                "c.json",
                "docs/b.md",
                "docs/r.md",
                "p.txt",
                "p0.txt",
                "slo.json"
            ]
        );
    }
}
