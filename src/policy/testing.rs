//! `relgate test`: runs Rego unit tests (`test_*` rules) the way `opa test` does. Each file is
//! loaded on its own so one that does not parse is reported (path and line) while the others
//! still run; each test is evaluated separately so one failure or crash never hides another.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::rules::{has_prefix, RuleGraph};
use super::{add_data, add_source, new_engine, panic_message, PolicySource};
use crate::error::Result;

/// The outcome of one test.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Outcome {
    Pass,
    Fail,
    Error,
}

/// One test's result.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TestResult {
    /// `data.<package>.<rule>`.
    pub(crate) name: String,
    pub(crate) package: String,
    pub(crate) file: String,
    pub(crate) line: u32,
    pub(crate) outcome: Outcome,
    /// Why it failed or errored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) message: Option<String>,
}

/// A file that did not load.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LoadError {
    pub(crate) file: String,
    pub(crate) message: String,
}

/// Coverage of one non-test policy file.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FileCoverage {
    pub(crate) file: String,
    pub(crate) covered: usize,
    pub(crate) not_covered: usize,
    pub(crate) percent: f64,
    pub(crate) not_covered_lines: Vec<u32>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TestReport {
    pub(crate) passed: usize,
    pub(crate) failed: usize,
    pub(crate) errors: usize,
    pub(crate) tests: Vec<TestResult>,
    pub(crate) load_errors: Vec<LoadError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) coverage: Option<CoverageReport>,
}

/// Coverage over all non-test files.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CoverageReport {
    pub(crate) percent: f64,
    pub(crate) files: Vec<FileCoverage>,
}

/// What to run.
#[derive(Debug, Clone, Default)]
pub(crate) struct TestOptions {
    pub(crate) sources: Vec<PolicySource>,
    pub(crate) config: Value,
    pub(crate) data: Vec<(String, Value)>,
    pub(crate) coverage: bool,
    /// Only tests whose full name contains this text.
    pub(crate) filter: Option<String>,
    pub(crate) timeout: Option<Duration>,
}

/// Runs every test of `options.sources`.
pub(crate) fn run(options: &TestOptions) -> Result<TestReport> {
    let mut engine = new_engine(options.timeout);
    let mut load_errors = Vec::new();
    let mut loaded: Vec<(&PolicySource, String)> = Vec::new();
    for source in &options.sources {
        match add_source(&mut engine, source) {
            Ok(package) => loaded.push((source, package)),
            Err(message) => load_errors.push(LoadError {
                file: source.path.clone(),
                message,
            }),
        }
    }
    add_data(&mut engine, &options.config, &options.data)?;
    if options.coverage {
        engine.set_enable_coverage(true);
    }

    // Tests are every `test`/`test_*` head of the loaded syntax tree. A recursive rule would
    // overflow the evaluator's stack: refused for the whole run, like `relgate check` does.
    let graph = RuleGraph::of(&engine).map_err(crate::error::Error::Policy)?;
    if let Some(recursion) = graph.recursion() {
        return Err(crate::error::Error::Policy(format!(
            "policies failed to load:\n{recursion}"
        )));
    }
    // A test may be defined in several bodies (incremental definition); it is one test.
    let mut tests: BTreeMap<(String, String), (String, u32)> = BTreeMap::new();
    for declared in &graph.declared {
        if has_prefix(&declared.name, &["test"]) {
            tests
                .entry((declared.package.clone(), declared.name.clone()))
                .or_insert_with(|| (declared.file.clone(), declared.line));
        }
    }
    let mut results = Vec::new();
    for ((package, rule), (file, line)) in tests {
        let name = format!("data.{package}.{rule}");
        if options.filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let query = name.clone();
        let outcome = catch_unwind(AssertUnwindSafe(|| engine.eval_rule(query)));
        let (outcome, message) = match outcome {
            Ok(Ok(regorus::Value::Bool(true))) => (Outcome::Pass, None),
            Ok(Ok(regorus::Value::Undefined)) => (
                Outcome::Fail,
                Some("the test body is not true (undefined)".to_string()),
            ),
            Ok(Ok(other)) => (
                Outcome::Fail,
                Some(format!("the test evaluated to {other}, not true")),
            ),
            Ok(Err(err)) => (Outcome::Error, Some(err.to_string())),
            Err(panic) => (
                Outcome::Error,
                Some(format!("the evaluator crashed: {}", panic_message(&panic))),
            ),
        };
        results.push(TestResult {
            name,
            package,
            file,
            line,
            outcome,
            message,
        });
    }
    results.sort_by(|a, b| (&a.file, a.line, &a.name).cmp(&(&b.file, b.line, &b.name)));

    let coverage = if options.coverage {
        Some(coverage_report(&engine, &options.sources)?)
    } else {
        None
    };
    Ok(TestReport {
        passed: results
            .iter()
            .filter(|r| r.outcome == Outcome::Pass)
            .count(),
        failed: results
            .iter()
            .filter(|r| r.outcome == Outcome::Fail)
            .count(),
        errors: results
            .iter()
            .filter(|r| r.outcome == Outcome::Error)
            .count(),
        tests: results,
        load_errors,
        coverage,
    })
}

fn coverage_report(engine: &regorus::Engine, sources: &[PolicySource]) -> Result<CoverageReport> {
    let report = engine
        .get_coverage_report()
        .map_err(|e| crate::error::Error::Policy(format!("coverage report failed: {e}")))?;
    let mut files = Vec::new();
    let (mut covered_total, mut lines_total) = (0usize, 0usize);
    for file in &report.files {
        let is_test = sources.iter().any(|s| s.path == file.path && s.is_test());
        if is_test || file.path.ends_with("_test.rego") {
            continue;
        }
        let covered = file.covered.len();
        let not_covered = file.not_covered.len();
        let total = covered + not_covered;
        covered_total += covered;
        lines_total += total;
        files.push(FileCoverage {
            file: file.path.clone(),
            covered,
            not_covered,
            percent: percent(covered, total),
            not_covered_lines: file.not_covered.iter().copied().collect(),
        });
    }
    files.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(CoverageReport {
        percent: percent(covered_total, lines_total),
        files,
    })
}

fn percent(part: usize, total: usize) -> f64 {
    if total == 0 {
        100.0
    } else {
        // Rounded to 0.01 so reports are stable.
        ((part as f64) * 10_000.0 / (total as f64)).round() / 100.0
    }
}
