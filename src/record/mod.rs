//! Signed, hash-chained change records and the append-only ledger that holds them
//! (docs/records.md). One record per gate decision: a DSSE envelope ([`dsse`]) around an in-toto
//! Statement carrying a SLSA VSA with relgate's change record ([`statement`]), signed with an
//! Ed25519 key ([`keys`]), linked to its predecessor by `prev`, appended to a git branch or a
//! directory ([`ledger`]) together with a signed RFC 6962 checkpoint ([`merkle`],
//! [`checkpoint`]), and checked end to end by [`verify`], including [`completeness`]: every
//! commit of the recorded branch that changed a manifest, the config or a policy after the
//! first record is named by a record. [`housekeeping`] advises `git gc` when the object
//! database holds enough loose objects or packfiles to slow reading the ledger.
//!
//! What the CLI calls:
//! - `relgate keygen --out DIR`: [`keys::keygen`].
//! - `relgate record`: [`keys::Signer::from_file`], then [`ledger::open_ledger`] (or
//!   [`ledger::GitLedger::open`] / [`ledger::DirLedger::open`]) and
//!   [`ledger::Ledger::append_all`] with the [`statement::RecordInput`] of every manifest (one
//!   packfile and one move of the branch per run on a git ledger).
//! - `relgate verify`: [`keys::TrustedKeys::load_dir`], then [`verify::verify_ledger`];
//!   [`verify::VerifyReport::exit_code`] gives 0 intact, 1 tampering, 2 could not verify.
//! - `relgate verify --envelopes FILE`: [`verify::verify_envelopes_with`].
//! - `relgate export`: [`verify::VerifiedLedger::verify`], then
//!   [`verify::VerifiedLedger::read_records`] (streams records without holding payloads).
//!
//! Formats, layout and what verification can and cannot detect: `docs/records.md`.

pub mod checkpoint;
pub mod completeness;
pub mod dsse;
pub(crate) mod housekeeping;
pub mod keys;
pub mod ledger;
pub mod merkle;
pub mod statement;
pub mod verify;

use std::path::{Path, PathBuf};

pub use keys::{keygen, KeyId, Signer, TrustedKeys};
pub use ledger::{
    open_ledger, AppendReceipt, DirLedger, GitLedger, Ledger, LedgerOptions, LedgerSource,
};
pub use statement::{Decision, RecordInput};
pub use verify::{
    verify_ledger, verify_ledger_with, Problem, ProblemKind, VerifyOptions, VerifyReport,
    VerifyStatus,
};

/// Errors of key handling, record building and appending.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A key could not be generated, read or parsed.
    #[error("{0}")]
    Key(String),
    /// The record input is invalid (e.g. a digest is not SHA-256).
    #[error("invalid record input: {0}")]
    Input(String),
    /// A git operation failed.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// The ledger's stored state does not match its records; appending would break the chain.
    #[error("ledger is inconsistent, refusing to append (run `relgate verify`): {0}")]
    Inconsistent(String),
    /// Concurrent writers kept winning the race.
    #[error("ledger busy: gave up after {attempts} attempts to append")]
    Contention {
        /// Attempts made.
        attempts: u32,
    },
}

impl RecordError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> RecordError {
        RecordError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
