//! Pull-request facts for `input.context.pull_request` (shape in docs/github.md): the pull
//! request itself, each reviewer's latest decisive review, the approvers, and which of the
//! author and reviewers are active members of the teams the config's `approvals` names.
//! Also finds the merged pull request of a pushed commit, for `relgate record`.
//!
//! Each review keeps whether its author is a bot account (`bot`): the approval policy never
//! counts a bot's approval, and bots are not looked up in teams.
//!
//! Every list is sorted and every login lowercased, so the same pull request gives the same
//! input bytes. Membership that cannot be read is an error, never an empty list: an empty list
//! would read as "nobody from the team approved", a decision made on missing facts.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::client::{Client, Endpoint};
use super::{GitHubError, Repo};

/// One review as GitHub lists it (the fields the reduction reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReviewEvent {
    /// Lowercased login.
    pub(crate) user: String,
    /// APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED or PENDING.
    pub(crate) state: String,
    pub(crate) submitted_at: Option<String>,
    pub(crate) commit_id: Option<String>,
    /// The reviewer is a bot account (`user.type` is `Bot`: github-actions[bot], an app):
    /// its approval never counts (a workflow allowed to approve pull requests must not be
    /// able to approve its own).
    pub(crate) bot: bool,
    /// GitHub's `author_association` of the reviewer (OWNER, MEMBER, COLLABORATOR, CONTRIBUTOR,
    /// FIRST_TIME_CONTRIBUTOR, FIRST_TIMER, MANNEQUIN, NONE), upper case.
    pub(crate) association: Option<String>,
}

impl ReviewEvent {
    /// From one item of `GET /repos/{o}/{r}/pulls/{n}/reviews`; `None` for a review whose
    /// author account is gone (`user: null`).
    pub(crate) fn from_api(review: &Value) -> Option<Self> {
        let user = review.pointer("/user/login")?.as_str()?.to_lowercase();
        Some(Self {
            user,
            state: review
                .get("state")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_ascii_uppercase(),
            submitted_at: review
                .get("submitted_at")
                .and_then(Value::as_str)
                .map(str::to_owned),
            commit_id: review
                .get("commit_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            bot: review.pointer("/user/type").and_then(Value::as_str) == Some("Bot"),
            association: review
                .get("author_association")
                .and_then(Value::as_str)
                .map(str::to_ascii_uppercase),
        })
    }
}

/// A reviewer's standing after all their reviews.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct LatestReview {
    pub(crate) user: String,
    pub(crate) state: String,
    pub(crate) submitted_at: Option<String>,
    pub(crate) commit_id: Option<String>,
    /// The review was given on another commit than the head (older code).
    pub(crate) stale: bool,
    /// The reviewer is a bot account; the approval policy never counts its approval.
    pub(crate) bot: bool,
    /// The reviewer's `author_association`; the approval policy counts only OWNER, MEMBER
    /// and COLLABORATOR (anyone can review a public repository).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) association: Option<String>,
    /// The reviewer's permission on the repository (`admin`, `write`, `read` or `none`, from
    /// `GET /repos/{o}/{r}/collaborators/{user}/permission`), read for approvals only: the
    /// approval policy counts only `admin`, `maintain` and `write`. An organization member or
    /// a collaborator may have read access alone, and GitHub's own required reviews do not
    /// count such an approval either.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) permission: Option<String>,
    /// The reviewer authored, committed or pushed a commit of the pull request that no
    /// approval by someone else covers (see [`mark_own_commits`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) own_commits_unreviewed: bool,
}

/// One commit of the pull request, oldest first: its sha and the (lowercased) logins that
/// wrote it: author, committer (not `web-flow`, GitHub's own committer for web edits) and,
/// for the head, the last pusher when the event names one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommitBy {
    pub(crate) sha: String,
    pub(crate) people: BTreeSet<String>,
}

impl CommitBy {
    /// From one item of `GET /repos/{o}/{r}/pulls/{n}/commits`.
    pub(crate) fn from_api(commit: &Value) -> Option<Self> {
        let sha = commit.get("sha")?.as_str()?.to_owned();
        let people = ["/author/login", "/committer/login"]
            .iter()
            .filter_map(|p| commit.pointer(p).and_then(Value::as_str))
            .map(str::to_lowercase)
            .filter(|login| login != "web-flow")
            .collect();
        Some(Self { sha, people })
    }
}

/// Sets `own_commits_unreviewed` on each approval whose reviewer wrote or pushed a commit
/// after the last commit approved by someone else (another person, not the author, not a
/// bot). An approval covers every commit up to the one it was given on; an approval of a
/// commit that is no longer in the pull request (force-pushed away) covers none.
pub(crate) fn mark_own_commits(reviews: &mut [LatestReview], commits: &[CommitBy], author: &str) {
    let position = |sha: &Option<String>| {
        sha.as_deref()
            .and_then(|sha| commits.iter().position(|c| c.sha.eq_ignore_ascii_case(sha)))
    };
    let approvals: Vec<(String, Option<usize>)> = reviews
        .iter()
        .filter(|r| r.state == "APPROVED" && !r.bot && r.user != author)
        .map(|r| (r.user.clone(), position(&r.commit_id)))
        .collect();
    for review in reviews.iter_mut().filter(|r| r.state == "APPROVED") {
        let Some(last_own) = commits
            .iter()
            .rposition(|c| c.people.contains(&review.user))
        else {
            continue;
        };
        let covered = approvals
            .iter()
            .any(|(user, at)| *user != review.user && at.is_some_and(|at| at >= last_own));
        review.own_commits_unreviewed = !covered;
    }
}

/// Decisive review states: each replaces the reviewer's earlier standing.
fn decisive(state: &str) -> bool {
    matches!(state, "APPROVED" | "CHANGES_REQUESTED" | "DISMISSED")
}

/// One entry per reviewer, sorted by login: the latest decisive review (APPROVED,
/// CHANGES_REQUESTED, DISMISSED), else the latest COMMENTED one. A later COMMENTED does not
/// replace an earlier decision; a later CHANGES_REQUESTED or DISMISSED cancels an approval.
/// PENDING reviews are drafts nobody else can see and are left out.
///
/// `events` in GitHub's order (chronological); they are ordered by `submitted_at` first, the
/// API order breaking ties.
pub(crate) fn latest_reviews(events: &[ReviewEvent], head_sha: &str) -> Vec<LatestReview> {
    let mut ordered: Vec<&ReviewEvent> = events.iter().filter(|e| e.state != "PENDING").collect();
    // Stable: equal times keep the API order. With a time missing there is no order by time
    // to speak of (and "missing equals everything" is no total order: sorting more than 20
    // such reviews panicked), so GitHub's own order, which is chronological, decides.
    if ordered.iter().all(|e| e.submitted_at.is_some()) {
        ordered.sort_by(|a, b| a.submitted_at.cmp(&b.submitted_at));
    }
    let mut decided: BTreeMap<&str, &ReviewEvent> = BTreeMap::new();
    let mut commented: BTreeMap<&str, &ReviewEvent> = BTreeMap::new();
    for event in ordered {
        if decisive(&event.state) {
            decided.insert(&event.user, event);
        } else {
            commented.insert(&event.user, event);
        }
    }
    let users: BTreeSet<&str> = decided.keys().chain(commented.keys()).copied().collect();
    users
        .into_iter()
        .filter_map(|user| decided.get(user).or_else(|| commented.get(user)).copied())
        .map(|event| LatestReview {
            user: event.user.clone(),
            state: event.state.clone(),
            submitted_at: event.submitted_at.clone(),
            commit_id: event.commit_id.clone(),
            stale: event.commit_id.as_deref() != Some(head_sha),
            bot: event.bot,
            association: event.association.clone(),
            permission: None,
            own_commits_unreviewed: false,
        })
        .collect()
}

/// Reviewers whose standing is APPROVED (stale ones included), sorted.
pub(crate) fn approvers(reviews: &[LatestReview]) -> Vec<String> {
    reviews
        .iter()
        .filter(|r| r.state == "APPROVED")
        .map(|r| r.user.clone())
        .collect()
}

/// A team the config requires: `key` as written in relgate.yaml (`ml-reliability` or
/// `other-org/ml-reliability`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TeamRef {
    pub(crate) key: String,
    pub(crate) org: String,
    pub(crate) slug: String,
}

/// Every team named under `approvals.*.teams` (at any depth: tier lists today), sorted and
/// unique. A plain slug is a team of `owner`, the repository's organization.
pub(crate) fn required_teams(
    approvals: Option<&Value>,
    owner: &str,
) -> Result<Vec<TeamRef>, GitHubError> {
    fn strings(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(s) => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
            Value::Object(map) => map.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    let mut names = Vec::new();
    if let Some(Value::Object(environments)) = approvals {
        for rule in environments.values() {
            if let Some(teams) = rule.get("teams") {
                strings(teams, &mut names);
            }
        }
    }
    let mut teams = BTreeSet::new();
    for name in names {
        let parts: Vec<&str> = name.trim().split('/').collect();
        let (org, slug) = match parts.as_slice() {
            [slug] => (owner, *slug),
            [org, slug] => (*org, *slug),
            _ => ("", ""),
        };
        if org.is_empty() || slug.is_empty() {
            return Err(GitHubError::Setup(format!(
                "relgate.yaml approvals: team `{name}` is neither a team slug (`ml-reliability`, \
                 a team of {owner}) nor `org/slug`"
            )));
        }
        teams.insert(TeamRef {
            key: name.trim().to_owned(),
            org: org.to_owned(),
            slug: slug.to_lowercase(),
        });
    }
    Ok(teams.into_iter().collect())
}

/// Percent-encodes one path segment (logins, slugs and repository names are URL-safe already;
/// anything else must not change the path).
pub(crate) fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn text_at(value: &Value, pointer: &str) -> Option<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn unexpected(endpoint: &Endpoint, path: &str, what: &str) -> GitHubError {
    GitHubError::Api {
        action: endpoint.action(),
        request: format!("GET {path}"),
        message: format!("unexpected response: {what}"),
    }
}

/// What the run was started for, from the event's pull request: the API must still report it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Checked<'a> {
    /// The head commit the run checked out (`pull_request.head.sha`).
    pub(crate) head: Option<&'a str>,
    /// The base branch (`pull_request.base.ref`), whose rules judge the run (through
    /// `pull_request.base.sha`).
    pub(crate) base_ref: Option<&'a str>,
}

/// Reads pull request `number` and builds `input.context.pull_request`. `approvals` is the
/// config's `approvals` object (its teams are looked up).
///
/// `checked.head`: when the API reports another head (a push during the run, or "re-run jobs"
/// of an older run) the run stops: reviews of the API's head say nothing about the commit on
/// disk, and staleness and the check run are always about the checked commit.
/// `checked.base_ref`: when the API reports another base (the pull request was retargeted
/// during the run) the run stops too: the run was judged by the old base's rules, while the
/// check run would be named and read as a decision about the new base.
pub(crate) async fn fetch(
    client: &Client,
    repo: &Repo,
    number: u64,
    approvals: Option<&Value>,
    checked: Checked<'_>,
    pusher: Option<&str>,
) -> Result<Value, GitHubError> {
    let base = format!("/repos/{}/{}", segment(&repo.owner), segment(&repo.name));
    let endpoint = Endpoint::PullRequest { number };
    let path = format!("{base}/pulls/{number}");
    let pr = client.get(&path, &endpoint).await?.body;
    let author = text_at(&pr, "/user/login")
        .map(|l| l.to_lowercase())
        .ok_or_else(|| unexpected(&endpoint, &path, "the pull request has no user.login"))?;
    let head_sha = text_at(&pr, "/head/sha")
        .ok_or_else(|| unexpected(&endpoint, &path, "the pull request has no head.sha"))?;
    if let (Some(checked), Some(now)) = (checked.base_ref, text_at(&pr, "/base/ref").as_deref()) {
        if checked != now {
            return Err(GitHubError::Setup(format!(
                "pull request #{number}'s base is now {now}, but this run was started for a pull \
                 request into {checked} and judged by {checked}'s rules (it was retargeted during \
                 the run). Nothing was decided or published; the run of the `edited` event \
                 decides"
            )));
        }
    }
    if let Some(checked) = checked.head {
        if !checked.trim().eq_ignore_ascii_case(head_sha.trim()) {
            return Err(GitHubError::Setup(format!(
                "pull request #{number}'s head is now {head_sha}, but this run checked out \
                 {checked} (the event's head: a push came during the run, or this is a re-run \
                 of an older run). Reviews and staleness would be judged against a commit \
                 that is not the one on disk, so nothing was decided or published. The run \
                 of the newer push decides; to decide again, re-run the latest run of the \
                 pull request, not this one"
            )));
        }
    }

    let mut events = Vec::new();
    let reviews_endpoint = Endpoint::Reviews { number };
    client
        .get_pages(
            &format!("{base}/pulls/{number}/reviews?per_page=100"),
            &reviews_endpoint,
            &mut |page| {
                events.extend(page.iter().filter_map(ReviewEvent::from_api));
                true
            },
        )
        .await?;
    let mut reviews = latest_reviews(&events, &head_sha);
    let approvers = approvers(&reviews);

    // Who wrote the commits (GitHub lists at most 250; a longer pull request is refused, as
    // its first commits could not be attributed).
    let mut commits: Vec<CommitBy> = Vec::new();
    let commits_endpoint = Endpoint::PullCommits { number };
    let commits_path = format!("{base}/pulls/{number}/commits?per_page=100");
    client
        .get_pages(&commits_path, &commits_endpoint, &mut |page| {
            commits.extend(page.iter().filter_map(CommitBy::from_api));
            true
        })
        .await?;
    if commits.len() >= 250 {
        return Err(unexpected(
            &commits_endpoint,
            &commits_path,
            "the pull request has 250 commits or more, the most GitHub lists: who wrote the \
             rest cannot be read for the two-person rule; squash or split the pull request",
        ));
    }
    if let (Some(pusher), Some(head)) = (pusher, commits.last_mut()) {
        if head.sha.eq_ignore_ascii_case(&head_sha) {
            head.people.insert(pusher.to_lowercase());
        }
    }
    mark_own_commits(&mut reviews, &commits, &author);
    read_permissions(client, &base, &mut reviews, &author).await?;

    // Bots are not looked up: their approvals never count, and they belong to no team.
    let mut people: BTreeSet<String> = reviews
        .iter()
        .filter(|r| !r.bot)
        .map(|r| r.user.clone())
        .collect();
    people.insert(author.clone());
    let mut teams = serde_json::Map::new();
    for team in required_teams(approvals, &repo.owner)? {
        let members = team_members(client, &team, &people).await?;
        teams.insert(
            team.key.clone(),
            json!({"org": team.org, "members": members}),
        );
    }

    let mut labels: Vec<String> = pr
        .get("labels")
        .and_then(Value::as_array)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|l| l.get("name").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    labels.sort();
    labels.dedup();

    Ok(json!({
        "number": pr.get("number").and_then(Value::as_u64).unwrap_or(number),
        "author": author,
        "labels": labels,
        "title": pr.get("title").cloned().unwrap_or(Value::Null),
        "draft": pr.get("draft").and_then(Value::as_bool).unwrap_or(false),
        "state": pr.get("state").cloned().unwrap_or(Value::Null),
        "merged": pr.get("merged").and_then(Value::as_bool)
            .unwrap_or_else(|| pr.get("merged_at").is_some_and(|m| !m.is_null())),
        "merged_by": text_at(&pr, "/merged_by/login").map(|l| l.to_lowercase()),
        "base_ref": text_at(&pr, "/base/ref"),
        "base_sha": text_at(&pr, "/base/sha"),
        "head_ref": text_at(&pr, "/head/ref"),
        "head_sha": head_sha,
        "reviews": reviews,
        "approvers": approvers,
        "teams": teams,
    }))
}

/// Sets `permission` on every approval that could count (APPROVED, not the author's, not a
/// bot's): what the reviewer may do in the repository. One request per such reviewer; an
/// error (other than 404) stops the run, as missing facts never pass. A 404 means GitHub
/// knows no such user in the repository's context: `none`.
async fn read_permissions(
    client: &Client,
    base: &str,
    reviews: &mut [LatestReview],
    author: &str,
) -> Result<(), GitHubError> {
    for review in reviews
        .iter_mut()
        .filter(|r| r.state == "APPROVED" && !r.bot && r.user != author)
    {
        let endpoint = Endpoint::Permission {
            user: review.user.clone(),
        };
        let path = format!("{base}/collaborators/{}/permission", segment(&review.user));
        let reply = client.get_allow_404(&path, &endpoint).await?;
        let permission = if reply.status == 404 {
            "none".to_owned()
        } else {
            reply
                .body
                .get("permission")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
                .ok_or_else(|| unexpected(&endpoint, &path, "no `permission` string"))?
        };
        review.permission = Some(permission);
    }
    Ok(())
}

/// The sorted `people` who are active members of `team`. The team itself is read first: GitHub
/// answers 404 both for "not a member" and for "you cannot see this team", so only once the
/// team is visible does a member 404 mean "not a member".
async fn team_members(
    client: &Client,
    team: &TeamRef,
    people: &BTreeSet<String>,
) -> Result<Vec<String>, GitHubError> {
    let team_path = format!("/orgs/{}/teams/{}", segment(&team.org), segment(&team.slug));
    client
        .get(
            &team_path,
            &Endpoint::Team {
                org: team.org.clone(),
                slug: team.slug.clone(),
            },
        )
        .await?;
    let mut members = Vec::new();
    for user in people {
        let endpoint = Endpoint::TeamMembership {
            org: team.org.clone(),
            slug: team.slug.clone(),
            user: user.clone(),
        };
        let reply = client
            .get_allow_404(
                &format!("{team_path}/memberships/{}", segment(user)),
                &endpoint,
            )
            .await?;
        // `pending` is an invitation not yet accepted: not a member.
        if reply.status != 404 && reply.body.get("state").and_then(Value::as_str) == Some("active")
        {
            members.push(user.clone());
        }
    }
    Ok(members)
}

/// The pull request merged as `sha` (a push to the default branch): among the pull requests
/// GitHub associates with the commit, the merged one whose merge commit is `sha`, else the
/// first merged one. `None` when the commit came without a pull request (a direct push).
pub(crate) async fn merged_pull_for_commit(
    client: &Client,
    repo: &Repo,
    sha: &str,
) -> Result<Option<u64>, GitHubError> {
    let endpoint = Endpoint::CommitPulls {
        sha: sha.to_owned(),
    };
    let mut pulls: Vec<Value> = Vec::new();
    client
        .get_pages(
            &format!(
                "/repos/{}/{}/commits/{}/pulls?per_page=100",
                segment(&repo.owner),
                segment(&repo.name),
                segment(sha)
            ),
            &endpoint,
            &mut |page| {
                pulls.extend(page.iter().cloned());
                true
            },
        )
        .await?;
    let merged = |p: &&Value| p.get("merged_at").is_some_and(|m| !m.is_null());
    let exact = pulls
        .iter()
        .filter(merged)
        .find(|p| p.get("merge_commit_sha").and_then(Value::as_str) == Some(sha));
    Ok(exact
        .or_else(|| pulls.iter().find(merged))
        .and_then(|p| p.get("number").and_then(Value::as_u64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";
    const OLD: &str = "ecdd80bb57125d7ba9641ffaa4d7d2c19d3f3091";

    fn review(user: &str, state: &str, at: &str, commit: &str) -> ReviewEvent {
        ReviewEvent {
            user: user.to_owned(),
            state: state.to_owned(),
            submitted_at: Some(at.to_owned()),
            commit_id: Some(commit.to_owned()),
            bot: false,
            association: Some("MEMBER".to_owned()),
        }
    }

    #[test]
    fn reviews_without_a_time_keep_githubs_order_without_panicking() {
        // More than 20 reviews, some submitted without a time: "missing equals everything" is
        // no total order, and sorting by it panicked.
        let mut events: Vec<ReviewEvent> = (0..30)
            .map(|i| {
                let mut r = review(
                    &format!("r{}", i % 3),
                    if i % 2 == 0 {
                        "APPROVED"
                    } else {
                        "CHANGES_REQUESTED"
                    },
                    &format!("2026-11-20T10:{:02}:00Z", 59 - i),
                    HEAD,
                );
                if i % 4 == 1 {
                    r.submitted_at = None;
                }
                r
            })
            .collect();
        let latest = latest_reviews(&events, HEAD);
        // GitHub's order decides: each reviewer's last listed review stands.
        let got: Vec<(&str, &str)> = latest
            .iter()
            .map(|r| (r.user.as_str(), r.state.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("r0", "CHANGES_REQUESTED"),
                ("r1", "APPROVED"),
                ("r2", "CHANGES_REQUESTED")
            ]
        );
        // With every time known, time decides (the list runs backwards in time here).
        for e in &mut events {
            if e.submitted_at.is_none() {
                e.submitted_at = Some("2026-11-20T09:00:00Z".to_owned());
            }
        }
        assert!(!latest_reviews(&events, HEAD).is_empty());
    }

    #[test]
    fn the_latest_decisive_review_wins() {
        let events = [
            // alice approves, then requests changes, then comments: changes requested stands.
            review("alice", "APPROVED", "2026-11-20T10:00:00Z", OLD),
            review("alice", "CHANGES_REQUESTED", "2026-11-20T11:00:00Z", HEAD),
            review("alice", "COMMENTED", "2026-11-20T12:00:00Z", HEAD),
            // bob approves, then comments: the approval stands (stale: older commit).
            review("bob", "APPROVED", "2026-11-20T10:30:00Z", OLD),
            review("bob", "COMMENTED", "2026-11-21T09:00:00Z", HEAD),
            // carol only comments.
            review("carol", "COMMENTED", "2026-11-20T10:00:00Z", HEAD),
            // dave's approval was dismissed, then he approved again on the head.
            review("dave", "DISMISSED", "2026-11-20T09:00:00Z", OLD),
            review("dave", "APPROVED", "2026-11-22T09:00:00Z", HEAD),
            // erin's approval was dismissed: cancelled.
            review("erin", "APPROVED", "2026-11-19T09:00:00Z", OLD),
            review("erin", "DISMISSED", "2026-11-20T09:00:00Z", OLD),
            // frank has only a pending draft: not a review yet.
            ReviewEvent {
                user: "frank".into(),
                state: "PENDING".into(),
                submitted_at: None,
                commit_id: Some(HEAD.into()),
                bot: false,
                association: None,
            },
        ];
        let latest = latest_reviews(&events, HEAD);
        let got: Vec<(&str, &str, bool)> = latest
            .iter()
            .map(|r| (r.user.as_str(), r.state.as_str(), r.stale))
            .collect();
        assert_eq!(
            got,
            [
                ("alice", "CHANGES_REQUESTED", false),
                ("bob", "APPROVED", true),
                ("carol", "COMMENTED", false),
                ("dave", "APPROVED", false),
                ("erin", "DISMISSED", true),
            ]
        );
        assert_eq!(approvers(&latest), ["bob", "dave"]);
    }

    #[test]
    fn review_order_comes_from_submission_times() {
        // Listed out of order: the later approval still wins over the earlier request.
        let events = [
            review("alice", "APPROVED", "2026-11-20T12:00:00Z", HEAD),
            review("alice", "CHANGES_REQUESTED", "2026-11-20T11:00:00Z", HEAD),
        ];
        assert_eq!(latest_reviews(&events, HEAD)[0].state, "APPROVED");
    }

    #[test]
    fn reviews_parse_from_the_api_and_skip_ghosts() {
        let api = serde_json::json!([
            {"user": {"login": "OctoCat", "type": "User"}, "state": "approved", "submitted_at": "2019-11-17T17:43:43Z", "commit_id": OLD},
            {"user": null, "state": "APPROVED"},
            {"user": {"login": "github-actions[bot]", "type": "Bot"}, "state": "APPROVED", "submitted_at": "2019-11-18T10:00:00Z", "commit_id": OLD}
        ]);
        let events: Vec<ReviewEvent> = api
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(ReviewEvent::from_api)
            .collect();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].user, "octocat");
        assert_eq!(events[0].state, "APPROVED");
        assert!(!events[0].bot);
        assert_eq!(events[1].user, "github-actions[bot]");
        assert!(events[1].bot, "user.type Bot is kept");
        let latest = latest_reviews(&events, HEAD);
        assert_eq!(
            latest
                .iter()
                .map(|r| (r.user.as_str(), r.bot))
                .collect::<Vec<_>>(),
            [("github-actions[bot]", true), ("octocat", false)]
        );
    }

    #[test]
    fn teams_come_from_every_approval_rule() {
        let approvals = serde_json::json!({
            "production": {"min": 2, "teams": {"0": ["ml-reliability"], "1": ["ml-reliability", "security/appsec"]}},
            "staging": {"teams": {"2": ["ML-Platform"]}}
        });
        let teams = required_teams(Some(&approvals), "acme").expect("valid");
        let got: Vec<(&str, &str, &str)> = teams
            .iter()
            .map(|t| (t.key.as_str(), t.org.as_str(), t.slug.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("ML-Platform", "acme", "ml-platform"),
                ("ml-reliability", "acme", "ml-reliability"),
                ("security/appsec", "security", "appsec"),
            ]
        );
        assert!(required_teams(None, "acme").expect("none").is_empty());
        let bad = serde_json::json!({"production": {"teams": {"0": ["a/b/c"]}}});
        assert!(required_teams(Some(&bad), "acme")
            .expect_err("bad")
            .to_string()
            .contains("a/b/c"));
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(segment("ml-reliability"), "ml-reliability");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
