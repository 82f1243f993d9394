//! `relgate test`: the Rego unit tests of a policy directory, the built-in bundle or a bundle
//! directory, with coverage.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{bundle, seconds, TestArgs, TestFormat};
use crate::exit_status::ExitStatus;
use crate::output;
use crate::policy::testing::{self, TestOptions};
use crate::policy::{self, PolicySource};

fn read_test_sources(paths: &[PathBuf]) -> anyhow::Result<Vec<PolicySource>> {
    let cwd = std::env::current_dir()?;
    let shown = |p: &Path| {
        let relative = p.strip_prefix(&cwd).unwrap_or(p);
        let relative = relative.strip_prefix(".").unwrap_or(relative);
        relative.to_string_lossy().replace('\\', "/")
    };
    let mut sources = Vec::new();
    for path in paths {
        if path.is_file() {
            sources.push(PolicySource {
                path: shown(path),
                text: std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
                builtin: false,
                v0: false,
            });
        } else {
            sources.extend(policy::read_dir_sources(path, &shown)?);
        }
    }
    Ok(sources)
}

pub(super) fn test(args: TestArgs, color: bool) -> anyhow::Result<ExitStatus> {
    let cwd = std::env::current_dir()?;
    let root = crate::workspace::GateRoot::discover(args.paths.first().unwrap_or(&cwd), &cwd)?;
    let mut config = crate::config::GateConfig::load(&root, None, None)?;
    let mut paths = args.paths.clone();
    if paths.is_empty() && !args.builtin && args.bundle.is_none() {
        paths = policy::resolve_dirs(&root.dir, &config.policies)
            .into_iter()
            .filter(|p| p.is_dir())
            .collect();
        if paths.is_empty() {
            anyhow::bail!(
                "no policy directories to test: give a DIR, use --builtin, or create {}",
                config.policies.join(", ")
            );
        }
    }
    let mut sources = read_test_sources(&paths)?;
    for source in &mut sources {
        source.v0 = args.v0_compatible;
    }
    if args.builtin {
        sources.extend(policy::builtin_sources());
    }
    let mut data = Vec::new();
    if let Some(dir) = &args.bundle {
        bundle::test_inputs(dir, &args.keys, &root, &mut config, &mut sources, &mut data)?;
    }
    for file in &args.data {
        data.push(policy::read_data_file(
            file,
            &file.display().to_string(),
            config.max_file_bytes,
        )?);
    }
    let report = testing::run(&TestOptions {
        sources,
        config: config.merged,
        data,
        coverage: args.coverage,
        filter: args.run,
        timeout: Some(seconds("--timeout", args.timeout)?),
    })?;
    let below_threshold = match (&report.coverage, args.threshold) {
        (Some(coverage), Some(threshold)) => coverage.percent < threshold,
        _ => false,
    };
    let out = match args.format {
        TestFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        TestFormat::Text => output::test_report::render(&report, args.threshold, color),
    };
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(
        if !report.load_errors.is_empty() || report.tests.is_empty() {
            ExitStatus::Error
        } else if report.failed + report.errors > 0 || below_threshold {
            ExitStatus::Blocked
        } else {
            ExitStatus::Pass
        },
    )
}
