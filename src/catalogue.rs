//! The rule catalogue (`policies/catalogue.yaml`, embedded): every rule id relgate reports, with
//! its area (the Rego package, or relgate's own `relgate.schema` / `relgate.gate`), default
//! severity, title, why it matters, how to fix it, and an example release that produces it and
//! one that does not.
//!
//! Everything that describes rules is made from it: the SARIF rule descriptors
//! (`output::sarif`), the JUnit areas (`output::junit`), `relgate explain` and the pages under
//! `docs/rules/` ([`Catalogue::page`], [`Catalogue::index_page`]) and the rule table of
//! README.md ([`Catalogue::readme_table`]). tests/it/cli/catalogue.rs holds the catalogue to the
//! code: every rule id a built-in Rego file can emit is here and every rule here is emitted,
//! every example produces (or avoids) its rule when run through the real gate, and the
//! generated docs are what the catalogue generates (`RELGATE_BLESS=1` rewrites them).
//!
//! An example is a patch over one shared example release ([`ExampleBase`]): mappings merge key
//! by key, any other value (lists too) replaces, and `null` removes the key ([`merge`]). The
//! docs show the patch, which is the part that matters, and the shared release once.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::embedded::{self, POLICY_FILES};

/// The catalogue's path in the embedded policy bundle (and in the source tree).
pub(crate) const CATALOGUE_FILE: &str = "policies/catalogue.yaml";

/// Where the rule pages are published: `{DOCS_URI}/{ID}.md`, the repository's `docs/rules/`.
pub(crate) const DOCS_URI: &str = "https://github.com/relgate/relgate/blob/main/docs/rules";

/// Default severity of a rule: `deny` blocks the release, `warn` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Deny,
    Warn,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Deny => "deny",
            Severity::Warn => "warn",
        }
    }

    /// What the severity means for a release, for descriptions.
    pub(crate) fn effect(self) -> &'static str {
        match self {
            Severity::Deny => {
                "A denial: the release is blocked until it is fixed or an exception applies."
            }
            Severity::Warn => {
                "A warning: reported, and blocks the release only when the gate fails on warnings."
            }
        }
    }
}

/// A policy area: a Rego package of the bundle, or one of relgate's own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Area {
    pub(crate) package: String,
    pub(crate) title: String,
    /// Whether JUnit reports a testcase for the area in every report (else only when it has
    /// findings).
    pub(crate) junit: bool,
}

/// What every example starts from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleBase {
    /// A release manifest (YAML) that passes the built-in gate.
    pub manifest: String,
    /// The files of the example repository: path -> text.
    pub files: BTreeMap<String, String>,
    /// The pull-request context (YAML) approval examples start from.
    pub pull_request: String,
}

/// One side of an example: patches over the base (YAML text, shown as written in the docs).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Variant {
    pub(crate) manifest: Option<String>,
    pub(crate) pull_request: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Example {
    /// relgate.yaml of the example repository (both sides).
    pub(crate) config: Option<String>,
    pub(crate) fails: Variant,
    pub(crate) passes: Variant,
}

/// A catalogue rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    pub area: String,
    pub severity: Severity,
    pub title: String,
    pub(crate) why: String,
    pub(crate) fix: String,
    pub(crate) example: Option<Example>,
    /// Why the rule has no example.
    pub(crate) no_example: Option<String>,
}

impl Rule {
    /// The rule's page: `docs/rules/<ID>.md` of the repository.
    pub(crate) fn help_uri(&self) -> String {
        format!("{DOCS_URI}/{}.md", self.id)
    }

    /// `why` as one paragraph (the YAML keeps line breaks).
    pub fn why_text(&self) -> String {
        paragraph(&self.why)
    }

    /// `fix` as one paragraph.
    pub fn fix_text(&self) -> String {
        paragraph(&self.fix)
    }
}

/// The catalogue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    pub(crate) version: u32,
    pub(crate) areas: Vec<Area>,
    pub example: ExampleBase,
    pub rules: Vec<Rule>,
}

/// One side of an example, ready to run: the manifest, and the pull-request context and
/// relgate.yaml when the example has them.
#[derive(Debug, Clone, PartialEq)]
pub struct ExampleRun {
    /// The release manifest (YAML).
    pub manifest: String,
    /// The pull-request context (JSON) for `--pr-json`.
    pub pull_request: Option<String>,
    /// relgate.yaml.
    pub config: Option<String>,
}

/// The embedded catalogue.
pub fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        let text = embedded::file(POLICY_FILES, CATALOGUE_FILE).unwrap_or_default();
        // The embedded text is a constant of the build, and the unit test
        // `the_embedded_catalogue_is_valid` parses and validates exactly this text, so a
        // build that passes its tests cannot fail here. Should it anyway, an empty catalogue
        // would silently drop rule descriptions, which is worse than stopping.
        Catalogue::parse(text).expect("the embedded rule catalogue is valid (tested)")
    })
}

impl Catalogue {
    /// Parses and validates catalogue text.
    pub fn parse(text: &str) -> Result<Catalogue, String> {
        let catalogue: Catalogue =
            serde_yaml::from_str(text).map_err(|err| format!("{CATALOGUE_FILE}: {err}"))?;
        catalogue.validate()?;
        Ok(catalogue)
    }

    fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if self.version != 1 {
            problems.push(format!("version {} (expected 1)", self.version));
        }
        let areas: BTreeSet<&str> = self.areas.iter().map(|a| a.package.as_str()).collect();
        if areas.len() != self.areas.len() {
            problems.push("an area is listed twice".to_string());
        }
        let mut ids = BTreeSet::new();
        for rule in &self.rules {
            let id = &rule.id;
            let well_formed = !id.is_empty()
                && !id.starts_with('-')
                && !id.ends_with('-')
                && id
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
            if !well_formed {
                problems.push(format!(
                    "rule id `{id}`: use upper-case letters, digits and dashes"
                ));
            }
            if !ids.insert(id.as_str()) {
                problems.push(format!("rule {id} is listed twice"));
            }
            if !areas.contains(rule.area.as_str()) {
                problems.push(format!("rule {id}: area `{}` is not in `areas`", rule.area));
            }
            for (field, text) in [
                ("title", &rule.title),
                ("why", &rule.why),
                ("fix", &rule.fix),
            ] {
                if text.trim().is_empty() {
                    problems.push(format!("rule {id}: `{field}` is empty"));
                }
            }
            match (&rule.example, &rule.no_example) {
                (Some(_), None) => {}
                (None, Some(why)) if !why.trim().is_empty() => {}
                _ => problems.push(format!(
                    "rule {id}: give an `example`, or say in `no_example` why there is none"
                )),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("{CATALOGUE_FILE}: {}", problems.join("; ")))
        }
    }

    /// The rule with this id.
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// The catalogue rules among `ids` (the rule ids of a report's findings), sorted by id,
    /// each once; ids the catalogue does not know (team rules) are left out.
    pub(crate) fn rules_among<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> Vec<&Rule> {
        let ids: BTreeSet<&str> = ids.into_iter().collect();
        ids.into_iter().filter_map(|id| self.rule(id)).collect()
    }

    /// The area with this package.
    pub(crate) fn area(&self, package: &str) -> Option<&Area> {
        self.areas.iter().find(|a| a.package == package)
    }

    /// The rule id closest to `id` (case and spelling), when one is close enough to be what was
    /// meant.
    pub fn suggest(&self, id: &str) -> Option<&str> {
        let wanted = id.trim().to_ascii_uppercase();
        self.rules
            .iter()
            .map(|r| (strsim::jaro_winkler(&wanted, &r.id), r.id.as_str()))
            .filter(|(score, _)| *score >= 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, id)| id)
    }

    /// One side of a rule's example as files to run (`None` for a rule without example).
    pub fn example_run(&self, rule: &Rule, failing: bool) -> Option<Result<ExampleRun, String>> {
        let example = rule.example.as_ref()?;
        let variant = if failing {
            &example.fails
        } else {
            &example.passes
        };
        let side = if failing { "fails" } else { "passes" };
        Some(self.build_run(rule, example, variant, side))
    }

    fn build_run(
        &self,
        rule: &Rule,
        example: &Example,
        variant: &Variant,
        side: &str,
    ) -> Result<ExampleRun, String> {
        let base = parse_yaml(&self.example.manifest, "example.manifest")?;
        let manifest = match &variant.manifest {
            Some(patch) => merge(
                base,
                parse_yaml(patch, &format!("rule {}: {side}.manifest", rule.id))?,
            ),
            None => base,
        };
        let manifest = serde_yaml::to_string(&manifest)
            .map_err(|err| format!("rule {}: {side}: {err}", rule.id))?;
        let pull_request = match &variant.pull_request {
            Some(patch) => {
                let base = parse_yaml(&self.example.pull_request, "example.pull_request")?;
                let merged = merge(
                    base,
                    parse_yaml(patch, &format!("rule {}: {side}.pull_request", rule.id))?,
                );
                let json: serde_json::Value = serde_yaml::from_value(merged)
                    .map_err(|err| format!("rule {}: {side}.pull_request: {err}", rule.id))?;
                Some(
                    serde_json::to_string_pretty(&json)
                        .map_err(|err| format!("rule {}: {side}: {err}", rule.id))?,
                )
            }
            None => None,
        };
        Ok(ExampleRun {
            manifest,
            pull_request,
            config: example.config.clone(),
        })
    }

    /// The page of one rule: `docs/rules/<ID>.md`, and what `relgate explain ID` prints.
    pub fn page(&self, rule: &Rule) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# {}\n", rule.id);
        let _ = writeln!(out, "{}\n", rule.title);
        let area = self
            .area(&rule.area)
            .map_or(String::new(), |a| format!(" ({})", a.title));
        let _ = writeln!(
            out,
            "- Area: `{}`{area}\n- Severity: `{}`. {}\n",
            rule.area,
            rule.severity.as_str(),
            rule.severity.effect()
        );
        let _ = writeln!(out, "## Why it matters\n\n{}\n", rule.why_text());
        let _ = writeln!(out, "## How to fix it\n\n{}\n", rule.fix_text());
        let _ = writeln!(out, "## Example\n");
        match (&rule.example, &rule.no_example) {
            (Some(example), _) => {
                out.push_str(
                    "Each snippet is a change to the [example release](README.md#the-example-release) \
                     (mappings merge key by key; a list or value replaces the one it changes; \
                     `null` removes the key).\n\n",
                );
                if let Some(config) = &example.config {
                    let _ = writeln!(
                        out,
                        "With this `relgate.yaml`:\n\n```yaml\n{}```\n",
                        ends_nl(config)
                    );
                }
                for (label, variant) in [
                    (
                        match rule.severity {
                            Severity::Deny => "Fails",
                            Severity::Warn => "Warns",
                        },
                        &example.fails,
                    ),
                    ("Passes", &example.passes),
                ] {
                    if let Some(patch) = &variant.manifest {
                        let _ = writeln!(out, "{label}:\n\n```yaml\n{}```\n", ends_nl(patch));
                    }
                    if let Some(patch) = &variant.pull_request {
                        let _ = writeln!(
                            out,
                            "{label}, with this pull-request context (a change to the \
                             [example pull request](README.md#the-example-pull-request), given with `--pr-json`):\n\n```yaml\n{}```\n",
                            ends_nl(patch)
                        );
                    }
                }
            }
            (None, Some(why)) => {
                let _ = writeln!(out, "No example on a single manifest: {}.\n", why.trim());
            }
            (None, None) => {}
        }
        let _ = writeln!(
            out,
            "Print this page with `relgate explain {}`; list every rule with `relgate explain --list`.",
            rule.id
        );
        out
    }

    /// `docs/rules/README.md`: every rule, and the example release the rule pages change.
    pub fn index_page(&self) -> String {
        let mut out = String::new();
        out.push_str("# Rules\n\n");
        out.push_str(
            "Every rule relgate reports, by area. `relgate explain RULE` prints a rule's page; \
             `relgate explain --list` lists them. Team policies add their own rule ids \
             (docs/policy-contract.md).\n\n",
        );
        out.push_str(&self.readme_table_with_links(""));
        out.push_str("\n## The example release\n\n");
        out.push_str(
            "Each rule's example changes this release manifest, which passes the built-in gate \
             (no `relgate.yaml`, checked at 2026-11-27T12:00:00Z):\n\n",
        );
        let _ = writeln!(out, "```yaml\n{}```\n", ends_nl(&self.example.manifest));
        out.push_str("The files of its repository:\n\n");
        for (path, text) in &self.example.files {
            let _ = writeln!(out, "`{path}`:\n\n```\n{}```\n", ends_nl(text));
        }
        out.push_str("## The example pull request\n\n");
        out.push_str(
            "The approval rules' examples change this pull-request context (`--pr-json`, \
             docs/approvals.md), which passes:\n\n",
        );
        let _ = writeln!(out, "```yaml\n{}```", ends_nl(&self.example.pull_request));
        out
    }

    /// The rule table of README.md (between its `rules` markers): links into docs/rules/.
    pub fn readme_table(&self) -> String {
        self.readme_table_with_links("docs/rules/")
    }

    fn readme_table_with_links(&self, prefix: &str) -> String {
        let mut out = String::from(
            "| area | rule | severity | what it checks |\n| --- | --- | --- | --- |\n",
        );
        for area in &self.areas {
            for rule in self.rules.iter().filter(|r| r.area == area.package) {
                let _ = writeln!(
                    out,
                    "| `{}` | [{id}]({prefix}{id}.md) | {} | {} |",
                    area.package,
                    rule.severity.as_str(),
                    rule.title.replace('|', "\\|"),
                    id = rule.id,
                );
            }
        }
        out
    }

    /// `relgate explain --list`: one line per rule, `ID  severity  title`, aligned.
    pub(crate) fn list(&self) -> String {
        let width = self.rules.iter().map(|r| r.id.len()).max().unwrap_or(0);
        let mut out = String::new();
        for rule in &self.rules {
            let _ = writeln!(
                out,
                "{:width$}  {:4}  {}",
                rule.id,
                rule.severity.as_str(),
                rule.title
            );
        }
        out
    }
}

/// Folded text: the lines of a YAML block joined into one paragraph.
fn paragraph(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn ends_nl(text: &str) -> String {
    let mut text = text.to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

fn parse_yaml(text: &str, what: &str) -> Result<serde_yaml::Value, String> {
    serde_yaml::from_str(text).map_err(|err| format!("{CATALOGUE_FILE}: {what}: {err}"))
}

/// `patch` applied to `base`: mappings merge key by key (recursively), `null` removes a key,
/// anything else (a list too) replaces.
pub(crate) fn merge(base: serde_yaml::Value, patch: serde_yaml::Value) -> serde_yaml::Value {
    match (base, patch) {
        (serde_yaml::Value::Mapping(mut base), serde_yaml::Value::Mapping(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    base.remove(&key);
                    continue;
                }
                // Merged in place, so a patched key keeps its position in the manifest.
                match base.get_mut(&key) {
                    Some(old) => {
                        let taken = std::mem::take(old);
                        *old = merge(taken, value);
                    }
                    None => {
                        base.insert(key, value);
                    }
                }
            }
            serde_yaml::Value::Mapping(base)
        }
        (_, patch) => patch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_catalogue_is_valid() {
        let text = embedded::file(POLICY_FILES, CATALOGUE_FILE).expect("embedded");
        let catalogue = Catalogue::parse(text).expect("valid");
        assert!(catalogue.rule("PRR-MISSING").is_some());
        assert!(catalogue.rules.len() >= 30);
    }

    #[test]
    fn invalid_catalogues_are_refused_with_the_reason() {
        let text = "version: 1\nareas: [{package: relgate.prr, title: PRR, junit: true}]\nexample: {manifest: 'a: 1', files: {}, pull_request: 'b: 2'}\nrules:\n  - {id: prr-x, area: relgate.nope, severity: deny, title: t, why: w, fix: f}\n";
        let err = Catalogue::parse(text).expect_err("invalid");
        assert!(err.contains("rule id `prr-x`"), "{err}");
        assert!(
            err.contains("area `relgate.nope` is not in `areas`"),
            "{err}"
        );
        assert!(err.contains("give an `example`"), "{err}");
        let typo = text.replace("severity: deny", "severity: block");
        assert!(Catalogue::parse(&typo)
            .expect_err("bad severity")
            .contains("unknown variant"));
    }

    #[test]
    fn patches_merge_mappings_replace_lists_and_remove_nulls() {
        let base: serde_yaml::Value =
            serde_yaml::from_str("a: {b: 1, c: [1, 2], d: x}\ne: 2\n").expect("yaml");
        let patch: serde_yaml::Value =
            serde_yaml::from_str("a: {b: 3, c: [9]}\ne: null\nf: new\n").expect("yaml");
        let merged = serde_yaml::to_string(&merge(base, patch)).expect("text");
        assert_eq!(merged, "a:\n  b: 3\n  c:\n  - 9\n  d: x\nf: new\n");
    }

    #[test]
    fn unknown_ids_get_the_closest_suggestion() {
        let catalogue = catalogue();
        assert_eq!(catalogue.suggest("prr-missing"), Some("PRR-MISSING"));
        assert_eq!(catalogue.suggest("PRR-MISING"), Some("PRR-MISSING"));
        assert_eq!(
            catalogue.suggest("SLO-BUDGET-EXHAUST"),
            Some("SLO-BUDGET-EXHAUSTED")
        );
        assert_eq!(catalogue.suggest("ZZZZZZ"), None);
    }
}
