// PLACEHOLDER: replaced by the html branch
//! The self-contained HTML report (placeholder until the html branch is merged).

/// Writes the HTML report of `rows`.
pub fn write_html(
    out: &mut dyn std::io::Write,
    rows: &[crate::export::ExportRow],
    verification: &crate::record::verify::VerifyReport,
    generated_at: &str,
) -> std::io::Result<()> {
    let _ = (out, rows, verification, generated_at);
    Ok(())
}
