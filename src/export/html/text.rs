//! Every value the report writes, as text: HTML escaping (all ledger strings are
//! attacker-controlled), chart labels cut by characters, rates, durations and enum names,
//! each formatted the same way every time.

use serde::Serialize;

/// Longest label drawn in a chart, in characters (the full text is in the bar's `<title>`).
const MAX_LABEL_CHARS: usize = 40;

/// HTML-escapes text for element content and quoted attribute values. Control characters
/// (other than tab and newline) become U+FFFD: they are not valid in HTML text.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(c),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A label cut to `MAX_LABEL_CHARS` characters (with an ellipsis), escaped.
pub(super) fn label(text: &str) -> String {
    if text.chars().count() <= MAX_LABEL_CHARS {
        escape(text)
    } else {
        let cut: String = text.chars().take(MAX_LABEL_CHARS - 1).collect();
        format!("{}…", escape(&cut))
    }
}

pub(super) fn opt(text: Option<&str>) -> String {
    text.map(escape).unwrap_or_else(|| "—".to_owned())
}

pub(super) fn percent(rate: Option<f64>) -> String {
    match rate {
        Some(r) => format!("{:.1} %", r * 100.0),
        None => "no data".to_owned(),
    }
}

/// A duration for people: `2 h 30 min`, `1 d 4 h`, `45 s`.
pub(super) fn human_duration(seconds: f64) -> String {
    let s = seconds.round().max(0.0) as u64;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min {} s", s % 60)
    } else {
        format!("{s} s")
    }
}

/// The text of a serde unit enum (`snake_case` kinds and severities).
pub(super) fn enum_text<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_markup_quotes_and_controls() {
        assert_eq!(
            escape("<a href=\"x\" title='y'>&\u{0}\u{7}\tz\n"),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;\u{FFFD}\u{FFFD}\tz\n"
        );
        // Labels are cut by characters, never inside a multi-byte character or an entity.
        let long = "Ü".repeat(60);
        let cut = label(&long);
        assert_eq!(cut.chars().count(), MAX_LABEL_CHARS);
        assert!(cut.ends_with('…'));
        assert_eq!(label("<b>"), "&lt;b&gt;");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(9000.0), "2 h 30 min");
        assert_eq!(human_duration(86_400.0), "1 d 0 h");
        assert_eq!(human_duration(2700.0), "45 min 0 s");
        assert_eq!(human_duration(12.4), "12 s");
    }
}
