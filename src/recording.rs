//! `relgate record`: from a gate run to change records. For every manifest decision of a
//! [`Report`] (pass, fail and error alike, in report order) this builds the
//! [`RecordInput`] the ledger signs and appends: manifest path and digest, the released
//! artifact, decision and findings, the manifest summary, git facts of the gate root's
//! repository, evidence digests and SLO readings from the policy input the decision was made
//! on, the policy digest, and the pull request and CI run given by the caller.
//!
//! Paths in records are relative to the git work-tree root (the gate root may be a
//! subdirectory of it), so a record names the file the way `git show COMMIT:PATH` does.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::GateConfig;
use crate::gate::Gate;
use crate::policy;
use crate::record::completeness::{changed_in, CommitChange};
use crate::record::statement::{
    normalize_sha256, ArtifactRef, BundleUsed, EvidenceDigest, GitInfo, ManifestSummary, Owner,
    PolicyRef, PullRequestInfo, RecordInput, SloReading,
};
use crate::record::RecordError;
use crate::report::{ManifestResult, Report};
use crate::workspace::GateRoot;

/// Where the change records go by default, from `ledger:` in relgate.yaml.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerConfig {
    /// `ledger.branch`: the git branch of the ledger.
    pub branch: Option<String>,
    /// `ledger.dir`: a directory ledger, relative to the gate root (wins over `branch`).
    pub dir: Option<PathBuf>,
    /// `ledger.origin`: the origin the ledger must have (pinned after its first record).
    pub origin: Option<String>,
}

impl LedgerConfig {
    /// Reads `ledger: {branch, dir, origin}` of the merged configuration (validated by the
    /// schema).
    pub fn from_config(config: &GateConfig, root: &GateRoot) -> LedgerConfig {
        let ledger = config.merged.get("ledger");
        let text = |key: &str| {
            ledger
                .and_then(|l| l.get(key))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        LedgerConfig {
            branch: text("branch"),
            dir: text("dir").map(|d| root.dir.join(d)),
            origin: text("origin"),
        }
    }
}

/// Git facts of the repository that holds the gate root.
#[derive(Debug, Clone)]
pub struct RepoFacts {
    /// The work tree (or git directory of a bare repository); `None` outside git.
    pub repo_dir: Option<PathBuf>,
    /// Repository, commit and ref as recorded.
    pub git: GitInfo,
    /// The gate root relative to the work-tree root, `""` or ending in `/`.
    pub prefix: String,
}

/// What the environment says about the run (read by the CLI, never here).
#[derive(Debug, Clone, Default)]
pub struct RunEnvironment {
    /// Repository URL to record when the repository has no `origin` remote
    /// (`$GITHUB_SERVER_URL/$GITHUB_REPOSITORY`).
    pub repo_url: Option<String>,
    /// Ref to record when HEAD is detached, as in CI checkouts (`$GITHUB_REF`), used only
    /// when `commit` is the checked-out commit.
    pub git_ref: Option<String>,
    /// The commit `git_ref` belongs to (`$GITHUB_SHA`).
    pub commit: Option<String>,
}

impl RepoFacts {
    /// Discovers the repository of `root`: `origin` URL (credentials removed), HEAD commit and
    /// ref. Outside git: the repository is `env.repo_url` or the gate root as a `file://` URL,
    /// and the commit is empty.
    pub fn discover(root: &GateRoot, env: &RunEnvironment) -> RepoFacts {
        let local_url = || format!("file://{}", root.dir.display());
        let Ok(repo) = git2::Repository::discover(&root.dir) else {
            return RepoFacts {
                repo_dir: None,
                git: GitInfo {
                    repo: env.repo_url.clone().unwrap_or_else(local_url),
                    commit: String::new(),
                    git_ref: None,
                },
                prefix: String::new(),
            };
        };
        let work_tree = repo
            .workdir()
            .map(|w| std::fs::canonicalize(w).unwrap_or_else(|_| w.to_path_buf()));
        let prefix = work_tree
            .as_deref()
            .and_then(|w| root.dir.strip_prefix(w).ok())
            .map(|rel| {
                let rel = rel.to_string_lossy().replace('\\', "/");
                if rel.is_empty() {
                    rel
                } else {
                    format!("{rel}/")
                }
            })
            .unwrap_or_default();
        let remote = repo
            .find_remote("origin")
            .ok()
            .and_then(|r| r.url().ok().map(strip_credentials));
        let repo_url =
            remote
                .or_else(|| env.repo_url.clone())
                .unwrap_or_else(|| match &work_tree {
                    Some(w) => format!("file://{}", w.display()),
                    None => local_url(),
                });
        let head = repo.head().ok();
        let commit = head
            .as_ref()
            .and_then(|h| h.target())
            .map(|oid| oid.to_string())
            .unwrap_or_default();
        let git_ref = if repo.head_detached().unwrap_or(false) {
            env.git_ref
                .clone()
                .filter(|_| env.commit.as_deref() == Some(commit.as_str()))
        } else {
            head.as_ref()
                .and_then(|h| h.name().ok().map(str::to_owned))
                .or_else(|| {
                    // An unborn branch (no commit yet): HEAD still names it.
                    repo.find_reference("HEAD")
                        .ok()
                        .and_then(|r| r.symbolic_target().ok().flatten().map(str::to_owned))
                })
        };
        RepoFacts {
            repo_dir: Some(work_tree.unwrap_or_else(|| repo.path().to_path_buf())),
            git: GitInfo {
                repo: repo_url,
                commit,
                git_ref,
            },
            prefix,
        }
    }

    /// A gate-root-relative path as a repository path.
    pub fn repo_path(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }
}

/// How a git ledger branch was found before appending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerStart {
    /// The local branch exists (or the ledger is not a git branch).
    Existing,
    /// There was no local branch, but `origin/<branch>`: the local branch now starts there,
    /// so the records continue the published ledger.
    FromRemote { remote_ref: String, commit: String },
    /// Neither exists: the first append starts a new ledger.
    New,
}

/// Before the first append in a fresh clone (CI): when the local ledger branch is missing but
/// `refs/remotes/origin/<branch>` exists, creates the local branch at that commit (a ref
/// write only; work tree, index and HEAD are untouched), so records continue the published
/// ledger instead of starting a new one that could never be pushed.
pub fn prepare_git_ledger(repo_dir: &Path, branch: &str) -> Result<LedgerStart, RecordError> {
    let repo = git2::Repository::open(repo_dir)?;
    let local = crate::record::ledger::ledger_refname(branch);
    if repo.find_reference(&local).is_ok() {
        return Ok(LedgerStart::Existing);
    }
    let Some(short) = local.strip_prefix("refs/heads/") else {
        return Ok(LedgerStart::New);
    };
    let remote_ref = format!("refs/remotes/origin/{short}");
    let Ok(commit) = repo
        .find_reference(&remote_ref)
        .and_then(|r| r.peel_to_commit())
    else {
        return Ok(LedgerStart::New);
    };
    let message = format!("relgate record: start from {remote_ref}");
    match repo.reference(&local, commit.id(), false, &message) {
        Ok(_) => {}
        // Another writer created it meanwhile: use theirs.
        Err(e) if e.code() == git2::ErrorCode::Exists => return Ok(LedgerStart::Existing),
        Err(e) => return Err(e.into()),
    }
    Ok(LedgerStart::FromRemote {
        remote_ref,
        commit: commit.id().to_string(),
    })
}

/// Removes `user:password@` from a URL, so a token in a CI remote never lands in a record
/// (`https://x-access-token:T@github.com/a/b` -> `https://github.com/a/b`). scp-like
/// addresses (`git@github.com:a/b`) carry no secret and are kept.
pub fn strip_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// The URL of a GitHub Actions run from `GITHUB_SERVER_URL`, `GITHUB_REPOSITORY` and
/// `GITHUB_RUN_ID`, when all are set.
pub fn github_run_url(
    server: Option<&str>,
    repository: Option<&str>,
    run_id: Option<&str>,
) -> Option<String> {
    fn non_empty(s: Option<&str>) -> Option<&str> {
        s.map(str::trim).filter(|s| !s.is_empty())
    }
    Some(format!(
        "{}/{}/actions/runs/{}",
        non_empty(server)?.trim_end_matches('/'),
        non_empty(repository)?,
        non_empty(run_id)?
    ))
}

/// Everything a record takes from the run rather than from one manifest.
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub repo: RepoFacts,
    pub policy: PolicyRef,
    pub pull_request: Option<PullRequestInfo>,
    pub ci_run_url: Option<String>,
    /// `timeVerified`: the run's `context.now`.
    pub time_verified: String,
    /// The commits of the recorded range that changed manifests, the config or policies,
    /// oldest first (`--changed` with a base); empty otherwise.
    pub changes: Vec<CommitChange>,
    /// The commit whose merge `pull_request` describes, when known (GitHub resolves the pull
    /// request of the pushed head). A manifest whose last change in `changes` is another commit
    /// is recorded without it: those facts are about another pull request.
    pub pull_request_commit: Option<String>,
    /// The verified policy bundles whose rules decided (`Gate::bundles`), in config order.
    pub bundles: Vec<BundleUsed>,
}

impl RunFacts {
    /// The run facts of `gate`'s run. The policy is `relgate:builtin@VERSION`, followed by
    /// `+<repo>@<commit>` when the repository contributed policies or configuration; its
    /// digest (bundle, team policies, config and data) is the report's `policy_digest`.
    pub fn new(
        gate: &Gate,
        report: &Report,
        repo: RepoFacts,
        pull_request: Option<PullRequestInfo>,
        ci_run_url: Option<String>,
        time_verified: String,
    ) -> RunFacts {
        let builtin: std::collections::HashSet<String> = policy::builtin_sources()
            .into_iter()
            .map(|s| s.path)
            .collect();
        let from_repo =
            gate.config.file.is_some() || gate.policies.files.iter().any(|f| !builtin.contains(f));
        let mut uri = format!("relgate:builtin@{}", env!("CARGO_PKG_VERSION"));
        if from_repo {
            uri.push('+');
            uri.push_str(&repo.git.repo);
            if !repo.git.commit.is_empty() {
                uri.push('@');
                uri.push_str(&repo.git.commit);
            }
        }
        RunFacts {
            policy: PolicyRef {
                uri,
                sha256: report.policy_digest.clone(),
            },
            repo,
            pull_request,
            ci_run_url,
            time_verified,
            changes: Vec::new(),
            pull_request_commit: None,
            bundles: gate
                .bundles()
                .iter()
                .map(|b| BundleUsed {
                    reference: b.reference.clone(),
                    digest: b.digest.clone(),
                    keyid: b.key_id.clone(),
                })
                .collect(),
        }
    }

    /// The pull request to record with the manifest at `repo_path`: the run's, unless it was
    /// resolved for a commit other than the last one of the range that changed this manifest
    /// (or the gate).
    pub fn pull_request_for(&self, repo_path: &str) -> Option<PullRequestInfo> {
        let pr = self.pull_request.clone()?;
        let Some(pr_commit) = &self.pull_request_commit else {
            return Some(pr);
        };
        let last = self
            .changes
            .iter()
            .rev()
            .find(|c| c.gate || c.manifests.iter().any(|m| m == repo_path));
        match last {
            Some(change) if change.commit.to_string() == *pr_commit => Some(pr),
            // Changed in the range, last by another commit: another merge's facts.
            Some(_) => None,
            // Not changed by any commit of the range (a referenced file changed): the facts
            // describe this manifest only when the range is the head commit alone.
            None if self
                .changes
                .iter()
                .all(|c| c.commit.to_string() == *pr_commit) =>
            {
                Some(pr)
            }
            None => None,
        }
    }
}

/// A manifest decision that cannot become a record, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotRecorded {
    pub file: String,
    pub document: usize,
    pub reason: String,
}

/// The record of one manifest decision, or why there is none (a file that could not be read
/// has no digest to name it by).
pub fn record_input(result: &ManifestResult, run: &RunFacts) -> Result<RecordInput, NotRecorded> {
    let not_recorded = |reason: String| NotRecorded {
        file: result.file.clone(),
        document: result.document,
        reason,
    };
    let digest = result.digest.clone().ok_or_else(|| {
        not_recorded(format!(
            "no manifest digest: the file could not be read ({})",
            result.error.as_deref().unwrap_or("unknown error")
        ))
    })?;
    let null = Value::Null;
    let manifest = result
        .manifest
        .as_ref()
        .or_else(|| result.input.as_ref().and_then(|i| i.get("manifest")))
        .unwrap_or(&null);
    let input = result.input.as_ref().unwrap_or(&null);
    let findings = match serde_json::to_value(&result.findings) {
        Ok(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    Ok(RecordInput {
        manifest_path: run.repo.repo_path(&result.file),
        manifest_sha256: digest,
        artifact: artifact(manifest, input, &run.repo),
        decision: result.decision,
        findings,
        manifest: summary(result, manifest),
        git: run.repo.git.clone(),
        changed_in: match git2::Oid::from_str(&run.repo.git.commit) {
            Ok(head) => changed_in(&run.changes, &run.repo.repo_path(&result.file), head),
            Err(_) => Vec::new(),
        },
        pull_request: run.pull_request_for(&run.repo.repo_path(&result.file)),
        slo_readings: slo_readings(input, &run.time_verified),
        ci_run_url: run.ci_run_url.clone(),
        evidence: evidence(input, &run.repo),
        policy: run.policy.clone(),
        bundles: run.bundles.clone(),
        verifier_version: env!("CARGO_PKG_VERSION").to_owned(),
        time_verified: run.time_verified.clone(),
    })
}

/// A scalar as text (a version written as a number still reads as written).
fn scalar(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A digest the record can carry (SHA-256), else `None`.
fn sha256_of(v: Option<&Value>) -> Option<String> {
    let text = v?.as_str()?;
    normalize_sha256("digest", text).ok()
}

fn summary(result: &ManifestResult, manifest: &Value) -> ManifestSummary {
    let at = |pointer: &str| scalar(manifest.pointer(pointer));
    let owner = manifest.pointer("/spec/owner").map(|o| Owner {
        team: scalar(o.get("team")),
        contact: scalar(o.get("contact")),
    });
    let baseline = [
        "/spec/model/baseline/version",
        "/spec/model/baseline/uri",
        "/spec/prompt/baseline/version",
        "/spec/prompt/baseline/path",
    ]
    .iter()
    .find_map(|p| at(p));
    ManifestSummary {
        kind: result
            .kind
            .clone()
            .or_else(|| at("/kind"))
            .unwrap_or_default(),
        name: result
            .name
            .clone()
            .or_else(|| at("/metadata/name"))
            .unwrap_or_default(),
        version: result
            .version
            .clone()
            .or_else(|| at("/metadata/version"))
            .unwrap_or_default(),
        service: at("/metadata/service"),
        environment: at("/metadata/environment"),
        tier: manifest
            .pointer("/metadata/tier")
            .and_then(Value::as_u64)
            .and_then(|t| u8::try_from(t).ok()),
        change_type: at("/metadata/change_type"),
        owner: owner.filter(|o| o.team.is_some() || o.contact.is_some()),
        ticket: at("/metadata/ticket"),
        baseline,
        candidate: at("/metadata/version"),
    }
}

/// The released artifact: the model (its URI and declared digest) or the prompt (for a prompt
/// in git, the digest of the file as read; otherwise the declared digest).
fn artifact(manifest: &Value, input: &Value, repo: &RepoFacts) -> Option<ArtifactRef> {
    match manifest.get("kind").and_then(Value::as_str) {
        Some("ModelRelease") => {
            let model = manifest.pointer("/spec/model")?;
            Some(ArtifactRef {
                name: scalar(model.get("uri")).unwrap_or_else(|| "model".to_owned()),
                sha256: sha256_of(model.get("digest"))?,
            })
        }
        Some("PromptRelease") => {
            let read = input
                .pointer("/evidence/artifacts")
                .and_then(Value::as_array)
                .and_then(|a| {
                    a.iter()
                        .find(|x| x.get("role").and_then(Value::as_str) == Some("prompt"))
                })
                .and_then(|x| {
                    Some(ArtifactRef {
                        name: repo.repo_path(x.get("path")?.as_str()?),
                        sha256: sha256_of(x.get("digest"))?,
                    })
                });
            read.or_else(|| {
                let prompt = manifest.pointer("/spec/prompt")?;
                let path = scalar(prompt.get("path")).unwrap_or_default();
                let name = match scalar(prompt.get("registry")).as_deref() {
                    Some("git") => repo.repo_path(&path),
                    Some(registry) => format!("{registry}:{path}"),
                    None => path,
                };
                Some(ArtifactRef {
                    name,
                    sha256: sha256_of(prompt.get("digest"))?,
                })
            })
        }
        _ => None,
    }
}

/// Evaluation files read for the decision, with the digests of their bytes.
fn evidence(input: &Value, repo: &RepoFacts) -> Vec<EvidenceDigest> {
    let mut out: Vec<EvidenceDigest> = Vec::new();
    let evaluations = input
        .pointer("/evidence/evaluations")
        .and_then(Value::as_array);
    for evaluation in evaluations.into_iter().flatten() {
        for side in ["candidate", "baseline"] {
            let Some(file) = evaluation.get(side) else {
                continue;
            };
            let (Some(path), Some(sha256)) = (
                file.get("path").and_then(Value::as_str),
                sha256_of(file.get("digest")),
            ) else {
                continue;
            };
            let item = EvidenceDigest {
                uri: repo.repo_path(path),
                sha256,
            };
            if !out.contains(&item) {
                out.push(item);
            }
        }
    }
    out
}

/// SLO readings of `input.evidence.slo` (`{name, remaining: {query, file, time, value}}`).
fn slo_readings(input: &Value, now: &str) -> Vec<SloReading> {
    let Some(readings) = input.pointer("/evidence/slo").and_then(Value::as_array) else {
        return Vec::new();
    };
    readings
        .iter()
        .filter_map(|r| {
            let remaining = r.get("remaining")?;
            Some(SloReading {
                name: scalar(r.get("name")),
                query: scalar(remaining.get("query"))
                    .or_else(|| scalar(remaining.get("file")))
                    .unwrap_or_default(),
                time: scalar(remaining.get("time")).unwrap_or_else(|| now.to_owned()),
                value: remaining
                    .get("value")
                    .and_then(Value::as_f64)
                    .filter(|v| v.is_finite()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_stripped_from_remote_urls() {
        assert_eq!(
            strip_credentials("https://x-access-token:ghs_secret@github.com/acme/a.git"),
            "https://github.com/acme/a.git"
        );
        assert_eq!(
            strip_credentials("https://github.com/acme/a"),
            "https://github.com/acme/a"
        );
        assert_eq!(
            strip_credentials("git@github.com:acme/a.git"),
            "git@github.com:acme/a.git"
        );
        assert_eq!(
            strip_credentials("ssh://git@host:22/a@b"),
            "ssh://host:22/a@b"
        );
    }

    #[test]
    fn github_run_url_needs_all_three() {
        assert_eq!(
            github_run_url(Some("https://github.com/"), Some("acme/a"), Some("42")).as_deref(),
            Some("https://github.com/acme/a/actions/runs/42")
        );
        assert_eq!(
            github_run_url(Some("https://github.com"), None, Some("1")),
            None
        );
        assert_eq!(github_run_url(Some(""), Some("a/b"), Some("1")), None);
    }

    #[test]
    fn slo_readings_come_from_the_input() {
        let input = serde_json::json!({"evidence": {"slo": [
            {"name": "avail", "remaining": {"query": "q", "time": "2026-01-01T00:00:00Z", "value": 0.4}},
            {"name": "file", "remaining": {"file": "slo.json", "value": null}},
            {"name": "no-reading"}
        ]}});
        let readings = slo_readings(&input, "NOW");
        assert_eq!(readings.len(), 2);
        assert_eq!(readings[0].query, "q");
        assert_eq!(readings[0].value, Some(0.4));
        assert_eq!(readings[1].query, "slo.json");
        assert_eq!(readings[1].time, "NOW");
        assert_eq!(readings[1].value, None);
    }
}
