pub mod fake_http;
pub mod github_api;
pub mod prometheus;
pub mod releases;
