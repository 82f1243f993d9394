pub mod fake_http;
pub mod prometheus;
