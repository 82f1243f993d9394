//! The ledger's `CHECKPOINT`: a transparency-log checkpoint (origin, tree size, base64 RFC 6962
//! root, optional extension lines) wrapped in a signed note in the format of Go's
//! `golang.org/x/mod/sumdb/note` (C2SP signed-note): body, blank line, then signature lines
//! `— <name> <base64(4-byte key hash || Ed25519 signature)>`. The origin names the ledger
//! (`relgate.dev/ledger/<id>`), so a checkpoint copied from another ledger is detected.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use super::keys::{KeyId, Signer, TrustedKeys};
use super::merkle::Hash;

/// Prefix of every default ledger origin.
pub(crate) const ORIGIN_PREFIX: &str = "relgate.dev/ledger/";

/// Signature algorithm byte of Ed25519 note keys.
const ALG_ED25519: u8 = 1;

/// Largest checkpoint note read.
pub(crate) const MAX_CHECKPOINT_BYTES: usize = 64 * 1024;

/// The unsigned content of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    /// Names the ledger; no spaces, `+` or newlines.
    pub origin: String,
    /// Number of records covered.
    pub size: u64,
    /// RFC 6962 root hash of the first `size` record payloads.
    pub root: Hash,
    /// Extra body lines after the root (kept and signed, not interpreted).
    pub extensions: Vec<String>,
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NoteSignature {
    /// Key name.
    pub name: String,
    /// First 4 bytes of SHA-256(name || "\n" || 0x01 || public key).
    pub key_hash: [u8; 4],
    /// The signature bytes (64 for Ed25519).
    pub signature: Vec<u8>,
}

/// A checkpoint whose note signature verified under a trusted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VerifiedCheckpoint {
    /// The content.
    pub checkpoint: Checkpoint,
    /// The trusted key that signed it.
    pub key_id: KeyId,
}

/// Why a checkpoint was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CheckpointError {
    /// Not a well-formed signed note or checkpoint body.
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    /// No signature line is by a trusted key.
    #[error("checkpoint is not signed by a trusted key (signers: {0})")]
    Untrusted(String),
    /// A signature line by a trusted key does not verify.
    #[error("checkpoint signature by {0} does not verify (checkpoint altered)")]
    BadSignature(String),
}

impl Checkpoint {
    /// The note body: `<origin>\n<size>\n<base64 root>\n` plus extension lines.
    pub(crate) fn body(&self) -> String {
        let mut out = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        for ext in &self.extensions {
            out.push_str(ext);
            out.push('\n');
        }
        out
    }

    /// Parses a note body.
    pub(crate) fn parse_body(body: &str) -> Result<Checkpoint, CheckpointError> {
        let bad = |m: &str| CheckpointError::Malformed(m.to_owned());
        let Some(without_last) = body.strip_suffix('\n') else {
            return Err(bad("body does not end with a newline"));
        };
        let mut lines = without_last.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() || origin.contains(char::is_whitespace) {
            return Err(bad("origin line is empty or contains spaces"));
        }
        let size_line = lines.next().ok_or_else(|| bad("no tree size line"))?;
        if size_line.is_empty()
            || !size_line.bytes().all(|b| b.is_ascii_digit())
            || (size_line.len() > 1 && size_line.starts_with('0'))
        {
            return Err(bad("tree size is not a canonical decimal number"));
        }
        let size: u64 = size_line
            .parse()
            .map_err(|_| bad("tree size does not fit in 64 bits"))?;
        let root_line = lines.next().ok_or_else(|| bad("no root hash line"))?;
        let root_bytes = B64
            .decode(root_line)
            .map_err(|_| bad("root hash is not standard base64"))?;
        let root: Hash = root_bytes
            .try_into()
            .map_err(|_| bad("root hash is not 32 bytes"))?;
        let mut extensions = Vec::new();
        for ext in lines {
            if ext.is_empty() {
                return Err(bad("empty extension line"));
            }
            extensions.push(ext.to_owned());
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }

    /// Signs the checkpoint as a note whose signer name is the origin.
    pub(crate) fn sign(&self, signer: &Signer) -> String {
        let body = self.body();
        let key = signer.verifying_key();
        let sig = signer.sign(body.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&note_key_hash(&self.origin, &key));
        blob.extend_from_slice(&sig);
        format!("{body}\n\u{2014} {} {}\n", self.origin, B64.encode(blob))
    }
}

/// The 4-byte note key hash: first bytes of SHA-256(name || "\n" || 0x01 || public key).
pub(crate) fn note_key_hash(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(key.as_bytes());
    let sum = h.finalize();
    [sum[0], sum[1], sum[2], sum[3]]
}

/// The Go `note` verifier key string `<name>+<hex key hash>+<base64(0x01 || key)>`, so the
/// checkpoint can also be checked with `golang.org/x/mod/sumdb/note` tooling.
pub(crate) fn verifier_key_string(name: &str, key: &VerifyingKey) -> String {
    let mut material = vec![ALG_ED25519];
    material.extend_from_slice(key.as_bytes());
    format!(
        "{name}+{}+{}",
        hex::encode(note_key_hash(name, key)),
        B64.encode(material)
    )
}

/// Splits a signed note into its body (ending in a newline) and signature lines. Follows
/// `note.Open`: UTF-8, no control characters but newline, the signature block after the
/// last blank line, every signature line `— name base64`.
pub(crate) fn parse_note(text: &str) -> Result<(String, Vec<NoteSignature>), CheckpointError> {
    let bad = |m: &str| CheckpointError::Malformed(m.to_owned());
    if text.len() > MAX_CHECKPOINT_BYTES {
        return Err(bad("note is too large"));
    }
    if text.chars().any(|c| (c as u32) < 0x20 && c != '\n') {
        return Err(bad("note contains control characters"));
    }
    let split = text
        .rfind("\n\n")
        .ok_or_else(|| bad("no blank line before the signatures"))?;
    let body = &text[..split + 1];
    let sigs = &text[split + 2..];
    if sigs.is_empty() || !sigs.ends_with('\n') {
        return Err(bad("signature block missing or not newline-terminated"));
    }
    let mut out = Vec::new();
    for line in sigs[..sigs.len() - 1].split('\n') {
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or_else(|| bad("signature line does not start with an em dash"))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or_else(|| bad("signature line has no key name"))?;
        if name.is_empty() || name.contains('+') {
            return Err(bad("invalid key name in signature line"));
        }
        let blob = B64
            .decode(b64)
            .map_err(|_| bad("signature is not standard base64"))?;
        if blob.len() < 5 {
            return Err(bad("signature is too short"));
        }
        out.push(NoteSignature {
            name: name.to_owned(),
            key_hash: [blob[0], blob[1], blob[2], blob[3]],
            signature: blob[4..].to_vec(),
        });
    }
    Ok((body.to_owned(), out))
}

/// Verifies a signed checkpoint: at least one signature line must verify under a trusted key
/// (matched by name and key hash); any trusted key whose signature fails is tampering.
pub(crate) fn open_checkpoint(
    text: &str,
    keys: &TrustedKeys,
) -> Result<VerifiedCheckpoint, CheckpointError> {
    let (body, sigs) = parse_note(text)?;
    let checkpoint = Checkpoint::parse_body(&body)?;
    let mut failure = None;
    for s in &sigs {
        for (id, key) in keys.iter() {
            if note_key_hash(&s.name, key) != s.key_hash {
                continue;
            }
            let ok = Signature::from_slice(&s.signature)
                .map(|sig| key.verify_strict(body.as_bytes(), &sig).is_ok())
                .unwrap_or(false);
            if ok {
                return Ok(VerifiedCheckpoint {
                    checkpoint,
                    key_id: id.clone(),
                });
            }
            failure.get_or_insert_with(|| CheckpointError::BadSignature(id.to_string()));
        }
    }
    Err(failure.unwrap_or_else(|| {
        let names: Vec<String> = sigs
            .iter()
            .map(|s| format!("{}+{}", s.name, hex::encode(s.key_hash)))
            .collect();
        CheckpointError::Untrusted(names.join(", "))
    }))
}

/// The default origin of a ledger: [`ORIGIN_PREFIX`] followed by the first 16 hex digits of
/// the SHA-256 of its first record's payload. Ledgers with different first records therefore
/// have different origins.
pub(crate) fn default_origin(genesis_payload_sha256: &Hash) -> String {
    format!(
        "{ORIGIN_PREFIX}{}",
        &hex::encode(genesis_payload_sha256)[..16]
    )
}

/// Checks an origin is usable as a note name: non-empty, printable, no spaces or `+`.
pub(crate) fn validate_origin(origin: &str) -> Result<(), CheckpointError> {
    if origin.is_empty()
        || origin.contains('+')
        || origin.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(CheckpointError::Malformed(format!(
            "origin {origin:?} must be non-empty without spaces, '+' or control characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test vector of golang.org/x/mod/sumdb/note (note_test.go / package doc example).
    const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const GO_SIG: &str = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=";

    fn go_signer() -> Signer {
        let material = GO_SKEY.splitn(5, '+').nth(4).expect("five fields");
        let bytes = B64.decode(material).expect("base64");
        assert_eq!(bytes[0], ALG_ED25519);
        let seed: [u8; 32] = bytes[1..].try_into().expect("32-byte seed");
        Signer::from_seed(seed)
    }

    #[test]
    fn reproduces_go_note_signature() {
        let signer = go_signer();
        let key = signer.verifying_key();
        assert_eq!(verifier_key_string("PeterNeumann", &key), GO_VKEY);

        let mut blob = note_key_hash("PeterNeumann", &key).to_vec();
        blob.extend_from_slice(&signer.sign(GO_TEXT.as_bytes()));
        assert_eq!(B64.encode(&blob), GO_SIG);

        let note = format!("{GO_TEXT}\n\u{2014} PeterNeumann {GO_SIG}\n");
        let (body, sigs) = parse_note(&note).expect("Go note parses");
        assert_eq!(body, GO_TEXT);
        assert_eq!(sigs.len(), 1);
        assert_eq!(hex::encode(sigs[0].key_hash), "c74f20a3");
    }

    #[test]
    fn checkpoint_round_trip_and_tamper() {
        let signer = go_signer();
        let mut keys = TrustedKeys::new();
        keys.insert(signer.verifying_key());
        let cp = Checkpoint {
            origin: "relgate.dev/ledger/0123456789abcdef".into(),
            size: 42,
            root: [7; 32],
            extensions: vec![],
        };
        let text = cp.sign(&signer);
        let opened = open_checkpoint(&text, &keys).expect("verifies");
        assert_eq!(opened.checkpoint, cp);

        let tampered = text.replacen("\n42\n", "\n41\n", 1);
        assert!(matches!(
            open_checkpoint(&tampered, &keys),
            Err(CheckpointError::BadSignature(_))
        ));
        let mut other = TrustedKeys::new();
        other.insert(Signer::from_seed([3; 32]).verifying_key());
        assert!(matches!(
            open_checkpoint(&text, &other),
            Err(CheckpointError::Untrusted(_))
        ));
        for junk in ["", "x\n", "a\n1\nAAAA\n\n\u{2014} a AAAA\n", "a\n01\n"] {
            assert!(open_checkpoint(junk, &keys).is_err(), "{junk:?} accepted");
        }
    }
}
