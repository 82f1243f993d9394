//! The pull-request context of a run (docs/approvals.md): the object the approval
//! policy reads as `input.context.pull_request`. Owns reading it from a `--pr-json` file,
//! validating it against `schemas/input.schema.json` `$defs/pullRequest` (whoever filled it:
//! the file or the GitHub integration), and the summary a change record keeps of it.
//!
//! A `--pr-json` file is either the full context (it has `reviews`), which the gate evaluates
//! and records, or the older record-only shape `{number, author, approvers, merged_by}`, which
//! `relgate record` still accepts for the record alone (approvals are then not evaluated).
//! GitHub mode on an event without a pull request passes [`unavailable`] instead: the
//! approval policy then blocks what needs approvals rather than skipping it.

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::line_index::Lines;
use crate::manifest::{self, InputError};
use crate::record::statement::PullRequestInfo;
use crate::schema;

/// Where the contract is documented, for error messages.
const CONTRACT: &str = "schemas/input.schema.json $defs/pullRequest, docs/approvals.md";

/// What a `--pr-json` file holds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PrJson {
    /// The full pull-request context (validated): evaluated by the gate and recorded.
    Context(Value),
    /// The record-only shape (no `reviews`): recorded, not evaluated.
    RecordOnly(PullRequestInfo),
}

impl PrJson {
    /// The pull-request summary a change record keeps.
    pub(crate) fn record_info(&self) -> Option<PullRequestInfo> {
        match self {
            PrJson::Context(context) => record_info(context),
            PrJson::RecordOnly(info) => Some(info.clone()),
        }
    }
}

/// Reads a `--pr-json` file (at most `max_bytes`). `shown` names it in errors.
pub(crate) fn read(path: &Path, shown: &str, max_bytes: u64) -> Result<PrJson> {
    let source = manifest::read_limited(path, shown, max_bytes)?;
    parse(&source.bytes, shown)
}

/// Parses and validates the text of a `--pr-json` file.
pub(crate) fn parse(bytes: &[u8], shown: &str) -> Result<PrJson> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        InputError::new(
            shown,
            Some(u32::try_from(e.line()).unwrap_or(u32::MAX).max(1)),
            format!("not valid JSON: {e}; a pull-request context is one JSON object ({CONTRACT})"),
        )
    })?;
    let Some(object) = value.as_object() else {
        return Err(InputError::new(
            shown,
            Some(1),
            format!("expected a JSON object (the pull-request context, {CONTRACT})"),
        )
        .into());
    };
    if !object.contains_key("reviews") {
        // The older record-only shape; its own parser names what is wrong with it.
        return parse_record_only(bytes, Path::new(shown))
            .map(PrJson::RecordOnly)
            .map_err(|why| {
                Error::Usage(format!(
                    "{why} (without `reviews` a file is read as the record-only shape \
                     {{number, author, approvers, merged_by}}; for approvals it needs the full \
                     pull-request context, {CONTRACT})"
                ))
            });
    }
    let text = String::from_utf8_lossy(bytes).into_owned();
    check(&value, shown, Lines::for_file(text, 1).first())?;
    Ok(PrJson::Context(value))
}

/// Validates a pull-request context, whoever built it (a file, the GitHub integration).
/// Every violation is listed with its field. The [`unavailable`] shape is valid too.
pub(crate) fn validate(value: &Value, shown: &str) -> Result<()> {
    if is_unavailable(value) {
        return Ok(());
    }
    check(value, shown, None)
}

/// The context of a GitHub-mode run whose event has no pull request (`merge_group`, `push`,
/// `workflow_dispatch`): `{"unavailable": reason}` (`$defs/pullRequestUnavailable`). The
/// approval policy blocks every release whose environment requires approvals on it, saying
/// `reason`, where an absent context would skip the approval rules and pass.
pub(crate) fn unavailable(reason: &str) -> Value {
    serde_json::json!({ "unavailable": reason })
}

/// `{"unavailable": "<non-empty reason>"}` and nothing else.
fn is_unavailable(value: &Value) -> bool {
    value.as_object().is_some_and(|o| {
        o.len() == 1
            && o.get("unavailable")
                .and_then(Value::as_str)
                .is_some_and(|r| !r.trim().is_empty())
    })
}

/// [`validate`]; `lines` (of the file the context came from) add line numbers.
fn check(value: &Value, shown: &str, lines: Option<&Lines>) -> Result<()> {
    let from_file = lines.is_some();
    let empty = Lines::for_file(String::new(), 1);
    let Some(lines) = lines.or(empty.first()) else {
        // `Lines::for_file(_, 1)` always returns one entry.
        return Err(Error::Policy("internal error: no line index".to_string()));
    };
    let violations = schema::validate_def("Input", "pullRequest", value, lines)
        .map_err(|e| Error::Policy(format!("internal schema error: {e}")))?;
    let Some(first) = violations.first() else {
        return Ok(());
    };
    let mut message = format!("not a valid pull-request context ({CONTRACT}): ");
    if let [only] = violations.as_slice() {
        message.push_str(&only.message);
    } else {
        message.push_str(&format!("{} problems:", violations.len()));
        for v in &violations {
            if from_file {
                message.push_str(&format!("\n  line {}: {}", v.line, v.message));
            } else {
                message.push_str(&format!("\n  {}", v.message));
            }
        }
    }
    Err(InputError::new(shown, from_file.then_some(first.line), message).into())
}

/// The summary of a pull-request context that a change record keeps: number, author,
/// approvers (the contract's `approvers`) and who merged it. `None` when the context lacks a
/// number or an author (it was validated, so only a context built without validation can).
pub(crate) fn record_info(context: &Value) -> Option<PullRequestInfo> {
    let text = |key: &str| context.get(key).and_then(Value::as_str).map(str::to_owned);
    let mut approvers: Vec<String> = context
        .get("approvers")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    approvers.sort();
    approvers.dedup();
    Some(PullRequestInfo {
        number: context.get("number").and_then(Value::as_u64)?,
        author: text("author")?,
        approvers,
        merged_by: text("merged_by"),
    })
}

/// Parses the record-only shape of a `--pr-json` file, `{number, author, approvers,
/// merged_by}` (other fields are ignored, so the JSON of `gh pr view --json` with those names
/// works). The error names the file and what is wrong.
pub(crate) fn parse_record_only(
    bytes: &[u8],
    shown: &Path,
) -> std::result::Result<PullRequestInfo, String> {
    #[derive(serde::Deserialize)]
    struct Pr {
        number: u64,
        author: Value,
        #[serde(default)]
        approvers: Vec<Value>,
        #[serde(default)]
        merged_by: Value,
    }
    // `gh` writes users as {"login": ...}; plain strings are accepted too.
    fn login(v: &Value) -> Option<String> {
        match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Object(o) => o.get("login").and_then(Value::as_str).map(str::to_owned),
            _ => None,
        }
    }
    let pr: Pr = serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "{}: not a pull-request context {{number, author, approvers, merged_by}}: {e}",
            shown.display()
        )
    })?;
    let author = login(&pr.author).ok_or_else(|| {
        format!(
            "{}: `author` must be a login (a string or {{\"login\": ...}})",
            shown.display()
        )
    })?;
    let mut approvers = Vec::new();
    for a in &pr.approvers {
        approvers.push(login(a).ok_or_else(|| {
            format!(
                "{}: every entry of `approvers` must be a login",
                shown.display()
            )
        })?);
    }
    Ok(PullRequestInfo {
        number: pr.number,
        author,
        approvers,
        merged_by: login(&pr.merged_by),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_request_context_accepts_strings_and_gh_users() {
        let pr = parse_record_only(
            br#"{"number": 7, "author": {"login": "dana"}, "approvers": ["bob", {"login": "erin"}], "merged_by": null, "title": "x"}"#,
            Path::new("pr.json"),
        )
        .expect("parses");
        assert_eq!(pr.number, 7);
        assert_eq!(pr.author, "dana");
        assert_eq!(pr.approvers, ["bob", "erin"]);
        assert_eq!(pr.merged_by, None);
        let err = parse_record_only(br#"{"number": 7}"#, Path::new("pr.json"));
        assert!(err.is_err());
        let err = parse_record_only(br#"{"number": 7, "author": 3}"#, Path::new("pr.json"));
        assert!(err.is_err());
    }
    use serde_json::json;

    fn context() -> Value {
        json!({
            "number": 1347, "author": "octocat", "labels": ["bug"], "title": "Amazing new feature",
            "draft": false, "state": "closed", "merged": true, "merged_by": "octocat",
            "base_ref": "master", "base_sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e",
            "head_ref": "new-topic", "head_sha": "ecdd80bb57125d7ba9641ffaa4d7d2c19d3f3091",
            "reviews": [{"user": "octocat", "state": "APPROVED", "submitted_at": "2019-11-17T17:43:43Z",
                         "commit_id": "ecdd80bb57125d7ba9641ffaa4d7d2c19d3f3091", "stale": false}],
            "approvers": ["octocat"],
            "teams": {"justice-league": {"org": "octo-org", "members": []}}
        })
    }

    fn message(err: Error) -> String {
        err.to_string()
    }

    #[test]
    fn a_full_context_is_evaluated_and_summarised() {
        let bytes = serde_json::to_vec(&context()).expect("json");
        let parsed = parse(&bytes, "pr.json").expect("valid");
        assert_eq!(parsed, PrJson::Context(context()));
        assert_eq!(
            parsed.record_info(),
            Some(PullRequestInfo {
                number: 1347,
                author: "octocat".into(),
                approvers: vec!["octocat".into()],
                merged_by: Some("octocat".into()),
            })
        );
        // Fields beyond the contract are kept for team policies.
        let mut extra = context();
        extra["milestone"] = json!("v1.0");
        assert!(validate(&extra, "ctx").is_ok());
    }

    #[test]
    fn the_record_only_shape_is_recorded_not_evaluated() {
        let parsed = parse(
            br#"{"number": 7, "author": {"login": "dana"}, "approvers": ["bob"], "merged_by": null}"#,
            "pr.json",
        )
        .expect("record shape");
        let PrJson::RecordOnly(info) = parsed else {
            panic!("expected the record-only shape");
        };
        assert_eq!(info.author, "dana");
        let err = message(parse(br#"{"number": 7}"#, "pr.json").expect_err("no author"));
        assert!(
            err.contains("pr.json") && err.contains("full pull-request context"),
            "{err}"
        );
    }

    #[test]
    fn violations_name_each_field() {
        let mut bad = context();
        bad["reviews"][0]["stale"] = json!("no");
        bad["teams"]["justice-league"]["members"] = json!("octocat");
        let err = message(validate(&bad, "pull-request context").expect_err("invalid"));
        assert!(
            err.starts_with("pull-request context: not a valid pull-request context"),
            "{err}"
        );
        assert!(err.contains("2 problems"), "{err}");
        assert!(err.contains("`reviews[0].stale`"), "{err}");
        assert!(err.contains("`teams.justice-league.members`"), "{err}");
        // `bot` is optional; when given it is a boolean.
        let mut bot = context();
        bot["reviews"][0]["bot"] = json!(true);
        assert!(validate(&bot, "ctx").is_ok());
        bot["reviews"][0]["bot"] = json!("yes");
        let err = message(validate(&bot, "ctx").expect_err("bot not a boolean"));
        assert!(err.contains("`reviews[0].bot`"), "{err}");
        for not_an_object in [&b"[]"[..], b"null", b"\"pr\""] {
            let err = message(parse(not_an_object, "pr.json").expect_err("not an object"));
            assert!(err.contains("expected a JSON object"), "{err}");
        }
    }
}
