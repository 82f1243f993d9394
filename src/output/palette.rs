//! Colour in text output, one home for it: when to colour (`--color`, a terminal, `NO_COLOR`)
//! and the styles every text printer uses (check reports, `relgate test`, `relgate verify` and
//! the summary `relgate export` prints), so a pass, a failure or a warning looks the same in
//! each.

use anstyle::{AnsiColor, Style};

use crate::report::Decision;

/// `--color`: when to colour text output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ColorWhen {
    Auto,
    Always,
    Never,
}

/// Where text goes: `auto` asks that stream whether it is a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl ColorWhen {
    /// Whether text written to `stream` is coloured: `always`, `never`, or for `auto` whether
    /// the stream is a terminal and neither `NO_COLOR` nor `CLICOLOR=0` asks for none
    /// (anstream's rules).
    pub(crate) fn enabled_for(self, stream: Stream) -> bool {
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::Auto => {
                let choice = match stream {
                    Stream::Stdout => anstream::AutoStream::choice(&std::io::stdout()),
                    Stream::Stderr => anstream::AutoStream::choice(&std::io::stderr()),
                };
                choice != anstream::ColorChoice::Never
            }
        }
    }
}

/// The styles of text output; every style is plain when colour is off.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Palette {
    /// Passed, intact (green).
    pub(crate) pass: Style,
    /// Failed, blocked, tampered (red).
    pub(crate) fail: Style,
    /// Could not decide (magenta).
    pub(crate) error: Style,
    /// Warnings (yellow).
    pub(crate) warn: Style,
    pub(crate) dim: Style,
    pub(crate) bold: Style,
}

impl Palette {
    pub(crate) fn new(color: bool) -> Self {
        let style = |s: Style| if color { s } else { Style::new() };
        Self {
            pass: style(AnsiColor::Green.on_default().bold()),
            fail: style(AnsiColor::Red.on_default().bold()),
            error: style(AnsiColor::Magenta.on_default().bold()),
            warn: style(AnsiColor::Yellow.on_default().bold()),
            dim: style(Style::new().dimmed()),
            bold: style(Style::new().bold()),
        }
    }

    /// The style and the fixed-width word of a decision (`PASS `, `FAIL `, `ERROR`).
    pub(crate) fn decision(&self, decision: Decision) -> (Style, &'static str) {
        match decision {
            Decision::Pass => (self.pass, "PASS "),
            Decision::Fail => (self.fail, "FAIL "),
            Decision::Error => (self.error, "ERROR"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_without_colour() {
        let plain = Palette::new(false);
        for style in [
            plain.pass,
            plain.fail,
            plain.error,
            plain.warn,
            plain.dim,
            plain.bold,
        ] {
            assert_eq!(style.render().to_string(), "");
        }
        let coloured = Palette::new(true);
        assert_eq!(
            coloured.fail.render().to_string(),
            AnsiColor::Red.on_default().bold().render().to_string()
        );
        assert_eq!(coloured.decision(Decision::Error).1, "ERROR");
        assert!(ColorWhen::Always.enabled_for(Stream::Stderr));
        assert!(!ColorWhen::Never.enabled_for(Stream::Stdout));
    }
}
