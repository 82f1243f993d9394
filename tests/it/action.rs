//! Runs the composite action (`action.yml`) the way a GitHub runner does: its steps in order,
//! `${{ }}` expressions evaluated in `env:`, `if:` and `outputs:`, each `run:` script in bash
//! with the `GITHUB_*` variables a runner sets, a real `pull_request` event payload from the
//! fixtures, a temporary git repository with base and head commits, and a local GitHub API
//! server (wiremock on loopback) serving real response bodies. `uses:` steps (actions/cache) are
//! the runner's business and are skipped. Most tests give the action the test's relgate binary
//! through the `relgate-bin` input; the install tests run the real install step against a
//! release served on 127.0.0.1 (archives built from the test's binary, a table in a copy of
//! the action) and check that it refuses what does not match, naming why.

// A panic is how a test reports a broken fixture; unwrap keeps this harness readable.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/github");
const OWNER_REPO: &str = "Codertocat/Hello-World";

fn fixture(name: &str) -> Value {
    let path = Path::new(FIXTURES).join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// A small runner for composite actions
// ---------------------------------------------------------------------------------------------

/// The evaluation context of `${{ }}` expressions: `inputs`, `github`, `runner`, `steps`.
struct Expressions {
    context: Value,
}

impl Expressions {
    /// Value of a dotted context path; a missing value is the empty string, as on GitHub.
    fn lookup(&self, path: &str) -> String {
        let mut node = &self.context;
        for part in path.trim().split('.') {
            match node.get(part) {
                Some(next) => node = next,
                None => return String::new(),
            }
        }
        match node {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        }
    }

    /// One expression body: `path`, `'literal'`, `a == b` or `a != b`. That is all action.yml
    /// uses; anything else fails the test so the runner never guesses.
    fn eval(&self, expr: &str) -> String {
        let operand = |s: &str| -> String {
            let s = s.trim();
            if let Some(lit) = s.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
                lit.to_owned()
            } else {
                assert!(
                    s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
                    "unsupported expression operand `{s}`"
                );
                self.lookup(s)
            }
        };
        if let Some((a, b)) = expr.split_once("==") {
            return (operand(a) == operand(b)).to_string();
        }
        if let Some((a, b)) = expr.split_once("!=") {
            return (operand(a) != operand(b)).to_string();
        }
        operand(expr)
    }

    /// A string with `${{ … }}` templates substituted.
    fn expand(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${{") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find("}}").expect("unclosed ${{") + start;
            out.push_str(&self.eval(&rest[start + 3..end]));
            rest = &rest[end + 2..];
        }
        out.push_str(rest);
        out
    }

    /// An `if:` condition (bare expression or `${{ }}`): comparisons joined by `&&`.
    fn condition(&self, text: &str) -> bool {
        let text = text.trim();
        let body = text
            .strip_prefix("${{")
            .and_then(|t| t.strip_suffix("}}"))
            .unwrap_or(text);
        assert!(!body.contains("||"), "unsupported condition `{body}`");
        body.split("&&").all(|part| self.eval(part) == "true")
    }
}

/// `key=value` and `key<<DELIM … DELIM` lines of a `$GITHUB_OUTPUT` file.
fn parse_outputs(text: &str) -> BTreeMap<String, String> {
    let mut outputs = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((key, delim)) = line.split_once("<<") {
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                value.push(l);
            }
            outputs.insert(key.to_owned(), value.join("\n"));
        } else if let Some((key, value)) = line.split_once('=') {
            outputs.insert(key.to_owned(), value.to_owned());
        }
    }
    outputs
}

/// What running the action produced.
struct ActionRun {
    /// Exit status of each step that ran, by id or name.
    steps: Vec<(String, i32, String, String)>,
    /// The action's own `outputs:`.
    outputs: BTreeMap<String, String>,
    /// Exit status of the failing step, or 0.
    status: i32,
}

impl ActionRun {
    /// Every step's exit status and output, for assertion messages.
    fn log(&self) -> String {
        self.steps
            .iter()
            .map(|(id, code, out, err)| format!("--- {id} exit {code}\n{out}\n{err}\n"))
            .collect()
    }
}

/// [`run_action`] in `repo`'s work tree, off the async runtime (the steps block on processes
/// while the local API server answers them on the runtime).
async fn run_action_in(
    repo: &PullRequestRepo,
    inputs: BTreeMap<String, String>,
    github: Value,
    env: BTreeMap<String, String>,
) -> ActionRun {
    let runner_temp = repo.runner_temp.clone();
    let root = repo.root.clone();
    tokio::task::spawn_blocking(move || run_action(&inputs, github, &env, &root, &runner_temp))
        .await
        .unwrap()
}

/// Runs action.yml's steps in order. `env` is what the runner sets for every step. The action
/// is read from `github.action_path` (this repository unless a test copies it elsewhere).
fn run_action(
    inputs: &BTreeMap<String, String>,
    github: Value,
    env: &BTreeMap<String, String>,
    workdir: &Path,
    runner_temp: &Path,
) -> ActionRun {
    let action_path = PathBuf::from(
        github["action_path"]
            .as_str()
            .unwrap_or(env!("CARGO_MANIFEST_DIR")),
    );
    let action: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(action_path.join("action.yml")).unwrap())
            .expect("action.yml is YAML");
    assert_eq!(action["runs"]["using"].as_str(), Some("composite"));

    // Inputs: declared defaults, overridden by the workflow's `with:`; undeclared inputs are a
    // workflow error on GitHub and a test error here.
    let declared = action["inputs"].as_mapping().expect("inputs");
    for name in inputs.keys() {
        assert!(
            declared.contains_key(name.as_str()),
            "input {name} not declared"
        );
    }
    let mut exprs = Expressions {
        context: json!({
            "github": github,
            "runner": {
                "temp": runner_temp.to_str(),
                "os": env.get("RUNNER_OS").map_or("Linux", String::as_str),
                "arch": env.get("RUNNER_ARCH").map_or("X64", String::as_str),
            },
            "steps": {},
            "inputs": {},
        }),
    };
    let mut resolved = serde_json::Map::new();
    for (name, spec) in declared {
        let name = name.as_str().expect("input name");
        let value = match inputs.get(name) {
            Some(v) => v.clone(),
            None => exprs.expand(spec["default"].as_str().unwrap_or("")),
        };
        resolved.insert(name.to_owned(), Value::String(value));
    }
    exprs.context["inputs"] = Value::Object(resolved);

    let mut run = ActionRun {
        steps: Vec::new(),
        outputs: BTreeMap::new(),
        status: 0,
    };
    for (index, step) in action["runs"]["steps"]
        .as_sequence()
        .expect("steps")
        .iter()
        .enumerate()
    {
        let id = step["id"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("step{index}"));
        if let Some(cond) = step["if"].as_str() {
            if !exprs.condition(cond) {
                continue;
            }
        }
        if step.get("uses").is_some() {
            continue; // actions/cache: the runner's own machinery
        }
        let script = step["run"].as_str().expect("a step has run: or uses:");
        assert!(
            !script.contains("${{"),
            "step {id}: expressions inside run: are a script-injection hole; pass them via env:"
        );
        assert_eq!(step["shell"].as_str(), Some("bash"), "step {id}: shell");
        let output_file = runner_temp.join(format!("output-{index}"));
        std::fs::write(&output_file, "").unwrap();
        // $GITHUB_PATH: directories a step adds to PATH for the steps after it.
        let path_file = runner_temp.join("github-path");
        if !path_file.exists() {
            std::fs::write(&path_file, "").unwrap();
        }
        let mut search_path: Vec<String> = std::fs::read_to_string(&path_file)
            .unwrap()
            .lines()
            .rev()
            .map(str::to_owned)
            .collect();
        search_path.push(std::env::var("PATH").unwrap_or_default());
        let mut cmd = Command::new("bash");
        cmd.arg("--noprofile")
            .arg("--norc")
            .arg("-eo")
            .arg("pipefail")
            .arg("-c")
            .arg(script)
            .current_dir(workdir)
            .env_clear()
            .env("PATH", search_path.join(":"))
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .env("GITHUB_OUTPUT", &output_file)
            .env("GITHUB_PATH", &path_file)
            .env("GITHUB_ACTION_PATH", &action_path)
            .env("RUNNER_TEMP", runner_temp);
        for (k, v) in env {
            cmd.env(k, v);
        }
        if let Some(step_env) = step["env"].as_mapping() {
            for (k, v) in step_env {
                let value = match v {
                    serde_yaml::Value::String(s) => exprs.expand(s),
                    other => serde_yaml::to_string(other).unwrap().trim().to_owned(),
                };
                cmd.env(k.as_str().unwrap(), value);
            }
        }
        let out = cmd.output().expect("bash runs");
        let code = out.status.code().unwrap_or(-1);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let outputs = parse_outputs(&std::fs::read_to_string(&output_file).unwrap());
        exprs.context["steps"][&id] = json!({"outputs": outputs});
        run.steps.push((id.clone(), code, stdout, stderr));
        if code != 0 {
            run.status = code;
            break; // later steps have no `if: always()`
        }
    }
    for (name, spec) in action["outputs"].as_mapping().expect("outputs") {
        let value = exprs.expand(spec["value"].as_str().unwrap_or(""));
        run.outputs.insert(name.as_str().unwrap().to_owned(), value);
    }
    run
}

// ---------------------------------------------------------------------------------------------
// A git repository with a pull request
// ---------------------------------------------------------------------------------------------

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env("GIT_AUTHOR_DATE", "2026-11-20T10:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-11-20T10:00:00Z")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(from).unwrap();
        let dest = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// The demo repository as a PR: the base lacks support-answer.yaml (a passing production
/// release); the head adds it and edits handoff-summary.yaml (blocked: PII-RETENTION).
struct PullRequestRepo {
    _dir: tempfile::TempDir,
    root: PathBuf,
    runner_temp: PathBuf,
    base: String,
    head: String,
}

fn pull_request_repo() -> PullRequestRepo {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let runner_temp = dir.path().join("runner-temp");
    std::fs::create_dir_all(&runner_temp).unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo"),
        &root,
    );
    git(&root, &["init", "-q", "-b", "main"]);
    let added = root.join("releases/prompts/support-answer.yaml");
    let saved = std::fs::read(&added).unwrap();
    std::fs::remove_file(&added).unwrap();
    git(&root, &["add", "-A"]);
    git(&root, &["commit", "-q", "-m", "base"]);
    let base = git(&root, &["rev-parse", "HEAD"]);
    git(&root, &["checkout", "-q", "-b", "feature"]);
    std::fs::write(&added, saved).unwrap();
    let edited = root.join("releases/prompts/handoff-summary.yaml");
    let mut text = std::fs::read_to_string(&edited).unwrap();
    text.push_str("# reviewed retention with legal\n");
    std::fs::write(&edited, text).unwrap();
    git(&root, &["add", "-A"]);
    git(&root, &["commit", "-q", "-m", "release support-answer 17"]);
    let head = git(&root, &["rev-parse", "HEAD"]);
    PullRequestRepo {
        _dir: dir,
        root,
        runner_temp,
        base,
        head,
    }
}

/// The real `pull_request.opened` delivery, pointed at this repository's commits.
fn pull_request_event(repo: &PullRequestRepo, number: u64) -> Value {
    let mut event = fixture("webhook-pull_request.opened.payload.json");
    event["number"] = json!(number);
    event["pull_request"]["number"] = json!(number);
    event["pull_request"]["base"]["sha"] = json!(repo.base);
    event["pull_request"]["head"]["sha"] = json!(repo.head);
    event
}

/// Serves pull request `number` of `repo` (its head and base) on `server`, with its reviews
/// and commits, from the real response bodies: approved, and its commit by its author.
async fn serve_pull_request(server: &MockServer, repo: &PullRequestRepo, number: u64) {
    let base = format!("/repos/{OWNER_REPO}");
    let mut pr = fixture("pulls-get.json");
    pr["number"] = json!(number);
    pr["head"]["sha"] = json!(repo.head);
    pr["base"]["sha"] = json!(repo.base);
    Mock::given(method("GET"))
        .and(path(format!("{base}/pulls/{number}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(pr))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{base}/pulls/{number}/reviews")))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("pulls-list-reviews.json")))
        .mount(server)
        .await;
    // Who wrote the commits (two-person rule): the fixture's commit, by the author.
    Mock::given(method("GET"))
        .and(path(format!("{base}/pulls/{number}/commits")))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("pulls-list-commits.json")))
        .mount(server)
        .await;
}

/// The local GitHub API: PR, reviews, comments and check runs from the real response bodies.
async fn github_api(repo: &PullRequestRepo, number: u64) -> MockServer {
    let server = MockServer::start().await;
    let base = format!("/repos/{OWNER_REPO}");
    serve_pull_request(&server, repo, number).await;
    Mock::given(method("GET"))
        .and(path(format!("{base}/issues/{number}/comments")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("issues-list-comments.json")),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{base}/issues/{number}/comments")))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(fixture("issues-list-comments.json")[0].clone()),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{base}/check-runs")))
        .respond_with(ResponseTemplate::new(201).set_body_json(fixture("checks-create.json")))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path_regex(format!("^{base}/check-runs/[0-9]+$")))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("checks-create.json")))
        .mount(&server)
        .await;
    server
}

fn runner_env(
    repo: &PullRequestRepo,
    server: &MockServer,
    event_name: &str,
    event_path: &Path,
    sha: &str,
) -> BTreeMap<String, String> {
    let summary = repo.runner_temp.join("step-summary.md");
    std::fs::write(&summary, "").unwrap();
    [
        ("CI", "true".to_owned()),
        ("GITHUB_ACTIONS", "true".to_owned()),
        ("GITHUB_API_URL", server.uri()),
        ("GITHUB_SERVER_URL", "https://github.com".to_owned()),
        ("GITHUB_REPOSITORY", OWNER_REPO.to_owned()),
        ("GITHUB_EVENT_NAME", event_name.to_owned()),
        ("GITHUB_EVENT_PATH", event_path.to_str().unwrap().to_owned()),
        ("GITHUB_SHA", sha.to_owned()),
        ("GITHUB_REF", "refs/pull/2/merge".to_owned()),
        ("GITHUB_WORKFLOW", "relgate".to_owned()),
        ("GITHUB_RUN_ID", "4242".to_owned()),
        ("GITHUB_WORKSPACE", repo.root.to_str().unwrap().to_owned()),
        ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap().to_owned()),
        ("RELGATE_NOW", "2026-11-27T12:00:00Z".to_owned()),
        ("RELGATE_GITHUB_RETRY_BASE_MS", "1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn requests_to<'a>(requests: &'a [Request], verb: &str, suffix: &str) -> Vec<&'a Request> {
    requests
        .iter()
        .filter(|r| r.method.as_str() == verb && r.url.path().ends_with(suffix))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_request_run_checks_the_changed_manifests_and_publishes() {
    let repo = pull_request_repo();
    let number = 2;
    let server = github_api(&repo, number).await;
    let event = pull_request_event(&repo, number);
    let event_path = repo.runner_temp.join("event.json");
    std::fs::write(&event_path, serde_json::to_vec(&event).unwrap()).unwrap();
    let env = runner_env(&repo, &server, "pull_request", &event_path, &repo.head);
    let github = json!({
        "event_name": "pull_request",
        "event": event,
        "action_path": env!("CARGO_MANIFEST_DIR"),
        "token": "ghs_test_token",
        "repository": OWNER_REPO,
    });
    let inputs: BTreeMap<String, String> = [
        ("relgate-bin", crate::support::relgate_bin_str()),
        ("formats", "sarif"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let run = run_action_in(&repo, inputs, github, env).await;
    let log = run.log();

    // Blocked by policy: the gate step fails the job with exit 1, the outputs are still set.
    assert_eq!(run.status, 1, "{log}");
    assert_eq!(run.outputs["decision"], "fail", "{log}");
    assert_eq!(run.outputs["manifests"], "2", "{log}");
    assert_eq!(run.outputs["failed"], "2", "{log}");
    assert_eq!(run.outputs["passed"], "0", "{log}");
    let report_path = PathBuf::from(&run.outputs["report"]);
    let report: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let mut files: Vec<&str> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["file"].as_str().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "releases/prompts/handoff-summary.yaml",
            "releases/prompts/support-answer.yaml"
        ]
    );
    // The fixture's only review is octocat approving, and octocat authored the PR: a
    // self-approval that does not count, so support-answer (production) lacks approvals.
    let rules: Vec<String> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["findings"].as_array().unwrap().iter())
        .map(|f| f["rule"].as_str().unwrap().to_owned())
        .collect();
    for rule in ["PII-RETENTION", "APPROVAL-SELF", "APPROVAL-MISSING"] {
        assert!(
            rules.iter().any(|r| r == rule),
            "{rule} in {rules:?}\n{log}"
        );
    }
    assert_eq!(report["approvals_evaluated"], json!(true));
    assert!(repo.runner_temp.join("relgate.sarif").is_file(), "{log}");

    // The job summary holds the markdown verdict.
    let summary = std::fs::read_to_string(repo.runner_temp.join("step-summary.md")).unwrap();
    assert!(summary.contains("support-answer"), "{summary}");
    assert!(summary.contains("PII-RETENTION"), "{summary}");

    // API calls: the PR and its reviews read, one comment posted with the marker, one check
    // run on the PR's head commit with annotations on the manifests' lines.
    let requests = server.received_requests().await.unwrap();
    for r in &requests {
        let auth = r
            .headers
            .get("authorization")
            .map(|v| v.to_str().unwrap_or(""));
        assert!(
            auth.is_some_and(|a| a.ends_with("ghs_test_token")),
            "{} {} without the token",
            r.method,
            r.url
        );
    }
    assert_eq!(
        requests_to(&requests, "GET", &format!("/pulls/{number}")).len(),
        1
    );
    assert!(!requests_to(&requests, "GET", "/reviews").is_empty());
    let posted = requests_to(&requests, "POST", "/comments");
    assert_eq!(posted.len(), 1, "one sticky comment");
    assert!(requests_to(&requests, "PATCH", "/comments").is_empty() || posted.is_empty());
    let comment: Value = serde_json::from_slice(&posted[0].body).unwrap();
    let body = comment["body"].as_str().unwrap();
    assert!(body.starts_with("<!-- relgate-report"), "{body}");
    // Each finding links to its line in the PR's head commit.
    let link = format!(
        "](https://github.com/{OWNER_REPO}/blob/{}/releases/prompts/handoff-summary.yaml#L",
        repo.head
    );
    assert!(body.contains(&link), "{link} in {body}");
    let checks = requests_to(&requests, "POST", "/check-runs");
    assert_eq!(checks.len(), 1);
    let check: Value = serde_json::from_slice(&checks[0].body).unwrap();
    assert_eq!(check["head_sha"], json!(repo.head));
    assert_eq!(check["conclusion"], json!("failure"));
    let annotations = check["output"]["annotations"].as_array().unwrap();
    let retention = annotations
        .iter()
        .find(|a| {
            a["title"]
                .as_str()
                .is_some_and(|t| t.contains("PII-RETENTION"))
        })
        .expect("a PII-RETENTION annotation");
    assert_eq!(
        retention["path"],
        json!("releases/prompts/handoff-summary.yaml")
    );
    assert!(retention["start_line"].as_u64().unwrap() > 1);
    assert_eq!(retention["annotation_level"], json!("failure"));
}

/// On a push to the default branch in record mode: the changed manifests are decided and
/// recorded with the merged pull request's facts, the ledger branch is pushed to origin, and
/// the pushed ledger verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_run_records_and_pushes_the_ledger() {
    let rig = RecordRig::new().await;
    let repo = &rig.repo;
    // The pull request is merged (fast-forward) and main is pushed: the run's event.
    git(&repo.root, &["merge", "-q", "--ff-only", "feature"]);
    git(&repo.root, &["push", "-q", "origin", "main"]);
    // GitHub: the merged pull request behind the pushed commit. A fast-forward merge: its
    // `merge_commit_sha` is not the pushed commit, so relgate takes the merged pull request
    // GitHub lists for the commit.
    let mut pr = fixture("pulls-get.json");
    pr["head"]["sha"] = json!(repo.head);
    pr["base"]["sha"] = json!(repo.base);
    Mock::given(method("GET"))
        .and(path(format!(
            "/repos/{OWNER_REPO}/commits/{}/pulls",
            repo.head
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([pr])))
        .mount(&rig.server)
        .await;
    // On the branch, as actions/checkout leaves a push run.
    let run = rig.record_job(&repo.base, &repo.head).await;
    let log = run.log();

    // handoff-summary is blocked, so the job fails; the denial is recorded and pushed anyway.
    assert_eq!(run.status, 1, "{log}");
    assert_eq!(run.outputs["decision"], "fail", "{log}");
    assert_eq!(run.outputs["manifests"], "2", "{log}");
    let pushed = git(&rig.origin, &["rev-parse", "refs/heads/relgate/records"]);
    assert_eq!(pushed, git(&repo.root, &["rev-parse", "relgate/records"]));

    // A fresh clone of origin verifies the ledger with the trusted public key.
    let clone = rig.auditor_clone("auditor");
    let (code, verified) = rig.verify(&clone);
    assert_eq!(code, Some(0), "{verified}");
    assert_eq!(verified["records"], json!(2));

    // The records carry the merged pull request: number, author and who approved.
    let records = records_by_manifest(&clone);
    let change = &records["releases/prompts/support-answer.yaml"];
    assert_eq!(change["pull_request"]["number"], json!(1347), "{change}");
    assert_eq!(
        change["pull_request"]["author"],
        json!("octocat"),
        "{change}"
    );
    assert_eq!(change["git"]["commit"], json!(repo.head), "{change}");
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Record mode: what the ledger says about pushes that carry several merges, runs lost between
// pushes, and a ledger branch configured elsewhere.
// ---------------------------------------------------------------------------------------------

/// The pull-request repository with `origin` (main at the base) and a signing key, and a local
/// GitHub API that knows the merged pull request #1347 of `repo.head` (approved by its
/// reviews fixture).
struct RecordRig {
    repo: PullRequestRepo,
    origin: PathBuf,
    private_key: String,
    trusted: PathBuf,
    server: MockServer,
}

impl RecordRig {
    async fn new() -> RecordRig {
        let repo = pull_request_repo();
        let origin = repo.runner_temp.join("origin.git");
        git(
            &repo.runner_temp,
            &["init", "-q", "--bare", origin.to_str().unwrap()],
        );
        git(
            &repo.root,
            &["remote", "add", "origin", origin.to_str().unwrap()],
        );
        git(
            &repo.root,
            &[
                "push",
                "-q",
                "origin",
                &format!("{}:refs/heads/main", repo.base),
            ],
        );
        git(&repo.root, &["checkout", "-q", "main"]);
        let keys = repo.runner_temp.join("keys");
        let keygen = Command::new(crate::support::relgate_bin())
            .args(["keygen", "--out", keys.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(keygen.status.success());
        let private_key = std::fs::read_to_string(keys.join("relgate-signing.pem")).unwrap();
        let trusted = repo.runner_temp.join("trusted");
        std::fs::create_dir_all(&trusted).unwrap();
        std::fs::copy(keys.join("relgate-signing.pub.pem"), trusted.join("ci.pem")).unwrap();
        let server = MockServer::start().await;
        serve_pull_request(&server, &repo, 1347).await;
        RecordRig {
            repo,
            origin,
            private_key,
            trusted,
            server,
        }
    }

    /// GitHub says `sha` was merged as pull request #1347 (`Some`) or came without one.
    async fn commit_pulls(&self, sha: &str, merged_1347: bool) {
        let mut pr = fixture("pulls-get.json");
        pr["merge_commit_sha"] = json!(sha);
        let body = if merged_1347 { json!([pr]) } else { json!([]) };
        Mock::given(method("GET"))
            .and(path(format!("/repos/{OWNER_REPO}/commits/{sha}/pulls")))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&self.server)
            .await;
    }

    /// Appends a line to a file of the work tree and commits it on main.
    fn commit_edit(&self, file: &str, message: &str) -> String {
        let target = self.repo.root.join(file);
        let mut text = std::fs::read_to_string(&target).unwrap();
        text.push_str(&format!("# {message}\n"));
        std::fs::write(&target, text).unwrap();
        git(&self.repo.root, &["commit", "-q", "-am", message]);
        git(&self.repo.root, &["rev-parse", "HEAD"])
    }

    /// The record job of a push of main from `before` to `after` (checked out).
    async fn run(&self, before: &str, after: &str) -> ActionRun {
        git(&self.repo.root, &["push", "-q", "origin", "main"]);
        git(&self.repo.root, &["checkout", "-q", after]);
        let run = self.record_job(before, after).await;
        git(&self.repo.root, &["checkout", "-q", "main"]);
        run
    }

    /// The record job of a push of main from `before` to `after`, in the work tree as it is.
    async fn record_job(&self, before: &str, after: &str) -> ActionRun {
        let event = json!({
            "ref": "refs/heads/main",
            "before": before,
            "after": after,
            "repository": {"full_name": OWNER_REPO, "default_branch": "main"},
        });
        let event_path = self.repo.runner_temp.join("push.json");
        std::fs::write(&event_path, serde_json::to_vec(&event).unwrap()).unwrap();
        let mut env = runner_env(&self.repo, &self.server, "push", &event_path, after);
        env.insert("GITHUB_REF".into(), "refs/heads/main".into());
        let github = json!({
            "event_name": "push",
            "event": event,
            "action_path": env!("CARGO_MANIFEST_DIR"),
            "token": "ghs_test_token",
            "repository": OWNER_REPO,
        });
        let inputs: BTreeMap<String, String> = [
            ("relgate-bin", crate::support::relgate_bin_str().to_owned()),
            ("mode", "record".to_owned()),
            ("signing-key", self.private_key.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        run_action_in(&self.repo, inputs, github, env).await
    }

    /// One push of main carrying two commits: a direct, unreviewed edit of `file`, then the
    /// merge of the approved pull request #1347 (`feature`). GitHub knows the merge as #1347's
    /// and the edit as coming without a pull request. Returns the unreviewed commit and the
    /// record job's run, which blocks (exit 1).
    async fn push_an_unreviewed_edit_with_the_merge(
        &self,
        file: &str,
        message: &str,
    ) -> (String, ActionRun) {
        let base = self.repo.base.clone();
        let unreviewed = self.commit_edit(file, message);
        git(
            &self.repo.root,
            &[
                "merge",
                "-q",
                "--no-ff",
                "-m",
                "Merge pull request #1347",
                "feature",
            ],
        );
        let head = git(&self.repo.root, &["rev-parse", "HEAD"]);
        self.commit_pulls(&head, true).await;
        self.commit_pulls(&unreviewed, false).await;
        let run = self.run(&base, &head).await;
        assert_eq!(run.status, 1, "{}", run.log());
        (unreviewed, run)
    }

    /// The first push: main fast-forwarded to the pull request's head, merged as #1347, and
    /// recorded (it blocks: exit 1). Returns the pushed head.
    async fn push_the_pull_request(&self) -> String {
        let base = self.repo.base.clone();
        git(&self.repo.root, &["merge", "-q", "--ff-only", "feature"]);
        let first = self.repo.head.clone();
        self.commit_pulls(&first, true).await;
        assert_eq!(self.run(&base, &first).await.status, 1);
        first
    }

    /// A fresh clone of origin with the ledger, as an auditor has it.
    fn auditor_clone(&self, name: &str) -> PathBuf {
        let clone = self.repo.runner_temp.join(name);
        git(
            &self.repo.runner_temp,
            &[
                "clone",
                "-q",
                self.origin.to_str().unwrap(),
                clone.to_str().unwrap(),
            ],
        );
        git(
            &clone,
            &["fetch", "-q", "origin", "relgate/records:relgate/records"],
        );
        clone
    }

    /// `relgate verify --format json` in `dir`: (exit code, report).
    fn verify(&self, dir: &Path) -> (Option<i32>, Value) {
        let out = Command::new(crate::support::relgate_bin())
            .args([
                "verify",
                "--keys",
                self.trusted.to_str().unwrap(),
                "--format",
                "json",
            ])
            .current_dir(dir)
            .output()
            .unwrap();
        let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("verify json: {e}\n{}", String::from_utf8_lossy(&out.stderr))
        });
        (out.status.code(), report)
    }
}

/// The change records of the ledger in `dir`, by manifest path (the newest per path).
fn records_by_manifest(dir: &Path) -> BTreeMap<String, Value> {
    statements_by_manifest(dir)
        .into_iter()
        .map(|(path, statement)| {
            (
                path,
                statement["predicate"]["https://relgate.dev/change/v1"].clone(),
            )
        })
        .collect()
}

/// Each record's in-toto Statement on the ledger branch of `dir`, by manifest path.
fn statements_by_manifest(dir: &Path) -> BTreeMap<String, Value> {
    let listing = git(dir, &["ls-tree", "-r", "--name-only", "relgate/records"]);
    let mut out = BTreeMap::new();
    for file in listing.lines().filter(|l| l.ends_with(".dsse.json")) {
        let envelope: Value =
            serde_json::from_str(&git(dir, &["show", &format!("relgate/records:{file}")])).unwrap();
        let payload = base64_decode(envelope["payload"].as_str().unwrap());
        let statement: Value = serde_json::from_slice(&payload).unwrap();
        let path = statement["predicate"]["https://relgate.dev/change/v1"]["manifest"]["path"]
            .as_str()
            .unwrap()
            .to_owned();
        out.insert(path, statement);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_of_several_merges_records_each_manifest_with_its_own_pull_request() {
    let rig = RecordRig::new().await;
    // Pushed at once: a direct, unreviewed change of greet-user, then the merge of the
    // approved pull request #1347 (support-answer and handoff-summary).
    let (unreviewed, run) = rig
        .push_an_unreviewed_edit_with_the_merge(
            "releases/prompts/greet-user.yaml",
            "greet-user without review",
        )
        .await;
    let log = run.log();
    let clone = rig.auditor_clone("auditor");
    let (code, report) = rig.verify(&clone);
    assert_eq!(code, Some(0), "{report}");
    let records = records_by_manifest(&clone);
    let greet = &records["releases/prompts/greet-user.yaml"];
    assert_eq!(greet["pull_request"], Value::Null, "{greet}");
    assert_eq!(greet["changed_in"], json!([unreviewed]), "{greet}");
    let support = &records["releases/prompts/support-answer.yaml"];
    assert_eq!(support["pull_request"]["number"], json!(1347), "{support}");
    assert!(
        log.contains("recorded without the pull request of the head"),
        "{log}"
    );
}

/// The verification result (`PASSED`/`FAILED`) of each manifest's record.
fn results_by_manifest(dir: &Path) -> BTreeMap<String, String> {
    statements_by_manifest(dir)
        .into_iter()
        .map(|(path, statement)| {
            let result = statement["predicate"]["verificationResult"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (path, result)
        })
        .collect()
}

/// A production release changed without review, pushed together with the merge of an approved
/// pull request, is not *decided* with that pull request's approvals either: it needs two, has
/// none that are its own, and is recorded FAILED (APPROVAL-MISSING), not signed as approved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_push_does_not_lend_approvals_to_an_unreviewed_production_release() {
    let rig = RecordRig::new().await;
    let (_, run) = rig
        .push_an_unreviewed_edit_with_the_merge(
            "releases/models/search-ranker.yaml",
            "search-ranker without review",
        )
        .await;
    let log = run.log();
    assert!(log.contains("APPROVAL-MISSING"), "{log}");
    assert!(
        log.contains("was last changed by a commit of this push other than"),
        "{log}"
    );
    let clone = rig.auditor_clone("auditor");
    let results = results_by_manifest(&clone);
    assert_eq!(
        results["releases/models/search-ranker.yaml"], "FAILED",
        "{results:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_after_a_lost_one_records_the_releases_in_between() {
    let rig = RecordRig::new().await;
    rig.push_the_pull_request().await;
    // The next push's run is cancelled by the concurrency group (or fails): nothing recorded.
    let lost = rig.commit_edit("releases/prompts/greet-user.yaml", "greet-user 2");
    git(&rig.repo.root, &["push", "-q", "origin", "main"]);
    // The run after it sees `before` = the lost push's head.
    let next = rig.commit_edit("releases/prompts/refund-helper.yaml", "refund-helper 2");
    rig.commit_pulls(&next, false).await;
    let run = rig.run(&lost, &next).await;
    let log = run.log();
    assert!(run.status == 0 || run.status == 1, "{log}");
    let clone = rig.auditor_clone("auditor");
    let (code, report) = rig.verify(&clone);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["completeness"]["unrecorded"], json!([]), "{report}");
    let records = records_by_manifest(&clone);
    let greet = &records["releases/prompts/greet-user.yaml"];
    assert_eq!(greet["changed_in"], json!([lost]), "{greet}");
    assert_eq!(greet["git"]["commit"], json!(next), "{greet}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_branch_in_relgate_yaml_fails_the_step_instead_of_losing_records() {
    let rig = RecordRig::new().await;
    let first = rig.push_the_pull_request().await;
    let first_records = git(&rig.origin, &["rev-parse", "refs/heads/relgate/records"]);
    // relgate.yaml now names another ledger branch; the action still pushes relgate/records.
    let config = rig.repo.root.join("relgate.yaml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\nledger:\n  branch: audit/records\n");
    std::fs::write(&config, text).unwrap();
    git(&rig.repo.root, &["commit", "-q", "-am", "ledger elsewhere"]);
    let next = git(&rig.repo.root, &["rev-parse", "HEAD"]);
    rig.commit_pulls(&next, false).await;
    let run = rig.run(&first, &next).await;
    let log = run.log();
    // The push that changes relgate.yaml is decided, and recorded, under the rules it was
    // merged into (the merge base's, docs/changed.md): its records still land on the branch the
    // action pushes, and the report says the gate's own files changed.
    assert!(run.status == 0 || run.status == 1, "{log}");
    assert!(log.contains("GATE-CONFIG-CHANGED"), "{log}");
    let published = git(&rig.origin, &["rev-parse", "refs/heads/relgate/records"]);
    assert_ne!(published, first_records, "{log}");
    // From the next push on the new `ledger:` is in force: it disagrees with the branch the
    // action pushes, and the step fails instead of appending where nobody looks.
    let third = rig.commit_edit("releases/prompts/refund-helper.yaml", "refund-helper 2");
    rig.commit_pulls(&third, false).await;
    let run = rig.run(&next, &third).await;
    let log = run.log();
    assert_eq!(run.status, 2, "{log}");
    assert!(
        log.contains("--ledger relgate/records disagrees with ledger.branch audit/records"),
        "{log}"
    );
    assert_eq!(
        git(&rig.origin, &["rev-parse", "refs/heads/relgate/records"]),
        published
    );
}

// ---------------------------------------------------------------------------------------------
// The install step: a release served on loopback, checked against the action's table
// ---------------------------------------------------------------------------------------------

use crate::support::release_server::ReleaseServer;
use sha2::{Digest as _, Sha256};

const TARGET: &str = "x86_64-unknown-linux-musl";
const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

fn archive_name() -> String {
    format!("relgate-{VERSION}-{TARGET}.tar.gz")
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The Linux x86_64 release archive as release.yml lays it out (`relgate-VERSION-TARGET/` with
/// the binary and README), holding a stripped copy of the test's relgate. Built once per test
/// run into the target's tmp dir and shared by the tests.
fn release_archive() -> &'static [u8] {
    static ARCHIVE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    ARCHIVE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("action-release-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let stage = dir.join(format!("relgate-{VERSION}-{TARGET}"));
        std::fs::create_dir_all(&stage).unwrap();
        let bin = stage.join("relgate");
        // Stripped: the debug binary is ~300 MB of debug info the install does not need.
        let stripped = Command::new("strip")
            .arg("-o")
            .arg(&bin)
            .arg(crate::support::relgate_bin())
            .status()
            .is_ok_and(|s| s.success());
        if !stripped {
            std::fs::copy(crate::support::relgate_bin(), &bin).unwrap();
        }
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"),
            stage.join("README.md"),
        )
        .unwrap();
        let archive = dir.join(archive_name());
        let status = Command::new("tar")
            .arg("-C")
            .arg(&dir)
            .arg("--use-compress-program=gzip -1")
            .arg("-cf")
            .arg(&archive)
            .arg(stage.file_name().unwrap())
            .status()
            .unwrap();
        assert!(status.success(), "tar failed");
        let bytes = std::fs::read(&archive).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        bytes
    })
}

/// A copy of the action (action.yml and a release.sha256 table) in a temp dir, as a runner
/// checks out `relgate/relgate@REF`.
struct ActionCopy {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn action_with_table(table: &str) -> ActionCopy {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("action");
    std::fs::create_dir_all(&path).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("action.yml"),
        path.join("action.yml"),
    )
    .unwrap();
    std::fs::write(path.join("release.sha256"), table).unwrap();
    ActionCopy { _dir: dir, path }
}

/// The table a release commits: this repository's release.sha256 (its comments) followed by
/// `sha256sum` lines.
fn table_with(lines: &[(String, String)]) -> String {
    let mut table =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("release.sha256"))
            .unwrap();
    for (sha, name) in lines {
        table.push_str(&format!("{sha}  {name}\n"));
    }
    table
}

/// A release server holding `archive` at the path the action asks for.
fn serve_release(archive: Vec<u8>, truncate: bool) -> ReleaseServer {
    let path = format!("/{VERSION}/{}", archive_name());
    let mut files = BTreeMap::new();
    files.insert(path.clone(), archive);
    ReleaseServer::start(files, truncate.then_some(path))
}

/// Runs the action on the demo pull request with the install step (no `relgate-bin`) from
/// `action`, downloading from `release_url`.
async fn run_install(
    action: &ActionCopy,
    release_url: &str,
    extra_inputs: &[(&str, &str)],
    extra_env: &[(&str, &str)],
    action_ref: &str,
) -> (ActionRun, PullRequestRepo) {
    let repo = pull_request_repo();
    let number = 2;
    let server = github_api(&repo, number).await;
    let event = pull_request_event(&repo, number);
    let event_path = repo.runner_temp.join("event.json");
    std::fs::write(&event_path, serde_json::to_vec(&event).unwrap()).unwrap();
    let mut env = runner_env(&repo, &server, "pull_request", &event_path, &repo.head);
    for (k, v) in extra_env {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    let github = json!({
        "event_name": "pull_request",
        "event": event,
        "action_path": action.path.to_str().unwrap(),
        "action_repository": "relgate/relgate",
        "action_ref": action_ref,
        "server_url": "https://github.com",
        "token": "ghs_test_token",
        "repository": OWNER_REPO,
    });
    let mut inputs: BTreeMap<String, String> = [("release-url", release_url), ("publish", "")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    for (k, v) in extra_inputs {
        inputs.insert((*k).to_owned(), (*v).to_owned());
    }
    let run = run_action_in(&repo, inputs, github, env).await;
    (run, repo)
}

/// The install step's exit status and its log.
fn install_step(run: &ActionRun) -> (i32, String) {
    let (_, code, out, err) = run
        .steps
        .iter()
        .find(|(id, ..)| id == "install")
        .unwrap_or_else(|| panic!("the install step did not run:\n{}", run.log()));
    (*code, format!("{out}{err}"))
}

/// The install step failed (exit 2) with `why` in its `::error` line, and nothing after it ran.
fn assert_refused(run: &ActionRun, why: &str) {
    let (code, log) = install_step(run);
    assert_eq!(code, 2, "{}", run.log());
    let error = log
        .lines()
        .find(|l| l.starts_with("::error title=relgate install::"))
        .unwrap_or_else(|| panic!("no ::error line:\n{log}"));
    assert!(error.contains(why), "`{why}` not in `{error}`");
    assert_eq!(run.status, 2, "{}", run.log());
    assert_eq!(run.steps.last().unwrap().0, "install", "{}", run.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_downloads_the_release_checks_its_sha256_and_runs_it() {
    let archive = release_archive().to_vec();
    let action = action_with_table(&table_with(&[(sha256_hex(&archive), archive_name())]));
    let release = serve_release(archive, false);
    let started = std::time::Instant::now();
    let (run, repo) = run_install(&action, &release.url, &[], &[], "v1").await;
    let (code, log) = install_step(&run);
    eprintln!(
        "action run with install from the loopback release: {:?} (install + gate)",
        started.elapsed()
    );
    assert_eq!(code, 0, "{}", run.log());
    assert!(log.contains("matches the action's release.sha256"), "{log}");
    assert!(
        log.contains(concat!(
            "installed relgate ",
            env!("CARGO_PKG_VERSION"),
            " ("
        )),
        "{log}"
    );
    assert_eq!(
        release.requests(),
        [format!("/{VERSION}/{}", archive_name())]
    );
    // The installed binary is on PATH for later steps and ran the gate: the demo PR is blocked.
    let path_file = std::fs::read_to_string(repo.runner_temp.join("github-path")).unwrap();
    let bindir = Path::new(path_file.trim());
    assert!(bindir.starts_with(&repo.runner_temp), "{path_file}");
    assert!(bindir.join("relgate").is_file());
    assert_eq!(run.status, 1, "{}", run.log());
    assert_eq!(run.outputs["decision"], "fail", "{}", run.log());
    assert_eq!(run.outputs["manifests"], "2", "{}", run.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_refuses_a_tampered_archive() {
    let archive = release_archive().to_vec();
    let expected = sha256_hex(&archive);
    let mut tampered = archive.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x01;
    let action = action_with_table(&table_with(&[(expected.clone(), archive_name())]));
    let release = serve_release(tampered.clone(), false);
    let (run, repo) = run_install(&action, &release.url, &[], &[], "v1").await;
    assert_refused(
        &run,
        &format!(
            "checksum mismatch for {}: the action's release.sha256 says {expected}, the download is {}",
            archive_name(),
            sha256_hex(&tampered)
        ),
    );
    // Nothing was unpacked or put on PATH.
    let path_file = std::fs::read_to_string(repo.runner_temp.join("github-path")).unwrap();
    assert_eq!(path_file, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_refuses_an_archive_the_table_does_not_name() {
    let archive = release_archive().to_vec();
    let wrong = sha256_hex(b"another build");
    let action = action_with_table(&table_with(&[(wrong.clone(), archive_name())]));
    let release = serve_release(archive.clone(), false);
    let (run, _repo) = run_install(&action, &release.url, &[], &[], "v1").await;
    assert_refused(
        &run,
        &format!(
            "the action's release.sha256 says {wrong}, the download is {}",
            sha256_hex(&archive)
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_names_a_missing_asset() {
    let archive = release_archive().to_vec();
    let action = action_with_table(&table_with(&[(sha256_hex(&archive), archive_name())]));
    let release = ReleaseServer::start(BTreeMap::new(), None);
    let (run, _repo) = run_install(&action, &release.url, &[], &[], "v1").await;
    assert_refused(
        &run,
        &format!(
            "could not download {}/{VERSION}/{}: the server refused it (curl: (22) The requested URL returned error: 404)",
            release.url,
            archive_name()
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_names_a_truncated_download() {
    let archive = release_archive().to_vec();
    let action = action_with_table(&table_with(&[(sha256_hex(&archive), archive_name())]));
    let release = serve_release(archive, true);
    let (run, _repo) = run_install(&action, &release.url, &[], &[], "v1").await;
    assert_refused(
        &run,
        "the download was cut short: the archive is truncated (curl: (18)",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_names_a_server_that_is_down() {
    let archive = release_archive().to_vec();
    let action = action_with_table(&table_with(&[(sha256_hex(&archive), archive_name())]));
    // A port that was just free: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let (run, _repo) = run_install(&action, &url, &[], &[], "v1").await;
    assert_refused(&run, "could not connect to the server (curl: (7)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_refuses_what_it_cannot_verify_before_downloading() {
    let archive = release_archive().to_vec();
    let table = table_with(&[(sha256_hex(&archive), archive_name())]);
    let release = serve_release(archive, false);
    let action = action_with_table(&table);
    // (action inputs, runner environment, the action's ref, the reason the step must name)
    type Case<'a> = (
        &'a [(&'a str, &'a str)],
        &'a [(&'a str, &'a str)],
        &'a str,
        String,
    );
    let cases: [Case; 6] = [
        // A runner relgate publishes no build for.
        (
            &[],
            &[("RUNNER_ARCH", "ARM")],
            "v1",
            "no relgate release is built for Linux ARM".to_owned(),
        ),
        // The action used at a release tag whose table names another release.
        (
            &[],
            &[],
            "v9.9.9",
            format!("the action is used at v9.9.9 but its release.sha256 names {VERSION}"),
        ),
        // Plain http to anything but 127.0.0.1; userinfo must not pass for a loopback host.
        (
            &[("release-url", "http://127.0.0.1:1@example.com")],
            &[],
            "v1",
            "release-url must be https:// (http:// only for 127.0.0.1), not 'http://127.0.0.1:1@example.com'".to_owned(),
        ),
        (
            &[("release-url", "http://example.com/releases")],
            &[],
            "v1",
            "release-url must be https://".to_owned(),
        ),
        (
            &[("install", "latest")],
            &[],
            "v1",
            "install must be release or source, not 'latest'".to_owned(),
        ),
        (
            &[("verify-provenance", "maybe")],
            &[],
            "v1",
            "verify-provenance must be auto, required or off, not 'maybe'".to_owned(),
        ),
    ];
    for (inputs, env, action_ref, why) in cases {
        let (run, _repo) = run_install(&action, &release.url, inputs, env, action_ref).await;
        assert_refused(&run, &why);
    }
    // Only the bad verify-provenance value got as far as downloading.
    assert_eq!(release.requests().len(), 1, "{:?}", release.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_from_an_unreleased_ref_fails_and_names_the_alternatives() {
    // This repository's own table: a commit that is not a release lists no archive.
    let own = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("release.sha256"))
        .unwrap();
    let action = action_with_table(&own);
    let release = ReleaseServer::start(BTreeMap::new(), None);
    let (run, _repo) = run_install(&action, &release.url, &[], &[], "main").await;
    assert_refused(
        &run,
        "release.sha256 of this action ref (main) lists no archive for x86_64-unknown-linux-musl: the ref is not a relgate release (a branch or an unreleased commit); use a release tag or commit, install: source, or relgate-bin",
    );
    assert!(release.requests().is_empty());
    // Two lines for one platform are ambiguous, not "the first one".
    let archive = release_archive().to_vec();
    let sha = sha256_hex(&archive);
    let action = action_with_table(&table_with(&[
        (sha.clone(), archive_name()),
        (sha, format!("relgate-v0.0.9-{TARGET}.tar.gz")),
    ]));
    let (run, _repo) = run_install(&action, &release.url, &[], &[], "main").await;
    assert_refused(
        &run,
        "release.sha256 lists 2 archives for x86_64-unknown-linux-musl; expected exactly one",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_with_required_provenance_needs_the_github_cli() {
    if Command::new("gh").arg("--version").output().is_ok() {
        eprintln!("skipped: gh is installed here, so the missing-gh path cannot be reached");
        return;
    }
    let archive = release_archive().to_vec();
    let action = action_with_table(&table_with(&[(sha256_hex(&archive), archive_name())]));
    let release = serve_release(archive, false);
    let (run, _repo) = run_install(
        &action,
        &release.url,
        &[("verify-provenance", "required")],
        &[],
        "v1",
    )
    .await;
    assert_refused(
        &run,
        "verify-provenance: required, but the GitHub CLI (gh) is not on PATH",
    );
}

// ---------------------------------------------------------------------------------------------
// The install step on every platform a release is built for
// ---------------------------------------------------------------------------------------------

/// A platform release.yml builds for, as the install step sees it: the runner's `runner.os`
/// and `runner.arch`, the target in the archive's name, the archive type and the executable.
struct Platform {
    os: &'static str,
    arch: &'static str,
    target: &'static str,
    ext: &'static str,
    exe: &'static str,
}

impl Platform {
    fn archive_name(&self) -> String {
        format!("relgate-{VERSION}-{}.{}", self.target, self.ext)
    }

    /// The runner environment that selects this platform.
    fn env(&self) -> [(&'static str, &'static str); 2] {
        [("RUNNER_OS", self.os), ("RUNNER_ARCH", self.arch)]
    }
}

/// release.yml's build matrix.
const PLATFORMS: [Platform; 5] = [
    Platform {
        os: "Linux",
        arch: "X64",
        target: "x86_64-unknown-linux-musl",
        ext: "tar.gz",
        exe: "relgate",
    },
    Platform {
        os: "Linux",
        arch: "ARM64",
        target: "aarch64-unknown-linux-musl",
        ext: "tar.gz",
        exe: "relgate",
    },
    Platform {
        os: "macOS",
        arch: "X64",
        target: "x86_64-apple-darwin",
        ext: "tar.gz",
        exe: "relgate",
    },
    Platform {
        os: "macOS",
        arch: "ARM64",
        target: "aarch64-apple-darwin",
        ext: "tar.gz",
        exe: "relgate",
    },
    Platform {
        os: "Windows",
        arch: "X64",
        target: "x86_64-pc-windows-msvc",
        ext: "zip",
        exe: "relgate.exe",
    },
];

fn platform(os: &str, arch: &str) -> &'static Platform {
    PLATFORMS
        .iter()
        .find(|p| p.os == os && p.arch == arch)
        .unwrap()
}

/// The archive release.yml publishes for `platform` (`relgate-VERSION-TARGET/EXE` and the
/// README; a zip for Windows, as 7z writes it there, a gzip tarball elsewhere), holding the
/// stripped test binary under the platform's executable name. The install step cannot tell
/// which platform a binary is for, and this one runs here, so every platform's path runs to
/// the end: unpack, `--version`, PATH, and the gate with the installed binary.
fn platform_archive(platform: &Platform) -> Vec<u8> {
    // Built once per platform and shared: packing is slow, and tar and gzip record times, so
    // two packings of the same files differ (a test that serves one platform's archive for
    // another needs the very bytes the table names).
    static ARCHIVES: std::sync::Mutex<BTreeMap<&'static str, Vec<u8>>> =
        std::sync::Mutex::new(BTreeMap::new());
    let mut archives = ARCHIVES.lock().unwrap();
    if let Some(bytes) = archives.get(platform.target) {
        return bytes.clone();
    }
    let bytes = pack_platform_archive(platform);
    archives.insert(platform.target, bytes.clone());
    bytes
}

fn pack_platform_archive(platform: &Platform) -> Vec<u8> {
    static STRIPPED: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let binary = STRIPPED.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("action-platform-bin-{}", std::process::id()));
        let stripped = Command::new("strip")
            .arg("-o")
            .arg(&out)
            .arg(crate::support::relgate_bin())
            .status()
            .is_ok_and(|s| s.success());
        let bytes = std::fs::read(if stripped {
            out.as_path()
        } else {
            crate::support::relgate_bin()
        })
        .unwrap();
        let _ = std::fs::remove_file(&out);
        bytes
    });
    let dir = tempfile::tempdir().unwrap();
    let name = format!("relgate-{VERSION}-{}", platform.target);
    let stage = dir.path().join(&name);
    std::fs::create_dir_all(&stage).unwrap();
    let exe = stage.join(platform.exe);
    std::fs::write(&exe, binary).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"),
        stage.join("README.md"),
    )
    .unwrap();
    let archive = dir.path().join(platform.archive_name());
    let status = if platform.ext == "zip" {
        // Python's zipfile keeps the Unix mode bits, so unzip restores the executable bit.
        Command::new("python3")
            .args(["-m", "zipfile", "-c"])
            .arg(&archive)
            .arg(&name)
            .current_dir(dir.path())
            .status()
            .unwrap()
    } else {
        Command::new("tar")
            .arg("-C")
            .arg(dir.path())
            .arg("--use-compress-program=gzip -1")
            .arg("-cf")
            .arg(&archive)
            .arg(&name)
            .status()
            .unwrap()
    };
    assert!(
        status.success(),
        "packing {} failed",
        platform.archive_name()
    );
    std::fs::read(&archive).unwrap()
}

/// One release as release.yml publishes it: every platform's archive, served at
/// `/VERSION/ARCHIVE`, and the action's table naming all of them. `served` replaces what the
/// server sends for one archive (a tampered download); the table keeps the real SHA-256.
struct FullRelease {
    action: ActionCopy,
    server: ReleaseServer,
    sha256: BTreeMap<&'static str, String>,
}

fn full_release(served: Option<(&Platform, Vec<u8>)>) -> FullRelease {
    let mut files = BTreeMap::new();
    let mut lines = Vec::new();
    let mut sha256 = BTreeMap::new();
    for p in &PLATFORMS {
        let archive = platform_archive(p);
        let sha = sha256_hex(&archive);
        lines.push((sha.clone(), p.archive_name()));
        sha256.insert(p.target, sha);
        files.insert(format!("/{VERSION}/{}", p.archive_name()), archive);
    }
    if let Some((p, body)) = served {
        files.insert(format!("/{VERSION}/{}", p.archive_name()), body);
    }
    FullRelease {
        action: action_with_table(&table_with(&lines)),
        server: ReleaseServer::start(files, None),
        sha256,
    }
}

/// A directory of links to every command on this PATH except `missing`, with `replaced`
/// commands pointing elsewhere: the step then runs as on a runner that lacks those tools
/// (macOS has `shasum` but may lack `sha256sum`; a Windows runner may have 7-Zip but no
/// `unzip`) or has another version of one (macOS runs `shell: bash` with its bash 3.2).
fn tools(missing: &[&str], replaced: &[(&str, &Path)]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    for (name, target) in replaced {
        std::os::unix::fs::symlink(target, dir.path().join(name)).unwrap();
    }
    let path = std::env::var("PATH").unwrap();
    for entry in path.split(':').filter(|d| !d.is_empty()) {
        let Ok(listing) = std::fs::read_dir(entry) else {
            continue;
        };
        for file in listing.flatten() {
            let name = file.file_name();
            let link = dir.path().join(&name);
            if missing.iter().any(|m| name == *m) || link.symlink_metadata().is_ok() {
                continue;
            }
            std::os::unix::fs::symlink(file.path(), &link).unwrap();
        }
    }
    let search = dir.path().to_str().unwrap().to_owned();
    (dir, search)
}

/// The install step on `platform` installed `platform`'s archive, and only that one: the
/// directory put on PATH holds its executable, and the gate then ran with it (the demo pull
/// request is blocked).
fn assert_installed(run: &ActionRun, repo: &PullRequestRepo, release: &FullRelease, p: &Platform) {
    let (code, log) = install_step(run);
    assert_eq!(code, 0, "{} {}: {}", p.os, p.arch, run.log());
    assert!(
        log.contains(&format!(
            "relgate: downloading {}/{VERSION}/{}",
            release.server.url,
            p.archive_name()
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "relgate: sha256 {} matches the action's release.sha256",
            release.sha256[p.target]
        )),
        "{log}"
    );
    assert!(
        log.contains(concat!(
            "installed relgate ",
            env!("CARGO_PKG_VERSION"),
            " ("
        )),
        "{log}"
    );
    let path_file = std::fs::read_to_string(repo.runner_temp.join("github-path")).unwrap();
    let bindir = Path::new(path_file.trim());
    assert!(bindir.starts_with(&repo.runner_temp), "{path_file}");
    assert_eq!(
        bindir.file_name().unwrap().to_str().unwrap(),
        format!("relgate-{VERSION}-{}", p.target)
    );
    assert!(bindir.join(p.exe).is_file(), "{path_file}");
    let build = run.steps.iter().find(|(id, ..)| id == "build").unwrap();
    assert!(
        build
            .2
            .contains(concat!("relgate ", env!("CARGO_PKG_VERSION"))),
        "{}",
        run.log()
    );
    assert_eq!(run.status, 1, "{}", run.log());
    assert_eq!(run.outputs["decision"], "fail", "{}", run.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_picks_the_archive_of_each_runner_platform() {
    let release = full_release(None);
    for p in &PLATFORMS {
        let before = release.server.requests().len();
        let (run, repo) =
            run_install(&release.action, &release.server.url, &[], &p.env(), "v1").await;
        assert_installed(&run, &repo, &release, p);
        // One download, of this platform's archive, from the table's version.
        assert_eq!(
            release.server.requests()[before..],
            [format!("/{VERSION}/{}", p.archive_name())],
            "{} {}",
            p.os,
            p.arch
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_refuses_a_tampered_archive_on_every_platform() {
    for p in &PLATFORMS {
        let mut tampered = platform_archive(p);
        let middle = tampered.len() / 2;
        tampered[middle] ^= 0x01;
        let release = full_release(Some((p, tampered.clone())));
        let (run, repo) =
            run_install(&release.action, &release.server.url, &[], &p.env(), "v1").await;
        assert_refused(
            &run,
            &format!(
                "checksum mismatch for {}: the action's release.sha256 says {}, the download is {}",
                p.archive_name(),
                release.sha256[p.target],
                sha256_hex(&tampered)
            ),
        );
        let path_file = std::fs::read_to_string(repo.runner_temp.join("github-path")).unwrap();
        assert_eq!(path_file, "", "{} {}", p.os, p.arch);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_refuses_another_platforms_archive_under_this_platforms_name() {
    // A genuine archive of the same release, listed in the same table, but for another
    // platform: served under the Windows name (and the Linux one under the macOS name), it
    // must not pass for the archive the table names for this runner.
    let linux = platform("Linux", "X64");
    let cases = [
        (platform("Windows", "X64"), linux),
        (platform("macOS", "ARM64"), linux),
        (platform("macOS", "X64"), platform("macOS", "ARM64")),
    ];
    for (runner, other) in cases {
        let swapped = platform_archive(other);
        let release = full_release(Some((runner, swapped.clone())));
        assert_eq!(sha256_hex(&swapped), release.sha256[other.target]);
        let (run, _repo) = run_install(
            &release.action,
            &release.server.url,
            &[],
            &runner.env(),
            "v1",
        )
        .await;
        assert_refused(
            &run,
            &format!(
                "checksum mismatch for {}: the action's release.sha256 says {}, the download is {}",
                runner.archive_name(),
                release.sha256[runner.target],
                release.sha256[other.target]
            ),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_on_macos_checks_the_sha256_with_shasum_when_sha256sum_is_missing() {
    let (_tools, search) = tools(&["sha256sum"], &[]);
    let p = platform("macOS", "ARM64");
    let env = [p.env()[0], p.env()[1], ("PATH", search.as_str())];
    let release = full_release(None);
    let (run, repo) = run_install(&release.action, &release.server.url, &[], &env, "v1").await;
    assert_installed(&run, &repo, &release, p);

    let mut tampered = platform_archive(p);
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    let release = full_release(Some((p, tampered.clone())));
    let (run, _repo) = run_install(&release.action, &release.server.url, &[], &env, "v1").await;
    assert_refused(
        &run,
        &format!(
            "the action's release.sha256 says {}, the download is {}",
            release.sha256[p.target],
            sha256_hex(&tampered)
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_on_windows_unpacks_with_7z_when_unzip_is_missing() {
    if Command::new("7z").arg("i").output().is_err() {
        eprintln!("skipped: 7z is not installed here (scripts/test installs p7zip-full)");
        return;
    }
    let (_tools, search) = tools(&["unzip"], &[]);
    let p = platform("Windows", "X64");
    let env = [p.env()[0], p.env()[1], ("PATH", search.as_str())];
    let release = full_release(None);
    let (run, repo) = run_install(&release.action, &release.server.url, &[], &env, "v1").await;
    assert_installed(&run, &repo, &release, p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_on_windows_without_unzip_or_7z_names_what_is_missing() {
    let (_tools, search) = tools(&["unzip", "7z"], &[]);
    let p = platform("Windows", "X64");
    let env = [p.env()[0], p.env()[1], ("PATH", search.as_str())];
    let release = full_release(None);
    let (run, repo) = run_install(&release.action, &release.server.url, &[], &env, "v1").await;
    assert_refused(
        &run,
        &format!(
            "cannot unpack {}: neither unzip nor 7z is on PATH",
            p.archive_name()
        ),
    );
    let path_file = std::fs::read_to_string(repo.runner_temp.join("github-path")).unwrap();
    assert_eq!(path_file, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_names_the_runners_relgate_has_no_build_for() {
    let release = full_release(None);
    for (os, arch) in [("Windows", "ARM64"), ("macOS", "X86"), ("Linux", "X86")] {
        let env = [("RUNNER_OS", os), ("RUNNER_ARCH", arch)];
        let (run, _repo) = run_install(&release.action, &release.server.url, &[], &env, "v1").await;
        assert_refused(
            &run,
            &format!("no relgate release is built for {os} {arch} (built: Linux X64/ARM64, macOS X64/ARM64, Windows X64); use install: source or relgate-bin"),
        );
    }
    assert!(release.server.requests().is_empty());
}

/// The `run:` scripts of action.yml, by step id or name.
fn action_scripts() -> Vec<(String, String)> {
    let action: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("action.yml")).unwrap(),
    )
    .unwrap();
    action["runs"]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|step| {
            let script = step["run"].as_str()?;
            let id = step["id"].as_str().or(step["name"].as_str()).unwrap();
            Some((id.to_owned(), script.to_owned()))
        })
        .collect()
}

#[test]
fn action_scripts_are_written_for_bash_3_2_as_on_macos_runners() {
    // macOS runners run `shell: bash` with the system bash, 3.2. Two things that bash 4+
    // accepts end a step there, before relgate is installed or started:
    //
    // 1. Under `set -u`, expanding an empty array (`${a[@]}`, quoted or not) is an "unbound variable" error that
    // ends the step (bash 4.4 made it expand to nothing): the gate step's manifests, policy
    // dirs and formats are empty by default, so every macOS run died before relgate started.
    // ${a[@]+"${a[@]}"} expands to nothing on every version; it is required everywhere, even
    // for arrays that cannot be empty today, so no later edit brings the error back.
    // 2. An inline `[[ $x =~ REGEX ]]` whose regex holds `(` is a syntax error in bash 3.2's
    //    parser (the install step's loopback check was): the whole script fails to parse. A
    //    regex in a variable (`[[ $x =~ $re ]]`) parses everywhere; it is required for every
    //    `=~`.
    //
    // the_action_runs_under_bash_3_2_as_on_macos_runners runs the steps under a real bash 3.2
    // where one is available; this check runs everywhere.
    let mut unguarded = Vec::new();
    for (id, script) in action_scripts() {
        let mut rest = script.as_str();
        while let Some(at) = rest.find("${") {
            let after = &rest[at + 2..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let tail = &after[name.len()..];
            let whole = tail.starts_with("[@]}") || tail.starts_with("[*]}");
            let offset = script.len() - rest.len() + at;
            let guarded = script[..offset].ends_with(&format!("${{{name}[@]+\""));
            if !name.is_empty() && whole && !guarded {
                let line = script[..script.len() - rest.len() + at]
                    .matches('\n')
                    .count()
                    + 1;
                unguarded.push(format!(
                    "step {id}, line {line} of its run: ${{{name}{}",
                    &tail[..4]
                ));
            }
            rest = after;
        }
    }
    assert!(
        unguarded.is_empty(),
        "expand arrays as ${{a[@]+\"${{a[@]}}\"}}:\n{}",
        unguarded.join("\n")
    );
    let mut inline = Vec::new();
    for (id, script) in action_scripts() {
        for (number, line) in script.lines().enumerate() {
            let Some((_, regex)) = line.split_once("=~") else {
                continue;
            };
            let operand = regex.split_whitespace().next().unwrap_or("");
            let variable = operand.strip_prefix('$').is_some_and(|name| {
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            if !variable {
                inline.push(format!("step {id}, line {}: {}", number + 1, line.trim()));
            }
        }
    }
    assert!(
        inline.is_empty(),
        "put each =~ regex in a variable (re='...'; [[ $x =~ $re ]]):\n{}",
        inline.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_action_runs_under_bash_3_2_as_on_macos_runners() {
    // A bash 3.2 (macOS's /bin/bash, which GitHub's macOS runners use for `shell: bash`), e.g.
    // built from bash-3.2.48's source; this machine has none by default.
    let Some(bash) = std::env::var_os("RELGATE_TEST_BASH32") else {
        eprintln!(
            "skipped: set RELGATE_TEST_BASH32 to a bash 3.2 binary to run the steps under it"
        );
        return;
    };
    let version = Command::new(&bash).arg("--version").output().unwrap();
    assert!(
        String::from_utf8_lossy(&version.stdout).contains("version 3.2"),
        "RELGATE_TEST_BASH32 is not bash 3.2"
    );
    let (_tools, search) = tools(&["sha256sum"], &[("bash", Path::new(&bash))]);
    let p = platform("macOS", "ARM64");
    let env = [p.env()[0], p.env()[1], ("PATH", search.as_str())];
    let release = full_release(None);
    // Default inputs: no manifests, policy dirs or formats (the empty arrays).
    let (run, repo) = run_install(&release.action, &release.server.url, &[], &env, "v1").await;
    assert_installed(&run, &repo, &release, p);
    // And with every array non-empty.
    let (run, repo) = run_install(
        &release.action,
        &release.server.url,
        &[
            ("manifests", "releases/prompts releases/models"),
            ("formats", "sarif junit"),
        ],
        &env,
        "v1",
    )
    .await;
    assert_installed(&run, &repo, &release, p);
    assert!(repo.runner_temp.join("relgate.sarif").is_file());
    assert!(repo.runner_temp.join("relgate.xml").is_file());
}

#[test]
fn the_install_tests_cover_every_target_release_yml_builds() {
    // PLATFORMS above is what these tests run the install step for; the release workflow's
    // build matrix is what is published. A target added to one and not the other is either
    // an archive no runner installs or an install path no test runs.
    let workflow: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(".github/workflows/release.yml"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut built: Vec<&str> = workflow["jobs"]["build"]["strategy"]["matrix"]["include"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|entry| entry["target"].as_str().unwrap())
        .collect();
    built.sort_unstable();
    let mut tested: Vec<&str> = PLATFORMS.iter().map(|p| p.target).collect();
    tested.sort_unstable();
    assert_eq!(built, tested);
    // install_picks_the_archive_of_each_runner_platform checks action.yml's side.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_from_source_on_macos_keys_its_cache_without_sha256sum() {
    // `install: source` caches the cargo build under a key from the action's Cargo.lock; on
    // a macOS runner without GNU coreutils the hash must come from shasum, as in the install
    // step, not fail the job.
    let (_tools, search) = tools(&["sha256sum"], &[]);
    let p = platform("macOS", "ARM64");
    let env = [p.env()[0], p.env()[1], ("PATH", search.as_str())];
    let action = action_with_table("");
    let lock = b"# a Cargo.lock\nversion = 4\n";
    std::fs::write(action.path.join("Cargo.lock"), lock).unwrap();
    let (run, repo) = run_install(&action, "", &[("install", "source")], &env, "main").await;
    let key = run
        .steps
        .iter()
        .find(|(id, ..)| id == "key")
        .unwrap_or_else(|| panic!("the cache key step did not run:\n{}", run.log()));
    assert_eq!(key.1, 0, "{}", run.log());
    let outputs: String = std::fs::read_dir(&repo.runner_temp)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("output-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert!(
        outputs.contains(&format!("key=relgate-macOS-{}\n", &sha256_hex(lock)[..16])),
        "{outputs}\n{}",
        run.log()
    );
}
