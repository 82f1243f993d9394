//! Evaluation evidence: reads the eval output files a manifest names in `spec.evaluations`
//! and normalises them into metric records for the policies (`input.evidence.evaluations`,
//! documented in `docs/policy-contract.md`).
//!
//! One importer per format, each in its own module: [`promptfoo`], [`lm_eval`], [`inspect`],
//! [`mlflow`] and [`metrics`] (plain JSON or CSV). An importer turns the file's bytes into an
//! [`Imported`] (metric name -> [`MetricRecord`], plus the file's sample count and, for
//! promptfoo, what the file says about the prompt it evaluated) or an [`ImportError`] that says
//! where parsing stopped.
//!
//! Invariants:
//! - every file is resolved with [`GateRoot::confine`], must be a regular file (a FIFO or
//!   device is refused before it is opened: reading one could block forever), and is read with
//!   [`manifest::read_limited`]; nothing outside the gate root is ever read;
//! - JSON is read with the strict reader of [`json`]: a key repeated in one object makes the
//!   file unreadable (naming the key), never "the last value wins";
//! - gathering never fails: a missing, unreadable, oversized or unparsable file becomes an entry
//!   whose `error` says what and where, with `metrics: {}` (the digest is still given when the
//!   bytes could be read), so the policies can fail closed with the reason;
//! - non-finite numbers (Python writes `NaN`/`Infinity` into JSON) are read as unknown (null),
//!   never as a value a threshold could compare against.

pub(crate) mod inspect;
pub(crate) mod json;
pub(crate) mod lm_eval;
pub(crate) mod metrics;
pub(crate) mod mlflow;
pub(crate) mod promptfoo;
pub mod slo;

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::manifest;
use crate::workspace::GateRoot;

/// An evaluation output format (`spec.evaluations[].format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Promptfoo,
    LmEval,
    Inspect,
    Mlflow,
    Metrics,
}

impl Format {
    /// Every format, in the order the manifest documentation lists them.
    pub const ALL: [Format; 5] = [
        Format::Promptfoo,
        Format::LmEval,
        Format::Inspect,
        Format::Mlflow,
        Format::Metrics,
    ];

    /// The format named in a manifest.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The name written in a manifest.
    pub fn name(self) -> &'static str {
        match self {
            Format::Promptfoo => "promptfoo",
            Format::LmEval => "lm-eval",
            Format::Inspect => "inspect",
            Format::Mlflow => "mlflow",
            Format::Metrics => "metrics",
        }
    }

    /// Parses a file of this format.
    pub fn import(self, bytes: &[u8]) -> Result<Imported, ImportError> {
        match self {
            Format::Promptfoo => promptfoo::parse(bytes),
            Format::LmEval => lm_eval::parse(bytes),
            Format::Inspect => inspect::parse(bytes),
            Format::Mlflow => mlflow::parse(bytes),
            Format::Metrics => metrics::parse(bytes),
        }
    }
}

/// One normalised metric.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRecord {
    /// The metric's name, as thresholds name it.
    pub metric: String,
    pub value: f64,
    /// Standard error of `value`, when the format gives or allows computing one.
    pub stderr: Option<f64>,
    /// Number of samples `value` was computed from, when known.
    pub samples: Option<u64>,
    /// Whether a larger value is better, when the format says so.
    pub higher_is_better: Option<bool>,
}

impl MetricRecord {
    pub(crate) fn new(metric: impl Into<String>, value: f64) -> Self {
        Self {
            metric: metric.into(),
            value,
            stderr: None,
            samples: None,
            higher_is_better: None,
        }
    }

    /// The record as the policies see it (every key present, `null` when unknown).
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "metric": self.metric,
            "value": self.value,
            "stderr": self.stderr,
            "samples": self.samples,
            "higher_is_better": self.higher_is_better,
        })
    }
}

/// What a promptfoo results file says about the prompts it evaluated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PromptEvidence {
    /// promptfoo's prompt ids as written (`prompts[].id`, `results[].promptId`), distinct,
    /// sorted. promptfoo derives them from the prompt's label, so they identify, not prove.
    pub ids: Vec<String>,
    /// `sha256:<hex>` of each distinct prompt template text (`prompts[].raw`), and of that text
    /// followed by one `\n` (promptfoo trims the text it reads from a prompt file), sorted.
    pub digests: Vec<String>,
    /// Number of distinct prompt template texts.
    pub count: usize,
}

/// A parsed evaluation file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Imported {
    /// Metric name -> record.
    pub metrics: BTreeMap<String, MetricRecord>,
    /// Number of samples (test cases) the whole file covers, when the format has one.
    pub samples: Option<u64>,
    /// promptfoo only.
    pub prompts: Option<PromptEvidence>,
    /// The models the file's results came from (promptfoo, Inspect); `None` for a format that
    /// does not name them.
    pub models: Option<ModelEvidence>,
}

/// The models an evaluation file's results came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelEvidence {
    /// As the tool names them (promptfoo's provider ids `openai:gpt-4o-mini`, Inspect's
    /// `eval.model` `openai/gpt-4o-mini`), distinct and sorted.
    pub ids: Vec<String>,
    /// Every result names its model. False when some name none (a promptfoo result without a
    /// provider, an Inspect log without `eval.model`): `ids` is then not the whole story, and
    /// the model check cannot pass on it.
    pub complete: bool,
}

impl Imported {
    /// Adds a record; a second record with the same name is an error (the file is ambiguous).
    pub(crate) fn insert(
        &mut self,
        record: MetricRecord,
        at: &str,
        format: Format,
    ) -> Result<(), ImportError> {
        if self.metrics.contains_key(&record.metric) {
            return Err(ImportError::shape(
                format,
                format!(
                    "metric `{}` appears twice (again at `{at}`); relgate cannot tell which value to gate on",
                    record.metric
                ),
            ));
        }
        self.metrics.insert(record.metric.clone(), record);
        Ok(())
    }
}

/// Why a file could not be read as its format. `Display` says where parsing stopped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImportError {
    #[error("not valid UTF-8 (line {line}, byte {offset}); eval files must be UTF-8 text")]
    Utf8 { line: usize, offset: usize },
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("invalid CSV at line {line}: {message}")]
    Csv { line: u64, message: String },
    #[error("not {format} output: {message}")]
    Shape {
        format: &'static str,
        message: String,
    },
}

impl ImportError {
    pub(crate) fn shape(format: Format, message: impl Into<String>) -> Self {
        Self::Shape {
            format: format.name(),
            message: message.into(),
        }
    }
}

/// Builds `input.evidence.evaluations`: one entry per `spec.evaluations[i]` of the manifest (an
/// empty array when there is none). Never fails; problems are in each side's `error`.
pub fn gather_evaluations(root: &GateRoot, manifest: &Value, max_bytes: u64) -> Value {
    let Some(entries) = manifest
        .pointer("/spec/evaluations")
        .and_then(Value::as_array)
    else {
        return Value::Array(Vec::new());
    };
    Value::Array(
        entries
            .iter()
            .enumerate()
            .map(|(index, entry)| gather_one(root, index, entry, max_bytes))
            .collect(),
    )
}

fn gather_one(root: &GateRoot, index: usize, entry: &Value, max_bytes: u64) -> Value {
    let format_value = entry.get("format").cloned().unwrap_or(Value::Null);
    let format = format_value.as_str().and_then(Format::from_name);
    let side = |role: &str| {
        gather_side(
            root,
            &format!("spec.evaluations[{index}].{role}"),
            entry.get(role),
            format,
            &format_value,
            max_bytes,
        )
    };
    let baseline = match entry.get("baseline") {
        None | Some(Value::Null) => Value::Null,
        Some(_) => side("baseline"),
    };
    json!({
        "id": entry.get("id").cloned().unwrap_or(Value::Null),
        "index": index,
        "format": format_value,
        "candidate": side("candidate"),
        "baseline": baseline,
    })
}

/// One side (candidate or baseline) of an evaluation.
fn gather_side(
    root: &GateRoot,
    field: &str,
    spec: Option<&Value>,
    format: Option<Format>,
    format_value: &Value,
    max_bytes: u64,
) -> Value {
    let spec = spec.and_then(Value::as_object);
    let written = spec.and_then(|s| s.get("path")).and_then(Value::as_str);
    let mut out = Map::new();
    out.insert("path".into(), written.map_or(Value::Null, Value::from));
    out.insert(
        "declared_digest".into(),
        spec.and_then(|s| s.get("digest"))
            .cloned()
            .unwrap_or(Value::Null),
    );
    out.insert("digest".into(), Value::Null);
    out.insert("error".into(), Value::Null);
    out.insert("metrics".into(), Value::Object(Map::new()));
    out.insert("samples".into(), Value::Null);
    let fail = |out: &mut Map<String, Value>, message: String| {
        out.insert("error".into(), Value::String(message));
        Value::Object(std::mem::take(out))
    };

    let Some(written) = written else {
        return fail(
            &mut out,
            format!("{field}.path is missing: name the evaluation output file, relative to the gate root"),
        );
    };
    let file = match read_file(root, written, max_bytes) {
        Ok(file) => file,
        Err(message) => return fail(&mut out, message),
    };
    out.insert("digest".into(), Value::String(file.digest.clone()));
    let Some(format) = format else {
        let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
        return fail(
            &mut out,
            format!(
                "{written}: cannot read it as format {format_value}: expected one of {}",
                names.join(", ")
            ),
        );
    };
    match format.import(&file.bytes) {
        Ok(imported) => {
            let metrics: Map<String, Value> = imported
                .metrics
                .iter()
                .map(|(name, record)| (name.clone(), record.to_json()))
                .collect();
            out.insert("metrics".into(), Value::Object(metrics));
            out.insert(
                "samples".into(),
                imported.samples.map_or(Value::Null, Value::from),
            );
            if let Some(models) = imported.models {
                out.insert("models".into(), json!(models.ids));
                out.insert("models_complete".into(), json!(models.complete));
            }
            if let Some(prompts) = imported.prompts {
                out.insert("prompt_ids".into(), json!(prompts.ids));
                out.insert("prompt_digests".into(), json!(prompts.digests));
                out.insert("prompt_count".into(), json!(prompts.count));
            }
            Value::Object(out)
        }
        Err(err) => fail(&mut out, format!("{written}: {err}")),
    }
}

/// Reads an evidence file named in a manifest: confined to the gate root, a regular file (a
/// FIFO would block the read forever, a device could be endless), at most `max_bytes`.
pub(crate) fn read_file(
    root: &GateRoot,
    written: &str,
    max_bytes: u64,
) -> Result<manifest::SourceFile, String> {
    let path = root.confine(written).map_err(|err| err.to_string())?;
    // `read_limited` opens only regular files (`manifest::open_regular`: checked before the
    // open, opened non-blocking, checked again), so a FIFO or device cannot hang the gate.
    manifest::read_limited(&path, written, max_bytes).map_err(|err| err.to_string())
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the importers.

/// Parses a JSON document with the strict reader ([`json`]: a key repeated in one object is an
/// error). Python's non-finite literals (`NaN`, `Infinity`, `-Infinity`, which `json.dumps`
/// writes by default) are read as `null`; a BOM is ignored.
pub(crate) fn parse_json(bytes: &[u8]) -> Result<Value, ImportError> {
    let text = std::str::from_utf8(bytes).map_err(|err| ImportError::Utf8 {
        line: bytes[..err.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1,
        offset: err.valid_up_to(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match json::from_str(text) {
        Ok(value) => Ok(value),
        Err(first) => match replace_non_finite(text) {
            // Line numbers are unchanged by the replacement (columns may move by a few
            // characters on a line that held a replaced literal).
            Some(patched) => json::from_str(&patched).map_err(|err| json_error(&err)),
            None => Err(json_error(&first)),
        },
    }
}

fn json_error(err: &serde_json::Error) -> ImportError {
    let text = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    ImportError::Json {
        line: err.line(),
        column: err.column(),
        message: text.strip_suffix(&suffix).unwrap_or(&text).to_string(),
    }
}

/// `text` with `NaN`, `Infinity` and `-Infinity` outside strings replaced by `null`, or `None`
/// when there is none.
fn replace_non_finite(text: &str) -> Option<String> {
    const LITERALS: [&str; 3] = ["-Infinity", "Infinity", "NaN"];
    let mut out = String::with_capacity(text.len());
    let mut replaced = false;
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if let Some(literal) = LITERALS.iter().find(|l| rest.starts_with(**l)) {
            out.push_str("null");
            rest = &rest[literal.len()..];
            replaced = true;
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    replaced.then_some(out)
}

/// A finite number, or `None`.
pub(crate) fn finite(value: &Value) -> Option<f64> {
    value.as_f64().filter(|v| v.is_finite())
}

/// A non-negative whole number (a count), or `None`.
pub(crate) fn count(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        finite(value)
            .filter(|v| *v >= 0.0 && v.fract() == 0.0)
            .map(|v| v as u64)
    })
}

/// What a JSON value is, for error messages.
pub(crate) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A key appended to a field path in messages (`a.b`, `a["x.y"]`).
pub(crate) fn key_path(parent: &str, key: &str) -> String {
    crate::field_path::parse(parent)
        .map(|mut segments| {
            segments.push(crate::field_path::Segment::Key(key.to_string()));
            crate::field_path::render(&segments)
        })
        .unwrap_or_else(|| format!("{parent}.{key}"))
}

/// Mean and standard error of the mean (sample standard deviation / sqrt(n); unknown for
/// fewer than two values).
pub(crate) fn mean_stderr(values: &[f64]) -> Option<(f64, Option<f64>)> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let stderr = (values.len() >= 2).then(|| {
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (variance / n).sqrt()
    });
    Some((mean, stderr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_non_finite_literals_read_as_null() {
        let value =
            parse_json(br#"{"a": NaN, "b": [Infinity, -Infinity], "s": "NaN here", "c": 1}"#)
                .expect("parses");
        assert_eq!(
            value,
            json!({"a": null, "b": [null, null], "s": "NaN here", "c": 1})
        );
        // A string that merely contains the literal is left alone; valid JSON is not rewritten.
        assert_eq!(
            parse_json(br#"{"s": "x\"NaN"}"#).expect("parses"),
            json!({"s": "x\"NaN"})
        );
    }

    #[test]
    fn json_errors_carry_line_and_column() {
        let err = parse_json(b"{\n  \"a\": 1,\n  \"b\": ]\n}").expect_err("invalid");
        assert_eq!(
            err,
            ImportError::Json {
                line: 3,
                column: 8,
                message: "expected value".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "invalid JSON at line 3, column 8: expected value"
        );
        let err = parse_json(b"{\"a\": 1}\n\xff").expect_err("utf8");
        assert_eq!(err, ImportError::Utf8 { line: 2, offset: 9 });
    }

    #[test]
    fn mean_and_stderr() {
        assert_eq!(mean_stderr(&[]), None);
        assert_eq!(mean_stderr(&[2.0]), Some((2.0, None)));
        let (mean, stderr) = mean_stderr(&[1.0, 2.0, 3.0, 4.0]).expect("values");
        assert!((mean - 2.5).abs() < 1e-12);
        // sample sd = sqrt(5/3); / sqrt(4)
        assert!((stderr.expect("n>=2") - (5.0f64 / 3.0).sqrt() / 2.0).abs() < 1e-12);
    }

    #[test]
    fn key_paths_quote_when_needed() {
        assert_eq!(key_path("results", "pass_rate"), "results.pass_rate");
        assert_eq!(key_path("results", "acc,none"), "results[\"acc,none\"]");
    }
}
