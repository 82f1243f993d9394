//! Approval rules (`relgate.approvals`) through the whole binary: `relgate check --pr-json` on
//! a production tier-0 release that every other built-in policy passes, so any finding is an
//! approval finding. The pull-request contexts are written by hand from GitHub's own examples
//! (shared fixtures `github/`): octocat's APPROVED review of commit ecdd80bb
//! (pulls-list-reviews.json), octocat as the author of PR 1347 (pulls-get.json), erwinmombay's
//! APPROVED review of 9272f185 (a recorded pull_request_review delivery) and Codertocat, who
//! opened PR 2 (pull_request webhook example).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::support::Repo;

const HEAD_SHA: &str = "ecdd80bb57125d7ba9641ffaa4d7d2c19d3f3091";

/// A production tier-0 prompt release that passes every built-in policy but the approvals.
const RELEASE: &str = r#"apiVersion: relgate.dev/v1
kind: PromptRelease
metadata:
  name: support-answer
  version: "17"
  service: hotel-search
  environment: production
  tier: 0
  change_type: feature
spec:
  owner: {team: assistants, contact: dana@example.com, oncall: https://oncall.example.com/assistants}
  prompt:
    registry: langfuse
    path: support-answer
    digest: sha256:f3f73605cd7cf3a78e497c8fe7014e5803b7042bfd6ce17ef22ff752c96e9bc7
    baseline: {version: "16"}
  rollout: {strategy: canary, steps: [5, 25, 50, 100], bake_minutes: 30}
  rollback: {to_version: "16", max_minutes: 5, automated: true}
  prr:
    PRR-OWN-01: {status: done, evidence: https://wiki.example.com/owners}
    PRR-OPS-01: {status: done, evidence: https://wiki.example.com/runbook}
    PRR-OPS-02: {status: done, evidence: https://ci.example.com/runs/1/rollback-drill}
    PRR-MON-01: {status: done, evidence: https://grafana.example.com/d/answer}
    PRR-EVAL-01: {status: done, evidence: https://evals.example.com/answer-17}
    PRR-EVAL-02: {status: done, evidence: https://evals.example.com/answer-17/slices}
    PRR-SEC-01: {status: done, evidence: https://security.example.com/reviews/1}
    PRR-PRIV-01: {status: done, evidence: https://privacy.example.com/reviews/1}
    PRR-LOAD-01: {status: done, evidence: https://ci.example.com/runs/2/load-test}
  slo:
    - name: ranking-latency
      source:
        file:
          path: slo/hotel-search.json
          query: 'slo:period_error_budget_remaining:ratio{sloth_service="hotel-search",sloth_slo="ranking-latency"}'
      min_remaining: 0.05
  logging:
    content_capture: false
    sinks:
      - {name: prometheus, region: eu-west-1, data_classes: [metrics], retention_days: 30}
"#;

/// Line of `metadata.environment` (APPROVAL-MISSING, APPROVAL-SELF) and `metadata.tier`
/// (APPROVAL-TEAM) in [`RELEASE`].
const ENVIRONMENT_LINE: u64 = 7;
const TIER_LINE: u64 = 8;

/// relgate.yaml lines accepting SLO readings up to a day old (the demo's reading is older than
/// the default 15 minutes at the tests' clock).
const DAY_OLD_SLO_READINGS: &str = "error_budget:\n  reading_files:\n    max_age_minutes: 1440\n";

fn repo() -> Repo {
    let repo = Repo::git();
    let slo =
        std::fs::read(crate::support::project_root().join("examples/demo/slo/hotel-search.json"))
            .expect("demo SLO reading");
    // Teams are org-specific, so the defaults require none; this repo requires one for tiers 0-1.
    // The demo's SLO reading was saved 12 hours before the tests' clock: accept a day-old one.
    repo.file(
        "relgate.yaml",
        format!("apiVersion: relgate.dev/v1\nkind: GateConfig\napprovals:\n  production:\n    teams: {{\"0\": [ml-reliability], \"1\": [ml-reliability]}}\n{DAY_OLD_SLO_READINGS}"),
    )
    .file("releases/answer.yaml", RELEASE)
        .file("slo/hotel-search.json", slo);
    repo
}

fn review(user: &str, state: &str, submitted_at: &str, commit_id: &str) -> Value {
    json!({"user": user, "state": state, "submitted_at": submitted_at,
           "commit_id": commit_id, "stale": commit_id != HEAD_SHA})
}

/// octocat's review of the head commit (pulls-list-reviews.json).
fn octocat_approves() -> Value {
    review("octocat", "APPROVED", "2019-11-17T17:43:43Z", HEAD_SHA)
}

/// erwinmombay's review (pull_request_review.submitted, approved), of the head commit.
fn erwinmombay_approves() -> Value {
    review("erwinmombay", "APPROVED", "2019-02-26T20:53:31Z", HEAD_SHA)
}

/// erwinmombay's review as delivered: of commit 9272f185, older than the head (stale).
fn erwinmombay_approved_an_older_commit() -> Value {
    review(
        "erwinmombay",
        "APPROVED",
        "2019-02-26T20:53:31Z",
        "9272f18514cbd3fa935b3ced62ae1c2bf6efa76d",
    )
}

/// PR 1347 opened by `author`, with `reviews` and the ml-reliability `members`.
fn pr(author: &str, reviews: Vec<Value>, members: &[&str]) -> Value {
    let mut approvers: Vec<&str> = reviews
        .iter()
        .filter(|r| r["state"] == "APPROVED")
        .filter_map(|r| r["user"].as_str())
        .collect();
    approvers.sort_unstable();
    json!({
        "number": 1347,
        "author": author,
        "labels": ["bug"],
        "title": "Amazing new feature",
        "draft": false,
        "state": "open",
        "merged": false,
        "merged_by": null,
        "base_ref": "master",
        "base_sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e",
        "head_ref": "new-topic",
        "head_sha": HEAD_SHA,
        "reviews": reviews,
        "approvers": approvers,
        "teams": {"ml-reliability": {"org": "octo-org", "members": members}},
    })
}

/// Two independent approvals, one of them by a member of ml-reliability.
fn approved_pr() -> Value {
    pr(
        "Codertocat",
        vec![erwinmombay_approves(), octocat_approves()],
        &["erwinmombay"],
    )
}

fn write_pr(repo: &Repo, name: &str, pr: &Value) {
    repo.file(
        name,
        serde_json::to_string_pretty(pr).expect("pr json") + "\n",
    );
}

/// The findings of a `--format json` run.
fn findings(report: &Value) -> Vec<Value> {
    report["results"][0]["findings"]
        .as_array()
        .expect("findings")
        .clone()
}

fn rules(report: &Value) -> Vec<String> {
    findings(report)
        .iter()
        .map(|f| f["rule"].as_str().expect("rule").to_owned())
        .collect()
}

#[test]
fn two_independent_approvals_with_a_team_member_pass() {
    let repo = repo();
    write_pr(&repo, "pr.json", &approved_pr());
    let run = repo.run(&["check", "releases", "--pr-json", "pr.json"]);
    run.exit(0)
        .stdout_has("PASS  releases/answer.yaml:1  PromptRelease support-answer@17")
        .stdout_lacks("approvals not evaluated");
    let report = repo
        .run(&["check", "releases", "--pr-json", "pr.json", "-f", "json"])
        .json();
    assert_eq!(report["approvals_evaluated"], true);
    assert_eq!(rules(&report), Vec::<String>::new());
}

#[test]
fn self_approval_is_blocked() {
    // PR 1347 is octocat's own, and octocat approved it.
    let repo = repo();
    write_pr(
        &repo,
        "pr.json",
        &pr(
            "octocat",
            vec![erwinmombay_approves(), octocat_approves()],
            &["erwinmombay"],
        ),
    );
    let run = repo.run(&["check", "releases", "--pr-json", "pr.json"]);
    run.exit(1)
        .stdout_has("releases/answer.yaml:7  APPROVAL-SELF  octocat approved their own pull request (PR #1347); production releases need two people, and an author's approval never counts (approved by others: erwinmombay)")
        .stdout_has("fix: dismiss octocat's own approval on PR #1347; the release needs 2 approvals from reviewers other than the author")
        .stdout_has("releases/answer.yaml:7  APPROVAL-MISSING  production releases need 2 approvals from reviewers other than the author; PR #1347 has 1 (erwinmombay); not counted: octocat's own approval (the author)");
    let report = repo
        .run(&["check", "releases", "--pr-json", "pr.json", "-f", "json"])
        .json();
    assert_eq!(rules(&report), ["APPROVAL-MISSING", "APPROVAL-SELF"]);
    for f in findings(&report) {
        assert_eq!(f["policy"], "relgate.approvals");
        assert_eq!(f["path"], "metadata.environment");
        assert_eq!(f["line"], ENVIRONMENT_LINE);
    }
}

#[test]
fn missing_team_approval_is_blocked() {
    let repo = repo();
    write_pr(
        &repo,
        "pr.json",
        &pr(
            "Codertocat",
            vec![erwinmombay_approves(), octocat_approves()],
            &[],
        ),
    );
    let run = repo.run(&["check", "releases", "--pr-json", "pr.json"]);
    run.exit(1)
        .stdout_has("releases/answer.yaml:8  APPROVAL-TEAM  production tier 0 releases need an approval from a member of ml-reliability; PR #1347 has none (counted approvals: erwinmombay, octocat)")
        .stdout_has("fix: ask a member of ml-reliability to review and approve PR #1347");
    let report = repo
        .run(&["check", "releases", "--pr-json", "pr.json", "-f", "json"])
        .json();
    assert_eq!(rules(&report), ["APPROVAL-TEAM"]);
    let f = &findings(&report)[0];
    assert_eq!(f["item"], "ml-reliability");
    assert_eq!(f["path"], "metadata.tier");
    assert_eq!(f["line"], TIER_LINE);
}

#[test]
fn without_pr_context_approvals_are_not_evaluated_and_the_report_says_so() {
    let repo = repo();
    let note = "approvals not evaluated: no pull-request context (run in a pull request or pass --pr-json)";
    repo.run(&["check", "releases"])
        .exit(0)
        .stdout_has(&format!("note: {note}"));
    let report = repo.run(&["check", "releases", "-f", "json"]).json();
    assert_eq!(report["approvals_evaluated"], false);
    assert_eq!(rules(&report), Vec::<String>::new());
    repo.run(&["check", "releases", "-f", "markdown"])
        .exit(0)
        .stdout_has(&format!("> {note}"));
    repo.run(&["check", "releases", "-f", "junit"])
        .exit(0)
        .stdout_has(&format!(
            "<testcase name=\"relgate.approvals\" classname=\"releases/answer.yaml#0 support-answer@17\">\n      <skipped message=\"{note}\"/>"
        ));
}

#[test]
fn junit_reports_approval_failures_with_pr_context() {
    let repo = repo();
    write_pr(
        &repo,
        "pr.json",
        &pr("Codertocat", vec![octocat_approves()], &["erwinmombay"]),
    );
    let run = repo.run(&["check", "releases", "--pr-json", "pr.json", "-f", "junit"]);
    run.exit(1)
        .stdout_has("<testcase name=\"relgate.approvals\" classname=\"releases/answer.yaml#0 support-answer@17\">\n      <failure message=\"2 policy violations\" type=\"APPROVAL-MISSING, APPROVAL-TEAM\">")
        .stdout_has("tests=\"7\" failures=\"1\" errors=\"0\" skipped=\"0\"")
        .stdout_lacks("<skipped");
}

#[test]
fn stale_approvals_do_not_count_unless_the_config_keeps_them() {
    // erwinmombay approved commit 9272f185, not the head: stale. By default it does not count
    // (code pushed after it is code nobody approved); `dismiss_stale: false` counts it.
    let repo = repo();
    let stale = pr(
        "Codertocat",
        vec![erwinmombay_approved_an_older_commit(), octocat_approves()],
        &["erwinmombay"],
    );
    write_pr(&repo, "pr.json", &stale);
    let run = repo.run(&["check", "releases", "--pr-json", "pr.json"]);
    run.exit(1)
        .stdout_has("APPROVAL-MISSING  production releases need 2 approvals from reviewers other than the author; PR #1347 has 1 (octocat); not counted: erwinmombay (approved an older commit, and dismiss_stale is on)")
        .stdout_has("APPROVAL-TEAM  production tier 0 releases need an approval from a member of ml-reliability; PR #1347 has none (counted approvals: octocat); not counted: erwinmombay (members whose approval is of an older commit, and dismiss_stale is on)");
    repo.file(
        "relgate.yaml",
        format!("apiVersion: relgate.dev/v1\nkind: GateConfig\napprovals:\n  production:\n    dismiss_stale: false\n    teams: {{\"0\": [ml-reliability]}}\n{DAY_OLD_SLO_READINGS}"),
    );
    repo.run(&["check", "releases", "--pr-json", "pr.json"])
        .exit(0);
}

#[test]
fn changes_requested_after_an_approval_cancels_it() {
    // octocat approved, then requested changes: the context holds the latest decisive state.
    let repo = repo();
    write_pr(
        &repo,
        "pr.json",
        &pr(
            "Codertocat",
            vec![
                erwinmombay_approves(),
                review(
                    "octocat",
                    "CHANGES_REQUESTED",
                    "2019-11-18T09:00:00Z",
                    HEAD_SHA,
                ),
            ],
            &["erwinmombay"],
        ),
    );
    repo.run(&["check", "releases", "--pr-json", "pr.json"])
        .exit(1)
        .stdout_has("PR #1347 has 1 (erwinmombay); changes requested by octocat")
        .stdout_has("address the changes octocat requested and ask for a new review");
}

#[test]
fn an_emergency_label_is_no_bypass_but_a_team_exception_is_reported() {
    let repo = repo();
    let missing_team = pr(
        "Codertocat",
        vec![erwinmombay_approves(), octocat_approves()],
        &[],
    );
    let mut labelled = missing_team.clone();
    labelled["labels"] = json!(["bug", "emergency-release"]);
    write_pr(&repo, "plain.json", &missing_team);
    write_pr(&repo, "emergency.json", &labelled);

    // The built-in policy grants nothing for the label.
    repo.run(&["check", "releases", "--pr-json", "emergency.json"])
        .exit(1)
        .stdout_has("APPROVAL-TEAM");

    // A team's exception keyed on the label suppresses the finding, and says so.
    repo.file(
        ".relgate/policies/emergency.rego",
        "package main\n\n# An emergency release may ship without the reliability team; it is reviewed afterwards.\nexception contains \"APPROVAL-TEAM\" if {\n\t\"emergency-release\" in input.context.pull_request.labels\n}\n",
    );
    let run = repo.run(&["check", "releases", "--pr-json", "emergency.json"]);
    run.exit(0).stdout_has(
        "releases/answer.yaml:8  excepted APPROVAL-TEAM by exception `APPROVAL-TEAM` in main: production tier 0 releases need an approval from a member of ml-reliability",
    );
    let report = repo
        .run(&[
            "check",
            "releases",
            "--pr-json",
            "emergency.json",
            "-f",
            "json",
        ])
        .json();
    let exceptions = report["results"][0]["exceptions"]
        .as_array()
        .expect("exceptions");
    assert_eq!(exceptions.len(), 1, "{exceptions:?}");
    assert_eq!(exceptions[0]["rule"], "APPROVAL-TEAM");
    assert_eq!(exceptions[0]["policy"], "relgate.approvals");
    assert_eq!(exceptions[0]["exception_policy"], "main");

    // Without the label the exception does not hold.
    repo.run(&["check", "releases", "--pr-json", "plain.json"])
        .exit(1)
        .stdout_has("APPROVAL-TEAM")
        .stdout_lacks("excepted");
}

#[test]
fn an_invalid_pr_json_cannot_decide() {
    let repo = repo();
    let mut bad = approved_pr();
    bad["reviews"][1]["state"] = json!("approved");
    bad["head_sha"] = json!("ecdd80bb");
    write_pr(&repo, "bad.json", &bad);
    let run = repo.run(&["check", "releases", "--pr-json", "bad.json"]);
    run.exit(2)
        .stderr_has("bad.json:15: not a valid pull-request context (schemas/input.schema.json $defs/pullRequest, docs/approvals.md): 2 problems:")
        .stderr_has("line 15: `head_sha` must be a commit SHA: 40 lowercase hex digits (found \"ecdd80bb\")")
        .stderr_has("line 26: `reviews[1].state` must be one of APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED, PENDING");
    assert_eq!(run.stdout, "", "no report without a decision");

    let mut no_teams = approved_pr();
    no_teams.as_object_mut().expect("object").remove("teams");
    write_pr(&repo, "no-teams.json", &no_teams);
    repo.run(&["check", "releases", "--pr-json", "no-teams.json"])
        .exit(2)
        .stderr_has("no-teams.json:1: not a valid pull-request context")
        .stderr_has("missing required field `teams`");

    repo.file("truncated.json", "{\"number\": 1347,\n");
    repo.run(&["check", "releases", "--pr-json", "truncated.json"])
        .exit(2)
        .stderr_has("truncated.json:2: not valid JSON");

    // The record-only shape has no reviews: nothing to evaluate approvals on.
    repo.file(
        "minimal.json",
        r#"{"number": 1347, "author": "octocat", "approvers": ["octocat"], "merged_by": "octocat"}"#,
    );
    repo.run(&["check", "releases", "--pr-json", "minimal.json"])
        .exit(2)
        .stderr_has(
            "minimal.json: has no `reviews`: --pr-json needs the full pull-request context",
        );

    repo.run(&["check", "releases", "--pr-json", "missing.json"])
        .exit(2)
        .stderr_has("missing.json: cannot read");
}

#[test]
fn record_evaluates_and_records_the_full_context() {
    let repo = repo();
    let mut merged = approved_pr();
    merged["state"] = json!("closed");
    merged["merged"] = json!(true);
    merged["merged_by"] = json!("octocat");
    write_pr(&repo, "pr.json", &merged);
    let keys = tempfile::tempdir().expect("tmp");
    let key_dir = keys.path().join("keys");
    repo.run(&["keygen", "--out", key_dir.to_str().expect("utf8")])
        .exit(0);
    let key = key_dir.join("relgate-signing.pem");
    let run = repo.run(&[
        "record",
        "releases",
        "--key",
        key.to_str().expect("utf8"),
        "--ledger-dir",
        "ledger",
        "--pr-json",
        "pr.json",
    ]);
    run.exit(0).stdout_lacks("approvals not evaluated");
    let records: Vec<_> = std::fs::read_dir(repo.path().join("ledger/records/000"))
        .expect("records dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let envelope: Value =
        serde_json::from_slice(&std::fs::read(&records[0]).expect("record")).expect("json");
    let statement: Value = serde_json::from_slice(
        &B64.decode(envelope["payload"].as_str().expect("payload"))
            .expect("base64"),
    )
    .expect("statement");
    assert_eq!(
        statement["predicate"]["https://relgate.dev/change/v1"]["pull_request"],
        json!({"number": 1347, "author": "Codertocat", "approvers": ["erwinmombay", "octocat"], "merged_by": "octocat"})
    );
}
