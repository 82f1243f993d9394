//! Asking Prometheus: instant queries over HTTP, concurrently (bounded), each with a timeout
//! and retries with backoff on connection errors, timeouts and 5xx (never on 4xx), all within
//! the run's deadline; redirects only within the allowed URLs; bodies read up to a limit.

use std::sync::Arc;

use super::parse::{describe_body, parse_response, QueryData};
use super::{Options, ReadingError};

async fn read_body(
    mut response: reqwest::Response,
    limit: u64,
    url: &str,
    secs: f64,
) -> Result<Vec<u8>, ReadingError> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if (body.len() + chunk.len()) as u64 > limit {
                    return Err(ReadingError::TooLarge { limit });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(err) => return Err(transport_error(&err, url, secs)),
        }
    }
}

/// The innermost cause, which says what actually happened (refused, reset, ...).
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn transport_error(err: &reqwest::Error, url: &str, secs: f64) -> ReadingError {
    let url = url.to_string();
    if err.is_timeout() {
        ReadingError::Timeout {
            url,
            secs,
            attempts: 1,
        }
    } else if err.is_connect() {
        ReadingError::Connect {
            url,
            message: root_cause(err),
            attempts: 1,
        }
    } else {
        ReadingError::Transport {
            url,
            message: root_cause(err),
            attempts: 1,
        }
    }
}

async fn query_once(
    client: &reqwest::Client,
    request: &Request,
    options: &Options,
) -> Result<QueryData, ReadingError> {
    let secs = options.request_timeout.as_secs_f64();
    let mut params = vec![("query", request.query.as_str())];
    if let Some(time) = &options.time {
        params.push(("time", time.as_str()));
    }
    let response = client
        .get(request.endpoint.clone())
        .query(&params)
        .timeout(options.request_timeout)
        .send()
        .await
        .map_err(|err| transport_error(&err, &request.shown_url, secs))?;
    let status = response.status();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if status.is_redirection() {
        // The redirect policy stopped here: the target is outside the allowed URLs (or the
        // chain is too long). Its Location is not shown either: it is the server's text.
        return Err(ReadingError::Http {
            status: status.as_u16(),
            url: request.shown_url.clone(),
            detail: ": a redirect to a URL outside error_budget.prometheus.allowed_urls (or a chain of more than 5) is not followed".to_string(),
            attempts: 1,
        });
    }
    let body = read_body(response, options.max_body_bytes, &request.shown_url, secs).await?;
    if status.is_success() {
        return parse_response(&body, content_type.as_deref());
    }
    let detail = match parse_response(&body, content_type.as_deref()) {
        Err(ReadingError::Prometheus { error_type }) => {
            format!(": Prometheus error {error_type} (its message is not shown; run the query in Prometheus to see it)")
        }
        Err(ReadingError::Html { .. }) => format!(
            ": an HTML page (a proxy or login page?), {}",
            describe_body(&body, content_type.as_deref())
        ),
        _ => format!(" ({})", describe_body(&body, content_type.as_deref())),
    };
    Err(ReadingError::Http {
        status: status.as_u16(),
        url: request.shown_url.clone(),
        detail,
        attempts: 1,
    })
}

async fn query_with_retries(
    client: &reqwest::Client,
    request: &Request,
    options: &Options,
) -> Result<QueryData, ReadingError> {
    let mut attempt: u32 = 1;
    loop {
        match query_once(client, request, options).await {
            Ok(data) => return Ok(data),
            Err(err) if err.retryable() && attempt <= options.retries => {
                tokio::time::sleep(options.backoff_schedule().base_delay(attempt)).await;
                attempt += 1;
            }
            Err(err) => return Err(err.with_attempts(attempt)),
        }
    }
}

/// One distinct (endpoint, query) pair.
#[derive(Debug, Clone)]
pub(super) struct Request {
    pub(super) endpoint: reqwest::Url,
    pub(super) shown_url: String,
    pub(super) query: String,
}

/// Runs every request concurrently (at most `options.concurrency` at once) within the
/// deadline. One outcome per request, in order.
pub(super) async fn run_requests(
    requests: &[Request],
    options: &Options,
) -> Vec<Result<QueryData, ReadingError>> {
    if requests.is_empty() {
        return Vec::new();
    }
    // Redirects are followed only to an allowed URL: a redirect is the answering server's
    // choice, and following it elsewhere would reach a service the config never named.
    let allowed = options.allowed_urls.clone();
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > 5 || !allowed.iter().any(|a| a.allows(attempt.url())) {
            attempt.stop()
        } else {
            attempt.follow()
        }
    });
    let client = match reqwest::Client::builder()
        .user_agent(concat!("relgate/", env!("CARGO_PKG_VERSION")))
        .redirect(redirects)
        .connect_timeout(options.request_timeout)
        .pool_max_idle_per_host(options.concurrency.max(1))
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            let error = ReadingError::Client(root_cause(&err));
            return requests.iter().map(|_| Err(error.clone())).collect();
        }
    };
    let deadline_len = options.deadline();
    let deadline = tokio::time::Instant::now() + deadline_len;
    let slots = Arc::new(tokio::sync::Semaphore::new(options.concurrency.max(1)));
    let options = Arc::new(options.clone());
    let handles: Vec<_> = requests
        .iter()
        .map(|request| {
            let (client, slots, options, request) = (
                client.clone(),
                Arc::clone(&slots),
                Arc::clone(&options),
                request.clone(),
            );
            tokio::spawn(async move {
                let work = async {
                    let _slot = slots
                        .acquire()
                        .await
                        .map_err(|err| ReadingError::Client(err.to_string()))?;
                    query_with_retries(&client, &request, &options).await
                };
                tokio::time::timeout_at(deadline, work).await.unwrap_or(Err(
                    ReadingError::Deadline {
                        secs: deadline_len.as_secs_f64(),
                    },
                ))
            })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(handles.len());
    for handle in handles {
        outcomes.push(
            handle.await.unwrap_or_else(|err| {
                Err(ReadingError::Client(format!("query task failed: {err}")))
            }),
        );
    }
    outcomes
}
