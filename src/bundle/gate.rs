//! What `relgate check` loads from the `bundles:` of `relgate.yaml`: every bundle pinned by
//! digest, fetched into the cache when absent (never with `--offline`), verified against the
//! keys named for it, then its Rego added to the team policies, its data documents to `data`,
//! and its config fragment merged OVER the repository's config (the organisation's floor:
//! every key the fragment sets wins; `namespaces` are unioned). Any problem is an error
//! (exit 2), never a skipped bundle.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::cache::Cache;
use super::registry::{self, Credentials, GithubToken, Remote};
use super::{verify_artifact, BundleFiles, BundleRef, VerifiedBundle, CONFIG_FRAGMENT};
use crate::config::{merge, GateConfig};
use crate::error::{Error, Result};
use crate::manifest::{self, SourceFile};
use crate::policy::PolicySource;
use crate::record::keys::TrustedKeys;
use crate::workspace::GateRoot;

/// Config keys a bundle's fragment may not set: they steer relgate itself (what is checked,
/// where policies and bundles come from), not what the policies demand.
const FORBIDDEN_FRAGMENT_KEYS: [&str; 5] = [
    "bundles",
    "manifests",
    "policies",
    "max_file_bytes",
    "ledger",
];

/// Where bundles are cached and how registries are reached, resolved by the CLI.
#[derive(Debug, Clone, Default)]
pub struct BundleSettings {
    /// The cache directory (`None`: no cache could be located; bundles then fail).
    pub(crate) cache_dir: Option<PathBuf>,
    /// The Docker config file with registry credentials.
    pub(crate) auth_file: Option<PathBuf>,
    /// `--allow-bundle-tag`: resolve a tag-only reference (development only; warns).
    pub(crate) allow_tag: bool,
    /// `GITHUB_TOKEN` (and `GITHUB_ACTOR`): the credentials for `ghcr.io` when the Docker
    /// config has none.
    pub(crate) github: Option<GithubToken>,
    /// `RELGATE_REGISTRY_TIMEOUT` as given (seconds without a byte before a registry request
    /// fails); parsed when a registry is contacted, so a bad value stops only runs that need it.
    pub(crate) read_timeout: Option<String>,
}

impl BundleSettings {
    /// How to reach `registry`: its credentials and the read timeout.
    pub(crate) fn remote(&self, registry: &str) -> Result<Remote> {
        let timeout = match self.read_timeout.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => match text.parse::<u64>() {
                Ok(secs) if (1..=3600).contains(&secs) => Some(Duration::from_secs(secs)),
                _ => {
                    return Err(Error::Usage(format!(
                        "RELGATE_REGISTRY_TIMEOUT={text:?}: expected whole seconds from 1 to 3600"
                    )))
                }
            },
        };
        let credentials =
            Credentials::resolve(self.auth_file.as_deref(), registry, self.github.as_ref())?;
        Ok(Remote::new(credentials, timeout))
    }
}

/// A bundle the gate loaded: the hook for change records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoadedBundle {
    /// The reference as written in the config.
    pub(crate) reference: String,
    /// The verified OCI manifest digest.
    pub(crate) digest: String,
    /// The key id that signed it.
    pub(crate) key_id: String,
}

/// Everything the bundles add to a run.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub(crate) sources: Vec<PolicySource>,
    pub(crate) data: Vec<(String, Value)>,
    pub(crate) bundles: Vec<LoadedBundle>,
}

fn config_error(config: &GateConfig, details: String) -> Error {
    Error::Config {
        path: config.file.clone().unwrap_or_else(|| "relgate.yaml".into()),
        details: format!("  {details}"),
    }
}

/// Loads the bundles named in `config` and applies their config fragments to it.
pub(crate) fn load(
    root: &GateRoot,
    config: &mut GateConfig,
    settings: &BundleSettings,
    offline: bool,
) -> Result<Loaded> {
    let mut loaded = Loaded::default();
    let entries = match config.merged.get("bundles") {
        None | Some(Value::Null) => return Ok(loaded),
        Some(Value::Array(entries)) => entries.clone(),
        Some(_) => {
            return Err(config_error(
                config,
                "bundles: expected a list of {ref: oci://…@sha256:…, keys: [PEM files]}".into(),
            ))
        }
    };
    let mut fragments = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let field = format!("bundles[{index}]");
        let written = entry.get("ref").and_then(Value::as_str).ok_or_else(|| {
            config_error(
                config,
                format!("{field}.ref: expected oci://REGISTRY/REPO@sha256:<digest>"),
            )
        })?;
        let reference = BundleRef::parse(written)
            .map_err(|e| config_error(config, format!("{field}.ref: {e}")))?;
        // A tag is resolved only with --allow-bundle-tag, and never offline.
        if reference.digest.is_none() && (offline || !settings.allow_tag) {
            return Err(config_error(
                config,
                format!(
                    "{field}.ref {written}: a tag can move, so bundles are pinned by digest; \
                     run `relgate policy pull {written}` and write the oci://…@sha256:… it \
                     prints (--allow-bundle-tag resolves tags during development)"
                ),
            ));
        }
        let keys = trusted_keys(root, config, entry, &field)?;
        let verified = fetch_verified(&reference, &keys, settings, offline, &field)?;
        let prefix = format!("bundle@{}", &verified.digest["sha256:".len()..][..12]);
        let contents = contents(&verified.files, &prefix, false)?;
        loaded.sources.extend(contents.sources);
        loaded.data.extend(contents.data);
        fragments.extend(contents.fragment);
        loaded.bundles.push(LoadedBundle {
            reference: written.to_string(),
            digest: verified.digest.clone(),
            key_id: verified.key_id.to_string(),
        });
    }
    for (shown, fragment) in fragments {
        apply_fragment(config, fragment, &shown)?;
    }
    Ok(loaded)
}

/// Fetches `reference` into the cache when it is not there (never when `offline`), then
/// verifies it from the cache against `keys`: the one path by which both `check` and
/// `relgate test --bundle oci://…` get a bundle's files. A reference without a digest is
/// resolved at the registry (callers allow that only in development). `field` names the
/// reference in messages.
pub(crate) fn fetch_verified(
    reference: &BundleRef,
    keys: &TrustedKeys,
    settings: &BundleSettings,
    offline: bool,
    field: &str,
) -> Result<VerifiedBundle> {
    let cache = Cache::new(settings.cache_dir.clone().ok_or_else(|| {
        Error::Usage(format!(
            "{field}: no bundle cache directory: set RELGATE_BUNDLE_CACHE (or HOME)"
        ))
    })?);
    let digest = match &reference.digest {
        Some(digest) => digest.clone(),
        None if offline => {
            return Err(Error::Usage(format!(
                "{field}: {reference} has no digest and --offline forbids resolving it"
            )))
        }
        None => registry::fetch(reference, &settings.remote(&reference.registry)?, &cache)?,
    };
    let reference = reference.pinned(&digest);
    if !cache.contains(&digest) {
        if offline {
            return Err(Error::Usage(format!(
                "{field}: {reference} is not in the bundle cache {} and --offline forbids \
                 fetching it; run `relgate policy pull {reference}` while online",
                cache.dir.display()
            )));
        }
        registry::fetch(&reference, &settings.remote(&reference.registry)?, &cache)?;
    }
    let shown = reference.to_string();
    let oci = cache.get(&digest, super::MAX_OCI_MANIFEST_BYTES)?;
    Ok(verify_artifact(
        &oci,
        Some(&digest),
        &mut &cache,
        keys,
        &shown,
    )?)
}

/// The keys named by `keys:` of a bundle entry: PEM files inside the gate root.
pub(crate) fn trusted_keys(
    root: &GateRoot,
    config: &GateConfig,
    entry: &Value,
    field: &str,
) -> Result<TrustedKeys> {
    let names: Vec<&str> = entry
        .get("keys")
        .and_then(Value::as_array)
        .map(|keys| keys.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if names.is_empty() {
        return Err(config_error(
            config,
            format!("{field}.keys: name at least one trusted public key (a PEM file in the repository) that signs this bundle"),
        ));
    }
    let mut keys = TrustedKeys::new();
    for name in names {
        let path = root.confine(name)?;
        let path = root.confine_existing(&path, name)?;
        let pem = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        keys.insert_pem(&pem)
            .map_err(|e| config_error(config, format!("{field}.keys: {name}: {e}")))?;
    }
    Ok(keys)
}

/// What a bundle contributes: Rego sources, data documents and the config fragment.
#[derive(Debug, Default)]
pub(crate) struct Contents {
    pub(crate) sources: Vec<PolicySource>,
    pub(crate) data: Vec<(String, Value)>,
    /// (shown path, validated fragment).
    pub(crate) fragment: Option<(String, Value)>,
}

/// Reads a bundle's files (already verified, or a local directory for `relgate test`) into
/// sources, data and the schema-validated config fragment. `prefix` names the bundle in
/// messages; `include_tests` adds the `_test.rego` files.
pub(crate) fn contents(files: &BundleFiles, prefix: &str, include_tests: bool) -> Result<Contents> {
    let mut out = Contents::default();
    for (path, bytes) in files.rego(include_tests) {
        let text = String::from_utf8(bytes.clone())
            .map_err(|_| Error::Policy(format!("{prefix}/{path}: not UTF-8")))?;
        out.sources.push(PolicySource {
            path: format!("{prefix}/{path}"),
            text,
            builtin: false,
            v0: false,
        });
    }
    for (path, bytes) in files.data() {
        let shown = format!("{prefix}/{path}");
        out.data.push((shown.clone(), one_document(&shown, bytes)?));
    }
    if let Some(bytes) = files.config_fragment() {
        let shown = format!("{prefix}/{CONFIG_FRAGMENT}");
        let source = source_file(&shown, bytes);
        let mut documents = manifest::parse_documents(&source)?;
        if documents.len() != 1 {
            return Err(Error::Policy(format!(
                "{shown}: must hold exactly one document"
            )));
        }
        let document = documents.swap_remove(0);
        let violations = crate::schema::validate("GateConfig", &document.value, &document.lines)
            .map_err(Error::Policy)?;
        if !violations.is_empty() {
            let details = violations
                .iter()
                .map(|v| format!("  {shown}:{}: {}", v.line, v.message))
                .collect::<Vec<_>>()
                .join("\n");
            return Err(Error::Config {
                path: shown,
                details,
            });
        }
        out.fragment = Some((shown, document.value));
    }
    Ok(out)
}

fn source_file(shown: &str, bytes: &[u8]) -> SourceFile {
    SourceFile {
        path: shown.to_string(),
        digest: manifest::sha256_digest(bytes),
        bytes: bytes.to_vec(),
    }
}

fn one_document(shown: &str, bytes: &[u8]) -> Result<Value> {
    let mut documents = manifest::parse_documents(&source_file(shown, bytes))?;
    if documents.len() != 1 {
        return Err(Error::Policy(format!(
            "{shown}: a data file must hold exactly one document"
        )));
    }
    Ok(documents.swap_remove(0).value)
}

/// Merges a bundle's config fragment over the config: the fragment wins for every key it
/// sets (objects merge key by key, anything else replaces), except `namespaces`, which are
/// added to the repository's.
pub(crate) fn apply_fragment(
    config: &mut GateConfig,
    mut fragment: Value,
    shown: &str,
) -> Result<()> {
    let Value::Object(map) = &mut fragment else {
        return Err(Error::Policy(format!("{shown}: expected a mapping")));
    };
    for key in FORBIDDEN_FRAGMENT_KEYS {
        if map.contains_key(key) {
            return Err(Error::Policy(format!(
                "{shown}: a bundle's config fragment cannot set `{key}` (it steers relgate \
                 itself, which is the repository's choice); remove it from the bundle"
            )));
        }
    }
    if let Some(namespaces) = map.remove("namespaces") {
        for ns in namespaces.as_array().into_iter().flatten() {
            if let Some(ns) = ns.as_str() {
                if !config.namespaces.iter().any(|n| n == ns) {
                    config.namespaces.push(ns.to_string());
                }
            }
        }
        config.namespaces.sort();
        config.merged["namespaces"] = Value::from(config.namespaces.clone());
    }
    merge(&mut config.merged, fragment);
    Ok(())
}
