//! The rules of a check: which `relgate.yaml` and policy directories judge it, and where the
//! gate root is (docs/changed.md, "The gate's own files").
//!
//! Without `--changed` they are the checked tree's own. With `--changed` (and in GitHub mode on
//! a pull-request or merge-queue event, [`base_plan`]) and `--rules base`, the default, they are
//! the merge base's ([`plan_rules`]): its gate-root subtree is written out of git into a
//! private temporary directory ([`MergeBase::write_subtree`]) and loaded from there, so the
//! change under check cannot edit what judges it; the gate root is where the merge base has
//! `relgate.yaml`, so it cannot move the root either. [`load_rules`] loads the side the plan
//! names and lists what the change's own configuration and policies would change once merged
//! ([`rule_edits`]); every checked manifest then carries a `GATE-CONFIG-CHANGED` warning
//! ([`gate_config_changed`]). A base without `relgate.yaml` whose head adds one is the change
//! that adopts relgate: the head's rules, with a note.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::CheckSettings;
use crate::changed::{command_line_rel, ChangedError, ChangedOptions, HeadTree, MergeBase, Rules};
use crate::config::GateConfig;
use crate::error::{Error, Result};
use crate::policy::{self, PolicySource};
use crate::report::Finding;
use crate::workspace::{to_slash, GateRoot, CONFIG_FILE};

/// Rule id of the warning that a change edits the gate's own files (docs/changed.md).
pub const GATE_CONFIG_CHANGED: &str = "GATE-CONFIG-CHANGED";

/// Where a run's rules come from, decided before the gate opens.
pub(crate) enum RulesPlan {
    /// The checked files' own configuration and policies, with why (a note), if not plain.
    Head { note: Option<String> },
    /// The merge base's.
    Base(BaseRules),
}

/// The merge base's gate-root subtree, written out to read its configuration and policies.
pub(crate) struct BaseRules {
    /// The merge-base commit.
    pub(crate) commit: String,
    /// The subtree; [`HeadTree::root`] is the base's gate root.
    pub(crate) tree: HeadTree,
    /// `--config` as the same file in the written tree.
    pub(crate) config: Option<PathBuf>,
    /// A note when the head would find another gate root (a nearer or removed relgate.yaml).
    pub(crate) note: Option<String>,
}

/// Where a gate's configuration and policies were read from.
#[derive(Debug, Clone)]
pub(crate) struct GateRules {
    /// `base` or `head`.
    pub(crate) from: &'static str,
    /// The merge-base commit of `from: base`.
    pub(crate) commit: Option<String>,
    /// Run notes on the choice (first adoption, a moved gate root, `--rules head`).
    pub(crate) notes: Vec<String>,
    /// With base rules: the head's configuration, whose `manifests` globs still select
    /// candidates and whose policy directories are watched for changes.
    pub(crate) head_config: Option<GateConfig>,
    /// With base rules: what the change's edits to the gate's own files change in effect, one
    /// line each (empty: no edit with an effect).
    pub(crate) edits: Vec<String>,
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

/// The configuration and team policies that decide a run, as [`load_rules`] read them.
pub(super) struct LoadedRules {
    pub(crate) config: GateConfig,
    pub(crate) sources: Vec<PolicySource>,
    pub(crate) rules: GateRules,
    /// The gate root the rules were read under (the written merge-base tree for base rules).
    pub(crate) root: GateRoot,
}

/// Loads the configuration and team policies `plan` names; `root` is the head's gate root
/// (the checked files').
pub(super) fn load_rules(
    root: &GateRoot,
    plan: &RulesPlan,
    settings: &CheckSettings,
) -> Result<LoadedRules> {
    let head_config = GateConfig::load(root, settings.config.as_deref(), settings.max_file_bytes)?;
    let head_sources = config_sources(root, &head_config)?;
    let (config, sources, rules, rules_root) = match plan {
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
            let config = GateConfig::load(&base_root, file.as_deref(), settings.max_file_bytes)?;
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
    Ok(LoadedRules {
        config,
        sources,
        rules,
        root: rules_root,
    })
}

/// The plan of [`super::Gate::open_base_rules`]: the rules of the merge base of `base` and
/// HEAD, for a whole-tree check of a pull request (GitHub mode without `--changed`).
pub(super) fn base_plan(settings: &CheckSettings, base: &str) -> Result<(GateRoot, RulesPlan)> {
    let options = ChangedOptions {
        base: Some(base.to_owned()),
        head: None,
        rules: Rules::Base,
    };
    Ok(plan_base_rules(
        gate_root(settings)?,
        &root_start(settings),
        settings.config.as_deref(),
        &settings.cwd,
        &options,
    )?)
}

/// Where the gate root is searched from: the parent of `--config`, else the first path, else
/// the current directory.
pub(super) fn root_start(settings: &CheckSettings) -> PathBuf {
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
pub(super) fn gate_root(settings: &CheckSettings) -> Result<GateRoot> {
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
/// `--changed`; with it, [`plan_base_rules`].
pub(super) fn plan_rules(settings: &CheckSettings) -> Result<(GateRoot, RulesPlan)> {
    let head_root = gate_root(settings)?;
    match &settings.changed {
        None => Ok((head_root, RulesPlan::Head { note: None })),
        Some(options) => Ok(plan_base_rules(
            head_root,
            &root_start(settings),
            settings.config.as_deref(),
            &settings.cwd,
            options,
        )?),
    }
}

/// Decides where the rules of a `--changed` run come from, and the gate root in the work tree.
///
/// With `--rules base` (the default) the gate root is the nearest directory at or above
/// `start` that holds relgate.yaml **at the merge base** (or the parent of `--config` when the
/// merge base has that file): a change cannot move the gate root by adding a nearer
/// relgate.yaml or deleting one. When the merge base has no configuration there, the change
/// introduces relgate: the head's rules are used, with a note. A `--config` outside the
/// repository is the operator's: read as given.
fn plan_base_rules(
    head_root: GateRoot,
    start: &Path,
    config: Option<&Path>,
    cwd: &Path,
    options: &ChangedOptions,
) -> Result<(GateRoot, RulesPlan), ChangedError> {
    if options.rules == Rules::Head {
        return Ok((
            head_root,
            RulesPlan::Head {
                note: Some(
                    "rules: the head's relgate.yaml and policies (--rules head): the change \
                     under check is judged by its own version of them"
                        .to_string(),
                ),
            },
        ));
    }
    let merge_base = MergeBase::resolve(&head_root, options)?;
    let workdir = merge_base.workdir.clone();
    let has_file = |rel: &str| merge_base.has_file(rel);
    let join = |dir: &str, name: &str| {
        if dir.is_empty() {
            name.to_string()
        } else {
            format!("{dir}/{name}")
        }
    };
    let first_adoption = |shown: &str| RulesPlan::Head {
        note: Some(format!(
            "the base has no {shown}; the head's rules were used (first adoption)"
        )),
    };
    let (prefix, config_rel) = match config {
        Some(config) => match command_line_rel(&workdir, cwd, config) {
            None => {
                return Ok((
                    head_root,
                    RulesPlan::Head {
                        note: Some(format!(
                            "rules: --config {} is outside the repository, so it and the \
                             policy directories it names are read as given",
                            config.display()
                        )),
                    },
                ))
            }
            Some(rel) if has_file(&rel)? => {
                let parent = rel.rsplit_once('/').map_or("", |(dir, _)| dir).to_string();
                (parent, Some(rel))
            }
            Some(rel) => return Ok((head_root, first_adoption(&rel))),
        },
        None => {
            let start = std::fs::canonicalize(start).unwrap_or_else(|_| start.to_path_buf());
            let start = if start.is_dir() {
                start
            } else {
                start.parent().map(Path::to_path_buf).unwrap_or(start)
            };
            let Some(rel_start) = start.strip_prefix(&workdir).ok().map(to_slash) else {
                return Ok((head_root, first_adoption(CONFIG_FILE)));
            };
            let mut dir = Some(rel_start.as_str());
            let mut found = None;
            while let Some(at) = dir {
                if has_file(&join(at, CONFIG_FILE))? {
                    found = Some(at.to_string());
                    break;
                }
                dir = match at.rsplit_once('/') {
                    Some((up, _)) => Some(up),
                    None if at.is_empty() => None,
                    None => Some(""),
                };
            }
            match found {
                Some(prefix) => (prefix, None),
                // The change adds relgate.yaml: it introduces relgate, and its rules are all
                // there is to judge it by.
                None if std::fs::symlink_metadata(head_root.dir.join(CONFIG_FILE)).is_ok() => {
                    return Ok((head_root, first_adoption(CONFIG_FILE)))
                }
                // Neither side has one: the built-in defaults decide, with the merge base's
                // `.relgate/policies` (a change cannot add an exception there either).
                None => match head_root.dir.strip_prefix(&workdir) {
                    Ok(rel) => (to_slash(rel), None),
                    Err(_) => return Ok((head_root, first_adoption(CONFIG_FILE))),
                },
            }
        }
    };
    let in_work_tree = workdir.join(&prefix);
    let root = GateRoot::at(&in_work_tree).map_err(|err| ChangedError::NoBaseGateRoot {
        prefix: join(&prefix, CONFIG_FILE),
        message: err.to_string(),
    })?;
    let note = (root.dir != head_root.dir).then(|| {
        format!(
            "the gate root is {} (where the merge base has {}), not {} as the head's files \
             would have it: a change cannot move the gate root; its own relgate.yaml takes \
             effect after merge",
            shown_dir(&prefix),
            join(&prefix, CONFIG_FILE),
            head_root
                .dir
                .strip_prefix(&workdir)
                .map(|rel| shown_dir(&to_slash(rel)))
                .unwrap_or_else(|_| head_root.dir.display().to_string()),
        )
    });
    // The gate root is new with the change when the merge base has nothing of it: then an
    // empty tree (the defaults decide).
    let written = merge_base.write_subtree(&prefix)?;
    let config = config_rel.map(|rel| written.top.join(rel));
    Ok((
        root,
        RulesPlan::Base(BaseRules {
            commit: merge_base.commit(),
            tree: written,
            config,
            note,
        }),
    ))
}

/// A work-tree-relative directory as a reader sees it.
fn shown_dir(prefix: &str) -> String {
    if prefix.is_empty() {
        "the top of the repository".to_string()
    } else {
        format!("{prefix}/")
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

/// The warning every checked manifest carries when the change edits the gate's own files
/// and the merge base's rules decided: reviewers see what the change would change once merged.
pub(super) fn gate_config_changed(edits: &[String]) -> Finding {
    Finding {
        rule: GATE_CONFIG_CHANGED.to_string(),
        severity: crate::report::Severity::Warn,
        policy: "relgate.gate".to_string(),
        message: format!(
            "this change edits the gate's own files; the merge base's decided this check and \
             the change's take effect after merge: {}",
            edits.join("; ")
        ),
        path: None,
        line: 1,
        item: None,
        remediation: Some(
            "have the gate's owners review these edits (CODEOWNERS on relgate.yaml and the \
             policy directories); `relgate check --changed --rules head` shows the decision \
             under the change's own rules"
                .to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

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
