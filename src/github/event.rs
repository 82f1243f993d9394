//! The event payload (`GITHUB_EVENT_PATH`): the pull request of a `pull_request*` event and
//! the base of a merge-queue event.

use std::path::Path;

use serde_json::Value;

use super::GitHubError;

/// The pull request a `pull_request` / `pull_request_review` / `pull_request_target` event
/// carries: its number and the head commit that was checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EventPull {
    pub(crate) number: u64,
    pub(crate) head_sha: Option<String>,
    /// `pull_request.base.sha`: whose rules judge the pull request when GitHub mode runs
    /// without `--changed` (the action's `changed-only: false`).
    pub(crate) base_sha: Option<String>,
    /// `pull_request.base.ref`: the branch the run was started for; the API must still report
    /// it (a pull request retargeted during the run is decided by the run of its `edited`
    /// event).
    pub(crate) base_ref: Option<String>,
    /// `sender.login` of a `synchronize` (a push to the pull request): who pushed the head.
    pub(crate) pusher: Option<String>,
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
pub(crate) fn event_merge_group_base(path: &Path) -> Result<Option<String>, GitHubError> {
    let event = read_event(path)?;
    Ok(event
        .pointer("/merge_group/base_sha")
        .and_then(Value::as_str)
        .map(str::to_owned))
}

/// For an event that runs on a ref (`push`, `workflow_dispatch`): the repository's default
/// branch when the run's ref (`ref` of the payload, else `GITHUB_REF`) is anything but that
/// branch (another branch, a tag), so the run must be judged by the default branch's rules, not
/// by the ref's own (which whoever pushed it wrote: a tag can point at any commit, a pull
/// request's head among them). `None` on the default branch; an error when the payload names no
/// default branch or no ref (GitHub's always do).
pub(crate) fn event_branch_outside_default(
    path: &Path,
    run_ref: Option<&str>,
) -> Result<Option<(String, String)>, GitHubError> {
    let event = read_event(path)?;
    // GitHub's payloads always name the default branch; without it, whose rules apply cannot
    // be told, and the branch's own must not be assumed.
    let Some(default) = event
        .pointer("/repository/default_branch")
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty())
    else {
        return Err(GitHubError::Setup(format!(
            "{}: the event payload names no repository.default_branch, so relgate cannot tell \
             whether this run is on the default branch, whose rules must decide",
            path.display()
        )));
    };
    let Some(git_ref) = event.get("ref").and_then(Value::as_str).or(run_ref) else {
        return Err(GitHubError::Setup(format!(
            "{}: the event payload names no ref (nor does GITHUB_REF), so relgate cannot tell \
             which branch this run is on",
            path.display()
        )));
    };
    if git_ref.strip_prefix("refs/heads/") == Some(default) {
        Ok(None)
    } else {
        Ok(Some((git_ref.to_owned(), default.to_owned())))
    }
}

/// `repository.default_branch` of the event payload (`None` when it names none or cannot be
/// read).
pub(crate) fn event_default_branch(path: &Path) -> Option<String> {
    read_event(path)
        .ok()?
        .pointer("/repository/default_branch")
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
}

/// Reads `pull_request.number` and `pull_request.head.sha` of the event payload.
pub(crate) fn event_pull(path: &Path) -> Result<Option<EventPull>, GitHubError> {
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
        base_ref: pr
            .pointer("/base/ref")
            .and_then(Value::as_str)
            .map(str::to_owned),
        pusher: (event.get("action").and_then(Value::as_str) == Some("synchronize"))
            .then(|| event.pointer("/sender/login").and_then(Value::as_str))
            .flatten()
            .map(str::to_owned),
    }))
}
