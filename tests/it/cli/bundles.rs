//! `relgate policy push|pull|verify`, `bundles:` in relgate.yaml, bundles in change records and
//! exports, `relgate test --bundle oci://…`, credential helpers and the demo's rules as a
//! bundle, against a real OCI registry (Debian `docker-registry`, the CNCF Distribution
//! registry) on 127.0.0.1; and a lying registry (`registry::FakeRegistry`, 127.0.0.1) that
//! serves oversized, endless, mistyped or redirected content.

use std::path::{Path, PathBuf};

use crate::support::{dev_release, Repo};

use crate::support::registry::{self, Registry};

/// The organisation's bundle: a freeze rule fed by a data document, and a config fragment that
/// narrows the allowed sinks (the repository's relgate.yaml tries to widen them again).
const ORG_REGO: &str = r#"package main

import rego.v1

deny contains {"msg": "ORG-FREEZE: releases are frozen by the organisation bundle", "rule": "ORG-FREEZE"} if {
	data.org.freeze == true
}
"#;

const ORG_TEST: &str = r#"package main

import rego.v1

test_freeze_denies if {
	count(deny) == 1 with data.org.freeze as true
}
"#;

/// A workspace: a signing key pair, a bundle directory, a cache and an auth file.
struct Org {
    dir: tempfile::TempDir,
}

impl Org {
    fn new() -> Org {
        let org = Org {
            dir: tempfile::tempdir().expect("org dir"),
        };
        org.keygen("key");
        org.write_bundle("bundle", true);
        org
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn keygen(&self, name: &str) {
        let out = std::process::Command::new(crate::support::relgate_bin())
            .args(["keygen", "--out"])
            .arg(self.path(name))
            .output()
            .expect("keygen");
        assert!(out.status.success(), "keygen failed");
    }

    fn write_bundle(&self, name: &str, freeze: bool) {
        let dir = self.path(name);
        std::fs::create_dir_all(dir.join("data")).expect("mkdir");
        std::fs::write(dir.join("org.rego"), ORG_REGO).expect("write");
        std::fs::write(dir.join("org_test.rego"), ORG_TEST).expect("write");
        std::fs::write(
            dir.join("data/org.json"),
            format!("{{\"org\": {{\"freeze\": {freeze}}}}}"),
        )
        .expect("write");
        std::fs::write(
            dir.join("relgate-config.yaml"),
            "pii:\n  allowed_sinks: [langfuse]\n",
        )
        .expect("write");
    }

    fn private_key(&self, name: &str) -> String {
        self.path(name)
            .join("relgate-signing.pem")
            .display()
            .to_string()
    }

    fn public_key(&self, name: &str) -> PathBuf {
        self.path(name).join("relgate-signing.pub.pem")
    }

    /// The environment of every run: this org's cache and auth file, nothing from the host.
    fn env(&self, cache: &str) -> Vec<(String, String)> {
        vec![
            (
                "RELGATE_BUNDLE_CACHE".into(),
                self.path(cache).display().to_string(),
            ),
            (
                "REGISTRY_AUTH_FILE".into(),
                self.path("auth.json").display().to_string(),
            ),
            ("HOME".into(), self.path("home").display().to_string()),
        ]
    }

    fn run(&self, repo: &Repo, args: &[&str], cache: &str) -> crate::support::Run {
        let env = self.env(cache);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        repo.run_env(args, &env)
    }

    /// Pushes `bundle` to `target`; returns the pinned reference printed.
    fn push(&self, bundle: &str, target: &str, key: &str) -> String {
        let run = self.run(
            &Repo::new(),
            &[
                "policy",
                "push",
                &self.path(bundle).display().to_string(),
                target,
                "--key",
                &self.private_key(key),
            ],
            "push-cache",
        );
        run.exit(0).stderr_has("pushed 4 files signed by key");
        run.stdout.trim().to_string()
    }
}

/// A consumer repository pinning `reference`, trusting the key file copied in as
/// `.relgate/keys/org.pem`, whose own relgate.yaml allows the prometheus sink.
fn consumer(reference: &str, key: &Path) -> Repo {
    let repo = Repo::git();
    repo.file(
        ".relgate/keys/org.pem",
        std::fs::read(key).expect("read public key"),
    )
    .file("releases/a.yaml", dev_release("answer"))
    .file(
        "relgate.yaml",
        format!(
            "apiVersion: relgate.dev/v1\nkind: GateConfig\npii:\n  allowed_sinks: [prometheus, langfuse]\n\
             bundles:\n  - ref: {reference}\n    keys: [.relgate/keys/org.pem]\n"
        ),
    );
    repo
}

fn digest_of(pinned: &str) -> &str {
    pinned.split_once('@').expect("pinned reference").1
}

#[test]
fn push_pull_verify_and_a_pinned_bundle_is_the_floor() {
    let registry = Registry::start();
    let org = Org::new();
    let target = format!("oci://{}/org/policies:v1", registry.addr);
    let pinned = org.push("bundle", &target, "key");
    assert!(
        pinned.starts_with(&format!("oci://{}/org/policies@sha256:", registry.addr)),
        "{pinned}"
    );

    // Interop: skopeo reads the manifest relgate pushed.
    let skopeo = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/org/policies:v1", registry.addr))
        .output()
        .expect("run skopeo (apt-get install skopeo)");
    assert!(
        skopeo.status.success(),
        "{}",
        String::from_utf8_lossy(&skopeo.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_slice(&skopeo.stdout).expect("json");
    assert_eq!(
        manifest["artifactType"],
        "application/vnd.relgate.policy.bundle.v1"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.relgate.policy.bundle.manifest.v1+json"
    );
    let raw_digest = format!("sha256:{}", {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&skopeo.stdout))
    });
    assert_eq!(raw_digest, digest_of(&pinned));

    // Pull by tag and by digest into fresh caches, verify offline.
    let key = org.public_key("key").display().to_string();
    let scratch = Repo::new();
    org.run(&scratch, &["policy", "pull", &target, "--key", &key], "c1")
        .exit(0)
        .stdout_has(&pinned)
        .stderr_has("verified: signed by key");
    org.run(&scratch, &["policy", "pull", &pinned], "c2")
        .exit(0)
        .stdout_has(&pinned);
    org.run(
        &scratch,
        &["policy", "verify", &pinned, "--key", &key],
        "c2",
    )
    .exit(0)
    .stdout_has("verified, 4 files signed by key");

    // The consumer: the bundle's rule runs and its fragment wins over relgate.yaml.
    let repo = consumer(&pinned, &org.public_key("key"));
    org.run(&repo, &["check"], "c3")
        .exit(1)
        .stdout_has("ORG-FREEZE: releases are frozen by the organisation bundle")
        .stdout_has("PII-SINK");
}

#[test]
fn a_tag_alone_is_refused_unless_the_dev_flag_resolves_it() {
    let registry = Registry::start();
    let org = Org::new();
    let target = format!("oci://{}/org/policies:v1", registry.addr);
    org.push("bundle", &target, "key");
    let repo = consumer(&target, &org.public_key("key"));
    org.run(&repo, &["check"], "c")
        .exit(2)
        .says("a tag can move, so bundles are pinned by digest")
        .says("relgate policy pull");
    org.run(&repo, &["check", "--allow-bundle-tag"], "c")
        .exit(1)
        .stderr_has("warning: --allow-bundle-tag")
        .stdout_has("ORG-FREEZE");
}

#[test]
fn moving_the_tag_does_not_change_a_pinned_consumer() {
    let registry = Registry::start();
    let org = Org::new();
    let target = format!("oci://{}/org/policies:v1", registry.addr);
    let first = org.push("bundle", &target, "key");
    org.write_bundle("thawed", false);
    let second = org.push("thawed", &target, "key");
    assert_ne!(first, second);
    // Fresh caches: each consumer fetches its own digest from the registry.
    let repo = consumer(&first, &org.public_key("key"));
    org.run(&repo, &["check"], "c1")
        .exit(1)
        .stdout_has("ORG-FREEZE");
    let repo = consumer(&second, &org.public_key("key"));
    org.run(&repo, &["check"], "c2")
        .exit(1)
        .stdout_lacks("ORG-FREEZE")
        .stdout_has("PII-SINK");
}

#[test]
fn a_bundle_tampered_in_the_registry_storage_is_refused() {
    let registry = Registry::start();
    let org = Org::new();
    let pinned = org.push(
        "bundle",
        &format!("oci://{}/org/policies:v1", registry.addr),
        "key",
    );
    // Rewrite the files layer in the registry's storage (same size, different bytes).
    let manifest_path = registry.blob_path(digest_of(&pinned));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(manifest_path).expect("manifest blob"))
            .expect("json");
    let files = manifest["layers"][0]["digest"].as_str().expect("digest");
    let path = registry.blob_path(files);
    let mut bytes = std::fs::read(&path).expect("files blob");
    let at = bytes
        .windows(4)
        .position(|w| w == b"true")
        .expect("the freeze flag");
    bytes[at..at + 4].copy_from_slice(b"null");
    std::fs::write(&path, bytes).expect("tamper");
    let repo = consumer(&pinned, &org.public_key("key"));
    org.run(&repo, &["check"], "c")
        .exit(2)
        .no_panic()
        .says(&format!("blob {files} does not hash to its digest"));
}

#[test]
fn unsigned_and_untrusted_bundles_are_refused() {
    let registry = Registry::start();
    let org = Org::new();
    org.keygen("other");
    let pinned = org.push(
        "bundle",
        &format!("oci://{}/org/policies:v1", registry.addr),
        "key",
    );
    // Signed by a key the consumer does not trust.
    let repo = consumer(&pinned, &org.public_key("other"));
    org.run(&repo, &["check"], "c1")
        .exit(2)
        .says("which is not trusted");

    // An unsigned artifact: the same bundle with an empty signature layer.
    let files = relgate::bundle::BundleFiles::read_dir(&org.path("bundle")).expect("bundle");
    let signer =
        relgate::record::keys::Signer::from_file(Path::new(&org.private_key("key"))).expect("key");
    let mut packed = relgate::bundle::pack(&files, &signer).expect("pack");
    packed.signature = b"{}".to_vec();
    let mut oci: relgate::bundle::OciManifest =
        serde_json::from_slice(&packed.oci_manifest).expect("json");
    oci.layers[1].digest = relgate::bundle::digest_of(&packed.signature);
    oci.layers[1].size = packed.signature.len() as u64;
    packed.oci_manifest = serde_json::to_vec(&oci).expect("json");
    let target =
        relgate::bundle::BundleRef::parse(&format!("oci://{}/org/unsigned:v1", registry.addr))
            .expect("ref");
    let digest = relgate::bundle::registry::push(
        &packed,
        &target,
        &relgate::bundle::registry::Remote::anonymous(),
    )
    .expect("push unsigned");
    let repo = consumer(&target.pinned(&digest).to_string(), &org.public_key("key"));
    org.run(&repo, &["check"], "c2")
        .exit(2)
        .says("unsigned or malformed signature layer");
}

#[test]
fn registry_down_fails_closed_without_a_warm_cache() {
    let mut registry = Registry::start();
    let org = Org::new();
    let pinned = org.push(
        "bundle",
        &format!("oci://{}/org/policies:v1", registry.addr),
        "key",
    );
    let repo = consumer(&pinned, &org.public_key("key"));
    org.run(&repo, &["check", "--offline"], "warm")
        .exit(2)
        .says("is not in the bundle cache")
        .says("--offline forbids fetching it");
    org.run(&repo, &["policy", "pull", &pinned], "warm").exit(0);
    registry.stop();
    org.run(&repo, &["check"], "cold")
        .exit(2)
        .no_panic()
        .says("cannot reach the registry")
        .says("Connection refused")
        .says("is the registry reachable?");
    for args in [&["check"][..], &["check", "--offline"][..]] {
        org.run(&repo, args, "warm")
            .exit(1)
            .stdout_has("ORG-FREEZE");
    }
}

#[test]
fn registry_auth_comes_from_the_auth_file_and_is_never_printed() {
    let registry = Registry::start_with_auth("ci", "s3cret-pa55");
    let org = Org::new();
    let target = format!("oci://{}/org/policies:v1", registry.addr);
    let push = |org: &Org| {
        org.run(
            &Repo::new(),
            &[
                "policy",
                "push",
                &org.path("bundle").display().to_string(),
                &target,
                "--key",
                &org.private_key("key"),
            ],
            "c",
        )
    };
    // No credentials.
    let run = push(&org);
    run.exit(2).no_panic().says("check the credentials");
    // Wrong password.
    let auth = |user: &str, password: &str| {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        std::fs::write(
            org.path("auth.json"),
            format!(
                "{{\"auths\": {{\"{}\": {{\"auth\": \"{token}\"}}}}}}",
                registry.addr
            ),
        )
        .expect("auth file");
        token
    };
    let token = auth("ci", "wrong-pa55");
    let run = push(&org);
    run.exit(2).says("check the credentials");
    for secret in ["wrong-pa55", token.as_str()] {
        assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret));
    }
    // Right password: push, then a consumer pulls with the same file.
    let token = auth("ci", "s3cret-pa55");
    let run = push(&org);
    run.exit(0);
    for secret in ["s3cret-pa55", token.as_str()] {
        assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret));
    }
    let pinned = run.stdout.trim().to_string();
    let repo = consumer(&pinned, &org.public_key("key"));
    org.run(&repo, &["check"], "c2")
        .exit(1)
        .stdout_has("ORG-FREEZE");
}

#[test]
fn relgate_test_runs_a_bundle_directory_tests() {
    let org = Org::new();
    let repo = Repo::git();
    org.run(
        &repo,
        &[
            "test",
            "--bundle",
            &org.path("bundle").display().to_string(),
        ],
        "c",
    )
    .exit(0)
    .says("test_freeze_denies");
}

#[test]
fn hostile_bundles_and_configs_are_refused() {
    let registry = Registry::start();
    let org = Org::new();
    let target = format!("oci://{}/org/policies:v1", registry.addr);
    // A symlink in the bundle directory is never packed.
    org.write_bundle("linked", true);
    std::os::unix::fs::symlink("/etc/passwd", org.path("linked/passwd.yaml")).expect("symlink");
    let push = |bundle: &str| {
        org.run(
            &Repo::new(),
            &[
                "policy",
                "push",
                &org.path(bundle).display().to_string(),
                &target,
                "--key",
                &org.private_key("key"),
            ],
            "c",
        )
    };
    push("linked")
        .exit(2)
        .says("only regular files can go into a bundle");
    // A fragment that tries to steer relgate itself is refused at check time.
    org.write_bundle("steering", true);
    std::fs::write(
        org.path("steering/relgate-config.yaml"),
        "policies: [elsewhere]\n",
    )
    .expect("write");
    let run = push("steering");
    run.exit(0);
    let pinned = run.stdout.trim().to_string();
    let repo = consumer(&pinned, &org.public_key("key"));
    org.run(&repo, &["check"], "c1")
        .exit(2)
        .says("a bundle's config fragment cannot set `policies`");
    // A trusted key outside the gate root is refused.
    let outside = org.public_key("key").display().to_string();
    repo.file(
        "relgate.yaml",
        format!(
            "apiVersion: relgate.dev/v1\nkind: GateConfig\nbundles:\n  - ref: {pinned}\n    keys: [{outside}]\n"
        ),
    );
    org.run(&repo, &["check"], "c1")
        .exit(2)
        .no_panic()
        .says("absolute paths are not allowed here");
    // A cached blob edited after the pull is caught on the next run.
    let pinned = org.push("bundle", &target, "key");
    let repo = consumer(&pinned, &org.public_key("key"));
    org.run(&repo, &["policy", "pull", &pinned], "c2").exit(0);
    let cached = org
        .path("c2/blobs/sha256")
        .join(&digest_of(&pinned)["sha256:".len()..]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cached).expect("cached manifest")).expect("json");
    let files = manifest["layers"][0]["digest"].as_str().expect("digest");
    let blob = org.path("c2/blobs/sha256").join(&files["sha256:".len()..]);
    let mut bytes = std::fs::read(&blob).expect("blob");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&blob, bytes).expect("tamper cache");
    org.run(&repo, &["check", "--offline"], "c2")
        .exit(2)
        .says("the cached blob is corrupt");
}

fn key_id_of(org: &Org, pinned: &str, key: &str) -> String {
    let run = org.run(
        &Repo::new(),
        &[
            "policy",
            "pull",
            pinned,
            "--key",
            &org.public_key(key).display().to_string(),
        ],
        "keyid-cache",
    );
    run.exit(0);
    run.stderr
        .split("verified: signed by key ")
        .nth(1)
        .expect("key id")
        .trim()
        .to_string()
}

#[test]
fn records_name_the_bundles_that_decided_and_export_shows_them() {
    let registry = Registry::start();
    let org = Org::new();
    org.keygen("records");
    let pinned = org.push(
        "bundle",
        &format!("oci://{}/org/policies:v1", registry.addr),
        "key",
    );
    let key_id = key_id_of(&org, &pinned, "key");
    let repo = consumer(&pinned, &org.public_key("key"));
    repo.file(
        "trusted/records.pem",
        std::fs::read(org.public_key("records")).expect("public key"),
    );
    repo.commit("init");
    org.run(
        &repo,
        &[
            "record",
            "--key",
            &org.private_key("records"),
            "--ledger-dir",
            "ledger",
        ],
        "c",
    )
    .exit(1)
    .stdout_has("ORG-FREEZE")
    .stderr_has("appended record 1");
    let envelope: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            repo.path()
                .join("ledger/records/000/000001-answer-2.dsse.json"),
        )
        .expect("record"),
    )
    .expect("json");
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = b64
        .decode(envelope["payload"].as_str().expect("payload"))
        .expect("base64");
    let statement: serde_json::Value = serde_json::from_slice(&payload).expect("statement");
    let change = &statement["predicate"]["https://relgate.dev/change/v1"];
    assert_eq!(
        change["bundles"],
        serde_json::json!([{"ref": pinned, "digest": digest_of(&pinned), "keyid": key_id}]),
        "{change}"
    );
    let verify = ["verify", "--ledger-dir", "ledger", "--keys", "trusted"];
    org.run(&repo, &verify, "c").exit(0).stdout_has("INTACT");
    // Export: JSONL keeps the structure, CSV one cell per record.
    let export = |format: &str| {
        let run = org.run(
            &repo,
            &[
                "export",
                "--ledger-dir",
                "ledger",
                "--keys",
                "trusted",
                "--format",
                format,
            ],
            "c",
        );
        run.exit(0);
        run.stdout.clone()
    };
    let jsonl: serde_json::Value =
        serde_json::from_str(export("jsonl").lines().next().expect("row")).expect("json");
    assert_eq!(jsonl["bundles"], change["bundles"]);
    let csv = export("csv");
    let header = csv.lines().next().expect("header");
    assert!(
        header.contains(",policy_digest,bundles,manifest_path,"),
        "{header}"
    );
    assert!(csv.contains(&format!(",{pinned} keyid={key_id},")), "{csv}");
    // The field is signed: naming another bundle digest in the record breaks its signature.
    let other = format!("sha256:{}", "0".repeat(64));
    let forged = String::from_utf8(payload).expect("utf8").replace(
        &format!("\"digest\":\"{}\"", digest_of(&pinned)),
        &format!("\"digest\":\"{other}\""),
    );
    let mut tampered = envelope.clone();
    tampered["payload"] = b64.encode(forged.as_bytes()).into();
    std::fs::write(
        repo.path()
            .join("ledger/records/000/000001-answer-2.dsse.json"),
        serde_json::to_vec(&tampered).expect("json"),
    )
    .expect("tamper");
    org.run(&repo, &verify, "c")
        .exit(1)
        .stdout_has("TAMPERED record 1");
}

#[test]
fn relgate_test_runs_a_pushed_bundle_verified_like_the_gate() {
    let registry = Registry::start();
    let org = Org::new();
    org.keygen("other");
    let target = format!("oci://{}/org/policies:v1", registry.addr);
    let pinned = org.push("bundle", &target, "key");
    let key = org.public_key("key").display().to_string();
    let scratch = Repo::git();
    org.run(
        &scratch,
        &["test", "--bundle", &pinned, "--key", &key],
        "c1",
    )
    .exit(0)
    .stdout_has("test_freeze_denies")
    .stderr_has(&format!(
        "testing {pinned}: verified, 4 files signed by key"
    ));
    // A tag is refused, as in the gate.
    org.run(
        &scratch,
        &["test", "--bundle", &target, "--key", &key],
        "c1",
    )
    .exit(2)
    .says("a tag can move");
    // An untrusted key, and no key at all.
    let other = org.public_key("other").display().to_string();
    org.run(
        &scratch,
        &["test", "--bundle", &pinned, "--key", &other],
        "c1",
    )
    .exit(2)
    .says("which is not trusted");
    org.run(&scratch, &["test", "--bundle", &pinned], "c1")
        .exit(2)
        .says("no trusted key: give --key FILE");
    // Without --key: the keys relgate.yaml trusts for that bundle.
    let repo = consumer(&pinned, &org.public_key("key"));
    org.run(&repo, &["test", "--bundle", &pinned], "c2")
        .exit(0)
        .stdout_has("test_freeze_denies");
    // A bundle whose own test fails fails `relgate test`.
    org.write_bundle("broken", true);
    std::fs::write(
        org.path("broken/org_test.rego"),
        ORG_TEST.replace("count(deny) == 1", "count(deny) == 2"),
    )
    .expect("write");
    let broken = org.push(
        "broken",
        &format!("oci://{}/org/policies:broken", registry.addr),
        "key",
    );
    org.run(
        &scratch,
        &["test", "--bundle", &broken, "--key", &key],
        "c1",
    )
    .exit(1)
    .says("test_freeze_denies");
    // Tampered in the registry: refused before any test runs.
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(registry.blob_path(digest_of(&pinned))).expect("manifest blob"),
    )
    .expect("json");
    let files = manifest["layers"][0]["digest"].as_str().expect("digest");
    let path = registry.blob_path(files);
    let mut bytes = std::fs::read(&path).expect("blob");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).expect("tamper");
    org.run(
        &scratch,
        &["test", "--bundle", &pinned, "--key", &key],
        "fresh",
    )
    .exit(2)
    .no_panic()
    .says("does not hash to its digest")
    .stdout_lacks("test_freeze_denies");
}

/// A signed bundle's blobs, served by a [`registry::FakeRegistry`].
struct Served {
    packed: relgate::bundle::Packed,
    manifest_digest: String,
    files_digest: String,
}

fn served(org: &Org) -> Served {
    let files = relgate::bundle::BundleFiles::read_dir(&org.path("bundle")).expect("bundle");
    let signer =
        relgate::record::keys::Signer::from_file(Path::new(&org.private_key("key"))).expect("key");
    let packed = relgate::bundle::pack(&files, &signer).expect("pack");
    Served {
        manifest_digest: packed.digest(),
        files_digest: relgate::bundle::digest_of(&packed.files_tar),
        packed,
    }
}

/// The honest answers for `served`, by path.
fn honest(s: &Served, path: &str) -> registry::FakeReply {
    use registry::FakeReply;
    if path == "/v2/" {
        return FakeReply::ok("application/json", b"{}".to_vec());
    }
    if path.contains("/manifests/") {
        return FakeReply::ok(
            relgate::bundle::OCI_MANIFEST_MEDIA_TYPE,
            s.packed.oci_manifest.clone(),
        );
    }
    for blob in [
        &s.packed.bundle_manifest,
        &s.packed.files_tar,
        &s.packed.signature,
    ] {
        if path.ends_with(&relgate::bundle::digest_of(blob)) {
            return FakeReply::ok("application/octet-stream", blob.clone());
        }
    }
    FakeReply::not_found()
}

#[test]
fn a_lying_registry_is_refused_with_bounded_memory_and_no_hang() {
    use registry::{FakeBody, FakeRegistry, FakeReply};
    use std::sync::Arc;
    let org = Org::new();
    let s = Arc::new(served(&org));
    let pull = |fake: &FakeRegistry, cache: &str| {
        let reference = format!("oci://{}/org/policies@{}", fake.addr, s.manifest_digest);
        let env = org.env(cache);
        let mut env: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.push(("RELGATE_REGISTRY_TIMEOUT", "2"));
        let started = std::time::Instant::now();
        let run = Repo::new().run_env(&["policy", "pull", &reference], &env);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "pull took {:?}",
            started.elapsed()
        );
        run
    };

    // The honest fake works, so each refusal below is the lie's doing.
    let fake = {
        let s = s.clone();
        FakeRegistry::start(move |path| honest(&s, path))
    };
    pull(&fake, "honest").exit(0).stdout_has(&s.manifest_digest);

    // A manifest listing 10,000 layers (with the right media type): refused by its size
    // before it is parsed.
    let layers: Vec<serde_json::Value> = (0..10_000)
        .map(|i| {
            serde_json::json!({"mediaType": relgate::bundle::FILES_MEDIA_TYPE,
                "digest": format!("sha256:{i:064x}"), "size": 1})
        })
        .collect();
    let huge = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2,
        "mediaType": relgate::bundle::OCI_MANIFEST_MEDIA_TYPE, "layers": layers}))
    .expect("json");
    let huge_digest = relgate::bundle::digest_of(&huge);
    let fake = FakeRegistry::start(move |path| match path {
        "/v2/" => FakeReply::ok("application/json", b"{}".to_vec()),
        _ => FakeReply::ok(relgate::bundle::OCI_MANIFEST_MEDIA_TYPE, huge.clone()),
    });
    let reference = format!("oci://{}/org/policies@{huge_digest}", fake.addr);
    let env = org.env("huge");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Repo::new()
        .run_env(&["policy", "pull", &reference], &env)
        .exit(2)
        .no_panic()
        .says("the manifest is")
        .says("more than the 65536 allowed; refusing it");

    // A manifest that never ends (no Content-Length): cut at the bound, not read to the end.
    let fake = FakeRegistry::start(|path| match path {
        "/v2/" => FakeReply::ok("application/json", b"{}".to_vec()),
        _ => FakeReply {
            status: 200,
            headers: vec![(
                "Content-Type".into(),
                relgate::bundle::OCI_MANIFEST_MEDIA_TYPE.into(),
            )],
            body: FakeBody::Endless,
        },
    });
    pull(&fake, "endless")
        .exit(2)
        .no_panic()
        .says("the manifest is more than the 65536 bytes allowed; refusing it");
    assert!(fake.sent() < 16 * 1024 * 1024, "read {} bytes", fake.sent());

    // The right manifest under the wrong content type.
    let fake = {
        let s = s.clone();
        FakeRegistry::start(move |path| match honest(&s, path) {
            FakeReply { body, .. } if path.contains("/manifests/") => FakeReply {
                status: 200,
                headers: vec![("Content-Type".into(), "text/html".into())],
                body,
            },
            reply => reply,
        })
    };
    pull(&fake, "ctype")
        .exit(2)
        .says("the registry served the manifest as \"text/html\"");

    // The files blob: its descriptor says a few KB, the registry streams without end, or
    // announces 100 MB.
    for (body, says) in [
        (FakeBody::Endless, "bytes) is more than the"),
        (
            FakeBody::ClaimLength(100 * 1024 * 1024),
            "is 104857600 bytes, more than the",
        ),
    ] {
        let body = std::sync::Mutex::new(Some(body));
        let fake = {
            let s = s.clone();
            FakeRegistry::start(move |path| {
                if path.ends_with(&s.files_digest) {
                    if let Some(body) = body.lock().expect("lock").take() {
                        return FakeReply {
                            status: 200,
                            headers: Vec::new(),
                            body,
                        };
                    }
                }
                honest(&s, path)
            })
        };
        pull(&fake, "blob")
            .exit(2)
            .no_panic()
            .says(&format!("blob {}", s.files_digest))
            .says(says);
        assert!(fake.sent() < 16 * 1024 * 1024, "read {} bytes", fake.sent());
    }

    // Redirects of a blob to another loopback port, another loopback host and a private
    // address: refused before any connection; the other server sees no request.
    let elsewhere = FakeRegistry::start(|_| FakeReply::not_found());
    for location in [
        format!("http://{}/blob", elsewhere.addr),
        "http://127.0.0.2:9/blob".to_string(),
        "http://10.255.255.1/blob".to_string(),
    ] {
        let fake = {
            let s = s.clone();
            let location = location.clone();
            FakeRegistry::start(move |path| {
                if path.ends_with(&s.files_digest) {
                    FakeReply::redirect(&location)
                } else {
                    honest(&s, path)
                }
            })
        };
        pull(&fake, "redirect")
            .exit(2)
            .no_panic()
            .says("redirect refused: a loopback registry may only send relgate to itself");
    }
    assert!(elsewhere.paths().is_empty(), "{:?}", elsewhere.paths());
    // A redirect within the registry is fine.
    let fake = {
        let s = s.clone();
        FakeRegistry::start(move |path| {
            if path.ends_with(&s.files_digest) && !path.starts_with("/moved") {
                FakeReply::redirect(&format!("/moved{path}"))
            } else {
                honest(&s, path.trim_start_matches("/moved"))
            }
        })
    };
    pull(&fake, "same-host").exit(0);

    // A registry that accepts and never answers: the read timeout ends it.
    let fake = FakeRegistry::start(|_| FakeReply {
        status: 200,
        headers: Vec::new(),
        body: FakeBody::Hang,
    });
    pull(&fake, "hang")
        .exit(2)
        .no_panic()
        .says("the registry stopped answering");
}

#[test]
fn credential_helpers_are_run_like_docker_and_nothing_secret_is_printed() {
    let registry = Registry::start_with_auth("ci", "s3cret-pa55");
    let org = Org::new();
    let bin = org.path("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    // A helper that records what it was asked and answers from the protocol.
    let asked = org.path("asked.txt");
    let helper = bin.join("docker-credential-fake");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 3\ncat > {asked}\n\
             echo '{{\"ServerURL\":\"{addr}\",\"Username\":\"ci\",\"Secret\":\"s3cret-pa55\"}}'\n",
            asked = asked.display(),
            addr = registry.addr
        ),
    )
    .expect("helper");
    let failing = bin.join("docker-credential-broken");
    std::fs::write(&failing, "#!/bin/sh\necho 'token leaked-s3cret'\nexit 1\n").expect("helper");
    for file in [&helper, &failing] {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let target = format!("oci://{}/org/policies:v1", registry.addr);
    let run = |config: String| {
        std::fs::write(org.path("auth.json"), config).expect("auth file");
        let env = org.env("c");
        let mut env: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.push(("PATH", &path));
        let bundle = org.path("bundle").display().to_string();
        let key = org.private_key("key");
        let run = Repo::new().run_env(&["policy", "push", &bundle, &target, "--key", &key], &env);
        for secret in ["s3cret-pa55", "leaked-s3cret"] {
            assert!(
                !run.stdout.contains(secret) && !run.stderr.contains(secret),
                "{}{}",
                run.stdout,
                run.stderr
            );
        }
        run
    };
    // credHelpers for this registry.
    run(format!(
        "{{\"credHelpers\": {{\"{}\": \"fake\"}}}}",
        registry.addr
    ))
    .exit(0);
    assert_eq!(
        std::fs::read_to_string(&asked).expect("asked"),
        registry.addr
    );
    std::fs::remove_file(&asked).expect("rm");
    // credsStore for every registry, and it wins over an `auths` entry (Docker's order).
    let pushed = run(format!(
        "{{\"credsStore\": \"fake\", \"auths\": {{\"{}\": {{\"auth\": \"bm86bm8=\"}}}}}}",
        registry.addr
    ));
    pushed.exit(0);
    assert!(asked.is_file());
    // A consumer pulls through the same helper.
    let pinned = pushed.stdout.trim().to_string();
    let repo = consumer(&pinned, &org.public_key("key"));
    let env = org.env("consumer");
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.push(("PATH", &path));
    repo.run_env(&["check"], &env)
        .exit(1)
        .stdout_has("ORG-FREEZE");
    // A failing helper: an error naming it, without its output.
    run(format!(
        "{{\"credHelpers\": {{\"{}\": \"broken\"}}}}",
        registry.addr
    ))
    .exit(2)
    .says("docker-credential-broken (from credHelpers of")
    .says("it failed (exit status: 1)");
    // A missing helper, and a helper name that is a path.
    run(r#"{"credsStore": "absent"}"#.to_string())
        .exit(2)
        .says("docker-credential-absent")
        .says("is it on PATH?");
    run(r#"{"credsStore": "../../bin/sh"}"#.to_string())
        .exit(2)
        .says("is not a credential helper name");
}

#[test]
fn the_demo_decides_identically_from_its_rules_in_a_pinned_bundle() {
    let registry = Registry::start();
    let org = Org::new();
    let demo = crate::support::project_root().join("examples/demo");
    let bundle_dir = demo.join("policy-bundle");
    // The bundle's config fragment is the demo's relgate.yaml, less what only the repository
    // decides (kept in step by this assertion).
    let config: serde_yaml::Value =
        serde_yaml::from_slice(&std::fs::read(demo.join("relgate.yaml")).expect("config"))
            .expect("yaml");
    let mut expected = config.as_mapping().expect("mapping").clone();
    for key in ["apiVersion", "kind", "manifests"] {
        expected.remove(key);
    }
    let fragment: serde_yaml::Value = serde_yaml::from_slice(
        &std::fs::read(bundle_dir.join("relgate-config.yaml")).expect("fragment"),
    )
    .expect("yaml");
    assert_eq!(fragment, serde_yaml::Value::Mapping(expected));

    let now = [("RELGATE_NOW", "2026-11-27T12:00:00Z")];
    let env_of = |cache: &str| {
        let mut env = org.env(cache);
        env.extend(now.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    };
    let run = |repo: &Repo, args: &[&str], cache: &str| {
        let env = env_of(cache);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        repo.run_env(args, &env)
    };
    // Local: the demo as it is, the team's Rego and data given on the command line.
    let local = Repo::git();
    local.copy_dir(&demo, ".");
    let local_run = run(
        &local,
        &[
            "check",
            "-f",
            "json",
            "-p",
            "policy-bundle",
            "--data",
            "policy-bundle/jira-projects.yaml",
        ],
        "c",
    );
    local_run.exit(1).stdout_has("KESTREL-TICKET");
    // Bundled: pushed, pinned by digest; the repository keeps only what is its own.
    let pinned = {
        let out = run(
            &Repo::new(),
            &[
                "policy",
                "push",
                &bundle_dir.display().to_string(),
                &format!("oci://{}/kestrel/release-rules:2026-11", registry.addr),
                "--key",
                &org.private_key("key"),
            ],
            "c",
        );
        out.exit(0);
        out.stdout.trim().to_string()
    };
    let bundled = Repo::git();
    bundled.copy_dir(&demo, ".");
    std::fs::remove_dir_all(bundled.path().join("policy-bundle")).expect("rm");
    bundled
        .file(
            ".relgate/keys/platform.pem",
            std::fs::read(org.public_key("key")).expect("key"),
        )
        .file(
            "relgate.yaml",
            format!(
                "apiVersion: relgate.dev/v1\nkind: GateConfig\nmanifests: [\"releases/**/*.yaml\"]\n\
                 bundles:\n  - ref: {pinned}\n    keys: [.relgate/keys/platform.pem]\n"
            ),
        );
    let bundled_run = run(&bundled, &["check", "-f", "json"], "c2");
    bundled_run.exit(1);
    // Same decisions and findings; only where the rules came from differs.
    let prefix = format!("bundle@{}/", &digest_of(&pinned)["sha256:".len()..][..12]);
    let normal = |text: &str| {
        let mut json: serde_json::Value =
            serde_json::from_str(&text.replace(&prefix, "policy-bundle/")).expect("json");
        json.as_object_mut()
            .expect("report")
            .remove("policy_digest");
        json
    };
    assert_eq!(normal(&local_run.stdout), normal(&bundled_run.stdout));
    // And the bundle's own tests pass from the registry.
    run(
        &Repo::git(),
        &[
            "test",
            "--bundle",
            &pinned,
            "--key",
            &org.public_key("key").display().to_string(),
        ],
        "c2",
    )
    .exit(0);
}

/// The pull request's author edits the gate's own bundle settings to get a frozen release
/// through: drops the organisation's bundle, or pins a lax bundle of their own and replaces
/// the trusted key file with their key. Under `--changed` the merge base's relgate.yaml names
/// the bundles and its key files are read from the merge base, so the freeze still blocks;
/// with `--rules head` (a local experiment) the edits decide and the freeze is gone.
#[test]
fn a_pull_request_cannot_swap_or_drop_the_bundle_that_decides() {
    let registry = Registry::start();
    let org = Org::new();
    let pinned = org.push(
        "bundle",
        &format!("oci://{}/org/policies:v1", registry.addr),
        "key",
    );
    let repo = consumer(&pinned, &org.public_key("key"));
    repo.commit("pin the organisation's bundle");
    org.run(&repo, &["check"], "cache")
        .exit(1)
        .stdout_has("ORG-FREEZE");

    // Attack 1: the bundle is dropped from relgate.yaml.
    repo.branch("drop");
    repo.file(
        "relgate.yaml",
        "apiVersion: relgate.dev/v1\nkind: GateConfig\npii:\n  allowed_sinks: [prometheus, langfuse]\n",
    );
    repo.commit("drop the bundle");
    org.run(&repo, &["check", "--changed", "--base", "main"], "cache")
        .exit(1)
        .stdout_has("ORG-FREEZE")
        .stdout_has("GATE-CONFIG-CHANGED");
    // Judged by its own rules the edit drops the freeze: the block above comes from the
    // base's bundle, not from something else in the change.
    org.run(
        &repo,
        &["check", "--changed", "--base", "main", "--rules", "head"],
        "cache",
    )
    .stdout_lacks("ORG-FREEZE");

    // Attack 2: a lax bundle (no freeze) signed by the author's own key, whose public key
    // replaces the trusted key file, pinned in place of the organisation's.
    repo.checkout("main");
    repo.branch("swap");
    org.keygen("mallory");
    org.write_bundle("lax", false);
    let lax = org.push(
        "lax",
        &format!("oci://{}/mallory/policies:v1", registry.addr),
        "mallory",
    );
    let consumer_lax = consumer(&lax, &org.public_key("mallory"));
    for file in ["relgate.yaml", ".relgate/keys/org.pem"] {
        repo.file(
            file,
            std::fs::read(consumer_lax.path().join(file)).expect("read"),
        );
    }
    repo.commit("pin a lax bundle and trust its key");
    org.run(&repo, &["check", "--changed", "--base", "main"], "cache")
        .exit(1)
        .stdout_has("ORG-FREEZE")
        .stdout_has("GATE-CONFIG-CHANGED");
    org.run(
        &repo,
        &["check", "--changed", "--base", "main", "--rules", "head"],
        "cache",
    )
    .stdout_lacks("ORG-FREEZE");
}
