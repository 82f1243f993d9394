//! Ed25519 keys for change records: generating a key pair (`relgate keygen`), reading and
//! writing it as PEM (PKCS#8 private key, SubjectPublicKeyInfo public key, so `openssl` and other
//! DSSE verifiers read the same files), the record key id (hex SHA-256 of the DER
//! SubjectPublicKeyInfo), and the set of trusted public keys an auditor verifies against.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::RecordError;

/// File name of the private signing key written by [`keygen`] (PKCS#8 PEM, mode 0600).
pub const PRIVATE_KEY_FILE: &str = "relgate-signing.pem";
/// File name of the public key written by [`keygen`] (SubjectPublicKeyInfo PEM).
pub const PUBLIC_KEY_FILE: &str = "relgate-signing.pub.pem";

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE { SEQUENCE { OID
/// 1.3.101.112 }, BIT STRING (33 bytes, 0 unused bits) } followed by the 32 key bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Identifier of a record signing key: lowercase hex SHA-256 of the DER SubjectPublicKeyInfo.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    /// The key id of an Ed25519 public key.
    pub fn of(key: &VerifyingKey) -> KeyId {
        key_id(&spki_der(key))
    }

    /// The hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Key id of a public key given as DER SubjectPublicKeyInfo: hex SHA-256 of those bytes.
pub fn key_id(spki_der: &[u8]) -> KeyId {
    KeyId(hex::encode(Sha256::digest(spki_der)))
}

/// DER SubjectPublicKeyInfo of an Ed25519 public key (44 bytes, RFC 8410).
pub(crate) fn spki_der(key: &VerifyingKey) -> Vec<u8> {
    let mut der = Vec::with_capacity(ED25519_SPKI_PREFIX.len() + 32);
    der.extend_from_slice(&ED25519_SPKI_PREFIX);
    der.extend_from_slice(key.as_bytes());
    der
}

/// Generates a new Ed25519 key pair in `out_dir` (created if needed): [`PRIVATE_KEY_FILE`]
/// (PKCS#8 PEM, mode 0600 on Unix) and [`PUBLIC_KEY_FILE`] (SPKI PEM). Refuses to overwrite
/// an existing key. Returns the key id.
pub fn keygen(out_dir: &Path) -> Result<KeyId, RecordError> {
    let signer = Signer::generate()?;
    fs::create_dir_all(out_dir).map_err(|e| RecordError::io(out_dir, e))?;
    let private_path = out_dir.join(PRIVATE_KEY_FILE);
    let public_path = out_dir.join(PUBLIC_KEY_FILE);
    for path in [&private_path, &public_path] {
        if path.exists() {
            return Err(RecordError::Key(format!(
                "{} already exists; refusing to overwrite a signing key",
                path.display()
            )));
        }
    }
    let private_pem = signer.private_key_pem()?;
    write_new_file(&private_path, private_pem.as_bytes(), 0o600)?;
    write_new_file(&public_path, signer.public_key_pem().as_bytes(), 0o644)?;
    Ok(signer.key_id().clone())
}

fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), RecordError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| RecordError::io(path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| RecordError::io(path, e))
}

/// A private record-signing key together with its key id.
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
    key_id: KeyId,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Signer, RecordError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| RecordError::Key(format!("no secure random source: {e}")))?;
        Ok(Signer::from_seed(seed))
    }

    /// The key with the given 32-byte Ed25519 seed (RFC 8032 private key).
    pub fn from_seed(seed: [u8; 32]) -> Signer {
        let key = SigningKey::from_bytes(&seed);
        let key_id = KeyId::of(&key.verifying_key());
        Signer { key, key_id }
    }

    /// Reads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`), as written by
    /// [`keygen`] or `openssl genpkey -algorithm ed25519`.
    pub(crate) fn from_pem(pem: &str) -> Result<Signer, RecordError> {
        let key = SigningKey::from_pkcs8_pem(pem.trim())
            .map_err(|e| RecordError::Key(format!("not an Ed25519 PKCS#8 PEM private key: {e}")))?;
        let key_id = KeyId::of(&key.verifying_key());
        Ok(Signer { key, key_id })
    }

    /// Reads a PKCS#8 PEM private key file.
    pub fn from_file(path: &Path) -> Result<Signer, RecordError> {
        let pem = fs::read_to_string(path).map_err(|e| RecordError::io(path, e))?;
        Signer::from_pem(&pem).map_err(|e| RecordError::Key(format!("{}: {}", path.display(), e)))
    }

    /// The key id (hex SHA-256 of the public key's DER SubjectPublicKeyInfo).
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The public key as SubjectPublicKeyInfo PEM.
    pub fn public_key_pem(&self) -> String {
        public_key_pem(&self.verifying_key())
    }

    /// The private key as PKCS#8 v1 PEM (the form `openssl genpkey` writes).
    pub fn private_key_pem(&self) -> Result<String, RecordError> {
        let keypair = ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.key.to_bytes(),
            public_key: None,
        };
        keypair
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.to_string())
            .map_err(|e| RecordError::Key(format!("cannot encode private key: {e}")))
    }

    /// Ed25519 signature over `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

/// SubjectPublicKeyInfo PEM of a public key.
pub fn public_key_pem(key: &VerifyingKey) -> String {
    match key.to_public_key_pem(LineEnding::LF) {
        Ok(pem) => pem,
        // Encoding a 32-byte key into a fixed-size SPKI cannot fail; fall back to encoding
        // the known DER by hand so this function stays infallible.
        Err(_) => {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD.encode(spki_der(key));
            format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
        }
    }
}

/// Parses a SubjectPublicKeyInfo PEM Ed25519 public key.
pub(crate) fn parse_public_key_pem(pem: &str) -> Result<VerifyingKey, RecordError> {
    let pem = pem.trim();
    if pem.contains("PRIVATE KEY-----") {
        return Err(RecordError::Key(
            "this is a PRIVATE key; trusted keys must be public keys (relgate-signing.pub.pem)"
                .into(),
        ));
    }
    let key = VerifyingKey::from_public_key_pem(pem)
        .map_err(|e| RecordError::Key(format!("not an Ed25519 SPKI PEM public key: {e}")))?;
    if key.is_weak() {
        return Err(RecordError::Key(
            "weak (small-order) Ed25519 public key; it cannot be trusted".into(),
        ));
    }
    Ok(key)
}

/// Subdirectory of a trusted-key directory holding retired (former) signing keys.
pub(crate) const RETIRED_DIR: &str = "retired";

/// The set of public keys an auditor trusts, by key id.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: BTreeMap<KeyId, VerifyingKey>,
    sources: BTreeMap<KeyId, PathBuf>,
}

impl TrustedKeys {
    /// An empty set.
    pub fn new() -> TrustedKeys {
        TrustedKeys::default()
    }

    /// Adds a key; returns its id.
    pub fn insert(&mut self, key: VerifyingKey) -> KeyId {
        let id = KeyId::of(&key);
        self.keys.insert(id.clone(), key);
        id
    }

    /// Adds a key given as SPKI PEM; returns its id.
    pub fn insert_pem(&mut self, pem: &str) -> Result<KeyId, RecordError> {
        Ok(self.insert(parse_public_key_pem(pem)?))
    }

    /// Loads every `*.pem` file of `dir` and of its `retired/` subdirectory (former signing
    /// keys, kept so the records they signed still verify; see docs/records.md, "Key
    /// rotation") as trusted public keys. A file that is not an Ed25519 public key (including a
    /// private key left there by mistake) is an error naming the file, so a misconfigured key
    /// directory never silently verifies less.
    pub fn load_dir(dir: &Path) -> Result<TrustedKeys, RecordError> {
        let mut paths = Vec::new();
        let retired = dir.join(RETIRED_DIR);
        for d in [dir, retired.as_path()] {
            if d == retired.as_path() {
                match fs::symlink_metadata(&retired) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        return Err(RecordError::Key(format!(
                            "{}: a symbolic link; retired keys are read only from a directory \
                             of regular files: copy them there instead of linking",
                            retired.display()
                        )))
                    }
                    Ok(meta) if meta.is_dir() => {}
                    _ => continue,
                }
            }
            let entries = fs::read_dir(d).map_err(|e| RecordError::io(d, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| RecordError::io(d, e))?;
                let path = entry.path();
                // `.PEM` too: a private key saved as `KEY.PEM` must be refused, not skipped.
                if !path
                    .extension()
                    .is_some_and(|ext| ext.eq_ignore_ascii_case("pem"))
                {
                    continue;
                }
                // The entry's own type, symlinks not followed: the trust root is the files in
                // the directory, not whatever a link points at (another user's file, a file
                // outside the repository that changes without a commit, a FIFO that would
                // hang the read).
                let kind = entry.file_type().map_err(|e| RecordError::io(&path, e))?;
                if kind.is_symlink() {
                    return Err(RecordError::Key(format!(
                        "{}: a symbolic link; trusted keys are read only from regular files in \
                         the key directory: copy the public key there instead of linking it",
                        path.display()
                    )));
                }
                if kind.is_file() {
                    paths.push(path);
                }
            }
        }
        paths.sort();
        let mut keys = TrustedKeys::new();
        for path in paths {
            let bytes = super::ledger::read_file_capped(&path)
                .map_err(|e| RecordError::Key(format!("{}: cannot read: {e}", path.display())))?;
            let pem = String::from_utf8(bytes).map_err(|_| {
                RecordError::Key(format!(
                    "{}: not UTF-8 text, so not a PEM public key",
                    path.display()
                ))
            })?;
            let key = parse_public_key_pem(&pem)
                .map_err(|e| RecordError::Key(format!("{}: {}", path.display(), e)))?;
            let id = keys.insert(key);
            keys.sources.insert(id, path);
        }
        Ok(keys)
    }

    /// The key with this id.
    pub fn get(&self, id: &str) -> Option<&VerifyingKey> {
        // KeyId orders like its string, so a borrowed lookup is a range-free map get.
        self.keys.get(&KeyId(id.to_owned()))
    }

    /// The file a key was loaded from, when it came from [`TrustedKeys::load_dir`].
    pub fn source(&self, id: &KeyId) -> Option<&Path> {
        self.sources.get(id).map(PathBuf::as_path)
    }

    /// All keys, by id.
    pub fn iter(&self) -> impl Iterator<Item = (&KeyId, &VerifyingKey)> {
        self.keys.iter()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_matches_der_encoder() {
        let signer = Signer::from_seed([7; 32]);
        let der = signer
            .verifying_key()
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec());
        assert_eq!(der.ok(), Some(spki_der(&signer.verifying_key())));
    }

    #[test]
    fn pem_round_trip() {
        let signer = Signer::from_seed([9; 32]);
        let pem = signer.private_key_pem().expect("encodes");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = Signer::from_pem(&pem).map(|s| s.key_id().clone()).ok();
        assert_eq!(back.as_ref(), Some(signer.key_id()));
        let mut keys = TrustedKeys::new();
        let id = keys.insert_pem(&signer.public_key_pem()).ok();
        assert_eq!(id.as_ref(), Some(signer.key_id()));
        assert!(
            keys.insert_pem(&pem).is_err(),
            "private key accepted as trusted"
        );
    }

    #[cfg(unix)]
    #[test]
    fn load_dir_refuses_symlinked_keys_and_fifos_never_hang_it() {
        use std::os::unix::fs::symlink;
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("keys");
        fs::create_dir(&dir).expect("dir");
        let signer = Signer::from_seed([3; 32]);
        fs::write(dir.join("a.pem"), signer.public_key_pem()).expect("write");
        assert_eq!(TrustedKeys::load_dir(&dir).map(|k| k.len()).ok(), Some(1));

        // A link to a key outside the directory: refused by name, not followed.
        let outside = tmp.path().join("elsewhere.pem");
        fs::write(&outside, Signer::from_seed([4; 32]).public_key_pem()).expect("write");
        symlink(&outside, dir.join("b.pem")).expect("link");
        let err = TrustedKeys::load_dir(&dir)
            .map(|k| k.len())
            .expect_err("a linked key is refused");
        assert!(err.to_string().contains("b.pem: a symbolic link"), "{err}");
        fs::remove_file(dir.join("b.pem")).expect("rm");

        // A linked retired/ directory too.
        let other = tmp.path().join("other");
        fs::create_dir(&other).expect("dir");
        symlink(&other, dir.join(RETIRED_DIR)).expect("link");
        let err = TrustedKeys::load_dir(&dir)
            .map(|k| k.len())
            .expect_err("a linked key is refused");
        assert!(err.to_string().contains("a symbolic link"), "{err}");
        fs::remove_file(dir.join(RETIRED_DIR)).expect("rm");

        // A private key saved as KEY.PEM is refused like key.pem, not skipped.
        fs::write(
            dir.join("LEAKED.PEM"),
            signer.private_key_pem().expect("pem"),
        )
        .expect("write");
        let err = TrustedKeys::load_dir(&dir)
            .map(|k| k.len())
            .expect_err("a private key is refused");
        assert!(err.to_string().contains("LEAKED.PEM"), "{err}");
        fs::remove_file(dir.join("LEAKED.PEM")).expect("rm");

        // A FIFO named *.pem is not a regular file: skipped, never opened (opening one for
        // reading would wait for a writer forever).
        let fifo = dir.join("c.pem");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        assert_eq!(TrustedKeys::load_dir(&dir).map(|k| k.len()).ok(), Some(1));
    }
}
