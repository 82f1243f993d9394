//! Evaluating one input: every deny/violation/warn rule of every evaluated package (on the RVM
//! when it can, else on the interpreter), their values read under the conftest contract, then
//! the exceptions applied. Any policy error fails the whole evaluation.

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::Value;

use super::engine::panic_message;
use super::{Evaluation, PolicyFinding, PolicySet, RuleKind, SuppressedFinding};
use crate::report::Severity;

impl PolicySet {
    /// This clone's VM, created on first use.
    fn vm(&mut self) -> Option<&mut regorus::rvm::RegoVM> {
        if self.vm.is_none() {
            let program = self.program.clone()?;
            let mut vm = regorus::rvm::RegoVM::new();
            vm.load_program(program);
            vm.set_execution_timer_config(Some(self.timer));
            if vm.set_data(self.data.clone()).is_err() {
                self.program = None;
                return None;
            }
            self.vm = Some(vm);
        }
        self.vm.as_mut()
    }

    /// Evaluates one rule: on the RVM when it can, else (or when the RVM reports an error) on
    /// the interpreter, whose answer is final.
    fn eval_rule(
        &mut self,
        query: &str,
        on_rvm: bool,
        input: &regorus::Value,
        interpreter_has_input: &mut bool,
    ) -> std::result::Result<regorus::Value, String> {
        if on_rvm {
            if let Some(vm) = self.vm() {
                vm.set_input(input.clone());
                match catch_unwind(AssertUnwindSafe(|| vm.execute_entry_point_by_name(query))) {
                    Ok(Ok(value)) => return Ok(value),
                    // Running the same work again on the interpreter would only double the wait.
                    Ok(Err(err @ regorus::rvm::vm::VmError::TimeLimitExceeded { .. })) => {
                        return Err(format!("policy {query} failed: {err}"))
                    }
                    _ => {}
                }
            }
        }
        if !*interpreter_has_input {
            self.engine.set_input(input.clone());
            *interpreter_has_input = true;
        }
        let engine = &mut self.engine;
        match catch_unwind(AssertUnwindSafe(|| engine.eval_rule(query.to_string()))) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(format!("policy {query} failed: {err}")),
            Err(panic) => Err(format!(
                "policy {query} crashed the evaluator: {}",
                panic_message(&panic)
            )),
        }
    }

    /// Evaluates every deny/violation/warn rule of every evaluated package against `input`,
    /// then applies exceptions. Any policy error fails the whole evaluation.
    pub fn evaluate(&mut self, input: regorus::Value) -> std::result::Result<Evaluation, String> {
        let mut findings = Vec::new();
        // (package, name) of every exception that holds.
        let mut exceptions: Vec<(String, String)> = Vec::new();
        let mut interpreter_has_input = false;
        let rules: Vec<(String, String, RuleKind, bool)> = self
            .packages
            .iter()
            .flat_map(|p| {
                p.rules
                    .iter()
                    .map(move |(rule, kind)| (p.package.clone(), rule.clone(), *kind, p.on_rvm))
            })
            .collect();
        for (package, rule, kind, on_rvm) in rules {
            let query = format!("data.{package}.{rule}");
            let value = self.eval_rule(&query, on_rvm, &input, &mut interpreter_has_input)?;
            if value == regorus::Value::Undefined {
                continue;
            }
            let json = serde_json::to_value(&value)
                .map_err(|e| format!("policy {query} returned a value that is not JSON: {e}"))?;
            match kind {
                RuleKind::Exception => collect_exceptions(&package, &query, json, &mut exceptions)?,
                RuleKind::Deny | RuleKind::Warn => {
                    let severity = if kind == RuleKind::Warn {
                        Severity::Warn
                    } else {
                        Severity::Deny
                    };
                    collect_findings(&package, &rule, severity, &query, json, &mut findings)?;
                }
            }
        }
        let mut evaluation = Evaluation::default();
        for finding in findings {
            let suffix = finding
                .source_rule
                .split_once('_')
                .map(|(_, suffix)| suffix.to_string());
            let matched = exceptions.iter().find(|(package, name)| {
                (package == &finding.policy && suffix.as_deref() == Some(name.as_str()))
                    || name == &finding.rule
            });
            match matched {
                Some((package, name)) => evaluation.suppressed.push(SuppressedFinding {
                    finding,
                    exception: name.clone(),
                    exception_policy: package.clone(),
                }),
                None => evaluation.findings.push(finding),
            }
        }
        Ok(evaluation)
    }
}

fn collect_exceptions(
    package: &str,
    query: &str,
    value: Value,
    out: &mut Vec<(String, String)>,
) -> std::result::Result<(), String> {
    let items = match value {
        Value::Array(items) => items,
        Value::Bool(false) => return Ok(()),
        other => return Err(format!("{query} must be a set of rule names, got {other}")),
    };
    for item in items {
        match item {
            Value::String(name) => out.push((package.to_string(), name)),
            // conftest style: `exception contains rules if { rules := ["a", "b"] }`.
            Value::Array(names) => {
                for name in names {
                    match name {
                        Value::String(name) => out.push((package.to_string(), name)),
                        other => {
                            return Err(format!(
                                "{query}: exception names must be strings, got {other}"
                            ))
                        }
                    }
                }
            }
            other => {
                return Err(format!(
                    "{query}: exception names must be strings, got {other}"
                ))
            }
        }
    }
    Ok(())
}

fn collect_findings(
    package: &str,
    rule: &str,
    severity: Severity,
    query: &str,
    value: Value,
    out: &mut Vec<PolicyFinding>,
) -> std::result::Result<(), String> {
    let items = match value {
        Value::Array(items) => items,
        Value::Bool(true) => vec![Value::String(format!("{rule} is true"))],
        Value::Bool(false) => Vec::new(),
        Value::String(message) => vec![Value::String(message)],
        other => {
            return Err(format!(
                "{query} must be a set of messages (strings or objects with `msg`), got {other}"
            ))
        }
    };
    for item in items {
        let finding = match item {
            Value::String(message) => PolicyFinding {
                rule: rule.to_string(),
                severity,
                message,
                policy: package.to_string(),
                path: None,
                item: None,
                remediation: None,
                source_rule: rule.to_string(),
            },
            Value::Object(map) => {
                let text = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_string);
                let message = text("msg").or_else(|| text("message")).ok_or_else(|| {
                    format!(
                        "{query} returned an object without a string `msg`: {}",
                        Value::Object(map.clone())
                    )
                })?;
                PolicyFinding {
                    rule: text("rule").unwrap_or_else(|| rule.to_string()),
                    severity,
                    message,
                    policy: package.to_string(),
                    path: text("path"),
                    item: text("item"),
                    remediation: text("remediation"),
                    source_rule: rule.to_string(),
                }
            }
            other => {
                return Err(format!(
                    "{query} must contain strings or objects with `msg`, got {other}"
                ))
            }
        };
        out.push(finding);
    }
    Ok(())
}
