//! Property-based attacks on every reader a pull request can feed: the manifest reader, each
//! evaluation-output importer, the Prometheus answer reader, the config loader and the DSSE
//! envelope reader. Inputs are arbitrary bytes and structure-aware mutations of real files
//! (byte edits, YAML/JSON tokens spliced in, lines duplicated or swapped, truncation). Each
//! property says: no panic, no run past its time limit, and never a pass from an input that
//! cannot be read.
//!
//! CI runs a bounded, seeded number of cases (`RELGATE_PROPTEST_CASES`, default 64 per
//! property; the seed is fixed unless `RELGATE_PROPTEST_SEED=random`), so a failure reproduces
//! the same way on any machine. `scripts/fuzz-campaign` runs a long randomised campaign.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngSeed};

use relgate::config::GateConfig;
use relgate::evidence::{slo, Format};
use relgate::gate::{CheckSettings, Gate};
use relgate::manifest::{self, SourceFile};
use relgate::record::dsse::{self, Envelope};
use relgate::record::keys::{Signer, TrustedKeys};
use relgate::report::Decision;
use relgate::workspace::GateRoot;

use crate::support::{dev_release, project_root, NOW};

/// How long one reader may take on one input before it counts as a hang. Generous: a debug
/// build on a loaded two-core machine; a real hang never returns at all.
const LIMIT: Duration = Duration::from_secs(20);

fn config() -> Config {
    let cases = std::env::var("RELGATE_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let rng_seed = match std::env::var("RELGATE_PROPTEST_SEED").as_deref() {
        Ok("random") => RngSeed::Random,
        Ok(seed) => seed
            .parse()
            .map(RngSeed::Fixed)
            .unwrap_or(RngSeed::Fixed(7)),
        Err(_) => RngSeed::Fixed(7),
    };
    Config {
        cases,
        rng_seed,
        // A failing case is printed with its input (and the seed reproduces it); nothing is
        // written into the source tree.
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..Config::default()
    }
}

/// Runs `f` on another thread and fails when it does not return within [`LIMIT`]. A hang is
/// reported as such instead of stalling the whole test run.
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} ran past {LIMIT:?}: a hang"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

// ---------------------------------------------------------------------------------------------
// Structure-aware mutation

/// One edit of an input. Positions are taken modulo the input's length, so every edit applies
/// to every input.
#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Flip(usize, u8),
    Token(usize, &'static str),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    Truncate(usize),
}

/// Tokens that break readers in interesting ways: YAML anchors, merges, tags, document
/// markers and flow nesting; JSON structure, extreme numbers, NaN, duplicate keys; control and
/// bidirectional characters; a BOM.
const TOKENS: &[&str] = &[
    "&a ",
    "*a",
    "<<: *a\n",
    "!!binary ",
    "!!python/object:os.system ",
    "!custom ",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "[[[[[[[[[[[[[[[[[[[[",
    "{{{{{{{{{{{{",
    "? ",
    "- ",
    ": ",
    "\t",
    "\"",
    "'",
    "~",
    ".nan",
    ".inf",
    "-.inf",
    "1e999",
    "-1e999",
    "NaN",
    "Infinity",
    "-0",
    "18446744073709551616",
    "0x7f",
    "null",
    "true",
    "{",
    "}",
    "[",
    "]",
    ",",
    "\"value\": 1, \"value\": 0,",
    "\"pass_rate\": 1.0,",
    "\"results\": {},",
    "key: 1\nkey: 2\n",
    "\\u0000",
    "\u{0}",
    "\u{202e}",
    "\u{feff}",
    "\r",
    "\r\n",
    "\n::error::forged\n",
];

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Edit::Insert(at, bytes)),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Edit::Delete(at, len)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Flip(at, byte)),
        (any::<usize>(), proptest::sample::select(TOKENS)).prop_map(|(at, t)| Edit::Token(at, t)),
        any::<usize>().prop_map(Edit::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(input: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for edit in edits {
        let len = bytes.len().max(1);
        match edit {
            Edit::Insert(at, new) => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, new.iter().copied());
            }
            Edit::Delete(at, n) => {
                let at = at % len;
                let end = (at + n).min(bytes.len());
                if at < end {
                    bytes.drain(at..end);
                }
            }
            Edit::Flip(at, byte) => {
                if !bytes.is_empty() {
                    bytes[at % len] = *byte;
                }
            }
            Edit::Token(at, token) => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, token.bytes());
            }
            Edit::DuplicateLine(n) | Edit::SwapLines(n, _) => {
                let mut lines: Vec<Vec<u8>> =
                    bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
                let count = lines.len();
                match edit {
                    Edit::DuplicateLine(_) => {
                        let line = lines[n % count].clone();
                        lines.insert(n % count, line);
                    }
                    Edit::SwapLines(_, m) => lines.swap(n % count, m % count),
                    _ => {}
                }
                bytes = lines.join(&b'\n');
            }
            Edit::Truncate(at) => bytes.truncate(at % len),
        }
    }
    bytes
}

/// An input: a seed file and edits to it, or arbitrary bytes.
fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let edited = (
        proptest::sample::select(seeds),
        proptest::collection::vec(edit(), 0..6),
    )
        .prop_map(|(seed, edits)| apply(&seed, &edits));
    prop_oneof![
        4 => edited,
        1 => proptest::collection::vec(any::<u8>(), 0..512),
    ]
}

fn read(path: impl AsRef<Path>) -> Vec<u8> {
    let path = project_root().join(path);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Seeds: real files

fn manifest_seeds() -> Vec<Vec<u8>> {
    let mut seeds = vec![dev_release("seed").into_bytes()];
    for entry in walkdir::WalkDir::new(project_root().join("examples/demo/releases")) {
        let entry = entry.expect("walk the demo");
        if entry.file_type().is_file() {
            seeds.push(std::fs::read(entry.path()).expect("read a demo manifest"));
        }
    }
    seeds
}

fn evidence_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = [
        "tests/fixtures/evals/promptfoo/sample-export.json",
        "tests/fixtures/evals/promptfoo/french-greeting-output.json",
        "tests/fixtures/evals/lm-eval/arc_easy-v0-res.json",
        "tests/fixtures/evals/lm-eval/cpu_regression_expected.json",
        "tests/fixtures/evals/inspect/log_formats.json",
    ]
    .iter()
    .map(read)
    .collect();
    // MLflow (export-import run.json and REST runs/get shapes) and plain metrics (JSON, CSV),
    // written as their importers document them.
    seeds.push(
        br#"{"mlflow": {"metrics": {"accuracy": [{"value": 0.91, "timestamp": 1700000000000, "step": 0}, {"value": 0.93, "timestamp": 1700000100000, "step": 1}]}}}"#.to_vec(),
    );
    seeds.push(
        br#"{"run": {"data": {"metrics": [{"key": "f1", "value": 0.8, "timestamp": 1700000000000, "step": 3}]}}}"#.to_vec(),
    );
    seeds.push(br#"{"accuracy": {"value": 0.9, "stderr": 0.01, "samples": 500, "higher_is_better": true}, "latency_ms": 120}"#.to_vec());
    seeds.push(
        b"metric,value,stderr,samples,higher_is_better\naccuracy,0.9,0.01,500,true\n".to_vec(),
    );
    seeds
}

fn prometheus_seeds() -> Vec<Vec<u8>> {
    vec![
        br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"slo":"availability"},"value":[1764590400,"0.42"]}]}}"#.to_vec(),
        br#"{"status":"success","data":{"resultType":"scalar","result":[1764590400,"0.5"]}}"#.to_vec(),
        br#"{"status":"success","data":{"resultType":"vector","result":[]},"warnings":["partial"]}"#.to_vec(),
        br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#.to_vec(),
    ]
}

// ---------------------------------------------------------------------------------------------
// Properties of the readers

proptest! {
    #![proptest_config(config())]

    /// The manifest reader never panics or hangs; what it accepts is a list of mappings.
    #[test]
    fn manifest_reader_survives_any_input(bytes in mutated(manifest_seeds())) {
        let documents = within("parse_documents", move || {
            let source = SourceFile {
                path: "releases/x.yaml".into(),
                digest: manifest::sha256_digest(&bytes),
                bytes,
            };
            manifest::parse_documents(&source).map(|docs| {
                docs.iter().all(|d| d.value.is_object())
            })
        });
        if let Ok(all_mappings) = documents {
            prop_assert!(all_mappings, "a document that is not a mapping was accepted");
        }
    }

    /// Every importer survives any input, and what it accepts is finite numbers.
    #[test]
    fn evidence_importers_survive_any_input(bytes in mutated(evidence_seeds())) {
        for format in Format::ALL {
            let input = bytes.clone();
            let imported = within(format.name(), move || format.import(&input));
            if let Ok(imported) = imported {
                for record in imported.metrics.values() {
                    prop_assert!(record.value.is_finite(), "{}: {} is not finite", format.name(), record.metric);
                    prop_assert!(record.stderr.is_none_or(f64::is_finite));
                }
            }
        }
    }

    /// The Prometheus answer reader survives any body; a reading it takes is finite.
    #[test]
    fn prometheus_reader_survives_any_body(bytes in mutated(prometheus_seeds())) {
        let result = within("parse_response", move || {
            slo::parse_response(&bytes, Some("application/json"))
                .map(|data| slo::remaining_value(&data).map(|(remaining, _)| remaining))
        });
        if let Ok(Ok(remaining)) = result {
            prop_assert!(remaining.is_finite());
        }
    }

    /// The config loader survives any relgate.yaml: an error, or a config that is a mapping.
    #[test]
    fn config_loader_survives_any_input(bytes in mutated(vec![
        read("examples/demo/relgate.yaml"),
        read("policies/config.default.yaml"),
    ])) {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("relgate.yaml"), &bytes).expect("write config");
        let path = dir.path().to_path_buf();
        let merged_is_object = within("GateConfig::load", move || {
            let root = GateRoot::at(&path).expect("gate root");
            GateConfig::load(&root, None, None).map(|c| c.merged.is_object()).ok()
        });
        if let Some(is_object) = merged_is_object {
            prop_assert!(is_object);
        }
    }

    /// A signed envelope, however edited, verifies only if it still carries the signed
    /// payload; the reader never panics.
    #[test]
    fn envelope_reader_never_accepts_an_edited_payload(
        bytes in mutated(vec![signed_envelope().to_json()]),
    ) {
        let verified = within("Envelope::verify", move || {
            let mut keys = TrustedKeys::new();
            keys.insert(signer().verifying_key());
            Envelope::from_slice(&bytes).ok().and_then(|e| e.verify(&keys).ok())
        });
        if let Some(verified) = verified {
            prop_assert_eq!(verified.payload, PAYLOAD.to_vec());
        }
    }
}

const PAYLOAD: &[u8] = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[]}"#;

fn signer() -> Signer {
    Signer::from_seed([7; 32])
}

fn signed_envelope() -> Envelope {
    dsse::sign_payload(PAYLOAD, &signer())
}

// ---------------------------------------------------------------------------------------------
// Whole pipeline: an unreadable input never passes

/// A gate root holding one release that passes with its evaluation evidence, opened once.
struct Pipeline {
    _dir: tempfile::TempDir,
    root: PathBuf,
    gate: Gate,
}

/// The evidence-carrying release of tests/fixtures/evals/demo, which passes as written.
const RELEASE: &str = "releases/greet-pass.yaml";
const CANDIDATE: &str = "evals/greet-v2.promptfoo.json";

impl Pipeline {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().to_path_buf();
        let demo = project_root().join("tests/fixtures/evals/demo");
        for entry in walkdir::WalkDir::new(&demo) {
            let entry = entry.expect("walk");
            let rel = entry.path().strip_prefix(&demo).expect("inside");
            let target = root.join(rel);
            if entry.file_type().is_dir() {
                std::fs::create_dir_all(&target).expect("mkdir");
            } else {
                std::fs::copy(entry.path(), &target).expect("copy");
            }
        }
        // Only the passing release is checked.
        std::fs::remove_file(root.join("releases/greet-fail.yaml")).expect("remove");
        let settings = CheckSettings {
            cwd: root.clone(),
            now: NOW.into(),
            offline: true,
            ..CheckSettings::default()
        };
        let gate = Gate::open(&settings).expect("open the gate");
        let pipeline = Self {
            _dir: dir,
            root,
            gate,
        };
        assert_eq!(
            pipeline.decide(),
            [Decision::Pass],
            "the unmutated release must pass"
        );
        pipeline
    }

    /// The decision on each document of the release file.
    fn decide(&self) -> Vec<Decision> {
        let files = self.gate.discover(&[]).expect("discover");
        self.gate
            .check_files(&files)
            .iter()
            .map(|r| r.decision)
            .collect()
    }
}

fn original(rel: &str) -> Vec<u8> {
    read(Path::new("tests/fixtures/evals/demo").join(rel))
}

proptest! {
    #![proptest_config(Config { cases: config().cases.div_ceil(2), ..config() })]

    /// A manifest the reader cannot read is decided `error`, never `pass`.
    #[test]
    fn an_unreadable_manifest_never_passes(bytes in mutated(vec![original(RELEASE)])) {
        let pipeline = pipeline();
        std::fs::write(pipeline.root.join(RELEASE), &bytes).expect("write manifest");
        let readable = manifest::parse_documents(&SourceFile {
            path: RELEASE.into(),
            digest: manifest::sha256_digest(&bytes),
            bytes: bytes.clone(),
        })
        .is_ok();
        let decisions = pipeline.decide();
        if !readable {
            prop_assert_eq!(decisions, vec![Decision::Error]);
        }
    }

    /// Evidence the importer cannot read never lets the release pass, even when the manifest
    /// pins the edited file's digest (the author edited both).
    #[test]
    fn unreadable_evidence_never_passes(bytes in mutated(vec![original(CANDIDATE)])) {
        let pipeline = pipeline();
        let manifest = String::from_utf8(original(RELEASE)).expect("utf8");
        let old = manifest::sha256_digest(&original(CANDIDATE));
        let new = manifest::sha256_digest(&bytes);
        std::fs::write(pipeline.root.join(RELEASE), manifest.replace(&old, &new))
            .expect("write manifest");
        std::fs::write(pipeline.root.join(CANDIDATE), &bytes).expect("write evidence");
        let readable = Format::Promptfoo.import(&bytes).is_ok();
        let decisions = pipeline.decide();
        // Restore for the next case.
        std::fs::write(pipeline.root.join(CANDIDATE), original(CANDIDATE)).expect("restore");
        std::fs::write(pipeline.root.join(RELEASE), original(RELEASE)).expect("restore");
        if !readable {
            prop_assert!(!decisions.contains(&Decision::Pass), "{decisions:?}");
        }
    }
}

/// One pipeline per test thread: opening compiles the policies, which every case would
/// otherwise repeat.
fn pipeline() -> &'static Pipeline {
    thread_local! {
        static PIPELINE: &'static Pipeline = Box::leak(Box::new(Pipeline::new()));
    }
    PIPELINE.with(|p| *p)
}
