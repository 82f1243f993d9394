//! The collect state file (JSON): per repository, the last checkpoint collected (size, root,
//! origin, the signed note) with the Merkle frontier and the head payload hash at that size, so
//! the next run can prove consistency from it and continue the hash chain while reading only
//! the records added since. It is written after the run's part files, atomically (temporary
//! file + rename); a run that stops in between leaves part files whose first seq is past the
//! state's size, which the next run deletes before writing (part names carry their seq range).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::record::merkle::FrontierState;

/// State file format version.
pub(crate) const STATE_FORMAT: u32 = 1;

/// Largest state file read (a few hundred bytes per repository).
const MAX_STATE_BYTES: u64 = 64 * 1024 * 1024;

/// Everything collected so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CollectState {
    /// [`STATE_FORMAT`].
    pub(crate) format: u32,
    /// By repository name.
    pub(crate) repos: BTreeMap<String, RepoState>,
}

/// One repository's last collected checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RepoState {
    /// Where it was collected from (for people; a changed location is not an error).
    pub(crate) source: String,
    /// The checkpoint's origin: the ledger's name.
    pub(crate) origin: String,
    /// Records collected (the checkpoint's size).
    pub(crate) size: u64,
    /// The checkpoint's RFC 6962 root, hex.
    pub(crate) root: String,
    /// SHA-256 of record `size`'s payload, hex: the `prev` record `size + 1` must carry.
    pub(crate) head_sha256: String,
    /// The Merkle frontier of the first `size` records.
    pub(crate) frontier: FrontierState,
    /// The signed checkpoint note as read.
    pub(crate) checkpoint: String,
}

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StateError {
    /// Unreadable or not a state file.
    #[error("state file {path}: {detail}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong and how to fix it.
        detail: String,
    },
}

impl CollectState {
    /// Reads the state file; a missing file is an empty state (first run).
    pub(crate) fn load(path: &Path) -> Result<CollectState, StateError> {
        let invalid = |detail: String| StateError::Invalid {
            path: path.display().to_string(),
            detail,
        };
        match fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(CollectState {
                    format: STATE_FORMAT,
                    repos: BTreeMap::new(),
                })
            }
            Err(e) => return Err(invalid(e.to_string())),
            Ok(m) if !m.is_file() => return Err(invalid("not a regular file".into())),
            Ok(m) if m.len() > MAX_STATE_BYTES => {
                return Err(invalid(format!("{} bytes, too large", m.len())))
            }
            Ok(_) => {}
        }
        let text = fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
        let state: CollectState = serde_json::from_str(&text).map_err(|e| {
            invalid(format!(
                "{e}; it is written by relgate collect: restore it from a backup, or move it \
                 away to collect every repository again from the start"
            ))
        })?;
        if state.format != STATE_FORMAT {
            return Err(invalid(format!(
                "format {} is not {STATE_FORMAT}",
                state.format
            )));
        }
        Ok(state)
    }

    /// Writes the state file atomically (temporary file beside it, then rename).
    pub(crate) fn save(&self, path: &Path) -> Result<(), StateError> {
        let invalid = |detail: String| StateError::Invalid {
            path: path.display().to_string(),
            detail,
        };
        let mut text = serde_json::to_vec_pretty(self).map_err(|e| invalid(e.to_string()))?;
        text.push(b'\n');
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| invalid("not a file name".into()))?;
        let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        write_replace(&tmp, path, &text).map_err(|e| {
            // Best effort: the old state stays in place; the temporary file must not linger.
            let _ = fs::remove_file(&tmp);
            invalid(format!("cannot write: {e}"))
        })
    }
}

/// Writes `text` to `tmp`, syncs it and renames it over `path`.
fn write_replace(tmp: &Path, path: &Path, text: &[u8]) -> std::io::Result<()> {
    let mut f = fs::File::create(tmp)?;
    f.write_all(text)?;
    f.sync_all()?;
    fs::rename(tmp, path)
}
