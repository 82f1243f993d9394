//! A real Prometheus server for tests and benches (Debian package `prometheus`, which brings
//! `prometheus` and `promtool`; `scripts/test` installs it).
//!
//! [`Prometheus::start`] writes the given series as OpenMetrics, builds a TSDB from them with
//! `promtool tsdb create-blocks-from openmetrics`, starts `prometheus` on a free loopback port
//! with that TSDB and waits until `/-/ready` answers. The server runs under a small `sh`
//! watchdog that kills it (and removes its data) when our end of its stdin closes: on drop, and
//! also when the test process exits or dies without dropping (a server kept in a `static`).
//!
//! Samples are written every minute for the ten minutes up to [`SAMPLE_TIME`]; query at that
//! time (`RELGATE_NOW` = [`SAMPLE_NOW`]) so the instant query finds them. [`Prometheus::start_at`]
//! and [`Prometheus::query_body_at`] do the same for another time.
#![allow(dead_code)] // each test crate uses a different part

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// Unix time of the last sample of every series: 2026-01-01T00:00:00Z.
pub const SAMPLE_TIME: i64 = 1_767_225_600;
/// [`SAMPLE_TIME`] as RFC 3339, for `RELGATE_NOW` and the `time` query parameter.
pub const SAMPLE_NOW: &str = "2026-01-01T00:00:00Z";

/// One metric family with its series (label text -> value), e.g.
/// `family("ALERTS", &[(r#"alertname="X",alertstate="firing""#, "1")])`.
pub struct Family<'a> {
    pub name: &'a str,
    pub series: Vec<(String, String)>,
}

pub fn family<'a>(name: &'a str, series: &[(&str, &str)]) -> Family<'a> {
    Family {
        name,
        series: series
            .iter()
            .map(|(l, v)| ((*l).to_string(), (*v).to_string()))
            .collect(),
    }
}

/// OpenMetrics text: each series sampled every 60 s from SAMPLE_TIME - 600 to SAMPLE_TIME.
pub fn openmetrics(families: &[Family<'_>]) -> String {
    openmetrics_at(families, SAMPLE_TIME)
}

/// OpenMetrics text: each series sampled every 60 s from `last` - 600 to `last` (unix seconds).
pub fn openmetrics_at(families: &[Family<'_>], last: i64) -> String {
    let mut out = String::new();
    for family in families {
        let _ = writeln!(out, "# TYPE {} gauge", family.name);
        for (labels, value) in &family.series {
            for step in 0..=10 {
                let time = last - 600 + step * 60;
                let _ = writeln!(out, "{}{{{labels}}} {value} {time}", family.name);
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

fn need(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "`{tool}` is not installed: these tests run a real Prometheus. Install the Debian package \
         (apt-get install prometheus), or run scripts/test, which does."
    );
}

/// A Prometheus server on 127.0.0.1, stopped on drop.
pub struct Prometheus {
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    pub port: u16,
    watchdog: Child,
    stdin: Option<ChildStdin>,
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// Minimal HTTP/1.0 GET on loopback: (status, body).
pub fn http_get(port: u16, path_and_query: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// Percent-encodes a query parameter value.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Prometheus {
    /// Builds a TSDB from `families` and serves it. Panics with Prometheus' log when it does
    /// not come up.
    pub fn start(families: &[Family<'_>]) -> Self {
        Self::start_at(families, SAMPLE_TIME)
    }

    /// [`Prometheus::start`] with the last sample of every series at `last` (unix seconds)
    /// instead of [`SAMPLE_TIME`].
    pub fn start_at(families: &[Family<'_>], last: i64) -> Self {
        need("prometheus");
        need("promtool");
        let text = openmetrics_at(families, last);
        let mut last_log = String::new();
        // A port found free may be taken before prometheus binds it: try a few.
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("relgate-prometheus-")
                .tempdir()
                .expect("temp dir")
                .keep();
            let metrics = dir.join("series.om");
            std::fs::write(&metrics, &text).expect("write OpenMetrics");
            let output = Command::new("promtool")
                .args(["tsdb", "create-blocks-from", "openmetrics"])
                .arg(&metrics)
                .arg(dir.join("data"))
                .output()
                .expect("run promtool");
            if !output.status.success() {
                let _ = std::fs::remove_dir_all(&dir);
                panic!(
                    "promtool tsdb create-blocks-from openmetrics failed:\n{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            // No scrape targets: the TSDB holds everything the tests query.
            std::fs::write(
                dir.join("prometheus.yml"),
                "global:\n  scrape_interval: 1h\n",
            )
            .expect("write config");
            let mut server = Self::spawn(&dir, free_port());
            match server.wait_ready(Duration::from_secs(60)) {
                Ok(()) => return server,
                Err(log) => last_log = log,
            }
        }
        panic!("prometheus did not become ready; its log:\n{last_log}");
    }

    fn spawn(dir: &Path, port: u16) -> Self {
        // The watchdog runs prometheus and stops it, then removes the directory, when its stdin
        // reaches EOF: on drop, or when the test process exits however it exits. When
        // prometheus dies by itself, the watchdog prints its log and exits.
        let script = r#"
            dir="$1"; shift
            exec 3<&0
            prometheus "$@" >"$dir/prometheus.log" 2>&1 </dev/null 3<&- &
            pid=$!
            { read -r _ <&3 || true; : >"$dir/stopping"; kill "$pid" 2>/dev/null; } &
            reader=$!
            exec 3<&-
            wait "$pid"
            [ -e "$dir/stopping" ] || { cat "$dir/prometheus.log"; kill "$reader" 2>/dev/null; }
            rm -rf "$dir"
        "#;
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(dir)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // The blocks are old; keep them whatever the clock says.
            .arg("--storage.tsdb.retention.time=100y")
            .arg("--log.level=warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let stdin = watchdog.stdin.take();
        Self {
            url: format!("http://127.0.0.1:{port}"),
            port,
            watchdog,
            stdin,
        }
    }

    /// Waits for `/-/ready`; `Err(log)` when prometheus exited.
    fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if matches!(http_get(self.port, "/-/ready"), Some((200, _))) {
                return Ok(());
            }
            if let Ok(Some(_)) = self.watchdog.try_wait() {
                let mut log = String::new();
                if let Some(mut out) = self.watchdog.stdout.take() {
                    let _ = out.read_to_string(&mut log);
                }
                return Err(log);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop();
        Err(format!("not ready within {limit:?}"))
    }

    /// The raw `/api/v1/query` response body for `query` at [`SAMPLE_NOW`].
    pub fn query_body(&self, query: &str) -> String {
        self.query_body_at(query, SAMPLE_NOW)
    }

    /// The raw `/api/v1/query` response body for `query` at `time` (RFC 3339 or unix seconds).
    pub fn query_body_at(&self, query: &str, time: &str) -> String {
        let path = format!(
            "/api/v1/query?query={}&time={}",
            encode(query),
            encode(time)
        );
        match http_get(self.port, &path) {
            Some((200, body)) => body,
            other => panic!("query {query} failed: {other:?}"),
        }
    }

    fn stop(&mut self) {
        drop(self.stdin.take());
        let _ = self.watchdog.wait();
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}
