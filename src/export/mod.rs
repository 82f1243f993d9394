//! `relgate export` (DESIGN §10): turns a verified ledger into evidence an auditor accepts.
//! It owns the export row model ([`row`]), the row writers, the release KPIs and the HTML
//! report. It reads records only through [`crate::record::verify`], so every exported row says
//! whether its record verified.

pub mod html;
pub mod kpi;
pub mod row;

pub use row::ExportRow;
