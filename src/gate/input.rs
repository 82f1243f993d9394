//! The policy input document (docs/policy-contract.md, `schemas/input.schema.json`): what a
//! policy sees as `input` for one manifest document, as typed structs.
//!
//! Field order is the order the policies and change records have always seen (the JSON is
//! built with `preserve_order`), so the bytes of an input do not depend on how it is built:
//! records and snapshots hash the same. A test validates what these structs produce against
//! the schema.

use serde::Serialize;
use serde_json::Value;

use super::Gate;
use crate::error::{Error, Result};
use crate::manifest::{self, Document, SourceFile};
use crate::workspace::{GateRoot, PathError};

/// `input`: one manifest document and everything gathered for it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PolicyInput<'a> {
    /// The document as written (YAML -> JSON), whether or not it passed its schema.
    pub(crate) manifest: &'a Value,
    pub(crate) file: FileRef<'a>,
    pub(crate) evidence: Evidence<'a>,
    pub(crate) context: Context<'a>,
}

/// `input.file`: where the document came from.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FileRef<'a> {
    /// Relative to the gate root.
    pub(crate) path: &'a str,
    /// sha256 of the whole file.
    pub(crate) digest: &'a str,
    /// Index of the document in the file, from 0.
    pub(crate) document: usize,
}

/// `input.evidence`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Evidence<'a> {
    pub(crate) artifacts: Vec<Artifact<'a>>,
    /// One normalised result per `spec.evaluations` entry (`evidence::gather_evaluations`).
    pub(crate) evaluations: Value,
    /// One reading per `spec.slo` entry (`evidence::slo`).
    pub(crate) slo: Value,
}

/// `input.evidence.artifacts[]`: a released file that lives in the repository.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Artifact<'a> {
    /// `prompt` or `model`.
    pub(crate) role: &'static str,
    /// As written in the manifest ("" for `registry: git` without a path).
    pub(crate) path: &'a str,
    /// The manifest's `digest`, as written (null when absent).
    pub(crate) declared_digest: Option<&'a Value>,
    /// The file's sha256, or null when it could not be read.
    pub(crate) digest: Option<String>,
    /// Why it could not be read, or null.
    pub(crate) error: Option<String>,
}

/// `input.context`: when and where the evaluation runs.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Context<'a> {
    /// RFC 3339 UTC.
    pub(crate) now: &'a str,
    /// The date of `now` (YYYY-MM-DD).
    pub(crate) today: &'a str,
    /// Null outside a git work tree.
    pub(crate) git: &'a Option<GitContext>,
    /// The validated pull-request context, `{unavailable}`, or null.
    pub(crate) pull_request: &'a Value,
}

/// `input.context.git`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct GitContext {
    pub(crate) commit: Option<String>,
    #[serde(rename = "ref")]
    pub(crate) reference: Option<String>,
}

impl Gate {
    /// The policy input of one document. `slo` is the document's `evidence.slo` (from
    /// [`crate::evidence::slo::gather_blocking`]).
    pub(crate) fn policy_input<'a>(
        &'a self,
        source: &'a SourceFile,
        document: &'a Document,
        slo: Value,
    ) -> PolicyInput<'a> {
        let manifest = &document.value;
        PolicyInput {
            manifest,
            file: FileRef {
                path: &source.path,
                digest: &source.digest,
                document: document.index,
            },
            evidence: Evidence {
                artifacts: self.artifacts(manifest),
                evaluations: crate::evidence::gather_evaluations(
                    &self.root,
                    manifest,
                    self.config.max_file_bytes,
                ),
                slo,
            },
            context: Context {
                now: &self.now,
                today: self.now.get(..10).unwrap_or_default(),
                git: &self.git,
                pull_request: &self.pull_request,
            },
        }
    }

    /// [`Gate::policy_input`] as the JSON document the policies evaluate and records keep.
    pub fn input(&self, source: &SourceFile, document: &Document, slo: Value) -> Result<Value> {
        // Serialising cannot fail (every map key is a string, no Serialize impl errors), but
        // an input that could not be built must stop the document, not evaluate as null.
        serde_json::to_value(self.policy_input(source, document, slo)).map_err(|err| {
            Error::Policy(format!("internal error: building the policy input: {err}"))
        })
    }

    /// The released files that live in the repository, each with its sha256, for
    /// ARTIFACT-DIGEST and EVAL-PROMPT-MISMATCH (`input.evidence.artifacts`).
    ///
    /// The manifest's `registry` does not decide whether a file is checked: a PR author could
    /// otherwise write `registry: other` beside a repository `path` and ship an unreviewed
    /// prompt. So EVERY name the manifest gives the released artifact that can be a repository
    /// path is resolved: a prompt's `spec.prompt.path` and `spec.prompt.uri`, a model's
    /// `spec.model.uri`, written as a relative path (optionally after a `file:` scheme in any
    /// case). Each one that names something inside the gate root is an artifact:
    /// - a file is digest-checked (a prompt naming one file by `path` and another by `uri` has
    ///   both checked: either could be what ships);
    /// - a directory is an artifact with an error: a directory has no sha256 to pin, and
    ///   skipping it would let a repository directory of weights ship unchecked;
    /// - something that cannot be used (a symlink out of the root, `..`, unreadable, too large)
    ///   is an artifact with an error.
    ///
    /// A name that matches nothing in the repository is a registry's own name
    /// (`registry.example/ml/scorer:31`) and is not recorded, except the name `registry: git`
    /// promises as a repository file (`path`, else `uri`): missing, it is an artifact with an
    /// error (fail closed).
    fn artifacts<'m>(&self, manifest: &'m Value) -> Vec<Artifact<'m>> {
        let (role, section) = match manifest.get("kind").and_then(Value::as_str) {
            Some("PromptRelease") => ("prompt", "/spec/prompt"),
            Some("ModelRelease") => ("model", "/spec/model"),
            _ => return Vec::new(),
        };
        let Some(section) = manifest.pointer(section) else {
            return Vec::new();
        };
        let registry = section.get("registry").and_then(Value::as_str);
        let mut names: Vec<&'m str> = Vec::with_capacity(2);
        if role == "prompt" {
            names.extend(section.get("path").and_then(Value::as_str));
        }
        if let Some(uri) = section
            .get("uri")
            .and_then(Value::as_str)
            .and_then(repository_path)
        {
            if !names.contains(&uri) {
                names.push(uri);
            }
        }
        // A git prompt promises a repository file: the first name (its path, else its uri).
        let git_prompt = role == "prompt" && registry == Some("git");
        let declared_digest = section.get("digest");
        let artifact = |path: &'m str, digest: Option<String>, error: Option<String>| Artifact {
            role,
            path,
            declared_digest,
            digest,
            error,
        };
        let mut artifacts = Vec::with_capacity(names.len());
        for (index, written) in names.iter().copied().enumerate() {
            let is_promised = git_prompt && index == 0;
            match self.root.confine(written) {
                Ok(path) if path.is_dir() => artifacts.push(artifact(
                    written,
                    None,
                    Some(format!(
                        "{written} is a directory of the repository, which has no sha256 to compare with the pinned digest; release one file (e.g. an archive of the directory) and pin its sha256, or, if {written} is a registry's name and not this directory, write it with the registry's scheme (e.g. hf://{written})"
                    )),
                )),
                Ok(path) => {
                    match manifest::read_limited(&path, written, self.config.max_file_bytes) {
                        Ok(file) => artifacts.push(artifact(written, Some(file.digest), None)),
                        Err(err) => artifacts.push(artifact(written, None, Some(err.to_string()))),
                    }
                }
                Err(PathError::NotFound { .. }) if !is_promised => {}
                Err(err) => artifacts.push(artifact(written, None, Some(err.to_string()))),
            }
        }
        // registry git without a path is a SCHEMA finding; ARTIFACT-DIGEST still fails closed
        // on the missing artifact.
        if git_prompt && names.is_empty() {
            artifacts.push(artifact(
                "",
                None,
                Some("registry: git promises a repository file, but spec.prompt names none (no path)".to_owned()),
            ));
        }
        artifacts
    }
}

/// The repository path a `uri` names, if it can name one: a relative path
/// (`models/ranker.onnx`), also after a `file:` or `file://` scheme, in any case (schemes are
/// case-insensitive: `FILE:models/m.onnx` is the same file). A URI with another scheme
/// (`s3://…`, `hf://…`, `models:/…`) or an absolute path is not a file of the repository.
/// Anything else (`registry.example/ml/scorer:31`) is tried as a path and skipped when nothing
/// of that name exists.
pub(crate) fn repository_path(uri: &str) -> Option<&str> {
    let rest = strip_prefix_ignore_ascii_case(uri, "file://")
        .or_else(|| strip_prefix_ignore_ascii_case(uri, "file:"))
        .unwrap_or(uri);
    let first = rest.split('/').next().unwrap_or_default();
    if rest.is_empty() || rest.starts_with('/') || rest.contains("://") || first.ends_with(':') {
        return None;
    }
    Some(rest)
}

fn strip_prefix_ignore_ascii_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// `{commit, ref}` of the repository holding the gate root, or null outside git.
pub(super) fn git_context(root: &GateRoot) -> Option<GitContext> {
    let repo = git2::Repository::discover(&root.dir).ok()?;
    let head = repo.head().ok();
    Some(GitContext {
        commit: head
            .as_ref()
            .and_then(|h| h.target())
            .map(|oid| oid.to_string()),
        reference: head
            .as_ref()
            .and_then(|h| h.name().ok().map(str::to_string)),
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::gate::CheckSettings;
    use crate::line_index::Lines;
    use crate::schema;

    fn keys(value: &Value) -> Vec<&str> {
        value
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// What the typed input produces is what `schemas/input.schema.json` describes, in the
    /// field order the policies and records have always seen (the JSON keeps insertion order).
    #[test]
    fn every_demo_input_matches_the_schema_in_the_contract_order() {
        let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/demo");
        let settings = CheckSettings {
            cwd: demo,
            now: "2026-11-27T12:00:00Z".to_string(),
            // The demo's live SLOs become unknown readings: no network in a unit test.
            offline: true,
            ..CheckSettings::default()
        };
        let mut gate = Gate::open(&settings).expect("open the demo");
        let files = gate.discover(&[]).expect("discover the demo");
        let empty = Lines::for_file(String::new(), 1);
        let lines = empty.first().expect("one line index");
        let pull_request = serde_json::json!({
            "number": 7, "title": "t", "state": "open", "draft": false, "merged": false,
            "author": "dana", "labels": ["x"], "merged_by": null, "base_ref": "main",
            "base_sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e", "head_ref": "t",
            "head_sha": "6dcb09b5b57875f334f61aebed695e2e4193db5f", "reviews": [],
            "approvers": [], "teams": {}
        });
        let contexts = [
            None,
            Some(pull_request),
            Some(crate::pull_request::unavailable("a push event")),
        ];
        let (mut checked, mut artifacts) = (0, 0);
        for context in contexts {
            gate.set_pull_request(context).expect("a valid context");
            for found in &files {
                let (source, documents) = gate.load(found).expect("a demo manifest loads");
                let manifests: Vec<&Value> = documents.iter().map(|d| &d.value).collect();
                let readings =
                    crate::evidence::slo::gather_blocking(&gate.root, &manifests, &gate.slo);
                for (document, slo) in documents.iter().zip(readings) {
                    let input = gate
                        .input(&source, document, crate::evidence::slo::to_value(&slo))
                        .expect("the input");
                    let violations =
                        schema::validate("Input", &input, lines).expect("the schema compiles");
                    assert!(violations.is_empty(), "{}: {violations:?}", source.path);
                    assert_eq!(keys(&input), ["manifest", "file", "evidence", "context"]);
                    assert_eq!(keys(&input["file"]), ["path", "digest", "document"]);
                    assert_eq!(
                        keys(&input["evidence"]),
                        ["artifacts", "evaluations", "slo"]
                    );
                    assert_eq!(
                        keys(&input["context"]),
                        ["now", "today", "git", "pull_request"]
                    );
                    assert_eq!(input["context"]["today"], "2026-11-27");
                    assert_eq!(keys(&input["context"]["git"]), ["commit", "ref"]);
                    for artifact in input["evidence"]["artifacts"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        assert_eq!(
                            keys(artifact),
                            ["role", "path", "declared_digest", "digest", "error"]
                        );
                        artifacts += 1;
                    }
                    checked += 1;
                }
            }
        }
        // The demo has 15 release documents, several with repository artifacts.
        assert!(checked >= 45, "{checked} inputs");
        assert!(artifacts > 0);
        // A check of another commit's tree has a git context without a ref: still valid.
        gate.set_git_context(GitContext {
            commit: Some("0".repeat(40)),
            reference: None,
        });
        let (source, documents) = gate.load(&files[0]).expect("load");
        let input = gate
            .input(&source, &documents[0], Value::Array(Vec::new()))
            .expect("the input");
        assert_eq!(input["context"]["git"]["ref"], Value::Null);
        let violations = schema::validate("Input", &input, lines).expect("the schema compiles");
        assert!(violations.is_empty(), "{violations:?}");
    }
}
