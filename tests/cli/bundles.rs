//! `relgate policy push|pull|verify` and `bundles:` in relgate.yaml, against a real OCI
//! registry (Debian `docker-registry`, the CNCF Distribution registry) on 127.0.0.1.

use std::path::{Path, PathBuf};

use crate::support::{dev_release, Repo};

#[path = "../support/registry.rs"]
mod registry;
use registry::Registry;

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
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_relgate"))
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
