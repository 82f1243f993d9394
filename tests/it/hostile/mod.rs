//! The adversarial suite: what a hostile pull-request author (or an attacker of the CI path)
//! tries, one module per area, each test written to fail on the code before its fix. The
//! threat model these tests hold relgate to is `docs/threat-model.md`.
//!
//! Every test runs the real `relgate` binary on a real temporary repository with the DSL of
//! `tests/it/support/dsl.rs`, except `properties`, which drives the library's readers directly.

mod base_rules;
mod ci;
mod discovery;
mod evidence;
mod floors;
mod ledger;
mod properties;
mod redteam_ci;
mod redteam_pr;
