//! `relgate policy push|pull|verify`: shared, signed policy bundles over OCI
//! (docs/bundles.md), and the environment those commands and `check` read for bundles.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;

use crate::bundle::cache::{self, Cache};
use crate::bundle::gate::BundleSettings;
use crate::bundle::registry::{self, GithubToken};
use crate::bundle::{self, BundleFiles, BundleRef};
use crate::exit_status::ExitStatus;
use crate::record::keys::{Signer, TrustedKeys};

/// `relgate policy`.
#[derive(Debug, clap::Args)]
pub(crate) struct PolicyArgs {
    #[command(subcommand)]
    pub(crate) command: PolicyCommand,
    /// Bundle cache directory. Default: $RELGATE_BUNDLE_CACHE, else
    /// $XDG_CACHE_HOME/relgate/bundles, else ~/.cache/relgate/bundles.
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) cache: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum PolicyCommand {
    /// Pack a bundle directory, sign it and push it as an OCI artifact; prints its digest.
    Push {
        /// The bundle directory: .rego (and _test.rego), .json/.yaml data, relgate-config.yaml.
        dir: PathBuf,
        /// Where to push: oci://REGISTRY/REPOSITORY:TAG.
        target: String,
        /// Private signing key (PKCS#8 PEM, from `relgate keygen`). Default: the PEM text in
        /// RELGATE_SIGNING_KEY.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
    },
    /// Fetch a bundle by tag or digest into the cache; prints the pinned reference.
    ///
    /// With --key, also verifies it (as `verify` does).
    Pull {
        /// oci://REGISTRY/REPOSITORY:TAG or oci://REGISTRY/REPOSITORY@sha256:…
        reference: String,
        /// Trusted public key(s) (PEM) to verify the bundle's signature with.
        #[arg(long = "key", value_name = "FILE")]
        keys: Vec<PathBuf>,
    },
    /// Verify a cached bundle offline: digest, every blob, signature, every file.
    /// Exit 0 verified, 2 not.
    Verify {
        /// oci://REGISTRY/REPOSITORY@sha256:… (in the cache).
        reference: String,
        /// Trusted public key(s) (PEM).
        #[arg(long = "key", value_name = "FILE", required = true)]
        keys: Vec<PathBuf>,
    },
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The bundle settings from the environment (and `--cache`).
pub(crate) fn settings(cache_flag: Option<PathBuf>, allow_tag: bool) -> BundleSettings {
    let home = env_path("HOME");
    let cache_dir = cache_flag.or_else(|| {
        cache::default_dir(
            env_path("RELGATE_BUNDLE_CACHE").as_deref(),
            env_path("XDG_CACHE_HOME").as_deref(),
            home.as_deref(),
        )
    });
    // Docker's and podman's conventions: REGISTRY_AUTH_FILE, else $DOCKER_CONFIG/config.json,
    // else ~/.docker/config.json.
    let auth_file = env_path("REGISTRY_AUTH_FILE")
        .or_else(|| env_path("DOCKER_CONFIG").map(|d| d.join("config.json")))
        .or_else(|| home.map(|h| h.join(".docker").join("config.json")));
    // The Action's token, for ghcr.io only (docs/bundles.md, "Credentials").
    let github = std::env::var("GITHUB_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .map(|token| GithubToken {
            actor: std::env::var("GITHUB_ACTOR").ok(),
            token,
        });
    BundleSettings {
        cache_dir,
        auth_file,
        allow_tag,
        github,
        read_timeout: std::env::var("RELGATE_REGISTRY_TIMEOUT").ok(),
    }
}

fn read_keys(paths: &[PathBuf]) -> anyhow::Result<TrustedKeys> {
    let mut keys = TrustedKeys::new();
    for path in paths {
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the public key", path.display()))?;
        keys.insert_pem(&pem)
            .with_context(|| format!("{}: not a trusted public key", path.display()))?;
    }
    Ok(keys)
}

fn signer(key: Option<&PathBuf>) -> anyhow::Result<Signer> {
    match key {
        Some(path) => Ok(Signer::from_file(path)?),
        None => {
            let pem = std::env::var("RELGATE_SIGNING_KEY").map_err(|_| {
                anyhow::anyhow!(
                    "no signing key: give --key FILE or put the PEM in RELGATE_SIGNING_KEY"
                )
            })?;
            Ok(Signer::from_pem(&pem)?)
        }
    }
}

fn cache_of(settings: &BundleSettings) -> anyhow::Result<Cache> {
    settings
        .cache_dir
        .clone()
        .map(Cache::new)
        .context("no bundle cache directory: give --cache DIR or set RELGATE_BUNDLE_CACHE")
}

/// Verifies a cached bundle; returns it.
fn verify_cached(
    cache: &Cache,
    reference: &BundleRef,
    keys: &TrustedKeys,
) -> anyhow::Result<bundle::VerifiedBundle> {
    let digest = reference
        .digest
        .as_deref()
        .context("verify needs a reference pinned by digest (oci://…@sha256:…)")?;
    let oci = cache.get(digest, bundle::MAX_OCI_MANIFEST_BYTES)?;
    Ok(bundle::verify_artifact(
        &oci,
        Some(digest),
        &mut &*cache,
        keys,
        &reference.to_string(),
    )?)
}

/// Runs `relgate policy …`.
pub(crate) fn policy(args: PolicyArgs) -> anyhow::Result<ExitStatus> {
    let settings = settings(args.cache.clone(), false);
    let mut stdout = std::io::stdout().lock();
    match args.command {
        PolicyCommand::Push { dir, target, key } => {
            let target = BundleRef::parse(&target)?;
            if target.digest.is_some() {
                anyhow::bail!(
                    "push to a tag (oci://REGISTRY/REPOSITORY:TAG); the digest is computed"
                );
            }
            let signer = signer(key.as_ref())?;
            let files = BundleFiles::read_dir(&dir)?;
            let packed = bundle::pack(&files, &signer)?;
            let digest = registry::push(&packed, &target, &settings.remote(&target.registry)?)?;
            writeln!(stdout, "{}", target.pinned(&digest))?;
            eprintln!(
                "pushed {} files signed by key {} as {target}",
                files.files.len(),
                signer.key_id()
            );
            Ok(ExitStatus::Pass)
        }
        PolicyCommand::Pull { reference, keys } => {
            let reference = BundleRef::parse(&reference)?;
            let cache = cache_of(&settings)?;
            let digest =
                registry::fetch(&reference, &settings.remote(&reference.registry)?, &cache)?;
            let pinned = reference.pinned(&digest);
            if !keys.is_empty() {
                let verified = verify_cached(&cache, &pinned, &read_keys(&keys)?)?;
                eprintln!("verified: signed by key {}", verified.key_id);
            }
            writeln!(stdout, "{pinned}")?;
            Ok(ExitStatus::Pass)
        }
        PolicyCommand::Verify { reference, keys } => {
            let reference = BundleRef::parse(&reference)?;
            let cache = cache_of(&settings)?;
            let verified = verify_cached(&cache, &reference, &read_keys(&keys)?)?;
            writeln!(
                stdout,
                "{reference}: verified, {} files signed by key {}",
                verified.files.files.len(),
                verified.key_id
            )?;
            Ok(ExitStatus::Pass)
        }
    }
}

/// `relgate test --bundle DIR|oci://…@sha256:…`: the bundle's sources (tests included) and
/// data, and its config fragment merged over `config`, as `check` would. A reference is
/// fetched (unless cached) and verified exactly as `check` verifies a bundle, against the
/// `--key` files, else the keys of the `bundles:` entry of relgate.yaml for the same
/// repository; it must be pinned by digest.
pub(crate) fn test_inputs(
    bundle: &std::path::Path,
    keys: &[PathBuf],
    root: &crate::workspace::GateRoot,
    config: &mut crate::config::GateConfig,
    sources: &mut Vec<crate::policy::PolicySource>,
    data: &mut Vec<(String, serde_json::Value)>,
) -> anyhow::Result<()> {
    let text = bundle.to_string_lossy();
    let (files, prefix) = if text.starts_with("oci://") {
        let reference = BundleRef::parse(&text)?;
        let Some(digest) = reference.digest.clone() else {
            anyhow::bail!(
                "--bundle {text}: a tag can move, so a bundle is tested by digest like the gate \
                 uses it; run `relgate policy pull {text}` and test the oci://…@sha256:… it prints"
            );
        };
        let trusted = if keys.is_empty() {
            config_keys(root, config, &reference)?
        } else {
            read_keys(keys)?
        };
        let verified = crate::bundle::gate::fetch_verified(
            &reference,
            &trusted,
            &settings(None, false),
            false,
            "--bundle",
        )?;
        eprintln!(
            "testing {reference}: verified, {} files signed by key {}",
            verified.files.files.len(),
            verified.key_id
        );
        (
            verified.files,
            format!("bundle@{}", &digest["sha256:".len()..][..12]),
        )
    } else {
        let files = BundleFiles::read_dir(bundle)?;
        (files, text.trim_end_matches('/').to_string())
    };
    let contents = crate::bundle::gate::contents(&files, &prefix, true)?;
    sources.extend(contents.sources);
    data.extend(contents.data);
    if let Some((shown, fragment)) = contents.fragment {
        crate::bundle::gate::apply_fragment(config, fragment, &shown)?;
    }
    Ok(())
}

/// The keys relgate.yaml trusts for `reference`: those of its `bundles:` entries naming the
/// same registry and repository.
fn config_keys(
    root: &crate::workspace::GateRoot,
    config: &crate::config::GateConfig,
    reference: &BundleRef,
) -> anyhow::Result<TrustedKeys> {
    let mut keys = TrustedKeys::new();
    let entries = config
        .merged
        .get("bundles")
        .and_then(serde_json::Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (index, entry) in entries.iter().enumerate() {
        let same = entry
            .get("ref")
            .and_then(serde_json::Value::as_str)
            .and_then(|r| BundleRef::parse(r).ok())
            .is_some_and(|r| {
                r.registry == reference.registry && r.repository == reference.repository
            });
        if same {
            let found = crate::bundle::gate::trusted_keys(
                root,
                config,
                entry,
                &format!("bundles[{index}]"),
            )?;
            for (_, key) in found.iter() {
                keys.insert(*key);
            }
        }
    }
    if keys.is_empty() {
        anyhow::bail!(
            "--bundle {reference}: no trusted key: give --key FILE (the public key that signs \
             the bundle), or list the bundle with its keys under `bundles:` in relgate.yaml"
        );
    }
    Ok(keys)
}
