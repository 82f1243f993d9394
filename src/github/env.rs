//! What a GitHub Actions runner tells relgate: the repository, the event, the API root, the
//! token and the files it provides ([`GitHubEnv`], read through a lookup function, never the
//! process environment), and the notes a report carries about overrides in effect.

use std::path::PathBuf;

use super::retry::RetryPolicy;
use super::GitHubError;

/// `owner/name` of `GITHUB_REPOSITORY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Repo {
    pub(crate) owner: String,
    pub(crate) name: String,
}

impl Repo {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let (owner, name) = text.trim().split_once('/')?;
        (!owner.is_empty() && !name.is_empty() && !name.contains('/')).then(|| Self {
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// What the runner sets (docs/github.md lists each variable).
#[derive(Debug, Clone)]
pub(crate) struct GitHubEnv {
    /// `GITHUB_REPOSITORY`.
    pub(crate) repository: Option<String>,
    /// `GITHUB_API_URL`, default `https://api.github.com`.
    pub(crate) api_url: String,
    /// `GITHUB_SERVER_URL`, default `https://github.com`.
    pub(crate) server_url: String,
    pub(crate) event_path: Option<PathBuf>,
    pub(crate) event_name: Option<String>,
    pub(crate) sha: Option<String>,
    pub(crate) run_id: Option<String>,
    pub(crate) step_summary: Option<PathBuf>,
    pub(crate) output: Option<PathBuf>,
    pub(crate) workflow: Option<String>,
    /// `RELGATE_GITHUB_TOKEN`, else `GITHUB_TOKEN`.
    pub(crate) token: Option<String>,
    /// `RELGATE_GITHUB_COMMENT_AUTHOR`: the login relgate comments as when its token is a
    /// person's (a PAT). Comments of bot accounts are always relgate's candidates; a user's
    /// comment only when written by this login.
    pub(crate) comment_author: Option<String>,
    pub(crate) retry: RetryPolicy,
}

impl GitHubEnv {
    /// Reads the variables through `lookup` (empty values count as unset).
    pub(crate) fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, GitHubError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        Ok(Self {
            repository: get("GITHUB_REPOSITORY"),
            api_url: get("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".to_owned()),
            server_url: get("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".to_owned()),
            event_path: get("GITHUB_EVENT_PATH").map(PathBuf::from),
            event_name: get("GITHUB_EVENT_NAME"),
            sha: get("GITHUB_SHA"),
            run_id: get("GITHUB_RUN_ID"),
            step_summary: get("GITHUB_STEP_SUMMARY").map(PathBuf::from),
            output: get("GITHUB_OUTPUT").map(PathBuf::from),
            workflow: get("GITHUB_WORKFLOW"),
            token: get("RELGATE_GITHUB_TOKEN").or_else(|| get("GITHUB_TOKEN")),
            comment_author: get("RELGATE_GITHUB_COMMENT_AUTHOR").map(|l| l.trim().to_owned()),
            retry: RetryPolicy::from_lookup(lookup)?,
        })
    }

    /// The URL of this workflow run, when the runner said which.
    pub(crate) fn run_url(&self) -> Option<String> {
        Some(format!(
            "{}/{}/actions/runs/{}",
            self.server_url.trim_end_matches('/'),
            self.repository.as_deref()?,
            self.run_id.as_deref()?
        ))
    }
}

/// Variables relgate reads that change its behaviour and that an earlier step of the job could
/// have set through `$GITHUB_ENV`. Token variables are not listed (their values are secret and
/// choosing the token is their purpose).
pub(crate) const OVERRIDES: [&str; 6] = [
    "RELGATE_GITHUB_COMMENT_AUTHOR",
    "RELGATE_GITHUB_RETRY_ATTEMPTS",
    "RELGATE_GITHUB_RETRY_BASE_MS",
    "RELGATE_GITHUB_RETRY_MAX_MS",
    "RELGATE_GITHUB_DEADLINE_SECS",
    "RELGATE_GITHUB_TIMEOUT_SECS",
];

/// The report's notes on the environment of a GitHub-mode run: `RELGATE_NOW` is ignored (the
/// clock is the runner's), and every other override in effect is named with its value, so
/// nothing a previous step set is silent. No time in them: the same run gives the same
/// comment (the sticky comment is only rewritten when it changes).
pub(crate) fn environment_notes(lookup: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let shown = |v: &str| crate::output::text::field(v).into_owned();
    let mut notes = Vec::new();
    if let Some(value) = lookup("RELGATE_NOW") {
        notes.push(format!(
            "RELGATE_NOW={} is set but ignored: in GitHub mode the clock is the runner's",
            shown(&value)
        ));
    }
    let set: Vec<String> = OVERRIDES
        .iter()
        .filter_map(|name| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| format!("{name}={}", shown(&v)))
        })
        .collect();
    if !set.is_empty() {
        notes.push(format!(
            "environment overrides in effect: {}",
            set.join(", ")
        ));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_defaults_and_token_fallback() {
        let env = GitHubEnv::from_lookup(&|name| match name {
            "GITHUB_REPOSITORY" => Some("acme/models".into()),
            "GITHUB_TOKEN" => Some("t1".into()),
            "RELGATE_GITHUB_TOKEN" => Some("  ".into()),
            "GITHUB_RUN_ID" => Some("42".into()),
            _ => None,
        })
        .expect("valid");
        assert_eq!(env.api_url, "https://api.github.com");
        assert_eq!(env.token.as_deref(), Some("t1"));
        assert_eq!(
            env.run_url().as_deref(),
            Some("https://github.com/acme/models/actions/runs/42")
        );
        assert_eq!(
            Repo::parse("acme/models"),
            Some(Repo {
                owner: "acme".into(),
                name: "models".into()
            })
        );
        assert_eq!(Repo::parse("acme"), None);
        assert_eq!(Repo::parse("a/b/c"), None);
    }
}
