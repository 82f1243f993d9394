//! `relgate init`: scaffolds a repository with a commented `relgate.yaml`, a sample prompt
//! release whose prompt digest is computed on the spot (so it passes the gate as written), and
//! a GitHub workflow. Existing files are never overwritten without `--force`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::manifest::sha256_digest;

const CONFIG: &str = "\
# relgate gate configuration. Every key is optional: built-in defaults cover them all
# (`relgate schema GateConfig` lists every key). Objects merge with the defaults key by key;
# a list or a value written here replaces the default.
apiVersion: relgate.dev/v1
kind: GateConfig
manifests: [\"releases/**/*.yaml\", \"releases/**/*.yml\"]
policies: [.relgate/policies]
# pii:
#   allowed_sinks: [langfuse, datadog]
# rollback:
#   max_minutes: {\"0\": 10, \"1\": 10, \"2\": 30, \"3\": 60}
";

const PROMPT: &str = "\
You are a helpful assistant for {{product}}. Answer the user's question using only the
context below. If the answer is not in the context, say that you do not know.

Context:
{{context}}

Question: {{question}}
";

/// The shipped example workflow (check on pull requests, record on the default branch), so
/// `relgate init` and the docs can never disagree.
const WORKFLOW: &str = include_str!("../examples/workflows/relgate.yml");

fn sample_release(prompt_digest: &str) -> String {
    format!(
        "\
# A sample prompt release. `relgate check` evaluates it; edit it to describe a real release.
apiVersion: relgate.dev/v1
kind: PromptRelease
metadata:
  name: example-answer
  version: \"1\"
  service: example-assistant
  environment: dev
  tier: 3
  change_type: feature
spec:
  owner: {{team: example-team, contact: owner@example.com}}
  prompt:
    registry: git
    path: prompts/example.prompt
    # sha256 of the prompt file: relgate blocks the release if the file changes without this.
    digest: {prompt_digest}
  rollout: {{strategy: canary, steps: [10, 50, 100], bake_minutes: 30}}
  rollback: {{to_version: \"0\", max_minutes: 30, automated: true}}
  logging:
    content_capture: false
    sinks:
      - {{name: prometheus, region: eu-west-1, data_classes: [metrics], retention_days: 30}}
"
    )
}

/// Writes the scaffold into `dir`; returns the files written.
pub(crate) fn scaffold(dir: &Path, force: bool) -> Result<Vec<PathBuf>> {
    let files: Vec<(PathBuf, String)> = vec![
        (dir.join("relgate.yaml"), CONFIG.to_string()),
        (dir.join("prompts/example.prompt"), PROMPT.to_string()),
        (
            dir.join("releases/example-answer.yaml"),
            sample_release(&sha256_digest(PROMPT.as_bytes())),
        ),
        (
            dir.join(".github/workflows/relgate.yml"),
            WORKFLOW.to_string(),
        ),
    ];
    if !force {
        let existing: Vec<String> = files
            .iter()
            .filter(|(path, _)| path.exists())
            .map(|(path, _)| path.display().to_string())
            .collect();
        if !existing.is_empty() {
            return Err(Error::Usage(format!(
                "refusing to overwrite {}; use --force to replace them",
                existing.join(", ")
            )));
        }
    }
    let mut written = Vec::new();
    for (path, contents) in files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&path, contents).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::WORKFLOW;

    /// `pull_request` fires on opened/synchronize/reopened by default: a pull request whose
    /// base is changed would keep a check computed against the old base. The workflow must
    /// also run on `edited`, and its gate job must run for a base change.
    #[test]
    fn the_workflow_reruns_when_the_base_changes() {
        let workflow: serde_yaml::Value = serde_yaml::from_str(WORKFLOW).expect("yaml");
        let types: Vec<&str> = workflow["on"]["pull_request"]["types"]
            .as_sequence()
            .map(|s| s.iter().filter_map(|t| t.as_str()).collect())
            .unwrap_or_default();
        for needed in ["opened", "synchronize", "reopened", "edited"] {
            assert!(types.contains(&needed), "{needed} in {types:?}");
        }
        let condition = workflow["jobs"]["gate"]["if"].as_str().unwrap_or_default();
        assert!(
            condition.contains("github.event.changes.base"),
            "an `edited` run is for a base change: {condition}"
        );
    }
}
