//! relgate: a policy-as-code release gate for ML model and LLM prompt releases.
//!
//! The library holds everything; `main.rs` only calls [`cli::main`]. See `ARCHITECTURE.md` for
//! the module map and the data flow.
//!
//! Crate-internal items are `pub(crate)` or private, so the dead-code lint sees them, and
//! `unreachable_pub` warns on a `pub` item no outside code can reach (`changed`, `recording` and
//! `cli::records` are exempt until narrowed). Outside `record`, `pub` marks only what the
//! binary, `tests/it`, the benches and the examples use.

#![warn(unreachable_pub)]

pub(crate) mod backoff;
pub mod bundle;
pub mod catalogue;
// Still marks crate-internal items `pub`; `cargo fix --lib` narrows them (then drop the allow).
#[allow(unreachable_pub)]
pub(crate) mod changed;
pub mod cli;
pub(crate) mod collect;
pub mod config;
pub(crate) mod embedded;
pub(crate) mod error;
pub mod evidence;
pub mod exit_status;
pub mod export;
pub(crate) mod field_path;
pub mod gate;
pub(crate) mod github;
pub(crate) mod init;
pub(crate) mod line_index;
pub mod manifest;
pub(crate) mod output;
pub mod policy;
pub(crate) mod pull_request;
pub mod record;
// Still marks crate-internal items `pub`; `cargo fix --lib` narrows them (then drop the allow).
#[allow(unreachable_pub)]
pub(crate) mod recording;
pub mod report;
pub(crate) mod schema;
pub mod workspace;
