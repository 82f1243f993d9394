//! relgate: a policy-as-code release gate for ML model and LLM prompt releases.
//!
//! The library holds everything; `main.rs` only calls [`cli::main`]. See `ARCHITECTURE.md` for
//! the module map and the data flow.

pub mod backoff;
pub mod bundle;
pub mod catalogue;
pub mod changed;
pub mod cli;
pub mod collect;
pub mod config;
pub mod embedded;
pub mod error;
pub mod evidence;
pub mod exit_status;
pub mod export;
pub mod field_path;
pub mod gate;
pub mod github;
pub mod init;
pub mod line_index;
pub mod manifest;
pub mod output;
pub mod policy;
pub mod pull_request;
pub mod record;
pub mod recording;
pub mod report;
pub mod schema;
pub mod workspace;
