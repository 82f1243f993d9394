//! `oci://REGISTRY/REPO[:TAG][@sha256:…]` references: parsing (the `oci://` scheme required,
//! so a bundle is never confused with a directory), pinning to a digest, display.

use std::fmt;

use super::{is_digest, BundleError, Result};

/// A parsed `oci://REGISTRY/REPO[:TAG][@sha256:…]` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleRef {
    /// `host[:port]`.
    pub(crate) registry: String,
    pub(crate) repository: String,
    pub(crate) tag: Option<String>,
    pub(crate) digest: Option<String>,
}

impl BundleRef {
    /// Parses a reference; the `oci://` scheme is required so a bundle is never confused with
    /// a directory.
    pub fn parse(text: &str) -> Result<BundleRef> {
        let usage = |why: &str| {
            BundleError(format!(
                "{text:?}: {why}; write oci://REGISTRY/REPOSITORY@sha256:<64 hex> (or :TAG where a tag is allowed)"
            ))
        };
        let rest = text
            .strip_prefix("oci://")
            .ok_or_else(|| usage("a bundle reference starts with oci://"))?;
        let (rest, digest) = match rest.split_once('@') {
            Some((name, digest)) => {
                if !is_digest(digest) {
                    return Err(usage(
                        "the digest is not sha256: followed by 64 lowercase hex digits",
                    ));
                }
                (name, Some(digest.to_string()))
            }
            None => (rest, None),
        };
        let (registry, path) = rest
            .split_once('/')
            .ok_or_else(|| usage("no repository after the registry"))?;
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag.to_string())),
            _ => (path, None),
        };
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b))
                && !s.split('/').any(|p| p.is_empty() || p == "." || p == "..")
        };
        let registry_ok = !registry.is_empty()
            && registry
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
        if !registry_ok {
            return Err(usage("the registry is not a host[:port]"));
        }
        if !name_ok(repository) {
            return Err(usage(
                "the repository must be lowercase letters, digits, '.', '_', '-' and '/'",
            ));
        }
        if let Some(tag) = &tag {
            let tag_ok = !tag.is_empty()
                && tag.len() <= 128
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !tag_ok {
                return Err(usage("the tag is not valid"));
            }
        }
        if tag.is_none() && digest.is_none() {
            return Err(usage("no tag and no digest"));
        }
        Ok(BundleRef {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    /// The same reference pinned to `digest` (the tag dropped).
    pub fn pinned(&self, digest: &str) -> BundleRef {
        BundleRef {
            tag: None,
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }
}

impl fmt::Display for BundleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci://{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}
