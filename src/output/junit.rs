//! `--format junit`: JUnit XML for CI test reports. One `<testsuite>` per manifest, named
//! `file#document name@version`; one `<testcase>` per policy area of the rule catalogue
//! marked `junit` (`relgate.prr`, `relgate.evals`, `relgate.error_budget`, `relgate.pii`,
//! `relgate.release`, `relgate.approvals`, `relgate.schema`, in catalogue order), then any other
//! package that produced findings (team packages, `relgate.gate`), sorted. A testcase with deny findings has one `<failure>` listing them (`type` is the rule,
//! or the rules comma-separated); its warnings go to `<system-out>`. When the schema failed the
//! policy areas are `<skipped>` (they were not run); so is `relgate.approvals` in a run without
//! pull-request context. A manifest that could not be evaluated is one testcase with an `<error>`.
//! `<testsuites>` carries the totals `tests`, `failures` and `errors`; not `skipped`, which
//! the Jenkins xunit JUnit schema (the one CI servers validate against) allows only on
//! `<testsuite>`. tests/it/cli/outputs.rs validates the output against that XSD.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::report::{Finding, ManifestResult, Report, APPROVALS_NOT_EVALUATED};

/// The policy areas every manifest gets a testcase for, in report order: the rule catalogue's
/// areas marked `junit` (`crate::catalogue`).
fn areas() -> Vec<&'static str> {
    crate::catalogue::catalogue()
        .areas
        .iter()
        .filter(|a| a.junit)
        .map(|a| a.package.as_str())
        .collect()
}

#[derive(Default)]
struct Totals {
    tests: usize,
    failures: usize,
    errors: usize,
    skipped: usize,
}

pub(crate) fn render(report: &Report) -> String {
    let mut body = String::new();
    let mut total = Totals::default();
    for result in &report.results {
        let totals = suite(&mut body, result, report.approvals_evaluated);
        total.tests += totals.tests;
        total.failures += totals.failures;
        total.errors += totals.errors;
    }
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"relgate\" tests=\"{}\" failures=\"{}\" errors=\"{}\">",
        total.tests, total.failures, total.errors
    );
    out.push_str(&body);
    out.push_str("</testsuites>\n");
    out
}

fn suite_name(result: &ManifestResult) -> String {
    let mut name = format!("{}#{}", result.file, result.document);
    match (&result.name, &result.version) {
        (Some(n), Some(v)) => {
            let _ = write!(name, " {n}@{v}");
        }
        (Some(n), None) => {
            let _ = write!(name, " {n}");
        }
        _ => {}
    }
    name
}

fn suite(out: &mut String, result: &ManifestResult, approvals_evaluated: bool) -> Totals {
    let name = suite_name(result);
    let mut cases = String::new();
    let mut totals = Totals::default();
    if let Some(error) = &result.error {
        totals.tests = 1;
        totals.errors = 1;
        let _ = writeln!(
            cases,
            "    <testcase name=\"relgate\" classname=\"{}\">\n      <error message=\"{}\" type=\"error\">{}</error>\n    </testcase>",
            escape(&name),
            escape(error),
            escape(error),
        );
    } else {
        let schema_failed = result.findings.iter().any(|f| f.policy == "relgate.schema");
        let areas = areas();
        let extra: BTreeSet<&str> = result
            .findings
            .iter()
            .map(|f| f.policy.as_str())
            .filter(|p| !areas.contains(p))
            .collect();
        for area in areas.iter().copied().chain(extra) {
            totals.tests += 1;
            let findings: Vec<&Finding> = result
                .findings
                .iter()
                .filter(|f| f.policy == area)
                .collect();
            let denials: Vec<&&Finding> =
                findings.iter().filter(|f| !f.severity.is_warn()).collect();
            let warnings: Vec<&&Finding> =
                findings.iter().filter(|f| f.severity.is_warn()).collect();
            let skipped = if !findings.is_empty() {
                None
            } else if schema_failed && area != "relgate.schema" {
                Some("not evaluated: the manifest does not match its schema")
            } else if area == "relgate.approvals" && !approvals_evaluated {
                Some(APPROVALS_NOT_EVALUATED)
            } else {
                None
            };
            let _ = write!(
                cases,
                "    <testcase name=\"{}\" classname=\"{}\"",
                escape(area),
                escape(&name)
            );
            if denials.is_empty() && warnings.is_empty() && skipped.is_none() {
                cases.push_str("/>\n");
                continue;
            }
            cases.push_str(">\n");
            if let Some(why) = skipped {
                totals.skipped += 1;
                let _ = writeln!(cases, "      <skipped message=\"{}\"/>", escape(why));
            }
            if !denials.is_empty() {
                totals.failures += 1;
                let message = match denials.as_slice() {
                    [only] => only.message.clone(),
                    many => format!("{} policy violations", many.len()),
                };
                let rules: BTreeSet<&str> = denials.iter().map(|f| f.rule.as_str()).collect();
                let rules: Vec<&str> = rules.into_iter().collect();
                let _ = write!(
                    cases,
                    "      <failure message=\"{}\" type=\"{}\">",
                    escape(&message),
                    escape(&rules.join(", "))
                );
                for f in &denials {
                    cases.push_str(&escape(&line(result, f)));
                }
                cases.push_str("</failure>\n");
            }
            if !warnings.is_empty() {
                cases.push_str("      <system-out>");
                for f in &warnings {
                    cases.push_str(&escape(&line(result, f)));
                }
                cases.push_str("</system-out>\n");
            }
            cases.push_str("    </testcase>\n");
        }
    }
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">",
        escape(&name),
        totals.tests,
        totals.failures,
        totals.errors,
        totals.skipped
    );
    out.push_str(&cases);
    out.push_str("  </testsuite>\n");
    totals
}

/// One finding as a line of text: `file:line RULE: message`, then its field and fix.
fn line(result: &ManifestResult, f: &Finding) -> String {
    let mut text = format!(
        "{}:{} {} ({}): {}",
        result.file, f.line, f.rule, f.severity, f.message
    );
    if let Some(path) = &f.path {
        let _ = write!(text, "\n  field: {path}");
    }
    if let Some(fix) = &f.remediation {
        let _ = write!(text, "\n  fix: {fix}");
    }
    text.push('\n');
    text
}

/// Escapes text for an XML attribute or element: the five predefined entities; tab, CR and LF
/// as character references (so attribute values keep them); other characters XML 1.0 forbids
/// (C0 controls) as U+FFFD.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn xml_special_characters_are_escaped() {
        assert_eq!(
            escape("a&b<c>\"d'\n\u{1}"),
            "a&amp;b&lt;c&gt;&quot;d&apos;&#10;\u{FFFD}"
        );
    }
}
