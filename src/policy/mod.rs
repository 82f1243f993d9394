//! Policies: the built-in bundle plus the team's Rego, compiled once into a regorus engine and
//! evaluated per manifest under the conftest contract (`deny`/`violation`/`warn` rules and their
//! `_suffix` forms, string or object messages, `exception` rules).
//!
//! Invariants: policy crashes (parse errors, runtime errors, panics inside regorus, execution
//! past the time limit) are errors, never an empty set of findings; the set of evaluated
//! packages is fixed at load time, and asking for a package that does not exist is an error.

//!
//! Files: [`sources`] reads policy files and data, `engine` sets up regorus (limits, panics,
//! RVM compilation, rule discovery), `evaluate` runs one input, `rules` is the rule graph
//! (recursion), [`testing`] is `relgate test`.

mod engine;
mod evaluate;
mod rules;
mod sources;
pub(crate) mod testing;

use std::collections::BTreeSet;
use std::time::Duration;

use regorus::utils::limits::ExecutionTimerConfig;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::report::Severity;

pub(crate) use engine::{add_data, add_source, new_engine, panic_message};
use engine::{compile_program, declared_rules, digest_parts, timer_config};
pub use sources::{builtin_sources, PolicySource};
pub(crate) use sources::{read_data_file, read_dir_sources, read_policy_dirs, resolve_dirs};

/// Prefix of the built-in packages.
pub(crate) const BUILTIN_PREFIX: &str = "relgate.";

/// The bundle's shared library (`policies/lib.rego`), which every built-in package imports.
/// A team file that extends it changes every built-in package, so then they all count as
/// extended: they join the recursion check and run on the interpreter, never on an RVM program
/// compiled without the team's part of the library.
pub(crate) const LIB_PACKAGE: &str = "relgate.lib";

/// Default wall-clock limit of one policy evaluation.
pub(crate) const DEFAULT_EVAL_TIMEOUT: Duration = Duration::from_secs(5);

/// What kind of result a rule produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum RuleKind {
    Deny,
    Warn,
    Exception,
}

/// Names of the rules of one package that relgate evaluates.
#[derive(Debug, Clone)]
struct PackageRules {
    package: String,
    rules: BTreeSet<(String, RuleKind)>,
    /// Evaluated on the RVM (built-in packages that no team file extends).
    on_rvm: bool,
}

/// A finding as a policy produced it (before lines are resolved).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyFinding {
    pub(crate) rule: String,
    pub(crate) severity: Severity,
    pub(crate) message: String,
    /// Package, without `data.`.
    pub policy: String,
    pub(crate) path: Option<String>,
    pub(crate) item: Option<String>,
    pub(crate) remediation: Option<String>,
    /// The Rego rule that produced it (`deny`, `deny_latest`…).
    pub(crate) source_rule: String,
}

/// A finding an `exception` rule suppressed, with the exception that did it.
#[derive(Debug, Clone, PartialEq)]
pub struct SuppressedFinding {
    pub(crate) finding: PolicyFinding,
    pub(crate) exception: String,
    pub(crate) exception_policy: String,
}

/// The outcome of evaluating one input.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    pub findings: Vec<PolicyFinding>,
    pub suppressed: Vec<SuppressedFinding>,
}

/// Options that decide which policies are loaded.
#[derive(Debug, Clone, Default)]
pub(crate) struct PolicyOptions {
    /// Team sources (already read).
    pub(crate) sources: Vec<PolicySource>,
    /// Data documents (`--data`), as (shown path, value).
    pub(crate) data: Vec<(String, Value)>,
    /// `data.relgate.config`.
    pub(crate) config: Value,
    /// Packages named with `--namespace` or in config (besides `main` and the bundle).
    pub(crate) namespaces: Vec<String>,
    /// Wall-clock limit per evaluation.
    pub(crate) timeout: Option<Duration>,
    /// Include `*_test.rego` files (for `relgate test`).
    pub(crate) include_tests: bool,
}

/// The compiled policy set. Cloning is cheap (regorus shares the compiled modules and the
/// bytecode program); each worker thread evaluates with its own clone.
///
/// The built-in bundle runs on regorus' register VM (RVM), compiled once: it is 3–5x faster
/// than the tree-walking interpreter. Team packages (and built-in packages a team file
/// extends) run on the interpreter: the RVM compiler recurses without bound on some inputs
/// (a recursive rule overflows its stack, which no `catch_unwind` can catch), so it only ever
/// sees the bundle, which is ours and tested. The interpreter stays the reference: a rule on
/// which the RVM reports an error (other than the time limit) is evaluated again by the
/// interpreter, whose answer is final, and a differential test holds the two to the same
/// results on every demo and scenario manifest.
pub struct PolicySet {
    engine: regorus::Engine,
    packages: Vec<PackageRules>,
    /// Bytecode for the rules evaluated on the RVM; `None` until [`PolicySet::compile_rvm`]
    /// (or when the RVM cannot compile the bundle).
    program: Option<std::sync::Arc<regorus::rvm::Program>>,
    /// What `compile_rvm` compiles; taken when it has run.
    rvm_plan: Option<std::sync::Arc<RvmPlan>>,
    /// `data` as the RVM sees it (config and `--data` documents).
    data: regorus::Value,
    timer: ExecutionTimerConfig,
    /// This clone's VM, created on first use (VMs are not shared between threads).
    vm: Option<regorus::rvm::RegoVM>,
    /// Why the RVM is not used, when it is not.
    pub(crate) rvm_unavailable: Option<String>,
    /// `sha256:` over every policy source (path and text), the merged config and data.
    pub(crate) digest: String,
    /// Files loaded, in order.
    pub(crate) files: Vec<String>,
}

/// Everything needed to compile the bundle for the RVM.
#[derive(Debug)]
struct RvmPlan {
    sources: Vec<PolicySource>,
    config: Value,
    data: Vec<(String, Value)>,
    entry_points: Vec<String>,
    timeout: Option<Duration>,
}

impl Clone for PolicySet {
    fn clone(&self) -> Self {
        Self {
            engine: self.engine.clone(),
            packages: self.packages.clone(),
            program: self.program.clone(),
            rvm_plan: self.rvm_plan.clone(),
            data: self.data.clone(),
            timer: self.timer,
            vm: None,
            rvm_unavailable: self.rvm_unavailable.clone(),
            digest: self.digest.clone(),
            files: self.files.clone(),
        }
    }
}

impl std::fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySet")
            .field("digest", &self.digest)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl PolicySet {
    /// Compiles the bundle and the team's sources. Parse errors name file and line.
    pub(crate) fn load(options: &PolicyOptions) -> Result<Self> {
        let mut engine = new_engine(options.timeout);
        let mut sources = builtin_sources();
        sources.extend(options.sources.iter().cloned());
        sources.retain(|s| options.include_tests || !s.is_test());
        sources.sort_by(|a, b| (!a.builtin, &a.path).cmp(&(!b.builtin, &b.path)));

        // Each file once: two sources with one name would be two modules regorus cannot tell
        // apart (its rule lookups by file then fail), which once made a team's deny rules
        // vanish when a directory was named twice. Readers load each real path once; a
        // duplicate reaching this point is a bug, refused rather than guessed at.
        let mut names = BTreeSet::new();
        for source in &sources {
            if !names.insert(source.path.as_str()) {
                return Err(Error::Policy(format!(
                    "{}: the policy file is loaded twice; name each policy directory once",
                    source.path
                )));
            }
        }

        let mut errors = Vec::new();
        let mut loaded = Vec::new();
        for source in &sources {
            match add_source(&mut engine, source) {
                Ok(package) => loaded.push((source, package)),
                Err(message) => errors.push(message),
            }
        }
        if !errors.is_empty() {
            return Err(Error::Policy(format!(
                "policies failed to load:\n{}",
                errors.join("\n")
            )));
        }
        // The rules to evaluate and the recursion check both come from the syntax tree of
        // what was loaded, not from the text.
        // The team's rules (and the built-in packages a team file extends) are read from the
        // syntax tree of a second engine holding just those files: serializing the whole
        // bundle's tree on every run would cost more than the check. The bundle's own packages
        // cannot take part in a cycle with team rules unless a team file extends them, and
        // then they are in the tree.
        let team_packages: BTreeSet<&String> = loaded
            .iter()
            .filter(|(source, _)| !source.builtin)
            .map(|(_, package)| package)
            .collect();
        let lib_extended = team_packages.iter().any(|p| p.as_str() == LIB_PACKAGE);
        let in_graph = |source: &PolicySource, package: &String| {
            !source.builtin || team_packages.contains(package) || lib_extended
        };
        let mut graph_engine = new_engine(options.timeout);
        for (source, package) in &loaded {
            if in_graph(source, package) {
                add_source(&mut graph_engine, source).map_err(Error::Policy)?;
            }
        }
        let graph = if team_packages.is_empty() {
            rules::RuleGraph::default()
        } else {
            rules::RuleGraph::of(&graph_engine).map_err(Error::Policy)?
        };
        if let Some(recursion) = graph.recursion() {
            return Err(Error::Policy(format!(
                "policies failed to load:\n{recursion}"
            )));
        }
        add_data(&mut engine, &options.config, &options.data)?;
        let data = engine.get_data();

        // Packages to evaluate: the bundle, `main`, and the requested namespaces.
        let mut wanted: BTreeSet<String> = loaded
            .iter()
            .filter(|(source, package)| source.builtin && package.starts_with(BUILTIN_PREFIX))
            .map(|(_, package)| package.clone())
            .collect();
        wanted.insert("main".to_string());
        let present: BTreeSet<&String> = loaded.iter().map(|(_, package)| package).collect();
        for namespace in &options.namespaces {
            if !present.contains(namespace) {
                return Err(Error::Usage(format!(
                    "--namespace {namespace}: no loaded policy declares `package {namespace}` (loaded packages: {})",
                    present.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
                )));
            }
            wanted.insert(namespace.clone());
        }
        // Every deny/violation/warn/exception head of every evaluated package, from every
        // loaded module: a loaded rule that is not evaluated cannot exist by construction.
        // Team files (and the packages they extend) from the syntax tree; the rest of the
        // bundle from its heads, each confirmed by the engine (a failed lookup is an error).
        const FINDING_RULES: [&str; 4] = ["deny", "violation", "warn", "exception"];
        let mut heads: Vec<(String, String)> = graph
            .declared
            .iter()
            .filter(|d| !d.file.ends_with("_test.rego"))
            .map(|d| (d.package.clone(), d.name.clone()))
            .collect();
        for (source, package) in &loaded {
            if in_graph(source, package) || source.is_test() || !wanted.contains(package) {
                continue;
            }
            for (name, _) in declared_rules(&engine, source, &FINDING_RULES)? {
                heads.push((package.clone(), name));
            }
        }
        let mut packages: Vec<PackageRules> = Vec::new();
        for (package, name) in heads {
            if !wanted.contains(&package) || !rules::has_prefix(&name, &FINDING_RULES) {
                continue;
            }
            let kind = if name.starts_with("warn") {
                RuleKind::Warn
            } else if name.starts_with("exception") {
                RuleKind::Exception
            } else {
                RuleKind::Deny
            };
            match packages.iter_mut().find(|p| p.package == package) {
                Some(existing) => {
                    existing.rules.insert((name, kind));
                }
                None => packages.push(PackageRules {
                    package,
                    rules: BTreeSet::from([(name, kind)]),
                    on_rvm: false,
                }),
            }
        }
        packages.sort_by(|a, b| a.package.cmp(&b.package));
        // Built-in packages that no team file extends run on the RVM, compiled from a separate
        // engine that holds only the bundle.
        let team_packages: BTreeSet<&String> = loaded
            .iter()
            .filter(|(source, _)| !source.builtin)
            .map(|(_, package)| package)
            .collect();
        let builtin_packages: BTreeSet<&String> = loaded
            .iter()
            .filter(|(source, _)| source.builtin)
            .map(|(_, package)| package)
            .collect();
        for package in &mut packages {
            package.on_rvm = builtin_packages.contains(&package.package)
                && !team_packages.contains(&package.package)
                && !lib_extended;
        }
        let entry_points: Vec<String> = packages
            .iter()
            .filter(|p| p.on_rvm)
            .flat_map(|p| {
                p.rules
                    .iter()
                    .map(move |(rule, _)| format!("data.{}.{rule}", p.package))
            })
            .collect();
        // Compiled on demand (`compile_rvm`): it costs a few milliseconds, more than a small
        // run's whole evaluation.
        let rvm_plan = RvmPlan {
            sources: loaded
                .iter()
                .filter(|(source, _)| source.builtin && !source.is_test())
                .map(|(source, _)| (*source).clone())
                .collect(),
            config: options.config.clone(),
            data: options.data.clone(),
            entry_points,
            timeout: options.timeout,
        };

        let config_bytes = serde_json::to_vec(&options.config).unwrap_or_default();
        let data_bytes: Vec<Vec<u8>> = options
            .data
            .iter()
            .map(|(_, v)| serde_json::to_vec(v).unwrap_or_default())
            .collect();
        let digest = digest_parts(
            sources
                .iter()
                .flat_map(|s| [s.path.as_bytes(), s.text.as_bytes()])
                .chain(std::iter::once(config_bytes.as_slice()))
                .chain(data_bytes.iter().map(Vec::as_slice)),
        );
        Ok(Self {
            engine,
            packages,
            program: None,
            rvm_plan: Some(std::sync::Arc::new(rvm_plan)),
            data,
            timer: timer_config(options.timeout),
            vm: None,
            rvm_unavailable: None,
            digest,
            files: sources.iter().map(|s| s.path.clone()).collect(),
        })
    }

    /// The same set evaluated on the interpreter only: the reference the RVM is tested against.
    pub fn interpreter_only(mut self) -> Self {
        for package in &mut self.packages {
            package.on_rvm = false;
        }
        self
    }

    /// Compiles the bundle for the RVM (once; later calls do nothing). When the RVM cannot
    /// compile it, everything stays on the interpreter and `rvm_unavailable` says why.
    pub fn compile_rvm(&mut self) {
        let Some(plan) = self.rvm_plan.take() else {
            return;
        };
        let mut engine = new_engine(plan.timeout);
        let compiled = plan
            .sources
            .iter()
            .try_for_each(|source| {
                let guarded = PolicySource {
                    text: engine::rvm_text(&source.text),
                    ..source.clone()
                };
                add_source(&mut engine, &guarded).map(|_| ())
            })
            .and_then(|()| {
                add_data(&mut engine, &plan.config, &plan.data).map_err(|e| e.to_string())
            })
            .and_then(|()| compile_program(&mut engine, &plan.entry_points));
        match compiled {
            Ok(program) => self.program = Some(program),
            Err(reason) => {
                for package in &mut self.packages {
                    package.on_rvm = false;
                }
                self.rvm_unavailable = Some(reason);
            }
        }
    }

    /// Whether any package is evaluated on the RVM.
    pub fn uses_rvm(&self) -> bool {
        self.program.is_some() && self.packages.iter().any(|p| p.on_rvm)
    }

    /// Packages this set evaluates, with their rule names (for the tests of rule collection).
    #[cfg(test)]
    fn evaluated_rules(&self) -> Vec<(String, Vec<String>)> {
        self.packages
            .iter()
            .map(|p| {
                (
                    p.package.clone(),
                    p.rules.iter().map(|(n, _)| n.clone()).collect(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn source(text: &str) -> PolicySource {
        PolicySource {
            path: "p.rego".into(),
            text: text.into(),
            builtin: false,
            v0: false,
        }
    }

    fn team(path: &str, text: &str) -> PolicySource {
        PolicySource {
            path: path.into(),
            text: text.into(),
            builtin: false,
            v0: false,
        }
    }

    fn load(sources: Vec<PolicySource>, namespaces: &[&str]) -> Result<PolicySet> {
        PolicySet::load(&PolicyOptions {
            sources,
            namespaces: namespaces.iter().map(|n| (*n).to_string()).collect(),
            ..PolicyOptions::default()
        })
    }

    #[test]
    fn a_file_loaded_twice_is_an_error_not_a_lost_rule() {
        let deny = "package main\n\ndeny contains \"no\" if true\n";
        let err = load(
            vec![team("team/d.rego", deny), team("team/d.rego", deny)],
            &[],
        )
        .expect_err("duplicate");
        assert!(
            err.to_string()
                .contains("team/d.rego: the policy file is loaded twice"),
            "{err}"
        );
    }

    #[test]
    fn every_loaded_deny_warn_and_exception_head_is_evaluated() {
        // Heads spread over files, written every way Rego allows (incremental, ref heads,
        // one-line, suffixes), in `main` and a named namespace; a package nobody asked for
        // is not evaluated.
        let set = load(
            vec![
                team(
                    "team/a.rego",
                    "package main\n\ndeny contains \"a\" if false\nwarn_style contains \"w\" if false\n",
                ),
                team(
                    "team/b.rego",
                    "package main\n\nimport rego.v1\n\n  deny contains \"b\" if false\nviolation_x[\"v\"] if false\nexception contains \"x\" if false\nnot_a_deny := 1\ndenylist := 2\n",
                ),
                team("team/c.rego", "package extra\n\ndeny_c contains \"c\" if false\n"),
                team("team/d.rego", "package other\n\ndeny contains \"d\" if true\n"),
            ],
            &["extra"],
        )
        .expect("loads");
        let rules: BTreeMap<String, Vec<String>> = set.evaluated_rules().into_iter().collect();
        assert_eq!(
            rules.get("main").cloned().unwrap_or_default(),
            ["deny", "exception", "violation_x", "warn_style"]
        );
        assert_eq!(rules.get("extra").cloned().unwrap_or_default(), ["deny_c"]);
        assert!(!rules.contains_key("other"));
    }

    #[test]
    fn the_bundle_and_its_shared_library_compile_for_the_rvm() {
        // Every bundle package imports relgate.lib; the RVM must compile them all (a fallback
        // to the interpreter would be silent, only slower).
        let mut set = load(Vec::new(), &[]).expect("loads");
        set.compile_rvm();
        assert_eq!(set.rvm_unavailable, None);
        assert!(set.uses_rvm());
        // A team file extending the library extends every bundle package: all of them then
        // run on the interpreter, never on a program compiled without the team's part.
        let mut set = load(
            vec![team(
                "team/lib.rego",
                "package relgate.lib\n\nteam_helper := 1\n",
            )],
            &[],
        )
        .expect("loads");
        set.compile_rvm();
        assert!(!set.uses_rvm());
    }

    #[test]
    fn recursion_is_refused_with_file_and_line() {
        for (text, line) in [
            ("package main\n\nf(x) := y if {\n  y := f(x)\n}\n", 3),
            ("package main\n\nf(x) := g(x)\n\ng(x) := f(x)\n", 3),
            ("package main\n\na := b\n\nb := data.main.a\n", 3),
            (
                "package main\n\nimport data.main as m\n\nx contains 1 if m.x[1]\n",
                5,
            ),
            ("package main\n\nx contains 1 if data[\"main\"][\"x\"]\n", 3),
            ("package main\n\nx contains k if { some k; data[k] }\n", 3),
        ] {
            let err = load(vec![team("team/r.rego", text)], &[]).expect_err(text);
            let message = err.to_string();
            assert!(
                message.contains(&format!("team/r.rego:{line}: recursion: data.main.")),
                "{text}\n{message}"
            );
        }
        // Not recursion: a local that shadows a rule's name, a function calling a builtin of
        // the same name as a rule elsewhere, `else` chains.
        for text in [
            "package main\n\nf(x) := y if { y := x + 1 }\n\ng(x) := f(f(x))\n",
            "package main\n\ncount_all := count(input.items)\n\nx := 1 if { y := 1; y == 1 } else := 2\n",
        ] {
            load(vec![team("team/r.rego", text)], &[]).expect(text);
        }
    }

    #[test]
    fn deep_literals_are_refused_before_parsing() {
        let deep = format!("package p\n\nx := {}{}\n", "[".repeat(40), "]".repeat(40));
        let mut engine = new_engine(None);
        let err = add_source(&mut engine, &source(&deep)).expect_err("refused");
        assert!(
            err.starts_with("p.rego:3: brackets nest 40 levels deep"),
            "{err}"
        );
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let mut engine = new_engine(None);
        let err = add_source(
            &mut engine,
            &source("package p\n\ndeny contains x if {\n  x := \n}\n"),
        )
        .expect_err("syntax");
        assert!(
            err.contains("p.rego:4:5") && err.contains("expecting `}`"),
            "{err}"
        );
    }

    #[test]
    fn hostile_sources_never_escape_as_panics() {
        // Truncations of a real policy at every byte: each is loaded or refused, never a crash.
        let text = builtin_sources()
            .into_iter()
            .find(|s| s.path == "policies/pii.rego")
            .map(|s| s.text)
            .unwrap_or_default();
        let mut boundaries: Vec<usize> = (0..text.len())
            .step_by(7)
            .filter(|i| text.is_char_boundary(*i))
            .collect();
        boundaries.push(text.len());
        for end in boundaries {
            let mut engine = new_engine(None);
            let _ = add_source(&mut engine, &source(&text[..end]));
        }
    }
}
