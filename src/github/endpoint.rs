//! What a GitHub API request is for ([`Endpoint`]): the action and the permission its errors
//! name.

/// What a request is for: names the action and the permission in error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    PullRequest {
        number: u64,
    },
    Reviews {
        number: u64,
    },
    PullCommits {
        number: u64,
    },
    CommitPulls {
        sha: String,
    },
    Team {
        org: String,
        slug: String,
    },
    TeamMembership {
        org: String,
        slug: String,
        user: String,
    },
    Permission {
        user: String,
    },
    ListComments {
        number: u64,
    },
    CreateComment {
        number: u64,
    },
    UpdateComment {
        id: u64,
    },
    CreateCheckRun,
    UpdateCheckRun {
        id: u64,
    },
}

impl Endpoint {
    /// "read pull request #12", for "cannot …".
    pub(crate) fn action(&self) -> String {
        match self {
            Self::PullRequest { number } => format!("read pull request #{number}"),
            Self::Reviews { number } => format!("list the reviews of pull request #{number}"),
            Self::PullCommits { number } => format!("list the commits of pull request #{number}"),
            Self::CommitPulls { sha } => {
                format!(
                    "find the pull request of commit {}",
                    sha.get(..12).unwrap_or(sha)
                )
            }
            Self::Team { org, slug } => format!("read team {org}/{slug}"),
            Self::TeamMembership { org, slug, user } => {
                format!("read whether {user} is a member of team {org}/{slug}")
            }
            Self::Permission { user } => {
                format!("read {user}'s permission on the repository")
            }
            Self::ListComments { number } => {
                format!("list the comments of pull request #{number}")
            }
            Self::CreateComment { number } => {
                format!("post the report comment on pull request #{number}")
            }
            Self::UpdateComment { id } => format!("update the report comment {id}"),
            Self::CreateCheckRun => "create the relgate check run".to_owned(),
            Self::UpdateCheckRun { id } => format!("add annotations to check run {id}"),
        }
    }

    /// What a 403 or 404 from this endpoint most likely means, and how to fix it.
    pub(crate) fn permission_hint(&self) -> &'static str {
        match self {
            Self::PullRequest { .. } | Self::Reviews { .. } | Self::PullCommits { .. } => {
                "the token needs `pull-requests: read` (workflow `permissions:`, or a fine-grained \
                 token / GitHub App with Pull requests: read), or the pull request does not exist \
                 in this repository"
            }
            Self::CommitPulls { .. } => {
                "the token needs `contents: read` and `pull-requests: read`"
            }
            Self::Permission { .. } => {
                "reading a reviewer's permission needs `metadata: read`, which every \
                 GITHUB_TOKEN has; a fine-grained token or GitHub App needs Metadata: read"
            }
            Self::Team { .. } | Self::TeamMembership { .. } => {
                "the token cannot read the team: reading team membership needs a classic token \
                 with `read:org` or a GitHub App with organization permission \"Members: read\"; \
                 the workflow's GITHUB_TOKEN can never read team membership. Pass such a token \
                 with --github-token (RELGATE_GITHUB_TOKEN). Also check the team slug and \
                 organization in relgate.yaml `approvals`"
            }
            Self::ListComments { .. } | Self::CreateComment { .. } | Self::UpdateComment { .. } => {
                "the token needs `pull-requests: write` (or `issues: write`) to post the report \
                 comment; pull requests from forks get a read-only GITHUB_TOKEN (publish with \
                 --publish check-run,summary there, or from a workflow_run workflow)"
            }
            Self::CreateCheckRun | Self::UpdateCheckRun { .. } => {
                "the token needs `checks: write` to create check runs; pull requests from forks \
                 get a read-only GITHUB_TOKEN"
            }
        }
    }
}
