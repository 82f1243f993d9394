//! `--format text`: for a person at a terminal. Findings are grouped per manifest, each with
//! `file:line`, the rule, the message, the field and the remedy; run notes (including that
//! approvals were not evaluated without pull-request context), a `help:` line naming the
//! catalogue rules that occurred for `relgate explain RULE`, and a summary line close the run.
//! Colour only when asked (the CLI decides from the tty, `NO_COLOR` and `--color`).
//!
//! The text goes to CI logs, where the runner takes a line starting with `::` (after leading
//! blanks) or holding `##[` as a workflow command (`::add-mask::`, `::error …`,
//! `::stop-commands::`). Every piece a pull request controls (file names, names, versions,
//! messages, notes) goes through [`field`]: control characters (a newline would start a line
//! of the attacker's choosing) and bidirectional-override characters (which reorder what a
//! reviewer reads) are shown as `\u{…}` escapes. [`guard_log`] is the last line of defence the
//! CLI applies to whatever it prints: no line of any format can start a command.

use std::borrow::Cow;
use std::fmt::Write as _;

use super::palette::Palette;
use crate::report::{ManifestResult, Report, APPROVALS_NOT_EVALUATED};

/// Characters that change the display order of the text around them (Trojan Source,
/// CVE-2021-42574) or are invisible marks: shown as escapes wherever relgate prints text it did
/// not write.
pub(crate) fn is_bidi(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// Text relgate did not write, made safe for one line of a log: newlines, other control
/// characters and bidi overrides become visible escapes (`\n`, `\r`, `\t`, `\u{202e}`).
pub(crate) fn field(text: &str) -> Cow<'_, str> {
    escape_chars(text, false)
}

/// As [`field`], but newlines stay (a multi-line message of relgate's own, such as an error
/// with its cause); [`guard_log`] still keeps any of its lines from being a command.
pub(crate) fn multiline(text: &str) -> Cow<'_, str> {
    escape_chars(text, true)
}

fn escape_chars(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| (c.is_control() && !(keep_newlines && c == '\n')) || is_bidi(c);
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' if keep_newlines => out.push('\n'),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// How [`guard_log`] writes what it neutralises, so the output stays valid in its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogSyntax {
    /// Text, markdown, workflow commands: a backslash (`\::`, `#\#[`), which markdown hides.
    Plain,
    /// JSON (`##[` only occurs inside strings): `#\u0023[`, the same string.
    Json,
    /// XML: character references (`&#58;:`, `#&#35;[`), the same text.
    Xml,
}

/// The last pass over anything printed to a log: a line whose first non-blank characters are
/// `::` gets them escaped, and every `##[` (the runner's older command syntax, found anywhere
/// in a line) is broken, so no text can be read as a workflow command. relgate's own
/// `--format github` commands are not touched: they start with `::` at column 0 and name a
/// command relgate writes, with the data escaped as the runner defines.
pub(crate) fn guard_log(text: &str, syntax: LogSyntax, own_commands: bool) -> String {
    let (colons, hashes) = match syntax {
        LogSyntax::Plain => ("\\::", "#\\#["),
        LogSyntax::Json => ("::", "#\\u0023["),
        LogSyntax::Xml => ("&#58;:", "#&#35;["),
    };
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        let own = own_commands && indent.is_empty() && is_own_command(body);
        let line = if body.starts_with("::") && !own {
            Cow::Owned(format!("{indent}{colons}{}", &body[2..]))
        } else {
            Cow::Borrowed(line)
        };
        out.push_str(&escape_invisible(&line.replace("##[", hashes), syntax));
    }
    out
}

/// Bidi overrides and isolates reorder what a reviewer reads in the log, and the line and
/// paragraph separators U+2028/U+2029 break a line in some viewers: the text format escapes
/// them in each field, but JSON, SARIF, GitLab and JUnit on stdout carried them raw (red team
/// X2). Written as an escape of the format, so the document means the same.
fn escape_invisible(line: &str, syntax: LogSyntax) -> Cow<'_, str> {
    let hostile = |c: char| matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}');
    if !line.contains(hostile) {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 16);
    for c in line.chars() {
        if !hostile(c) {
            out.push(c);
            continue;
        }
        let _ = match syntax {
            LogSyntax::Plain => write!(out, "\\u{{{:x}}}", c as u32),
            LogSyntax::Json => write!(out, "\\u{:04x}", c as u32),
            LogSyntax::Xml => write!(out, "&#x{:X};", c as u32),
        };
    }
    Cow::Owned(out)
}

/// The commands `--format github` writes.
fn is_own_command(line: &str) -> bool {
    ["::error ", "::warning ", "::notice "]
        .iter()
        .any(|c| line.starts_with(c))
}

pub(crate) fn render(report: &Report, color: bool) -> String {
    let p = Palette::new(color);
    let mut out = String::new();
    for result in &report.results {
        manifest(&mut out, result, &p);
    }
    for removed in report.removed.iter().flatten() {
        let _ = writeln!(
            out,
            "{}removed:{} {} (deleted by the change; not checked)",
            p.dim.render(),
            p.dim.render_reset(),
            field(&removed.file)
        );
    }
    let approvals = (!report.approvals_evaluated).then_some(APPROVALS_NOT_EVALUATED);
    for note in report.notes.iter().map(String::as_str).chain(approvals) {
        let _ = writeln!(
            out,
            "{}note:{} {}",
            p.dim.render(),
            p.dim.render_reset(),
            field(note)
        );
    }
    let explained = crate::catalogue::catalogue().rules_among(
        report
            .results
            .iter()
            .flat_map(|r| &r.findings)
            .map(|f| f.rule.as_str()),
    );
    if !explained.is_empty() {
        let ids: Vec<&str> = explained.iter().map(|r| r.id.as_str()).collect();
        let _ = writeln!(
            out,
            "{}help:{} `relgate explain RULE` says why a rule matters and how to fix it ({})",
            p.dim.render(),
            p.dim.render_reset(),
            ids.join(", ")
        );
    }
    let s = &report.summary;
    let (style, word) = p.decision(report.decision);
    let _ = writeln!(
        out,
        "{}{}{}: {} manifest{}, {} passed, {} failed, {} error{}, {} warning{}",
        style.render(),
        word.trim_end(),
        style.render_reset(),
        s.manifests,
        plural(s.manifests),
        s.passed,
        s.failed,
        s.errors,
        plural(s.errors),
        s.warnings,
        plural(s.warnings),
    );
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn manifest(out: &mut String, result: &ManifestResult, p: &Palette) {
    let (style, word) = p.decision(result.decision);
    let file = field(&result.file);
    let what = match (&result.kind, &result.name, &result.version) {
        (Some(kind), Some(name), Some(version)) => {
            format!("{} {}@{}", field(kind), field(name), field(version))
        }
        (Some(kind), Some(name), None) => format!("{} {}", field(kind), field(name)),
        _ => String::new(),
    };
    let document = if result.document > 0 {
        format!(" (document {})", result.document)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "{}{word}{} {}{}:{}{}{document}  {what}",
        style.render(),
        style.render_reset(),
        p.bold.render(),
        file,
        result.line,
        p.bold.render_reset(),
    );
    if let Some(error) = &result.error {
        let _ = writeln!(out, "      {}", field(error));
    }
    for finding in &result.findings {
        let style = if finding.severity.is_warn() {
            p.warn
        } else {
            p.fail
        };
        let _ = writeln!(
            out,
            "      {}:{}  {}{}{}  {}",
            file,
            finding.line,
            style.render(),
            field(&finding.rule),
            style.render_reset(),
            field(&finding.message)
        );
        if let Some(path) = &finding.path {
            let _ = writeln!(
                out,
                "          {}field:{} {}",
                p.dim.render(),
                p.dim.render_reset(),
                field(path)
            );
        }
        if let Some(fix) = &finding.remediation {
            let _ = writeln!(
                out,
                "          {}fix:{} {}",
                p.dim.render(),
                p.dim.render_reset(),
                field(fix)
            );
        }
    }
    for exception in &result.exceptions {
        let _ = writeln!(
            out,
            "      {}:{}  {}excepted{} {} by exception `{}` in {}: {}",
            file,
            exception.finding.line,
            p.dim.render(),
            p.dim.render_reset(),
            field(&exception.finding.rule),
            field(&exception.exception),
            field(&exception.exception_policy),
            field(&exception.finding.message)
        );
    }
    for waiver in &result.waivers {
        let _ = writeln!(
            out,
            "      {}:{}  {}waived{} {} by {} until {}",
            file,
            waiver.line,
            p.dim.render(),
            p.dim.render_reset(),
            field(&waiver.item),
            field(waiver.approver.as_deref().unwrap_or("(no approver)")),
            field(waiver.expires.as_deref().unwrap_or("(no expiry)")),
        );
    }
    for note in &result.notes {
        let _ = writeln!(
            out,
            "      {}note:{} {}",
            p.dim.render(),
            p.dim.render_reset(),
            field(note)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{field, guard_log, multiline, LogSyntax};

    #[test]
    fn fields_cannot_start_a_line_or_reorder_text() {
        assert_eq!(
            field("a\n::add-mask::x\r\t\u{1b}[31m"),
            "a\\n::add-mask::x\\r\\t\\u{1b}[31m"
        );
        assert_eq!(field("v2\u{202E}exe.txt"), "v2\\u{202e}exe.txt");
        assert_eq!(multiline("a\n\u{2066}b"), "a\n\\u{2066}b");
        assert!(matches!(field("plain"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn no_line_is_a_workflow_command() {
        let text = "ok\n   ::add-mask::x\n::stop-commands::t\nsee ##[error]y\n::error file=a::m\n";
        assert_eq!(
            guard_log(text, LogSyntax::Plain, false),
            "ok\n   \\::add-mask::x\n\\::stop-commands::t\nsee #\\#[error]y\n\\::error file=a::m\n"
        );
        assert_eq!(
            guard_log(text, LogSyntax::Plain, true),
            "ok\n   \\::add-mask::x\n\\::stop-commands::t\nsee #\\#[error]y\n::error file=a::m\n"
        );
        assert_eq!(
            guard_log("\"a ##[x\"", LogSyntax::Json, false),
            "\"a #\\u0023[x\""
        );
        assert_eq!(
            guard_log(" ::x ##[", LogSyntax::Xml, false),
            " &#58;:x #&#35;["
        );
    }
}
