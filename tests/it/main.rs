//! relgate's integration tests: one test binary (as ripgrep and uv do), so the library, git2,
//! octocrab and regorus are linked once, not once per file. One module per command or concern:
//!
//! - `cli`: whole-binary tests of every command, written with the DSL of `support::dsl`;
//! - `hostile`: the adversarial suite of `docs/threat-model.md`;
//! - `action`, `github`: the GitHub Action's steps run like a runner, GitHub mode against a
//!   local API serving GitHub's real bodies;
//! - `slo`: the error-budget gate against a real Prometheus;
//! - `records`, `export`, `export_html`, `evidence`, `rvm_differential`: library-level suites;
//! - `docs_fields`: docs that list fields (docs/report.md, docs/records.md) against what is
//!   written;
//! - `support`: what they share (the DSL, local servers on 127.0.0.1, release manifests).
//!
//! Run one area with a filter: `cargo test --test it hostile::`.

mod action;
mod cli;
mod docs_fields;
mod evidence;
mod export;
mod export_html;
mod github;
mod hostile;
mod records;
mod rvm_differential;
mod slo;
mod support;
