//! Talking to an OCI registry with `oci-client` (the ORAS project's Rust client): pushing a
//! packed bundle and fetching one into the cache.
//!
//! The registry is untrusted. Fetching reads the OCI manifest (refused above
//! [`MAX_OCI_MANIFEST_BYTES`] and unless it hashes to the pinned digest), checks its shape, then
//! streams each blob with a byte bound (the smaller of the descriptor's size and the
//! media type's limit) and stores it only when it hashes to its descriptor. Nothing is
//! interpreted here: [`super::verify_artifact`] checks the signature and files afterwards.
//!
//! Plain HTTP is used only for loopback registries (`127.0.0.1`, `localhost`, `[::1]`), as
//! Docker does; every other registry is HTTPS. Credentials come from a Docker config file
//! (`auths.<registry>.auth` or `username`/`password`) and are never printed.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use futures_util::StreamExt as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::cache::Cache;
use super::{
    digest_of, err, parse_oci_manifest, BundleError, BundleRef, Packed, Result,
    MAX_BUNDLE_MANIFEST_BYTES, MAX_FILES_BYTES, MAX_OCI_MANIFEST_BYTES, MAX_SIGNATURE_BYTES,
    OCI_MANIFEST_MEDIA_TYPE,
};

/// Connect timeout and the deadline of one whole push or fetch.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(30);
const DEADLINE: Duration = Duration::from_secs(120);

/// Credentials for one registry, from a Docker config file. `Debug` hides the secret.
#[derive(Clone, Default)]
pub struct Credentials {
    basic: Option<(String, String)>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.basic {
            Some((user, _)) => write!(f, "Credentials(basic, user {user:?})"),
            None => f.write_str("Credentials(anonymous)"),
        }
    }
}

impl Credentials {
    fn auth(&self) -> RegistryAuth {
        match &self.basic {
            Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            None => RegistryAuth::Anonymous,
        }
    }

    /// Reads the credentials for `registry` from a Docker config file (`auths`). A missing
    /// file means anonymous; an unreadable or malformed one is an error naming the file (never
    /// its content).
    pub fn from_docker_config(file: Option<&Path>, registry: &str) -> Result<Credentials> {
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
        let auths = config.get("auths").and_then(|a| a.as_object());
        let entry = auths.and_then(|auths| {
            [
                registry.to_string(),
                format!("https://{registry}"),
                format!("http://{registry}"),
            ]
            .iter()
            .find_map(|key| auths.get(key))
        });
        let Some(entry) = entry else {
            return Ok(Credentials::default());
        };
        let bad = || {
            BundleError(format!(
                "{}: auths.{registry}: expected \"auth\" (base64 of user:password) or \"username\" and \"password\"",
                file.display()
            ))
        };
        if let Some(encoded) = entry.get("auth").and_then(|a| a.as_str()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| bad())?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
            let (user, password) = decoded.split_once(':').ok_or_else(bad)?;
            return Ok(Credentials {
                basic: Some((user.to_string(), password.to_string())),
            });
        }
        match (
            entry.get("username").and_then(|u| u.as_str()),
            entry.get("password").and_then(|p| p.as_str()),
        ) {
            (Some(user), Some(password)) => Ok(Credentials {
                basic: Some((user.to_string(), password.to_string())),
            }),
            _ => Err(bad()),
        }
    }
}

fn is_loopback(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => registry,
    };
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

fn client(registry: &str) -> Client {
    Client::new(ClientConfig {
        protocol: if is_loopback(registry) {
            ClientProtocol::HttpsExcept(vec![registry.to_string()])
        } else {
            ClientProtocol::Https
        },
        connect_timeout: Some(CONNECT_TIMEOUT),
        read_timeout: Some(READ_TIMEOUT),
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
    future: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| BundleError(format!("cannot start the network runtime: {e}")))?;
        runtime.block_on(async move {
            match tokio::time::timeout(DEADLINE, future).await {
                Ok(result) => result,
                Err(_) => err(format!("{what}: no answer within {}s", DEADLINE.as_secs())),
            }
        })
    })
    .join()
    .map_err(|_| BundleError("the registry client crashed".into()))?
}

const AUTH_HINT: &str = "; check the credentials for this registry in the Docker config file \
     (REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json or ~/.docker/config.json)";

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
pub fn push(packed: &Packed, target: &BundleRef, credentials: &Credentials) -> Result<String> {
    let shown = target.to_string();
    let packed = packed.clone();
    let target = target.clone();
    let auth = credentials.auth();
    run(shown.clone(), async move {
        let client = client(&target.registry);
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

/// Fetches a bundle (by tag or digest) into `cache`; returns the OCI manifest digest. With a
/// pinned digest the manifest must hash to it. Blobs already cached are not fetched again.
pub fn fetch(source: &BundleRef, credentials: &Credentials, cache: &Cache) -> Result<String> {
    let shown = source.to_string();
    let source = source.clone();
    let auth = credentials.auth();
    let cache = cache.clone();
    run(shown.clone(), async move {
        let client = client(&source.registry);
        let image = reference(&source);
        let (bytes, _) = client
            .pull_manifest_raw(&image, &auth, &[OCI_MANIFEST_MEDIA_TYPE])
            .await
            .map_err(|e| describe(&shown, "fetch the manifest", e))?;
        if bytes.len() as u64 > MAX_OCI_MANIFEST_BYTES {
            return err(format!(
                "{shown}: the registry served a manifest of {} bytes (limit {MAX_OCI_MANIFEST_BYTES}); refusing it",
                bytes.len()
            ));
        }
        let digest = digest_of(&bytes);
        if let Some(pinned) = &source.digest {
            if &digest != pinned {
                return err(format!(
                    "{shown}: digest mismatch: the registry served a manifest hashing to {digest}; refusing it"
                ));
            }
        }
        let oci = parse_oci_manifest(&bytes, &shown)?;
        let pinned = reference(&source.pinned(&digest));
        for (descriptor, limit) in [
            (&oci.config, MAX_BUNDLE_MANIFEST_BYTES),
            (&oci.layers[0], MAX_FILES_BYTES),
            (&oci.layers[1], MAX_SIGNATURE_BYTES),
        ] {
            if cache.contains(&descriptor.digest) {
                continue;
            }
            let limit = limit.min(descriptor.size);
            let wanted = OciDescriptor {
                media_type: descriptor.media_type.clone(),
                digest: descriptor.digest.clone(),
                size: i64::try_from(descriptor.size).unwrap_or(i64::MAX),
                ..OciDescriptor::default()
            };
            let mut stream = client
                .pull_blob_stream(&pinned, &wanted)
                .await
                .map_err(|e| describe(&shown, "fetch a blob", e))?;
            if stream.content_length.is_some_and(|n| n > limit) {
                return err(format!(
                    "{shown}: blob {} is {} bytes, more than its descriptor allows ({limit}); refusing it",
                    descriptor.digest,
                    stream.content_length.unwrap_or_default()
                ));
            }
            let mut blob = Vec::new();
            while let Some(chunk) = stream.stream.next().await {
                // oci-client checks the digest as it streams; its error ends the stream.
                let chunk = chunk.map_err(|e| {
                    BundleError(format!(
                        "{shown}: blob {} does not hash to its digest or could not be read \
                         ({e}); the registry serves tampered or broken content",
                        descriptor.digest
                    ))
                })?;
                if (blob.len() + chunk.len()) as u64 > limit {
                    return err(format!(
                        "{shown}: blob {} is larger than its descriptor allows ({limit} bytes); refusing it",
                        descriptor.digest
                    ));
                }
                blob.extend_from_slice(&chunk);
            }
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
