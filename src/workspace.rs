//! The gate root and everything about paths inside it: finding the root, confining paths a
//! manifest names to it (no `..`, no absolute paths, no symlink that leads out), and
//! discovering manifest files from command-line paths or the config's globs.
//!
//! Discovery never skips a file silently: a symlink (to a file or a directory) that stays inside
//! the root is followed and the file is checked under its path in the tree; one that leads out,
//! a symlink loop, a dangling link and a name with control characters are reported as problems
//! (exit 2). A file reached by two paths is checked under each. The gate root is found from the
//! path as given, never from a symlink's target.
//!
//! Invariant: every file relgate reads on behalf of a manifest or the config went through
//! [`GateRoot::confine`], and every path relgate reports is relative to the gate root with `/`
//! separators, so reports and records hash the same on every machine.

use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};

/// Name of the gate configuration file that marks a gate root.
pub(crate) const CONFIG_FILE: &str = "relgate.yaml";

/// A path problem, phrased for the person who wrote the path.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PathError {
    #[error(
        "{shown}: absolute paths are not allowed here; write it relative to the gate root {root}"
    )]
    Absolute { shown: String, root: String },
    #[error("{shown}: the path leaves the gate root (through `..` or a symlink); keep referenced files inside the repository")]
    Escapes { shown: String, root: String },
    #[error("{shown}: no such file in the gate root")]
    NotFound { shown: String, root: String },
    #[error("{shown}: cannot read: {message}")]
    Unreadable { shown: String, message: String },
    #[error("invalid glob `{glob}` in `manifests`: {message}")]
    Glob { glob: String, message: String },
}

/// The directory that manifests' paths are relative to.
#[derive(Debug, Clone)]
pub struct GateRoot {
    /// Canonical absolute path.
    pub(crate) dir: PathBuf,
}

impl GateRoot {
    /// Finds the gate root for `start` (a file or directory): the nearest directory at or above
    /// it that holds `relgate.yaml`, not looking past the git work-tree root; without one, the
    /// work-tree root; outside git, the current directory `cwd` when `start` is inside it,
    /// else `start` itself (or its directory).
    ///
    /// The search goes up the path *as given*, not up its symlink target: a symlinked manifest
    /// or directory must not move the root to wherever the link points, where the pull-request
    /// author could have planted a `relgate.yaml` of their own. Directories on the way that are
    /// reached through a symlink are therefore never taken as the root.
    pub(crate) fn discover(start: &Path, cwd: &Path) -> std::io::Result<Self> {
        let cwd = std::fs::canonicalize(cwd).unwrap_or_else(|_| cwd.to_path_buf());
        let start = lexical_absolute(&cwd, start);
        // Fails (as before) when the path does not exist.
        let canonical_start = std::fs::canonicalize(&start)?;
        let start = if start.is_dir() {
            start
        } else {
            start.parent().map(Path::to_path_buf).unwrap_or(start)
        };
        let mut work_tree = None;
        for dir in start.ancestors() {
            // A directory whose real location differs from the written one is reached through
            // a symlink (or is not there): never a root.
            if std::fs::canonicalize(dir).ok().as_deref() != Some(dir) {
                continue;
            }
            // Any kind of file named relgate.yaml marks the root; one that is not a regular
            // file is then refused when the config is read, instead of being ignored.
            if dir.join(CONFIG_FILE).symlink_metadata().is_ok() {
                return Ok(Self {
                    dir: dir.to_path_buf(),
                });
            }
            if dir.join(".git").exists() {
                work_tree = Some(dir.to_path_buf());
                break;
            }
        }
        let fallback = if start.starts_with(&cwd) {
            cwd
        } else if canonical_start.is_dir() {
            canonical_start
        } else {
            canonical_start
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or(canonical_start)
        };
        Ok(Self {
            dir: work_tree.unwrap_or(fallback),
        })
    }

    /// A root at a known directory.
    pub fn at(dir: &Path) -> std::io::Result<Self> {
        Ok(Self {
            dir: std::fs::canonicalize(dir)?,
        })
    }

    fn shown_root(&self) -> String {
        self.dir.display().to_string()
    }

    /// Resolves a path written in a manifest or config (relative to the root) to an existing
    /// file inside the root. Refuses absolute paths, `..` and symlinks that lead out.
    pub(crate) fn confine(&self, written: &str) -> Result<PathBuf, PathError> {
        let relative = Path::new(written);
        if relative.is_absolute() || written.starts_with('\\') {
            return Err(PathError::Absolute {
                shown: written.to_string(),
                root: self.shown_root(),
            });
        }
        if relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(PathError::Escapes {
                shown: written.to_string(),
                root: self.shown_root(),
            });
        }
        self.confine_existing(&self.dir.join(relative), written)
    }

    /// Checks that an existing path (after following symlinks) is inside the root, and returns
    /// its canonical form.
    pub(crate) fn confine_existing(&self, path: &Path, shown: &str) -> Result<PathBuf, PathError> {
        let canonical = std::fs::canonicalize(path).map_err(|err| {
            if err.kind() == std::io::ErrorKind::NotFound {
                // A dangling symlink is reported as missing, which it is.
                PathError::NotFound {
                    shown: shown.to_string(),
                    root: self.shown_root(),
                }
            } else {
                PathError::Unreadable {
                    shown: shown.to_string(),
                    message: err.to_string(),
                }
            }
        })?;
        if !canonical.starts_with(&self.dir) {
            return Err(PathError::Escapes {
                shown: shown.to_string(),
                root: self.shown_root(),
            });
        }
        Ok(canonical)
    }

    /// The path relative to the root, `/`-separated, for reports. Paths outside the root are
    /// shown as given.
    pub(crate) fn relative(&self, path: &Path) -> String {
        let absolute = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .map(|cwd| cwd.join(path))
                .unwrap_or_else(|_| path.to_path_buf())
        };
        let normalized = std::fs::canonicalize(&absolute).unwrap_or(absolute);
        match normalized.strip_prefix(&self.dir) {
            Ok(rel) => to_slash(rel),
            Err(_) => path.display().to_string(),
        }
    }
}

/// `path` made absolute against `cwd` and cleaned lexically (`.` dropped, `..` removing the
/// previous component), without following any symlink: the path as the user wrote it.
pub(crate) fn lexical_absolute(cwd: &Path, path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in cwd.join(path).components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// A name for reports with every control character written as an escape (`\n`, `\u{1b}`), so
/// a file name can never start a new line (or colour) in a report and forge a result.
fn escape_controls(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A relative path as `a/b/c` (the form reports and git use), whatever the platform;
/// `.`, `..` and root components are dropped.
pub(crate) fn to_slash(path: &Path) -> String {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A manifest file found by discovery, or a path that must be reported as an error.
#[derive(Debug, Clone)]
pub enum Discovered {
    File { path: PathBuf, shown: String },
    Problem { shown: String, error: PathError },
}

impl Discovered {
    pub(crate) fn shown(&self) -> &str {
        match self {
            Self::File { shown, .. } | Self::Problem { shown, .. } => shown,
        }
    }
}

/// Whether a directory walk picks this file up: `*.yaml`, `*.yml` and `*.json` (JSON is YAML's
/// subset, and a manifest written as JSON is still a release: skipping it would let it through
/// unchecked). A non-manifest JSON file in a walked directory is reported as an error, never
/// ignored; keep eval outputs out of the release directories, or name manifests explicitly.
fn is_manifest_name(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Most directories a walk enters through symlinks. A few symlinked directories are normal;
/// thousands are a tree of links built to make the walk take forever (each level of two links
/// to the next level doubles the paths).
const MAX_SYMLINKED_DIRS: usize = 256;

/// Files named on the command line: files are taken as they are (any extension), directories
/// are walked for `*.yaml`/`*.yml`/`*.json`. Each is reported under the path as given
/// (relative to the root), also when it is a symlink; symlinks that lead outside the root are
/// reported, not read.
pub(crate) fn discover_paths(root: &GateRoot, paths: &[PathBuf]) -> Vec<Discovered> {
    let cwd = std::env::current_dir()
        .and_then(std::fs::canonicalize)
        .unwrap_or_default();
    let mut found = Vec::new();
    for path in paths {
        let shown = root.shown_as_given(&cwd, path);
        if path.is_dir() {
            walk(
                root,
                path,
                &shown,
                &mut found,
                &|p: &Path, _rel: &str| is_manifest_name(p),
                &|_rel: &str| false,
            );
        } else {
            found.push(check_file(root, path, shown));
        }
    }
    sort_dedup(found)
}

/// Files under the root matching the config's `manifests` globs (relative to the root, matched
/// against the path as it is in the tree, through symlinks).
pub(crate) fn discover_globs(
    root: &GateRoot,
    globs: &[String],
) -> Result<Vec<Discovered>, PathError> {
    let set = build_globset(globs)?;
    let mut found = Vec::new();
    let root_dir = root.dir.clone();
    let dirs = glob_dirs(globs);
    walk(
        root,
        &root_dir,
        "",
        &mut found,
        &|_p: &Path, rel: &str| set.is_match(rel),
        &|rel: &str| enters_skipped_dir(&dirs, rel),
    );
    Ok(sort_dedup(found))
}

/// The literal leading directories of `manifests` globs: `releases` for `releases/**/*.yaml`,
/// `.deploy/releases` for `.deploy/releases/*.yaml`; none for `**/*.yaml`.
pub(crate) fn glob_dirs(globs: &[String]) -> Vec<String> {
    globs
        .iter()
        .map(|glob| {
            let parts: Vec<&str> = glob.split('/').collect();
            parts[..parts.len().saturating_sub(1)]
                .iter()
                .take_while(|p| {
                    !p.is_empty() && **p != "." && !p.contains(['*', '?', '[', '{', '\\'])
                })
                .copied()
                .collect::<Vec<_>>()
                .join("/")
        })
        .filter(|dir| !dir.is_empty())
        .collect()
}

/// Whether the glob walk enters `rel` (gate-relative), a directory whose name
/// [`is_skipped_dir`]: only when a glob names it, or a directory above it, literally
/// (`releases/target/` under `releases/**/*.yaml`, `.deploy/` for `.deploy/releases/*.yaml`).
/// Skipping it there would let a release the globs select pass unchecked: a pull request adds
/// `releases/target/x.yaml` (or `releases/.x/x.yaml`) and no check ever reads it. `.git` is
/// never entered.
pub(crate) fn enters_skipped_dir(dirs: &[String], rel: &str) -> bool {
    let under = |path: &str, dir: &str| {
        path == dir
            || path
                .strip_prefix(dir)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    !rel.split('/').any(|part| part == ".git")
        && dirs.iter().any(|dir| under(rel, dir) || under(dir, rel))
}

/// The config's `manifests` globs compiled as discovery matches them (relative to the root).
pub(crate) fn build_globset(globs: &[String]) -> Result<GlobSet, PathError> {
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        let compiled = globset::GlobBuilder::new(glob)
            .literal_separator(true)
            .build()
            .or_else(|_| Glob::new(glob))
            .map_err(|err| PathError::Glob {
                glob: glob.clone(),
                message: err.to_string(),
            })?;
        builder.add(compiled);
    }
    builder.build().map_err(|err| PathError::Glob {
        glob: globs.join(", "),
        message: err.to_string(),
    })
}

impl GateRoot {
    /// A path as the user wrote it, relative to the root (`/`-separated), without following
    /// symlinks; control characters escaped. Outside the root: as given.
    fn shown_as_given(&self, cwd: &Path, path: &Path) -> String {
        let absolute = lexical_absolute(cwd, path);
        let shown = match absolute.strip_prefix(&self.dir) {
            Ok(rel) => to_slash(rel),
            Err(_) => self.relative(path),
        };
        escape_controls(&shown)
    }
}

/// A file found by discovery (a walk entry or a named path): refused when its name holds a
/// control character, when it (through symlinks) leaves the root, or when it is not a regular
/// file; otherwise taken, under the name `shown`.
fn check_file(root: &GateRoot, path: &Path, shown: String) -> Discovered {
    let raw = path.to_string_lossy();
    if raw.chars().any(char::is_control) {
        return Discovered::Problem {
            error: PathError::Unreadable {
                shown: shown.clone(),
                message: "the file name contains a control character (shown escaped); rename the file to printable characters".to_string(),
            },
            shown,
        };
    }
    match root.confine_existing(path, &shown) {
        // A FIFO, socket or device is passed on: `manifest::read_limited` refuses it before
        // opening it, with the kind of file, one message for every reader.
        Ok(canonical) => Discovered::File {
            path: canonical,
            shown,
        },
        Err(error) => Discovered::Problem { shown, error },
    }
}

/// Directories discovery never walks into: hidden ones (`.git`, `.relgate`) and
/// `target`/`node_modules`. They hold no manifests and can be huge.
pub(crate) fn is_skipped_dir(name: &str) -> bool {
    name.starts_with('.') || name == "target" || name == "node_modules"
}

/// Walks `dir`, following symlinks that stay inside the root (to files and to directories) so
/// that a manifest behind a symlink is checked, never skipped; a symlink that leads out of the
/// root, a symlink loop and an unreadable entry are reported as problems. Entries are named by
/// their path in the tree (`shown_dir` + the path below `dir`), not by their symlink target, so
/// a file reached by two paths is checked under each. Hidden directories (`.git`, `.relgate`)
/// and `target`/`node_modules` are skipped: they hold no manifests and can be huge.
fn walk(
    root: &GateRoot,
    dir: &Path,
    shown_dir: &str,
    found: &mut Vec<Discovered>,
    wanted: &dyn Fn(&Path, &str) -> bool,
    enter_skipped: &dyn Fn(&str) -> bool,
) {
    let shown_of = |path: &Path| -> String {
        let below = path.strip_prefix(dir).map(to_slash).unwrap_or_default();
        let joined = match (shown_dir.is_empty(), below.is_empty()) {
            (true, _) => below,
            (false, true) => shown_dir.to_string(),
            (false, false) => format!("{shown_dir}/{below}"),
        };
        escape_controls(&joined)
    };
    // Problems met while deciding whether to enter a directory (the filter cannot push them
    // into `found` while the walk borrows it).
    let problems = std::cell::RefCell::new(Vec::new());
    let symlinked_dirs = std::cell::Cell::new(0usize);
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|entry| {
            if entry.depth() == 0 || !entry.file_type().is_dir() {
                return true;
            }
            if entry.file_name().to_str().is_some_and(is_skipped_dir)
                && !enter_skipped(&shown_of(entry.path()))
            {
                return false;
            }
            if !entry.path_is_symlink() {
                return true;
            }
            let shown = shown_of(entry.path());
            if let Err(error) = root.confine_existing(entry.path(), &shown) {
                problems
                    .borrow_mut()
                    .push(Discovered::Problem { shown, error });
                return false;
            }
            symlinked_dirs.set(symlinked_dirs.get() + 1);
            if symlinked_dirs.get() > MAX_SYMLINKED_DIRS {
                problems.borrow_mut().push(Discovered::Problem {
                    error: PathError::Unreadable {
                        shown: shown.clone(),
                        message: format!(
                            "more than {MAX_SYMLINKED_DIRS} directories reached through symlinks; replace the symlinked directories with real ones"
                        ),
                    },
                    shown,
                });
                return false;
            }
            true
        });
    for entry in walker {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                let path = err.path().unwrap_or(dir);
                let shown = shown_of(path);
                let message = if let Some(ancestor) = err.loop_ancestor() {
                    format!(
                        "symlink loop: it leads back to {}; remove the symlink",
                        shown_of(ancestor)
                    )
                } else {
                    // A dangling or looping symlink to a file that is not a manifest by name
                    // is not a manifest: nothing to report.
                    if !wanted(path, &shown) {
                        continue;
                    }
                    match err.io_error().map(std::io::Error::kind) {
                        Some(std::io::ErrorKind::NotFound) => {
                            "no such file (a dangling symlink?)".to_string()
                        }
                        _ => err.to_string(),
                    }
                };
                found.push(Discovered::Problem {
                    error: PathError::Unreadable {
                        shown: shown.clone(),
                        message,
                    },
                    shown,
                });
                continue;
            }
        };
        if entry.file_type().is_dir() {
            continue;
        }
        let shown = shown_of(entry.path());
        if !wanted(entry.path(), &shown) {
            continue;
        }
        found.push(check_file(root, entry.path(), shown));
    }
    found.extend(problems.into_inner());
}

fn sort_dedup(mut found: Vec<Discovered>) -> Vec<Discovered> {
    found.sort_by(|a, b| a.shown().cmp(b.shown()));
    found.dedup_by(|a, b| a.shown() == b.shown());
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confine_refuses_escapes() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ok.txt"), "x").expect("write");
        let root = GateRoot::at(dir.path()).expect("root");
        assert!(root.confine("ok.txt").is_ok());
        assert!(matches!(
            root.confine("../x"),
            Err(PathError::Escapes { .. })
        ));
        assert!(matches!(
            root.confine("/etc/passwd"),
            Err(PathError::Absolute { .. })
        ));
        assert!(matches!(
            root.confine("missing"),
            Err(PathError::NotFound { .. })
        ));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc/hostname", dir.path().join("link")).expect("symlink");
            assert!(matches!(
                root.confine("link"),
                Err(PathError::Escapes { .. })
            ));
        }
    }
}
