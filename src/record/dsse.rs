//! DSSE envelopes (Dead Simple Signing Envelope v1) for change records: the JSON envelope
//! `{payloadType, payload, signatures: [{keyid, sig}]}` with standard base64, the
//! pre-authentication encoding (PAE) that is signed, and Ed25519 signing and verification of
//! it against trusted keys. Parsing hostile bytes never panics: every defect is a [`DsseError`].

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::Signature;
use serde::{Deserialize, Serialize};

use super::keys::{KeyId, Signer, TrustedKeys};

/// The only payload type relgate writes and accepts.
pub(crate) const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Largest envelope file verification reads; bigger files are reported, not read.
pub const MAX_ENVELOPE_BYTES: u64 = 8 * 1024 * 1024;

/// A DSSE envelope as stored in a record file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Media type of the payload; must be [`PAYLOAD_TYPE`].
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Standard base64 (with padding) of the payload bytes.
    pub payload: String,
    /// Signatures over the PAE of payload type and payload.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One DSSE signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// Key id hint (hex SHA-256 of the signer's DER SPKI). Optional in DSSE.
    #[serde(default)]
    pub keyid: String,
    /// Standard base64 of the 64-byte Ed25519 signature.
    pub sig: String,
}

/// Why an envelope could not be read or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsseError {
    /// The file is larger than [`MAX_ENVELOPE_BYTES`].
    #[error("envelope is {size} bytes, above the {limit}-byte limit")]
    TooLarge {
        /// Actual size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The bytes are not UTF-8 (JSON must be).
    #[error("envelope is not UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// Not a JSON DSSE envelope (truncated, wrong shape, missing fields).
    #[error("envelope is not valid DSSE JSON: {0}")]
    Json(String),
    /// `payloadType` is not [`PAYLOAD_TYPE`].
    #[error("payloadType is {0:?}, expected {PAYLOAD_TYPE:?}")]
    WrongPayloadType(String),
    /// `payload` or a `sig` is not standard base64.
    #[error("{field} is not valid standard base64: {detail}")]
    BadBase64 {
        /// Which field.
        field: String,
        /// Decoder message.
        detail: String,
    },
    /// The envelope has no signature.
    #[error("envelope has no signatures")]
    NoSignatures,
    /// No signature is by a trusted key.
    #[error("signed only by untrusted key(s): {}", .0.join(", "))]
    UntrustedKey(Vec<String>),
    /// A signature by a trusted key does not verify over the PAE.
    #[error("signature by trusted key {keyid} does not verify (payload or signature altered)")]
    BadSignature {
        /// The key whose signature failed.
        keyid: String,
    },
}

/// PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths in decimal
/// bytes.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let type_len = payload_type.len().to_string();
    let body_len = payload.len().to_string();
    let mut out = Vec::with_capacity(
        10 + type_len.len() + payload_type.len() + body_len.len() + payload.len(),
    );
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(type_len.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(body_len.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// Signs `payload` (an in-toto Statement) into an envelope of type [`PAYLOAD_TYPE`].
pub fn sign_payload(payload: &[u8], signer: &Signer) -> Envelope {
    let sig = signer.sign(&pae(PAYLOAD_TYPE, payload));
    Envelope {
        payload_type: PAYLOAD_TYPE.to_owned(),
        payload: B64.encode(payload),
        signatures: vec![EnvelopeSignature {
            keyid: signer.key_id().to_string(),
            sig: B64.encode(sig),
        }],
    }
}

/// A verified envelope: the payload bytes and the trusted key that signed them.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Decoded payload bytes (what the record chain hashes).
    pub payload: Vec<u8>,
    /// The trusted key whose signature verified.
    pub key_id: KeyId,
}

impl Envelope {
    /// Parses an envelope file: size cap, UTF-8, JSON shape, and the exact payload type.
    pub fn from_slice(bytes: &[u8]) -> Result<Envelope, DsseError> {
        let size = bytes.len() as u64;
        if size > MAX_ENVELOPE_BYTES {
            return Err(DsseError::TooLarge {
                size,
                limit: MAX_ENVELOPE_BYTES,
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| DsseError::NotUtf8 {
            offset: e.valid_up_to(),
        })?;
        let env: Envelope =
            serde_json::from_str(text).map_err(|e| DsseError::Json(e.to_string()))?;
        if env.payload_type != PAYLOAD_TYPE {
            return Err(DsseError::WrongPayloadType(env.payload_type));
        }
        Ok(env)
    }

    /// The envelope as the pretty JSON written to record files (ends with a newline).
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing a struct of strings cannot fail; an empty fallback is never reached.
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Decodes the base64 payload.
    pub fn decode_payload(&self) -> Result<Vec<u8>, DsseError> {
        B64.decode(self.payload.as_bytes())
            .map_err(|e| DsseError::BadBase64 {
                field: "payload".into(),
                detail: e.to_string(),
            })
    }

    /// The PAE bytes the signatures cover.
    pub fn pae(&self) -> Result<Vec<u8>, DsseError> {
        Ok(pae(&self.payload_type, &self.decode_payload()?))
    }

    /// Verifies the envelope against trusted keys. It is valid when at least one signature
    /// verifies under a trusted key (DSSE threshold 1). A signature whose keyid is empty is
    /// tried against every trusted key. Untrusted signatures alone give
    /// [`DsseError::UntrustedKey`]; a failing signature of a trusted key gives
    /// [`DsseError::BadSignature`].
    pub fn verify(&self, keys: &TrustedKeys) -> Result<Verified, DsseError> {
        let payload = self.decode_payload()?;
        if self.payload_type != PAYLOAD_TYPE {
            return Err(DsseError::WrongPayloadType(self.payload_type.clone()));
        }
        if self.signatures.is_empty() {
            return Err(DsseError::NoSignatures);
        }
        let message = pae(&self.payload_type, &payload);
        let mut untrusted = Vec::new();
        let mut first_failure: Option<DsseError> = None;
        for s in &self.signatures {
            let raw = B64
                .decode(s.sig.as_bytes())
                .map_err(|e| DsseError::BadBase64 {
                    field: "signatures[].sig".into(),
                    detail: e.to_string(),
                })?;
            let candidates: Vec<(KeyId, &ed25519_dalek::VerifyingKey)> = if s.keyid.is_empty() {
                keys.iter().map(|(id, k)| (id.clone(), k)).collect()
            } else {
                match keys.get(&s.keyid) {
                    Some(k) => vec![(KeyId::of(k), k)],
                    None => {
                        untrusted.push(s.keyid.clone());
                        continue;
                    }
                }
            };
            let Ok(sig) = Signature::from_slice(&raw) else {
                first_failure.get_or_insert(DsseError::BadSignature {
                    keyid: s.keyid.clone(),
                });
                continue;
            };
            for (id, key) in candidates {
                if key.verify_strict(&message, &sig).is_ok() {
                    return Ok(Verified {
                        payload,
                        key_id: id,
                    });
                }
                first_failure.get_or_insert(DsseError::BadSignature {
                    keyid: id.to_string(),
                });
            }
        }
        Err(first_failure.unwrap_or(DsseError::UntrustedKey(untrusted)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_spec_example() {
        // The DSSE protocol document's worked example.
        let got = pae("http://example.com/HelloWorld", b"hello world");
        assert_eq!(
            got,
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn sign_then_verify() {
        let signer = Signer::from_seed([1; 32]);
        let mut keys = TrustedKeys::new();
        keys.insert(signer.verifying_key());
        let env = sign_payload(b"{\"a\":1}", &signer);
        let parsed = Envelope::from_slice(&env.to_json());
        assert_eq!(parsed.as_ref(), Ok(&env));
        let verified = env.verify(&keys).map(|v| v.payload);
        assert_eq!(verified, Ok(b"{\"a\":1}".to_vec()));

        let mut other = TrustedKeys::new();
        other.insert(Signer::from_seed([2; 32]).verifying_key());
        assert!(matches!(
            env.verify(&other),
            Err(DsseError::UntrustedKey(_))
        ));

        let mut tampered = env.clone();
        tampered.payload = B64.encode(b"{\"a\":2}");
        assert!(matches!(
            tampered.verify(&keys),
            Err(DsseError::BadSignature { .. })
        ));
    }

    #[test]
    fn hostile_bytes_are_errors() {
        assert!(matches!(
            Envelope::from_slice(b"{\"payloadType\":"),
            Err(DsseError::Json(_))
        ));
        assert!(matches!(
            Envelope::from_slice(&[b'{', 0xff, b'}']),
            Err(DsseError::NotUtf8 { offset: 1 })
        ));
        assert!(matches!(
            Envelope::from_slice(br#"{"payloadType":"text/plain","payload":"","signatures":[]}"#),
            Err(DsseError::WrongPayloadType(_))
        ));
    }
}
