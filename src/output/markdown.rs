//! `--format markdown`: a pull-request comment or job summary. The first line is a hidden
//! marker (`<!-- relgate-report -->`) so the GitHub Action can find and update its one sticky
//! comment. Then the verdict, a summary table, one section per failing or erroring manifest
//! (a table of rule, severity, `file:line`, message and fix, then exceptions, waivers and notes),
//! and the passing manifests collapsed in a `<details>` block, then links to the pages of the
//! catalogue rules that occurred (what `relgate explain RULE` prints), then the run notes (including
//! that approvals were not evaluated without pull-request context). Locations are `file:line`
//! relative to the gate root: plain text, or, with [`SourceLinks`] (GitHub mode knows the
//! repository and commit), links to that line of the file on GitHub.
//!
//! Text relgate did not write itself (file names, messages and fixes of policies, waiver
//! reasons, exception names, notes) is inert: [`cell`] escapes it so it cannot make links,
//! images, emphasis, headings, HTML, math or @mentions in a comment reviewers trust. relgate's
//! own markup (headings, tables, code spans, the links of [`SourceLinks`]) is written around
//! the escaped parts.

use std::fmt::Write as _;

use crate::report::{Decision, ManifestResult, Report, APPROVALS_NOT_EVALUATED};

/// The hidden marker on the first line.
pub(crate) const MARKER: &str = "<!-- relgate-report -->";

/// Where `file:line` locations link to: `{base}{file}#L{line}`, e.g. base
/// `https://github.com/acme/ml/blob/<sha>/` plus the gate root's path in the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceLinks {
    pub(crate) base: String,
}

impl SourceLinks {
    /// Links into `repository` (owner/name) at `commit` on `server` (https://github.com or a
    /// GitHub Enterprise URL); `prefix` is the gate root's path in the repository ("" or
    /// "sub/dir/").
    pub(crate) fn github(
        server: &str,
        repository: &str,
        commit: &str,
        prefix: &str,
    ) -> SourceLinks {
        SourceLinks {
            base: format!(
                "{}/{repository}/blob/{commit}/{prefix}",
                server.trim_end_matches('/')
            ),
        }
    }

    /// `file:line` as a markdown link. The file name is escaped for the cell; the URL's
    /// spaces, parentheses and other specials are percent-encoded so the link cannot break.
    fn location(&self, file: &str, line: u32) -> String {
        let mut url = String::with_capacity(self.base.len() + file.len() + 8);
        url.push_str(&self.base);
        for byte in file.bytes() {
            match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                    url.push(char::from(byte))
                }
                other => {
                    let _ = write!(url, "%{other:02X}");
                }
            }
        }
        format!("[{}:{line}]({url}#L{line})", cell(file))
    }
}

/// The report as markdown, with plain `file:line` locations.
pub(crate) fn render(report: &Report) -> String {
    render_linked(report, None)
}

/// The report as markdown; with `links`, every `file:line` links to that line.
pub(crate) fn render_linked(report: &Report, links: Option<&SourceLinks>) -> String {
    let s = &report.summary;
    let mut out = String::new();
    let _ = writeln!(out, "{MARKER}");
    let releases = |n: usize| if n == 1 { "release" } else { "releases" };
    let verdict = match report.decision {
        Decision::Pass if s.manifests == 0 => {
            "### ✅ relgate: no release manifests changed".to_string()
        }
        Decision::Pass if s.manifests == 1 => "### ✅ relgate: the release passes".to_string(),
        Decision::Pass => format!("### ✅ relgate: all {} releases pass", s.manifests),
        Decision::Fail => format!(
            "### ❌ relgate: blocked — {} of {} {} {}",
            s.failed,
            s.manifests,
            releases(s.manifests),
            if s.failed == 1 { "fails" } else { "fail" }
        ),
        Decision::Error if s.manifests == 0 => {
            "### ⚠️ relgate: error — no manifests were checked".to_string()
        }
        Decision::Error => {
            let mut line = format!(
                "### ⚠️ relgate: error — {} of {} {} could not be checked",
                s.errors,
                s.manifests,
                releases(s.manifests)
            );
            if s.failed > 0 {
                let _ = write!(line, ", {} blocked", s.failed);
            }
            line
        }
    };
    let _ = writeln!(out, "{verdict}");
    out.push('\n');
    out.push_str("| manifests | passed | failed | errors | warnings |\n");
    out.push_str("| ---: | ---: | ---: | ---: | ---: |\n");
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} |",
        s.manifests, s.passed, s.failed, s.errors, s.warnings
    );
    out.push('\n');
    let _ = writeln!(out, "Policy digest: `{}`", report.policy_digest);

    for result in report
        .results
        .iter()
        .filter(|r| r.decision != Decision::Pass)
    {
        out.push('\n');
        manifest(&mut out, result, links);
    }

    let passing: Vec<&ManifestResult> = report
        .results
        .iter()
        .filter(|r| r.decision == Decision::Pass)
        .collect();
    if !passing.is_empty() {
        out.push('\n');
        let _ = writeln!(
            out,
            "<details><summary>{} passing {}</summary>",
            passing.len(),
            releases(passing.len())
        );
        for result in passing {
            out.push('\n');
            manifest(&mut out, result, links);
        }
        out.push('\n');
        out.push_str("</details>\n");
    }

    let removed = report.removed.as_deref().unwrap_or_default();
    if !removed.is_empty() {
        out.push('\n');
        out.push_str("Removed by the change (not checked):\n\n");
        for r in removed {
            let _ = writeln!(out, "- removed: {}", cell(&r.file));
        }
    }

    // The catalogue rules that occurred, linked to their pages (ids and links are the
    // catalogue's own text, not the policies').
    let explained = crate::catalogue::catalogue().rules_among(
        report
            .results
            .iter()
            .flat_map(|r| &r.findings)
            .map(|f| f.rule.as_str()),
    );
    if !explained.is_empty() {
        let links: Vec<String> = explained
            .iter()
            .map(|r| format!("[{}]({})", r.id, r.help_uri()))
            .collect();
        out.push('\n');
        let _ = writeln!(
            out,
            "Why each rule matters and how to fix it: {} (or `relgate explain RULE`).",
            links.join(", ")
        );
    }

    let approvals = (!report.approvals_evaluated).then_some(APPROVALS_NOT_EVALUATED);
    let notes: Vec<&str> = report.notes.iter().map(String::as_str).collect();
    if !notes.is_empty() || approvals.is_some() {
        out.push('\n');
        for note in notes {
            let _ = writeln!(out, "> {}", cell(note));
        }
        // relgate's own sentence, shown as written.
        if let Some(approvals) = approvals {
            let _ = writeln!(out, "> {approvals}");
        }
    }
    out
}

fn manifest(out: &mut String, result: &ManifestResult, links: Option<&SourceLinks>) {
    let icon = match result.decision {
        Decision::Pass => "✅",
        Decision::Fail => "❌",
        Decision::Error => "⚠️",
    };
    let location = |line: u32| match links {
        Some(links) => links.location(&result.file, line),
        None => format!("{}:{line}", cell(&result.file)),
    };
    let mut title = String::new();
    if result.document > 0 {
        let _ = write!(title, " (document {})", result.document);
    }
    match (&result.kind, &result.name, &result.version) {
        (Some(kind), Some(name), Some(version)) => {
            // `name@version` is escaped as one piece, so `@` breaks only where it could
            // start a mention.
            let _ = write!(
                title,
                " — {} {}",
                cell(kind),
                cell(&format!("{name}@{version}"))
            );
        }
        (Some(kind), Some(name), None) => {
            let _ = write!(title, " — {} {}", cell(kind), cell(name));
        }
        _ => {}
    }
    let _ = writeln!(out, "#### {icon} {}{title}", location(result.line));
    if let Some(error) = &result.error {
        out.push('\n');
        let _ = writeln!(out, "**error:** {}", cell(error));
    }
    if !result.findings.is_empty() {
        out.push('\n');
        out.push_str("| rule | severity | location | message | fix |\n");
        out.push_str("| --- | --- | --- | --- | --- |\n");
        for f in &result.findings {
            let mut message = cell(&f.message);
            if let Some(path) = &f.path {
                let _ = write!(message, " (field {})", code(path, true));
            }
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                cell(&f.rule),
                cell(f.severity.as_str()),
                location(f.line),
                message,
                cell(f.remediation.as_deref().unwrap_or("")),
            );
        }
    }
    if !result.exceptions.is_empty() {
        out.push('\n');
        out.push_str("Exceptions (suppressed findings):\n\n");
        for e in &result.exceptions {
            let _ = writeln!(
                out,
                "- {} at {} by exception {} in {}: {}",
                cell(&e.finding.rule),
                location(e.finding.line),
                code(&e.exception, false),
                cell(&e.exception_policy),
                cell(&e.finding.message),
            );
        }
    }
    if !result.waivers.is_empty() {
        out.push('\n');
        out.push_str("Waivers:\n\n");
        for w in &result.waivers {
            let mut line = format!(
                "- {} at {} waived by {} until {}",
                cell(&w.item),
                location(w.line),
                cell(w.approver.as_deref().unwrap_or("(no approver)")),
                cell(w.expires.as_deref().unwrap_or("(no expiry)")),
            );
            if let Some(reason) = &w.reason {
                let _ = write!(line, ": {}", cell(reason));
            }
            let _ = writeln!(out, "{line}");
        }
    }
    if !result.notes.is_empty() {
        out.push('\n');
        for note in &result.notes {
            let _ = writeln!(out, "> {}", cell(note));
        }
    }
}

/// Makes text relgate did not write inert in a table cell or any one-line spot of the report:
/// - markdown punctuation is backslash-escaped (`\` `` ` `` `*` `_` `{` `}` `[` `]` `(` `)`
///   `!` `~` `$` `|`): no link, image, emphasis, code, strikethrough, math, and `|` cannot end
///   a table cell;
/// - at the start of the text (where a note begins its line) also `#` `+` `-` `=` and the `.`
///   of `1.`: no heading, list, rule or setext underline. Elsewhere on a line they mean
///   nothing in GFM and stay as written, so `PII-RETENTION` and `PR #2` read as they are;
/// - `<`, `>` and `&` become entities: no HTML, no autolink in angle brackets, no blockquote;
/// - `@` that could start a mention (not preceded by a letter or digit, as in `name@1.2` or
///   an e-mail address) is followed by U+2060 WORD JOINER, which GitHub does not read as part
///   of a login, so nobody is notified (the text looks the same);
/// - the `:` of `://` is escaped, so a bare `https://…` is not made a link (GitHub's autolink
///   would also swallow the backslash of a following escape); a bare `www.…` still is, and
///   shows its own target;
/// - a newline becomes `<br>` instead of ending the row;
/// - bidirectional overrides (U+202E…) and other control characters are named (`[U+202E]`):
///   they would reorder or hide what the reader sees.
pub(crate) fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let mut previous: Option<char> = None;
    // Nothing but blanks so far, and nothing but blanks and digits so far.
    let mut at_start = true;
    let mut digits_only = true;
    for (at, c) in text.char_indices() {
        let block_marker = at_start && matches!(c, '#' | '+' | '-' | '=')
            || digits_only && c == '.' && previous.is_some_and(|p| p.is_ascii_digit());
        at_start = at_start && matches!(c, ' ' | '\t');
        digits_only = digits_only && matches!(c, ' ' | '\t' | '0'..='9');
        match c {
            _ if block_marker => {
                out.push('\\');
                out.push(c);
            }
            ':' if text[at + 1..].starts_with("//") => out.push_str("\\:"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' => out.push_str("<br>"),
            '\r' => {}
            // Bidi overrides reorder what the reader sees; other control characters are
            // invisible: both are named instead (`[U+202E]`).
            c if crate::output::text::is_bidi(c) || c.is_control() => {
                out.push_str(&format!("\\[U+{:04X}\\]", u32::from(c)));
            }
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '(' | ')' | '!' | '~' | '$' | '|' => {
                out.push('\\');
                out.push(c);
            }
            '@' => {
                out.push('@');
                if !previous.is_some_and(|p| p.is_ascii_alphanumeric()) {
                    out.push('\u{2060}');
                }
            }
            c => out.push(c),
        }
        previous = Some(c);
    }
    out
}

/// `text` as a code span (shown verbatim, nothing in it is markdown): the fence is one backtick
/// longer than the longest run of backticks in `text`, so a backtick cannot close it early;
/// newlines become spaces (a span is one line); bidi overrides and control characters are
/// named (`[U+202E]`); in a table (`table`) `|` is escaped, which GFM
/// undoes inside the span.
pub(crate) fn code(text: &str, table: bool) -> String {
    let mut body = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\r' => body.push(' '),
            c if crate::output::text::is_bidi(c) || c.is_control() => {
                body.push_str(&format!("[U+{:04X}]", u32::from(c)));
            }
            c => body.push(c),
        }
    }
    if table {
        body = body.replace('|', "\\|");
    }
    let mut longest = 0;
    let mut run = 0;
    for c in body.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    // A space keeps a leading or trailing backtick off the fence (CommonMark strips one
    // space on each side when both are there).
    let pad = if body.starts_with('`') || body.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{body}{pad}{fence}")
}

#[cfg(test)]
mod tests {
    use super::{cell, code, SourceLinks};

    #[test]
    fn links_point_at_the_line_and_cannot_break_out_of_the_url() {
        let links = SourceLinks::github("https://ghe.example/", "acme/ml", "abc123", "gate/");
        assert_eq!(
            links.location("releases/a b(1).yaml", 7),
            "[releases/a b\\(1\\).yaml:7](https://ghe.example/acme/ml/blob/abc123/gate/releases/a%20b%281%29.yaml#L7)"
        );
        assert_eq!(
            links.location("r/<x>|y.yaml", 2),
            "[r/&lt;x&gt;\\|y.yaml:2](https://ghe.example/acme/ml/blob/abc123/gate/r/%3Cx%3E%7Cy.yaml#L2)"
        );
        // A file name cannot close the label and add a link of its own.
        assert_eq!(
            links.location("releases/a](/mallory/x)[b.yaml", 1),
            "[releases/a\\]\\(/mallory/x\\)\\[b.yaml:1](https://ghe.example/acme/ml/blob/abc123/gate/releases/a%5D%28/mallory/x%29%5Bb.yaml#L1)"
        );
    }

    #[test]
    fn cells_escape_table_and_html_syntax() {
        assert_eq!(cell("a|b<c>&\r\nd"), "a\\|b&lt;c&gt;&amp;<br>d");
    }

    #[test]
    fn cells_make_markdown_inert() {
        assert_eq!(
            cell("**LGTM** [x](https://evil.example/) cc @octocat"),
            "\\*\\*LGTM\\*\\* \\[x\\]\\(https\\://evil.example/\\) cc @\u{2060}octocat"
        );
        assert_eq!(
            cell("![](https://evil.example/p.png)"),
            "\\!\\[\\]\\(https\\://evil.example/p.png\\)"
        );
        assert_eq!(cell("a: b, c:/d, e://"), "a: b, c:/d, e\\://");
        // Block markers only where a line could begin.
        assert_eq!(cell("# big"), "\\# big");
        assert_eq!(cell("  - item + x - y"), "  \\- item + x - y");
        assert_eq!(cell("+ a"), "\\+ a");
        assert_eq!(cell("==="), "\\===");
        assert_eq!(cell("---"), "\\---");
        assert_eq!(cell("12. x 3. y"), "12\\. x 3. y");
        assert_eq!(cell("PII-RETENTION on PR #2"), "PII-RETENTION on PR #2");
        assert_eq!(
            cell("~~gone~~ _it_ `c` {a} $x$"),
            "\\~\\~gone\\~\\~ \\_it\\_ \\`c\\` \\{a\\} \\$x\\$"
        );
        assert_eq!(cell("a\\b"), "a\\\\b");
        assert_eq!(cell("<img src=x>"), "&lt;img src=x&gt;");
        // A mention starts after a non-word character; `name@version` and addresses are no
        // mentions and stay as they are.
        assert_eq!(cell("@octo-org/ml"), "@\u{2060}octo-org/ml");
        assert_eq!(cell("(@a)"), "\\(@\u{2060}a\\)");
        assert_eq!(
            cell("answer@2 dana@example.com"),
            "answer@2 dana@example.com"
        );
        assert_eq!(cell("x_@y"), "x\\_@\u{2060}y");
    }

    #[test]
    fn code_spans_cannot_be_closed_early() {
        assert_eq!(code("spec.owner.team", true), "`spec.owner.team`");
        assert_eq!(code("a`b", false), "``a`b``");
        assert_eq!(code("``x", false), "``` ``x ```");
        assert_eq!(code("a|b\nc", true), "`a\\|b c`");
        assert_eq!(code("a|b", false), "`a|b`");
    }
}
