//! A scripted HTTP server on 127.0.0.1 for failure tests: each request is answered by a
//! handler given the request's number (from 0) and its `query` parameter. It can answer with
//! any status and body, after a delay, or accept and never answer. Stopped on drop.
#![allow(dead_code)] // each test crate uses a different part

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the server does with one request.
pub enum Reply {
    /// Answer after `delay`.
    Respond {
        status: u16,
        content_type: &'static str,
        body: String,
        delay: Duration,
    },
    /// Accept, read the request, and never answer (until the server stops).
    Hang,
    /// A redirect (`status` 3xx) to `location`, with an empty body.
    Redirect { status: u16, location: String },
}

impl Reply {
    pub fn json(body: impl Into<String>) -> Self {
        Self::status(200, "application/json", body)
    }

    pub fn status(status: u16, content_type: &'static str, body: impl Into<String>) -> Self {
        Self::Respond {
            status,
            content_type,
            body: body.into(),
            delay: Duration::ZERO,
        }
    }
}

/// A Prometheus API success body with one vector series per value.
pub fn vector(values: &[&str]) -> String {
    let series: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!(r#"{{"metric":{{"series":"{i}"}},"value":[1767225600,"{v}"]}}"#))
        .collect();
    format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
        series.join(",")
    )
}

type Handler = dyn Fn(usize, &str) -> Reply + Send + Sync;

pub struct FakeServer {
    pub url: String,
    port: u16,
    hits: Arc<AtomicUsize>,
    queries: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `query` parameter of a request target like `/api/v1/query?query=up&time=...`.
fn query_param(target: &str) -> String {
    target
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("query="))
        .map(decode)
        .unwrap_or_default()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        422 => "Unprocessable Entity",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

impl FakeServer {
    pub fn start(handler: impl Fn(usize, &str) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("address").port();
        let hits = Arc::new(AtomicUsize::new(0));
        let queries = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        {
            let (hits, queries, stop) =
                (Arc::clone(&hits), Arc::clone(&queries), Arc::clone(&stop));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (hits, queries, stop, handler) = (
                        Arc::clone(&hits),
                        Arc::clone(&queries),
                        Arc::clone(&stop),
                        Arc::clone(&handler),
                    );
                    std::thread::spawn(move || serve(stream, &hits, &queries, &stop, &*handler));
                }
            });
        }
        Self {
            url: format!("http://127.0.0.1:{port}"),
            port,
            hits,
            queries,
            stop,
        }
    }

    /// Requests answered (or hung) so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// The `query` parameters received, in order.
    pub fn queries(&self) -> Vec<String> {
        self.queries.lock().map(|q| q.clone()).unwrap_or_default()
    }
}

fn serve(
    mut stream: TcpStream,
    hits: &AtomicUsize,
    queries: &Mutex<Vec<String>>,
    stop: &AtomicBool,
    handler: &Handler,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request);
    let target = text
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let query = query_param(&target);
    let n = hits.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut q) = queries.lock() {
        q.push(query.clone());
    }
    match handler(n, &query) {
        Reply::Hang => {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Reply::Redirect { status, location } => {
            let _ = write!(
                stream,
                "HTTP/1.1 {status} Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.flush();
        }
        Reply::Respond {
            status,
            content_type,
            body,
            delay,
        } => {
            std::thread::sleep(delay);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                reason(status),
                body.len()
            );
            let _ = stream.flush();
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
    }
}
