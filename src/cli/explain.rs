//! `relgate explain RULE`: prints a rule's page from the rule catalogue (the text of
//! `docs/rules/<RULE>.md`), as `ruff rule` does; `--list` lists every rule id. An unknown id is
//! exit 2 with the closest id, if one is close.

use std::io::Write as _;

use super::ExplainArgs;
use crate::catalogue;
use crate::exit_status::ExitStatus;

/// Prints the rule's page, or the list.
pub(crate) fn explain(args: ExplainArgs) -> anyhow::Result<ExitStatus> {
    let catalogue = catalogue::catalogue();
    let mut stdout = std::io::stdout().lock();
    let Some(wanted) = args.rule.filter(|_| !args.list) else {
        write!(stdout, "{}", catalogue.list())?;
        return Ok(ExitStatus::Pass);
    };
    let id = wanted.trim().to_ascii_uppercase();
    match catalogue.rule(&id) {
        Some(rule) => {
            write!(stdout, "{}", catalogue.page(rule))?;
            Ok(ExitStatus::Pass)
        }
        None => {
            let hint = match catalogue.suggest(&id) {
                Some(close) => format!("; did you mean `{close}`?"),
                None => String::new(),
            };
            anyhow::bail!(
                "unknown rule `{}`{hint} (`relgate explain --list` lists the rules; a team policy's own rule ids are explained by its authors)",
                crate::output::text::field(&wanted)
            )
        }
    }
}
