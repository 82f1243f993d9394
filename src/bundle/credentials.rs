//! Registry credentials, found as Docker finds them (docs/bundles.md, "Registries and
//! credentials"): in the Docker config file `credHelpers.<registry>` (run
//! `docker-credential-<name> get`), else `credsStore`, else `auths.<registry>`; then, for
//! `ghcr.io` only, the Action's `GITHUB_TOKEN`. Secrets never reach a message or `Debug`.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;

use super::{err, BundleError, Result};

/// Bound of a credential helper's answer, and how long it may take.
const MAX_HELPER_BYTES: u64 = 64 * 1024;
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// The GitHub token for `ghcr.io` (`GITHUB_TOKEN`, and `GITHUB_ACTOR` as the user name).
/// `Debug` hides the token.
#[derive(Clone)]
pub(crate) struct GithubToken {
    pub(crate) actor: Option<String>,
    pub(crate) token: String,
}

impl std::fmt::Debug for GithubToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GithubToken(actor {:?}, token hidden)", self.actor)
    }
}

/// Credentials for one registry. `Debug` hides the secret.
#[derive(Clone, Default)]
pub(crate) struct Credentials {
    pub(super) basic: Option<(String, String)>,
    /// Where they came from, for messages (`auths`, `credHelpers (docker-credential-x)`, …).
    source: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.basic {
            Some((user, _)) => write!(
                f,
                "Credentials(basic, user {user:?}, from {})",
                self.source.as_deref().unwrap_or("?")
            ),
            None => f.write_str("Credentials(anonymous)"),
        }
    }
}

impl Credentials {
    pub(super) fn auth(&self) -> RegistryAuth {
        match &self.basic {
            Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            None => RegistryAuth::Anonymous,
        }
    }

    /// Whether any credentials were found.
    pub(crate) fn is_anonymous(&self) -> bool {
        self.basic.is_none()
    }

    /// The credentials for `registry`, as Docker finds them: in the Docker config file
    /// `file`, `credHelpers.<registry>` (run `docker-credential-<name> get`), else `credsStore`
    /// (the same, for every registry), else `auths.<registry>`; then, for `ghcr.io` only,
    /// `github` (the Action's `GITHUB_TOKEN`). Nothing found: anonymous. A file that cannot
    /// be read or parsed, or a helper that fails, is an error naming the file or helper, never
    /// a secret.
    pub(crate) fn resolve(
        file: Option<&Path>,
        registry: &str,
        github: Option<&GithubToken>,
    ) -> Result<Credentials> {
        let from_file = Credentials::from_docker_config(file, registry)?;
        if !from_file.is_anonymous() {
            return Ok(from_file);
        }
        if registry == "ghcr.io" {
            if let Some(github) = github {
                return Ok(Credentials {
                    basic: Some((
                        github
                            .actor
                            .clone()
                            .filter(|a| !a.is_empty())
                            .unwrap_or_else(|| "x-access-token".into()),
                        github.token.clone(),
                    )),
                    source: Some("GITHUB_TOKEN".into()),
                });
            }
        }
        Ok(from_file)
    }

    /// Reads the credentials for `registry` from a Docker config file (`credHelpers`,
    /// `credsStore`, `auths`). A missing file means anonymous; an unreadable or malformed one is
    /// an error naming the file (never its content).
    pub(crate) fn from_docker_config(file: Option<&Path>, registry: &str) -> Result<Credentials> {
        let Some(file) = file else {
            return Ok(Credentials::default());
        };
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Credentials::default()),
            Err(e) => {
                return err(format!(
                    "{}: cannot read the registry auth file: {e}",
                    file.display()
                ))
            }
        };
        let config: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            BundleError(format!(
                "{}: the registry auth file is not JSON (line {}); expected {{\"auths\": {{\"{registry}\": {{\"auth\": \"<base64 user:password>\"}}}}}}",
                file.display(),
                e.line()
            ))
        })?;
        let keys = [
            registry.to_string(),
            format!("https://{registry}"),
            format!("http://{registry}"),
        ];
        let lookup = |section: &str| -> Option<&serde_json::Value> {
            let map = config.get(section)?.as_object()?;
            keys.iter().find_map(|key| map.get(key))
        };
        // Docker's order: a helper for this registry, else the default store, else the file.
        if let Some(helper) = lookup("credHelpers") {
            let name = helper.as_str().ok_or_else(|| {
                BundleError(format!(
                    "{}: credHelpers.{registry}: expected the name of a credential helper",
                    file.display()
                ))
            })?;
            return helper_get(name, registry, file, "credHelpers");
        }
        if let Some(store) = config.get("credsStore") {
            let name = store.as_str().ok_or_else(|| {
                BundleError(format!(
                    "{}: credsStore: expected the name of a credential helper",
                    file.display()
                ))
            })?;
            if !name.is_empty() {
                return helper_get(name, registry, file, "credsStore");
            }
        }
        let Some(entry) = lookup("auths") else {
            return Ok(Credentials::default());
        };
        let bad = || {
            BundleError(format!(
                "{}: auths.{registry}: expected \"auth\" (base64 of user:password) or \"username\" and \"password\"",
                file.display()
            ))
        };
        let source = Some(format!("{} (auths)", file.display()));
        if let Some(encoded) = entry.get("auth").and_then(|a| a.as_str()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| bad())?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
            let (user, password) = decoded.split_once(':').ok_or_else(bad)?;
            return Ok(Credentials {
                basic: Some((user.to_string(), password.to_string())),
                source,
            });
        }
        match (
            entry.get("username").and_then(|u| u.as_str()),
            entry.get("password").and_then(|p| p.as_str()),
        ) {
            (Some(user), Some(password)) => Ok(Credentials {
                basic: Some((user.to_string(), password.to_string())),
                source,
            }),
            _ => Err(bad()),
        }
    }
}

/// Runs `docker-credential-<name> get` with the registry on stdin, as Docker does, and reads
/// `{"Username": …, "Secret": …}`. "credentials not found" (the helpers' own answer) is
/// anonymous; anything else that goes wrong is an error that names the helper but repeats
/// none of its output (it may hold a secret).
fn helper_get(name: &str, registry: &str, file: &Path, section: &str) -> Result<Credentials> {
    // The name becomes part of a program name looked up on PATH: no path separators.
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return err(format!(
            "{}: {section}: {name:?} is not a credential helper name (letters, digits, '.', '_', '-')",
            file.display()
        ));
    }
    let program = format!("docker-credential-{name}");
    let failed = |why: String| {
        BundleError(format!(
            "{program} (from {section} of {}): {why}; check the helper with `echo {registry} | {program} get`",
            file.display()
        ))
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| failed(format!("cannot run it ({e}); is it on PATH?")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading stdin closes the pipe: its exit status decides.
        let _ = stdin.write_all(registry.as_bytes());
    }
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(stdout) = stdout {
            let _ = stdout.take(MAX_HELPER_BYTES + 1).read_to_end(&mut bytes);
        }
        bytes
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < HELPER_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!(
                    "no answer within {}s",
                    HELPER_TIMEOUT.as_secs()
                )));
            }
            Err(e) => return Err(failed(format!("cannot wait for it: {e}"))),
        }
    };
    let out = reader
        .join()
        .map_err(|_| failed("its output could not be read".into()))?;
    if !status.success() {
        // The protocol's answer for an unknown registry (docker-credential-helpers).
        if String::from_utf8_lossy(&out)
            .trim()
            .eq_ignore_ascii_case("credentials not found in native keychain")
        {
            return Ok(Credentials::default());
        }
        return Err(failed(format!("it failed ({status})")));
    }
    if out.len() as u64 > MAX_HELPER_BYTES {
        return Err(failed("its answer is too large".into()));
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let answer: Answer = serde_json::from_slice(&out)
        .map_err(|_| failed("its answer is not {\"Username\": …, \"Secret\": …} JSON".into()))?;
    if answer.username == "<token>" {
        return Err(failed(
            "it holds an identity token, which relgate cannot use; log in with a user name and password or token".into(),
        ));
    }
    Ok(Credentials {
        basic: Some((answer.username, answer.secret)),
        source: Some(format!("{section} ({program})")),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn github_token_is_for_ghcr_only_and_after_the_config_file() {
        let github = GithubToken {
            actor: Some("octocat".into()),
            token: "ghs_secret".into(),
        };
        let ghcr = Credentials::resolve(None, "ghcr.io", Some(&github)).unwrap();
        assert_eq!(
            ghcr.basic,
            Some(("octocat".to_string(), "ghs_secret".to_string()))
        );
        assert!(!format!("{ghcr:?}").contains("ghs_secret"));
        assert!(format!("{github:?}").contains("token hidden"));
        let other = Credentials::resolve(None, "registry.example.com", Some(&github)).unwrap();
        assert!(other.is_anonymous());
        // A login in the Docker config file wins over the token.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        std::fs::write(
            &file,
            r#"{"auths": {"ghcr.io": {"username": "bot", "password": "pat"}}}"#,
        )
        .unwrap();
        let from_file = Credentials::resolve(Some(&file), "ghcr.io", Some(&github)).unwrap();
        assert_eq!(
            from_file.basic,
            Some(("bot".to_string(), "pat".to_string()))
        );
        // No actor: a fixed user name (ghcr.io checks the token, not the name).
        let anonymous_actor = GithubToken {
            actor: None,
            token: "t".into(),
        };
        let ghcr = Credentials::resolve(None, "ghcr.io", Some(&anonymous_actor)).unwrap();
        assert_eq!(ghcr.basic.unwrap().0, "x-access-token");
    }
}
