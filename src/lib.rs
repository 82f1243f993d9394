//! relgate: a policy-as-code release gate for ML model and LLM prompt releases.
pub mod record;
