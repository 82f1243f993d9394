//! A real OCI registry for tests: Debian's `docker-registry` (the CNCF Distribution registry;
//! `scripts/test` installs it), on a free port of 127.0.0.1 with a temporary storage directory
//! and a generated config, optionally behind htpasswd basic auth (bcrypt from `htpasswd -B`,
//! Debian `apache2-utils`). The process is killed when the [`Registry`] is dropped.
#![allow(dead_code)] // each test crate uses a different part

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Registry {
    /// An anonymous registry.
    pub fn start() -> Registry {
        Registry::start_with(None)
    }

    /// A registry that requires basic auth with `user`/`password`.
    pub fn start_with_auth(user: &str, password: &str) -> Registry {
        Registry::start_with(Some((user, password)))
    }

    fn start_with(auth: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().expect("registry temp dir");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).expect("storage dir");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
             delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            storage.display()
        );
        if let Some((user, password)) = auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("run htpasswd (apt-get install apache2-utils)");
            assert!(out.status.success(), "htpasswd failed");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &out.stdout).expect("write htpasswd");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: relgate-test\n    path: {}\n",
                file.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write registry config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry (apt-get install docker-registry)");
        let registry = Registry { child, dir, addr };
        registry.wait_ready();
        registry
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut stream) = TcpStream::connect(&self.addr) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let request = format!("GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr);
                if stream.write_all(request.as_bytes()).is_ok() {
                    let mut head = [0u8; 12];
                    if stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") {
                        return;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("docker-registry did not start on {}", self.addr);
    }

    /// The registry's storage root (to tamper with blobs).
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The file of a blob in the filesystem storage driver's layout.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Stops the registry (it stays stopped).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// What the [`FakeRegistry`] sends for one request.
pub enum FakeBody {
    /// These bytes, with a matching `Content-Length`.
    Bytes(Vec<u8>),
    /// A `Content-Length` of this many bytes, then nothing (the client must refuse the length).
    ClaimLength(u64),
    /// Bytes without a `Content-Length`, forever (until the client hangs up or the server
    /// stops): a body that never ends.
    Endless,
    /// Accept the request and never answer.
    Hang,
}

/// One scripted answer: status, headers and body.
pub struct FakeReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: FakeBody,
}

impl FakeReply {
    pub fn ok(content_type: &str, body: Vec<u8>) -> FakeReply {
        FakeReply {
            status: 200,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: FakeBody::Bytes(body),
        }
    }

    pub fn redirect(location: &str) -> FakeReply {
        FakeReply {
            status: 307,
            headers: vec![("Location".into(), location.into())],
            body: FakeBody::Bytes(Vec::new()),
        }
    }

    pub fn not_found() -> FakeReply {
        FakeReply {
            status: 404,
            headers: Vec::new(),
            body: FakeBody::Bytes(Vec::new()),
        }
    }
}

type FakeHandler = dyn Fn(&str) -> FakeReply + Send + Sync;

/// A lying OCI registry on 127.0.0.1: every request (`GET path`) is answered by the handler;
/// it counts requests and the body bytes it managed to send. Stopped on drop.
pub struct FakeRegistry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    paths: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FakeRegistry {
    pub fn start(handler: impl Fn(&str) -> FakeReply + Send + Sync + 'static) -> FakeRegistry {
        use std::sync::atomic::{AtomicBool, AtomicU64};
        use std::sync::{Arc, Mutex};
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = format!("127.0.0.1:{}", listener.local_addr().expect("addr").port());
        let paths = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<FakeHandler> = Arc::new(handler);
        let (p, s, st) = (paths.clone(), sent.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(std::sync::atomic::Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (handler, p, s, st) =
                            (handler.clone(), p.clone(), s.clone(), st.clone());
                        std::thread::spawn(move || serve(stream, &*handler, &p, &s, &st));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeRegistry {
            addr,
            paths,
            sent,
            stop,
        }
    }

    /// The paths requested so far, in order.
    pub fn paths(&self) -> Vec<String> {
        self.paths.lock().expect("paths").clone()
    }

    /// Body bytes written before the client hung up.
    pub fn sent(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

fn serve(
    mut stream: TcpStream,
    handler: &FakeHandler,
    paths: &std::sync::Mutex<Vec<String>>,
    sent: &std::sync::atomic::AtomicU64,
    stop: &std::sync::atomic::AtomicBool,
) {
    use std::sync::atomic::Ordering;
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    // One request per connection (we answer `Connection: close`).
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head);
    let path = text.split_whitespace().nth(1).unwrap_or("").to_string();
    paths.lock().expect("paths").push(path.clone());
    let reply = handler(&path);
    let reason = match reply.status {
        200 => "OK",
        307 => "Temporary Redirect",
        404 => "Not Found",
        _ => "Status",
    };
    let mut out = format!(
        "HTTP/1.1 {} {reason}\r\nConnection: close\r\n",
        reply.status
    );
    for (name, value) in &reply.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    match &reply.body {
        FakeBody::Bytes(bytes) => {
            out.push_str(&format!("Content-Length: {}\r\n\r\n", bytes.len()));
            let _ = stream.write_all(out.as_bytes());
            if stream.write_all(bytes).is_ok() {
                sent.fetch_add(bytes.len() as u64, Ordering::SeqCst);
            }
        }
        FakeBody::ClaimLength(n) => {
            out.push_str(&format!("Content-Length: {n}\r\n\r\n"));
            let _ = stream.write_all(out.as_bytes());
            while !stop.load(Ordering::SeqCst) {
                let chunk = vec![b'A'; 64 * 1024];
                if stream.write_all(&chunk).is_err() {
                    return;
                }
                sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
        }
        FakeBody::Endless => {
            out.push_str("\r\n");
            let _ = stream.write_all(out.as_bytes());
            let chunk = vec![b'{'; 64 * 1024];
            while !stop.load(Ordering::SeqCst) {
                if stream.write_all(&chunk).is_err() {
                    return;
                }
                sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
        }
        FakeBody::Hang => {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
