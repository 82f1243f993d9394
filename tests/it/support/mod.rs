//! What the integration tests share: the whole-binary test DSL ([`dsl`], re-exported here so a
//! test writes `use crate::support::{Repo, ...}`), local servers that stand in for the outside
//! world on 127.0.0.1 (a scripted HTTP server, a real Prometheus, a real OCI registry, GitHub's
//! API with its real bodies), and the release manifests the tests write.
#![allow(dead_code)] // each test module uses a different part

pub mod dsl;
pub mod fake_http;
pub mod github_api;
pub mod ledger;
pub mod prometheus;
pub mod registry;
pub mod release_server;
pub mod releases;

pub use dsl::*;
