//! What the loaded Rego declares and what it depends on, read from regorus' syntax tree (not
//! from the text): every rule and function head with its package, file and line, and, for
//! each, the rules and functions its bodies refer to.
//!
//! Two guarantees rest on this module:
//! - The rules relgate evaluates are *all* the `deny`/`violation`/`warn`/`exception` heads of
//!   the tree, so a loaded deny rule can never go unevaluated (the set is not guessed from the
//!   source text, and a lookup that fails is an error, not "no rule").
//! - Recursion is refused at load time, with file and line, as OPA does at compile time: a rule
//!   or function that reaches itself through any chain of references (`f` → `f`, `f` → `g` →
//!   `f`, through rules, imports and `data.` paths, across packages). regorus' interpreter
//!   only catches some rule cycles while evaluating, and a recursive *function* overflows the
//!   stack, which aborts the process. The analysis is conservative: a reference to a package
//!   or to `data[x]` with a computed key depends on every rule under that prefix.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// A rule or function of the loaded policies: `data.<package>.<name>` (the head's first
/// segment: `a.b[x] := …` declares `a`).
pub(crate) type Node = (String, String);

/// One declared rule head.
#[derive(Debug, Clone)]
pub(crate) struct Declared {
    pub(crate) package: String,
    pub(crate) name: String,
    pub(crate) file: String,
    pub(crate) line: u32,
}

/// Whether a rule name is one of `prefixes` or one of them followed by `_suffix` (the
/// conftest convention: `deny`, `deny_latest_tag`).
pub(crate) fn has_prefix(name: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|prefix| {
        name == *prefix
            || name
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('_') && rest.len() > 1)
    })
}

/// The loaded modules as relgate needs them.
#[derive(Debug, Default)]
pub(crate) struct RuleGraph {
    /// Every rule head, in module order.
    pub(crate) declared: Vec<Declared>,
    /// Where each node is first declared (file, line).
    first: BTreeMap<Node, (String, u32)>,
    /// Edges: a node's body refers to these nodes (with the line of the reference).
    edges: BTreeMap<Node, BTreeMap<Node, (String, u32)>>,
}

/// A chain of names a reference spells: `data.a.b` → `["data", "a", "b"]`; stops at a computed
/// key (`x[y]` → `["x"]`, flagged as open).
struct Chain {
    names: Vec<String>,
    /// The chain continues with a key only known at run time.
    open: bool,
    line: u32,
}

/// A rule's references, resolved once every rule is known.
struct Pending {
    node: Node,
    file: String,
    /// Names the rule binds locally.
    bound: BTreeSet<String>,
    chains: Vec<Chain>,
    /// The module's import aliases.
    imports: BTreeMap<String, Vec<String>>,
}

fn line_of(span: &Value) -> u32 {
    span.get("line")
        .and_then(Value::as_u64)
        .and_then(|l| u32::try_from(l).ok())
        .unwrap_or(1)
}

/// The variant and body of an externally tagged enum value (`{"Var": {…}}`).
fn variant(value: &Value) -> Option<(&str, &Value)> {
    let map = value.as_object()?;
    if map.len() != 1 {
        return None;
    }
    map.iter().next().map(|(k, v)| (k.as_str(), v))
}

/// The chain a reference expression spells, or `None` when the expression is not a reference.
/// Computed keys met on the way are pushed to `keys` so their own references are visited.
fn chain_of<'a>(expr: &'a Value, keys: &mut Vec<&'a Value>) -> Option<Chain> {
    let (kind, body) = variant(expr)?;
    match kind {
        "Var" => Some(Chain {
            names: vec![body.get("value")?.as_str()?.to_string()],
            open: false,
            line: line_of(body.get("span")?),
        }),
        "RefDot" => {
            let mut chain = chain_of(body.get("refr")?, keys)?;
            if !chain.open {
                match body
                    .get("field")
                    .and_then(Value::as_array)
                    .and_then(|f| f.get(1))
                    .and_then(Value::as_str)
                {
                    Some(field) => chain.names.push(field.to_string()),
                    None => chain.open = true,
                }
            }
            Some(chain)
        }
        "RefBrack" => {
            let mut chain = chain_of(body.get("refr")?, keys)?;
            let index = body.get("index")?;
            let literal = variant(index)
                .filter(|(k, _)| *k == "String")
                .and_then(|(_, v)| v.get("value"))
                .and_then(Value::as_str);
            match literal {
                Some(key) if !chain.open => chain.names.push(key.to_string()),
                _ => {
                    chain.open = true;
                    keys.push(index);
                }
            }
            Some(chain)
        }
        _ => None,
    }
}

/// Collects every reference chain in a JSON subtree of the AST.
fn collect_chains(value: &Value, out: &mut Vec<Chain>) {
    let mut keys = Vec::new();
    if let Some(chain) = chain_of(value, &mut keys) {
        out.push(chain);
        for key in keys {
            collect_chains(key, out);
        }
        return;
    }
    match value {
        Value::Array(items) => items.iter().for_each(|v| collect_chains(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_chains(v, out)),
        _ => {}
    }
}

/// Names a rule binds locally (function arguments, `some`, `every`, `:=` targets), which shadow
/// rules of the same name inside that rule.
fn collect_bound(value: &Value, contents: &str, out: &mut BTreeSet<String>) {
    let text_of = |span: &Value| -> Option<String> {
        let start = usize::try_from(span.get("start")?.as_u64()?).ok()?;
        let end = usize::try_from(span.get("end")?.as_u64()?).ok()?;
        contents.get(start..end).map(str::to_string)
    };
    let vars_in = |expr: &Value, out: &mut BTreeSet<String>| {
        let mut chains = Vec::new();
        collect_chains(expr, &mut chains);
        out.extend(
            chains
                .into_iter()
                .filter(|c| c.names.len() == 1)
                .map(|c| c.names[0].clone()),
        );
    };
    if let Some((kind, body)) = variant(value) {
        match kind {
            "SomeVars" => {
                for span in body
                    .get("vars")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    out.extend(text_of(span));
                }
            }
            "SomeIn" => {
                for key in ["key", "value"] {
                    if let Some(expr) = body.get(key) {
                        vars_in(expr, out);
                    }
                }
            }
            "Every" => {
                for key in ["key", "value"] {
                    if let Some(span) = body.get(key).filter(|s| s.is_object()) {
                        out.extend(text_of(span));
                    }
                }
            }
            "AssignExpr" if body.get("op").and_then(Value::as_str) == Some("ColEq") => {
                if let Some(lhs) = body.get("lhs") {
                    vars_in(lhs, out);
                }
            }
            _ => {}
        }
    }
    match value {
        Value::Array(items) => items.iter().for_each(|v| collect_bound(v, contents, out)),
        Value::Object(map) => map.values().for_each(|v| collect_bound(v, contents, out)),
        _ => {}
    }
}

/// `data.a.b` as a path (`["a", "b"]`) from a package or import reference.
fn path_of(refr: &Value) -> Option<Vec<String>> {
    let mut keys = Vec::new();
    chain_of(refr, &mut keys)
        .filter(|c| !c.open)
        .map(|c| c.names)
}

impl RuleGraph {
    /// Reads the loaded modules from `engine` (whose AST must be available: regorus' `ast`
    /// feature).
    pub(crate) fn of(engine: &regorus::Engine) -> Result<Self, String> {
        let json = engine
            .get_ast_as_json()
            .map_err(|e| format!("cannot read the loaded policies' syntax tree: {e}"))?;
        let modules: Value = serde_json::from_str(&json)
            .map_err(|e| format!("cannot read the loaded policies' syntax tree: {e}"))?;
        let modules = modules.as_array().cloned().unwrap_or_default();
        let mut graph = Self::default();
        // (node, file, bound names, references) of every rule, resolved once all are known.
        let mut pending: Vec<Pending> = Vec::new();
        for module in &modules {
            let file = module
                .pointer("/source/file")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let contents = module
                .pointer("/source/contents")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let ast = module.get("ast").unwrap_or(&Value::Null);
            let package_path = ast
                .pointer("/package/refr")
                .and_then(path_of)
                .ok_or_else(|| format!("{file}: cannot read the package name"))?;
            // `package a.b` is `data.a.b`; the tree spells it without `data`.
            let package_path: Vec<String> = match package_path.first().map(String::as_str) {
                Some("data") => package_path[1..].to_vec(),
                _ => package_path,
            };
            let package = package_path.join(".");
            // Import aliases: `import data.x.y` is `y`, `import data.x as z` is `z`.
            let mut imports: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for import in ast
                .get("imports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(path) = import.get("refr").and_then(path_of) else {
                    continue;
                };
                if path.first().map(String::as_str) != Some("data") {
                    continue;
                }
                let alias = import
                    .get("as")
                    .filter(|a| a.is_object())
                    .and_then(|span| {
                        let start = usize::try_from(span.get("start")?.as_u64()?).ok()?;
                        let end = usize::try_from(span.get("end")?.as_u64()?).ok()?;
                        contents.get(start..end).map(str::to_string)
                    })
                    .or_else(|| path.last().cloned());
                if let Some(alias) = alias {
                    imports.insert(alias, path);
                }
            }
            for rule in ast
                .get("rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some((kind, body)) = variant(rule) else {
                    continue;
                };
                let head_refr = match kind {
                    "Spec" => body
                        .get("head")
                        .and_then(variant)
                        .and_then(|(_, head)| head.get("refr")),
                    _ => body.get("refr"),
                };
                let Some(name) = head_refr.and_then(|r| {
                    let mut keys = Vec::new();
                    chain_of(r, &mut keys).and_then(|c| c.names.into_iter().next())
                }) else {
                    continue;
                };
                let line = line_of(body.get("span").unwrap_or(&Value::Null));
                let node = (package.clone(), name.clone());
                graph
                    .first
                    .entry(node.clone())
                    .or_insert_with(|| (file.clone(), line));
                graph.declared.push(Declared {
                    package: package.clone(),
                    name,
                    file: file.clone(),
                    line,
                });
                // What the rule refers to: everything but its own head reference.
                let mut chains = Vec::new();
                let mut bound = BTreeSet::new();
                match kind {
                    "Spec" => {
                        if let Some((_, head)) = body.get("head").and_then(variant) {
                            for key in ["assign", "key"] {
                                if let Some(part) = head.get(key) {
                                    collect_chains(part, &mut chains);
                                }
                            }
                            if let Some(args) = head.get("args") {
                                collect_bound(args, contents, &mut bound);
                                let mut arg_chains = Vec::new();
                                collect_chains(args, &mut arg_chains);
                                bound.extend(
                                    arg_chains
                                        .into_iter()
                                        .filter(|c| c.names.len() == 1)
                                        .map(|c| c.names[0].clone()),
                                );
                            }
                        }
                        if let Some(bodies) = body.get("bodies") {
                            collect_chains(bodies, &mut chains);
                            collect_bound(bodies, contents, &mut bound);
                        }
                    }
                    _ => {
                        if let Some(value) = body.get("value") {
                            collect_chains(value, &mut chains);
                        }
                    }
                }
                pending.push(Pending {
                    node,
                    file: file.clone(),
                    bound,
                    chains,
                    imports: imports.clone(),
                });
            }
        }
        let packages: BTreeSet<String> = graph.first.keys().map(|(p, _)| p.clone()).collect();
        for Pending {
            node,
            file,
            bound,
            chains,
            imports,
        } in pending
        {
            let edges = graph.edges.entry(node.clone()).or_default();
            for chain in chains {
                let Some(head) = chain.names.first() else {
                    continue;
                };
                let path: Vec<String> = if head == "data" {
                    chain.names[1..].to_vec()
                } else if bound.contains(head) {
                    continue;
                } else if let Some(import) = imports.get(head) {
                    import[1..]
                        .iter()
                        .chain(&chain.names[1..])
                        .cloned()
                        .collect()
                } else if graph.first.contains_key(&(node.0.clone(), head.clone())) {
                    node.0
                        .split('.')
                        .map(str::to_string)
                        .chain(chain.names.iter().cloned())
                        .collect()
                } else {
                    continue;
                };
                for target in resolve(&graph.first, &packages, &path, chain.open) {
                    edges
                        .entry(target)
                        .or_insert_with(|| (file.clone(), chain.line));
                }
            }
        }
        Ok(graph)
    }

    /// The first recursion found (in a deterministic order), as `file:line: …` text.
    pub(crate) fn recursion(&self) -> Option<String> {
        // Iterative depth-first search with colours: 1 on the stack, 2 done.
        let mut colour: BTreeMap<&Node, u8> = BTreeMap::new();
        for start in self.first.keys() {
            if colour.contains_key(start) {
                continue;
            }
            let mut stack: Vec<(&Node, Vec<&Node>)> = vec![(start, self.targets(start))];
            colour.insert(start, 1);
            while let Some((node, next)) = stack.last_mut() {
                let node = *node;
                match next.pop() {
                    Some(target) => match colour.get(target) {
                        Some(1) => {
                            let at = stack.iter().position(|(n, _)| *n == target).unwrap_or(0);
                            let cycle: Vec<&Node> = stack[at..].iter().map(|(n, _)| *n).collect();
                            return Some(self.describe(&cycle, node, target));
                        }
                        Some(_) => {}
                        None => {
                            colour.insert(target, 1);
                            stack.push((target, self.targets(target)));
                        }
                    },
                    None => {
                        colour.insert(node, 2);
                        stack.pop();
                    }
                }
            }
        }
        None
    }

    /// A node's targets, in reverse order so popping visits them in order.
    fn targets(&self, node: &Node) -> Vec<&Node> {
        let mut targets: Vec<&Node> = self
            .edges
            .get(node)
            .map(|e| e.keys().collect())
            .unwrap_or_default();
        targets.reverse();
        targets
    }

    fn describe(&self, cycle: &[&Node], last: &Node, back_to: &Node) -> String {
        let name = |n: &Node| format!("data.{}.{}", n.0, n.1);
        let (file, line) = self
            .first
            .get(cycle.first().copied().unwrap_or(back_to))
            .cloned()
            .unwrap_or_default();
        let mut chain: Vec<String> = cycle.iter().map(|n| name(n)).collect();
        chain.push(name(back_to));
        let (ref_file, ref_line) = self
            .edges
            .get(last)
            .and_then(|e| e.get(back_to))
            .cloned()
            .unwrap_or_default();
        format!(
            "{file}:{line}: recursion: {} (the reference that closes the cycle is at {ref_file}:{ref_line}); \
             Rego rules and functions may not depend on themselves (OPA refuses this at compile time): \
             compute the value without recursion, e.g. with a comprehension or graph.reachable",
            chain.join(" -> ")
        )
    }
}

/// The nodes a `data` path (without `data`) refers to: the rule it names (longest package
/// prefix first), or every rule under it when it names a package or a prefix of packages, or
/// (open chain) every rule its known part could reach.
fn resolve(
    first: &BTreeMap<Node, (String, u32)>,
    packages: &BTreeSet<String>,
    path: &[String],
    open: bool,
) -> Vec<Node> {
    for split in (1..path.len()).rev() {
        let package = path[..split].join(".");
        let node = (package, path[split].clone());
        if first.contains_key(&node) {
            return vec![node];
        }
    }
    // A package, a prefix of packages, or a computed key below a known prefix.
    let prefix = path.join(".");
    let under = |package: &str| {
        prefix.is_empty() || package == prefix || package.starts_with(&format!("{prefix}."))
    };
    if !open && !packages.iter().any(|p| under(p)) {
        return Vec::new();
    }
    first
        .keys()
        .filter(|(package, _)| under(package))
        .cloned()
        .collect()
}
