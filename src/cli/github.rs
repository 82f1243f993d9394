//! The command-line side of GitHub mode (`--github`, docs/github.md): resolves the runner's
//! environment and the flags into a [`GitHub`] run, reads the pull request and checks that the
//! checked-out commit is the one the result will be published on before deciding, and prints
//! what publishing did. The decision is always printed before anything is
//! published; a publication that fails turns the exit code into 2.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;

use super::{print_report, CheckArgs};
use crate::exit_status::ExitStatus;
use crate::gate::{self, CheckSettings, Gate};
use crate::github::{GitHub, GitHubEnv, Options, PublishInputs};
use crate::output::Format;
use crate::report::Report;

/// Sets up GitHub mode from the flags and the process environment. Everything that can stop
/// the run is checked here, before anything is decided.
/// `record`: the run reads the merged pull request of the pushed commit.
pub(crate) fn start(args: &CheckArgs, record: bool) -> anyhow::Result<GitHub> {
    let env = GitHubEnv::from_lookup(&|name| std::env::var(name).ok())?;
    Ok(GitHub::new(
        env,
        Options {
            token: args.github_token.clone(),
            pull_request: args.pull_request,
            publish: args.publish.clone(),
            record,
        },
    )?)
}

/// The file `--format json --output FILE` wrote, for the `report` step output.
pub(crate) fn json_report(args: &CheckArgs) -> Option<PathBuf> {
    args.format
        .iter()
        .zip(&args.output)
        .find(|(format, _)| **format == Format::Json)
        .map(|(_, path)| path.clone())
}

/// `relgate check --github`.
pub(crate) fn check(
    args: &CheckArgs,
    settings: &CheckSettings,
    color: bool,
) -> anyhow::Result<ExitStatus> {
    let github = start(args, false)?;
    // Without --changed (the action's `changed-only: false`) a pull request's whole tree is
    // checked, but still by its base's relgate.yaml and policies, as under --changed: a
    // pull request that loosens the rules in the same commit as a release must not be judged
    // by its own rules (red team X2). A merge queue's merge commit holds the queued pull
    // requests' rules too, so it is judged by `merge_group.base_sha`'s. A push or dispatch on
    // the default branch keeps the tree's own rules (what it checks is merged); on another
    // branch it is judged by the default branch's.
    let event_base = match (&settings.changed, &github.env.event_path) {
        (None, Some(path)) => match crate::github::event_pull(path)? {
            Some(pull) if args.pull_request.is_none_or(|n| n == pull.number) => {
                Some(pull.base_sha.ok_or_else(|| {
                    anyhow::anyhow!(
                        "{}: the event's pull request has no base.sha, so whose rules judge it \
                         cannot be told",
                        path.display()
                    )
                })?)
            }
            None if args.pull_request.is_none()
                && github.env.event_name.as_deref() == Some("merge_group") =>
            {
                crate::github::event_merge_group_base(path)?
            }
            // A push to (or a dispatch on) a branch other than the default one is not merged:
            // by the branch's own rules, a commit that loosens relgate.yaml beside its release
            // would post a green `relgate` check on the head its pull request shows.
            None if args.pull_request.is_none() => {
                match crate::github::event_branch_outside_default(
                    path,
                    std::env::var("GITHUB_REF").ok().as_deref(),
                )? {
                    Some((branch, default)) => {
                        Some(default_branch_tip(settings, &branch, &default)?)
                    }
                    None => None,
                }
            }
            // --pull-request names a pull request the event does not carry (a dispatch, a
            // comment, another pull request's event): its base is not in the payload, and the
            // checked-out head's own rules are what its author wrote. The default branch's
            // rules judge it.
            _ => {
                let default = crate::github::event_default_branch(path).ok_or_else(|| {
                    anyhow::anyhow!(
                        "{}: the event payload names no repository.default_branch, whose rules \
                         must judge the pull request --pull-request names",
                        path.display()
                    )
                })?;
                Some(default_branch_tip(
                    settings,
                    "a pull request named by --pull-request",
                    &default,
                )?)
            }
        },
        _ => None,
    };
    let mut gate = match &event_base {
        Some(base) => Gate::open_base_rules(settings, base)?,
        None => Gate::open(settings)?,
    };
    let context = github
        .context(gate.config.merged.get("approvals"))
        .context("cannot read the pull request, so its approvals cannot be decided")?;
    // The files about to be decided must be the commit the result is published on.
    github.verify_checkout(&gate.root.dir, context.as_ref())?;
    let policy_context = match &context {
        Some(context) => Some(context.clone()),
        None => {
            // merge_group, push, workflow_dispatch…: no pull request, so nobody's approval
            // can be read. Leaving the context empty would skip the approval rules and post
            // success; instead the rules see that the context is unavailable and block every
            // release whose environment requires approvals (docs/approvals.md).
            let event = github.env.event_name.as_deref().unwrap_or("unknown");
            writeln!(
                std::io::stderr().lock(),
                "relgate: no pull request in this run (event {}); releases that require \
                 approvals are blocked",
                crate::output::text::field(event)
            )?;
            Some(crate::pull_request::unavailable(&format!(
                "this run (event {event}) has no pull request, so no approval can be read"
            )))
        }
    };
    gate.set_pull_request(policy_context)?;
    let mut report = gate::check_opened(&gate, settings)?;
    // Overrides a previous step could have set through $GITHUB_ENV are reported, never silent.
    report
        .notes
        .extend(crate::github::environment_notes(&|name| {
            std::env::var(name).ok()
        }));
    print_report(&report, args, color)?;
    publish(&github, &report, args, &gate, context, &settings.now).map(|failed| {
        if failed {
            ExitStatus::Error
        } else {
            report.decision.into()
        }
    })
}

/// Publishes `report` and prints what happened on stderr. `true` when a publication failed
/// (the run must then exit 2).
pub(crate) fn publish(
    github: &GitHub,
    report: &Report,
    args: &CheckArgs,
    gate: &Gate,
    context: Option<serde_json::Value>,
    now: &str,
) -> anyhow::Result<bool> {
    let outcome = github.publish(
        report,
        &PublishInputs {
            gate_root: gate.root.dir.clone(),
            json_report: json_report(args),
            now: now.to_owned(),
            context,
        },
    );
    let mut err = std::io::stderr().lock();
    // API errors quote GitHub's answers and paths: escaped for the log.
    let safe = |text: String| {
        crate::output::text::guard_log(
            &crate::output::text::multiline(&text),
            crate::output::text::LogSyntax::Plain,
            false,
        )
    };
    for done in &outcome.done {
        writeln!(err, "{}", safe(format!("relgate: published: {done}")))?;
    }
    for skipped in &outcome.skipped {
        writeln!(
            err,
            "{}",
            safe(format!("relgate: not published: {skipped}"))
        )?;
    }
    for failure in &outcome.failed {
        writeln!(err, "{}", safe(format!("relgate: error: {failure}")))?;
    }
    if !outcome.failed.is_empty() {
        writeln!(
            err,
            "relgate: exit 2: the decision ({}) was made and printed above, but could not be \
             published to GitHub; fix the problem above and re-run the job",
            report.decision.as_str()
        )?;
    }
    Ok(!outcome.failed.is_empty())
}

/// The commit at the tip of the default branch `default`, whose rules judge a run on another
/// branch (`branch`). The checkout must have fetched it; without it nothing can be decided.
fn default_branch_tip(
    settings: &crate::gate::CheckSettings,
    branch: &str,
    default: &str,
) -> anyhow::Result<String> {
    let repo = git2::Repository::discover(&settings.cwd)
        .with_context(|| format!("cannot open the repository of {}", settings.cwd.display()))?;
    for candidate in [
        format!("refs/remotes/origin/{default}"),
        format!("refs/heads/{default}"),
    ] {
        if let Ok(commit) = repo
            .find_reference(&candidate)
            .and_then(|r| r.peel_to_commit())
        {
            return Ok(commit.id().to_string());
        }
    }
    anyhow::bail!(
        "this run is on {branch}, not on the default branch {default}, so {default}'s rules must \
         judge it, but the checkout has no {default} (looked for refs/remotes/origin/{default} \
         and refs/heads/{default}); fetch it (actions/checkout with fetch-depth: 0), or run \
         relgate on the pull request instead"
    )
}
