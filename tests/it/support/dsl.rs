//! A small DSL for whole-binary tests: a temporary repository ([`Repo`]) that files are
//! written into, a `relgate` run in it ([`Repo::run`]), and assertions on the outcome
//! ([`Run`]). Every run has a fixed clock (`RELGATE_NOW`) and no colour, so outputs are
//! reproducible.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub use super::releases::dev_release;

/// The fixed time of every test run.
pub const NOW: &str = "2026-11-27T12:00:00Z";

/// The `relgate` binary the tests run: a hard link to the one cargo built for them
/// (`CARGO_BIN_EXE_relgate`), made once, before any test can rebuild it, as
/// `under-test/relgate` beside it (named `relgate`, so a test can put its directory on `PATH`).
///
/// Why not that path itself: the wheel test runs `maturin build`, which builds the binary again
/// (stripped) into the same target directory and replaces `target/debug/relgate` while the other
/// tests run; a test that started `relgate` at that moment failed with "No such file or
/// directory". The link keeps the tested binary's inode whatever happens to the path, and the
/// wheel test takes it before it starts maturin, so no rebuild can race its creation. Every
/// test that runs the binary goes through here, never through `CARGO_BIN_EXE_relgate`.
pub fn relgate_bin() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let built = Path::new(env!("CARGO_BIN_EXE_relgate"));
        // Beside the built binary: same file system, so a hard link works, and a fixed name, so
        // the next run replaces this run's link instead of leaving one behind.
        let dir = built.with_file_name("under-test");
        let stable = dir.join("relgate");
        let staging = dir.join(format!("relgate.{}", std::process::id()));
        let _ = std::fs::remove_file(&staging);
        std::fs::create_dir_all(&dir)
            .and_then(|()| {
                std::fs::hard_link(built, &staging)
                    .or_else(|_| std::fs::copy(built, &staging).map(|_| ()))
            })
            .and_then(|()| std::fs::rename(&staging, &stable))
            .unwrap_or_else(|e| panic!("cannot link {} for the tests: {e}", built.display()));
        // When the last run's link already names this very binary, `rename` leaves both names
        // in place (POSIX: same file, nothing to do); the staging name goes.
        let _ = std::fs::remove_file(&staging);
        stable
    })
}

/// [`relgate_bin`] as text, for places that take the path as a string.
pub fn relgate_bin_str() -> &'static str {
    relgate_bin()
        .to_str()
        .expect("the target directory's path is UTF-8")
}

/// A temporary repository.
pub struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    /// An empty directory (not a git repository).
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("create temp dir"),
        }
    }

    /// A directory that is a real git repository (`git init`).
    pub fn git() -> Self {
        let repo = Self::new();
        git2::Repository::init(repo.path()).expect("git init");
        repo
    }

    /// A clone of another git repository (`git clone`: remote-tracking branches, no local
    /// branches besides the checked-out one).
    pub fn clone_of(origin: &Repo) -> Self {
        let repo = Self::new();
        let url = origin.path().to_str().expect("utf8 path");
        git2::Repository::clone(url, repo.path()).expect("git clone");
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (parents created).
    pub fn file(&self, rel: &str, contents: impl AsRef<[u8]>) -> &Self {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("file has a parent")).expect("mkdir");
        std::fs::write(&path, contents).expect("write file");
        self
    }

    /// Copies a directory tree into the repository.
    pub fn copy_dir(&self, from: &Path, to: &str) -> &Self {
        for entry in walkdir::WalkDir::new(from) {
            let entry = entry.expect("walk");
            let rel = entry.path().strip_prefix(from).expect("inside");
            let target = self.path().join(to).join(rel);
            if entry.file_type().is_dir() {
                std::fs::create_dir_all(&target).expect("mkdir");
            } else {
                std::fs::copy(entry.path(), &target).expect("copy");
            }
        }
        self
    }

    /// Runs `relgate ARGS` in the repository.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_in(".", args)
    }

    /// Runs `relgate ARGS` in a subdirectory of the repository.
    pub fn run_in(&self, subdir: &str, args: &[&str]) -> Run {
        let output = Command::new(relgate_bin())
            .args(args)
            .current_dir(self.path().join(subdir))
            .env("RELGATE_NOW", NOW)
            .env("NO_COLOR", "1")
            .env_remove("RELGATE_SIGNING_KEY")
            .output()
            .expect("run relgate");
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            args: args.iter().map(|a| (*a).to_string()).collect(),
        }
    }
}

impl Repo {
    /// Runs `relgate ARGS` in the repository with extra environment variables, and without
    /// the ones a CI machine may set that `relgate record` reads (`RELGATE_SIGNING_KEY`,
    /// `GITHUB_*`), so results do not depend on where the tests run.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.run_in_env(".", args, env)
    }

    /// [`Repo::run_env`] in a subdirectory of the repository.
    pub fn run_in_env(&self, subdir: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = Command::new(relgate_bin());
        command
            .args(args)
            .current_dir(self.path().join(subdir))
            .env("RELGATE_NOW", NOW)
            .env("NO_COLOR", "1")
            .env_remove("RELGATE_SIGNING_KEY");
        for name in [
            "GITHUB_SERVER_URL",
            "GITHUB_REPOSITORY",
            "GITHUB_RUN_ID",
            "GITHUB_REF",
            "GITHUB_SHA",
        ] {
            command.env_remove(name);
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let output = command.output().expect("run relgate");
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            args: args.iter().map(|a| (*a).to_string()).collect(),
        }
    }
}

/// The outcome of one run.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    args: Vec<String>,
}

impl Run {
    fn context(&self) -> String {
        format!(
            "relgate {}\n--- exit: {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }

    pub fn exit(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "unexpected exit code\n{}",
            self.context()
        );
        self
    }

    pub fn stdout_has(&self, text: &str) -> &Self {
        assert!(
            self.stdout.contains(text),
            "stdout lacks {text:?}\n{}",
            self.context()
        );
        self
    }

    pub fn stdout_lacks(&self, text: &str) -> &Self {
        assert!(
            !self.stdout.contains(text),
            "stdout has {text:?}\n{}",
            self.context()
        );
        self
    }

    pub fn stderr_has(&self, text: &str) -> &Self {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}\n{}",
            self.context()
        );
        self
    }

    /// Output (stdout then stderr) contains the text.
    pub fn says(&self, text: &str) -> &Self {
        assert!(
            self.stdout.contains(text) || self.stderr.contains(text),
            "output lacks {text:?}\n{}",
            self.context()
        );
        self
    }

    /// No panic message, whatever the outcome.
    pub fn no_panic(&self) -> &Self {
        assert!(
            !self.stderr.contains("panicked"),
            "relgate panicked\n{}",
            self.context()
        );
        assert_ne!(self.code, Some(101), "relgate panicked\n{}", self.context());
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", self.context()))
    }
}

/// The project's root directory.
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Git history for tests (`--changed`): commits with a fixed author and time, so the same
/// steps give the same commit ids on every run.
impl Repo {
    fn repository(&self) -> git2::Repository {
        git2::Repository::open(self.path()).expect("open repository")
    }

    fn signature() -> git2::Signature<'static> {
        git2::Signature::new(
            "relgate test",
            "test@example.com",
            &git2::Time::new(1_795_000_000, 0),
        )
        .expect("signature")
    }

    /// Stages everything (new, changed and deleted files) and commits it on the checked-out
    /// branch, `main` for the first commit. The commit id.
    pub fn commit(&self, message: &str) -> String {
        let repo = self.repository();
        if repo.head().is_err() && repo.is_empty().unwrap_or(false) {
            repo.set_head("refs/heads/main").expect("HEAD -> main");
        }
        let mut index = repo.index().expect("index");
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .expect("git add");
        index.update_all(["*"], None).expect("git add -u");
        index.write().expect("write index");
        let tree = repo
            .find_tree(index.write_tree().expect("write tree"))
            .expect("tree");
        let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let sig = Self::signature();
        repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
            .expect("commit")
            .to_string()
    }

    /// Commits the staged-and-unstaged work tree as the first commit of a new branch with no
    /// history in common with any other (`git checkout --orphan`), and checks it out.
    pub fn commit_orphan(&self, branch: &str, message: &str) -> String {
        let repo = self.repository();
        repo.set_head(&format!("refs/heads/{branch}"))
            .expect("HEAD -> orphan branch");
        self.commit(message)
    }

    /// Creates a branch at HEAD and checks it out (`git checkout -b`).
    pub fn branch(&self, name: &str) -> &Self {
        let repo = self.repository();
        let head = repo
            .head()
            .and_then(|h| h.peel_to_commit())
            .expect("HEAD commit");
        repo.branch(name, &head, false).expect("create branch");
        repo.set_head(&format!("refs/heads/{name}"))
            .expect("switch branch");
        self
    }

    /// Checks out an existing branch; the work tree and index follow (`git checkout`).
    pub fn checkout(&self, name: &str) -> &Self {
        let repo = self.repository();
        let target = repo
            .revparse_single(&format!("refs/heads/{name}"))
            .expect("branch");
        repo.checkout_tree(&target, Some(git2::build::CheckoutBuilder::new().force()))
            .expect("checkout");
        repo.set_head(&format!("refs/heads/{name}"))
            .expect("switch branch");
        self
    }

    /// Deletes a file from the work tree (`rm`; [`Repo::commit`] stages the deletion).
    pub fn remove(&self, rel: &str) -> &Self {
        std::fs::remove_file(self.path().join(rel)).expect("remove file");
        self
    }

    /// Moves a file (`mv`; [`Repo::commit`] stages it, git sees a rename when the contents
    /// stay similar).
    pub fn rename(&self, from: &str, to: &str) -> &Self {
        let target = self.path().join(to);
        std::fs::create_dir_all(target.parent().expect("file has a parent")).expect("mkdir");
        std::fs::rename(self.path().join(from), target).expect("rename");
        self
    }
}

/// What a run with a deadline printed. `code` is `None` when it was killed at the deadline
/// (`killed`) or died by a signal.
pub struct Deadlined {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub killed: bool,
}

/// Runs `cmd` (its stdout and stderr piped here), killing it after `deadline`: a hang ends the
/// run, with what it printed so far, instead of hanging the test suite. The pipes are drained
/// on threads so a chatty child never blocks on a full pipe.
pub fn run_with_deadline(mut cmd: Command, deadline: Duration) -> Deadlined {
    use std::io::Read as _;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout is piped")));
    let err = drain(Box::new(child.stderr.take().expect("stderr is piped")));
    let started = Instant::now();
    let (code, killed) = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break (status.code(), false);
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break (None, true);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Deadlined {
        code,
        stdout: out.join().expect("stdout thread"),
        stderr: err.join().expect("stderr thread"),
        killed,
    }
}
