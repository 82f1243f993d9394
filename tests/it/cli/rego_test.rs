//! `relgate test`: Rego unit tests run like `opa test`.

use crate::support::Repo;

const POLICY: &str = "package team\n\ndeny contains \"no owner\" if not input.owner\n";

#[test]
fn reports_each_test_and_a_closing_count() {
    let repo = Repo::new();
    repo.file("p/policy.rego", POLICY).file(
        "p/policy_test.rego",
        "package team\n\ntest_denies_without_owner if {\n\tdeny with input as {}\n}\n\ntest_passes_with_owner if {\n\tcount(deny) == 0 with input as {\"owner\": \"a\"}\n}\n\ntest_wrong if {\n\tcount(deny) == 1 with input as {\"owner\": \"a\"}\n}\n",
    );
    repo.run(&["test", "p"])
        .exit(1)
        .stdout_has("PASS p/policy_test.rego:3 data.team.test_denies_without_owner")
        .stdout_has("FAIL p/policy_test.rego:11 data.team.test_wrong")
        .stdout_has("\n2 passed, 1 failed\n");
    let run = repo.run(&["test", "p", "--format", "json"]);
    run.exit(1);
    let json = run.json();
    assert_eq!(json["passed"], 2);
    assert_eq!(json["tests"].as_array().map(Vec::len), Some(3));
    assert_eq!(json["tests"][2]["outcome"], "fail");
    repo.run(&["test", "p", "--run", "owner"])
        .exit(0)
        .stdout_has("2 passed, 0 failed");
}

#[test]
fn a_file_that_does_not_load_is_reported_and_the_rest_run() {
    let repo = Repo::new();
    repo.file("p/policy.rego", POLICY)
        .file(
            "p/broken_test.rego",
            "package team\n\ntest_x if {\n  x := \n}\n",
        )
        .file(
            "p/policy_test.rego",
            "package team\n\ntest_ok if deny with input as {}\n",
        );
    repo.run(&["test", "p"])
        .exit(2)
        .stdout_has("LOAD ERROR p/broken_test.rego")
        .stdout_has("p/broken_test.rego:4:5")
        .stdout_has("PASS p/policy_test.rego:3 data.team.test_ok")
        .stdout_has("1 passed, 0 failed");
}

#[test]
fn coverage_and_threshold() {
    let repo = Repo::new();
    repo.file(
        "p/policy.rego",
        "package team\n\ndeny contains \"no owner\" if not input.owner\n\nwarn contains \"old\" if {\n\tinput.age > 10\n}\n",
    )
    .file("p/policy_test.rego", "package team\n\ntest_ok if deny with input as {}\n");
    let run = repo.run(&["test", "p", "--coverage", "--format", "json"]);
    run.exit(0);
    let percent = run.json()["coverage"]["percent"].as_f64().expect("percent");
    assert!(percent > 0.0 && percent < 100.0, "{percent}");
    repo.run(&["test", "p", "--coverage", "--threshold", "99"])
        .exit(1)
        .stdout_has("is below the threshold 99%");
    repo.run(&["test", "p", "--coverage", "--threshold", "1"])
        .exit(0);
}

#[test]
fn builtin_bundle_tests_pass() {
    let repo = Repo::new();
    let run = repo.run(&["test", "--builtin"]);
    run.exit(0).stdout_lacks("FAIL");
    assert!(run.stdout.contains(" passed, 0 failed"));
}

#[test]
fn no_tests_is_not_a_pass() {
    let repo = Repo::new();
    repo.file("p/policy.rego", POLICY);
    repo.run(&["test", "p"])
        .exit(2)
        .stdout_has("no tests found");
    repo.run(&["test"])
        .exit(2)
        .stderr_has("no policy directories to test");
}

#[test]
fn v0_policies_run_with_v0_compatible() {
    let repo = Repo::new();
    repo.file(
        "p/old.rego",
        "package main\n\ndeny[msg] {\n  not input.owner\n  msg := \"no owner\"\n}\n",
    )
    .file(
        "p/old_test.rego",
        "package main\n\ntest_denied {\n  deny[\"no owner\"] with input as {}\n}\n",
    );
    repo.run(&["test", "p"])
        .exit(2)
        .stdout_has("`if` keyword is required");
    repo.run(&["test", "p", "--v0-compatible"])
        .exit(0)
        .stdout_has("1 passed, 0 failed");
    repo.file("releases/a.yaml", crate::support::dev_release("a"));
    repo.run(&["check", "releases", "-p", "p", "--v0-compatible"])
        .exit(1)
        .stdout_has("deny  no owner");
}
