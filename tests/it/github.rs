//! GitHub mode end to end: the real `relgate` binary in a temporary git repository, with the
//! environment a runner sets for a `pull_request` (or `push`) job, against a local GitHub API
//! (wiremock on 127.0.0.1) that serves the real response bodies of `tests/fixtures/github`.
//! Every request is asserted: method, path and query, body, and the headers.

use crate::support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use support::github_api::{
    bot_comment, comment, comment_by, commit_by, fixture, review, Api, Seen, CHECK_RUN_ID,
    HEAD_SHA, NUMBER, REPOSITORY, TOKEN,
};
use support::releases::dev_release;

const OLD_SHA: &str = "ecdd80bb57125d7ba9641ffaa4d7d2c19d3f3091";

/// The test repository's relgate.yaml: production releases need team `ml-reliability`.
const CONFIG: &str = "apiVersion: relgate.dev/v1\nkind: GateConfig\napprovals:\n  production:\n    teams: {\"0\": [ml-reliability], \"1\": [ml-reliability]}\n";

/// A git repository holding a gate root at `root` ("" or a subdirectory) with one release,
/// committed: `head` is the checked-out commit, which the tests serve as the pull request's
/// head (relgate refuses to publish about another commit than the one checked out).
struct Repo {
    dir: tempfile::TempDir,
    root: String,
    head: String,
}

impl Repo {
    fn new(root: &str) -> Self {
        Self::with_files(root, &[])
    }

    /// [`Repo::new`] with more files under the gate root, in the same commit.
    fn with_files(root: &str, files: &[(&str, &str)]) -> Self {
        let mut repo = Self {
            dir: tempfile::tempdir().expect("temp dir"),
            root: root.to_owned(),
            head: String::new(),
        };
        git2::Repository::init(repo.dir.path()).expect("git init");
        repo.file("relgate.yaml", CONFIG);
        repo.file("releases/greet.yaml", &dev_release("greet"));
        for (rel, text) in files {
            repo.file(rel, text);
        }
        repo.head = repo.commit("base");
        repo
    }

    /// Commits the whole work tree on top of HEAD (`extra_parents` make a merge commit);
    /// returns the new commit, which HEAD's branch now points at.
    fn commit_with(&self, message: &str, extra_parents: &[&str]) -> String {
        let git = git2::Repository::open(self.dir.path()).expect("open");
        let mut index = git.index().expect("index");
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .expect("add");
        index.write().expect("write index");
        let tree = git
            .find_tree(index.write_tree().expect("tree"))
            .expect("find tree");
        let sig = git2::Signature::new(
            "Dana",
            "dana@example.com",
            &git2::Time::new(1_764_000_000, 0),
        )
        .expect("signature");
        let mut parents: Vec<git2::Commit> = git
            .head()
            .ok()
            .and_then(|h| h.peel_to_commit().ok())
            .into_iter()
            .collect();
        for extra in extra_parents {
            let id = git2::Oid::from_str(extra).expect("sha");
            parents.push(git.find_commit(id).expect("parent"));
        }
        let parents: Vec<&git2::Commit> = parents.iter().collect();
        git.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
            .expect("commit")
            .to_string()
    }

    fn commit(&self, message: &str) -> String {
        self.commit_with(message, &[])
    }

    /// Checks out `sha` (detached HEAD), work tree included.
    fn checkout(&self, sha: &str) {
        let git = git2::Repository::open(self.dir.path()).expect("open");
        let id = git2::Oid::from_str(sha).expect("sha");
        let commit = git.find_commit(id).expect("commit");
        git.checkout_tree(
            commit.as_object(),
            Some(git2::build::CheckoutBuilder::new().force()),
        )
        .expect("checkout");
        git.set_head_detached(id).expect("detach");
    }

    /// Writes a file under the gate root.
    fn file(&self, rel: &str, text: &str) -> &Self {
        let path = self.gate_root().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
        self
    }

    fn gate_root(&self) -> std::path::PathBuf {
        self.dir.path().join(&self.root)
    }

    /// `relgate ARGS` in the gate root with only `env` (and PATH) in its environment: a
    /// test run inside GitHub Actions must not pick up the real runner's variables.
    fn run(&self, args: &[&str], env: &[(String, String)]) -> Output {
        Command::new(crate::support::relgate_bin())
            .args(args)
            .current_dir(self.gate_root())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            // No RELGATE_NOW: GitHub mode ignores it (the clock is the runner's).
            .env("NO_COLOR", "1")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("run relgate")
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// The request lines (`METHOD path?query`) in order.
fn lines(requests: &[Seen]) -> Vec<String> {
    requests.iter().map(Seen::line).collect()
}

/// Every request carries the token, GitHub's media type and API version, and a user agent.
#[track_caller]
fn assert_headers(requests: &[Seen]) {
    assert!(!requests.is_empty());
    for request in requests {
        let line = request.line();
        assert_eq!(
            request.header("authorization"),
            [format!("Bearer {TOKEN}").as_str()],
            "{line}"
        );
        assert_eq!(
            request.header("accept"),
            ["application/vnd.github+json"],
            "{line}"
        );
        assert_eq!(
            request.header("x-github-api-version"),
            ["2022-11-28"],
            "{line}"
        );
        assert_eq!(request.header("user-agent"), ["octocrab"], "{line}");
        if request.method != "GET" {
            assert_eq!(
                request.header("content-type"),
                ["application/json"],
                "{line}"
            );
        }
    }
}

/// The test repo's config requires team `ml-reliability` (of the repository owner, `octocat`):
/// the team is visible and `members` are active members (octocat is one in the fixture).
async fn teams(api: &Api, members: &[&str]) {
    api.mount_json(
        "GET",
        &api.at("/orgs/octocat/teams/ml-reliability"),
        200,
        fixture("teams-get-by-name.json"),
    )
    .await;
    for user in members {
        api.mount_json(
            "GET",
            &api.at(&format!(
                "/orgs/octocat/teams/ml-reliability/memberships/{user}"
            )),
            200,
            fixture("team-membership.json"),
        )
        .await;
    }
}

/// The reads of the pull-request facts, in order: the pull request, its reviews and commits,
/// the permission of each reviewer in `approvers` (approvals that could count), then the team
/// and the membership of each of `team_users`.
fn pr_requests(api: &Api, approvers: &[&str], team_users: &[&str]) -> Vec<String> {
    let mut out = vec![
        format!("GET {}", api.repo_path(&format!("/pulls/{NUMBER}"))),
        format!(
            "GET {}?per_page=100",
            api.repo_path(&format!("/pulls/{NUMBER}/reviews"))
        ),
        format!(
            "GET {}?per_page=100",
            api.repo_path(&format!("/pulls/{NUMBER}/commits"))
        ),
    ];
    for user in approvers {
        out.push(format!(
            "GET {}",
            api.repo_path(&format!("/collaborators/{user}/permission"))
        ));
    }
    out.push(format!(
        "GET {}",
        api.at("/orgs/octocat/teams/ml-reliability")
    ));
    for user in team_users {
        out.push(format!(
            "GET {}",
            api.at(&format!(
                "/orgs/octocat/teams/ml-reliability/memberships/{user}"
            ))
        ));
    }
    out
}

fn find<'a>(requests: &'a [Seen], verb: &str, target: &str) -> Vec<&'a Seen> {
    requests
        .iter()
        .filter(|r| r.method == verb && r.path == target)
        .collect()
}

#[tokio::test]
async fn first_run_posts_the_comment_and_publishes_everywhere() {
    let started = chrono::Utc::now();
    let repo = Repo::new("");
    let api = Api::start("", &repo.head).await;
    api.happy(fixture("pulls-list-reviews.json")).await;
    teams(&api, &["octocat"]).await;
    let env = api.runner_env();
    let out = repo.run(
        &[
            "check",
            "--github",
            "--format",
            "json",
            "--output",
            "report.json",
            "--format",
            "text",
        ],
        &env,
    );
    assert_exit(&out, 0);
    // The decision, on stdout.
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("PASS: 1 manifest, 1 passed, 0 failed"),
        "{stdout}"
    );

    let requests = api.requests().await;
    let mut expected = pr_requests(&api, &[], &["octocat"]);
    expected.extend([
        format!(
            "GET {}?per_page=100",
            api.repo_path(&format!("/issues/{NUMBER}/comments"))
        ),
        format!(
            "POST {}",
            api.repo_path(&format!("/issues/{NUMBER}/comments"))
        ),
        format!("POST {}", api.repo_path("/check-runs")),
    ]);
    assert_eq!(lines(&requests), expected);
    assert_headers(&requests);

    // The comment: the workflow's marker on the first line, then the markdown report.
    let body = requests[6].body["body"].as_str().expect("comment body");
    assert_eq!(
        body.lines().next(),
        Some(r#"<!-- relgate-report workflow="release gate" -->"#)
    );
    assert!(
        body.contains("### ✅ relgate: the release passes"),
        "{body}"
    );
    assert!(body.contains("https://github.com/octocat/Hello-World/actions/runs/1658821493"));
    assert_eq!(
        requests[6].body.as_object().map(|o| o.len()),
        Some(1),
        "only `body`"
    );

    // The check run: on the head the event checked out, completed, no findings.
    let check = &requests[7].body;
    assert_eq!(check["name"], "relgate");
    assert_eq!(check["head_sha"], repo.head.as_str());
    assert_eq!(check["status"], "completed");
    assert_eq!(check["conclusion"], "success");
    // The runner's clock (RELGATE_NOW is ignored in GitHub mode): a UTC time of this run.
    let completed = check["completed_at"].as_str().expect("completed_at");
    let completed = chrono::DateTime::parse_from_rfc3339(completed).expect("RFC 3339");
    assert!(
        completed.timestamp() >= started.timestamp() - 1,
        "{completed}"
    );
    assert_eq!(
        check["details_url"],
        "https://github.com/octocat/Hello-World/actions/runs/1658821493"
    );
    assert_eq!(
        check["output"]["title"],
        "pass: 1 release checked against master"
    );
    assert_eq!(check["output"]["annotations"], json!([]));
    assert!(check["output"]["summary"]
        .as_str()
        .is_some_and(|s| s.starts_with("### ✅ relgate: the release passes")));

    // The job summary is the markdown report; the outputs name the JSON report.
    let summary = std::fs::read_to_string(api.summary_file()).expect("summary");
    assert!(
        summary.starts_with("<!-- relgate-report -->\n### ✅ relgate: the release passes\n"),
        "{summary}"
    );
    assert!(summary.contains("| 1 | 1 | 0 | 0 | 0 |"), "{summary}");
    let outputs = std::fs::read_to_string(api.output_file()).expect("outputs");
    assert_eq!(
        outputs,
        "decision=pass\nmanifests=1\npassed=1\nfailed=0\nerrors=0\nwarnings=0\nreport=report.json\n"
    );
    let report: Value = serde_json::from_slice(
        &std::fs::read(repo.gate_root().join("report.json")).expect("json report"),
    )
    .expect("json");
    assert_eq!(report["decision"], "pass");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("published: comment 1 posted on pull request #1347"),
        "{stderr}"
    );
    assert!(
        stderr.contains("published: check run 4 created with 0 annotations (1 requests)"),
        "{stderr}"
    );
}

#[tokio::test]
async fn second_run_updates_the_comment_found_on_the_last_page() {
    // GitHub Enterprise layout: the API under /api/v3, Link URLs under it too.
    let repo = Repo::new("");
    let api = Api::start("/api/v3", &repo.head).await;
    api.happy(fixture("pulls-list-reviews.json")).await;
    teams(&api, &["octocat"]).await;
    let env = api.runner_env();
    assert_exit(&repo.run(&["check", "--github"], &env), 0);
    let first = api.requests().await;
    let posted = find(
        &first,
        "POST",
        &api.repo_path(&format!("/issues/{NUMBER}/comments")),
    );
    assert_eq!(posted.len(), 1);
    let posted_body = posted[0].body["body"].as_str().expect("body").to_owned();
    assert!(
        first.iter().all(|r| r.path.starts_with("/api/v3/")),
        "{:?}",
        lines(&first)
    );

    // The second run: the pull request now has 250 comments on 3 pages; the report comment
    // posted by the first run (by github-actions[bot], the account of the workflow's token)
    // is on the last page. Decoys: a reply quoting the report, the report comment of another
    // workflow, and a copy of the report with its marker planted by a user on page 1.
    api.reset().await;
    api.pull_request().await;
    api.reviews(fixture("pulls-list-reviews.json")).await;
    teams(&api, &["octocat"]).await;
    api.comment_writes().await;
    api.check_runs().await;
    let mut all: Vec<Value> = (1..=250)
        .map(|i| comment(1000 + i, &format!("comment {i}")))
        .collect();
    all[3] = comment(1004, &format!("> {posted_body}"));
    all[10] = comment_by(1011, &posted_body, "mallory", "User");
    all[150] = bot_comment(1151, "<!-- relgate-report workflow=\"nightly\" -->\nold");
    all[230] = bot_comment(7777, &posted_body);
    let pages: Vec<Vec<Value>> = all.chunks(100).map(<[Value]>::to_vec).collect();
    api.comment_pages(pages).await;

    let out = repo.run(&["check", "--github"], &env);
    assert_exit(&out, 0);
    let requests = api.requests().await;
    let mut expected = pr_requests(&api, &[], &["octocat"]);
    expected.extend([
        format!(
            "GET {}?per_page=100",
            api.repo_path(&format!("/issues/{NUMBER}/comments"))
        ),
        format!("GET /api/v3/repositories/1296269/issues/{NUMBER}/comments?per_page=100&page=2"),
        format!("GET /api/v3/repositories/1296269/issues/{NUMBER}/comments?per_page=100&page=3"),
        format!("PATCH {}", api.repo_path("/issues/comments/7777")),
        format!("POST {}", api.repo_path("/check-runs")),
    ]);
    assert_eq!(
        lines(&requests),
        expected,
        "updated, never a second comment"
    );
    assert_headers(&requests);
    assert_eq!(requests[8].body, json!({"body": posted_body}));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("comment 7777 on pull request #1347 updated (found in 3 page(s)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ignored comments carrying the report marker by mallory"),
        "{stderr}"
    );
}

/// The report marker of the tests' workflow.
const MARKER: &str = "<!-- relgate-report workflow=\"release gate\" -->";

#[tokio::test]
async fn a_planted_report_comment_is_never_taken_over() {
    // Only a user's comment carries the marker (a copy of a report whose verdict says
    // "passes"): relgate posts its own and leaves the planted one alone.
    let repo = Repo::new("");
    let api = Api::start("", &repo.head).await;
    api.pull_request().await;
    api.reviews(fixture("pulls-list-reviews.json")).await;
    teams(&api, &["octocat"]).await;
    api.comment_writes().await;
    api.check_runs().await;
    let planted = format!("{MARKER}\n### ✅ relgate: the release passes\n");
    api.comment_pages(vec![vec![
        comment(2001, "looks good"),
        comment_by(2002, &planted, "mallory", "User"),
        comment_by(2003, &planted, "acme", "Organization"),
    ]])
    .await;
    let out = repo.run(&["check", "--github"], &api.runner_env());
    assert_exit(&out, 0);
    let requests = api.requests().await;
    let comments = api.repo_path(&format!("/issues/{NUMBER}/comments"));
    assert_eq!(find(&requests, "POST", &comments).len(), 1, "a new comment");
    assert!(
        !requests.iter().any(|r| r.method == "PATCH"),
        "{:?}",
        lines(&requests)
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "ignored comments carrying the report marker by acme, mallory (not a bot account nor \
             RELGATE_GITHUB_COMMENT_AUTHOR"
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn with_a_personal_token_the_configured_author_owns_the_comment() {
    // relgate posts with a person's token (a PAT of release-bot, a User account): its earlier
    // report is taken when RELGATE_GITHUB_COMMENT_AUTHOR names that login (any case).
    let repo = Repo::new("");
    let api = Api::start("", &repo.head).await;
    api.pull_request().await;
    api.reviews(fixture("pulls-list-reviews.json")).await;
    teams(&api, &["octocat"]).await;
    api.comment_writes().await;
    api.check_runs().await;
    let report = format!("{MARKER}\nold report\n");
    api.comment_pages(vec![vec![
        comment_by(3001, &report, "mallory", "User"),
        comment_by(3002, &report, "Release-Bot", "User"),
    ]])
    .await;
    let mut env = api.runner_env();
    env.push(("RELGATE_GITHUB_COMMENT_AUTHOR".into(), "release-bot".into()));
    let out = repo.run(&["check", "--github"], &env);
    assert_exit(&out, 0);
    let requests = api.requests().await;
    let patched: Vec<String> = requests
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.contains("/issues/comments/"))
        .map(Seen::line)
        .collect();
    assert_eq!(
        patched,
        [format!("PATCH {}", api.repo_path("/issues/comments/3002"))]
    );
    assert!(find(
        &requests,
        "POST",
        &api.repo_path(&format!("/issues/{NUMBER}/comments"))
    )
    .is_empty());
}

/// A team policy with 100 deny and 20 warn findings.
const MANY: &str = r#"package main

deny contains {"msg": sprintf("denied %03d", [i]), "rule": "TEAM-DENY", "path": "spec.owner.team"} if {
	some i in numbers.range(1, 100)
}

warn contains {"msg": sprintf("warned %03d", [i]), "rule": "TEAM-WARN", "path": "metadata.name", "remediation": "rename"} if {
	some i in numbers.range(1, 20)
}
"#;

#[tokio::test]
async fn annotations_go_in_batches_of_fifty_at_repository_paths() {
    let repo = Repo::with_files("ml", &[(".relgate/policies/many.rego", MANY)]);
    let api = Api::start("", &repo.head).await;
    api.happy(fixture("pulls-list-reviews.json")).await;
    teams(&api, &["octocat"]).await;
    // The gate root is a subdirectory: annotation paths are relative to the repository root.
    let out = repo.run(&["check", "--github"], &api.runner_env());
    assert_exit(&out, 1);
    assert!(
        text(&out.stdout).contains("FAIL: 1 manifest, 0 passed, 1 failed, 0 errors, 20 warnings")
    );

    let requests = api.requests().await;
    let runs: Vec<&Seen> = requests
        .iter()
        .filter(|r| r.path.contains("/check-runs"))
        .collect();
    let got: Vec<String> = runs.iter().map(|r| r.line()).collect();
    assert_eq!(
        got,
        [
            format!("POST /repos/{REPOSITORY}/check-runs"),
            format!("PATCH /repos/{REPOSITORY}/check-runs/{CHECK_RUN_ID}"),
            format!("PATCH /repos/{REPOSITORY}/check-runs/{CHECK_RUN_ID}"),
        ]
    );
    let batch = |i: usize| {
        runs[i].body["output"]["annotations"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(
        [batch(0).len(), batch(1).len(), batch(2).len()],
        [50, 50, 20]
    );
    assert_eq!(runs[0].body["conclusion"], "failure");
    assert_eq!(
        runs[0].body["output"]["title"],
        "blocked: 1 of 1 release fail (20 warnings) against master"
    );
    for update in &runs[1..] {
        // An update carries the output's required title and summary, nothing else.
        let keys: Vec<&String> = update.body.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["output"]);
        assert_eq!(
            update.body["output"]["title"],
            runs[0].body["output"]["title"]
        );
        assert_eq!(
            update.body["output"]["summary"],
            runs[0].body["output"]["summary"]
        );
    }
    // Report order: by line (metadata.name on line 4, spec.owner.team on line 11), then rule
    // and message. Every annotation is at ml/releases/greet.yaml.
    let all: Vec<Value> = (0..3).flat_map(batch).collect();
    assert!(all.iter().all(|a| a["path"] == "ml/releases/greet.yaml"));
    assert_eq!(
        all[0],
        json!({"path": "ml/releases/greet.yaml", "start_line": 4, "end_line": 4,
               "annotation_level": "warning", "title": "TEAM-WARN (main)",
               "message": "warned 001\nfield: metadata.name\nfix: rename"})
    );
    assert_eq!(
        all[20],
        json!({"path": "ml/releases/greet.yaml", "start_line": 11, "end_line": 11,
               "annotation_level": "failure", "title": "TEAM-DENY (main)",
               "message": "denied 001\nfield: spec.owner.team"})
    );
    assert_eq!(all[119]["message"], "denied 100\nfield: spec.owner.team");
    let levels = |level: &str| {
        all.iter()
            .filter(|a| a["annotation_level"] == level)
            .count()
    };
    assert_eq!((levels("failure"), levels("warning")), (100, 20));
    assert!(text(&out.stderr).contains("check run 4 created with 120 annotations (3 requests)"));
    let outputs = std::fs::read_to_string(api.output_file()).expect("outputs");
    assert_eq!(
        outputs,
        "decision=fail\nmanifests=1\npassed=0\nfailed=1\nerrors=0\nwarnings=20\nreport=\n"
    );
}

#[tokio::test]
async fn a_502_and_a_rate_limited_403_are_retried() {
    let repo = Repo::new("");
    let api = Api::start("", &repo.head).await;
    Mock::given(method("GET"))
        .and(path(api.repo_path(&format!("/pulls/{NUMBER}"))))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>502 Bad Gateway</html>"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&api.server)
        .await;
    // A 403 that is the primary rate limit (remaining 0, reset already past): retried at
    // once, unlike a 403 for a missing permission.
    let reset = chrono::Utc::now().timestamp() - 10;
    Mock::given(method("GET"))
        .and(path(api.repo_path(&format!("/pulls/{NUMBER}/reviews"))))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", reset.to_string().as_str())
                .set_body_json(
                    json!({"message": "API rate limit exceeded for installation ID 1."}),
                ),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&api.server)
        .await;
    api.happy(fixture("pulls-list-reviews.json")).await;
    teams(&api, &["octocat"]).await;
    let out = repo.run(&["check", "--github"], &api.runner_env());
    assert_exit(&out, 0);
    let requests = api.requests().await;
    let pr = format!("GET {}", api.repo_path(&format!("/pulls/{NUMBER}")));
    let reviews = format!(
        "GET {}?per_page=100",
        api.repo_path(&format!("/pulls/{NUMBER}/reviews"))
    );
    assert_eq!(
        lines(&requests)[..4],
        [pr.clone(), pr, reviews.clone(), reviews]
    );
    assert_headers(&requests);
}

#[tokio::test]
async fn a_wait_beyond_the_deadline_fails_at_once() {
    let repo = Repo::new("");
    let api = Api::start("", &repo.head).await;
    let runs = api.repo_path("/check-runs");
    Mock::given(method("POST"))
        .and(path(runs.clone()))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "3600")
                .set_body_json(json!({"message": "API rate limit exceeded"})),
        )
        .with_priority(1)
        .mount(&api.server)
        .await;
    api.happy(fixture("pulls-list-reviews.json")).await;
    teams(&api, &["octocat"]).await;
    let mut env = api.runner_env();
    env.push(("RELGATE_GITHUB_DEADLINE_SECS".into(), "30".into()));
    let started = Instant::now();
    let out = repo.run(&["check", "--github"], &env);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "no hour-long wait"
    );
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("HTTP 429 (rate limited)")
            && stderr.contains("waiting 3600 s more would pass the deadline of 30 s"),
        "{stderr}"
    );
    assert_eq!(find(&api.requests().await, "POST", &runs).len(), 1);
}

#[tokio::test]
async fn a_429_waits_as_long_as_retry_after_says() {
    let repo = Repo::new("");
    let api = Api::start("", &repo.head).await;
    let comments = api.repo_path(&format!("/issues/{NUMBER}/comments"));
    Mock::given(method("POST"))
        .and(path(comments.clone()))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(json!({"message": "API rate limit exceeded", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&api.server)
        .await;
    api.happy(fixture("pulls-list-reviews.json")).await;
    teams(&api, &["octocat"]).await;
    let started = Instant::now();
    let out = repo.run(&["check", "--github"], &api.runner_env());
    let took = started.elapsed();
    assert_exit(&out, 0);
    let requests = api.requests().await;
    let posts = find(&requests, "POST", &comments);
    assert_eq!(posts.len(), 2, "{:?}", lines(&requests));
    assert_eq!(
        posts[0].body, posts[1].body,
        "the same comment is sent again"
    );
    // Retry-After: 1 is honoured, not the 5 ms backoff of the test environment.
    assert!(took >= Duration::from_secs(1), "{took:?}");
}

#[tokio::test]
async fn a_persistent_502_fails_closed_after_printing_the_decision() {
    let repo = Repo::new("");
    let api = Api::start("", &repo.head).await;
    let runs = api.repo_path("/check-runs");
    Mock::given(method("POST"))
        .and(path(runs.clone()))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>502 Bad Gateway</html>"))
        .with_priority(1)
        .mount(&api.server)
        .await;
    api.happy(fixture("pulls-list-reviews.json")).await;
    teams(&api, &["octocat"]).await;
    let mut env = api.runner_env();
    env.push(("RELGATE_GITHUB_RETRY_ATTEMPTS".into(), "3".into()));
    let out = repo.run(&["check", "--github"], &env);
    assert_exit(&out, 2);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("PASS: 1 manifest, 1 passed"),
        "the decision is printed: {stdout}"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot create the relgate check run")
            && stderr.contains("still failing after 3 tries")
            && stderr.contains("HTTP 502"),
        "{stderr}"
    );
    assert!(
        stderr.contains("the decision (pass) was made and printed above"),
        "{stderr}"
    );
    let requests = api.requests().await;
    assert_eq!(find(&requests, "POST", &runs).len(), 3, "bounded tries");
    // The other targets were still published.
    assert_eq!(
        find(
            &requests,
            "POST",
            &api.repo_path(&format!("/issues/{NUMBER}/comments"))
        )
        .len(),
        1
    );
    assert!(std::fs::read_to_string(api.output_file())
        .expect("outputs")
        .starts_with("decision=pass\n"));
}

#[tokio::test]
async fn a_403_on_comments_names_the_permission() {
    let repo = Repo::new("");
    let api = Api::start("", &repo.head).await;
    Mock::given(method("GET"))
        .and(path(api.repo_path(&format!("/issues/{NUMBER}/comments"))))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "message": "Resource not accessible by integration",
            "documentation_url": "https://docs.github.com/rest/issues/comments#list-issue-comments",
            "status": "403"
        })))
        .with_priority(1)
        .mount(&api.server)
        .await;
    api.happy(fixture("pulls-list-reviews.json")).await;
    teams(&api, &["octocat"]).await;
    let out = repo.run(&["check", "--github"], &api.runner_env());
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot list the comments of pull request #1347")
            && stderr.contains("HTTP 403 (Resource not accessible by integration")
            && stderr.contains("`pull-requests: write`"),
        "{stderr}"
    );
    let requests = api.requests().await;
    // A permission error is not retried; the check run is still created.
    assert_eq!(
        find(
            &requests,
            "GET",
            &api.repo_path(&format!("/issues/{NUMBER}/comments"))
        )
        .len(),
        1
    );
    assert_eq!(
        find(&requests, "POST", &api.repo_path("/check-runs")).len(),
        1
    );
}

/// An APPROVED review of `head` by `login`, a bot account (user.type Bot; changed from the
/// fixture's review: id, user, state, commit_id, submitted_at).
fn bot_review(id: u64, login: &str, head: &str) -> Value {
    let mut review = review(id, login, "APPROVED", head, "2026-11-22T09:00:00Z");
    review["user"]["type"] = "Bot".into();
    review["user"]["id"] = 41_898_282.into();
    review
}

/// Echoes the pull-request context back as a warning, so the test sees the policy input.
const ECHO: &str = r#"package main

warn contains {"msg": json.marshal(input.context.pull_request), "rule": "PR-CONTEXT"} if {
	input.context.pull_request != null
}
"#;

#[tokio::test]
async fn reviews_collapse_to_each_reviewers_latest_decision() {
    let repo = Repo::with_files("", &[(".relgate/policies/echo.rego", ECHO)]);
    let api = Api::start("", &repo.head).await;
    let head = repo.head.as_str();
    let reviews = json!([
        // The fixture's own review: the author approved an older commit.
        fixture("pulls-list-reviews.json")[0].clone(),
        review(81, "Alice", "APPROVED", OLD_SHA, "2026-11-20T10:00:00Z"),
        review(
            82,
            "alice",
            "CHANGES_REQUESTED",
            head,
            "2026-11-20T11:00:00Z"
        ),
        review(83, "alice", "COMMENTED", head, "2026-11-20T12:00:00Z"),
        review(84, "bob", "APPROVED", head, "2026-11-21T09:00:00Z"),
        review(85, "bob", "COMMENTED", head, "2026-11-21T10:00:00Z"),
        review(86, "carol", "COMMENTED", head, "2026-11-21T11:00:00Z"),
        bot_review(87, "github-actions[bot]", head),
    ]);
    api.happy(reviews).await;
    // alice and octocat are active members; carol's invitation is pending; bob is not a
    // member (GitHub answers 404).
    teams(&api, &["alice", "octocat"]).await;
    let mut pending = fixture("team-membership.json");
    pending["state"] = "pending".into(); // changed from the fixture: an open invitation
    api.mount_json(
        "GET",
        &api.at("/orgs/octocat/teams/ml-reliability/memberships/carol"),
        200,
        pending,
    )
    .await;
    api.mount_json(
        "GET",
        &api.at("/orgs/octocat/teams/ml-reliability/memberships/bob"),
        404,
        json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest/teams/members#get-team-membership-for-a-user", "status": "404"}),
    )
    .await;
    let out = repo.run(
        &["check", "--github", "--format", "json"],
        &api.runner_env(),
    );
    assert_exit(&out, 0);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    let finding = &report["results"][0]["findings"][0];
    assert_eq!(finding["rule"], "PR-CONTEXT");
    let context: Value =
        serde_json::from_str(finding["message"].as_str().expect("message")).expect("context");
    assert_eq!(
        context,
        json!({
            "number": 1347,
            "author": "octocat",
            "labels": ["bug"],
            "title": "Amazing new feature",
            "draft": false,
            "state": "open",
            "merged": false,
            "merged_by": "octocat",
            "base_ref": "master",
            "base_sha": HEAD_SHA,
            "head_ref": "new-topic",
            "head_sha": head,
            "reviews": [
                {"user": "alice", "state": "CHANGES_REQUESTED", "submitted_at": "2026-11-20T11:00:00Z", "commit_id": head, "stale": false, "bot": false, "association": "COLLABORATOR"},
                {"user": "bob", "state": "APPROVED", "submitted_at": "2026-11-21T09:00:00Z", "commit_id": head, "stale": false, "bot": false, "association": "COLLABORATOR", "permission": "write"},
                {"user": "carol", "state": "COMMENTED", "submitted_at": "2026-11-21T11:00:00Z", "commit_id": head, "stale": false, "bot": false, "association": "COLLABORATOR"},
                {"user": "github-actions[bot]", "state": "APPROVED", "submitted_at": "2026-11-22T09:00:00Z", "commit_id": head, "stale": false, "bot": true, "association": "COLLABORATOR"},
                {"user": "octocat", "state": "APPROVED", "submitted_at": "2019-11-17T17:43:43Z", "commit_id": OLD_SHA, "stale": true, "bot": false, "association": "COLLABORATOR"}
            ],
            "approvers": ["bob", "github-actions[bot]", "octocat"],
            "teams": {"ml-reliability": {"org": "octocat", "members": ["alice", "octocat"]}}
        })
    );
    let requests = api.requests().await;
    // The bot's team membership is not looked up: its approval never counts.
    assert_eq!(
        lines(&requests)[..9],
        pr_requests(&api, &["bob"], &["alice", "bob", "carol", "octocat"])[..]
    );
    assert!(
        !requests.iter().any(|r| r.path.contains("bot")),
        "{:?}",
        lines(&requests)
    );
    assert_headers(&requests);
}

#[tokio::test]
async fn an_unreadable_team_stops_the_run_naming_read_org() {
    let repo = Repo::new("");
    let api = Api::start("", &repo.head).await;
    api.happy(fixture("pulls-list-reviews.json")).await;
    // What GITHUB_TOKEN gets for an organization's team: 404.
    api.mount_json(
        "GET",
        &api.at("/orgs/octocat/teams/ml-reliability"),
        404,
        json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest/teams/teams#get-a-team-by-name", "status": "404"}),
    )
    .await;
    let out = repo.run(&["check", "--github"], &api.runner_env());
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot read team octocat/ml-reliability")
            && stderr.contains("HTTP 404")
            && stderr.contains("`read:org`")
            && stderr.contains("GITHUB_TOKEN can never read team membership"),
        "{stderr}"
    );
    // Nothing decided, nothing published.
    assert_eq!(text(&out.stdout), "");
    let requests = api.requests().await;
    assert_eq!(lines(&requests), pr_requests(&api, &[], &[]));
    assert!(!api.output_file().exists());
}

#[tokio::test]
async fn record_on_push_records_the_merged_pull_request() {
    // The pull request's head, then its squash merge on the default branch: the pushed and
    // checked-out commit (GITHUB_SHA).
    let repo = Repo::new("");
    let api = Api::start("", &repo.head).await;
    repo.file(
        "releases/greet.yaml",
        &dev_release("greet").replace("\"2\"", "\"3\""),
    );
    let merged = repo.commit("greet 3 (#1347)");
    api.pull_request().await;
    api.reviews(json!([review(
        90,
        "bob",
        "APPROVED",
        &repo.head,
        "2026-11-21T09:00:00Z"
    ),]))
        .await;
    teams(&api, &["octocat"]).await;
    api.check_runs().await;
    // GitHub lists the pull requests of a commit as pull-request-simple items; the full
    // pull request of the fixture carries every field of one (wrapped in a list here;
    // changed from the fixture: head.sha, merge_commit_sha).
    let mut pull = fixture("pulls-get.json");
    pull["head"]["sha"] = repo.head.clone().into();
    pull["merge_commit_sha"] = merged.clone().into();
    api.mount_json(
        "GET",
        &api.repo_path(&format!("/commits/{merged}/pulls")),
        200,
        json!([pull]),
    )
    .await;
    let keys = repo.gate_root().join("keys");
    let keygen = repo.run(&["keygen", "--out", keys.to_str().expect("utf8")], &[]);
    assert_exit(&keygen, 0);
    // A push event: no pull_request in the payload (only the fields relgate reads matter).
    let event = api.dir.path().join("push.json");
    std::fs::write(
        &event,
        json!({"ref": "refs/heads/main", "after": merged}).to_string(),
    )
    .expect("event");
    let mut env = with_event_name(api.runner_env(), "push");
    set_env(&mut env, "GITHUB_EVENT_PATH", &event.display().to_string());
    set_env(&mut env, "GITHUB_SHA", &merged);
    let out = repo.run(
        &[
            "record",
            "--github",
            "--key",
            "keys/relgate-signing.pem",
            "--ledger-dir",
            "ledger",
        ],
        &env,
    );
    assert_exit(&out, 0);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("not published: pull-request comment"),
        "{stderr}"
    );

    let requests = api.requests().await;
    let mut expected = vec![format!(
        "GET {}?per_page=100",
        api.repo_path(&format!("/commits/{merged}/pulls"))
    )];
    expected.extend(pr_requests(&api, &["bob"], &["bob", "octocat"]));
    expected.push(format!("POST {}", api.repo_path("/check-runs")));
    // bob is not a member: unmatched requests get wiremock's 404, GitHub's answer too.
    assert_eq!(lines(&requests), expected);
    assert_headers(&requests);
    // The check run is on the pushed commit.
    assert_eq!(
        requests.last().expect("check run").body["head_sha"],
        merged.as_str()
    );

    // The record names the merged pull request, its author, approvers and merger.
    let public = repo.gate_root().join("trusted");
    std::fs::create_dir_all(&public).expect("mkdir");
    std::fs::copy(keys.join("relgate-signing.pub.pem"), public.join("ci.pem")).expect("copy key");
    let trusted = relgate::record::keys::TrustedKeys::load_dir(&public).expect("keys");
    let verified = relgate::record::verify::verify_ledger_with(
        &relgate::record::ledger::LedgerSource::Dir(repo.gate_root().join("ledger")),
        &trusted,
        None,
        &relgate::record::verify::VerifyOptions {
            keep_payloads: true,
            ..Default::default()
        },
    );
    assert!(verified.is_intact());
    assert_eq!(verified.payloads.len(), 1);
    let change = &verified.payloads[0].payload["predicate"]["https://relgate.dev/change/v1"];
    assert_eq!(
        change["pull_request"],
        json!({"number": 1347, "author": "octocat", "approvers": ["bob"], "merged_by": "octocat"}),
        "{change}"
    );
}

#[test]
fn github_mode_without_a_token_stops_before_deciding() {
    let repo = Repo::new("");
    let dir = tempfile::tempdir().expect("temp");
    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        r#"{"pull_request": {"number": 5, "head": {"sha": "abc"}}}"#,
    )
    .expect("event");
    let env = vec![
        ("GITHUB_REPOSITORY".to_owned(), REPOSITORY.to_owned()),
        ("GITHUB_EVENT_PATH".to_owned(), event.display().to_string()),
    ];
    let out = repo.run(&["check", "--github"], &env);
    assert_exit(&out, 2);
    assert_eq!(text(&out.stdout), "");
    assert!(text(&out.stderr).contains("GitHub mode needs a token"));
    // The flags belong to GitHub mode.
    let out = repo.run(&["check", "--publish", "summary"], &[]);
    assert_exit(&out, 2);
    assert!(
        text(&out.stderr).contains("--github"),
        "{}",
        text(&out.stderr)
    );
}

/// 700 findings with long messages: a markdown report of about 200,000 characters.
const HUGE: &str = r#"package main

deny contains {"msg": sprintf("finding %03d: %s", [i, concat("", array.concat(["x"], [s | some _ in numbers.range(1, 150); s := "y"]))]), "rule": "TEAM-HUGE", "path": "spec.owner.team"} if {
	some i in numbers.range(1, 700)
}
"#;

#[tokio::test]
async fn a_huge_report_is_cut_to_githubs_limits() {
    let repo = Repo::with_files("", &[(".relgate/policies/huge.rego", HUGE)]);
    let api = Api::start("", &repo.head).await;
    api.happy(fixture("pulls-list-reviews.json")).await;
    teams(&api, &["octocat"]).await;
    let out = repo.run(&["check", "--github"], &api.runner_env());
    assert_exit(&out, 1);
    let requests = api.requests().await;
    let posted = find(
        &requests,
        "POST",
        &api.repo_path(&format!("/issues/{NUMBER}/comments")),
    );
    let body = posted[0].body["body"].as_str().expect("body");
    assert!(body.chars().count() <= 65_536, "{}", body.chars().count());
    assert!(body.starts_with(r#"<!-- relgate-report workflow="release gate" -->"#));
    assert!(body.contains("finding 001: xyyy"));
    assert!(!body.contains("finding 700"));
    assert!(body.trim_end().ends_with(
        "The full report is in the check run \"relgate\" and the job summary of [this run](https://github.com/octocat/Hello-World/actions/runs/1658821493)."
    ), "{}", &body[body.len() - 400..]);
    let runs: Vec<&Seen> = requests
        .iter()
        .filter(|r| r.path.contains("/check-runs"))
        .collect();
    assert_eq!(runs.len(), 14, "700 annotations in 14 requests of 50");
    let summary = runs[0].body["output"]["summary"].as_str().expect("summary");
    assert!(summary.chars().count() <= 65_535);
    assert!(summary.contains("Report truncated"));
    // The job summary has room for all of it.
    let step = std::fs::read_to_string(api.summary_file()).expect("summary");
    assert!(
        step.len() > 150_000 && step.contains("finding 700"),
        "{}",
        step.len()
    );
}

/// The runner's environment for event `name` (the payload stays the pull request's).
fn with_event_name(mut env: Vec<(String, String)>, name: &str) -> Vec<(String, String)> {
    set_env(&mut env, "GITHUB_EVENT_NAME", name);
    env
}

/// Sets the runner variable `key` (which [`Api::runner_env`] always has) to `value`.
#[track_caller]
fn set_env(env: &mut [(String, String)], key: &str, value: &str) {
    let entry = env
        .iter_mut()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("the runner environment has no {key}"));
    entry.1 = value.to_owned();
}

/// `api.runner_env()` with the pull-request event payload changed by `edit`, written to
/// `file_name` beside the API's files.
fn env_with_edited_event(
    api: &Api,
    file_name: &str,
    edit: impl FnOnce(&mut Value),
) -> Vec<(String, String)> {
    let mut event: Value =
        serde_json::from_slice(&std::fs::read(api.pull_request_event()).expect("event"))
            .expect("json");
    edit(&mut event);
    let path = api.output_file().with_file_name(file_name);
    std::fs::write(&path, serde_json::to_vec(&event).expect("json")).expect("write event");
    let mut env = api.runner_env();
    set_env(&mut env, "GITHUB_EVENT_PATH", &path.display().to_string());
    env
}

#[tokio::test]
async fn a_checkout_that_is_not_the_pull_requests_head_stops_the_run() {
    // pull_request_target: actions/checkout checked out the base branch by default, while the
    // pull request's head keeps logs for 3000 days. Deciding about the base would pass and
    // post "success" on the head; relgate stops instead.
    let repo = Repo::new("");
    let base = repo.head.clone();
    repo.file(
        "releases/greet.yaml",
        &dev_release("greet").replace("retention_days: 30", "retention_days: 3000"),
    );
    let head = repo.commit("keep support logs for 3000 days");
    repo.checkout(&base);
    let api = Api::start("", &head).await;
    api.happy(fixture("pulls-list-reviews.json")).await;
    teams(&api, &["octocat"]).await;
    let env = with_event_name(api.runner_env(), "pull_request_target");
    let out = repo.run(&["check", "--github", "--changed", "--base", &base], &env);
    assert_exit(&out, 2);
    assert_eq!(text(&out.stdout), "", "nothing decided");
    let stderr = text(&out.stderr);
    for part in [
        format!("the checked-out commit is not pull request #1347's head {head}"),
        format!("is {base} \"base\""),
        "(event pull_request_target)".to_owned(),
        "refs/pull/1347/merge".to_owned(),
        "`ref: ${{ github.event.pull_request.head.sha }}`".to_owned(),
        "secrets".to_owned(),
    ] {
        assert!(stderr.contains(&part), "{part} in {stderr}");
    }
    // Nothing published: no comment, no check run, no outputs, no summary.
    let requests = api.requests().await;
    assert!(
        requests.iter().all(|r| r.method == "GET"),
        "{:?}",
        lines(&requests)
    );
    assert!(!requests.iter().any(|r| r.path.contains("/comments")));
    assert!(!api.output_file().exists());
    assert!(!api.summary_file().exists());

    // A commit on top of the head is not the head either (only a merge of it is).
    repo.checkout(&head);
    repo.file("releases/greet.yaml", &dev_release("greet"));
    let child = repo.commit("undo the retention change after review");
    let out = repo.run(&["check", "--github"], &env);
    assert_exit(&out, 2);
    assert!(
        text(&out.stderr).contains(&format!("is {child} \"undo the retention change")),
        "{}",
        text(&out.stderr)
    );
    assert!(api.requests().await.iter().all(|r| r.method == "GET"));
}

#[tokio::test]
async fn the_merge_commit_of_the_pull_request_is_what_it_checks() {
    // pull_request: actions/checkout checks out refs/pull/N/merge, a merge commit of the base
    // and the pull request's head. The decision is published on the head.
    let repo = Repo::new("");
    let base = repo.head.clone();
    let blocked = dev_release("greet").replace("retention_days: 30", "retention_days: 3000");
    repo.file("releases/greet.yaml", &blocked);
    let head = repo.commit("keep support logs for 3000 days");
    repo.checkout(&base);
    repo.file("releases/greet.yaml", &blocked);
    let merge = repo.commit_with(&format!("Merge {head} into {base}"), &[&head]);
    let api = Api::start("", &head).await;
    api.happy(fixture("pulls-list-reviews.json")).await;
    teams(&api, &["octocat"]).await;
    let mut env = api.runner_env();
    set_env(&mut env, "GITHUB_SHA", &merge);
    let out = repo.run(&["check", "--github", "--changed", "--base", &base], &env);
    assert_exit(&out, 1);
    assert!(
        text(&out.stdout).contains("PII-RETENTION"),
        "{}",
        text(&out.stdout)
    );
    let requests = api.requests().await;
    let runs = find(&requests, "POST", &api.repo_path("/check-runs"));
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].body["head_sha"], head.as_str());
    assert_eq!(runs[0].body["conclusion"], "failure");
    let posted = find(
        &requests,
        "POST",
        &api.repo_path(&format!("/issues/{NUMBER}/comments")),
    );
    let body = posted[0].body["body"].as_str().expect("body");
    assert!(
        body.contains(&format!(
            "(https://github.com/{REPOSITORY}/blob/{head}/releases/greet.yaml#L"
        )),
        "{body}"
    );
}

/// A repository whose relgate.yaml requires `min` approvals of dev releases.
fn needs_dev_approvals(min: u32) -> Repo {
    Repo::with_files(
        "",
        &[(
            "relgate.yaml",
            &format!(
                "apiVersion: relgate.dev/v1\nkind: GateConfig\napprovals:\n  dev:\n    min: {min}\n"
            ),
        )],
    )
}

/// GET pulls/1347 answers the fixture with head `head` and base branch `base_ref` (changed from
/// the fixture's master), over [`Api::happy`]'s.
async fn pull_request_into(api: &Api, head: &str, base_ref: &str) {
    let mut pull = fixture("pulls-get.json");
    pull["head"]["sha"] = head.into();
    pull["base"]["ref"] = base_ref.into();
    Mock::given(method("GET"))
        .and(path(api.repo_path(&format!("/pulls/{NUMBER}"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(pull))
        .with_priority(1)
        .mount(&api.server)
        .await;
}

/// The body of the first check run the run posted.
async fn posted_check(api: &Api) -> Value {
    let requests = api.requests().await;
    find(&requests, "POST", &api.repo_path("/check-runs"))[0]
        .body
        .clone()
}

/// Runs `check --github` for `repo` against `api`: blocked (exit 1) by exactly one finding,
/// APPROVAL-MISSING, which it returns.
fn the_approval_finding(repo: &Repo, api: &Api) -> Value {
    let out = repo.run(
        &["check", "--github", "--format", "json"],
        &api.runner_env(),
    );
    assert_exit(&out, 1);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    let findings = report["results"][0]["findings"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0]["rule"], "APPROVAL-MISSING");
    findings[0].clone()
}

#[tokio::test]
async fn a_pull_request_into_another_branch_never_posts_the_default_branchs_check() {
    // Branch protection requires a check by name on the head commit, whichever run posted it.
    // A second pull request of the same head into a branch whose rules its author loosened
    // passes by that branch's rules: under the plain name `relgate`, its green check would
    // satisfy main's required check for the pull request into main.
    let repo = needs_dev_approvals(1);
    let approved = || {
        json!([review(
            91,
            "hubot",
            "APPROVED",
            &repo.head,
            "2026-11-22T09:00:00Z"
        )])
    };
    let api = Api::start("", &repo.head).await;
    pull_request_into(&api, &repo.head, "loose-rules").await;
    api.happy(approved()).await;
    let env = env_with_edited_event(&api, "event-other-base.json", |event| {
        event["pull_request"]["base"]["ref"] = "loose-rules".into();
        event["pull_request"]["head"]["sha"] = api.head.clone().into();
    });
    let out = repo.run(&["check", "--github"], &env);
    assert_exit(&out, 0);
    let posted = posted_check(&api).await;
    assert_eq!(posted["conclusion"], "success");
    assert_eq!(posted["name"], "relgate (into loose-rules)");

    // Into the default branch (the payload's repository.default_branch), the plain name.
    let api = Api::start("", &repo.head).await;
    api.happy(approved()).await;
    let out = repo.run(&["check", "--github"], &api.runner_env());
    assert_exit(&out, 0);
    assert_eq!(posted_check(&api).await["name"], "relgate");
}

#[tokio::test]
async fn a_bots_approval_does_not_count() {
    // dev releases need one approval here; the only one is github-actions[bot]'s (a workflow
    // allowed to approve pull requests).
    let repo = needs_dev_approvals(1);
    let api = Api::start("", &repo.head).await;
    api.happy(json!([bot_review(91, "github-actions[bot]", &repo.head)]))
        .await;
    let finding = the_approval_finding(&repo, &api);
    assert_eq!(
        finding["message"],
        "dev releases need 1 approval from reviewers other than the author; PR #1347 has 0 \
         (nobody); not counted: github-actions[bot] (bot accounts, whose approval never counts)"
    );
    assert_eq!(
        finding["remediation"],
        "ask 1 more reviewer(s) other than the author (octocat) to approve PR #1347; approvals \
         must come from people: a bot's approval does not count"
    );
    // No team was looked up; the check run says the release is blocked.
    let requests = api.requests().await;
    assert!(!requests.iter().any(|r| r.path.contains("/teams/")));
    assert_eq!(posted_check(&api).await["conclusion"], "failure");
}

#[tokio::test]
async fn approvals_of_accounts_without_standing_in_the_repository_do_not_count() {
    // Anyone can review a public repository: the author's two other accounts approving is no
    // approval at all (GitHub's own required reviews count people with write access only).
    let repo = needs_dev_approvals(2);
    let api = Api::start("", &repo.head).await;
    let outsider = |id: u64, login: &str, association: &str| {
        let mut r = review(id, login, "APPROVED", &repo.head, "2026-11-22T09:00:00Z");
        r["author_association"] = association.into(); // changed from the fixture's COLLABORATOR
        r
    };
    api.happy(json!([
        outsider(91, "octocat-alt", "NONE"),
        outsider(92, "octocat-alt2", "FIRST_TIME_CONTRIBUTOR"),
    ]))
    .await;
    let finding = the_approval_finding(&repo, &api);
    assert_eq!(
        finding["message"],
        "dev releases need 2 approvals from reviewers other than the author; PR #1347 has 0 \
         (nobody); not counted: octocat-alt (NONE), octocat-alt2 (FIRST_TIME_CONTRIBUTOR) (no \
         write access to the repository)"
    );
    assert_eq!(posted_check(&api).await["conclusion"], "failure");
}

#[tokio::test]
async fn approvals_of_members_with_read_access_only_do_not_count() {
    // An organization member (or a collaborator) may hold read access alone: GitHub's required
    // reviews do not count such an approval, so neither may the gate. hubot is a MEMBER (the
    // fixture's association) with read access; only reviewer, with write, counts.
    let repo = needs_dev_approvals(2);
    let api = Api::start("", &repo.head).await;
    api.happy(json!([
        review(91, "hubot", "APPROVED", &repo.head, "2026-11-22T09:00:00Z"),
        review(
            92,
            "reviewer",
            "APPROVED",
            &repo.head,
            "2026-11-22T09:05:00Z"
        ),
        review(93, "gone", "APPROVED", &repo.head, "2026-11-22T09:06:00Z"),
    ]))
    .await;
    api.permission(Some("hubot"), "read").await;
    // GitHub answers 404 for a login it cannot place in the repository: no permission at all.
    Mock::given(method("GET"))
        .and(path(api.repo_path("/collaborators/gone/permission")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})))
        .with_priority(1)
        .mount(&api.server)
        .await;
    let finding = the_approval_finding(&repo, &api);
    assert_eq!(
        finding["message"],
        "dev releases need 2 approvals from reviewers other than the author; PR #1347 has 1 \
         (reviewer); not counted: gone (permission none), hubot (permission read) (no write \
         access to the repository)"
    );
    let requests = api.requests().await;
    // One permission request per approving reviewer; none for the author.
    let asked: Vec<&str> = requests
        .iter()
        .filter(|r| r.path.ends_with("/permission"))
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(asked.len(), 3, "{asked:?}");
    assert_eq!(posted_check(&api).await["conclusion"], "failure");
}

#[tokio::test]
async fn a_permission_that_cannot_be_read_decides_nothing() {
    // A 403 (a token without Metadata: read) or a body without `permission` is no fact at all:
    // the run cannot decide (exit 2) and publishes no verdict.
    let repo = needs_dev_approvals(1);
    for (status, body) in [
        (
            403,
            json!({"message": "Resource not accessible by integration"}),
        ),
        (200, json!({"role_name": "write"})),
    ] {
        let api = Api::start("", &repo.head).await;
        Mock::given(method("GET"))
            .and(path(api.repo_path("/collaborators/hubot/permission")))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .with_priority(1)
            .mount(&api.server)
            .await;
        api.happy(json!([review(
            91,
            "hubot",
            "APPROVED",
            &repo.head,
            "2026-11-22T09:00:00Z"
        )]))
        .await;
        let out = repo.run(&["check", "--github"], &api.runner_env());
        assert_exit(&out, 2);
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("read hubot's permission on the repository"),
            "{stderr}"
        );
        let requests = api.requests().await;
        assert!(
            find(&requests, "POST", &api.repo_path("/check-runs"))
                .iter()
                .all(|r| r.body["conclusion"] != "success"),
            "{status}: no success published"
        );
    }
}

/// `api.runner_env()` with the event's `pull_request.head.sha` set to `head` (the commit the
/// event checked out), while the API keeps serving [`Api::head`].
fn env_with_event_head(api: &Api, head: &str) -> Vec<(String, String)> {
    env_with_edited_event(api, "event-other-head.json", |event| {
        event["pull_request"]["head"]["sha"] = head.into();
        // The base whose rules decide without --changed must be in the repository.
        event["pull_request"]["base"]["sha"] = head.into();
    })
}

#[tokio::test]
async fn approvals_of_a_newer_head_do_not_count_for_the_checked_commit() {
    // A force-push (or "re-run jobs" of an old run): the event checked out `repo.head`, but
    // the API already reports a newer head, which hubot approved. That approval says nothing
    // about the code on disk; counting it would post success on unreviewed code.
    let repo = Repo::with_files(
        "",
        &[(
            "relgate.yaml",
            "apiVersion: relgate.dev/v1\nkind: GateConfig\napprovals:\n  dev:\n    min: 1\n    dismiss_stale: true\n",
        )],
    );
    let api = Api::start("", OLD_SHA).await;
    api.happy(json!([review(
        80,
        "hubot",
        "APPROVED",
        OLD_SHA,
        "2026-11-26T10:00:00Z"
    )]))
    .await;
    let env = env_with_event_head(&api, &repo.head);
    let out = repo.run(&["check", "--github"], &env);
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    for part in [
        format!("pull request #1347's head is now {OLD_SHA}"),
        format!("this run checked out {}", repo.head),
        "re-run".to_owned(),
    ] {
        assert!(stderr.contains(&part), "{part} in {stderr}");
    }
    assert_eq!(text(&out.stdout), "", "nothing decided");
    let requests = api.requests().await;
    assert!(
        requests.iter().all(|r| r.method == "GET"),
        "nothing published: {:?}",
        lines(&requests)
    );
}

/// The runner's environment for an event without a pull request: `name` with `payload`,
/// GITHUB_SHA the checked-out `sha`.
fn env_without_pull_request(
    api: &Api,
    name: &str,
    payload: Value,
    sha: &str,
) -> Vec<(String, String)> {
    let path = api
        .output_file()
        .with_file_name(format!("event-{name}.json"));
    std::fs::write(&path, serde_json::to_vec(&payload).expect("json")).expect("write event");
    let mut env = with_event_name(api.runner_env(), name);
    set_env(&mut env, "GITHUB_EVENT_PATH", &path.display().to_string());
    set_env(&mut env, "GITHUB_SHA", sha);
    env
}

#[tokio::test]
async fn events_without_a_pull_request_do_not_skip_required_approvals() {
    // merge_group, push and workflow_dispatch carry no pull request. A release whose
    // environment requires approvals must not pass there just because nobody was asked.
    let repo = needs_dev_approvals(1);
    let api = Api::start("", &repo.head).await;
    api.check_runs().await;
    let head = repo.head.clone();
    let events = [
        (
            "merge_group",
            json!({"action": "checks_requested", "merge_group": {"head_sha": head, "head_ref": "refs/heads/gh-readonly-queue/main/pr-1347-0000", "base_ref": "refs/heads/main"}}),
        ),
        (
            "push",
            json!({"ref": "refs/heads/main", "after": head, "repository": {"default_branch": "main"}}),
        ),
        (
            "workflow_dispatch",
            json!({"ref": "refs/heads/main", "inputs": {}, "repository": {"default_branch": "main"}}),
        ),
    ];
    for (name, payload) in events {
        api.reset().await;
        api.check_runs().await;
        let env = env_without_pull_request(&api, name, payload, &head);
        let out = repo.run(
            &["check", "--github", "--publish", "check-run", "-f", "json"],
            &env,
        );
        assert_exit(&out, 1);
        let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
        let findings = report["results"][0]["findings"].clone();
        assert_eq!(
            findings[0]["rule"], "APPROVAL-MISSING",
            "{name}: {findings}"
        );
        let message = findings[0]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("this run (event {name}) has no pull request")),
            "{name}: {message}"
        );
        let requests = api.requests().await;
        let runs = find(&requests, "POST", &api.repo_path("/check-runs"));
        assert_eq!(runs.len(), 1, "{name}");
        assert_eq!(runs[0].body["head_sha"], head.as_str());
        assert_eq!(runs[0].body["conclusion"], "failure", "{name}");
    }

    // A release whose environment requires no approval still passes without a pull request.
    let plain = Repo::new("");
    let api = Api::start("", &plain.head).await;
    api.check_runs().await;
    let env = env_without_pull_request(
        &api,
        "push",
        json!({"ref": "refs/heads/main", "after": plain.head, "repository": {"default_branch": "main"}}),
        &plain.head,
    );
    let out = plain.run(&["check", "--github", "--publish", "check-run"], &env);
    assert_exit(&out, 0);
}

#[tokio::test]
async fn relgate_now_does_not_move_the_clock_in_github_mode() {
    // A step before relgate can write RELGATE_NOW=… to $GITHUB_ENV: an expired waiver would
    // pass again. In GitHub mode the clock is the runner's, and the override is reported.
    let expired = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/scenarios/prr-waiver-expired/repo/releases/a.yaml"),
    )
    .expect("scenario manifest")
    .replace("expires: 2026-11-01", "expires: 2020-02-01");
    let repo = Repo::with_files("", &[("releases/a.yaml", &expired)]);
    let api = Api::start("", &repo.head).await;
    api.happy(fixture("pulls-list-reviews.json")).await;
    teams(&api, &["octocat"]).await;
    let mut env = api.runner_env();
    env.push(("RELGATE_NOW".into(), "2020-01-01T00:00:00Z".into()));
    let out = repo.run(&["check", "--github"], &env);
    assert_exit(&out, 1);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("PRR-WAIVER-EXPIRED"), "{stdout}");
    assert!(
        stdout.contains(
            "RELGATE_NOW=2020-01-01T00:00:00Z is set but ignored: in GitHub mode the clock is the runner's"
        ),
        "{stdout}"
    );
    let requests = api.requests().await;
    let runs = find(&requests, "POST", &api.repo_path("/check-runs"));
    let completed = runs[0].body["completed_at"].as_str().unwrap_or_default();
    assert!(completed > "2026-11-01", "{completed}");
    assert_eq!(runs[0].body["conclusion"], "failure");
}

#[tokio::test]
async fn the_check_run_names_the_base_it_was_computed_against() {
    // A pass computed against one base says nothing about another: retargeting the pull
    // request re-runs the gate (`edited`), and the check run says which base it judged.
    let repo = Repo::new("");
    let api = Api::start("", &repo.head).await;
    api.happy(fixture("pulls-list-reviews.json")).await;
    teams(&api, &["octocat"]).await;
    let out = repo.run(&["check", "--github"], &api.runner_env());
    assert_exit(&out, 0);
    let requests = api.requests().await;
    let runs = find(&requests, "POST", &api.repo_path("/check-runs"));
    let pull = fixture("pulls-get.json");
    let base_ref = pull["base"]["ref"].as_str().expect("base ref");
    let base_sha = pull["base"]["sha"].as_str().expect("base sha");
    assert_eq!(
        runs[0].body["output"]["title"],
        format!("pass: 1 release checked against {base_ref}")
    );
    let summary = runs[0].body["output"]["summary"]
        .as_str()
        .unwrap_or_default();
    assert!(
        summary.contains(&format!(
            "Computed for pull request #1347 against base `{base_ref}` ({base_sha})"
        )),
        "{summary}"
    );
    assert_eq!(
        runs[0].body["external_id"],
        format!("relgate:pr-1347:base-{base_ref}")
    );
}

#[tokio::test]
async fn a_reviewer_who_pushed_the_head_does_not_satisfy_the_two_person_rule() {
    // octocat opens the pull request; hubot approves commit 1, then pushes the final commit
    // (authored by octocat, so only the push event says who pushed it) and approves it. No one
    // but hubot has seen hubot's push: the two-person rule is not met.
    let repo = needs_dev_approvals(1);
    let api = Api::start("", &repo.head).await;
    api.happy(json!([review(
        81,
        "hubot",
        "APPROVED",
        &repo.head,
        "2026-11-26T10:00:00Z"
    )]))
    .await;
    api.commits(
        json!([
            commit_by(OLD_SHA, "octocat", "octocat"),
            commit_by(&repo.head, "octocat", "web-flow")
        ]),
        1,
    )
    .await;
    let env = env_with_edited_event(&api, "event-synchronize.json", |event| {
        event["action"] = "synchronize".into();
        event["sender"]["login"] = "hubot".into();
    });
    let out = repo.run(&["check", "--github", "--format", "json"], &env);
    assert_exit(&out, 1);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    let findings = report["results"][0]["findings"].clone();
    assert_eq!(findings[0]["rule"], "APPROVAL-MISSING", "{findings}");
    assert_eq!(
        findings[0]["message"],
        "dev releases need 1 approval from reviewers other than the author; PR #1347 has 0 \
         (nobody); not counted: hubot (authored or pushed commits that no other reviewer approved)"
    );

    // A reviewer who authored a commit is covered once someone else approves after it.
    api.reset().await;
    api.happy(json!([
        review(81, "hubot", "APPROVED", &repo.head, "2026-11-26T10:00:00Z"),
        review(82, "mona", "APPROVED", &repo.head, "2026-11-26T11:00:00Z")
    ]))
    .await;
    api.commits(
        json!([
            commit_by(OLD_SHA, "octocat", "octocat"),
            commit_by(&repo.head, "hubot", "hubot")
        ]),
        1,
    )
    .await;
    let out = repo.run(
        &["check", "--github", "--format", "json"],
        &api.runner_env(),
    );
    assert_exit(&out, 0);
}

// ---- red team X2 (tests/it/hostile/redteam_ci.rs has the rest) ----

/// The metrics retention the loosened relgate.yaml of [`rules_loosened_with_a_release`]
/// allows (the default, and the base's, is 400 days).
const LOOSE_PII: &str = "pii:\n  max_retention_days: {metrics: 5000}\n";

/// A change that loosens relgate.yaml to `config` (which allows metrics 5000 days) in the same
/// commit as a release that keeps them 3000 days: (repo, base, head). By the base's rules the
/// release is blocked (PII-RETENTION); by the head's own it would pass.
fn rules_loosened_with_a_release(config: &str) -> (Repo, String, String) {
    assert!(config.contains(LOOSE_PII), "{config}");
    let repo = Repo::new("");
    let base = repo.head.clone();
    repo.file("relgate.yaml", config);
    repo.file(
        "releases/greet.yaml",
        &dev_release("greet").replace("retention_days: 30", "retention_days: 3000"),
    );
    let head = repo.commit("keep metrics longer");
    (repo, base, head)
}

/// `refs/remotes/origin/main` at `base`: the checkout fetched the default branch.
fn fetched_default_branch(repo: &Repo, base: &str) {
    let git = git2::Repository::open(repo.dir.path()).expect("open");
    git.reference(
        "refs/remotes/origin/main",
        git2::Oid::from_str(base).expect("oid"),
        true,
        "fetch",
    )
    .expect("origin/main");
}

/// The run blocked the release of [`rules_loosened_with_a_release`] and says the merge base's
/// rules decided.
#[track_caller]
fn assert_judged_by_the_bases_rules(out: &Output, base: &str, whose: &str) {
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{whose} own relgate.yaml let its release pass:\n{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("PII-RETENTION"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "relgate.yaml and policies of the merge base {}",
            &base[..12]
        )),
        "{stdout}"
    );
}

#[tokio::test]
async fn without_changed_a_pull_request_is_still_judged_by_its_bases_rules() {
    // The action's `changed-only: false` runs `relgate check --github` on the pull request's
    // checkout without `--changed`. A hostile pull request loosens relgate.yaml in the same
    // commit as its release: GitHub mode must judge it by the base's rules.
    let (repo, base, head) = rules_loosened_with_a_release(&format!("{CONFIG}{LOOSE_PII}"));
    let api = Api::start("", &head).await;
    api.happy(fixture("pulls-list-reviews.json")).await;
    teams(&api, &["octocat"]).await;
    let mut env = env_with_edited_event(&api, "event-real-base.json", |event| {
        event["pull_request"]["base"]["sha"] = base.clone().into();
    });
    set_env(&mut env, "GITHUB_SHA", &head);
    // Sanity: under --changed the base's rules block it.
    let out = repo.run(&["check", "--github", "--changed", "--base", &base], &env);
    assert_exit(&out, 1);
    let out = repo.run(&["check", "--github"], &env);
    assert_judged_by_the_bases_rules(&out, &base, "the head's");
}

#[tokio::test]
async fn a_push_to_another_branch_is_judged_by_the_default_branchs_rules() {
    // `on: push` for every branch: the push of the pull request's head commit must not post a
    // green `relgate` check on that head by the rules the same commit loosened.
    let (repo, base, head) = rules_loosened_with_a_release(&format!(
        "apiVersion: relgate.dev/v1\nkind: GateConfig\n{LOOSE_PII}"
    ));
    let api = Api::start("", &head).await;
    api.check_runs().await;
    let push = |ref_name: &str| {
        env_without_pull_request(
            &api,
            "push",
            json!({"ref": ref_name, "after": head, "repository": {"default_branch": "main", "full_name": "octocat/Hello-World"}}),
            &head,
        )
    };
    // A payload that names no default branch (GitHub's always do) decides nothing either.
    let bare = env_without_pull_request(
        &api,
        "push",
        json!({"ref": "refs/heads/feature", "after": head}),
        &head,
    );
    let out = repo.run(&["check", "--github", "--publish", "check-run"], &bare);
    assert_exit(&out, 2);
    assert!(
        text(&out.stderr).contains("names no repository.default_branch"),
        "{}",
        text(&out.stderr)
    );
    // The default branch is not in the checkout: nothing can be decided, nothing published.
    let out = repo.run(
        &["check", "--github", "--publish", "check-run"],
        &push("refs/heads/feature"),
    );
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("this run is on refs/heads/feature, not on the default branch main"),
        "{stderr}"
    );
    assert!(find(&api.requests().await, "POST", &api.repo_path("/check-runs")).is_empty());
    // Fetched (origin/main at the base), its rules decide.
    fetched_default_branch(&repo, &base);
    let out = repo.run(
        &["check", "--github", "--publish", "check-run"],
        &push("refs/heads/feature"),
    );
    assert_judged_by_the_bases_rules(&out, &base, "the branch's");
    let requests = api.requests().await;
    let runs = find(&requests, "POST", &api.repo_path("/check-runs"));
    assert_eq!(
        runs.last().expect("a check run").body["conclusion"],
        "failure"
    );
    // A tag can point at any commit, the pull request's head among them: a push of a tag is
    // judged by the default branch's rules too, never by the tagged commit's own.
    let out = repo.run(
        &["check", "--github", "--publish", "check-run"],
        &push("refs/tags/v1"),
    );
    assert_judged_by_the_bases_rules(&out, &base, "the tag's");
}

#[tokio::test]
async fn a_pull_request_named_by_flag_is_judged_by_the_default_branchs_rules() {
    // `--pull-request N` on an event that does not carry that pull request (a dispatch, a
    // comment): its base is not in the payload, and the checked-out head's own relgate.yaml is
    // what its author wrote. The default branch's rules judge it.
    let (repo, base, head) = rules_loosened_with_a_release(&format!(
        "apiVersion: relgate.dev/v1\nkind: GateConfig\n{LOOSE_PII}"
    ));
    fetched_default_branch(&repo, &base);
    let api = Api::start("", &head).await;
    api.happy(fixture("pulls-list-reviews.json")).await;
    teams(&api, &["octocat"]).await;
    let env = env_without_pull_request(
        &api,
        "workflow_dispatch",
        json!({"ref": "refs/heads/main", "inputs": {}, "repository": {"default_branch": "main"}}),
        &head,
    );
    let out = repo.run(
        &[
            "check",
            "--github",
            "--pull-request",
            "1347",
            "--publish",
            "check-run",
        ],
        &env,
    );
    assert_judged_by_the_bases_rules(&out, &base, "the pull request's");
    assert_eq!(posted_check(&api).await["conclusion"], "failure");
}

#[tokio::test]
async fn a_pull_request_retargeted_during_the_run_decides_nothing() {
    // The rules came from the event's base (master); the API now says the pull request is
    // into another branch. A decision by the old base's rules would be published as one about
    // the new base: the run stops, and the run of the `edited` event decides.
    let repo = Repo::with_files("", &[]);
    let api = Api::start("", &repo.head).await;
    pull_request_into(&api, &repo.head, "loose-rules").await;
    api.happy(json!([])).await;
    let out = repo.run(&["check", "--github"], &api.runner_env());
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("pull request #1347's base is now loose-rules, but this run was started for a pull request into master"),
        "{stderr}"
    );
    assert!(find(&api.requests().await, "POST", &api.repo_path("/check-runs")).is_empty());
}

#[tokio::test]
async fn a_merge_queue_run_is_judged_by_the_queue_bases_rules() {
    // A merge_group run checks the queue's merge commit, whose tree holds the pull request's
    // relgate.yaml. A pull request that loosens the rules (and drops the approvals) in the
    // same commit as its release must not pass the merge queue by its own rules:
    // `merge_group.base_sha` names the rules.
    let (repo, base, head) = rules_loosened_with_a_release(&format!(
        "apiVersion: relgate.dev/v1\nkind: GateConfig\n{LOOSE_PII}"
    ));
    let api = Api::start("", &head).await;
    api.check_runs().await;
    let env = env_without_pull_request(
        &api,
        "merge_group",
        json!({"action": "checks_requested", "merge_group": {"head_sha": head, "base_sha": base, "head_ref": "refs/heads/gh-readonly-queue/main/pr-1347-0000", "base_ref": "refs/heads/main"}}),
        &head,
    );
    let out = repo.run(&["check", "--github", "--publish", "check-run"], &env);
    assert_judged_by_the_bases_rules(&out, &base, "the queue's");
}

/// A server on 127.0.0.1 that answers every request with a 200 whose body arrives one byte
/// every 200 ms: each read is quick, the response never ends.
fn dripping_server() -> String {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                let _ = stream.read(&mut buf);
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n";
                if stream.write_all(head.as_bytes()).is_err() {
                    return;
                }
                for _ in 0..100_000 {
                    std::thread::sleep(Duration::from_millis(200));
                    if stream
                        .write_all(b" ")
                        .and_then(|()| stream.flush())
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    url
}

#[tokio::test]
async fn a_response_that_never_ends_stops_at_the_deadline() {
    let repo = Repo::new("");
    let api = Api::start("", &repo.head).await;
    let mut env = api.runner_env();
    set_env(&mut env, "GITHUB_API_URL", &dripping_server());
    env.push(("RELGATE_GITHUB_TIMEOUT_SECS".into(), "2".into()));
    env.push(("RELGATE_GITHUB_DEADLINE_SECS".into(), "3".into()));
    let started = Instant::now();
    let out = repo.run(&["check", "--github"], &env);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no complete response within the deadline of 3 s"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_response_larger_than_the_limit_is_not_read() {
    let repo = Repo::new("");
    let api = Api::start("", &repo.head).await;
    // 17 MiB of reviews (a real review repeated), past the 16 MiB relgate reads.
    let one = review(1, "alice", "APPROVED", &repo.head, "2026-11-22T09:00:00Z");
    let size = serde_json::to_vec(&one).expect("json").len();
    let reviews = Value::Array(vec![one; (17 << 20) / size + 1]);
    api.happy(reviews).await;
    let out = repo.run(&["check", "--github"], &api.runner_env());
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("larger than 16777216 bytes; not read"),
        "{stderr}"
    );
}
