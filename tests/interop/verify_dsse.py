#!/usr/bin/env python3
"""Independent check of relgate change records with securesystemslib's DSSE implementation.

Usage: verify_dsse.py PUBLIC_KEY_PEM ENVELOPE_JSON [ENVELOPE_JSON ...]

For each envelope: parse it with securesystemslib.dsse.Envelope, verify it with an SSlibKey
(ed25519) built from the SPKI PEM public key, whose keyid is computed here independently as
hex SHA-256 of the DER SubjectPublicKeyInfo, check payloadType and that the payload is an
in-toto Statement v1 with a SLSA VSA v1 predicate. Prints one JSON line per envelope.

Exit codes: 0 all verified, 1 some envelope did not verify, 3 securesystemslib (with its
crypto extra) is not installed: `pip install 'securesystemslib[crypto]'`.
"""

import hashlib
import json
import sys

try:
    from cryptography.hazmat.primitives import serialization
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import SSlibKey
except ImportError as exc:  # pragma: no cover - exercised when the package is missing
    print(
        f"securesystemslib[crypto] is not installed ({exc}); "
        "run: pip install 'securesystemslib[crypto]'",
        file=sys.stderr,
    )
    sys.exit(3)

PAYLOAD_TYPE = "application/vnd.in-toto+json"


def load_key(path):
    with open(path, "rb") as f:
        public = serialization.load_pem_public_key(f.read())
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    keyid = hashlib.sha256(der).hexdigest()
    return SSlibKey.from_crypto(public, keyid=keyid, scheme="ed25519"), keyid


def check(path, key):
    with open(path, "rb") as f:
        data = json.loads(f.read().decode("utf-8"))
    envelope = Envelope.from_dict(data)
    if envelope.payload_type != PAYLOAD_TYPE:
        raise ValueError(f"payloadType {envelope.payload_type!r}")
    accepted = envelope.verify([key], 1)
    statement = json.loads(envelope.payload.decode("utf-8"))
    if statement.get("_type") != "https://in-toto.io/Statement/v1":
        raise ValueError("not an in-toto Statement v1")
    if statement.get("predicateType") != "https://slsa.dev/verification_summary/v1":
        raise ValueError("not a SLSA VSA v1")
    change = statement["predicate"]["https://relgate.dev/change/v1"]
    return {
        "file": path,
        "verified": True,
        "keyids": sorted(accepted),
        "seq": change["seq"],
        "payload_sha256": hashlib.sha256(envelope.payload).hexdigest(),
    }


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    key, keyid = load_key(argv[1])
    failed = False
    for path in argv[2:]:
        try:
            print(json.dumps(check(path, key)))
        except Exception as exc:  # noqa: BLE001 - report every failure the same way
            failed = True
            print(json.dumps({"file": path, "verified": False, "keyid": keyid, "error": repr(exc)}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
