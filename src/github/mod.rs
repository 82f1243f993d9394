//! GitHub mode (`relgate check --github`, `relgate record --github`; docs/github.md): what a
//! GitHub Actions runner tells us ([`GitHubEnv`], read through a lookup function the CLI
//! passes, so this module never reads the process environment itself), the pull request's
//! facts before deciding ([`context`]), and publishing the decision afterwards ([`publish`]):
//! one sticky comment per workflow, a check run with annotations, the job summary and step
//! outputs. The HTTP client and its retry policy are in [`client`].
//!
//! Failures are errors, never silence: a pull request that cannot be read stops the run
//! before deciding (exit 2), and a publication that fails makes the run exit 2 after the
//! decision was printed.

pub mod client;
pub mod context;
pub mod publish;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::output::markdown;
use crate::report::Report;
use client::{Client, RetryPolicy};

/// Everything that stops the GitHub side; each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    /// The environment or the command line does not allow GitHub mode.
    #[error("{0}")]
    Setup(String),
    /// GitHub answered something else than the request needs.
    #[error("cannot {action}: {request}: {message}")]
    Api {
        action: String,
        request: String,
        message: String,
    },
    /// 403 or 404: usually a permission the token lacks.
    #[error("cannot {action}: {request}: HTTP {status} ({message}): {hint}")]
    Permission {
        action: String,
        request: String,
        status: u16,
        message: String,
        hint: &'static str,
    },
    /// Retries ran out (5xx, rate limits, transport errors).
    #[error(
        "cannot {action}: {request}: still failing after {attempts} tries in {:.1} s (last: {last}); {reason}",
        elapsed.as_secs_f64()
    )]
    GaveUp {
        action: String,
        request: String,
        attempts: u32,
        elapsed: Duration,
        last: String,
        reason: String,
    },
    /// A runner file ($GITHUB_STEP_SUMMARY, $GITHUB_OUTPUT, the event) could not be used.
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where `--publish` sends the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Target {
    /// One sticky pull-request comment per workflow, updated on every run.
    Comment,
    /// A check run named "relgate" with an annotation per finding.
    CheckRun,
    /// The markdown report appended to $GITHUB_STEP_SUMMARY.
    Summary,
    /// Publish nothing (step outputs are still written).
    None,
}

/// The default of `--publish` in GitHub mode.
pub const DEFAULT_TARGETS: [Target; 3] = [Target::Comment, Target::CheckRun, Target::Summary];

/// `owner/name` of `GITHUB_REPOSITORY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    pub owner: String,
    pub name: String,
}

impl Repo {
    pub fn parse(text: &str) -> Option<Self> {
        let (owner, name) = text.trim().split_once('/')?;
        (!owner.is_empty() && !name.is_empty() && !name.contains('/')).then(|| Self {
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// What the runner sets (docs/github.md lists each variable).
#[derive(Debug, Clone)]
pub struct GitHubEnv {
    /// `GITHUB_REPOSITORY`.
    pub repository: Option<String>,
    /// `GITHUB_API_URL`, default `https://api.github.com`.
    pub api_url: String,
    /// `GITHUB_SERVER_URL`, default `https://github.com`.
    pub server_url: String,
    pub event_path: Option<PathBuf>,
    pub event_name: Option<String>,
    pub sha: Option<String>,
    pub run_id: Option<String>,
    pub step_summary: Option<PathBuf>,
    pub output: Option<PathBuf>,
    pub workflow: Option<String>,
    /// `RELGATE_GITHUB_TOKEN`, else `GITHUB_TOKEN`.
    pub token: Option<String>,
    /// `RELGATE_GITHUB_COMMENT_AUTHOR`: the login relgate comments as when its token is a
    /// person's (a PAT). Comments of bot accounts are always relgate's candidates; a user's
    /// comment only when written by this login.
    pub comment_author: Option<String>,
    pub retry: RetryPolicy,
}

impl GitHubEnv {
    /// Reads the variables through `lookup` (empty values count as unset).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, GitHubError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        Ok(Self {
            repository: get("GITHUB_REPOSITORY"),
            api_url: get("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".to_owned()),
            server_url: get("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".to_owned()),
            event_path: get("GITHUB_EVENT_PATH").map(PathBuf::from),
            event_name: get("GITHUB_EVENT_NAME"),
            sha: get("GITHUB_SHA"),
            run_id: get("GITHUB_RUN_ID"),
            step_summary: get("GITHUB_STEP_SUMMARY").map(PathBuf::from),
            output: get("GITHUB_OUTPUT").map(PathBuf::from),
            workflow: get("GITHUB_WORKFLOW"),
            token: get("RELGATE_GITHUB_TOKEN").or_else(|| get("GITHUB_TOKEN")),
            comment_author: get("RELGATE_GITHUB_COMMENT_AUTHOR").map(|l| l.trim().to_owned()),
            retry: RetryPolicy::from_lookup(lookup)?,
        })
    }

    /// The URL of this workflow run, when the runner said which.
    pub fn run_url(&self) -> Option<String> {
        Some(format!(
            "{}/{}/actions/runs/{}",
            self.server_url.trim_end_matches('/'),
            self.repository.as_deref()?,
            self.run_id.as_deref()?
        ))
    }
}

/// Variables relgate reads that change its behaviour and that an earlier step of the job could
/// have set through `$GITHUB_ENV`. Token variables are not listed (their values are secret and
/// choosing the token is their purpose).
pub const OVERRIDES: [&str; 6] = [
    "RELGATE_GITHUB_COMMENT_AUTHOR",
    "RELGATE_GITHUB_RETRY_ATTEMPTS",
    "RELGATE_GITHUB_RETRY_BASE_MS",
    "RELGATE_GITHUB_RETRY_MAX_MS",
    "RELGATE_GITHUB_DEADLINE_SECS",
    "RELGATE_GITHUB_TIMEOUT_SECS",
];

/// The report's notes on the environment of a GitHub-mode run: `RELGATE_NOW` is ignored (the
/// clock is the runner's), and every other override in effect is named with its value, so
/// nothing a previous step set is silent. No time in them: the same run gives the same
/// comment (the sticky comment is only rewritten when it changes).
pub fn environment_notes(lookup: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let shown = |v: &str| crate::output::text::field(v).into_owned();
    let mut notes = Vec::new();
    if let Some(value) = lookup("RELGATE_NOW") {
        notes.push(format!(
            "RELGATE_NOW={} is set but ignored: in GitHub mode the clock is the runner's",
            shown(&value)
        ));
    }
    let set: Vec<String> = OVERRIDES
        .iter()
        .filter_map(|name| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| format!("{name}={}", shown(&v)))
        })
        .collect();
    if !set.is_empty() {
        notes.push(format!(
            "environment overrides in effect: {}",
            set.join(", ")
        ));
    }
    notes
}

/// The command-line side of GitHub mode.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--github-token` (wins over the environment).
    pub token: Option<String>,
    /// `--pull-request N` (wins over the event).
    pub pull_request: Option<u64>,
    /// `--publish`; empty: [`DEFAULT_TARGETS`].
    pub publish: Vec<Target>,
    /// `relgate record`: the run looks up the merged pull request of the pushed commit, so it
    /// talks to the API whatever it publishes.
    pub record: bool,
}

/// The pull request a `pull_request` / `pull_request_review` / `pull_request_target` event
/// carries: its number and the head commit that was checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPull {
    pub number: u64,
    pub head_sha: Option<String>,
    /// `pull_request.base.sha`: whose rules judge the pull request when GitHub mode runs
    /// without `--changed` (the action's `changed-only: false`).
    pub base_sha: Option<String>,
    /// `sender.login` of a `synchronize` (a push to the pull request): who pushed the head.
    pub pusher: Option<String>,
}

/// The event payload (`GITHUB_EVENT_PATH`) as JSON.
fn read_event(path: &Path) -> Result<Value, GitHubError> {
    let bytes = std::fs::read(path).map_err(|source| GitHubError::Io {
        what: "cannot read the event payload (GITHUB_EVENT_PATH)",
        path: path.to_path_buf(),
        source,
    })?;
    let event: Value = serde_json::from_slice(&bytes).map_err(|e| {
        GitHubError::Setup(format!(
            "{}: the event payload (GITHUB_EVENT_PATH) is not JSON: {e}",
            path.display()
        ))
    })?;
    Ok(event)
}

/// `merge_group.base_sha` of a merge-queue event: the commit whose rules judge the queue's
/// merge commit (its tree holds the queued pull requests' own `relgate.yaml` and policies).
/// `None` for any other event.
pub fn event_merge_group_base(path: &Path) -> Result<Option<String>, GitHubError> {
    let event = read_event(path)?;
    Ok(event
        .pointer("/merge_group/base_sha")
        .and_then(Value::as_str)
        .map(str::to_owned))
}

/// Reads `pull_request.number` and `pull_request.head.sha` of the event payload.
pub fn event_pull(path: &Path) -> Result<Option<EventPull>, GitHubError> {
    let event = read_event(path)?;
    let Some(pr) = event.get("pull_request").filter(|p| p.is_object()) else {
        return Ok(None);
    };
    let number = pr.get("number").and_then(Value::as_u64).ok_or_else(|| {
        GitHubError::Setup(format!(
            "{}: the event's pull_request has no number",
            path.display()
        ))
    })?;
    Ok(Some(EventPull {
        number,
        head_sha: pr
            .pointer("/head/sha")
            .and_then(Value::as_str)
            .map(str::to_owned),
        base_sha: pr
            .pointer("/base/sha")
            .and_then(Value::as_str)
            .map(str::to_owned),
        pusher: (event.get("action").and_then(Value::as_str) == Some("synchronize"))
            .then(|| event.pointer("/sender/login").and_then(Value::as_str))
            .flatten()
            .map(str::to_owned),
    }))
}

/// Pull-request context found for `relgate record`.
#[derive(Debug, Clone, Default)]
pub struct RecordContext {
    /// `input.context.pull_request`.
    pub context: Option<Value>,
    /// Why there is none, to tell the user.
    pub note: Option<String>,
}

/// What publishing did, for the CLI to print. Any `failed` entry means exit 2.
#[derive(Debug, Default)]
pub struct PublishOutcome {
    pub done: Vec<String>,
    pub skipped: Vec<String>,
    pub failed: Vec<GitHubError>,
}

/// What publishing needs from the run besides the report.
#[derive(Debug, Clone, Default)]
pub struct PublishInputs {
    /// The gate root: annotation paths are made relative to the repository root from it.
    pub gate_root: PathBuf,
    /// The `--format json --output FILE` path, for the `report` output.
    pub json_report: Option<PathBuf>,
    /// `completed_at` of the check run (the run's `context.now`).
    pub now: String,
    /// `input.context.pull_request` of the run.
    pub context: Option<Value>,
}

/// A GitHub-mode run: environment, options, and (when the run talks to the API) the client.
pub struct GitHub {
    pub env: GitHubEnv,
    repo: Option<Repo>,
    targets: BTreeSet<Target>,
    /// The pull request to read and comment on: `--pull-request`, else the event's.
    number: Option<u64>,
    /// Head commit the event checked out, when `number` is the event's pull request.
    event_head_sha: Option<String>,
    /// Who pushed that head, when the event says (a `synchronize`).
    event_pusher: Option<String>,
    client: Option<Client>,
    runtime: tokio::runtime::Runtime,
}

impl GitHub {
    /// Checks everything GitHub mode needs before anything is decided: the repository, the
    /// event, the token (when the run reads or writes through the API).
    pub fn new(env: GitHubEnv, options: Options) -> Result<Self, GitHubError> {
        let mut targets: BTreeSet<Target> = if options.publish.is_empty() {
            DEFAULT_TARGETS.into_iter().collect()
        } else {
            options.publish.iter().copied().collect()
        };
        if targets.contains(&Target::None) {
            if targets.len() > 1 {
                return Err(GitHubError::Setup(
                    "--publish none cannot be combined with other targets".to_owned(),
                ));
            }
            targets.clear();
        }
        let repo = match &env.repository {
            Some(text) => Some(Repo::parse(text).ok_or_else(|| {
                GitHubError::Setup(format!("GITHUB_REPOSITORY={text} is not `owner/name`"))
            })?),
            None => None,
        };
        let event = match &env.event_path {
            Some(path) => event_pull(path)?,
            None => None,
        };
        let number = options.pull_request.or(event.as_ref().map(|e| e.number));
        let event = event.filter(|e| Some(e.number) == number);
        let event_pusher = event.as_ref().and_then(|e| e.pusher.clone());
        let event_head_sha = event.and_then(|e| e.head_sha);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| GitHubError::Setup(format!("cannot start the HTTP runtime: {e}")))?;
        let needs_api = number.is_some()
            || options.record
            || targets.contains(&Target::Comment)
            || targets.contains(&Target::CheckRun);
        let client = if needs_api {
            if repo.is_none() {
                return Err(GitHubError::Setup(
                    "GitHub mode needs GITHUB_REPOSITORY (owner/name), as a runner sets it"
                        .to_owned(),
                ));
            }
            let token = options.token.clone().or_else(|| env.token.clone());
            let Some(token) = token.filter(|t| !t.trim().is_empty()) else {
                return Err(GitHubError::Setup(
                    "GitHub mode needs a token: pass --github-token or set RELGATE_GITHUB_TOKEN \
                     or GITHUB_TOKEN (in a workflow: `env: GITHUB_TOKEN: ${{ \
                     secrets.GITHUB_TOKEN }}`); or publish only the summary with --publish \
                     summary and no pull request"
                        .to_owned(),
                ));
            };
            // octocrab's service stack spawns its buffer task on the current runtime.
            let _context = runtime.enter();
            Some(Client::new(&env.api_url, token.trim(), env.retry.clone())?)
        } else {
            None
        };
        Ok(Self {
            env,
            repo,
            targets,
            number,
            event_head_sha,
            event_pusher,
            client,
            runtime,
        })
    }

    /// The pull request of this run (`--pull-request` or the event's).
    pub fn pull_request_number(&self) -> Option<u64> {
        self.number
    }

    fn api(&self) -> Result<(&Client, &Repo), GitHubError> {
        match (&self.client, &self.repo) {
            (Some(client), Some(repo)) => Ok((client, repo)),
            _ => Err(GitHubError::Setup(
                "internal: the GitHub client was not set up for this run".to_owned(),
            )),
        }
    }

    /// `input.context.pull_request` for `relgate check`: the run's pull request, or `None`
    /// when the run has none (a push event without --pull-request).
    pub fn context(&self, approvals: Option<&Value>) -> Result<Option<Value>, GitHubError> {
        let Some(number) = self.number else {
            return Ok(None);
        };
        let (client, repo) = self.api()?;
        self.runtime
            .block_on(context::fetch(
                client,
                repo,
                number,
                approvals,
                self.event_head_sha.as_deref(),
                self.event_pusher.as_deref(),
            ))
            .map(Some)
    }

    /// The commit this run reports on: the check run is attached to it and the report's
    /// `file:line` links point into it. With a pull request: the head the event carries, else
    /// (`--pull-request` without its event) the pull request's head from `context`; without
    /// one: `GITHUB_SHA`.
    pub fn subject_commit(&self, context: Option<&Value>) -> Option<String> {
        if self.number.is_some() {
            self.event_head_sha.clone().or_else(|| {
                context
                    .and_then(|c| c.get("head_sha"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
        } else {
            self.env.sha.clone()
        }
    }

    /// Before deciding: the commit checked out at `gate_root` must be the commit the run
    /// reports on ([`Self::subject_commit`]), or a merge commit with it as a parent (what
    /// actions/checkout checks out for `pull_request`: refs/pull/N/merge). relgate decides
    /// about the files on disk and publishes about the subject commit; if the two differ it
    /// would post a decision about other code (under `pull_request_target`, the base branch
    /// passing for the pull request's head). Checked whenever the run has a pull request, and
    /// for a run without one when it publishes a check run on `GITHUB_SHA`.
    pub fn verify_checkout(
        &self,
        gate_root: &Path,
        context: Option<&Value>,
    ) -> Result<(), GitHubError> {
        let subject = self.subject_commit(context);
        let what = match (self.number, &subject) {
            (Some(number), Some(_)) => Subject::PullRequest {
                number,
                event: self.env.event_name.clone(),
            },
            (Some(number), None) => {
                return Err(GitHubError::Setup(format!(
                    "cannot tell which commit pull request #{number} is about: the event has no \
                     pull_request.head.sha and the pull request was not read"
                )))
            }
            (None, Some(_)) if self.targets.contains(&Target::CheckRun) => Subject::GithubSha,
            (None, _) => return Ok(()),
        };
        let expected = subject.unwrap_or_default();
        verify_checkout(gate_root, &expected, &what)
    }

    /// The context for `relgate record`: the run's pull request, else (a push after a merge)
    /// the merged pull request of GITHUB_SHA.
    pub fn record_context(&self, approvals: Option<&Value>) -> Result<RecordContext, GitHubError> {
        if self.number.is_some() {
            return Ok(RecordContext {
                context: self.context(approvals)?,
                note: None,
            });
        }
        let Some(sha) = self.env.sha.clone() else {
            return Ok(RecordContext {
                context: None,
                note: Some(
                    "no pull request: the event has none, --pull-request is not given and \
                     GITHUB_SHA is not set; recording without pull-request context"
                        .to_owned(),
                ),
            });
        };
        let (client, repo) = self.api()?;
        self.runtime.block_on(async {
            match context::merged_pull_for_commit(client, repo, &sha).await? {
                Some(number) => Ok(RecordContext {
                    // A merged pull request: its head is final, no checkout to compare.
                    context: Some(
                        context::fetch(client, repo, number, approvals, None, None).await?,
                    ),
                    note: None,
                }),
                None => Ok(RecordContext {
                    context: None,
                    note: Some(format!(
                        "commit {sha} belongs to no merged pull request (a direct push?); \
                         recording without pull-request context"
                    )),
                }),
            }
        })
    }

    /// Publishes `report` to every target, then writes the step outputs. Every target is
    /// tried even when an earlier one failed.
    pub fn publish(&self, report: &Report, inputs: &PublishInputs) -> PublishOutcome {
        let mut outcome = PublishOutcome::default();
        // The commit the check run and the comment's file:line links point at (checked
        // against the checkout by `verify_checkout` before deciding).
        let head_sha = self.subject_commit(inputs.context.as_ref());
        let links = match (&self.env.repository, &head_sha) {
            (Some(repository), Some(sha)) => Some(markdown::SourceLinks::github(
                &self.env.server_url,
                repository,
                sha,
                &publish::repo_prefix(&inputs.gate_root),
            )),
            _ => None,
        };
        let markdown = markdown::render_linked(report, links.as_ref());
        let workflow = self.env.workflow.clone().unwrap_or_default();
        let run_url = self.env.run_url();

        if self.targets.contains(&Target::Summary) {
            match &self.env.step_summary {
                Some(path) => match publish::append(
                    path,
                    "GITHUB_STEP_SUMMARY",
                    &publish::step_summary(&markdown),
                ) {
                    Ok(()) => outcome
                        .done
                        .push(format!("job summary appended to {}", path.display())),
                    Err(e) => outcome.failed.push(e),
                },
                None => outcome
                    .skipped
                    .push("job summary: GITHUB_STEP_SUMMARY is not set".to_owned()),
            }
        }

        if self.targets.contains(&Target::Comment) {
            match self.number {
                Some(number) => {
                    let body = publish::comment_body(&markdown, &workflow, run_url.as_deref());
                    let result = self.api().and_then(|(client, repo)| {
                        self.runtime.block_on(publish::sticky_comment(
                            client,
                            repo,
                            number,
                            &publish::Sticky {
                                workflow: &workflow,
                                author: self.env.comment_author.as_deref(),
                            },
                            &body,
                        ))
                    });
                    match result {
                        Ok(done) => outcome.done.push(done.describe(number)),
                        Err(e) => outcome.failed.push(e),
                    }
                }
                None => outcome.skipped.push(
                    "pull-request comment: this run has no pull request (the event has none \
                     and --pull-request is not given)"
                        .to_owned(),
                ),
            }
        }

        if self.targets.contains(&Target::CheckRun) {
            match head_sha.clone() {
                Some(head_sha) => {
                    let run = publish::CheckRun {
                        head_sha,
                        prefix: publish::repo_prefix(&inputs.gate_root),
                        details_url: run_url.clone(),
                        completed_at: inputs.now.clone(),
                        base: publish::BaseOf::from_context(inputs.context.as_ref()),
                    };
                    let result = self.api().and_then(|(client, repo)| {
                        self.runtime
                            .block_on(publish::check_run(client, repo, report, &markdown, &run))
                    });
                    match result {
                        Ok(done) => outcome.done.push(done.describe()),
                        Err(e) => outcome.failed.push(e),
                    }
                }
                None => outcome.failed.push(GitHubError::Setup(
                    "cannot create the check run: no commit to attach it to (GITHUB_SHA is not \
                     set and the run has no pull request)"
                        .to_owned(),
                )),
            }
        }

        if let Some(path) = &self.env.output {
            let text = publish::outputs(report, inputs.json_report.as_deref());
            match publish::append(path, "GITHUB_OUTPUT", &text) {
                Ok(()) => outcome
                    .done
                    .push(format!("step outputs written to {}", path.display())),
                Err(e) => outcome.failed.push(e),
            }
        }
        outcome
    }
}

/// What the checked-out commit must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// The head of pull request `number` (`event`: GITHUB_EVENT_NAME).
    PullRequest { number: u64, event: Option<String> },
    /// `GITHUB_SHA`, the commit of a run without a pull request.
    GithubSha,
}

/// Checks that HEAD of the git repository holding `gate_root` is `expected`, or a merge
/// commit one of whose parents is `expected`. Only the commit objects are read (a shallow
/// clone of depth 1 has the merge commit but not its parents, and that is enough).
pub fn verify_checkout(
    gate_root: &Path,
    expected: &str,
    what: &Subject,
) -> Result<(), GitHubError> {
    let subject = match what {
        Subject::PullRequest { number, .. } => format!("pull request #{number}'s head {expected}"),
        Subject::GithubSha => format!("GITHUB_SHA {expected}"),
    };
    let repo = git2::Repository::discover(gate_root).map_err(|e| {
        GitHubError::Setup(format!(
            "GitHub mode checks that the checked-out commit is {subject}, but {} is not inside \
             a git repository ({}): check the repository out with actions/checkout",
            gate_root.display(),
            e.message()
        ))
    })?;
    let place = repo
        .workdir()
        .unwrap_or_else(|| repo.path())
        .display()
        .to_string();
    let head = repo.head().and_then(|h| h.peel_to_commit()).map_err(|e| {
        GitHubError::Setup(format!(
            "GitHub mode checks that the checked-out commit is {subject}, but HEAD of \
                 {place} is no commit ({})",
            e.message()
        ))
    })?;
    let same = |id: git2::Oid| id.to_string().eq_ignore_ascii_case(expected.trim());
    if same(head.id()) || (head.parent_count() > 1 && head.parent_ids().any(same)) {
        return Ok(());
    }
    let parents: Vec<String> = head.parent_ids().map(|id| id.to_string()).collect();
    let checked_out = match parents.as_slice() {
        [_, _, ..] => format!(
            "{} (a merge of {}, none of them the expected commit)",
            head.id(),
            parents.join(" and ")
        ),
        _ => head.id().to_string(),
    };
    let summary = String::from_utf8_lossy(head.summary_bytes().unwrap_or_default()).into_owned();
    let checked_out = if summary.is_empty() {
        checked_out
    } else {
        format!("{checked_out} \"{summary}\"")
    };
    let fix = match what {
        Subject::PullRequest { number, event } => {
            let event_note = event
                .as_deref()
                .map(|e| format!(" (event {e})"))
                .unwrap_or_default();
            format!(
                "relgate decides about the files checked out and would publish that decision \
                 on the pull request's head{event_note}, so nothing was decided or published. \
                 Check out the pull request's code: on `pull_request` events actions/checkout's \
                 default (refs/pull/{number}/merge, a merge commit of the head) is right; on \
                 `pull_request_target` actions/checkout checks out the base branch unless given \
                 `ref: ${{{{ github.event.pull_request.head.sha }}}}`, and that job then holds \
                 the pull request's code next to the workflow's secrets and write token: no \
                 step of it may build or run anything from the checkout (relgate only reads \
                 files); see docs/github.md"
            )
        }
        Subject::GithubSha => "relgate decides about the files checked out and would publish \
             that decision as a check run on GITHUB_SHA, so nothing was decided or published. \
             Check out GITHUB_SHA (actions/checkout's default), or publish without a check run \
             (--publish comment,summary)"
            .to_owned(),
    };
    Err(GitHubError::Setup(format!(
        "the checked-out commit is not {subject}: HEAD of {place} is {checked_out}. {fix}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_defaults_and_token_fallback() {
        let env = GitHubEnv::from_lookup(&|name| match name {
            "GITHUB_REPOSITORY" => Some("acme/models".into()),
            "GITHUB_TOKEN" => Some("t1".into()),
            "RELGATE_GITHUB_TOKEN" => Some("  ".into()),
            "GITHUB_RUN_ID" => Some("42".into()),
            _ => None,
        })
        .expect("valid");
        assert_eq!(env.api_url, "https://api.github.com");
        assert_eq!(env.token.as_deref(), Some("t1"));
        assert_eq!(
            env.run_url().as_deref(),
            Some("https://github.com/acme/models/actions/runs/42")
        );
        assert_eq!(
            Repo::parse("acme/models"),
            Some(Repo {
                owner: "acme".into(),
                name: "models".into()
            })
        );
        assert_eq!(Repo::parse("acme"), None);
        assert_eq!(Repo::parse("a/b/c"), None);
    }
}

#[cfg(test)]
mod checkout_tests {
    use super::{verify_checkout, Subject};

    /// Commits the (empty) tree on top of HEAD with `parents` added; returns the commit.
    fn commit(repo: &git2::Repository, message: &str, extra: &[git2::Oid]) -> git2::Oid {
        let sig = git2::Signature::new("t", "t@example.com", &git2::Time::new(1_764_000_000, 0))
            .expect("signature");
        let tree_id = repo
            .treebuilder(None)
            .and_then(|b| b.write())
            .expect("tree");
        let tree = repo.find_tree(tree_id).expect("tree");
        let mut parents: Vec<git2::Commit> = repo
            .head()
            .ok()
            .and_then(|h| h.peel_to_commit().ok())
            .into_iter()
            .collect();
        for id in extra {
            parents.push(repo.find_commit(*id).expect("parent"));
        }
        let parents: Vec<&git2::Commit> = parents.iter().collect();
        repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
            .expect("commit")
    }

    #[test]
    fn head_or_a_merge_of_it_and_nothing_else() {
        let dir = tempfile::tempdir().expect("temp");
        let pr = Subject::PullRequest {
            number: 7,
            event: Some("pull_request".into()),
        };
        let err = verify_checkout(dir.path(), "abc", &pr).expect_err("no repository");
        assert!(
            err.to_string().contains("is not inside a git repository"),
            "{err}"
        );

        let repo = git2::Repository::init(dir.path()).expect("init");
        let err = verify_checkout(dir.path(), "abc", &pr).expect_err("unborn");
        assert!(err.to_string().contains("is no commit"), "{err}");

        let base = commit(&repo, "base", &[]);
        let head = commit(&repo, "head", &[]);
        let sub = dir.path().join("gate");
        std::fs::create_dir_all(&sub).expect("mkdir");
        // The head itself (upper case from a payload too), from a gate root below the top.
        verify_checkout(&sub, &head.to_string(), &pr).expect("the head");
        verify_checkout(&sub, &head.to_string().to_uppercase(), &pr).expect("case");
        // A commit on top of the head is not the head.
        let child = commit(&repo, "child", &[]);
        let err = verify_checkout(&sub, &head.to_string(), &pr).expect_err("child");
        assert!(
            err.to_string().contains(&format!(
                "the checked-out commit is not pull request #7's head {head}: HEAD of"
            )) && err.to_string().contains(&format!("is {child} \"child\"")),
            "{err}"
        );
        // refs/pull/7/merge: a merge of the base and the head.
        repo.set_head_detached(base).expect("detach");
        let merge = commit(&repo, "merge", &[head]);
        verify_checkout(&sub, &head.to_string(), &pr).expect("a merge of the head");
        let err = verify_checkout(&sub, &child.to_string(), &pr).expect_err("not a parent");
        assert!(
            err.to_string().contains(&format!(
                "is {merge} (a merge of {base} and {head}, none of them"
            )),
            "{err}"
        );
        // Without a pull request: GITHUB_SHA.
        let err = verify_checkout(&sub, &child.to_string(), &Subject::GithubSha)
            .expect_err("other commit");
        assert!(
            err.to_string().contains("is not GITHUB_SHA")
                && err.to_string().contains("--publish comment,summary"),
            "{err}"
        );
    }
}
