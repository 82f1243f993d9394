//! EleutherAI lm-evaluation-harness results (`lm_eval --output_path`, the `results*.json` file).
//!
//! Metrics come from `results.<task>` (and `groups.<group>`, for groups not also listed in
//! `results`). Since harness 0.4 a key is `<metric>,<filter>` (`acc,none`) and its standard error
//! is `<metric>_stderr,<filter>`; the metric is named `<task>/<metric>,<filter>`
//! (`arc_easy/acc,none`). Older files (no comma in any key of a task) name it `<task>/<metric>`
//! and pair it with `<metric>_stderr`. A stderr written as `"N/A"` (or null, or NaN) is unknown.
//! Non-numeric entries (`alias`, `name`) and `sample_len` are not metrics.
//!
//! `samples` is `n-samples.<task>.effective` (the number of documents evaluated, after
//! `--limit`), else the task's `sample_len`; `higher_is_better` comes from
//! `higher_is_better.<task>.<metric>`. The file-level `samples` is unknown (tasks differ).

use serde_json::{Map, Value};

use super::{count, describe, finite, key_path, Format, ImportError, Imported, MetricRecord};

const FORMAT: Format = Format::LmEval;

/// Keys of a task's results that are not metrics even when numeric.
const NOT_METRICS: [&str; 2] = ["sample_len", "sample_count"];

/// Parses an lm-evaluation-harness results file.
pub(crate) fn parse(bytes: &[u8]) -> Result<Imported, ImportError> {
    let document = super::parse_json(bytes)?;
    let top = document.as_object().ok_or_else(|| {
        ImportError::shape(
            FORMAT,
            format!(
                "the file holds {}, expected an lm-eval results object",
                describe(&document)
            ),
        )
    })?;
    let results = match top.get("results") {
        Some(Value::Object(results)) => results,
        Some(other) => {
            return Err(ImportError::shape(
                FORMAT,
                format!("`results` is {}, expected an object of tasks", describe(other)),
            ))
        }
        None => {
            return Err(ImportError::shape(
                FORMAT,
                "no `results` key; expected lm-eval's results file ({results: {<task>: {<metric>,<filter>: value}}, n-samples, higher_is_better})",
            ))
        }
    };
    let mut imported = Imported::default();
    for (task, metrics) in results {
        add_task(
            &mut imported,
            top,
            task,
            metrics,
            &key_path("results", task),
        )?;
    }
    if let Some(Value::Object(groups)) = top.get("groups") {
        for (group, metrics) in groups
            .iter()
            .filter(|(group, _)| !results.contains_key(*group))
        {
            add_task(
                &mut imported,
                top,
                group,
                metrics,
                &key_path("groups", group),
            )?;
        }
    }
    Ok(imported)
}

fn add_task(
    imported: &mut Imported,
    top: &Map<String, Value>,
    task: &str,
    metrics: &Value,
    at: &str,
) -> Result<(), ImportError> {
    let metrics = metrics.as_object().ok_or_else(|| {
        ImportError::shape(
            FORMAT,
            format!(
                "`{at}` is {}, expected an object of metrics",
                describe(metrics)
            ),
        )
    })?;
    let with_filters = metrics.keys().any(|k| k.contains(','));
    let samples = top
        .get("n-samples")
        .and_then(|n| n.get(task))
        .and_then(|n| n.get("effective"))
        .and_then(count)
        .or_else(|| metrics.get("sample_len").and_then(count));
    for (key, value) in metrics {
        let (metric, filter) = match key.split_once(',') {
            Some((metric, filter)) => (metric, Some(filter)),
            None if with_filters => continue,
            None => (key.as_str(), None),
        };
        if metric.ends_with("_stderr") || NOT_METRICS.contains(&metric) {
            continue;
        }
        let Some(number) = finite(value) else {
            continue;
        };
        let stderr_key = match filter {
            Some(filter) => format!("{metric}_stderr,{filter}"),
            None => format!("{metric}_stderr"),
        };
        let mut record = MetricRecord::new(format!("{task}/{key}"), number);
        record.stderr = metrics.get(&stderr_key).and_then(finite);
        record.samples = samples;
        record.higher_is_better = top
            .get("higher_is_better")
            .and_then(|h| h.get(task))
            .and_then(|h| h.get(metric))
            .and_then(Value::as_bool);
        imported.insert(record, &key_path(at, key), FORMAT)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_missing_results() {
        let file = br#"{"results": {"t": {"acc,none": 0.5, "acc_stderr,none": 0.1, "alias": "t"}},
                        "groups": {"g": {"acc,none": 0.25, "acc_stderr,none": "N/A"}, "t": {"acc,none": 9}}}"#;
        let imported = parse(file).expect("parses");
        assert_eq!(imported.metrics.len(), 2);
        assert_eq!(imported.metrics["t/acc,none"].value, 0.5);
        assert_eq!(imported.metrics["t/acc,none"].stderr, Some(0.1));
        assert_eq!(imported.metrics["g/acc,none"].stderr, None);
        let err = parse(br#"{"versions": {}}"#).expect_err("no results");
        assert!(
            err.to_string()
                .starts_with("not lm-eval output: no `results` key"),
            "{err}"
        );
        let err = parse(br#"{"results": {"t": 3}}"#).expect_err("bad task");
        assert_eq!(
            err.to_string(),
            "not lm-eval output: `results.t` is a number, expected an object of metrics"
        );
    }

    #[test]
    fn nan_values_are_unknown() {
        let imported = parse(
            br#"{"results": {"t": {"ppl,none": 3.5, "ppl_stderr,none": NaN, "bad,none": NaN}}}"#,
        )
        .expect("parses");
        assert_eq!(imported.metrics["t/ppl,none"].stderr, None);
        assert!(!imported.metrics.contains_key("t/bad,none"));
    }
}
