//! The git history checks of a ledger (the walk over every ledger commit, and the reflog) in a
//! process of their own, beside the record checks of the process that started it.
//!
//! Why a process and not a thread: libgit2 reads packfiles through state shared by the whole
//! process. Every access to a pack window takes one process-wide mutex (`git_mwindow__mutex`),
//! and every packfile has one delta-base cache (16 MiB, emptied whole when it is full) that
//! every repository handle of the process shares. The walk reads four objects per commit (the
//! commit, its root, `records/` and shard trees, the shard trees up to 70 KB each) and the
//! record checks a blob per record; on one process's threads they wait on each other's locks
//! and evict each other's delta bases. On a ledger of 100,000 records of a commit each, after
//! `git gc`, on two cores, the release binary verified it in 5.71–5.75 s with the walk on a
//! thread and in 4.68–4.79 s with it in a process of its own (10.1 CPU-s against 8.9–9.1 for
//! both processes).
//!
//! The child is this same program (`relgate history-walk`, a command left out of `--help`),
//! given the repository and the ledger ref; it prints what it found as one JSON document
//! ([`Findings`]), which the parent adds to its report where a thread's findings went, so the
//! report is the same byte for byte. It fails closed: a child that cannot be started leaves the
//! checks to a thread, as before; a child that fails, is killed or prints what does not parse
//! leaves the history unchecked, a read error (exit 2), never a pass.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde::{Deserialize, Serialize};

use super::{Problem, ProblemKind, RecordRef, VerifyReport};

/// The command the child runs (hidden from `--help`).
pub const HISTORY_WALK_COMMAND: &str = "history-walk";

/// What the history checks found: what the child prints and the parent reads.
#[derive(Debug, Serialize, Deserialize)]
struct Findings {
    commits_checked: u64,
    problems: Vec<FoundProblem>,
}

/// A problem as the child prints it. The severity is not carried: the parent derives it from
/// the kind, as for every problem.
#[derive(Debug, Serialize, Deserialize)]
struct FoundProblem {
    record: Option<RecordRef>,
    kind: ProblemKind,
    message: String,
}

/// The history checks of the ledger at `refname` of the repository at `repo`, as the JSON
/// document the child prints.
pub fn history_walk_json(
    repo: &Path,
    refname: &str,
    check_history: bool,
    check_reflog: bool,
) -> String {
    findings_json(super::history_report(
        repo,
        refname,
        check_history,
        check_reflog,
    ))
}

/// What `report` found, as the JSON document the child prints.
fn findings_json(report: VerifyReport) -> String {
    let findings = Findings {
        commits_checked: report.commits_checked,
        problems: report
            .problems
            .into_iter()
            .map(|p| FoundProblem {
                record: p.record,
                kind: p.kind,
                message: p.message,
            })
            .collect(),
    };
    // Serialising plain structs of strings and numbers cannot fail; were it to, the empty
    // output is refused by the parent as unreadable, so it fails closed.
    serde_json::to_string(&findings).unwrap_or_default()
}

/// A child process running the history checks.
pub(super) struct WalkChild(Child);

impl WalkChild {
    /// Starts `exe history-walk` on the ledger at `refname` of `repo`.
    pub(super) fn spawn(
        exe: &Path,
        repo: &Path,
        refname: &str,
        check_history: bool,
        check_reflog: bool,
    ) -> std::io::Result<WalkChild> {
        // `--opt=value`: a value starting with `-` stays a value.
        let mut repo_arg = OsString::from("--repo=");
        repo_arg.push(repo.as_os_str());
        let mut cmd = Command::new(exe);
        cmd.arg(HISTORY_WALK_COMMAND)
            .arg(repo_arg)
            .arg(format!("--ref={refname}"));
        if !check_history {
            cmd.arg("--no-history");
        }
        if !check_reflog {
            cmd.arg("--no-reflog");
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map(WalkChild)
    }

    /// Waits for the child and reads what it found; `Err` says why there is nothing to read.
    pub(super) fn finish(self) -> Result<VerifyReport, String> {
        // Both pipes are read together until the child exits, so a child writing much to
        // either never waits on the other.
        let out = self
            .0
            .wait_with_output()
            .map_err(|e| format!("could not wait for the history check process: {e}"))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
            return Err(format!(
                "the history check process failed ({}){}",
                out.status,
                last.map(|l| format!(": {}", l.trim())).unwrap_or_default()
            ));
        }
        parse_findings(&out.stdout)
    }
}

/// The child's output as a report of its own.
fn parse_findings(stdout: &[u8]) -> Result<VerifyReport, String> {
    let findings: Findings = serde_json::from_slice(stdout)
        .map_err(|e| format!("the history check process printed what does not parse ({e})"))?;
    let mut report = VerifyReport::new(String::new());
    report.commits_checked = findings.commits_checked;
    report.problems = findings
        .problems
        .into_iter()
        .map(|p| Problem::new(p.kind, p.record, p.message))
        .collect();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_read_back_as_the_problems_printed_with_their_severity() {
        let problems = vec![
            Problem::new(
                ProblemKind::HistoryFork,
                Some(RecordRef {
                    seq: Some(7),
                    file: Some("records/000/000007-a-1.dsse.json".to_owned()),
                    commit: Some("0123".to_owned()),
                }),
                "commit 0123 is a merge",
            ),
            Problem::new(ProblemKind::ShallowHistory, None, "shallow \"clone\"\n"),
        ];
        let mut report = VerifyReport::new(String::new());
        report.commits_checked = 42;
        report.problems = problems.clone();
        let read = parse_findings(findings_json(report).as_bytes()).expect("parse");
        assert_eq!(read.commits_checked, 42);
        assert_eq!(read.problems, problems);
    }

    #[test]
    fn output_that_is_not_findings_is_refused() {
        for bad in [
            &b""[..],
            b"{",
            b"{\"commits_checked\":1}",
            b"{\"commits_checked\":1,\"problems\":[{\"record\":null,\"kind\":\"no_such_kind\",\"message\":\"\"}]}",
            b"\xff\xfe",
        ] {
            let err = parse_findings(bad).expect_err("refused");
            assert!(err.contains("does not parse"), "{err}");
        }
    }
}
