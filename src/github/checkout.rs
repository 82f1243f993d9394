//! The checked-out commit must be the one being decided: the pull request's head (or a merge of
//! it) or `GITHUB_SHA`.

use std::path::Path;

use super::GitHubError;

/// What the checked-out commit must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subject {
    /// The head of pull request `number` (`event`: GITHUB_EVENT_NAME).
    PullRequest { number: u64, event: Option<String> },
    /// `GITHUB_SHA`, the commit of a run without a pull request.
    GithubSha,
}

/// Checks that HEAD of the git repository holding `gate_root` is `expected`, or a merge
/// commit one of whose parents is `expected`. Only the commit objects are read (a shallow
/// clone of depth 1 has the merge commit but not its parents, and that is enough).
pub(crate) fn verify_checkout(
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
