//! Prometheus URLs: a manifest's base URL turned into its query endpoint (credentials hidden in
//! everything shown), and the gate config's allowed URLs ([`AllowedUrl`]) it must fall under.

use super::{Options, ReadingError};

/// The Prometheus API path appended to a manifest's `url`.
const QUERY_PATH: &str = "/api/v1/query";

/// The query endpoint of a base URL (`http://host:9090`, `http://host/prometheus/`; a URL that
/// already ends in `/api/v1/query` is kept). Credentials are kept for the request and hidden
/// in everything shown.
pub(super) fn endpoint(base: &str) -> Result<(reqwest::Url, String), ReadingError> {
    let bad = |message: String| ReadingError::BadUrl {
        url: base.to_string(),
        message,
    };
    let mut url = reqwest::Url::parse(base).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!(
            "scheme `{}` is not http or https",
            url.scheme()
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("give the base URL without `?` or `#` parts".to_string()));
    }
    let path = url.path().trim_end_matches('/').to_string();
    if !path.ends_with(QUERY_PATH) {
        url.set_path(&format!("{path}{QUERY_PATH}"));
    }
    let mut shown = url.clone();
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    let shown = shown.to_string();
    let shown = shown
        .strip_suffix(QUERY_PATH)
        .unwrap_or(&shown)
        .trim_end_matches('/')
        .to_string();
    Ok((url, shown))
}

/// A Prometheus base URL the gate's config allows (`error_budget.prometheus.allowed_urls`):
/// an origin (scheme, host, port) and a path prefix.
///
/// URLs are compared parsed (WHATWG rules, as requests are sent), never as strings: userinfo
/// (`http://127.0.0.1:9090@evil/` is host `evil`), case, default ports, IP spellings and dot
/// segments are resolved first. The path prefix is matched by whole segments
/// (`/prom` allows `/prom/x`, not `/prometheus`), and the segments a manifest adds after it
/// must be plain (letters, digits, `-`, `_`, `~`, `.` not first): no percent-encoding or
/// `..;` that a proxy behind the allowed URL could decode into another path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedUrl {
    scheme: String,
    host: String,
    port: u16,
    segments: Vec<String>,
    shown: String,
}

impl AllowedUrl {
    /// Parses a base URL from the config.
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(text.trim()).map_err(|e| {
            format!("`{text}` is not a URL ({e}); write e.g. http://prometheus.monitoring:9090")
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "`{text}`: scheme `{}` is not http or https",
                url.scheme()
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "`{text}` holds credentials; list the base URL without them (a manifest URL with credentials still matches it)"
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "`{text}`: give the base URL without `?` or `#` parts"
            ));
        }
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Err(format!("`{text}` names no host"));
        };
        let mut segments = path_segments(&url);
        if segments.ends_with(&["api".to_string(), "v1".to_string(), "query".to_string()]) {
            segments.truncate(segments.len() - 3);
        }
        let mut shown = url.clone();
        shown.set_path(&segments.join("/"));
        Ok(Self {
            scheme: url.scheme().to_string(),
            host: host.to_string(),
            port,
            segments,
            shown: shown.as_str().trim_end_matches('/').to_string(),
        })
    }

    /// Whether `url` (a request URL) is at this origin, under this path prefix.
    pub(crate) fn allows(&self, url: &reqwest::Url) -> bool {
        if url.scheme() != self.scheme
            || url.host_str() != Some(self.host.as_str())
            || url.port_or_known_default() != Some(self.port)
        {
            return false;
        }
        let segments = path_segments(url);
        segments.len() >= self.segments.len()
            && segments[..self.segments.len()] == self.segments[..]
            && segments[self.segments.len()..]
                .iter()
                .all(|s| plain_segment(s))
    }

    /// The URL as configured (normalised), for messages.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }
}

/// A URL's non-empty path segments, as written (still percent-encoded).
fn path_segments(url: &reqwest::Url) -> Vec<String> {
    url.path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A path segment with nothing a server or proxy could decode or resolve into another path.
fn plain_segment(segment: &str) -> bool {
    !segment.starts_with('.')
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~' | b'.'))
}

/// Why a manifest's Prometheus URL is refused, when it is outside the allowed URLs.
pub(super) fn refusal(url: &reqwest::Url, shown: &str, options: &Options) -> Option<String> {
    if options.allows(url) {
        return None;
    }
    let listed = if options.allowed_urls.is_empty() {
        "the list is empty: name the Prometheus base URLs manifests may use there".to_string()
    } else {
        let urls: Vec<&str> = options.allowed_urls.iter().map(AllowedUrl::shown).collect();
        format!("allowed: {}", urls.join(", "))
    };
    Some(format!(
        "the Prometheus URL `{shown}` is not in error_budget.prometheus.allowed_urls ({listed}); relgate only queries the Prometheus servers the gate's config allows, so it sent no request"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let (url, shown) = endpoint("http://127.0.0.1:9090").expect("url");
        assert_eq!(url.as_str(), "http://127.0.0.1:9090/api/v1/query");
        assert_eq!(shown, "http://127.0.0.1:9090");
        let (url, _) = endpoint("http://127.0.0.1:9090/prom/").expect("prefix");
        assert_eq!(url.as_str(), "http://127.0.0.1:9090/prom/api/v1/query");
        let (url, _) = endpoint("http://127.0.0.1:9090/api/v1/query").expect("full");
        assert_eq!(url.as_str(), "http://127.0.0.1:9090/api/v1/query");
        let (url, shown) = endpoint("https://user:secret@127.0.0.1:9090").expect("credentials");
        assert!(url.as_str().contains("secret"));
        assert!(
            !shown.contains("secret") && !shown.contains("user"),
            "{shown}"
        );
        assert!(endpoint("ftp://127.0.0.1").is_err());
        assert!(endpoint("127.0.0.1:9090").is_err());
        assert!(endpoint("http://127.0.0.1:9090?x=1").is_err());
    }

    fn allowed(list: &str, url: &str) -> bool {
        let (endpoint, _) = endpoint(url).expect("manifest url");
        AllowedUrl::parse(list).expect("list url").allows(&endpoint)
    }

    #[test]
    fn allowed_urls_compare_parsed_origins_and_whole_segments() {
        let base = "http://127.0.0.1:9090";
        for ok in [
            "http://127.0.0.1:9090",
            "http://127.0.0.1:9090/",
            "HTTP://127.0.0.1:9090/api/v1/query",
            "http://user:pw@127.0.0.1:9090",
            "http://127.1:9090",
            "http://127.0.0.1:9090/tenant-a/",
        ] {
            assert!(allowed(base, ok), "{ok}");
        }
        for refused in [
            "http://127.0.0.1:9090@evil.example/",
            "http://127.0.0.1:909",
            "https://127.0.0.1:9090",
            "http://localhost:9090",
            "http://127.0.0.1.evil.example:9090",
            "http://127.0.0.1:9090/%2e%2e%2fadmin",
            "http://127.0.0.1:9090/a%2Fb",
            "http://127.0.0.1:9090/..;/admin",
        ] {
            assert!(!allowed(base, refused), "{refused}");
        }
        // A string prefix of the manifest URL is not its origin.
        assert!(!allowed("http://127.0.0.1:909", "http://127.0.0.1:9090"));
        let prefix = "https://Prom.Example/prom/";
        assert!(allowed(prefix, "https://prom.example:443/prom"));
        assert!(allowed(prefix, "https://prom.example/prom/x"));
        assert!(!allowed(prefix, "https://prom.example/prometheus"));
        assert!(!allowed(prefix, "https://prom.example/"));
        assert!(!allowed(prefix, "https://prom.example/prom/../admin"));
        assert!(!allowed(prefix, "https://prom.example./prom"));
        for bad in [
            "ftp://x",
            "http://u:p@x",
            "http://x/?a=1",
            "not a url",
            "file:///etc",
        ] {
            assert!(AllowedUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
