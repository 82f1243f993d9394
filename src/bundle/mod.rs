//! Shared, signed policy bundles (`docs/bundles.md`).
//!
//! A bundle is a directory of Rego (with its `_test.rego` files), data documents (`.json`,
//! `.yaml`, `.yml`) and an optional config fragment (`relgate-config.yaml`). Packing it gives
//! three blobs, pushed as one OCI artifact:
//!
//! - the *bundle manifest* (`relgate-bundle.json`, the artifact's config blob): every file's
//!   path, size and sha256, sorted by path, serialized deterministically;
//! - the *files* layer: an uncompressed tar of exactly those files, sorted, with fixed metadata
//!   (mtime 0, uid/gid 0, mode 0644), so the same directory always gives the same bytes;
//! - the *signature* layer: Ed25519 (the change-record keys of `record::keys`) over
//!   `relgate-bundle-v1 sha256:<hex of the bundle manifest>`, with the signer's key id.
//!
//! The registry is untrusted: [`verify_artifact`] checks the OCI manifest against the pinned
//! digest, every blob against its descriptor's digest and a size bound, the signature against
//! the trusted keys BEFORE any file is used, and every file against the bundle manifest. Files
//! are never written out under their bundle paths (they stay in memory), so a hostile path
//! cannot escape anywhere; paths are still checked so that reports name sane files.
//!
//! Submodules: `verify` (checking an untrusted artifact), `reference` (`oci://` references),
//! `cache` (content-addressed blob store), `registry` (push with `oci-client`, a bounded fetch
//! client, credentials), `gate` (what `relgate check` and `relgate test --bundle` load).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read as _;
use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::record::keys::Signer;

pub(crate) mod cache;
pub(crate) mod credentials;
pub(crate) mod gate;
mod reference;
pub mod registry;
mod verify;

pub use reference::BundleRef;
pub(crate) use verify::{parse_oci_manifest, verify_artifact, BlobSource, VerifiedBundle};

/// `artifactType` of the OCI manifest.
pub(crate) const ARTIFACT_TYPE: &str = "application/vnd.relgate.policy.bundle.v1";
/// Media type of the bundle manifest (the OCI config blob).
pub(crate) const MANIFEST_MEDIA_TYPE: &str =
    "application/vnd.relgate.policy.bundle.manifest.v1+json";
/// Media type of the files layer.
pub const FILES_MEDIA_TYPE: &str = "application/vnd.relgate.policy.bundle.files.v1.tar";
/// Media type of the signature layer.
pub(crate) const SIGNATURE_MEDIA_TYPE: &str =
    "application/vnd.relgate.policy.bundle.signature.v1+json";
/// Media type of the OCI image manifest relgate writes and accepts.
pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// `schema` field of the bundle manifest.
pub(crate) const BUNDLE_SCHEMA: &str = "relgate.policy.bundle/v1";
/// Name of the optional config fragment inside a bundle.
pub(crate) const CONFIG_FRAGMENT: &str = "relgate-config.yaml";
/// Domain separation of the signed message: `PREFIX sha256:<hex>`.
const SIGNATURE_PREFIX: &str = "relgate-bundle-v1 ";

/// Size bounds: a registry (or a cache) that serves more is refused before it is read.
pub(crate) const MAX_OCI_MANIFEST_BYTES: u64 = 64 * 1024;
pub(crate) const MAX_BUNDLE_MANIFEST_BYTES: u64 = 1024 * 1024;
pub(crate) const MAX_SIGNATURE_BYTES: u64 = 4 * 1024;
pub(crate) const MAX_FILES_BYTES: u64 = 32 * 1024 * 1024;
pub(crate) const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
pub(crate) const MAX_FILES: usize = 2000;

/// A bundle problem; the message says what and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleError(pub(crate) String);

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BundleError {}

impl From<BundleError> for crate::error::Error {
    fn from(err: BundleError) -> Self {
        crate::error::Error::Policy(err.0)
    }
}

pub(crate) type Result<T, E = BundleError> = std::result::Result<T, E>;

fn err<T>(message: impl Into<String>) -> Result<T> {
    Err(BundleError(message.into()))
}

/// `sha256:<hex>` of some bytes.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// True for `sha256:` followed by 64 lowercase hex digits.
pub(crate) fn is_digest(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// One file of the bundle manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileEntry {
    pub(crate) path: String,
    pub(crate) size: u64,
    pub(crate) sha256: String,
}

/// The bundle manifest: what the signature covers (through its digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BundleManifest {
    pub(crate) schema: String,
    pub(crate) files: Vec<FileEntry>,
}

/// The signature layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BundleSignature {
    pub(crate) keyid: String,
    /// Standard base64 of the 64-byte Ed25519 signature.
    pub(crate) sig: String,
    /// The digest of the bundle manifest that was signed (informational; the verifier
    /// recomputes it).
    pub(crate) signed: String,
}

/// The message the signature is over.
fn signed_message(manifest_digest: &str) -> Vec<u8> {
    format!("{SIGNATURE_PREFIX}{manifest_digest}").into_bytes()
}

/// Checks a path inside a bundle: relative, `/`-separated, each component of
/// `[A-Za-z0-9._-]`, not starting with `.` (no `..`, no hidden files), at most 255 bytes.
pub(crate) fn check_path(path: &str) -> Result<()> {
    let ok = !path.is_empty()
        && path.len() <= 255
        && path.split('/').all(|part| {
            !part.is_empty()
                && !part.starts_with('.')
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        err(format!(
            "bundle file path {path:?} is not allowed: use relative paths of letters, digits, \
             '.', '_' and '-' (no '..', no leading '.', no absolute paths)"
        ))
    }
}

/// What kind of bundle file a path is; `None`: not allowed in a bundle.
fn file_kind(path: &str) -> Option<&'static str> {
    if path == CONFIG_FRAGMENT {
        Some("config")
    } else if path.ends_with(".rego") {
        Some("rego")
    } else if path.ends_with(".json") || path.ends_with(".yaml") || path.ends_with(".yml") {
        Some("data")
    } else {
        None
    }
}

/// A bundle's files, checked against its manifest (in memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleFiles {
    pub(crate) manifest: BundleManifest,
    /// Path -> bytes, sorted by path.
    pub(crate) files: BTreeMap<String, Vec<u8>>,
}

impl BundleFiles {
    /// Reads a bundle directory: every regular file must be Rego, a data document or the config
    /// fragment; symlinks, other file types and disallowed names are refused, naming the file.
    pub fn read_dir(dir: &Path) -> Result<BundleFiles> {
        let meta = std::fs::symlink_metadata(dir)
            .map_err(|e| BundleError(format!("{}: cannot read: {e}", dir.display())))?;
        if !meta.is_dir() {
            return err(format!("{}: not a bundle directory", dir.display()));
        }
        let mut files = BTreeMap::new();
        let mut total = 0u64;
        for entry in walkdir::WalkDir::new(dir)
            .follow_links(false)
            .sort_by_file_name()
            .min_depth(1)
        {
            let entry = entry.map_err(|e| BundleError(format!("{}: {e}", dir.display())))?;
            let rel = entry.path().strip_prefix(dir).map_err(|_| {
                BundleError(format!("{}: outside the bundle", entry.path().display()))
            })?;
            let rel = rel
                .to_str()
                .ok_or_else(|| BundleError(format!("{}: not UTF-8", entry.path().display())))?
                .replace(std::path::MAIN_SEPARATOR, "/");
            let file_type = entry.file_type();
            if file_type.is_dir() {
                check_path(&rel)?;
                continue;
            }
            if !file_type.is_file() {
                return err(format!(
                    "{}: only regular files can go into a bundle (symlinks and special files \
                     are refused); copy the file instead",
                    entry.path().display()
                ));
            }
            check_path(&rel)?;
            if file_kind(&rel).is_none() {
                return err(format!(
                    "{}: not a bundle file; a bundle holds .rego, .json, .yaml/.yml data and \
                     {CONFIG_FRAGMENT} only",
                    entry.path().display()
                ));
            }
            let bytes = read_bounded_file(entry.path(), MAX_FILE_BYTES)?;
            total += bytes.len() as u64;
            if total > MAX_FILES_BYTES || files.len() >= MAX_FILES {
                return err(format!(
                    "{}: bundle too large (at most {MAX_FILES} files and {MAX_FILES_BYTES} bytes)",
                    dir.display()
                ));
            }
            files.insert(rel, bytes);
        }
        if !files.keys().any(|p| p.ends_with(".rego")) {
            return err(format!(
                "{}: no .rego file; a bundle needs at least one policy",
                dir.display()
            ));
        }
        let manifest = BundleManifest {
            schema: BUNDLE_SCHEMA.to_string(),
            files: files
                .iter()
                .map(|(path, bytes)| FileEntry {
                    path: path.clone(),
                    size: bytes.len() as u64,
                    sha256: hex::encode(Sha256::digest(bytes)),
                })
                .collect(),
        };
        Ok(BundleFiles { manifest, files })
    }

    /// The Rego files that are policies (not tests).
    pub(crate) fn rego(&self, include_tests: bool) -> impl Iterator<Item = (&String, &Vec<u8>)> {
        self.files.iter().filter(move |(path, _)| {
            path.ends_with(".rego") && (include_tests || !path.ends_with("_test.rego"))
        })
    }

    /// Data documents (not the config fragment).
    pub(crate) fn data(&self) -> impl Iterator<Item = (&String, &Vec<u8>)> {
        self.files
            .iter()
            .filter(|(path, _)| file_kind(path) == Some("data"))
    }

    /// The config fragment, when the bundle has one.
    pub(crate) fn config_fragment(&self) -> Option<&Vec<u8>> {
        self.files.get(CONFIG_FRAGMENT)
    }
}

fn read_bounded_file(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path)
        .map_err(|e| BundleError(format!("{}: cannot read: {e}", path.display())))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| BundleError(format!("{}: cannot read: {e}", path.display())))?;
    if bytes.len() as u64 > limit {
        return err(format!(
            "{}: larger than {limit} bytes; bundle files are limited to that size",
            path.display()
        ));
    }
    Ok(bytes)
}

/// The three blobs and the OCI manifest of a packed bundle.
#[derive(Debug, Clone)]
pub struct Packed {
    pub bundle_manifest: Vec<u8>,
    pub files_tar: Vec<u8>,
    pub signature: Vec<u8>,
    pub oci_manifest: Vec<u8>,
}

impl Packed {
    /// The artifact's digest: what consumers pin.
    pub fn digest(&self) -> String {
        digest_of(&self.oci_manifest)
    }
}

/// An OCI descriptor as relgate writes and reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub(crate) media_type: String,
    pub digest: String,
    pub size: u64,
}

impl Descriptor {
    fn of(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest: digest_of(bytes),
            size: bytes.len() as u64,
        }
    }
}

/// The OCI image manifest of a bundle artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciManifest {
    #[serde(rename = "schemaVersion")]
    pub(crate) schema_version: u32,
    #[serde(rename = "mediaType")]
    pub(crate) media_type: String,
    #[serde(rename = "artifactType", default)]
    pub(crate) artifact_type: Option<String>,
    pub(crate) config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// Packs and signs a bundle. Deterministic: the same files and key give the same bytes.
pub fn pack(bundle: &BundleFiles, signer: &Signer) -> Result<Packed> {
    let bundle_manifest = canonical_json(&bundle.manifest)?;
    let files_tar = tar_files(bundle)?;
    let manifest_digest = digest_of(&bundle_manifest);
    let sig = signer.sign(&signed_message(&manifest_digest));
    let signature = canonical_json(&BundleSignature {
        keyid: signer.key_id().to_string(),
        sig: base64::engine::general_purpose::STANDARD.encode(sig),
        signed: manifest_digest,
    })?;
    let oci = OciManifest {
        schema_version: 2,
        media_type: OCI_MANIFEST_MEDIA_TYPE.to_string(),
        artifact_type: Some(ARTIFACT_TYPE.to_string()),
        config: Descriptor::of(MANIFEST_MEDIA_TYPE, &bundle_manifest),
        layers: vec![
            Descriptor::of(FILES_MEDIA_TYPE, &files_tar),
            Descriptor::of(SIGNATURE_MEDIA_TYPE, &signature),
        ],
    };
    let oci_manifest = canonical_json(&oci)?;
    Ok(Packed {
        bundle_manifest,
        files_tar,
        signature,
        oci_manifest,
    })
}

fn canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    // Struct field order is fixed, no maps with unordered keys: the bytes are deterministic.
    serde_json::to_vec(value).map_err(|e| BundleError(format!("cannot serialize: {e}")))
}

fn tar_files(bundle: &BundleFiles) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    for (path, bytes) in &bundle.files {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        builder
            .append_data(&mut header, path, bytes.as_slice())
            .map_err(|e| BundleError(format!("{path}: cannot pack: {e}")))?;
    }
    builder
        .into_inner()
        .map_err(|e| BundleError(format!("cannot pack: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::verify::untar_checked;
    use super::*;
    use crate::record::keys::TrustedKeys;

    struct Map(BTreeMap<String, Vec<u8>>);
    impl BlobSource for Map {
        fn blob(&mut self, digest: &str, _limit: u64) -> Result<Vec<u8>> {
            self.0
                .get(digest)
                .cloned()
                .ok_or_else(|| BundleError(format!("{digest}: missing")))
        }
    }

    fn sample() -> (BundleFiles, Signer) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("lib")).unwrap();
        std::fs::write(dir.path().join("org.rego"), "package org\n").unwrap();
        std::fs::write(dir.path().join("lib/x_test.rego"), "package org\n").unwrap();
        std::fs::write(dir.path().join(CONFIG_FRAGMENT), "pii: {}\n").unwrap();
        (
            BundleFiles::read_dir(dir.path()).unwrap(),
            Signer::from_seed([7; 32]),
        )
    }

    fn blobs(p: &Packed) -> Map {
        Map([&p.bundle_manifest, &p.files_tar, &p.signature]
            .into_iter()
            .map(|b| (digest_of(b), b.clone()))
            .collect())
    }

    fn trusted(signer: &Signer) -> TrustedKeys {
        let mut keys = TrustedKeys::new();
        keys.insert(signer.verifying_key());
        keys
    }

    #[test]
    fn packing_is_deterministic_and_verifies() {
        let (files, signer) = sample();
        let a = pack(&files, &signer).unwrap();
        let b = pack(&files, &signer).unwrap();
        assert_eq!(a.oci_manifest, b.oci_manifest);
        assert_eq!(a.files_tar, b.files_tar);
        let verified = verify_artifact(
            &a.oci_manifest,
            Some(&a.digest()),
            &mut blobs(&a),
            &trusted(&signer),
            "b",
        )
        .unwrap();
        assert_eq!(verified.files, files);
        assert_eq!(&verified.key_id, signer.key_id());
    }

    #[test]
    fn untrusted_key_and_tampered_manifest_are_refused() {
        let (files, signer) = sample();
        let packed = pack(&files, &signer).unwrap();
        let other = Signer::from_seed([8; 32]);
        let e = verify_artifact(
            &packed.oci_manifest,
            None,
            &mut blobs(&packed),
            &trusted(&other),
            "b",
        )
        .unwrap_err();
        assert!(e.0.contains("not trusted"), "{e}");
        // A registry that re-signs nothing but edits the bundle manifest (and the OCI manifest
        // to match) fails the signature.
        let mut forged_manifest = files.manifest.clone();
        forged_manifest.files.pop();
        let forged_bytes = serde_json::to_vec(&forged_manifest).unwrap();
        let mut oci: OciManifest = serde_json::from_slice(&packed.oci_manifest).unwrap();
        oci.config = Descriptor::of(MANIFEST_MEDIA_TYPE, &forged_bytes);
        let oci_bytes = serde_json::to_vec(&oci).unwrap();
        let mut map = blobs(&packed);
        map.0.insert(digest_of(&forged_bytes), forged_bytes);
        let e = verify_artifact(&oci_bytes, None, &mut map, &trusted(&signer), "b").unwrap_err();
        assert!(e.0.contains("bad signature"), "{e}");
        let e = verify_artifact(
            &oci_bytes,
            Some(&packed.digest()),
            &mut map,
            &trusted(&signer),
            "b",
        )
        .unwrap_err();
        assert!(e.0.contains("digest mismatch"), "{e}");
    }

    #[test]
    fn hostile_tar_entries_are_refused() {
        let (files, signer) = sample();
        let manifest = files.manifest.clone();
        // A symlink entry named like a listed file.
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder
            .append_link(&mut header, "org.rego", "/etc/passwd")
            .unwrap();
        let bytes = builder.into_inner().unwrap();
        let e = untar_checked(&bytes, &manifest, "b").unwrap_err();
        assert!(e.0.contains("not a regular file"), "{e}");
        let _ = signer;
        for bad in ["../x.rego", "/abs.rego", ".hidden.rego", "a//b.rego", ""] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn references_parse_and_tags_are_recognised() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = BundleRef::parse(&format!("oci://127.0.0.1:5000/org/policies@{d}")).unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "org/policies");
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        let r = BundleRef::parse("oci://localhost:5000/org/policies:v1").unwrap();
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.to_string(), "oci://localhost:5000/org/policies:v1");
        assert!(BundleRef::parse("localhost:5000/org/p:v1").is_err());
        assert!(BundleRef::parse("oci://localhost:5000/org/p@sha256:zz").is_err());
        assert!(BundleRef::parse("oci://localhost:5000/../p:v1").is_err());
    }
}
