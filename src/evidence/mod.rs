pub mod slo;
