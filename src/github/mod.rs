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

mod checkout;
pub(crate) mod client;
pub(crate) mod context;
mod endpoint;
mod env;
mod event;
pub(crate) mod publish;
mod retry;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::output::markdown;
use crate::report::Report;
use client::Client;

pub(crate) use checkout::{verify_checkout, Subject};
pub(crate) use env::{environment_notes, GitHubEnv, Repo};
pub(crate) use event::{
    event_branch_outside_default, event_default_branch, event_merge_group_base, event_pull,
};

/// Everything that stops the GitHub side; each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GitHubError {
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
pub(crate) enum Target {
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
pub(crate) const DEFAULT_TARGETS: [Target; 3] =
    [Target::Comment, Target::CheckRun, Target::Summary];

/// The command-line side of GitHub mode.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    /// `--github-token` (wins over the environment).
    pub(crate) token: Option<String>,
    /// `--pull-request N` (wins over the event).
    pub(crate) pull_request: Option<u64>,
    /// `--publish`; empty: [`DEFAULT_TARGETS`].
    pub(crate) publish: Vec<Target>,
    /// `relgate record`: the run looks up the merged pull request of the pushed commit, so it
    /// talks to the API whatever it publishes.
    pub(crate) record: bool,
}

/// Pull-request context found for `relgate record`.
#[derive(Debug, Clone, Default)]
pub(crate) struct RecordContext {
    /// `input.context.pull_request`.
    pub(crate) context: Option<Value>,
    /// Why there is none, to tell the user.
    pub(crate) note: Option<String>,
}

/// What publishing did, for the CLI to print. Any `failed` entry means exit 2.
#[derive(Debug, Default)]
pub(crate) struct PublishOutcome {
    pub(crate) done: Vec<String>,
    pub(crate) skipped: Vec<String>,
    pub(crate) failed: Vec<GitHubError>,
}

/// What publishing needs from the run besides the report.
#[derive(Debug, Clone, Default)]
pub(crate) struct PublishInputs {
    /// The gate root: annotation paths are made relative to the repository root from it.
    pub(crate) gate_root: PathBuf,
    /// The `--format json --output FILE` path, for the `report` output.
    pub(crate) json_report: Option<PathBuf>,
    /// `completed_at` of the check run (the run's `context.now`).
    pub(crate) now: String,
    /// `input.context.pull_request` of the run.
    pub(crate) context: Option<Value>,
}

/// A GitHub-mode run: environment, options, and (when the run talks to the API) the client.
pub(crate) struct GitHub {
    pub(crate) env: GitHubEnv,
    repo: Option<Repo>,
    targets: BTreeSet<Target>,
    /// The pull request to read and comment on: `--pull-request`, else the event's.
    number: Option<u64>,
    /// Head commit the event checked out, when `number` is the event's pull request.
    event_head_sha: Option<String>,
    /// The base branch the event's pull request had, when `number` is the event's pull request.
    event_base_ref: Option<String>,
    /// Who pushed that head, when the event says (a `synchronize`).
    event_pusher: Option<String>,
    client: Option<Client>,
    runtime: tokio::runtime::Runtime,
}

impl GitHub {
    /// Checks everything GitHub mode needs before anything is decided: the repository, the
    /// event, the token (when the run reads or writes through the API).
    pub(crate) fn new(env: GitHubEnv, options: Options) -> Result<Self, GitHubError> {
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
        let event_base_ref = event.as_ref().and_then(|e| e.base_ref.clone());
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
            event_base_ref,
            event_pusher,
            client,
            runtime,
        })
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
    pub(crate) fn context(&self, approvals: Option<&Value>) -> Result<Option<Value>, GitHubError> {
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
                context::Checked {
                    head: self.event_head_sha.as_deref(),
                    base_ref: self.event_base_ref.as_deref(),
                },
                self.event_pusher.as_deref(),
            ))
            .map(Some)
    }

    /// The commit this run reports on: the check run is attached to it and the report's
    /// `file:line` links point into it. With a pull request: the head the event carries, else
    /// (`--pull-request` without its event) the pull request's head from `context`; without
    /// one: `GITHUB_SHA`.
    pub(crate) fn subject_commit(&self, context: Option<&Value>) -> Option<String> {
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
    pub(crate) fn verify_checkout(
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
    pub(crate) fn record_context(
        &self,
        approvals: Option<&Value>,
    ) -> Result<RecordContext, GitHubError> {
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
                        context::fetch(
                            client,
                            repo,
                            number,
                            approvals,
                            context::Checked::default(),
                            None,
                        )
                        .await?,
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
    pub(crate) fn publish(&self, report: &Report, inputs: &PublishInputs) -> PublishOutcome {
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
                    let base = publish::BaseOf::from_context(inputs.context.as_ref());
                    let default_branch = self
                        .env
                        .event_path
                        .as_deref()
                        .and_then(event_default_branch);
                    let run = publish::CheckRun {
                        name: publish::check_name(
                            base.as_ref().map(|b| b.base_ref.as_str()),
                            default_branch.as_deref(),
                        ),
                        head_sha,
                        prefix: publish::repo_prefix(&inputs.gate_root),
                        details_url: run_url.clone(),
                        completed_at: inputs.now.clone(),
                        base,
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
