//! Publishing a decision where reviewers look: one sticky pull-request comment per workflow
//! (found again by a hidden marker on its first line, across every page of comments, among the
//! comments relgate could have written itself: a bot's, or `RELGATE_GITHUB_COMMENT_AUTHOR`'s;
//! anybody can write the marker, and relgate must not edit their comment), a check
//! run with an annotation per finding (in batches of 50, GitHub's limit per request), the job
//! summary, and the step outputs.
//!
//! Limits: a comment body and a check-run summary hold at most 65,536 and 65,535 characters; a
//! longer report is cut at a line end with a note saying where the full report is. A job
//! summary holds 1 MiB per step.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use serde_json::{json, Value};

use super::client::{Client, Endpoint};
use super::context::segment;
use super::{GitHubError, Repo};
use crate::output::markdown;
use crate::report::{Decision, Report};

/// GitHub's limit on an issue comment body, in characters.
pub(crate) const COMMENT_LIMIT: usize = 65_536;
/// GitHub's limit on `output.summary` of a check run, in characters.
pub(crate) const CHECK_SUMMARY_LIMIT: usize = 65_535;
/// GitHub's limit on the job summary of one step, in bytes.
pub(crate) const STEP_SUMMARY_LIMIT: usize = 1024 * 1024;
/// Annotations GitHub accepts per create or update request.
pub(crate) const ANNOTATIONS_PER_REQUEST: usize = 50;
/// Name of the check run of a decision by the default branch's rules.
pub(crate) const CHECK_NAME: &str = "relgate";

/// The check run's name: [`CHECK_NAME`], except for a pull request into another branch than the
/// repository's default one, `relgate (into BRANCH)`.
///
/// Why: branch protection requires a check by name on the head commit, whichever run posted
/// it. A pull request into a branch whose rules its author loosened (any branch they can push)
/// is judged by that branch's rules; under the plain name, its green check on the same head
/// commit would satisfy the default branch's required `relgate` check for the pull request into
/// it. A base that cannot be compared with the default branch (the payload names none) gets the
/// suffixed name too: only a decision known to be by the default branch's rules is `relgate`.
pub(crate) fn check_name(base_ref: Option<&str>, default_branch: Option<&str>) -> String {
    match (base_ref, default_branch) {
        (Some(base), Some(default)) if base == default => CHECK_NAME.to_owned(),
        (Some(base), _) => format!("{CHECK_NAME} (into {base})"),
        (None, _) => CHECK_NAME.to_owned(),
    }
}

/// The hidden first line of the sticky comment of `workflow`: one comment per workflow, so two
/// workflows gating the same pull request do not overwrite each other.
pub(crate) fn marker(workflow: &str) -> String {
    let escaped = workflow
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!("<!-- relgate-report workflow=\"{escaped}\" -->")
}

/// Whether `body` is the sticky comment of the workflow with this marker (its first line is
/// the marker; a reply quoting the comment starts with `>` and does not count).
pub(crate) fn is_sticky(body: &str, marker: &str) -> bool {
    body.lines().next().map(str::trim_end) == Some(marker)
}

/// Whether `comment` (an item of the issue-comments list) could have been written by relgate:
/// its author is a bot account (`user.type` `Bot`: github-actions[bot] for the workflow's
/// GITHUB_TOKEN, `name[bot]` for a GitHub App), or is `author` (the login of the person whose
/// token relgate uses, `RELGATE_GITHUB_COMMENT_AUTHOR`). Anyone who can comment can copy the
/// marker; their comment must never become the report.
pub(crate) fn is_own(comment: &Value, author: Option<&str>) -> bool {
    let user = comment.get("user");
    if user.and_then(|u| u.get("type")).and_then(Value::as_str) == Some("Bot") {
        return true;
    }
    let login = user.and_then(|u| u.get("login")).and_then(Value::as_str);
    matches!((author, login), (Some(a), Some(l)) if !a.trim().is_empty() && a.trim().eq_ignore_ascii_case(l))
}

/// `text` cut to at most `limit` characters at a line end, with `note` appended when cut. An
/// open `<details>` is closed so the note is not hidden in it.
pub(crate) fn truncate(text: &str, limit: usize, note: &str) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    // Room for the note, a closing tag and the blank lines around them.
    let budget = limit.saturating_sub(note.chars().count() + 32);
    let cut = text
        .char_indices()
        .nth(budget)
        .map_or(text.len(), |(i, _)| i);
    let kept = &text[..cut];
    let kept = match kept.rfind('\n') {
        Some(end) => &kept[..=end],
        None => kept,
    };
    let mut out = kept.to_owned();
    if kept.matches("<details>").count() > kept.matches("</details>").count() {
        out.push_str("\n</details>\n");
    }
    let _ = write!(out, "\n{note}\n");
    out
}

/// Where the full report is, for truncation notes.
fn full_report_at(run_url: Option<&str>) -> String {
    match run_url {
        Some(url) => {
            format!("the check run \"{CHECK_NAME}\" and the job summary of [this run]({url})")
        }
        None => format!("the check run \"{CHECK_NAME}\" and the job summary"),
    }
}

/// The sticky comment: the markdown report with the workflow's marker as first line.
pub(crate) fn comment_body(report_markdown: &str, workflow: &str, run_url: Option<&str>) -> String {
    let rest = report_markdown
        .strip_prefix(markdown::MARKER)
        .unwrap_or(report_markdown)
        .trim_start_matches('\n');
    let mut body = format!("{}\n{rest}", marker(workflow));
    if let Some(url) = run_url {
        let _ = write!(
            body,
            "\n<sub>relgate {} · [workflow run]({url})</sub>\n",
            env!("CARGO_PKG_VERSION")
        );
    }
    truncate(
        &body,
        COMMENT_LIMIT,
        &format!(
            "> **Report truncated** to GitHub's comment limit ({COMMENT_LIMIT} characters). The \
             full report is in {}.",
            full_report_at(run_url)
        ),
    )
}

/// The job summary text (the markdown report, within the 1 MiB limit).
pub(crate) fn step_summary(report_markdown: &str) -> String {
    if report_markdown.len() <= STEP_SUMMARY_LIMIT {
        return report_markdown.to_owned();
    }
    // Characters ≤ bytes, so a character limit of a quarter of the bytes is always within.
    truncate(
        report_markdown,
        STEP_SUMMARY_LIMIT / 4,
        "> **Report truncated** to the job summary limit (1 MiB). The full report is in the \
         check run and in the `--format json` output.",
    )
}

/// The `$GITHUB_OUTPUT` lines: decision, counts and the JSON report's path.
pub(crate) fn outputs(report: &Report, json_report: Option<&Path>) -> String {
    let s = &report.summary;
    let mut out = String::new();
    let _ = writeln!(out, "decision={}", report.decision.as_str());
    let _ = writeln!(out, "manifests={}", s.manifests);
    let _ = writeln!(out, "passed={}", s.passed);
    let _ = writeln!(out, "failed={}", s.failed);
    let _ = writeln!(out, "errors={}", s.errors);
    let _ = writeln!(out, "warnings={}", s.warnings);
    let path = json_report
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    if path.contains(['\n', '\r']) {
        // The multi-line form; the delimiter cannot occur in the value.
        let mut delimiter = "RELGATE_REPORT_EOF".to_owned();
        while path.contains(&delimiter) {
            delimiter.push('_');
        }
        let _ = writeln!(out, "report<<{delimiter}\n{path}\n{delimiter}");
    } else {
        let _ = writeln!(out, "report={path}");
    }
    out
}

/// Appends `text` to a runner file (`$GITHUB_STEP_SUMMARY`, `$GITHUB_OUTPUT`).
pub(crate) fn append(path: &Path, variable: &'static str, text: &str) -> Result<(), GitHubError> {
    let io = |source| GitHubError::Io {
        what: match variable {
            "GITHUB_OUTPUT" => "cannot append the step outputs to $GITHUB_OUTPUT",
            _ => "cannot append the job summary to $GITHUB_STEP_SUMMARY",
        },
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.flush().map_err(io)
}

/// The gate root's path inside the git work tree (`""` or `"ml/"`): report paths are relative
/// to the gate root, annotation paths must be relative to the repository root.
pub(crate) fn repo_prefix(gate_root: &Path) -> String {
    let Ok(repo) = git2::Repository::discover(gate_root) else {
        return String::new();
    };
    let Some(workdir) = repo.workdir() else {
        return String::new();
    };
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    match canonical(gate_root).strip_prefix(canonical(workdir)) {
        Ok(relative) if !relative.as_os_str().is_empty() => {
            let mut text = relative.to_string_lossy().replace('\\', "/");
            text.push('/');
            text
        }
        _ => String::new(),
    }
}

/// Cuts `text` to `max` characters (annotation fields have limits too).
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// One annotation per finding (deny → failure, warn → warning) and per manifest that could not
/// be checked (failure), in report order, at `prefix` + file : line.
pub(crate) fn annotations(report: &Report, prefix: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for result in &report.results {
        let path = format!("{prefix}{}", result.file);
        if let Some(error) = &result.error {
            out.push(json!({
                "path": path,
                "start_line": result.line.max(1),
                "end_line": result.line.max(1),
                "annotation_level": "failure",
                "title": "relgate error",
                "message": clip(error, 4000),
            }));
        }
        for f in &result.findings {
            let mut message = f.message.clone();
            if let Some(field) = &f.path {
                let _ = write!(message, "\nfield: {field}");
            }
            if let Some(fix) = &f.remediation {
                let _ = write!(message, "\nfix: {fix}");
            }
            out.push(json!({
                "path": path,
                "start_line": f.line.max(1),
                "end_line": f.line.max(1),
                "annotation_level": if f.severity.is_warn() { "warning" } else { "failure" },
                "title": clip(&format!("{} ({})", f.rule, f.policy), 255),
                "message": clip(&message, 4000),
            }));
        }
    }
    out
}

/// The check run's conclusion: `success` for a pass (warnings included: they show as warning
/// annotations; `--fail-on-warn` makes them a failure), `failure` for a block and for "could
/// not decide". Never `neutral`: branch protection counts neutral as passing, and a gate that
/// could not decide must not pass.
pub(crate) fn conclusion(report: &Report) -> &'static str {
    match report.decision {
        Decision::Pass => "success",
        Decision::Fail | Decision::Error => "failure",
    }
}

/// The check run's one-line title.
pub(crate) fn check_title(report: &Report) -> String {
    let s = &report.summary;
    let plural = |n: usize, word: &str| {
        if n == 1 {
            format!("{n} {word}")
        } else {
            format!("{n} {word}s")
        }
    };
    let mut title = match report.decision {
        Decision::Pass => format!("pass: {} checked", plural(s.manifests, "release")),
        Decision::Fail => format!(
            "blocked: {} of {} fail",
            s.failed,
            plural(s.manifests, "release")
        ),
        Decision::Error => format!(
            "could not decide: {} of {} could not be checked",
            s.errors,
            plural(s.manifests, "release")
        ),
    };
    if s.warnings > 0 {
        let _ = write!(title, " ({})", plural(s.warnings, "warning"));
    }
    title
}

/// Where and how the check run is made.
#[derive(Debug, Clone)]
pub(crate) struct CheckRun {
    /// The check run's name ([`check_name`]).
    pub(crate) name: String,
    /// The commit the check is about (the pull request's head).
    pub(crate) head_sha: String,
    /// [`repo_prefix`] of the gate root.
    pub(crate) prefix: String,
    pub(crate) details_url: Option<String>,
    pub(crate) completed_at: String,
    /// The pull request and the base the decision was computed against (`base_ref`,
    /// `base_sha` of the context): named in the title, the summary and `external_id`, so a
    /// check computed against one base is never read as a decision about another (the
    /// workflow re-runs on `edited` when the base changes).
    pub(crate) base: Option<BaseOf>,
}

/// See [`CheckRun::base`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseOf {
    pub(crate) number: u64,
    pub(crate) base_ref: String,
    pub(crate) base_sha: Option<String>,
}

impl BaseOf {
    /// From `input.context.pull_request` (`None` without a pull request or its base).
    pub(crate) fn from_context(context: Option<&Value>) -> Option<Self> {
        let context = context?;
        Some(Self {
            number: context.get("number")?.as_u64()?,
            base_ref: context.get("base_ref")?.as_str()?.to_owned(),
            base_sha: context
                .get("base_sha")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}

/// What [`check_run`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckRunDone {
    pub(crate) id: u64,
    pub(crate) annotations: usize,
    pub(crate) requests: usize,
    pub(crate) html_url: Option<String>,
}

impl CheckRunDone {
    pub(crate) fn describe(&self) -> String {
        let mut text = format!(
            "check run {} created with {} annotations ({} requests)",
            self.id, self.annotations, self.requests
        );
        if let Some(url) = &self.html_url {
            let _ = write!(text, ": {url}");
        }
        text
    }
}

/// Creates the completed check run with the first 50 annotations, then adds the rest with
/// updates of 50 each.
pub(crate) async fn check_run(
    client: &Client,
    repo: &Repo,
    report: &Report,
    report_markdown: &str,
    run: &CheckRun,
) -> Result<CheckRunDone, GitHubError> {
    let mut title = check_title(report);
    let summary_source = report_markdown
        .strip_prefix(markdown::MARKER)
        .unwrap_or(report_markdown)
        .trim_start_matches('\n');
    // The heading first (it says the verdict), then the base line, then the rest.
    let (heading, rest) = summary_source
        .split_once('\n')
        .unwrap_or((summary_source, ""));
    let mut with_base = format!("{heading}\n\n");
    if let Some(base) = &run.base {
        title = clip(&format!("{title} against {}", base.base_ref), 255);
        // The base name comes from the pull request: inert in markdown.
        let _ = writeln!(
            with_base,
            "Computed for pull request #{} against base {}{}; a change of the base re-runs the \
             gate.\n",
            base.number,
            markdown::code(&base.base_ref, false),
            base.base_sha
                .as_deref()
                .map(|sha| format!(" ({})", markdown::cell(sha)))
                .unwrap_or_default()
        );
    }
    with_base.push_str(rest.trim_start_matches('\n'));
    let summary = truncate(
        &with_base,
        CHECK_SUMMARY_LIMIT,
        "> **Report truncated** to GitHub's check-run summary limit. The full report is in the \
         job summary and the pull-request comment; every finding is an annotation.",
    );
    let annotations = annotations(report, &run.prefix);
    let mut batches = annotations.chunks(ANNOTATIONS_PER_REQUEST);
    let first = batches.next().unwrap_or(&[]);
    let mut body = json!({
        "name": run.name,
        "head_sha": run.head_sha,
        "status": "completed",
        "conclusion": conclusion(report),
        "output": {"title": title, "summary": summary, "annotations": first},
    });
    if !run.completed_at.is_empty() {
        body["completed_at"] = json!(run.completed_at);
    }
    if let Some(base) = &run.base {
        body["external_id"] = json!(format!("relgate:pr-{}:base-{}", base.number, base.base_ref));
    }
    if let Some(url) = &run.details_url {
        body["details_url"] = json!(url);
    }
    let base = format!("/repos/{}/{}", segment(&repo.owner), segment(&repo.name));
    let created = client
        .post(
            &format!("{base}/check-runs"),
            &body,
            &Endpoint::CreateCheckRun,
        )
        .await?
        .body;
    let id = created
        .get("id")
        .and_then(Value::as_u64)
        .ok_or_else(|| GitHubError::Api {
            action: Endpoint::CreateCheckRun.action(),
            request: format!("POST {base}/check-runs"),
            message: "the response has no check run id".to_owned(),
        })?;
    let mut requests = 1;
    for batch in batches {
        let update = json!({"output": {"title": title, "summary": summary, "annotations": batch}});
        client
            .patch(
                &format!("{base}/check-runs/{id}"),
                &update,
                &Endpoint::UpdateCheckRun { id },
            )
            .await?;
        requests += 1;
    }
    Ok(CheckRunDone {
        id,
        annotations: annotations.len(),
        requests,
        html_url: created
            .get("html_url")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// What [`sticky_comment`] did. `ignored`: the logins of users whose comments carried the
/// marker but were not taken (not relgate's: see [`is_own`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CommentDone {
    Created {
        id: u64,
        pages: usize,
        ignored: Vec<String>,
    },
    Updated {
        id: u64,
        pages: usize,
        ignored: Vec<String>,
    },
}

impl CommentDone {
    pub(crate) fn describe(&self, number: u64) -> String {
        let (mut text, ignored) = match self {
            Self::Created { id, pages, ignored } => (format!(
                "comment {id} posted on pull request #{number} (no earlier report comment in {pages} page(s) of comments)"
            ), ignored),
            Self::Updated { id, pages, ignored } => (format!(
                "comment {id} on pull request #{number} updated (found in {pages} page(s) of comments)"
            ), ignored),
        };
        if !ignored.is_empty() {
            let _ = write!(
                text,
                "; ignored comments carrying the report marker by {} (not a bot account nor \
                 RELGATE_GITHUB_COMMENT_AUTHOR: if relgate posts with that person's token, set \
                 RELGATE_GITHUB_COMMENT_AUTHOR to the login)",
                ignored.join(", ")
            );
        }
        text
    }
}

/// Which comment is the sticky one: the workflow's marker, and who may have written it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sticky<'a> {
    /// `GITHUB_WORKFLOW` (one comment per workflow).
    pub(crate) workflow: &'a str,
    /// `RELGATE_GITHUB_COMMENT_AUTHOR`: a user login whose comments count as relgate's.
    pub(crate) author: Option<&'a str>,
}

/// Updates the workflow's report comment on pull request `number`, or posts it when there is
/// none yet. Every page of comments is searched (a busy pull request has hundreds) before a
/// new one is posted, so a run never adds a second one. Only a comment relgate could have
/// written ([`is_own`]) is taken; a marked comment by anyone else is left alone.
pub(crate) async fn sticky_comment(
    client: &Client,
    repo: &Repo,
    number: u64,
    sticky: &Sticky<'_>,
    body: &str,
) -> Result<CommentDone, GitHubError> {
    let marker = marker(sticky.workflow);
    let base = format!("/repos/{}/{}", segment(&repo.owner), segment(&repo.name));
    let mut found: Option<u64> = None;
    let mut ignored: BTreeSet<String> = BTreeSet::new();
    let pages = client
        .get_pages(
            &format!("{base}/issues/{number}/comments?per_page=100"),
            &Endpoint::ListComments { number },
            &mut |page| {
                // The oldest marked comment of relgate's is the sticky one.
                for comment in page {
                    let text = comment.get("body").and_then(Value::as_str).unwrap_or("");
                    if !is_sticky(text, &marker) {
                        continue;
                    }
                    if !is_own(comment, sticky.author) {
                        let login = comment
                            .pointer("/user/login")
                            .and_then(Value::as_str)
                            .unwrap_or("(deleted account)");
                        ignored.insert(login.to_owned());
                        continue;
                    }
                    if let Some(id) = comment.get("id").and_then(Value::as_u64) {
                        found = Some(id);
                        break;
                    }
                }
                found.is_none()
            },
        )
        .await?;
    let ignored: Vec<String> = ignored.into_iter().collect();
    let payload = json!({ "body": body });
    match found {
        Some(id) => {
            client
                .patch(
                    &format!("{base}/issues/comments/{id}"),
                    &payload,
                    &Endpoint::UpdateComment { id },
                )
                .await?;
            Ok(CommentDone::Updated { id, pages, ignored })
        }
        None => {
            let created = client
                .post(
                    &format!("{base}/issues/{number}/comments"),
                    &payload,
                    &Endpoint::CreateComment { number },
                )
                .await?
                .body;
            let id = created.get("id").and_then(Value::as_u64).unwrap_or(0);
            Ok(CommentDone::Created { id, pages, ignored })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_decision_known_to_be_by_the_default_branchs_rules_is_named_relgate() {
        assert_eq!(check_name(Some("main"), Some("main")), "relgate");
        assert_eq!(check_name(None, Some("main")), "relgate");
        assert_eq!(
            check_name(Some("loose"), Some("main")),
            "relgate (into loose)"
        );
        // The payload names no default branch: it cannot be told, so not the plain name.
        assert_eq!(check_name(Some("main"), None), "relgate (into main)");
    }

    #[test]
    fn the_marker_is_per_workflow_and_cannot_close_early() {
        assert_eq!(marker("CI"), "<!-- relgate-report workflow=\"CI\" -->");
        assert_eq!(
            marker("a\" --> <b>"),
            "<!-- relgate-report workflow=\"a&quot; --&gt; &lt;b&gt;\" -->"
        );
        let m = marker("CI");
        assert!(is_sticky(&format!("{m}\n### relgate"), &m));
        assert!(is_sticky(&format!("{m}\r\nbody"), &m));
        assert!(!is_sticky(&format!("> {m}\nquoted"), &m));
        assert!(!is_sticky(&marker("Other"), &m));
    }

    #[test]
    fn only_bots_and_the_configured_author_write_the_report() {
        let by = |login: &str, kind: &str| json!({"id": 1, "user": {"login": login, "type": kind}, "body": ""});
        assert!(is_own(&by("github-actions[bot]", "Bot"), None));
        assert!(is_own(&by("relgate-app[bot]", "Bot"), Some("release-bot")));
        assert!(!is_own(&by("mallory", "User"), None));
        assert!(!is_own(&by("mallory", "User"), Some("release-bot")));
        assert!(!is_own(&by("mallory", "User"), Some("  ")));
        assert!(is_own(&by("Release-Bot", "User"), Some(" release-bot ")));
        assert!(!is_own(&by("acme", "Organization"), None));
        assert!(!is_own(
            &json!({"id": 1, "user": null, "body": ""}),
            Some("x")
        ));
    }

    #[test]
    fn truncation_cuts_at_a_line_and_closes_details() {
        let text = format!("head\n<details>\n{}", "row\n".repeat(100));
        let cut = truncate(&text, 120, "NOTE");
        assert!(cut.chars().count() <= 120, "{}", cut.chars().count());
        assert!(cut.ends_with("</details>\n\nNOTE\n"), "{cut}");
        assert!(cut.starts_with("head\n<details>\nrow\n"));
        assert_eq!(truncate("short", 120, "NOTE"), "short");
        // Multi-byte characters count as one each and are never split.
        let wide = "é".repeat(300);
        let cut = truncate(&wide, 100, "N");
        assert!(cut.chars().count() <= 100);
    }

    #[test]
    fn comment_bodies_stay_within_the_limit() {
        let huge = format!("{}\n{}", markdown::MARKER, "| a | b |\n".repeat(20_000));
        let body = comment_body(&huge, "CI", Some("https://github.com/o/r/actions/runs/1"));
        assert!(body.chars().count() <= COMMENT_LIMIT);
        assert!(body.starts_with(&marker("CI")));
        assert!(body.contains("Report truncated"));
        assert!(body.contains("https://github.com/o/r/actions/runs/1"));
    }
}
