//! Typed errors of the library. Each variant carries what a person needs to act: the file (and
//! line where known), what was expected and how to fix it. The CLI maps every error to exit
//! code 2 ("could not decide"): an error is never a pass.

use std::path::PathBuf;

/// Anything that stops relgate from deciding.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file relgate was asked to read could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A path leaves the gate root, or names nothing. (`transparent`: the message is the
    /// inner error's, shown once by `{:#}`, not once per link of the chain.)
    #[error(transparent)]
    Path(#[from] crate::workspace::PathError),
    /// An input file (manifest, config, data, `--pr-json`) is malformed.
    #[error(transparent)]
    Input(#[from] crate::manifest::InputError),
    /// `relgate.yaml` is invalid.
    #[error("{path}: invalid gate configuration:\n{details}")]
    Config { path: String, details: String },
    /// A policy did not load or crashed while evaluating.
    #[error("{0}")]
    Policy(String),
    /// `--changed` could not tell what changed (bad revision, no merge base, no repository).
    /// The git range's own error (`changed::ChangedError`), converted where the pipeline
    /// calls it, so this module needs nothing of the pipeline.
    #[error(transparent)]
    Changed(Box<dyn std::error::Error + Send + Sync>),
    /// The command line asks for something that cannot be done.
    #[error("{0}")]
    Usage(String),
}

/// Shorthand used across the library.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;
