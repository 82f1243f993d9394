//! promptfoo results (`promptfoo eval -o results.json`, or `promptfoo export`).
//!
//! Accepted shapes: the output file `{evalId, results: EvaluateSummary, config, ...}` or a bare
//! `EvaluateSummary`. Both summary versions are read: v3 (`{version: 3, prompts, results,
//! stats}`) and v2 (`{version: 2, table: {head: {prompts}}, results, stats}`). Metrics are
//! computed from the per-test results (`results[]`, one per test × prompt × provider), not from
//! promptfoo's own per-prompt aggregates:
//!
//! | metric | value | stderr | samples |
//! | --- | --- | --- | --- |
//! | `pass_rate` | share of results with `success: true` (errors count as failures) | sqrt(p(1-p)/n) | results |
//! | `score` | mean of `score` | sd/sqrt(n) | results with a score |
//! | `namedScores.<name>` | mean of `namedScores.<name>` over results that have it | sd/sqrt(n) | those results |
//! | `latency_p50_ms`, `latency_p95_ms` | nearest-rank percentile of `latencyMs`, cached responses left out | - | results with a latency |
//! | `cost_per_request` | mean of `cost` | sd/sqrt(n) | results with a cost |
//!
//! `pass_rate`, `score` and `namedScores.*` are higher-is-better; latency and cost are not.
//! (promptfoo's own `prompts[].metrics.score` is a sum over tests, not a mean.)
//!
//! The prompts: `prompts[].raw` (v3) or `table.head.prompts[].raw` (v2) is the prompt template
//! as promptfoo read it (text prompt files are trimmed). relgate records the sha256 of each
//! distinct template text, and of that text plus a final `\n`, in
//! [`PromptEvidence::digests`]; promptfoo's own ids (`prompts[].id`, `results[].promptId`) are
//! kept in [`PromptEvidence::ids`] but prove nothing about the text (promptfoo hashes the
//! prompt's label, which defaults to the text but may be anything).
//!
//! The models: the provider of each result (`results[].provider.id`, or `results[].provider` as
//! a string in older files), in [`Imported::models`]; a result without one makes the list
//! incomplete (`complete: false`), never silently shorter.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::{
    describe, finite, key_path, mean_stderr, Format, ImportError, Imported, MetricRecord,
    PromptEvidence,
};
use crate::manifest::sha256_digest;

const FORMAT: Format = Format::Promptfoo;

fn shape(message: String) -> ImportError {
    ImportError::shape(FORMAT, message)
}

/// Parses a promptfoo results file.
pub(crate) fn parse(bytes: &[u8]) -> Result<Imported, ImportError> {
    let document = super::parse_json(bytes)?;
    let (summary, at) = locate(&document)?;
    let results_at = format!("{at}results");
    let results = summary
        .get("results")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            shape(format!(
                "`{results_at}` is missing; expected the array of test results"
            ))
        })?;

    let mut passed = 0usize;
    let mut scores = Vec::new();
    let mut named: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut latencies = Vec::new();
    let mut costs = Vec::new();
    let mut ids = BTreeSet::new();
    let mut models = BTreeSet::new();
    let mut every_result_names_its_model = true;
    for (i, result) in results.iter().enumerate() {
        let here = format!("{results_at}[{i}]");
        let result = result.as_object().ok_or_else(|| {
            shape(format!(
                "`{here}` is {}, expected a test result object",
                describe(result)
            ))
        })?;
        if verdict(result, &here)? {
            passed += 1;
        }
        if let Some(score) = result.get("score").and_then(finite) {
            scores.push(score);
        }
        let named_scores = result
            .get("namedScores")
            .filter(|v| !v.is_null())
            .or_else(|| {
                result
                    .get("gradingResult")
                    .and_then(|g| g.get("namedScores"))
            });
        match named_scores {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (name, value) in map {
                    if let Some(value) = finite(value) {
                        named.entry(name.clone()).or_default().push(value);
                    }
                }
            }
            Some(other) => {
                return Err(shape(format!(
                    "`{here}.namedScores` is {}, expected an object of numbers",
                    describe(other)
                )))
            }
        }
        let cached =
            result.get("response").and_then(|r| r.get("cached")) == Some(&Value::Bool(true));
        if let Some(latency) = result.get("latencyMs").and_then(finite).filter(|_| !cached) {
            latencies.push(latency);
        }
        let cost = result.get("cost").and_then(finite).or_else(|| {
            result
                .get("response")
                .and_then(|r| r.get("cost"))
                .and_then(finite)
        });
        if let Some(cost) = cost {
            costs.push(cost);
        }
        if let Some(id) = result.get("promptId").and_then(Value::as_str) {
            ids.insert(id.to_string());
        }
        let provider = match result.get("provider") {
            Some(Value::String(id)) => Some(id.as_str()),
            Some(Value::Object(provider)) => provider.get("id").and_then(Value::as_str),
            _ => None,
        };
        match provider.map(str::trim).filter(|p| !p.is_empty()) {
            Some(id) => {
                models.insert(id.to_owned());
            }
            None => every_result_names_its_model = false,
        }
    }

    let mut imported = Imported {
        samples: Some(results.len() as u64),
        models: Some(super::ModelEvidence {
            ids: models.into_iter().collect(),
            complete: every_result_names_its_model,
        }),
        ..Imported::default()
    };
    let n = results.len();
    if n > 0 {
        let p = passed as f64 / n as f64;
        let mut record = MetricRecord::new("pass_rate", p);
        record.stderr = Some((p * (1.0 - p) / n as f64).sqrt());
        record.samples = Some(n as u64);
        record.higher_is_better = Some(true);
        imported.insert(record, &results_at, FORMAT)?;
    }
    add_mean(&mut imported, "score", &scores, true, &results_at)?;
    for (name, values) in &named {
        add_mean(
            &mut imported,
            &format!("namedScores.{name}"),
            values,
            true,
            &results_at,
        )?;
    }
    latencies.sort_by(f64::total_cmp);
    for (name, percent) in [("latency_p50_ms", 50.0), ("latency_p95_ms", 95.0)] {
        if let Some(value) = nearest_rank(&latencies, percent) {
            let mut record = MetricRecord::new(name, value);
            record.samples = Some(latencies.len() as u64);
            record.higher_is_better = Some(false);
            imported.insert(record, &results_at, FORMAT)?;
        }
    }
    add_mean(
        &mut imported,
        "cost_per_request",
        &costs,
        false,
        &results_at,
    )?;

    imported.prompts = Some(prompts(summary, at, ids)?);
    Ok(imported)
}

/// The summary object and its field path prefix.
fn locate(document: &Value) -> Result<(&Map<String, Value>, &'static str), ImportError> {
    let top = document.as_object().ok_or_else(|| {
        shape(format!(
            "the file holds {}, expected a promptfoo results object",
            describe(document)
        ))
    })?;
    match top.get("results") {
        Some(Value::Object(summary)) => Ok((summary, "results.")),
        Some(Value::Array(_)) => Ok((top, "")),
        Some(other) => Err(shape(format!(
            "`results` is {}, expected the evaluation summary (an object) or the array of test results",
            describe(other)
        ))),
        None => Err(shape(
            "no `results` key; expected promptfoo's output file ({evalId, results: {version, prompts, results, stats}})".to_string(),
        )),
    }
}

/// Whether a test result passed: `success`, else `gradingResult.pass`.
fn verdict(result: &Map<String, Value>, here: &str) -> Result<bool, ImportError> {
    match result.get("success") {
        Some(Value::Bool(b)) => return Ok(*b),
        None | Some(Value::Null) => {}
        Some(other) => {
            return Err(shape(format!(
                "`{here}.success` is {}, expected true or false",
                describe(other)
            )))
        }
    }
    match result.get("gradingResult").and_then(|g| g.get("pass")) {
        Some(Value::Bool(b)) => Ok(*b),
        _ => Err(shape(format!(
            "`{here}` has neither `success` nor `gradingResult.pass`, so it cannot be counted as passed or failed"
        ))),
    }
}

fn add_mean(
    imported: &mut Imported,
    name: &str,
    values: &[f64],
    higher_is_better: bool,
    at: &str,
) -> Result<(), ImportError> {
    if let Some((mean, stderr)) = mean_stderr(values) {
        let mut record = MetricRecord::new(name, mean);
        record.stderr = stderr;
        record.samples = Some(values.len() as u64);
        record.higher_is_better = Some(higher_is_better);
        imported.insert(record, at, FORMAT)?;
    }
    Ok(())
}

/// Nearest-rank percentile of sorted values: the smallest value with at least `percent`% of
/// the values at or below it.
pub(crate) fn nearest_rank(sorted: &[f64], percent: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((percent / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

fn prompts(
    summary: &Map<String, Value>,
    at: &str,
    mut ids: BTreeSet<String>,
) -> Result<PromptEvidence, ImportError> {
    let (list, list_at) = match summary.get("prompts") {
        Some(list) => (Some(list), format!("{at}prompts")),
        None => (
            summary
                .get("table")
                .and_then(|t| t.get("head"))
                .and_then(|h| h.get("prompts")),
            format!("{at}table.head.prompts"),
        ),
    };
    let list = match list {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(list)) => list.as_slice(),
        Some(other) => {
            return Err(shape(format!(
                "`{list_at}` is {}, expected an array of prompts",
                describe(other)
            )))
        }
    };
    let mut texts = BTreeSet::new();
    for (i, prompt) in list.iter().enumerate() {
        let here = format!("{list_at}[{i}]");
        let prompt = prompt.as_object().ok_or_else(|| {
            shape(format!(
                "`{here}` is {}, expected a prompt object",
                describe(prompt)
            ))
        })?;
        if let Some(id) = prompt.get("id").and_then(Value::as_str) {
            ids.insert(id.to_string());
        }
        match prompt.get("raw") {
            Some(Value::String(raw)) => {
                texts.insert(raw.clone());
            }
            None | Some(Value::Null) => {}
            Some(other) => {
                return Err(shape(format!(
                    "`{}` is {}, expected the prompt text",
                    key_path(&here, "raw"),
                    describe(other)
                )))
            }
        }
    }
    let digests: BTreeSet<String> = texts
        .iter()
        .flat_map(|text| {
            [
                sha256_digest(text.as_bytes()),
                sha256_digest(format!("{text}\n").as_bytes()),
            ]
        })
        .collect();
    Ok(PromptEvidence {
        ids: ids.into_iter().collect(),
        digests: digests.into_iter().collect(),
        count: texts.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(nearest_rank(&[], 50.0), None);
        assert_eq!(nearest_rank(&[7.0], 95.0), Some(7.0));
        let sorted = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(nearest_rank(&sorted, 50.0), Some(2.0));
        assert_eq!(nearest_rank(&sorted, 95.0), Some(4.0));
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&hundred, 95.0), Some(95.0));
    }

    #[test]
    fn v2_summary_and_grading_result_fallback() {
        let file = br#"{"version": 2, "timestamp": "t",
            "table": {"head": {"prompts": [{"raw": "Hi {{name}}", "label": "p", "id": "abc"}], "vars": []}, "body": []},
            "results": [
              {"gradingResult": {"pass": true, "score": 1}, "score": 1, "latencyMs": 100, "namedScores": {}},
              {"success": false, "score": 0, "latencyMs": 300, "response": {"cached": false}},
              {"success": true, "score": 1, "latencyMs": 1, "response": {"cached": true}}
            ], "stats": {}}"#;
        let imported = parse(file).expect("v2 parses");
        let pass_rate = &imported.metrics["pass_rate"];
        assert!((pass_rate.value - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(pass_rate.samples, Some(3));
        // the cached response's latency is left out
        assert_eq!(imported.metrics["latency_p95_ms"].value, 300.0);
        assert_eq!(imported.metrics["latency_p95_ms"].samples, Some(2));
        assert!(!imported.metrics.contains_key("cost_per_request"));
        let prompts = imported.prompts.expect("prompts");
        assert_eq!(prompts.count, 1);
        assert_eq!(prompts.ids, vec!["abc".to_string()]);
        assert!(prompts.digests.contains(&sha256_digest(b"Hi {{name}}")));
        assert!(prompts.digests.contains(&sha256_digest(b"Hi {{name}}\n")));
    }

    #[test]
    fn shape_errors_name_the_field() {
        let err = parse(br#"{"results": {"version": 3, "results": [{"success": "yes"}]}}"#)
            .expect_err("bad");
        assert_eq!(
            err.to_string(),
            "not promptfoo output: `results.results[0].success` is a string, expected true or false"
        );
        let err = parse(br#"{"results": {"version": 3, "results": [{"score": 1}]}}"#)
            .expect_err("no verdict");
        assert!(
            err.to_string()
                .contains("`results.results[0]` has neither `success`"),
            "{err}"
        );
        let err = parse(br#"{"evalId": "x"}"#).expect_err("no results");
        assert!(err.to_string().contains("no `results` key"), "{err}");
        let err = parse(br#"[1]"#).expect_err("array");
        assert!(err.to_string().contains("the file holds an array"), "{err}");
    }

    #[test]
    fn empty_results_have_no_rates() {
        let imported =
            parse(br#"{"results": {"version": 3, "prompts": [], "results": [], "stats": {}}}"#)
                .expect("parses");
        assert!(imported.metrics.is_empty());
        assert_eq!(imported.samples, Some(0));
        assert_eq!(imported.prompts.map(|p| p.count), Some(0));
    }
}
