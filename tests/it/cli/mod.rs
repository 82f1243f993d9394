//! Whole-binary tests of `relgate`: one test binary, one module per command or concern, all
//! written with the small DSL in `tests/it/support/dsl.rs`.

mod approvals;
mod bundles;
mod catalogue;
mod changed;
mod check;
mod collect;
mod demo;
mod evals;
mod export;
mod formats;
mod hostile;
mod install;
mod outputs;
mod records;
mod rego_test;
mod scenarios;
mod vocabulary;
mod wheel;
