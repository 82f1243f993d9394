//! A regorus engine with relgate's limits: the nesting limit checked before parsing, panics
//! caught, the wall-clock limit per evaluation, RVM compilation, rule discovery in a source, the
//! policy digest and the `data` documents.

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use regorus::utils::limits::ExecutionTimerConfig;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::{PolicySource, DEFAULT_EVAL_TIMEOUT};
use crate::error::{Error, Result};

/// Deepest nesting of `[` and `{` a policy may use. regorus 0.14's parser backtracks on nested
/// array, set and object literals and takes time exponential in their depth (about 2x per
/// level: 16 levels take seconds, 24 never finish), and parsing has no time limit. Real
/// policies nest a handful of levels; refusing deeper ones keeps a hostile or generated
/// policy from hanging the gate.
pub(crate) const MAX_POLICY_NESTING: usize = 12;

/// Deepest `[`/`{` nesting of a Rego source and the line where it is reached, ignoring strings,
/// raw strings and comments.
fn literal_nesting(text: &str) -> (usize, u32) {
    let (mut depth, mut deepest, mut deepest_line, mut line) = (0usize, 0usize, 1u32, 1u32);
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    match c {
                        _ if escaped => escaped = false,
                        '\\' => escaped = true,
                        '"' | '\n' => break,
                        _ => {}
                    }
                }
            }
            '`' => {
                for c in chars.by_ref() {
                    match c {
                        '`' => break,
                        '\n' => line += 1,
                        _ => {}
                    }
                }
            }
            '[' | '{' => {
                depth += 1;
                if depth > deepest {
                    deepest = depth;
                    deepest_line = line;
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    (deepest, deepest_line)
}

/// Adds one policy file to an engine; a regorus panic is caught and reported as a load error.
pub(crate) fn add_source(
    engine: &mut regorus::Engine,
    source: &PolicySource,
) -> std::result::Result<String, String> {
    let (depth, line) = literal_nesting(&source.text);
    if depth > MAX_POLICY_NESTING {
        return Err(format!(
            "{}:{line}: brackets nest {depth} levels deep here (limit {MAX_POLICY_NESTING}); the Rego parser slows down exponentially with nesting: flatten the literal or move the value into a data file (--data)",
            source.path
        ));
    }
    // The syntax version applies to the files added after it is set.
    engine.set_rego_v0(source.v0);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        engine.add_policy(source.path.clone(), source.text.clone())
    }));
    match outcome {
        Ok(Ok(package)) => Ok(package.strip_prefix("data.").unwrap_or(&package).to_string()),
        Ok(Err(err)) => Err(format!("{err}")),
        Err(panic) => Err(format!(
            "{}: the Rego parser crashed on this file ({}); this is a regorus bug, please simplify the file around the construct it names",
            source.path,
            panic_message(&panic)
        )),
    }
}

/// Text of a caught panic.
pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

/// The wall-clock limit of one evaluation.
pub(super) fn timer_config(timeout: Option<Duration>) -> ExecutionTimerConfig {
    ExecutionTimerConfig {
        limit: timeout.unwrap_or(DEFAULT_EVAL_TIMEOUT),
        // Check the clock every 1,000 work units: cheap, and a runaway policy stops within
        // milliseconds of the limit.
        check_interval: NonZeroU32::new(1000).unwrap_or(NonZeroU32::MIN),
    }
}

/// A new engine with relgate's limits.
pub(crate) fn new_engine(timeout: Option<Duration>) -> regorus::Engine {
    let mut engine = regorus::Engine::new();
    engine.set_strict_builtin_errors(false);
    engine.set_gather_prints(true);
    engine.set_execution_timer_config(timer_config(timeout));
    engine
}

/// The text of a bundle file as the RVM compiles it: every body assignment `x := e` (a line
/// indented by tabs that starts with an identifier and ` := `; the bundle writes rule heads at
/// column 0 and one statement per line) becomes the unification `x = e`.
///
/// Why: regorus' RVM (0.14) emits no "defined" check for `:=` in a rule body, so `x := e` with
/// `e` undefined does not stop the body as Rego requires; `x` holds "undefined" and the body
/// goes on, where `not f(x)`, `sprintf`, or building an object from `x` succeed. A deny rule
/// then fires where the interpreter's does not, and a helper that is true where it should be
/// undefined turns a `not helper(..)` off: the two engines decide differently. `x = e` with
/// `x` not yet bound means the same in Rego, and the RVM does check it.
///
/// Sound only because the RVM's engine holds the bundle alone (no test or team file, which
/// could declare a rule named like a local and turn `x = e` into a comparison); a unit test
/// holds every rewritten name apart from the names each bundle package declares or imports,
/// and `tests/it/rvm_differential.rs` holds both engines to the same findings.
pub(super) fn rvm_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_start_matches('\t');
        let indent = line.len() - body.len();
        let name = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(body.len());
        let is_name = name > 0 && !body.starts_with(|c: char| c.is_ascii_digit());
        match body[name..].strip_prefix(" := ") {
            Some(rest) if indent > 0 && is_name => {
                out.push_str(&line[..indent + name]);
                out.push_str(" = ");
                out.push_str(rest);
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// Compiles the evaluated rules to RVM bytecode. Any failure (a construct or builtin the RVM
/// does not support yet, or a panic inside the compiler) is returned as text and the set runs
/// on the interpreter.
pub(super) fn compile_program(
    engine: &mut regorus::Engine,
    entry_points: &[String],
) -> std::result::Result<std::sync::Arc<regorus::rvm::Program>, String> {
    let Some(first) = entry_points.first() else {
        return Err("no rules to compile".to_string());
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let compiled = engine
            .compile_with_entrypoint(&first.as_str().into())
            .map_err(|e| e.to_string())?;
        let names: Vec<&str> = entry_points.iter().map(String::as_str).collect();
        regorus::languages::rego::compiler::Compiler::compile_from_policy(&compiled, &names)
            .map_err(|e| e.to_string())
    }));
    match outcome {
        Ok(result) => result,
        Err(panic) => Err(format!(
            "the RVM compiler crashed: {}",
            panic_message(&panic)
        )),
    }
}

/// Rule heads declared in a built-in source whose names are one of `prefixes` (or one followed
/// by `_suffix`). A textual scan proposes names (the bundle puts every head at the start of a
/// line); the engine confirms each one is a declared rule, so a local variable called `deny_x`
/// is never taken. A lookup the engine cannot answer is an error, never "no such rule".
pub(super) fn declared_rules(
    engine: &regorus::Engine,
    source: &PolicySource,
    prefixes: &[&str],
) -> Result<BTreeSet<(String, u32)>> {
    let mut names = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for (number, line) in source.text.lines().enumerate() {
        let trimmed = line.trim_start();
        let end = trimmed
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(trimmed.len());
        let name = &trimmed[..end];
        if !super::rules::has_prefix(name, prefixes) || !seen.insert(name.to_string()) {
            continue;
        }
        let declared = engine
            .has_declared_rule_rooted_at(&source.path, name)
            .map_err(|e| {
                Error::Policy(format!(
                    "{}: cannot look up rule `{name}`: {e}",
                    source.path
                ))
            })?;
        if declared {
            names.insert((
                name.to_string(),
                u32::try_from(number + 1).unwrap_or(u32::MAX),
            ));
        }
    }
    Ok(names)
}

/// sha256 over length-prefixed parts, so no two different inputs share a digest.
pub(super) fn digest_parts<'a>(parts: impl Iterator<Item = &'a [u8]>) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// Adds `data.relgate.config` and the `--data` documents to an engine.
pub(crate) fn add_data(
    engine: &mut regorus::Engine,
    config: &Value,
    data: &[(String, Value)],
) -> Result<()> {
    let config_doc = serde_json::json!({"relgate": {"config": config}});
    engine
        .add_data(regorus::Value::from(config_doc))
        .map_err(|e| Error::Policy(format!("cannot add the gate config as data: {e}")))?;
    for (shown, value) in data {
        if !value.is_object() {
            return Err(Error::Usage(format!(
                "{shown}: a data document must be a mapping at the top level"
            )));
        }
        engine
            .add_data(regorus::Value::from(value.clone()))
            .map_err(|e| Error::Usage(format!("{shown}: cannot add data document: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn nesting_ignores_strings_and_comments() {
        assert_eq!(
            literal_nesting("x := [[1]]\n# [[[[[[\ny := \"[[[[\"\nz := `{{{{`\n"),
            (2, 1)
        );
        assert_eq!(literal_nesting("a := 1\nb := {\"k\": [{}]}\n"), (3, 2));
    }

    /// Evaluates `data.t.p` of `text` on the RVM.
    fn on_rvm(text: &str) -> regorus::Value {
        let mut engine = new_engine(None);
        engine
            .add_policy("t.rego".into(), text.into())
            .expect("policy");
        let program = compile_program(&mut engine, &["data.t.p".to_string()]).expect("compile");
        let mut vm = regorus::rvm::RegoVM::new();
        vm.load_program(program);
        vm.set_input(regorus::Value::new_object());
        vm.execute_entry_point_by_name("data.t.p").expect("run")
    }

    /// The RVM bug `rvm_text` works around. When this fails, regorus checks `:=` itself and
    /// `rvm_text` can go.
    #[test]
    fn the_rvm_goes_on_past_an_undefined_colon_assignment_and_rvm_text_stops_it() {
        let text = "package t\n\np if {\n\tx := input.missing\n\tnot x == 1\n}\n";
        assert_eq!(
            on_rvm(text),
            regorus::Value::Bool(true),
            "the RVM bug is fixed"
        );
        assert_eq!(on_rvm(&rvm_text(text)), regorus::Value::Undefined);
        // A defined value still binds.
        let defined = "package t\n\np := y if {\n\tx := {\"a\": 2}\n\ty := x.a\n}\n";
        assert_eq!(on_rvm(&rvm_text(defined)), regorus::Value::from(2u64));
    }

    #[test]
    fn rvm_text_rewrites_body_assignments_only() {
        let text = "package t\n\nx := 1 if {\n\ty := 2\n\t\tz_1 := {\n\t\t\"k\": 1,\n\t}\n\t# w := 3\n\ty == 2\n\t9 := y\n}\n";
        assert_eq!(
            rvm_text(text),
            "package t\n\nx := 1 if {\n\ty = 2\n\t\tz_1 = {\n\t\t\"k\": 1,\n\t}\n\t# w := 3\n\ty == 2\n\t9 := y\n}\n"
        );
    }

    /// `x = e` is a comparison when `x` names a rule or import of the package: every name the
    /// rewrite touches in the bundle must be a local, and every body assignment must be one the
    /// rewrite sees (one statement per line).
    #[test]
    fn every_bundle_body_assignment_is_rewritten_and_none_names_a_rule_or_import() {
        let sources: Vec<PolicySource> = super::super::builtin_sources()
            .into_iter()
            .filter(|s| !s.is_test())
            .collect();
        let package_of = |text: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix("package "))
                .map(str::trim)
                .unwrap_or_default()
                .to_string()
        };
        // Names declared at package level (rule heads start at column 0) or imported.
        let mut declared: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for source in &sources {
            let names = declared.entry(package_of(&source.text)).or_default();
            for line in source.text.lines() {
                if let Some(import) = line.strip_prefix("import ") {
                    let import = import.trim();
                    let name = import
                        .split_once(" as ")
                        .map(|(_, alias)| alias)
                        .unwrap_or_else(|| import.rsplit('.').next().unwrap_or_default());
                    names.insert(name.trim().to_string());
                    continue;
                }
                let head: String = line
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !head.is_empty() && !["package", "else", "default"].contains(&head.as_str()) {
                    names.insert(head);
                }
            }
        }
        let mut rewritten = 0;
        for source in &sources {
            let names = &declared[&package_of(&source.text)];
            let guarded = rvm_text(&source.text);
            for (before, after) in source.text.lines().zip(guarded.lines()) {
                if before == after {
                    let statement = after.trim_start_matches('\t');
                    assert!(
                        after.len() == statement.len()
                            || statement.starts_with('#')
                            || !statement.contains(" := "),
                        "{}: a body assignment rvm_text cannot see: {after}",
                        source.path
                    );
                    continue;
                }
                rewritten += 1;
                let name = after
                    .trim_start_matches('\t')
                    .split(' ')
                    .next()
                    .unwrap_or_default();
                assert!(
                    !names.contains(name),
                    "{}: `{name}` is assigned in a body and declared by its package: {before}",
                    source.path
                );
            }
        }
        assert!(
            rewritten > 200,
            "only {rewritten} body assignments rewritten"
        );
    }
}
