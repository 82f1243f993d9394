//! The HTTP side of the GitHub integration: an [`octocrab`] client pointed at `GITHUB_API_URL`
//! (GitHub Enterprise's `https://HOST/api/v3` included), relgate's own retry policy around
//! every request, `Link`-header pagination, and errors that name the permission a 403 or 404
//! means is missing.
//!
//! Why not octocrab's `retry` feature: it retries a fixed number of times without reading
//! `Retry-After` or `x-ratelimit-reset`, has no overall deadline, and would retry inside the
//! tower stack where we cannot tell a rate limit (retry) from a missing permission (stop and
//! say which). Requests go through octocrab's raw `_get`/`_post`/`_patch`, which return the
//! response whatever its status; [`Client::send`] decides what each status means.

use std::time::Instant;

use octocrab::Octocrab;
use serde_json::Value;

pub(crate) use super::endpoint::Endpoint;
pub(crate) use super::retry::{classify, RetryHeaders, RetryPolicy, Verdict};
use super::GitHubError;

/// HTTP method of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Post,
    Patch,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Patch => "PATCH",
        }
    }
}

/// A successful (2xx) or a not-found (404, when asked for) response.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Value,
    /// The `rel="next"` URL of the `Link` header.
    pub(crate) next: Option<String>,
}

/// The `rel="next"` target of a `Link` header
/// (`<https://…?page=2>; rel="next", <https://…?page=5>; rel="last"`).
pub(crate) fn next_link(header: &str) -> Option<String> {
    let mut rest = header;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let close = after.find('>')?;
        let url = &after[..close];
        let params_and_more = &after[close + 1..];
        // The parameters of this link run up to the next link's `<` (a URL is always in <>).
        let params = match params_and_more.find('<') {
            Some(next) => &params_and_more[..next],
            None => params_and_more,
        };
        let is_next = params.split(';').any(|param| {
            let Some((name, value)) = param.split_once('=') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_end_matches(',')
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|rel| rel.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(url.to_owned());
        }
        rest = params_and_more;
    }
    None
}

/// The most pages a listing follows: 100 per page, far beyond any real pull request, and a
/// bound on a server whose `next` links never end.
const MAX_PAGES: usize = 1000;

/// An octocrab client for one API root with relgate's retry policy.
pub(crate) struct Client {
    octo: Octocrab,
    /// `GITHUB_API_URL` without a trailing slash; `next` links must stay under it.
    base: String,
    retry: RetryPolicy,
}

impl Client {
    /// A client for `api_url` (e.g. `https://api.github.com`, `https://ghe.example/api/v3`)
    /// that sends `Authorization: Bearer <token>`.
    pub(crate) fn new(api_url: &str, token: &str, retry: RetryPolicy) -> Result<Self, GitHubError> {
        let base = api_url.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(GitHubError::Setup(format!(
                "GITHUB_API_URL={api_url} is not an http(s) URL (e.g. https://api.github.com or \
                 https://github.example.com/api/v3)"
            )));
        }
        let octo = Octocrab::builder()
            .base_uri(base.as_str())
            .map_err(|e| GitHubError::Setup(format!("GITHUB_API_URL={api_url}: {e}")))?
            .personal_token(token.to_owned())
            .add_header(
                http_header("accept"),
                "application/vnd.github+json".to_owned(),
            )
            .set_connect_timeout(Some(retry.timeout))
            .set_read_timeout(Some(retry.timeout))
            .set_write_timeout(Some(retry.timeout))
            .build()
            .map_err(|e| {
                GitHubError::Setup(format!("cannot set up the GitHub client: {}", chain(&e)))
            })?;
        Ok(Self { octo, base, retry })
    }

    /// GET `path` (relative to the API root, e.g. `/repos/o/r/pulls/1`).
    pub(crate) async fn get(&self, path: &str, endpoint: &Endpoint) -> Result<Reply, GitHubError> {
        self.send(Method::Get, path, None, endpoint, false).await
    }

    /// GET that answers a 404 with `Ok` (status 404) instead of an error: for the endpoints
    /// where 404 is an answer (a user who is not a team member).
    pub(crate) async fn get_allow_404(
        &self,
        path: &str,
        endpoint: &Endpoint,
    ) -> Result<Reply, GitHubError> {
        self.send(Method::Get, path, None, endpoint, true).await
    }

    pub(crate) async fn post(
        &self,
        path: &str,
        body: &Value,
        endpoint: &Endpoint,
    ) -> Result<Reply, GitHubError> {
        self.send(Method::Post, path, Some(body), endpoint, false)
            .await
    }

    pub(crate) async fn patch(
        &self,
        path: &str,
        body: &Value,
        endpoint: &Endpoint,
    ) -> Result<Reply, GitHubError> {
        self.send(Method::Patch, path, Some(body), endpoint, false)
            .await
    }

    /// Every item of a paginated list: GET `first` (which should ask `per_page=100`), then
    /// each `Link: rel="next"` in turn. `visit` sees each page's items and may stop the walk
    /// by returning `false`.
    pub(crate) async fn get_pages(
        &self,
        first: &str,
        endpoint: &Endpoint,
        visit: &mut dyn FnMut(&[Value]) -> bool,
    ) -> Result<usize, GitHubError> {
        let mut url = first.to_owned();
        let mut seen = std::collections::HashSet::new();
        for page in 1..=MAX_PAGES {
            if !seen.insert(url.clone()) {
                return Err(self.response_error(
                    endpoint,
                    Method::Get,
                    &url,
                    "the Link header's next page repeats an earlier page",
                ));
            }
            let reply = self.get(&url, endpoint).await?;
            let Value::Array(items) = &reply.body else {
                return Err(self.response_error(
                    endpoint,
                    Method::Get,
                    &url,
                    "expected a JSON array of items",
                ));
            };
            if !visit(items) {
                return Ok(page);
            }
            match reply.next {
                Some(next) => {
                    // Only follow links to the same API root: the token goes with the request.
                    if !next.starts_with(&format!("{}/", self.base)) {
                        return Err(self.response_error(
                            endpoint,
                            Method::Get,
                            &url,
                            &format!("the next page {next} is outside {}", self.base),
                        ));
                    }
                    url = next;
                }
                None => return Ok(page),
            }
        }
        Err(self.response_error(
            endpoint,
            Method::Get,
            first,
            &format!("more than {MAX_PAGES} pages"),
        ))
    }

    fn shown_url(&self, url: &str) -> String {
        if url.starts_with("http://") || url.starts_with("https://") {
            url.to_owned()
        } else {
            format!("{}{url}", self.base)
        }
    }

    fn response_error(
        &self,
        endpoint: &Endpoint,
        method: Method,
        url: &str,
        message: &str,
    ) -> GitHubError {
        GitHubError::Api {
            action: endpoint.action(),
            request: format!("{} {}", method.as_str(), self.shown_url(url)),
            message: message.to_owned(),
        }
    }

    /// One request with retries. `url` is a path under the API root or a full URL under it.
    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        endpoint: &Endpoint,
        allow_404: bool,
    ) -> Result<Reply, GitHubError> {
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            // The timeouts of the HTTP client bound each read, not the exchange: a server
            // sending a byte just inside the read timeout would hold the run for hours. So
            // the whole exchange must end within what is left of the deadline.
            let left = self.retry.deadline.saturating_sub(started.elapsed());
            let outcome = match tokio::time::timeout(left, self.exchange(method, url, body)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!(
                    "no complete response within the deadline of {} s \
                     (RELGATE_GITHUB_DEADLINE_SECS)",
                    self.retry.deadline.as_secs()
                )),
            };
            let (why, server_wait) = match outcome {
                Ok((status, headers, next, text)) => {
                    let now = chrono::Utc::now().timestamp();
                    match classify(status, &headers, &text, now) {
                        Verdict::Final => {
                            return self
                                .finish(method, url, endpoint, allow_404, status, next, &text)
                        }
                        Verdict::Retry { wait, why } => {
                            (format!("{why}: {}", github_message(&text)), wait)
                        }
                    }
                }
                Err(transport) => (transport, None),
            };
            let elapsed = started.elapsed();
            let wait = server_wait.unwrap_or_else(|| self.retry.backoff(attempt));
            let gave_up = |reason: String| GitHubError::GaveUp {
                action: endpoint.action(),
                request: format!("{} {}", method.as_str(), self.shown_url(url)),
                attempts: attempt,
                elapsed,
                last: why.clone(),
                reason,
            };
            if attempt >= self.retry.attempts {
                return Err(gave_up(format!(
                    "no tries left (RELGATE_GITHUB_RETRY_ATTEMPTS={})",
                    self.retry.attempts
                )));
            }
            if elapsed + wait > self.retry.deadline {
                return Err(gave_up(format!(
                    "waiting {} s more would pass the deadline of {} s \
                     (RELGATE_GITHUB_DEADLINE_SECS)",
                    wait.as_secs_f64().ceil(),
                    self.retry.deadline.as_secs()
                )));
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Sends once: status, retry headers, `next` link and body text, or a transport error.
    async fn exchange(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(u16, RetryHeaders, Option<String>, String), String> {
        let uri = url.to_owned();
        let response = match method {
            Method::Get => self.octo._get(uri).await,
            Method::Post => self.octo._post(uri, body).await,
            Method::Patch => self.octo._patch(uri, body).await,
        }
        .map_err(|e| format!("request failed: {}", chain(&e)))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let headers = RetryHeaders {
            retry_after: header("retry-after"),
            remaining: header("x-ratelimit-remaining"),
            reset: header("x-ratelimit-reset"),
        };
        let next = header("link").and_then(|l| next_link(&l));
        let text = read_body(response).await?;
        Ok((status, headers, next, text))
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        method: Method,
        url: &str,
        endpoint: &Endpoint,
        allow_404: bool,
        status: u16,
        next: Option<String>,
        text: &str,
    ) -> Result<Reply, GitHubError> {
        let request = format!("{} {}", method.as_str(), self.shown_url(url));
        if (200..300).contains(&status) || (allow_404 && status == 404) {
            let body = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(text).map_err(|e| GitHubError::Api {
                    action: endpoint.action(),
                    request: request.clone(),
                    message: format!("HTTP {status} with a body that is not JSON: {e}"),
                })?
            };
            return Ok(Reply { status, body, next });
        }
        let message = github_message(text);
        Err(match status {
            401 => GitHubError::Api {
                action: endpoint.action(),
                request,
                message: format!(
                    "HTTP 401 ({message}): the token was refused; check --github-token, \
                     RELGATE_GITHUB_TOKEN or GITHUB_TOKEN"
                ),
            },
            403 | 404 => GitHubError::Permission {
                action: endpoint.action(),
                request,
                status,
                message,
                hint: endpoint.permission_hint(),
            },
            _ => GitHubError::Api {
                action: endpoint.action(),
                request,
                message: format!("HTTP {status}: {message}"),
            },
        })
    }
}

/// GitHub's error text: `message`, the `errors` details and `documentation_url` of an error
/// body, or the start of a body that is not one.
pub(crate) fn github_message(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(body) if body.get("message").is_some() => {
            let mut out = body
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if let Some(errors) = body.get("errors").and_then(Value::as_array) {
                let details: Vec<String> = errors
                    .iter()
                    .map(|e| match e {
                        Value::String(s) => s.clone(),
                        other => other
                            .get("message")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                            .unwrap_or_else(|| other.to_string()),
                    })
                    .collect();
                if !details.is_empty() {
                    out.push_str(&format!(" ({})", details.join("; ")));
                }
            }
            if let Some(doc) = body.get("documentation_url").and_then(Value::as_str) {
                out.push_str(&format!(" [{doc}]"));
            }
            out
        }
        _ => {
            let trimmed = text.trim();
            if trimmed.is_empty() {
                "empty body".to_owned()
            } else {
                let short: String = trimmed.chars().take(200).collect();
                format!("body: {short}")
            }
        }
    }
}

/// An error with its sources, `a: b: c`.
fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = inner.source();
    }
    out
}

/// A header name known to be valid (reqwest re-exports the `http` 1.x type octocrab takes).
fn http_header(name: &'static str) -> reqwest::header::HeaderName {
    reqwest::header::HeaderName::from_static(name)
}

/// The most of a response body relgate reads: GitHub's largest answers it asks for (100
/// reviews or commits a page) are a few hundred KiB.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// A response body as text, read frame by frame and refused past [`MAX_RESPONSE_BYTES`]
/// (read whole, a server answering with gigabytes would exhaust the memory).
async fn read_body(
    response: http::Response<http_body_util::combinators::BoxBody<bytes::Bytes, octocrab::Error>>,
) -> Result<String, String> {
    use http_body_util::BodyExt as _;
    let too_large = || format!("the response is larger than {MAX_RESPONSE_BYTES} bytes; not read");
    let announced = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_RESPONSE_BYTES as u64) {
        return Err(too_large());
    }
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("reading the response failed: {}", chain(&e)))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > MAX_RESPONSE_BYTES {
                return Err(too_large());
            }
            bytes.extend_from_slice(&data);
        }
    }
    String::from_utf8(bytes).map_err(|_| "the response is not UTF-8 text".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_is_found_among_the_relations() {
        let header = r#"<https://api.github.com/repositories/1/issues/3/comments?per_page=100&page=2>; rel="next", <https://api.github.com/repositories/1/issues/3/comments?per_page=100&page=3>; rel="last""#;
        assert_eq!(
            next_link(header).as_deref(),
            Some("https://api.github.com/repositories/1/issues/3/comments?per_page=100&page=2")
        );
        // Last page: only prev and first.
        let last = r#"<https://x/a?page=2>; rel="prev", <https://x/a?page=1>; rel="first""#;
        assert_eq!(next_link(last), None);
        // Order, spacing, unquoted and multi-valued rel, a comma inside the URL.
        let odd = r#"<https://x/a?page=1>;rel=first,<https://x/a?q=a,b&page=4> ; rel="last next""#;
        assert_eq!(next_link(odd).as_deref(), Some("https://x/a?q=a,b&page=4"));
        assert_eq!(next_link(""), None);
        assert_eq!(next_link("garbage <unterminated"), None);
        // A parameter that merely contains "next" is not the relation.
        assert_eq!(next_link(r#"<https://x/a>; title="next""#), None);
    }

    #[test]
    fn github_error_bodies_become_one_line() {
        let body = r#"{"message":"Validation Failed","errors":[{"resource":"CheckRun","code":"invalid","message":"annotations too many"}],"documentation_url":"https://docs.github.com/rest/checks/runs"}"#;
        assert_eq!(
            github_message(body),
            "Validation Failed (annotations too many) [https://docs.github.com/rest/checks/runs]"
        );
        assert_eq!(github_message(""), "empty body");
        assert_eq!(
            github_message("<html>bad gateway</html>"),
            "body: <html>bad gateway</html>"
        );
    }
}
