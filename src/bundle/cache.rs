//! The local bundle cache: a content-addressed blob store, `DIR/blobs/sha256/<hex>` (the OCI
//! image-layout convention). A blob is stored only after its bytes hash to its name, written
//! to a temporary file and renamed into place, so a reader never sees half a blob. Reading
//! hashes the bytes again: the cache is a convenience, never trusted, and a bundle read from
//! it goes through the same [`super::verify_artifact`] as one read from a registry.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use super::{digest_of, err, is_digest, BlobSource, BundleError, Result};

/// A cache directory.
#[derive(Debug, Clone)]
pub(crate) struct Cache {
    pub(crate) dir: PathBuf,
}

impl Cache {
    pub(crate) fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache { dir: dir.into() }
    }

    fn path(&self, digest: &str) -> Result<PathBuf> {
        if !is_digest(digest) {
            return err(format!("{digest:?} is not a sha256 digest"));
        }
        Ok(self
            .dir
            .join("blobs")
            .join("sha256")
            .join(&digest["sha256:".len()..]))
    }

    /// True when the blob is present (not verified).
    pub(crate) fn contains(&self, digest: &str) -> bool {
        self.path(digest).is_ok_and(|p| p.is_file())
    }

    /// Stores `bytes` under `digest`; refuses bytes that do not hash to it.
    pub(crate) fn put(&self, digest: &str, bytes: &[u8]) -> Result<()> {
        if digest_of(bytes) != digest {
            return err(format!(
                "refusing to cache a blob whose content does not hash to {digest}"
            ));
        }
        let path = self.path(digest)?;
        if path.is_file() {
            return Ok(());
        }
        let parent = path
            .parent()
            .ok_or_else(|| BundleError("cache path has no parent".into()))?;
        std::fs::create_dir_all(parent).map_err(|e| {
            BundleError(format!(
                "{}: cannot create the cache: {e}",
                parent.display()
            ))
        })?;
        let mut tmp = tempfile::NamedTempFile::new_in(parent).map_err(|e| {
            BundleError(format!("{}: cannot write the cache: {e}", parent.display()))
        })?;
        tmp.write_all(bytes)
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| {
                BundleError(format!("{}: cannot write the cache: {e}", parent.display()))
            })?;
        tmp.persist(&path).map_err(|e| {
            BundleError(format!(
                "{}: cannot write the cache: {}",
                path.display(),
                e.error
            ))
        })?;
        Ok(())
    }

    /// Reads a blob (at most `limit` bytes) and checks it hashes to `digest`.
    pub(crate) fn get(&self, digest: &str, limit: u64) -> Result<Vec<u8>> {
        let path = self.path(digest)?;
        let file = std::fs::File::open(&path).map_err(|e| {
            BundleError(format!(
                "blob {digest} is not in the cache {} ({e})",
                self.dir.display()
            ))
        })?;
        let mut bytes = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| BundleError(format!("{}: cannot read: {e}", path.display())))?;
        if bytes.len() as u64 > limit || digest_of(&bytes) != digest {
            return err(format!(
                "{}: the cached blob is corrupt (it does not hash to {digest}); delete it and pull again",
                path.display()
            ));
        }
        Ok(bytes)
    }
}

impl BlobSource for &Cache {
    fn blob(&mut self, digest: &str, limit: u64) -> Result<Vec<u8>> {
        self.get(digest, limit)
    }
}

/// The default cache directory given the environment values the CLI read:
/// `RELGATE_BUNDLE_CACHE`, else `$XDG_CACHE_HOME/relgate/bundles`, else
/// `$HOME/.cache/relgate/bundles`.
pub(crate) fn default_dir(
    relgate_cache: Option<&Path>,
    xdg_cache_home: Option<&Path>,
    home: Option<&Path>,
) -> Option<PathBuf> {
    relgate_cache
        .map(Path::to_path_buf)
        .or_else(|| xdg_cache_home.map(|d| d.join("relgate").join("bundles")))
        .or_else(|| home.map(|h| h.join(".cache").join("relgate").join("bundles")))
}
