//! Verification of an untrusted bundle artifact: the OCI manifest against the pinned digest
//! and its shape, every blob against its descriptor (digest and size bound), the signature
//! against the trusted keys BEFORE any file is read, and every file of the tar against the
//! signed bundle manifest (in memory; never written under its bundle path).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;

use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier as _};
use sha2::{Digest as _, Sha256};

use super::{
    check_path, digest_of, err, file_kind, is_digest, signed_message, BundleError, BundleFiles,
    BundleManifest, BundleSignature, Descriptor, FileEntry, OciManifest, Result, ARTIFACT_TYPE,
    BUNDLE_SCHEMA, FILES_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, MAX_BUNDLE_MANIFEST_BYTES, MAX_FILES,
    MAX_FILES_BYTES, MAX_FILE_BYTES, MAX_OCI_MANIFEST_BYTES, MAX_SIGNATURE_BYTES,
    OCI_MANIFEST_MEDIA_TYPE, SIGNATURE_MEDIA_TYPE,
};
use crate::record::keys::{KeyId, TrustedKeys};

/// Where [`verify_artifact`] reads blobs from: the cache (already digest-checked by the caller)
/// or anything else that returns a blob's bytes given its descriptor.
pub(crate) trait BlobSource {
    /// The bytes of the blob `digest`, at most `limit` bytes (more is an error).
    fn blob(&mut self, digest: &str, limit: u64) -> Result<Vec<u8>>;
}

/// A bundle that passed every check.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedBundle {
    /// The OCI manifest digest.
    pub(crate) digest: String,
    /// The key that signed it.
    pub(crate) key_id: KeyId,
    pub(crate) files: BundleFiles,
}

/// Parses and checks the shape of an OCI manifest: the relgate artifact type, one config
/// (the bundle manifest) and exactly a files and a signature layer, each within its bound.
pub(crate) fn parse_oci_manifest(bytes: &[u8], shown: &str) -> Result<OciManifest> {
    if bytes.len() as u64 > MAX_OCI_MANIFEST_BYTES {
        return err(format!(
            "{shown}: the OCI manifest is larger than {MAX_OCI_MANIFEST_BYTES} bytes; not a relgate bundle"
        ));
    }
    let oci: OciManifest = serde_json::from_slice(bytes).map_err(|e| {
        BundleError(format!(
            "{shown}: not a relgate policy bundle (the OCI manifest does not parse: {e})"
        ))
    })?;
    let shape_ok = oci.schema_version == 2
        && oci.media_type == OCI_MANIFEST_MEDIA_TYPE
        && oci.artifact_type.as_deref() == Some(ARTIFACT_TYPE)
        && oci.config.media_type == MANIFEST_MEDIA_TYPE
        && oci.layers.len() == 2
        && oci.layers[0].media_type == FILES_MEDIA_TYPE
        && oci.layers[1].media_type == SIGNATURE_MEDIA_TYPE;
    if !shape_ok {
        return err(format!(
            "{shown}: not a relgate policy bundle (expected artifactType {ARTIFACT_TYPE} with \
             a {MANIFEST_MEDIA_TYPE} config and a files and a signature layer); push it with \
             `relgate policy push`"
        ));
    }
    for (descriptor, limit) in [
        (&oci.config, MAX_BUNDLE_MANIFEST_BYTES),
        (&oci.layers[0], MAX_FILES_BYTES),
        (&oci.layers[1], MAX_SIGNATURE_BYTES),
    ] {
        if !is_digest(&descriptor.digest) {
            return err(format!(
                "{shown}: blob digest {:?} is not a sha256 digest",
                descriptor.digest
            ));
        }
        if descriptor.size > limit {
            return err(format!(
                "{shown}: {} blob declares {} bytes, more than the limit of {limit}",
                descriptor.media_type, descriptor.size
            ));
        }
    }
    Ok(oci)
}

/// Verifies a bundle artifact: the OCI manifest bytes against `pinned` (when given), every
/// blob's digest and size, the signature against `trusted` before any file is read, and every
/// file against the signed bundle manifest. `shown` names the bundle in messages.
pub(crate) fn verify_artifact(
    oci_bytes: &[u8],
    pinned: Option<&str>,
    blobs: &mut dyn BlobSource,
    trusted: &TrustedKeys,
    shown: &str,
) -> Result<VerifiedBundle> {
    let digest = digest_of(oci_bytes);
    if let Some(pinned) = pinned {
        if digest != pinned {
            return err(format!(
                "{shown}: digest mismatch: the OCI manifest hashes to {digest}, not the pinned \
                 {pinned}; the registry or cache serves different content, refusing it"
            ));
        }
    }
    let oci = parse_oci_manifest(oci_bytes, shown)?;
    let get = |blobs: &mut dyn BlobSource, d: &Descriptor, limit: u64| -> Result<Vec<u8>> {
        let bytes = blobs.blob(&d.digest, limit.min(d.size))?;
        if bytes.len() as u64 != d.size || digest_of(&bytes) != d.digest {
            return err(format!(
                "{shown}: blob {} does not match its descriptor (digest or size differ); \
                 the bundle was tampered with",
                d.digest
            ));
        }
        Ok(bytes)
    };
    let signature_bytes = get(blobs, &oci.layers[1], MAX_SIGNATURE_BYTES)?;
    let manifest_bytes = get(blobs, &oci.config, MAX_BUNDLE_MANIFEST_BYTES)?;
    let key_id = verify_signature(&signature_bytes, &manifest_bytes, trusted, shown)?;
    let manifest: BundleManifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| BundleError(format!("{shown}: the bundle manifest does not parse: {e}")))?;
    if manifest.schema != BUNDLE_SCHEMA {
        return err(format!(
            "{shown}: bundle schema {:?} is not supported (expected {BUNDLE_SCHEMA})",
            manifest.schema
        ));
    }
    let tar_bytes = get(blobs, &oci.layers[0], MAX_FILES_BYTES)?;
    let files = untar_checked(&tar_bytes, &manifest, shown)?;
    Ok(VerifiedBundle {
        digest,
        key_id,
        files: BundleFiles { manifest, files },
    })
}

/// Verifies the signature layer over the bundle manifest; returns the signing key's id.
fn verify_signature(
    signature_bytes: &[u8],
    manifest_bytes: &[u8],
    trusted: &TrustedKeys,
    shown: &str,
) -> Result<KeyId> {
    let signature: BundleSignature = serde_json::from_slice(signature_bytes).map_err(|e| {
        BundleError(format!(
            "{shown}: unsigned or malformed signature layer ({e}); sign it with `relgate policy \
             push --key`"
        ))
    })?;
    let Some(key) = trusted.get(&signature.keyid) else {
        let mut trusted_ids: Vec<&str> = trusted.iter().map(|(id, _)| id.as_str()).collect();
        trusted_ids.sort();
        return err(format!(
            "{shown}: signed by key {} which is not trusted (trusted: {}); add its public key \
             to the bundle's `keys` only if you trust its owner",
            signature.keyid,
            if trusted_ids.is_empty() {
                "none".to_string()
            } else {
                trusted_ids.join(", ")
            }
        ));
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(signature.sig.as_bytes())
        .map_err(|_| BundleError(format!("{shown}: the signature is not base64")))?;
    let sig = Signature::from_slice(&raw)
        .map_err(|_| BundleError(format!("{shown}: the signature is not 64 bytes")))?;
    let manifest_digest = digest_of(manifest_bytes);
    key.verify(&signed_message(&manifest_digest), &sig)
        .map_err(|_| {
            BundleError(format!(
                "{shown}: bad signature: key {} did not sign this bundle manifest ({manifest_digest}); \
                 the bundle was altered after signing",
                signature.keyid
            ))
        })?;
    Ok(KeyId::of(key))
}

/// Reads the files tar in memory: only regular files, each listed in the manifest exactly
/// once, with the listed size and sha256, and nothing listed missing.
pub(crate) fn untar_checked(
    tar_bytes: &[u8],
    manifest: &BundleManifest,
    shown: &str,
) -> Result<BTreeMap<String, Vec<u8>>> {
    let listed: BTreeMap<&str, &FileEntry> = manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f))
        .collect();
    if listed.len() != manifest.files.len() || manifest.files.len() > MAX_FILES {
        return err(format!(
            "{shown}: the bundle manifest lists a path twice or too many files"
        ));
    }
    for path in listed.keys() {
        check_path(path).map_err(|e| BundleError(format!("{shown}: {e}")))?;
        if file_kind(path).is_none() {
            return err(format!("{shown}: {path}: not a bundle file type"));
        }
    }
    let mut files = BTreeMap::new();
    let mut archive = tar::Archive::new(tar_bytes);
    let entries = archive
        .entries()
        .map_err(|e| BundleError(format!("{shown}: the files layer is not a tar: {e}")))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| BundleError(format!("{shown}: the files layer is corrupt: {e}")))?;
        let path_bytes = entry.path_bytes().into_owned();
        let path = String::from_utf8(path_bytes)
            .map_err(|_| BundleError(format!("{shown}: a file name in the bundle is not UTF-8")))?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            return err(format!(
                "{shown}: {path}: not a regular file (links and special files are refused)"
            ));
        }
        let Some(expected) = listed.get(path.as_str()) else {
            return err(format!(
                "{shown}: {path}: in the files layer but not in the signed bundle manifest"
            ));
        };
        if files.contains_key(&path) {
            return err(format!("{shown}: {path}: appears twice in the files layer"));
        }
        let mut bytes = Vec::new();
        (&mut entry)
            .take(expected.size.min(MAX_FILE_BYTES) + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| BundleError(format!("{shown}: {path}: cannot read: {e}")))?;
        if bytes.len() as u64 != expected.size
            || hex::encode(Sha256::digest(&bytes)) != expected.sha256
        {
            return err(format!(
                "{shown}: {path}: content does not match the signed bundle manifest"
            ));
        }
        files.insert(path, bytes);
    }
    let missing: BTreeSet<&str> = listed
        .keys()
        .filter(|p| !files.contains_key(**p))
        .copied()
        .collect();
    if !missing.is_empty() {
        return err(format!(
            "{shown}: files listed in the bundle manifest are missing: {}",
            missing.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(files)
}
