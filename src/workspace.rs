//! The gate root and everything about paths inside it: finding the root, confining paths a
//! manifest names to it (no `..`, no absolute paths, no symlink that leads out), and
//! discovering manifest files from command-line paths or the config's globs.
//!
//! Invariant: every file relgate reads on behalf of a manifest or the config went through
//! [`GateRoot::confine`], and every path relgate reports is relative to the gate root with `/`
//! separators, so reports and records hash the same on every machine.

use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};

/// Name of the gate configuration file that marks a gate root.
pub const CONFIG_FILE: &str = "relgate.yaml";

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
    pub dir: PathBuf,
}

impl GateRoot {
    /// Finds the gate root for `start` (a file or directory): the nearest directory at or above
    /// it that holds `relgate.yaml`, not looking past the git work-tree root; without one, the
    /// work-tree root; outside git, the current directory `cwd` when `start` is inside it,
    /// else `start` itself (or its directory).
    pub fn discover(start: &Path, cwd: &Path) -> std::io::Result<Self> {
        let start = std::fs::canonicalize(start)?;
        let start = if start.is_dir() {
            start
        } else {
            start.parent().map(Path::to_path_buf).unwrap_or(start)
        };
        let mut work_tree = None;
        for dir in start.ancestors() {
            if dir.join(CONFIG_FILE).is_file() {
                return Ok(Self {
                    dir: dir.to_path_buf(),
                });
            }
            if dir.join(".git").exists() {
                work_tree = Some(dir.to_path_buf());
                break;
            }
        }
        let cwd = std::fs::canonicalize(cwd).unwrap_or_else(|_| cwd.to_path_buf());
        let fallback = if start.starts_with(&cwd) { cwd } else { start };
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
    pub fn confine(&self, written: &str) -> Result<PathBuf, PathError> {
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
    pub fn confine_existing(&self, path: &Path, shown: &str) -> Result<PathBuf, PathError> {
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
    pub fn relative(&self, path: &Path) -> String {
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
    pub fn shown(&self) -> &str {
        match self {
            Self::File { shown, .. } | Self::Problem { shown, .. } => shown,
        }
    }
}

/// Whether a directory walk picks this file up: YAML only. JSON manifests are taken when named
/// on the command line or matched by a `manifests` glob, because repositories keep many JSON
/// files (eval outputs) that are not manifests.
fn is_manifest_name(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// Files named on the command line: files are taken as they are (any extension), directories
/// are walked for `*.yaml`/`*.yml`. Symlinks that lead outside the root are reported, not read.
pub fn discover_paths(root: &GateRoot, paths: &[PathBuf]) -> Vec<Discovered> {
    let mut found = Vec::new();
    for path in paths {
        let shown = root.relative(path);
        if path.is_dir() {
            walk(root, path, &mut found, &|p: &Path, _rel: &str| {
                is_manifest_name(p)
            });
        } else {
            found.push(match root.confine_existing(path, &shown) {
                Ok(canonical) => Discovered::File {
                    path: canonical,
                    shown,
                },
                Err(error) => Discovered::Problem { shown, error },
            });
        }
    }
    sort_dedup(found)
}

/// Files under the root matching the config's `manifests` globs (relative to the root).
pub fn discover_globs(root: &GateRoot, globs: &[String]) -> Result<Vec<Discovered>, PathError> {
    let set = build_globset(globs)?;
    let mut found = Vec::new();
    let root_dir = root.dir.clone();
    walk(root, &root_dir, &mut found, &|_p: &Path, rel: &str| {
        set.is_match(rel)
    });
    Ok(sort_dedup(found))
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

/// Directories discovery never walks into: hidden ones (`.git`, `.relgate`) and
/// `target`/`node_modules`. They hold no manifests and can be huge.
pub(crate) fn is_skipped_dir(name: &str) -> bool {
    name.starts_with('.') || name == "target" || name == "node_modules"
}

/// Walks `dir` without following symlinked directories out of the root. Hidden directories
/// (`.git`, `.relgate`) and `target`/`node_modules` are skipped: they hold no manifests and can
/// be huge.
fn walk(
    root: &GateRoot,
    dir: &Path,
    found: &mut Vec<Discovered>,
    wanted: &dyn Fn(&Path, &str) -> bool,
) {
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|entry| {
            entry.depth() == 0
                || !(entry.file_type().is_dir()
                    && entry.file_name().to_str().is_some_and(is_skipped_dir))
        });
    for entry in walker {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                let shown = err
                    .path()
                    .map(|p| root.relative(p))
                    .unwrap_or_else(|| root.relative(dir));
                found.push(Discovered::Problem {
                    error: PathError::Unreadable {
                        shown: shown.clone(),
                        message: err.to_string(),
                    },
                    shown,
                });
                continue;
            }
        };
        if entry.file_type().is_dir() {
            continue;
        }
        let shown = root.relative(entry.path());
        if !wanted(entry.path(), &shown) {
            continue;
        }
        found.push(match root.confine_existing(entry.path(), &shown) {
            Ok(canonical) if canonical.is_file() => Discovered::File {
                path: canonical,
                shown,
            },
            // A symlink to a directory inside the root: its files are reached by the walk
            // through their real location when that is inside the walked tree.
            Ok(_) => continue,
            Err(error) => Discovered::Problem { shown, error },
        });
    }
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
