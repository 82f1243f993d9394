//! Where `relgate collect` reads each repository's ledger and trusted keys from.
//!
//! A repository is named (the `repo=` partition) and located by a local path (a clone with a
//! work tree, a bare mirror, or a ledger directory) or a git URL. A URL is fetched with libgit2
//! into a bare mirror under the cache directory, and only two refs are fetched: the ledger
//! branch and, when the keys are read from the repository, its default branch (`HEAD`).
//!
//! Trusted keys, in order: the entry's `keys` (a directory of `*.pem` on the collecting
//! machine), else `--keys DIR` for every repository, else the `*.pem` blobs (and `retired/`)
//! of `.relgate/keys` (or the entry's `keys_in_repo` path) committed on the repository's
//! default branch, the same directory `relgate verify` uses by default, read from the commit
//! rather than a work tree so uncommitted files never become trusted.
//!
//! [`LedgerFiles`] reads a ledger's top-level files and shards from a git tree or a directory
//! for the incremental path: regular files (blobs) only, sizes capped before reading.

use std::fs;
use std::path::{Path, PathBuf};

use git2::{ObjectType, Repository};
use serde::Deserialize;

use crate::record::keys::TrustedKeys;
use crate::record::ledger::{
    find_tree_capped, ledger_refname, read_blob_capped, read_file_capped, LedgerSource,
    DEFAULT_BRANCH,
};

/// The default path of trusted keys inside a repository.
pub(crate) const DEFAULT_KEYS_PATH: &str = ".relgate/keys";

/// The ref a fetched mirror keeps the remote's default branch under.
const MIRROR_HEAD_REF: &str = "refs/relgate-collect/HEAD";

/// One repository to collect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RepoSpec {
    /// Its name: the `repo=` partition value and the key of the state file.
    pub(crate) name: String,
    /// Where it is.
    pub(crate) location: Location,
    /// The ledger branch.
    pub(crate) branch: String,
    /// A directory of trusted keys on this machine; `None`: `--keys`, else the repository's.
    pub(crate) keys: Option<PathBuf>,
    /// The path of the keys inside the repository's default branch.
    pub(crate) keys_in_repo: String,
}

/// Where a repository is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// A clone, a bare mirror or a ledger directory on this machine.
    Path(PathBuf),
    /// A git URL (`file://`, `https://`, `ssh://`, ...), fetched into the cache.
    Url(String),
}

impl Location {
    /// As given.
    pub(crate) fn describe(&self) -> String {
        match self {
            Location::Path(p) => p.display().to_string(),
            Location::Url(u) => redact_url(u),
        }
    }
}

/// A URL without `user:password@`, for messages and the state file.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Why the repository list is unusable.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ListError(pub(crate) String);

/// A repository name: ASCII letters, digits, `.`, `_`, `-`, at most 100 characters, not
/// starting with `.` or `_` (readers skip such directories): safe as a hive partition value
/// and a directory name on every platform.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if name.is_empty() || name.len() > 100 || !ok_chars || name.starts_with(['.', '_']) {
        return Err(format!(
            "repository name {name:?}: use 1 to 100 ASCII letters, digits, '.', '_' or '-', not \
             starting with '.' or '_' (it becomes the repo=<name> directory)"
        ));
    }
    Ok(())
}

/// A ledger branch: a valid git ref name once under `refs/heads/` (or a full `refs/...` name),
/// so it cannot smuggle a second refspec into a fetch.
pub(crate) fn check_branch(branch: &str) -> Result<(), String> {
    let refname = ledger_refname(branch);
    if branch.contains(':')
        || branch.starts_with(['+', '^'])
        || !git2::Reference::is_valid_name(&refname)
    {
        return Err(format!(
            "ledger branch {branch:?} is not a valid branch name (e.g. relgate/records)"
        ));
    }
    Ok(())
}

fn is_url(s: &str) -> bool {
    s.contains("://")
}

/// The name a repository gets when none is given: the last path or URL component without
/// `.git`.
fn derived_name(location: &str) -> String {
    let trimmed = location.trim_end_matches('/');
    let last = trimmed.rsplit(['/', ':']).next().unwrap_or(trimmed);
    last.strip_suffix(".git").unwrap_or(last).to_owned()
}

/// Parses a command-line repository: `NAME=LOCATION` or `LOCATION`.
pub(crate) fn parse_arg(arg: &str, branch: &str) -> Result<RepoSpec, ListError> {
    let (name, location) = match arg.split_once('=') {
        Some((n, l)) if !n.contains('/') && !n.contains(':') => (n.to_owned(), l),
        _ => (derived_name(arg), arg),
    };
    check_name(&name).map_err(|e| ListError(format!("{arg}: {e}; name it NAME={arg}")))?;
    check_branch(branch).map_err(|e| ListError(format!("--ledger: {e}")))?;
    Ok(RepoSpec {
        name,
        location: if is_url(location) {
            Location::Url(location.to_owned())
        } else {
            Location::Path(PathBuf::from(location))
        },
        branch: branch.to_owned(),
        keys: None,
        keys_in_repo: DEFAULT_KEYS_PATH.to_owned(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListFile {
    repos: Vec<ListEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListEntry {
    name: Option<String>,
    path: Option<PathBuf>,
    url: Option<String>,
    keys: Option<PathBuf>,
    keys_in_repo: Option<String>,
    ledger: Option<String>,
}

/// Reads a repository list file (YAML):
///
/// ```yaml
/// repos:
///   - name: assistants                 # optional: derived from the path or URL
///     url: https://git.example.com/acme/assistants.git   # or path: /srv/mirrors/assistants.git
///     keys: /etc/relgate/keys/assistants   # optional: trusted *.pem on this machine
///     keys_in_repo: .relgate/keys          # optional: where the repo commits its keys
///     ledger: relgate/records              # optional: the ledger branch
/// ```
///
/// Relative `path` and `keys` are relative to the list file's directory.
pub(crate) fn read_list(path: &Path, default_branch: &str) -> Result<Vec<RepoSpec>, ListError> {
    let err = |detail: String| ListError(format!("{}: {detail}", path.display()));
    let meta = fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if !meta.is_file() || meta.len() > 16 * 1024 * 1024 {
        return Err(err("not a regular file of at most 16 MiB".into()));
    }
    let text = fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let list: ListFile = serde_yaml::from_str(&text).map_err(|e| {
        err(format!(
            "{e} (expected `repos:` with entries of name, path or url, keys, keys_in_repo, ledger)"
        ))
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for (i, e) in list.repos.into_iter().enumerate() {
        let at = format!("repos[{i}]");
        let location = match (e.path, e.url) {
            (Some(p), None) => Location::Path(base.join(p)),
            (None, Some(u)) if is_url(&u) => Location::Url(u),
            (None, Some(u)) => {
                return Err(err(format!(
                    "{at}.url {u:?} is not a URL (scheme://...); use path: for a local repository"
                )))
            }
            _ => return Err(err(format!("{at}: give exactly one of path and url"))),
        };
        let name = match e.name {
            Some(n) => n,
            None => derived_name(&location.describe()),
        };
        check_name(&name).map_err(|m| err(format!("{at}.name: {m}")))?;
        let branch = e.ledger.unwrap_or_else(|| default_branch.to_owned());
        check_branch(&branch).map_err(|m| err(format!("{at}.ledger: {m}")))?;
        out.push(RepoSpec {
            name,
            location,
            branch,
            keys: e.keys.map(|k| base.join(k)),
            keys_in_repo: e
                .keys_in_repo
                .unwrap_or_else(|| DEFAULT_KEYS_PATH.to_owned()),
        });
    }
    Ok(out)
}

/// Checks that names are unique (each names a partition and a state entry).
pub(crate) fn check_unique(specs: &[RepoSpec]) -> Result<(), ListError> {
    let mut seen = std::collections::BTreeSet::new();
    for s in specs {
        if !seen.insert(s.name.as_str()) {
            return Err(ListError(format!(
                "repository name {:?} is given twice; names must be unique (name=... in the list \
                 or NAME=LOCATION on the command line)",
                s.name
            )));
        }
    }
    Ok(())
}

/// A repository opened for collection.
pub(crate) struct Opened {
    /// The ledger to verify.
    pub(crate) source: LedgerSource,
    /// The git repository holding it (for keys in the repository), when there is one.
    pub(crate) repo: Option<PathBuf>,
    /// The revision of the default branch keys are read from.
    pub(crate) head_rev: String,
}

/// The default branch of the remote a clone was made from.
const ORIGIN_HEAD_REF: &str = "refs/remotes/origin/HEAD";

/// Opens (and for a URL fetches) a repository.
pub(crate) fn open(spec: &RepoSpec, cache: &Path) -> Result<Opened, String> {
    match &spec.location {
        Location::Path(p) => {
            let meta = fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
            if !meta.is_dir() {
                return Err(format!("{}: not a directory", p.display()));
            }
            match Repository::open(p) {
                Ok(repo) => Ok(Opened {
                    source: LedgerSource::Git {
                        repo: p.clone(),
                        branch: spec.branch.clone(),
                    },
                    repo: Some(p.clone()),
                    // Keys come from the default branch: in a clone, the remote's
                    // (`origin/HEAD`), not whatever branch is checked out (a pull request's
                    // could carry its author's key).
                    head_rev: if repo.find_reference(ORIGIN_HEAD_REF).is_ok() {
                        ORIGIN_HEAD_REF.to_owned()
                    } else {
                        "HEAD".to_owned()
                    },
                }),
                Err(_) => Ok(Opened {
                    source: LedgerSource::Dir(p.clone()),
                    repo: None,
                    head_rev: "HEAD".to_owned(),
                }),
            }
        }
        Location::Url(url) => {
            let mirror = cache.join(format!("{}.git", spec.name));
            fetch(url, &mirror, &spec.branch, spec.keys.is_none())?;
            Ok(Opened {
                source: LedgerSource::Git {
                    repo: mirror.clone(),
                    branch: spec.branch.clone(),
                },
                repo: Some(mirror),
                head_rev: MIRROR_HEAD_REF.to_owned(),
            })
        }
    }
}

/// Fetches the ledger branch (and the default branch when keys come from the repository) of
/// `url` into the bare mirror `mirror`. The ledger ref is force-updated: whether the new
/// ledger extends the collected one is decided by the consistency proof against the state
/// file, not by git.
fn fetch(url: &str, mirror: &Path, branch: &str, with_head: bool) -> Result<(), String> {
    let shown = redact_url(url);
    let repo = match Repository::open_bare(mirror) {
        Ok(r) => r,
        Err(_) => {
            fs::create_dir_all(mirror)
                .map_err(|e| format!("cannot create the mirror {}: {e}", mirror.display()))?;
            Repository::init_bare(mirror)
                .map_err(|e| format!("cannot create the mirror {}: {e}", mirror.display()))?
        }
    };
    let refname = ledger_refname(branch);
    let mut refspecs = vec![format!("+{refname}:{refname}")];
    if with_head {
        refspecs.push(format!("+HEAD:{MIRROR_HEAD_REF}"));
    }
    let mut remote = repo
        .remote_anonymous(url)
        .map_err(|e| format!("{shown}: {}", e.message()))?;
    let mut options = git2::FetchOptions::new();
    options.download_tags(git2::AutotagOption::None);
    remote
        .fetch(&refspecs, Some(&mut options), None)
        .map_err(|e| {
            format!(
                "cannot fetch {refname}{} from {shown}: {}",
                if with_head { " and HEAD" } else { "" },
                e.message()
            )
        })?;
    // libgit2 skips a refspec whose source the remote does not have, leaving the mirror's
    // ref where the last run put it: a ledger branch deleted on the remote would be collected
    // as "ok, 0 new" from the stale copy. The advertised refs stay readable after the fetch.
    let advertised = remote
        .list()
        .map_err(|e| format!("{shown}: {}", e.message()))?
        .iter()
        .any(|head| head.name() == refname);
    if !advertised {
        return Err(format!(
            "{shown} has no {refname} (any more): the ledger branch is missing on the remote; \
             if it was deleted, that is tampering unless the owners say otherwise"
        ));
    }
    Ok(())
}

/// Loads the trusted keys of a repository (see the module docs for the order). Returns the
/// keys and where they came from.
pub(crate) fn load_keys(
    spec: &RepoSpec,
    opened: &Opened,
    global: Option<&Path>,
) -> Result<(TrustedKeys, String), String> {
    if let Some(dir) = spec.keys.as_deref().or(global) {
        let keys = TrustedKeys::load_dir(dir)
            .map_err(|e| format!("trusted keys {}: {e}", dir.display()))?;
        return Ok((keys, dir.display().to_string()));
    }
    let Some(repo_path) = &opened.repo else {
        return Err(
            "no trusted keys: a ledger directory has no default branch to read keys from; give \
             keys: in the list or --keys DIR"
                .into(),
        );
    };
    let described = format!("{}:{}", opened.head_rev, spec.keys_in_repo);
    let repo = Repository::open(repo_path).map_err(|e| e.message().to_owned())?;
    let keys = keys_from_tree(&repo, &opened.head_rev, &spec.keys_in_repo).map_err(|e| {
        format!(
            "trusted keys {described}: {e} (commit the public keys there, or give keys: in the \
             list or --keys DIR)"
        )
    })?;
    Ok((keys, described))
}

/// The `*.pem` blobs of `path` (and its `retired/`) in the tree of `rev`, as
/// [`TrustedKeys::load_dir`] reads a directory: a file that is not a public key is an error.
fn keys_from_tree(repo: &Repository, rev: &str, path: &str) -> Result<TrustedKeys, String> {
    let commit = repo
        .revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map_err(|e| format!("no commit: {}", e.message()))?;
    let tree = find_tree_capped(repo, commit.tree_id()).map_err(|e| e.message().to_owned())?;
    let dir = tree
        .get_path(Path::new(path))
        .map_err(|_| "no such directory".to_owned())?;
    let dir_tree = find_tree_capped(repo, dir.id()).map_err(|e| e.message().to_owned())?;
    let mut blobs = Vec::new();
    let mut collect = |t: &git2::Tree, prefix: &str| -> Result<(), String> {
        for e in t.iter() {
            let name = e.name().unwrap_or_default().to_owned();
            if !name.ends_with(".pem") {
                continue;
            }
            if e.kind() != Some(ObjectType::Blob) || e.filemode() == 0o120000 {
                return Err(format!("{prefix}{name} is not a regular file"));
            }
            blobs.push((format!("{prefix}{name}"), e.id()));
        }
        Ok(())
    };
    collect(&dir_tree, "")?;
    if let Some(retired) = dir_tree.get_name("retired") {
        if let Ok(t) = find_tree_capped(repo, retired.id()) {
            collect(&t, "retired/")?;
        }
    }
    let mut keys = TrustedKeys::new();
    for (name, id) in blobs {
        let blob = repo.find_blob(id).map_err(|e| e.message().to_owned())?;
        if blob.size() > 64 * 1024 {
            return Err(format!("{name}: too large for a public key"));
        }
        let pem = std::str::from_utf8(blob.content()).map_err(|_| format!("{name}: not UTF-8"))?;
        keys.insert_pem(pem).map_err(|e| format!("{name}: {e}"))?;
    }
    if keys.is_empty() {
        return Err("no *.pem public key there".into());
    }
    Ok(keys)
}

/// Read access to a ledger's files for the incremental path.
pub(crate) enum LedgerFiles {
    /// The tree of the ledger branch's tip.
    Git {
        /// The repository.
        repo: Repository,
        /// The tip's tree.
        tree: git2::Oid,
    },
    /// A ledger directory.
    Dir(PathBuf),
}

impl LedgerFiles {
    /// Opens the ledger's current files.
    pub(crate) fn open(source: &LedgerSource) -> Result<LedgerFiles, String> {
        match source {
            LedgerSource::Dir(d) => Ok(LedgerFiles::Dir(d.clone())),
            LedgerSource::Git { repo, branch } => {
                let r = Repository::open(repo)
                    .map_err(|e| format!("{}: {}", repo.display(), e.message()))?;
                let refname = ledger_refname(branch);
                let commit = r
                    .find_reference(&refname)
                    .and_then(|rf| rf.peel_to_commit())
                    .map_err(|e| format!("no ledger branch {refname}: {}", e.message()))?;
                let tree = commit.tree_id();
                drop(commit);
                Ok(LedgerFiles::Git { repo: r, tree })
            }
        }
    }

    /// Reads a regular file at `path` (`CHECKPOINT`, `records/001/...`); `None` when absent.
    pub(crate) fn read(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        match self {
            LedgerFiles::Git { repo, tree, .. } => {
                let tree = find_tree_capped(repo, *tree).map_err(|e| e.message().to_owned())?;
                let entry = match tree.get_path(Path::new(path)) {
                    Ok(e) => e,
                    Err(_) => return Ok(None),
                };
                if entry.kind() != Some(ObjectType::Blob) || entry.filemode() == 0o120000 {
                    return Err(format!("{path} is not a regular file"));
                }
                read_blob_capped(repo, entry.id())
                    .map(Some)
                    .map_err(|e| format!("{path}: {e}"))
            }
            LedgerFiles::Dir(dir) => {
                let p = dir.join(path);
                let meta = match fs::symlink_metadata(&p) {
                    Ok(m) => m,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(format!("{path}: {e}")),
                };
                if !meta.is_file() {
                    return Err(format!("{path} is not a regular file"));
                }
                // Opened without blocking and checked again: a FIFO swapped in is refused.
                read_file_capped(&p)
                    .map(Some)
                    .map_err(|e| format!("{path}: {e}"))
            }
        }
    }

    /// The entry names of directory `path` (`records/001`), sorted; empty when absent.
    pub(crate) fn list(&self, path: &str) -> Result<Vec<String>, String> {
        let mut names = match self {
            LedgerFiles::Git { repo, tree, .. } => {
                let tree = find_tree_capped(repo, *tree).map_err(|e| e.message().to_owned())?;
                let entry = match tree.get_path(Path::new(path)) {
                    Ok(e) => e,
                    Err(_) => return Ok(Vec::new()),
                };
                let sub = find_tree_capped(repo, entry.id())
                    .map_err(|e| format!("{path}: {}", e.message()))?;
                sub.iter()
                    .map(|e| e.name().unwrap_or_default().to_owned())
                    .collect::<Vec<_>>()
            }
            LedgerFiles::Dir(dir) => {
                let p = dir.join(path);
                match fs::symlink_metadata(&p) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => return Err(format!("{path}: {e}")),
                    Ok(m) if !m.is_dir() => return Err(format!("{path} is not a directory")),
                    Ok(_) => {}
                }
                fs::read_dir(&p)
                    .map_err(|e| format!("{path}: {e}"))?
                    .map(|e| {
                        e.map(|e| e.file_name().to_string_lossy().into_owned())
                            .map_err(|e| format!("{path}: {e}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        names.sort();
        Ok(names)
    }
}

/// The default ledger branch, for clap's default value.
pub(crate) const DEFAULT_LEDGER: &str = DEFAULT_BRANCH;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_partition_values() {
        for ok in ["assistants", "a.b_c-1", "R2"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "..",
            ".hidden",
            "_x",
            "a/b",
            "a=b",
            "a b",
            "ä",
            &"x".repeat(101),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn arg_names_and_urls() {
        let s = parse_arg("/srv/m/assistants.git", DEFAULT_BRANCH).expect("path");
        assert_eq!(s.name, "assistants");
        assert!(matches!(s.location, Location::Path(_)));
        let s = parse_arg("web=file:///srv/web.git", DEFAULT_BRANCH).expect("url");
        assert_eq!(s.name, "web");
        assert_eq!(s.location, Location::Url("file:///srv/web.git".into()));
        assert!(parse_arg("a=b=c", DEFAULT_BRANCH).is_ok());
        assert!(parse_arg("../x=..", DEFAULT_BRANCH).is_err());
    }

    #[test]
    fn credentials_are_not_shown() {
        assert_eq!(
            redact_url("https://user:tok@git.example.com/a.git"),
            "https://git.example.com/a.git"
        );
    }
}
