//! A local GitHub REST API for GitHub-mode tests: a `wiremock` server on 127.0.0.1 serving the
//! real response bodies of `tests/fixtures/github` (see its README), under an optional path
//! prefix (GitHub Enterprise serves the API at `/api/v3`), plus what a runner sets up for a
//! step: the event payload, `$GITHUB_STEP_SUMMARY`, `$GITHUB_OUTPUT`. [`Api::requests`] returns
//! every request the server received, in order, for the tests to assert.
#![allow(dead_code)] // each test crate uses a different part

use std::path::{Path, PathBuf};

use serde_json::Value;
use wiremock::matchers::{method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// The repository of the fixtures (`GITHUB_REPOSITORY`).
pub const REPOSITORY: &str = "octocat/Hello-World";
/// The pull request of `pulls-get.json`.
pub const NUMBER: u64 = 1347;
/// `head.sha` (and `base.sha`) of `pulls-get.json`. The tests serve the pull request with
/// the head commit of their own git repository instead (relgate checks that the checked-out
/// commit is the pull request's head); this stays the base.
pub const HEAD_SHA: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";
/// `merge_commit_sha` of `pulls-get.json`.
pub const MERGE_SHA: &str = "e5bd3914e2e596debea16f433f57875b5b90bcd6";
/// The id GitHub gives the check run in `checks-create.json`.
pub const CHECK_RUN_ID: u64 = 4;
/// The token the tests pass.
pub const TOKEN: &str = "ghs_test_token_0123456789";
/// `GITHUB_WORKFLOW` of the tests.
pub const WORKFLOW: &str = "release gate";

pub fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/github")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One received request, flattened for assertions.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query, e.g. `/repos/o/r/issues/1/comments?per_page=100&page=2`.
    pub target: String,
    pub path: String,
    pub body: Value,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    fn from(request: &Request) -> Self {
        let mut target = request.url.path().to_owned();
        if let Some(query) = request.url.query() {
            target.push('?');
            target.push_str(query);
        }
        Self {
            method: request.method.to_string(),
            target,
            path: request.url.path().to_owned(),
            body: if request.body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&request.body).unwrap_or(Value::Null)
            },
            headers: request
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
        }
    }

    /// `METHOD target`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.target)
    }

    /// Every value of header `name`.
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// The local API and the runner files of one test.
pub struct Api {
    pub server: MockServer,
    /// `""` for github.com, `/api/v3` for GitHub Enterprise.
    pub prefix: String,
    pub dir: tempfile::TempDir,
    /// The pull request's head commit: a commit of the test's git repository, served as
    /// `head.sha` of the pull request and of the event.
    pub head: String,
}

impl Api {
    /// The API of a pull request whose head is `head`.
    pub async fn start(prefix: &str, head: &str) -> Self {
        Self {
            server: MockServer::start().await,
            prefix: prefix.to_owned(),
            dir: tempfile::tempdir().expect("temp dir"),
            head: head.to_owned(),
        }
    }

    /// `GITHUB_API_URL`.
    pub fn url(&self) -> String {
        format!("{}{}", self.server.uri(), self.prefix)
    }

    /// A path under the API root.
    pub fn at(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    pub fn repo_path(&self, rest: &str) -> String {
        self.at(&format!("/repos/{REPOSITORY}{rest}"))
    }

    pub fn summary_file(&self) -> PathBuf {
        self.dir.path().join("step_summary.md")
    }

    pub fn output_file(&self) -> PathBuf {
        self.dir.path().join("github_output")
    }

    /// The real `pull_request.opened` payload, pointed at the pull request of the API fixtures:
    /// `number` and `pull_request.number` 2 -> 1347, `pull_request.head.sha` -> [`Api::head`].
    pub fn pull_request_event(&self) -> PathBuf {
        let mut event = fixture("webhook-pull_request.opened.payload.json");
        event["number"] = NUMBER.into();
        event["pull_request"]["number"] = NUMBER.into();
        event["pull_request"]["head"]["sha"] = self.head.clone().into();
        // Without --changed, GitHub mode reads relgate.yaml and policies at the merge base of
        // `base.sha` and HEAD, so the base must be in the test's repository: its head (whose
        // own rules then decide) unless a test sets the real base.
        event["pull_request"]["base"]["sha"] = self.head.clone().into();
        let path = self.dir.path().join("event.json");
        std::fs::write(&path, serde_json::to_vec(&event).expect("json")).expect("write event");
        path
    }

    /// The environment of a runner step for the `pull_request` event (GITHUB_SHA is the merge
    /// commit GitHub creates for the event, as on a real runner).
    pub fn runner_env(&self) -> Vec<(String, String)> {
        let event = self.pull_request_event();
        vec![
            ("GITHUB_ACTIONS".into(), "true".into()),
            ("GITHUB_REPOSITORY".into(), REPOSITORY.into()),
            ("GITHUB_API_URL".into(), self.url()),
            ("GITHUB_SERVER_URL".into(), "https://github.com".into()),
            ("GITHUB_EVENT_NAME".into(), "pull_request".into()),
            ("GITHUB_EVENT_PATH".into(), event.display().to_string()),
            ("GITHUB_SHA".into(), MERGE_SHA.into()),
            ("GITHUB_RUN_ID".into(), "1658821493".into()),
            ("GITHUB_WORKFLOW".into(), WORKFLOW.into()),
            (
                "GITHUB_STEP_SUMMARY".into(),
                self.summary_file().display().to_string(),
            ),
            (
                "GITHUB_OUTPUT".into(),
                self.output_file().display().to_string(),
            ),
            ("GITHUB_TOKEN".into(), TOKEN.into()),
            // Fast retries: the tests count tries, not seconds.
            ("RELGATE_GITHUB_RETRY_BASE_MS".into(), "5".into()),
        ]
    }

    pub async fn requests(&self) -> Vec<Seen> {
        self.server
            .received_requests()
            .await
            .expect("request recording is on")
            .iter()
            .map(Seen::from)
            .collect()
    }

    pub async fn reset(&self) {
        self.server.reset().await;
    }

    // --- mounts -------------------------------------------------------------------------

    pub async fn mount_json(&self, verb: &str, at: &str, status: u16, body: Value) {
        Mock::given(method(verb))
            .and(path(at))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&self.server)
            .await;
    }

    /// GET pulls/1347 answers `pulls-get.json` with `head.sha` = [`Api::head`], and its
    /// commits one commit, the head, by the author octocat.
    pub async fn pull_request(&self) {
        let mut pull = fixture("pulls-get.json");
        pull["head"]["sha"] = self.head.clone().into();
        self.mount_json(
            "GET",
            &self.repo_path(&format!("/pulls/{NUMBER}")),
            200,
            pull,
        )
        .await;
        self.commits(
            serde_json::json!([commit_by(&self.head, "octocat", "octocat")]),
            5,
        )
        .await;
    }

    /// GET the commits (one page, `per_page=100`); `priority` 1 overrides the default list.
    pub async fn commits(&self, commits: Value, priority: u8) {
        Mock::given(method("GET"))
            .and(path(self.repo_path(&format!("/pulls/{NUMBER}/commits"))))
            .and(query_param("per_page", "100"))
            .respond_with(ResponseTemplate::new(200).set_body_json(commits))
            .with_priority(priority)
            .mount(&self.server)
            .await;
    }

    /// GET the reviews (one page, `per_page=100`).
    pub async fn reviews(&self, reviews: Value) {
        Mock::given(method("GET"))
            .and(path(self.repo_path(&format!("/pulls/{NUMBER}/reviews"))))
            .and(query_param("per_page", "100"))
            .respond_with(ResponseTemplate::new(200).set_body_json(reviews))
            .mount(&self.server)
            .await;
    }

    /// GET collaborators/{login}/permission answers `permission` for `login`
    /// (`collaborators-get-permission.json` with `permission`, `role_name` and `user.login`
    /// changed); `login` `None` answers for every login, at a lower priority than a named one.
    pub async fn permission(&self, login: Option<&str>, permission: &str) {
        let mut body = fixture("collaborators-get-permission.json");
        body["permission"] = permission.into();
        body["role_name"] = permission.into();
        if let Some(login) = login {
            body["user"]["login"] = login.into();
        }
        let pattern = match login {
            Some(login) => format!(
                "^{}/repos/{REPOSITORY}/collaborators/{login}/permission$",
                self.prefix
            ),
            None => format!(
                "^{}/repos/{REPOSITORY}/collaborators/[^/]+/permission$",
                self.prefix
            ),
        };
        Mock::given(method("GET"))
            .and(wiremock::matchers::path_regex(pattern))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .with_priority(if login.is_some() { 1 } else { 5 })
            .mount(&self.server)
            .await;
    }

    /// The comments of the pull request in `pages`, linked like GitHub links them: page 1 at
    /// the URL relgate asks for, later pages at `/repositories/{id}/issues/{n}/comments`
    /// (GitHub's `Link` URLs name the repository by id), each with `rel="next"` and
    /// `rel="last"` until the last.
    pub async fn comment_pages(&self, pages: Vec<Vec<Value>>) {
        let count = pages.len();
        let linked = format!("/repositories/1296269/issues/{NUMBER}/comments");
        let page_url = |n: usize| format!("{}{}?per_page=100&page={n}", self.url(), linked);
        for (index, items) in pages.into_iter().enumerate() {
            let n = index + 1;
            let mut links = Vec::new();
            if n < count {
                links.push(format!("<{}>; rel=\"next\"", page_url(n + 1)));
                links.push(format!("<{}>; rel=\"last\"", page_url(count)));
            }
            if n > 1 {
                links.push(format!("<{}>; rel=\"prev\"", page_url(n - 1)));
                links.push(format!("<{}>; rel=\"first\"", page_url(1)));
            }
            let mut response = ResponseTemplate::new(200).set_body_json(Value::Array(items));
            if !links.is_empty() {
                response = response.insert_header("link", links.join(", "));
            }
            let mock = if n == 1 {
                Mock::given(method("GET"))
                    .and(path(self.repo_path(&format!("/issues/{NUMBER}/comments"))))
                    .and(query_param("per_page", "100"))
                    .and(query_param_is_missing("page"))
            } else {
                Mock::given(method("GET"))
                    .and(path(self.at(&linked)))
                    .and(query_param("per_page", "100"))
                    .and(query_param("page", n.to_string()))
            };
            mock.respond_with(response).mount(&self.server).await;
        }
    }

    /// POST a new comment (201 with the fixture's first comment, as GitHub returns the
    /// created comment) and PATCH any comment (200).
    pub async fn comment_writes(&self) {
        let created = fixture("issues-list-comments.json")[0].clone();
        self.mount_json(
            "POST",
            &self.repo_path(&format!("/issues/{NUMBER}/comments")),
            201,
            created.clone(),
        )
        .await;
        Mock::given(method("PATCH"))
            .and(wiremock::matchers::path_regex(format!(
                "^{}/repos/{REPOSITORY}/issues/comments/[0-9]+$",
                self.prefix
            )))
            .respond_with(ResponseTemplate::new(200).set_body_json(created))
            .mount(&self.server)
            .await;
    }

    /// POST check-runs (201 `checks-create.json`) and PATCH check-runs/4 (200).
    pub async fn check_runs(&self) {
        self.mount_json(
            "POST",
            &self.repo_path("/check-runs"),
            201,
            fixture("checks-create.json"),
        )
        .await;
        self.mount_json(
            "PATCH",
            &self.repo_path(&format!("/check-runs/{CHECK_RUN_ID}")),
            200,
            fixture("checks-create.json"),
        )
        .await;
    }

    /// Everything a passing first run needs: the pull request, `reviews` (every reviewer with
    /// write access), one page of comments without a report, and the writes.
    pub async fn happy(&self, reviews: Value) {
        self.pull_request().await;
        self.reviews(reviews).await;
        self.permission(None, "write").await;
        self.comment_pages(vec![fixture("issues-list-comments.json")
            .as_array()
            .cloned()
            .unwrap_or_default()])
            .await;
        self.comment_writes().await;
        self.check_runs().await;
    }
}

/// A review of the fixture, given by `login` with `state` on `commit` at `at` (fields changed
/// from `pulls-list-reviews.json`: id, user.login, state, commit_id, submitted_at).
pub fn review(id: u64, login: &str, state: &str, commit: &str, at: &str) -> Value {
    let mut review = fixture("pulls-list-reviews.json")[0].clone();
    review["id"] = id.into();
    review["user"]["login"] = login.into();
    review["state"] = state.into();
    review["commit_id"] = commit.into();
    review["submitted_at"] = at.into();
    review
}

/// A commit of `pulls-list-commits.json` with another sha, author and committer login.
pub fn commit_by(sha: &str, author: &str, committer: &str) -> Value {
    let mut commit = fixture("pulls-list-commits.json")[0].clone();
    commit["sha"] = sha.into();
    commit["author"]["login"] = author.into();
    commit["committer"]["login"] = committer.into();
    commit
}

/// A comment of the fixture with another id and body (by the fixture's user octocat, a
/// `User`).
pub fn comment(id: u64, body: &str) -> Value {
    let mut comment = fixture("issues-list-comments.json")[0].clone();
    comment["id"] = id.into();
    comment["body"] = body.into();
    comment
}

/// [`comment`] written by `login` of account `kind` (`User`, `Bot`); changed from the fixture:
/// user.login, user.id, user.type, user.html_url.
pub fn comment_by(id: u64, body: &str, login: &str, kind: &str) -> Value {
    let mut comment = comment(id, body);
    comment["user"]["login"] = login.into();
    comment["user"]["type"] = kind.into();
    comment["user"]["id"] = (id + 90_000).into();
    comment["user"]["html_url"] = format!("https://github.com/{login}").into();
    comment
}

/// [`comment`] by the account a workflow's GITHUB_TOKEN writes as (github-actions[bot], as the
/// API lists it: user id 41898282, type Bot).
pub fn bot_comment(id: u64, body: &str) -> Value {
    let mut comment = comment(id, body);
    comment["user"]["login"] = "github-actions[bot]".into();
    comment["user"]["id"] = 41_898_282.into();
    comment["user"]["node_id"] = "MDM6Qm90NDE4OTgyODI=".into();
    comment["user"]["type"] = "Bot".into();
    comment["user"]["html_url"] = "https://github.com/apps/github-actions".into();
    comment
}
