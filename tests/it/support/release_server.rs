//! A release download server on 127.0.0.1 for the action's install tests: serves files by URL
//! path (`/v1.2.3/relgate-v1.2.3-TARGET.tar.gz`), answers 404 for anything else, and can cut
//! one file short (announces its full length, sends half, closes) to model a truncated
//! download. It records the paths asked for. Stopped on drop.
#![allow(dead_code)] // each test crate uses a different part

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub struct ReleaseServer {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    port: u16,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ReleaseServer {
    /// Serves `files` (URL path → body); the body at `truncate` is cut short.
    pub fn start(files: BTreeMap<String, Vec<u8>>, truncate: Option<String>) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let stop = Arc::clone(&stop);
            let requests = Arc::clone(&requests);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    serve(stream, &files, truncate.as_deref(), &requests);
                }
            })
        };
        Self {
            url: format!("http://127.0.0.1:{port}"),
            port,
            stop,
            requests,
            thread: Some(thread),
        }
    }

    /// The URL paths requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

fn serve(
    mut stream: TcpStream,
    files: &BTreeMap<String, Vec<u8>>,
    truncate: Option<&str>,
    requests: &Mutex<Vec<String>>,
) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // Skip the headers: the server answers by path alone.
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => {}
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_owned();
    requests.lock().expect("lock").push(path.clone());
    let _ = match files.get(&path) {
        Some(body) => {
            let sent = if truncate == Some(path.as_str()) {
                &body[..body.len() / 2]
            } else {
                &body[..]
            };
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .and_then(|()| stream.write_all(sent))
        }
        None => stream.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nNot Found",
        ),
    };
    let _ = stream.flush();
}

impl Drop for ReleaseServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
