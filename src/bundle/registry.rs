//! Talking to an OCI registry: pushing a packed bundle (with `oci-client`, the ORAS project's
//! Rust client) and fetching one into the cache (with a small client of relgate's own, so that
//! every byte a registry sends is bounded and every redirect is checked).
//!
//! The registry is untrusted. Fetching reads the OCI manifest (refused unless its
//! `Content-Type` is the OCI image manifest's, refused above [`MAX_OCI_MANIFEST_BYTES`] before
//! or while it streams, and unless it hashes to the pinned digest), checks its shape, then
//! streams each blob with a byte bound (the smaller of the descriptor's size and the media
//! type's limit) and stores it only when it hashes to its descriptor. Error bodies are never
//! read. Every request has a connect and a read timeout and the whole fetch a deadline.
//! Nothing is interpreted here: [`super::verify_artifact`] checks the signature and files
//! afterwards.
//!
//! Redirects (registries send blob downloads to a CDN) are followed at most
//! [`MAX_REDIRECTS`] times, and only: within the same `host:port` for a loopback registry; to
//! HTTPS on a host that is not loopback, private or link-local for any other. A token realm
//! obeys the same rule.
//!
//! Plain HTTP is used only for loopback registries (`127.0.0.1`, `localhost`, `[::1]`), as
//! Docker does; every other registry is HTTPS. Credentials ([`Credentials::resolve`]) come
//! from the Docker config file (`credHelpers`, `credsStore`, `auths`, in Docker's order) or,
//! for `ghcr.io`, `GITHUB_TOKEN`; they are never printed.

use std::net::IpAddr;
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::{Client, Reference};
use reqwest::Url;

pub(crate) use super::credentials::{Credentials, GithubToken};

use super::cache::Cache;
use super::{
    digest_of, err, parse_oci_manifest, BundleError, BundleRef, Packed, Result,
    MAX_BUNDLE_MANIFEST_BYTES, MAX_FILES_BYTES, MAX_OCI_MANIFEST_BYTES, MAX_SIGNATURE_BYTES,
    OCI_MANIFEST_MEDIA_TYPE,
};

/// Connect timeout of every request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default read timeout (no byte for this long fails the request); `RELGATE_REGISTRY_TIMEOUT`.
pub(crate) const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The deadline of one whole push or fetch, in read timeouts: a registry that drips one byte
/// just inside every read timeout still ends.
const DEADLINE_FACTOR: u32 = 4;
/// Redirects followed per request.
pub(crate) const MAX_REDIRECTS: usize = 5;
/// Bound of a token answer from a registry's auth realm.
const MAX_TOKEN_BYTES: u64 = 64 * 1024;

/// How registries are reached: the credentials and the read timeout.
#[derive(Clone, Debug)]
pub struct Remote {
    pub(crate) credentials: Credentials,
    pub(crate) read_timeout: Duration,
}

impl Remote {
    /// Anonymous, default timeout.
    pub fn anonymous() -> Remote {
        Remote::new(Credentials::default(), None)
    }

    pub(crate) fn new(credentials: Credentials, read_timeout: Option<Duration>) -> Remote {
        Remote {
            credentials,
            read_timeout: read_timeout.unwrap_or(DEFAULT_READ_TIMEOUT),
        }
    }

    fn deadline(&self) -> Duration {
        self.read_timeout.saturating_mul(DEADLINE_FACTOR)
    }
}

fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    match authority.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            (host, Some(port))
        }
        _ => (authority, None),
    }
}

fn is_loopback(registry: &str) -> bool {
    matches!(
        split_host_port(registry).0,
        "127.0.0.1" | "localhost" | "[::1]"
    )
}

fn scheme(registry: &str) -> &'static str {
    if is_loopback(registry) {
        "http"
    } else {
        "https"
    }
}

/// Whether `host` (as in a URL, IPv6 in brackets) names this machine or a private network.
fn is_local_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(IpAddr::V4(ip)) => {
            ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
        }
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback()
                || ip.is_unspecified()
                // fc00::/7 unique local, fe80::/10 link local
                || (ip.segments()[0] & 0xfe00) == 0xfc00
                || (ip.segments()[0] & 0xffc0) == 0xfe80
                || ip.to_ipv4_mapped().is_some()
        }
        Err(_) => false,
    }
}

/// Whether a request that started at `registry` may go to `url` (a redirect or a token realm).
fn allowed_target(registry: &str, url: &Url) -> std::result::Result<(), String> {
    let host = url.host_str().unwrap_or_default();
    if is_loopback(registry) {
        let (want_host, want_port) = split_host_port(registry);
        let want_port: u16 = want_port.and_then(|p| p.parse().ok()).unwrap_or(80);
        if url.scheme() != "http"
            || host != want_host
            || url.port_or_known_default() != Some(want_port)
        {
            return Err(format!(
                "a loopback registry may only send relgate to itself ({registry}), not to {}",
                origin(url)
            ));
        }
        return Ok(());
    }
    if url.scheme() != "https" {
        return Err(format!("{} is not HTTPS", origin(url)));
    }
    if is_local_host(host) {
        return Err(format!(
            "{} is a loopback, private or link-local address",
            origin(url)
        ));
    }
    Ok(())
}

/// `scheme://host:port` of a URL: never its path or query (which may carry a signed token).
fn origin(url: &Url) -> String {
    match url.port() {
        Some(port) => format!(
            "{}://{}:{port}",
            url.scheme(),
            url.host_str().unwrap_or_default()
        ),
        None => format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default()),
    }
}

#[derive(Debug)]
struct RedirectRefused(String);

impl std::fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "redirect refused: {}", self.0)
    }
}

impl std::error::Error for RedirectRefused {}

/// The HTTP client of a fetch from `registry`: timeouts, the redirect rule, no proxy for a
/// loopback registry.
fn http_client(registry: &str, remote: &Remote) -> Result<reqwest::Client> {
    let origin_registry = registry.to_string();
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            let why = format!("more than {MAX_REDIRECTS} redirects");
            return attempt.error(RedirectRefused(why));
        }
        match allowed_target(&origin_registry, attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(why) => attempt.error(RedirectRefused(why)),
        }
    });
    let mut builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(remote.read_timeout)
        .redirect(policy)
        .user_agent(concat!("relgate/", env!("CARGO_PKG_VERSION")));
    if is_loopback(registry) {
        builder = builder.no_proxy();
    }
    builder
        .build()
        .map_err(|e| BundleError(format!("cannot create the HTTP client: {e}")))
}

/// An error and its causes, one sentence (reqwest's own message names only the URL).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

fn oci_client(registry: &str, remote: &Remote) -> Client {
    Client::new(ClientConfig {
        protocol: if is_loopback(registry) {
            ClientProtocol::HttpsExcept(vec![registry.to_string()])
        } else {
            ClientProtocol::Https
        },
        connect_timeout: Some(CONNECT_TIMEOUT),
        read_timeout: Some(remote.read_timeout),
        platform_resolver: None,
        ..ClientConfig::default()
    })
}

fn reference(r: &BundleRef) -> Reference {
    match (&r.tag, &r.digest) {
        (_, Some(digest)) => {
            Reference::with_digest(r.registry.clone(), r.repository.clone(), digest.clone())
        }
        (Some(tag), None) => {
            Reference::with_tag(r.registry.clone(), r.repository.clone(), tag.clone())
        }
        // BundleRef::parse refuses a reference with neither.
        (None, None) => {
            Reference::with_tag(r.registry.clone(), r.repository.clone(), "latest".into())
        }
    }
}

/// Runs a future on a private runtime in its own thread, so this works whether or not the
/// caller is inside a runtime, under the overall deadline.
fn run<T: Send + 'static>(
    what: String,
    deadline: Duration,
    future: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| BundleError(format!("cannot start the network runtime: {e}")))?;
        runtime.block_on(async move {
            match tokio::time::timeout(deadline, future).await {
                Ok(result) => result,
                Err(_) => err(format!(
                    "{what}: the registry did not finish within {}s; refusing it",
                    deadline.as_secs()
                )),
            }
        })
    })
    .join()
    .map_err(|_| BundleError("the registry client crashed".into()))?
}

const AUTH_HINT: &str = "; check the credentials for this registry in the Docker config file \
     (REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json or ~/.docker/config.json: auths, \
     credHelpers or credsStore; GITHUB_TOKEN for ghcr.io)";

/// Describes an `oci-client` error without anything secret: the client's messages name URLs
/// and statuses, never the credentials.
fn describe(shown: &str, action: &str, e: oci_client::errors::OciDistributionError) -> BundleError {
    use oci_client::errors::OciDistributionError as E;
    let text = e.to_string();
    let hint = match &e {
        E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => AUTH_HINT,
        // Distribution answers a missing or wrong login with 401 (or 403 for no permission).
        _ if text.contains("code: 401") || text.contains("code: 403") => AUTH_HINT,
        E::RequestError(_) => "; is the registry reachable?",
        _ => "",
    };
    BundleError(format!("{shown}: cannot {action}: {text}{hint}"))
}

/// Pushes a packed bundle to `target` (its tag, or untagged by digest); returns the digest.
pub fn push(packed: &Packed, target: &BundleRef, remote: &Remote) -> Result<String> {
    let shown = target.to_string();
    let packed = packed.clone();
    let target = target.clone();
    let auth = remote.credentials.auth();
    let client = oci_client(&target.registry, remote);
    run(shown.clone(), remote.deadline(), async move {
        let digest = packed.digest();
        let image = match &target.tag {
            Some(_) => reference(&BundleRef {
                digest: None,
                ..target.clone()
            }),
            None => reference(&target.pinned(&digest)),
        };
        client
            .auth(&image, &auth, oci_client::RegistryOperation::Push)
            .await
            .map_err(|e| describe(&shown, "authenticate", e))?;
        for blob in [
            &packed.files_tar,
            &packed.signature,
            &packed.bundle_manifest,
        ] {
            client
                .push_blob(&image, blob.clone(), &digest_of(blob))
                .await
                .map_err(|e| describe(&shown, "push a blob", e))?;
        }
        let content_type = http::HeaderValue::from_static(OCI_MANIFEST_MEDIA_TYPE);
        client
            .push_manifest_raw(&image, packed.oci_manifest.clone(), content_type)
            .await
            .map_err(|e| describe(&shown, "push the manifest", e))?;
        Ok(digest)
    })
}

/// What a request carries to prove who is asking.
#[derive(Clone)]
enum Authorization {
    None,
    Bearer(String),
    Basic(String, String),
}

impl Authorization {
    fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Authorization::None => request,
            Authorization::Bearer(token) => request.bearer_auth(token),
            Authorization::Basic(user, password) => request.basic_auth(user, Some(password)),
        }
    }
}

/// One fetch: the client, the registry's base URL and the authorization.
struct Fetcher {
    http: reqwest::Client,
    base: String,
    registry: String,
    repository: String,
    shown: String,
    authorization: Authorization,
}

impl Fetcher {
    fn request_error(&self, action: &str, e: &reqwest::Error) -> BundleError {
        let hint = if e.is_redirect() {
            ""
        } else if e.is_timeout() {
            "; the registry stopped answering"
        } else {
            "; is the registry reachable?"
        };
        // reqwest's message names the URL; the URL never carries a secret here (no userinfo,
        // tokens go in headers).
        BundleError(format!(
            "{}: cannot {action}: {}{hint}",
            self.shown,
            chain(e)
        ))
    }

    fn status_error(&self, action: &str, status: reqwest::StatusCode) -> BundleError {
        let hint = match status.as_u16() {
            401 | 403 => AUTH_HINT,
            404 => "; is the reference right, and was it pushed?",
            _ => "",
        };
        BundleError(format!(
            "{}: cannot {action}: the registry answered HTTP {status}{hint}",
            self.shown
        ))
    }

    /// Finds how to authenticate: `GET /v2/`; a `Bearer` challenge is answered at its realm
    /// (with the credentials, when any), a `Basic` one with the credentials.
    async fn authenticate(&mut self, credentials: &Credentials) -> Result<()> {
        let url = format!("{}/v2/", self.base);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| self.request_error("reach the registry", &e))?;
        if response.status() != reqwest::StatusCode::UNAUTHORIZED {
            // 200: anonymous access; anything else shows up on the manifest request.
            return Ok(());
        }
        let challenge = response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        drop(response);
        let (scheme, params) = challenge.split_once(' ').unwrap_or((&challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            if let Some((user, password)) = &credentials.basic {
                self.authorization = Authorization::Basic(user.clone(), password.clone());
            }
            return Ok(());
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return err(format!(
                "{}: the registry asks for an authentication scheme relgate does not know ({scheme:?})",
                self.shown
            ));
        }
        let params = challenge_params(params);
        let realm = params
            .iter()
            .find(|(k, _)| k == "realm")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        let mut realm = Url::parse(realm).map_err(|_| {
            BundleError(format!(
                "{}: the registry's token realm {realm:?} is not a URL",
                self.shown
            ))
        })?;
        allowed_target(&self.registry, &realm)
            .map_err(|why| BundleError(format!("{}: token realm refused: {why}", self.shown)))?;
        {
            let mut query = realm.query_pairs_mut();
            if let Some((_, service)) = params.iter().find(|(k, _)| k == "service") {
                query.append_pair("service", service);
            }
            query.append_pair("scope", &format!("repository:{}:pull", self.repository));
        }
        let mut request = self.http.get(realm);
        if let Some((user, password)) = &credentials.basic {
            request = request.basic_auth(user, Some(password));
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.request_error("get a registry token", &e))?;
        if !response.status().is_success() {
            return Err(self.status_error("get a registry token", response.status()));
        }
        let body = self
            .read_bounded(response, MAX_TOKEN_BYTES, "the token answer")
            .await?;
        let token: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| BundleError(format!("{}: the token answer is not JSON", self.shown)))?;
        let token = token
            .get("token")
            .or_else(|| token.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| BundleError(format!("{}: the token answer has no token", self.shown)))?;
        self.authorization = Authorization::Bearer(token.to_string());
        Ok(())
    }

    /// Reads a body of at most `limit` bytes: a larger `Content-Length` is refused before any
    /// byte is read, a body that streams past it as soon as it does.
    async fn read_bounded(
        &self,
        mut response: reqwest::Response,
        limit: u64,
        what: &str,
    ) -> Result<Vec<u8>> {
        if let Some(length) = response.content_length() {
            if length > limit {
                return err(format!(
                    "{}: {what} is {length} bytes, more than the {limit} allowed; refusing it",
                    self.shown
                ));
            }
        }
        let mut body = Vec::new();
        loop {
            let chunk = response
                .chunk()
                .await
                .map_err(|e| self.request_error(&format!("read {what}"), &e))?;
            let Some(chunk) = chunk else { break };
            if (body.len() + chunk.len()) as u64 > limit {
                return err(format!(
                    "{}: {what} is more than the {limit} bytes allowed; refusing it",
                    self.shown
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    async fn get(
        &self,
        url: &str,
        accept: Option<&str>,
        action: &str,
    ) -> Result<reqwest::Response> {
        let mut request = self.authorization.apply(self.http.get(url));
        if let Some(accept) = accept {
            request = request.header(reqwest::header::ACCEPT, accept);
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.request_error(action, &e))?;
        if !response.status().is_success() {
            return Err(self.status_error(action, response.status()));
        }
        Ok(response)
    }
}

/// `key=value` and `key="value"` pairs of a `WWW-Authenticate` challenge.
fn challenge_params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        out.push((key, value.to_string()));
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// Fetches a bundle (by tag or digest) into `cache`; returns the OCI manifest digest. With a
/// pinned digest the manifest must hash to it. Blobs already cached are not fetched again.
pub(crate) fn fetch(source: &BundleRef, remote: &Remote, cache: &Cache) -> Result<String> {
    let shown = source.to_string();
    let source = source.clone();
    let credentials = remote.credentials.clone();
    let cache = cache.clone();
    let http = http_client(&source.registry, remote)?;
    run(shown.clone(), remote.deadline(), async move {
        let mut fetcher = Fetcher {
            http,
            base: format!("{}://{}", scheme(&source.registry), source.registry),
            registry: source.registry.clone(),
            repository: source.repository.clone(),
            shown: shown.clone(),
            authorization: Authorization::None,
        };
        fetcher.authenticate(&credentials).await?;
        let manifest_ref = source
            .digest
            .clone()
            .or_else(|| source.tag.clone())
            .unwrap_or_else(|| "latest".into());
        let url = format!(
            "{}/v2/{}/manifests/{manifest_ref}",
            fetcher.base, source.repository
        );
        let response = fetcher
            .get(&url, Some(OCI_MANIFEST_MEDIA_TYPE), "fetch the manifest")
            .await?;
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(none)")
            .to_string();
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        if media_type != OCI_MANIFEST_MEDIA_TYPE {
            return err(format!(
                "{shown}: the registry served the manifest as {content_type:?}, not \
                 {OCI_MANIFEST_MEDIA_TYPE}; not a relgate bundle, refusing it"
            ));
        }
        let bytes = fetcher
            .read_bounded(response, MAX_OCI_MANIFEST_BYTES, "the manifest")
            .await?;
        let digest = digest_of(&bytes);
        if let Some(pinned) = &source.digest {
            if &digest != pinned {
                return err(format!(
                    "{shown}: digest mismatch: the registry served a manifest hashing to {digest}; refusing it"
                ));
            }
        }
        let oci = parse_oci_manifest(&bytes, &shown)?;
        for (descriptor, limit) in [
            (&oci.config, MAX_BUNDLE_MANIFEST_BYTES),
            (&oci.layers[0], MAX_FILES_BYTES),
            (&oci.layers[1], MAX_SIGNATURE_BYTES),
        ] {
            if cache.contains(&descriptor.digest) {
                continue;
            }
            let limit = limit.min(descriptor.size);
            let url = format!(
                "{}/v2/{}/blobs/{}",
                fetcher.base, source.repository, descriptor.digest
            );
            let response = fetcher.get(&url, None, "fetch a blob").await?;
            let what = format!(
                "blob {} (its descriptor says {} bytes)",
                descriptor.digest, descriptor.size
            );
            let blob = fetcher.read_bounded(response, limit, &what).await?;
            if digest_of(&blob) != descriptor.digest {
                return err(format!(
                    "{shown}: blob {} does not hash to its digest; the registry serves tampered content",
                    descriptor.digest
                ));
            }
            cache.put(&descriptor.digest, &blob)?;
        }
        cache.put(&digest, &bytes)?;
        Ok(digest)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn redirect_targets() {
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(allowed_target("127.0.0.1:5000", &url("http://127.0.0.1:5000/v2/x")).is_ok());
        for bad in [
            "http://127.0.0.1:5001/x",
            "http://127.0.0.2:5000/x",
            "https://127.0.0.1:5000/x",
            "http://example.com/x",
        ] {
            assert!(
                allowed_target("127.0.0.1:5000", &url(bad)).is_err(),
                "{bad}"
            );
        }
        assert!(allowed_target(
            "ghcr.io",
            &url("https://pkg-containers.githubusercontent.com/x")
        )
        .is_ok());
        for bad in [
            "http://cdn.example.com/x",
            "https://127.0.0.1/x",
            "https://10.0.0.1/x",
            "https://169.254.169.254/latest",
            "https://[::1]/x",
            "https://localhost/x",
        ] {
            assert!(allowed_target("ghcr.io", &url(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn challenges_parse() {
        let p = challenge_params(
            r#"realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull""#,
        );
        assert_eq!(p[0], ("realm".into(), "https://ghcr.io/token".into()));
        assert_eq!(p[1], ("service".into(), "ghcr.io".into()));
        assert_eq!(p.len(), 3);
    }
}
