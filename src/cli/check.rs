//! `relgate check`: the settings from the arguments and the environment, `--pr-json`, and the
//! printing of a report in every requested format (shared with `record`).

use std::io::Write as _;

use anyhow::Context as _;

use super::{bundle, github, now_for, seconds, CheckArgs};
use crate::changed::ChangedOptions;
use crate::exit_status::ExitStatus;
use crate::gate::{self, CheckSettings};
use crate::output::{self, Format};

/// `CheckSettings` from the `check` arguments (shared by `check` and `record`).
pub(super) fn check_settings(args: &CheckArgs) -> anyhow::Result<CheckSettings> {
    if args.output.len() > args.format.len() {
        anyhow::bail!(
            "{} --output given for {} --format; pair each output with a format",
            args.output.len(),
            args.format.len()
        );
    }
    if args.format.len() > args.output.len() + 1 {
        anyhow::bail!(
            "only one --format can go to stdout; give an --output for each of the others"
        );
    }
    Ok(CheckSettings {
        paths: args.paths.clone(),
        cwd: std::env::current_dir().context("cannot read the current directory")?,
        config: args.config.clone(),
        policy_dirs: args.policies.clone(),
        data_files: args.data.clone(),
        namespaces: args.namespaces.clone(),
        fail_on_warn: args.fail_on_warn,
        max_file_bytes: args.max_file_bytes,
        eval_timeout: Some(seconds("--timeout", args.timeout)?),
        rego_v0: args.v0_compatible,
        now: now_for(args.github)?,
        offline: args.offline,
        prometheus_timeout: Some(seconds("--prometheus-timeout", args.prometheus_timeout)?),
        changed: args.changed.then(|| ChangedOptions {
            base: args.base.clone(),
            head: args.head.clone(),
            rules: args.rules,
        }),
        pull_request: None,
        bundles: bundle::settings(None, args.allow_bundle_tag),
    })
}

/// Reads `--pr-json` (shared by `check` and `record`): a full context goes into
/// `settings.pull_request`; the record-only shape is refused unless `for_record`. Returns the
/// pull-request summary for change records.
pub(super) fn read_pr_json(
    args: &CheckArgs,
    settings: &mut CheckSettings,
    for_record: bool,
) -> anyhow::Result<Option<crate::record::statement::PullRequestInfo>> {
    use crate::pull_request::{self, PrJson};
    let Some(path) = &args.pr_json else {
        return Ok(None);
    };
    let shown = path.display().to_string();
    let limit = args
        .max_file_bytes
        .unwrap_or(crate::manifest::DEFAULT_MAX_FILE_BYTES);
    let pr = pull_request::read(path, &shown, limit)?;
    let info = pr.record_info();
    match pr {
        PrJson::Context(context) => settings.pull_request = Some(context),
        PrJson::RecordOnly(_) if for_record => {}
        PrJson::RecordOnly(_) => anyhow::bail!(
            "{shown}: has no `reviews`: --pr-json needs the full pull-request context \
             {{number, author, labels, reviews, approvers, teams, ...}} for the approval rules \
             (docs/approvals.md); the shape {{number, author, approvers, merged_by}} is only \
             for `relgate record`"
        ),
    }
    Ok(info)
}

/// Prints the report in every requested format (shared by `check` and `record`).
pub(super) fn print_report(
    report: &crate::report::Report,
    args: &CheckArgs,
    color: bool,
) -> anyhow::Result<()> {
    for (index, format) in args.format.iter().enumerate() {
        match args.output.get(index) {
            Some(path) => {
                let text = output::render(report, *format, false);
                std::fs::write(path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            None => {
                let text = output::render(report, *format, color);
                // stdout is a CI log: no line of it may read as a workflow command.
                let syntax = match format {
                    // GitLab's report is JSON too: `#\\#[` would be an invalid escape in it.
                    Format::Json | Format::Sarif | Format::Gitlab => output::text::LogSyntax::Json,
                    Format::Junit => output::text::LogSyntax::Xml,
                    _ => output::text::LogSyntax::Plain,
                };
                let text = output::text::guard_log(&text, syntax, *format == Format::Github);
                std::io::stdout().lock().write_all(text.as_bytes())?;
            }
        }
    }
    Ok(())
}

pub(super) fn check(args: CheckArgs, color: bool) -> anyhow::Result<ExitStatus> {
    let mut settings = check_settings(&args)?;
    read_pr_json(&args, &mut settings, false)?;
    if args.allow_bundle_tag {
        eprintln!(
            "warning: --allow-bundle-tag: policy bundles referenced by tag are resolved; a tag can \
             move, so pin each bundle by the digest before relying on this run"
        );
    }
    if args.github {
        return github::check(&args, &settings, color);
    }
    let report = gate::check(&settings)?;
    print_report(&report, &args, color)?;
    Ok(report.decision.into())
}
