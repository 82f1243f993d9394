//! Inspect AI eval logs in JSON (`inspect eval --log-format json`, or `inspect log convert
//! --to json` for a binary `.eval` log, which relgate does not read).
//!
//! Metrics come from `results.scores[]` (`EvalScore`): each entry of `metrics` becomes
//! `<name>/<metric>` where `<name>` is the score's `name` (the scorer's name unless the scorer
//! returns several values), e.g. `match/accuracy`, `match/stderr`. The value of the score's
//! `stderr` metric (else `bootstrap_stderr`) is also the stderr of its `accuracy` and `mean`.
//! `accuracy` is higher-is-better; other metrics leave the direction unknown.
//!
//! `samples` is the score's `scored_samples` (newer logs), else `results.completed_samples`,
//! else `results.total_samples`; the file-level `samples` is `completed_samples`.
//!
//! A log whose `status` is not `success` (`started`, `error`, `cancelled`) is not evidence: the
//! eval did not finish, and its metrics (if any) cover only part of the samples. It is
//! reported as an error with the log's own error message.

use serde_json::Value;

use super::{count, describe, finite, key_path, Format, ImportError, Imported, MetricRecord};

const FORMAT: Format = Format::Inspect;

/// Metrics that estimate a mean, whose stderr the `stderr` metric is.
const MEANS: [&str; 2] = ["accuracy", "mean"];

fn shape(message: String) -> ImportError {
    ImportError::shape(FORMAT, message)
}

/// Parses an Inspect AI JSON eval log.
pub(crate) fn parse(bytes: &[u8]) -> Result<Imported, ImportError> {
    let document = super::parse_json(bytes)?;
    let top = document.as_object().ok_or_else(|| {
        shape(format!(
            "the file holds {}, expected an Inspect eval log object",
            describe(&document)
        ))
    })?;
    if !top.contains_key("eval") {
        return Err(shape(
            "no `eval` key; expected an Inspect JSON eval log ({version, status, eval, results: {scores}})".to_string(),
        ));
    }
    match top.get("status").and_then(Value::as_str) {
        Some("success") => {}
        status => {
            let why = top
                .get("error")
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .map(|m| format!(" (log error: {m})"))
                .unwrap_or_default();
            return Err(shape(format!(
                "`status` is {}, not \"success\": the eval did not finish{why}; gate on a completed run",
                status.map_or("missing".to_string(), |s| format!("{s:?}"))
            )));
        }
    }
    let results = match top.get("results") {
        Some(Value::Object(results)) => results,
        Some(other) => {
            return Err(shape(format!(
                "`results` is {}, expected an object",
                describe(other)
            )))
        }
        None => return Err(shape("`results` is missing".to_string())),
    };
    let file_samples = results
        .get("completed_samples")
        .and_then(count)
        .or_else(|| results.get("total_samples").and_then(count));
    let scores = match results.get("scores") {
        Some(Value::Array(scores)) => scores.as_slice(),
        None | Some(Value::Null) => &[][..],
        Some(other) => {
            return Err(shape(format!(
                "`results.scores` is {}, expected an array",
                describe(other)
            )))
        }
    };
    // The model the task ran on (`eval.model`, `provider/model`).
    let model = top
        .get("eval")
        .and_then(|e| e.get("model"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|m| !m.is_empty());
    let mut imported = Imported {
        samples: file_samples,
        models: Some(super::ModelEvidence {
            ids: model.map(|m| vec![m.to_owned()]).unwrap_or_default(),
            complete: model.is_some(),
        }),
        ..Imported::default()
    };
    for (i, score) in scores.iter().enumerate() {
        let at = format!("results.scores[{i}]");
        let score = score.as_object().ok_or_else(|| {
            shape(format!(
                "`{at}` is {}, expected a score object",
                describe(score)
            ))
        })?;
        let name = score
            .get("name")
            .and_then(Value::as_str)
            .or_else(|| score.get("scorer").and_then(Value::as_str))
            .ok_or_else(|| shape(format!("`{at}` has no `name` or `scorer`")))?;
        let metrics = match score.get("metrics") {
            Some(Value::Object(metrics)) => metrics,
            None | Some(Value::Null) => continue,
            Some(other) => {
                return Err(shape(format!(
                    "`{at}.metrics` is {}, expected an object",
                    describe(other)
                )))
            }
        };
        let value_of = |key: &str| {
            metrics
                .get(key)
                .and_then(|m| m.get("value"))
                .and_then(finite)
        };
        let stderr = value_of("stderr").or_else(|| value_of("bootstrap_stderr"));
        let samples = score.get("scored_samples").and_then(count).or(file_samples);
        for (key, metric) in metrics {
            let here = key_path(&format!("{at}.metrics"), key);
            let value = match metric.get("value") {
                Some(value) => value,
                None => return Err(shape(format!("`{here}` has no `value`"))),
            };
            let Some(value) = finite(value) else {
                // NaN (no scored samples) or a non-numeric value: nothing to gate on.
                continue;
            };
            let mut record = MetricRecord::new(format!("{name}/{key}"), value);
            record.samples = samples;
            if MEANS.contains(&key.as_str()) {
                record.stderr = stderr;
            }
            if key == "accuracy" {
                record.higher_is_better = Some(true);
            }
            imported.insert(record, &here, FORMAT)?;
        }
    }
    Ok(imported)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfinished_logs_are_errors() {
        let err = parse(
            br#"{"version": 2, "status": "error", "eval": {}, "error": {"message": "boom"}}"#,
        )
        .expect_err("error log");
        assert_eq!(
            err.to_string(),
            "not inspect output: `status` is \"error\", not \"success\": the eval did not finish (log error: boom); gate on a completed run"
        );
        assert!(parse(br#"{"results": {}}"#)
            .expect_err("no eval")
            .to_string()
            .contains("no `eval` key"));
    }

    #[test]
    fn scored_samples_and_duplicates() {
        let file = br#"{"status": "success", "eval": {}, "results": {"completed_samples": 10, "scores": [
            {"name": "a", "scorer": "multi", "scored_samples": 8, "metrics": {"mean": {"name": "mean", "value": 0.5}, "stderr": {"name": "stderr", "value": 0.1}}},
            {"name": "a", "scorer": "multi", "metrics": {"mean": {"name": "mean", "value": 0.7}}}]}}"#;
        let err = parse(file).expect_err("duplicate");
        assert!(
            err.to_string().contains("metric `a/mean` appears twice"),
            "{err}"
        );
        let single = br#"{"status": "success", "eval": {}, "results": {"completed_samples": 10, "scores": [
            {"name": "a", "scorer": "multi", "scored_samples": 8, "metrics": {"mean": {"name": "mean", "value": 0.5}, "stderr": {"name": "stderr", "value": 0.1}}}]}}"#;
        let imported = parse(single).expect("parses");
        assert_eq!(imported.metrics["a/mean"].samples, Some(8));
        assert_eq!(imported.metrics["a/mean"].stderr, Some(0.1));
        assert_eq!(imported.metrics["a/mean"].higher_is_better, None);
        assert_eq!(imported.metrics["a/stderr"].stderr, None);
        assert_eq!(imported.samples, Some(10));
    }
}
