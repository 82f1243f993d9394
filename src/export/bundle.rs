//! `relgate export --bundle FILE.tar.gz`: everything an auditor needs to check the ledger
//! offline, in one deterministic archive.
//!
//! | file | content |
//! | --- | --- |
//! | `envelopes.jsonl` | every record's DSSE envelope, one per line in seq order (line n = record n): the stored JSON with its whitespace removed, fields and values unchanged |
//! | `keys/<keyid>.pem` | the trusted public keys (SPKI PEM), named by key id |
//! | `CHECKPOINT` | the ledger's signed checkpoint as stored |
//! | `verification.json` | the [`VerifyReport`] of the export, as `relgate verify --format json` prints it |
//! | `export.csv` | the exported rows (the same filter as the export) |
//! | `report.html` | the self-contained HTML report of the same rows (KPIs, charts, per service) |
//! | `VERIFY.md` | how to verify the bundle, step by step, with relgate and with standard tools; every step uses only the key ids it pins (the keys trusted at export), never whatever key file the bundle holds |
//! | `merkle-root.sh` | recomputes the RFC 6962 Merkle root of the record payloads with bash, coreutils and jq (VERIFY.md step 5) |
//! | `SHA256SUMS` | `sha256sum` lines for every other file |
//!
//! Deterministic: entries sorted by path, mode 0644, uid/gid 0, mtime 0, no user names, gzip
//! header without time or name, so the same ledger, keys, filter and time give the same bytes.
//! The large members (`envelopes.jsonl`, `export.csv`) are streamed to temporary files beside
//! the target while the ledger is read, hashed as they are written, then copied into the
//! archive; the archive is written to a temporary file and renamed into place, so a failed
//! export never leaves a partial bundle.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};

use super::csv::CsvRows;
use super::ExportRow;
use crate::record::checkpoint::verifier_key_string;
use crate::record::keys::{public_key_pem, TrustedKeys};
use crate::record::verify::{VerifyReport, VerifyStatus};

/// The name of each member.
pub(crate) const ENVELOPES: &str = "envelopes.jsonl";
/// Keys directory in the bundle.
pub(crate) const KEYS_DIR: &str = "keys";
/// The checkpoint.
pub(crate) const CHECKPOINT: &str = "CHECKPOINT";
/// The verification report.
pub(crate) const VERIFICATION: &str = "verification.json";
/// The CSV rows.
pub(crate) const CSV: &str = "export.csv";
/// The HTML report.
pub(crate) const REPORT_HTML: &str = "report.html";
/// The instructions.
pub(crate) const VERIFY_MD: &str = "VERIFY.md";
/// The checksums.
pub(crate) const SHA256SUMS: &str = "SHA256SUMS";
/// The Merkle-root script.
pub(crate) const MERKLE_SH: &str = "merkle-root.sh";
/// Where VERIFY.md copies the pinned keys (never a member of the bundle).
const PINNED_DIR: &str = "pinned-keys";

/// `merkle-root.sh`: the RFC 6962 root (leaf `SHA-256(0x00 || payload)`, node
/// `SHA-256(0x01 || left || right)`) of the payloads of an envelopes file, base64 as in
/// `CHECKPOINT`. Level by level, an odd last node moving up unchanged: for n leaves that is
/// the tree RFC 6962 defines (split at the largest power of two below n).
const MERKLE_SCRIPT: &str = r#"#!/usr/bin/env bash
# Prints the RFC 6962 Merkle root (base64) of the record payloads of an envelopes file, one
# DSSE envelope per line: leaf = SHA-256(0x00 || payload), node = SHA-256(0x01 || left || right).
# Needs bash, coreutils (sha256sum, base64, od) and jq. Usage: bash merkle-root.sh envelopes.jsonl
set -euo pipefail
bin() { printf '%b' "$(printf '%s' "$1" | sed 's/../\\x&/g')"; }
level=()
while IFS= read -r payload; do
  level+=("$({ printf '\000'; printf '%s' "$payload" | base64 -d; } | sha256sum | cut -c1-64)")
done < <(jq -r .payload "${1:-envelopes.jsonl}")
[ "${#level[@]}" -gt 0 ] || { echo "no records" >&2; exit 1; }
while [ "${#level[@]}" -gt 1 ]; do
  next=()
  for ((i = 0; i + 1 < ${#level[@]}; i += 2)); do
    next+=("$({ printf '\001'; bin "${level[i]}"; bin "${level[i + 1]}"; } | sha256sum | cut -c1-64)")
  done
  if (( ${#level[@]} % 2 )); then next+=("${level[${#level[@]} - 1]}"); fi
  level=("${next[@]}")
done
bin "${level[0]}" | base64
"#;

/// A file being written that hashes and counts its bytes.
struct HashingFile {
    path: PathBuf,
    file: BufWriter<File>,
    hasher: Sha256,
    len: u64,
}

impl HashingFile {
    fn create(path: PathBuf) -> io::Result<HashingFile> {
        let file = File::create(&path).map_err(|e| at(&path, e))?;
        Ok(HashingFile {
            path,
            file: BufWriter::with_capacity(256 * 1024, file),
            hasher: Sha256::new(),
            len: 0,
        })
    }

    fn close(mut self) -> io::Result<Member> {
        self.file.flush().map_err(|e| at(&self.path, e))?;
        Ok(Member {
            sha256: hex::encode(self.hasher.finalize()),
            len: self.len,
            content: Content::File(self.path),
        })
    }
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

enum Content {
    Memory(Vec<u8>),
    File(PathBuf),
}

struct Member {
    sha256: String,
    len: u64,
    content: Content,
}

impl Member {
    fn memory(bytes: Vec<u8>) -> Member {
        Member {
            sha256: hex::encode(Sha256::digest(&bytes)),
            len: bytes.len() as u64,
            content: Content::Memory(bytes),
        }
    }
}

fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// A temporary directory beside the bundle, removed when dropped.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        // Best effort: a leftover temporary directory is harmless and named as such.
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// What VERIFY.md says about where the bundle came from.
#[derive(Debug, Clone)]
pub struct BundleInfo {
    /// When the export ran (RFC 3339).
    pub generated_at: String,
    /// The filter of `export.csv`, in words (`none`).
    pub filter: String,
    /// The same filter as `relgate export` flags (`--since 2026-07-01 ...`), for the command
    /// in VERIFY.md that rebuilds `export.csv` from the envelopes.
    pub filter_args: Vec<String>,
}

/// A word for a POSIX shell command line, single-quoted when it needs to be.
fn shell_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:+/@=".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Builds a bundle while the ledger is read: [`Bundle::add_envelope`] for every record,
/// [`Bundle::add_row`] for every exported row, then [`Bundle::finish`].
pub struct Bundle {
    target: PathBuf,
    work: WorkDir,
    envelopes: HashingFile,
    csv: CsvRows<HashingFile>,
    envelope_count: u64,
    row_count: u64,
    /// The rows again, for `report.html`: the report aggregates (weeks, services, the median
    /// time to pass), so unlike the CSV it needs them all; a bundle's memory grows with the
    /// exported rows (~0.3 KiB each), the CSV/JSONL export's does not.
    rows: Vec<ExportRow>,
}

impl Bundle {
    /// Starts the bundle that [`Bundle::finish`] writes to `target`.
    pub fn create(target: &Path) -> io::Result<Bundle> {
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is not a file name", target.display()),
                )
            })?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let work = parent.join(format!(".{name}.tmp-{}-{nanos}", std::process::id()));
        fs::create_dir(&work).map_err(|e| at(&work, e))?;
        let work = WorkDir(work);
        let envelopes = HashingFile::create(work.0.join(ENVELOPES))?;
        let csv = CsvRows::new(HashingFile::create(work.0.join(CSV))?)?;
        Ok(Bundle {
            target: target.to_path_buf(),
            work,
            envelopes,
            csv,
            envelope_count: 0,
            row_count: 0,
            rows: Vec::new(),
        })
    }

    /// Adds the next record's envelope line (see [`envelope_line`]).
    pub(crate) fn add_envelope(&mut self, line: &[u8]) -> io::Result<()> {
        self.envelopes.write_all(line)?;
        self.envelopes.write_all(b"\n")?;
        self.envelope_count += 1;
        Ok(())
    }

    /// Adds a row to `export.csv`.
    pub(crate) fn add_row(&mut self, row: &ExportRow) -> io::Result<()> {
        self.row_count += 1;
        self.rows.push(row.clone());
        self.csv.write(row)
    }

    /// Writes the archive: the streamed members, the keys, the checkpoint as stored, the
    /// report, VERIFY.md and SHA256SUMS.
    pub fn finish(
        self,
        report: &VerifyReport,
        keys: &TrustedKeys,
        checkpoint: Option<&[u8]>,
        info: &BundleInfo,
    ) -> io::Result<()> {
        let mut members: Vec<(String, Member)> = vec![
            (ENVELOPES.to_owned(), self.envelopes.close()?),
            (CSV.to_owned(), self.csv.finish()?.close()?),
        ];
        for (id, key) in keys.iter() {
            members.push((
                format!("{KEYS_DIR}/{id}.pem"),
                Member::memory(public_key_pem(key).into_bytes()),
            ));
        }
        if let Some(cp) = checkpoint {
            members.push((CHECKPOINT.to_owned(), Member::memory(cp.to_vec())));
        }
        let mut html = Vec::new();
        super::html::write_html(&mut html, &self.rows, report, &info.generated_at)?;
        members.push((REPORT_HTML.to_owned(), Member::memory(html)));
        let mut json = serde_json::to_vec_pretty(report).map_err(io::Error::from)?;
        json.push(b'\n');
        members.push((VERIFICATION.to_owned(), Member::memory(json)));
        let counts = Counts {
            envelopes: self.envelope_count,
            rows: self.row_count,
            has_checkpoint: checkpoint.is_some(),
        };
        members.push((
            VERIFY_MD.to_owned(),
            Member::memory(verify_md(report, keys, info, &counts).into_bytes()),
        ));
        members.push((
            MERKLE_SH.to_owned(),
            Member::memory(MERKLE_SCRIPT.as_bytes().to_vec()),
        ));
        members.sort_by(|a, b| a.0.cmp(&b.0));
        let mut sums = String::new();
        for (name, member) in &members {
            sums.push_str(&format!("{}  {name}\n", member.sha256));
        }
        members.push((SHA256SUMS.to_owned(), Member::memory(sums.into_bytes())));
        members.sort_by(|a, b| a.0.cmp(&b.0));

        let tmp = self.work.0.join("bundle.tar.gz");
        write_archive(&tmp, &members)?;
        fs::rename(&tmp, &self.target).map_err(|e| at(&self.target, e))?;
        Ok(())
    }
}

fn write_archive(path: &Path, members: &[(String, Member)]) -> io::Result<()> {
    let file = File::create(path).map_err(|e| at(path, e))?;
    let gz = GzBuilder::new()
        .mtime(0)
        .write(BufWriter::new(file), Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, member) in members {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(member.len);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        match &member.content {
            Content::Memory(bytes) => tar.append_data(&mut header, name, bytes.as_slice())?,
            Content::File(p) => {
                let f = File::open(p).map_err(|e| at(p, e))?;
                // The copy must be exactly as long as the header says.
                tar.append_data(&mut header, name, f.take(member.len))?
            }
        }
    }
    let gz = tar.into_inner()?;
    let mut out = gz.finish()?;
    out.flush()?;
    out.into_inner()
        .map_err(|e| io::Error::other(e.to_string()))?
        .sync_all()
}

/// The `envelopes.jsonl` line of a record file: its JSON with the whitespace removed (fields,
/// order and values unchanged). A record file that is not JSON keeps its place with a line
/// that names it, so line n stays record n and `relgate verify --envelopes` reports it as
/// not an envelope, as verify reported the file.
pub(crate) fn envelope_line(file: &str, stored: Result<&[u8], &str>) -> Vec<u8> {
    let parsed = stored
        .map_err(str::to_owned)
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).map_err(|e| e.to_string()));
    let value = match parsed {
        Ok(v) => v,
        Err(why) => serde_json::json!({"relgate_unreadable_record": file, "reason": why}),
    };
    // Serializing a parsed JSON value cannot fail.
    serde_json::to_vec(&value).unwrap_or_default()
}

struct Counts {
    envelopes: u64,
    rows: u64,
    has_checkpoint: bool,
}

/// The instructions. Every ```sh block runs as is, with bash, in the unpacked bundle; each
/// ends with a command whose exit status is the verdict of that step (the test suite runs
/// them literally).
fn verify_md(report: &VerifyReport, keys: &TrustedKeys, info: &BundleInfo, c: &Counts) -> String {
    let status = match report.status {
        VerifyStatus::Intact => "INTACT",
        VerifyStatus::Tampered => "TAMPERED",
        VerifyStatus::Unverifiable => "COULD NOT BE VERIFIED",
    };
    let key_list: Vec<String> = keys
        .iter()
        .map(|(id, _)| format!("`{KEYS_DIR}/{id}.pem`"))
        .collect();
    // The key ids every step pins: the keys trusted when the bundle was written. A key file
    // added to the bundle later is never used by any step.
    let pinned: Vec<String> = keys.iter().map(|(id, _)| id.to_string()).collect();
    let pinned = pinned.join(" ");
    let copy_pinned = format!(
        "mkdir -p {PINNED_DIR} && rm -f {PINNED_DIR}/*.pem && for id in {pinned}; do cp \"{KEYS_DIR}/$id.pem\" {PINNED_DIR}/; done"
    );
    let mut md = String::new();
    md.push_str(&format!(
        "# Verifying this relgate export bundle

Written by relgate {version} at {at} from the ledger `{source}`.
When it was written, relgate verified the ledger as **{status}** ({problems} problems, see
`{VERIFICATION}`).

| file | content |
| --- | --- |
| `{ENVELOPES}` | all {envelopes} records of the ledger: one DSSE envelope per line, in seq order (line n holds record n), as stored with whitespace removed |
| `{KEYS_DIR}/<keyid>.pem` | the public keys that were trusted: {key_list} (Ed25519, SubjectPublicKeyInfo PEM; the key id is the SHA-256 of the DER key) |
| `{CHECKPOINT}` | the ledger's signed checkpoint: record count and RFC 6962 Merkle root of the record payloads |
| `{VERIFICATION}` | relgate's verification report at export time |
| `{CSV}` | {rows} rows, one per record (filter: {filter}); every `;`-part of a cell that begins like a formula (`=`, `+`, `-`, `@`, `|`, tab, CR) or with `'` has a `'` in front so spreadsheets do not run it |
| `{REPORT_HTML}` | the same rows as a report to read (open it in a browser, or print it): verification verdict, decisions per week, gate pass rate, PRR compliance, evaluation gate pass rate, change failure rate, time from first failed to first passed check, top failing rules, a table per service; self-contained, it loads nothing |
| `{SHA256SUMS}` | the SHA-256 of every other file |

What is signed are the records in `{ENVELOPES}` and `{CHECKPOINT}`, by the keys in
`{KEYS_DIR}/`; every other file is derived from them or describes the export. So the bundle
proves what the ledger held only to someone who trusts those keys, and step 0 comes first.

Unpack the bundle into an empty directory and run every command below in it (bash; the
tools are coreutils, `jq` and OpenSSL 3):

```
mkdir bundle && tar -xzf <bundle>.tar.gz -C bundle && cd bundle
```

## 0. The keys are the ones you trust

The bundle was written trusting these key ids, and every step below uses only them (it never
picks up a key file just because the bundle holds it):

    {pinned}

A key id is the SHA-256 of the public key's DER encoding. This checks that each pinned key's
file hashes to its id and prints the ids:

```sh
fail=0
for pinned in {pinned}; do
  key={KEYS_DIR}/$pinned.pem
  id=$(openssl pkey -pubin -in \"$key\" -outform DER | sha256sum | cut -d' ' -f1)
  echo \"key id $id\"
  [ \"$id\" = \"$pinned\" ] || {{ echo \"$key: its key id is $id, not its file name\"; fail=1; }}
done
test \"$fail\" = 0
```

Compare the printed ids with the key ids your organisation published for its release gate,
out of band (not from this bundle): a bundle made by someone else, with their own key, passes
every other step, and so does a bundle whose VERIFY.md was rewritten to pin another key. Better still, run step 2 with `--keys` pointing at a directory of the keys
you already trust instead of the bundle's.

## 1. The files arrived intact

```sh
sha256sum -c {SHA256SUMS}
```

Every line must say `OK`. This catches damage in transit; `{SHA256SUMS}` is inside the bundle,
so it cannot catch a deliberate change by someone who could rewrite the bundle: steps 2 to 5
check what is signed, and step 6 checks the CSV against it.

## 2. Verify with relgate

```sh
{copy_pinned}
relgate verify --envelopes {ENVELOPES} --keys {PINNED_DIR}
```

It must print `INTACT` and exit 0. relgate checks every record's signature by a trusted key,
that line n holds record n with no gap or duplicate, every record's `prev` (the SHA-256 of the
previous record's payload), and that `{CHECKPOINT}` is signed by a trusted key and its size and
Merkle root match the records. Only the pinned keys are trusted: they are copied to
`{PINNED_DIR}/` first. If you kept a `CHECKPOINT` from an earlier audit, add
`--checkpoint <that file>`: relgate then also proves that the ledger only grew since.

## 3. Verify every signature with OpenSSL

A record's signature is Ed25519 over the DSSE pre-authentication encoding (PAE):
`DSSEv1 <length of payloadType> <payloadType> <length of payload> <payload>`, lengths in decimal
bytes, the payload being the base64-decoded `payload` field.

```sh
fail=0 n=0
while IFS=$'\\t' read -r type payload sig keyid; do
  n=$((n + 1))
  case \" {pinned} \" in *\" $keyid \"*) ;; *) echo \"record $n: signed by key '$keyid', which is not a pinned key id\"; fail=1; continue ;; esac
  printf '%s' \"$payload\" | base64 -d > payload.bin
  {{ printf 'DSSEv1 %d %s %d ' \"${{#type}}\" \"$type\" \"$(wc -c < payload.bin)\"; cat payload.bin; }} > pae.bin
  printf '%s' \"$sig\" | base64 -d > sig.bin
  openssl pkeyutl -verify -pubin -inkey \"{KEYS_DIR}/$keyid.pem\" -rawin -in pae.bin -sigfile sig.bin > /dev/null \\
    || {{ echo \"record $n: the signature does NOT verify\"; fail=1; }}
done < <(jq -r '[.payloadType, .payload, .signatures[0].sig, .signatures[0].keyid] | @tsv' {ENVELOPES})
test \"$fail\" = 0 && [ \"$n\" -eq $(( $(wc -l < {ENVELOPES}) )) ] && echo \"all $n signatures verified\"
```

It must end with `all N signatures verified` (a line jq cannot read stops the loop early, and
the count then differs). Each record takes a few processes; to check a sample instead, keep
the lines you picked, e.g. `sed -n '5p;17p' {ENVELOPES} > sample.jsonl`, and run the block
with `sample.jsonl` in place of `{ENVELOPES}` (the record numbers printed are then positions
in the sample).

## 4. Check the hash chain with sha256sum

Each record's `prev` is the SHA-256 of the previous record's payload bytes (64 zeros for
record 1), so no record can be removed, inserted or reordered without breaking the chain.

```sh
fail=0 n=0 prev=0000000000000000000000000000000000000000000000000000000000000000
while IFS= read -r payload; do
  n=$((n + 1))
  printf '%s' \"$payload\" | base64 -d > payload.bin
  link=$(jq -r '.predicate[\"https://relgate.dev/change/v1\"] | \"\\(.seq) \\(.prev)\"' payload.bin)
  [ \"$link\" = \"$n $prev\" ] || {{ echo \"record $n: expected seq $n and prev $prev, found $link\"; fail=1; }}
  prev=$(sha256sum payload.bin | cut -d' ' -f1)
done < <(jq -r .payload {ENVELOPES})
test \"$fail\" = 0 && [ \"$n\" -eq $(( $(wc -l < {ENVELOPES}) )) ] && echo \"the chain of $n records is unbroken\"
```

It must end with `the chain of N records is unbroken`.
",
        pinned = pinned,
        copy_pinned = copy_pinned,
        version = env!("CARGO_PKG_VERSION"),
        at = info.generated_at,
        source = report.source,
        problems = report.problems.len(),
        envelopes = c.envelopes,
        key_list = key_list.join(", "),
        rows = c.rows,
        filter = info.filter,
    ));
    if c.has_checkpoint {
        let signer = report
            .checkpoint
            .as_ref()
            .and_then(|cp| Some((cp.origin.as_str(), cp.key_id.as_deref()?)))
            .and_then(|(origin, id)| Some((origin, id, keys.get(id)?)));
        match signer {
            Some((origin, id, key)) => md.push_str(&format!(
                "
## 5. The checkpoint is signed and covers exactly these records

`{CHECKPOINT}` is a signed note (C2SP signed-note, as Go's `golang.org/x/mod/sumdb/note`):
its text is the origin, the number of records and the base64 RFC 6962 Merkle root of their
payloads, each on a line; after a blank line, the signature line `— <origin> <base64>`, whose
bytes are a 4-byte key hash, the first 4 bytes of SHA-256(origin || \"\\n\" || 0x01 || the
32-byte public key), then the Ed25519 signature of the text. It was signed by the pinned key
`{id}`. This checks the key hash and the signature with OpenSSL, that the count is the
number of envelopes, and that the root is the one `{MERKLE_SH}` recomputes from them:

```sh
key={KEYS_DIR}/{id}.pem
origin=$(sed -n 1p {CHECKPOINT})
awk 'NF == 0 {{exit}} {{print}}' {CHECKPOINT} > note.txt
awk -v o=\"$origin\" 'body && $2 == o {{print $3; exit}} NF == 0 {{body = 1}}' {CHECKPOINT} | base64 -d > note-sig.bin
openssl pkey -pubin -in \"$key\" -outform DER | tail -c 32 > key.raw
expected=$({{ printf '%s\\n\\001' \"$origin\"; cat key.raw; }} | sha256sum | cut -c1-8)
found=$(head -c 4 note-sig.bin | od -An -tx1 | tr -d ' \\n')
[ \"$found\" = \"$expected\" ] || {{ echo \"the checkpoint's key hash is $found, not $expected (pinned key {id})\"; exit 1; }}
tail -c 64 note-sig.bin > note-sig.ed25519
openssl pkeyutl -verify -pubin -inkey \"$key\" -rawin -in note.txt -sigfile note-sig.ed25519 > /dev/null \\
  || {{ echo \"the checkpoint's signature does NOT verify\"; exit 1; }}
[ \"$(sed -n 2p note.txt)\" = \"$(wc -l < {ENVELOPES} | tr -d ' ')\" ] \\
  || {{ echo \"the checkpoint covers $(sed -n 2p note.txt) records, the bundle has $(wc -l < {ENVELOPES} | tr -d ' ')\"; exit 1; }}
root=$(bash {MERKLE_SH} {ENVELOPES})
[ \"$root\" = \"$(sed -n 3p note.txt)\" ] || {{ echo \"the records' Merkle root is $root, the checkpoint says $(sed -n 3p note.txt)\"; exit 1; }}
echo \"the checkpoint is signed by {id_short}, covers all $(sed -n 2p note.txt) records, and its root matches\"
```

It must end with `the checkpoint is signed by ..., covers all N records, and its root matches`.
Go's `note` package verifies the same note with the verifier key `{verifier}`.
Keep `{CHECKPOINT}`: at the next audit, `relgate verify --checkpoint` proves the ledger only
grew since.
",
                id_short = id.get(..12).unwrap_or(id),
                verifier = verifier_key_string(origin, key),
            )),
            None => md.push_str(&format!(
                "
## 5. The checkpoint

`{CHECKPOINT}` did not verify under a trusted key when the bundle was written (see
`{VERIFICATION}`), so there is no pinned key to check it with: this bundle does not prove
which records the ledger held.

```sh
echo \"the checkpoint did not verify at export time\"; false
```
"
            )),
        }
    }
    let rebuild: Vec<String> = info.filter_args.iter().map(|a| shell_word(a)).collect();
    let rebuild = if rebuild.is_empty() {
        String::new()
    } else {
        format!(" {}", rebuild.join(" "))
    };
    md.push_str(&format!(
        "
## 6. The CSV is what the signed records say

`{CSV}` and `{REPORT_HTML}` are views of the records, not signed themselves. Rebuild the CSV
from the envelopes (relgate verifies them again while it reads) with the export's filter, and
compare:

```sh
{copy_pinned}
relgate export --envelopes {ENVELOPES} --keys {PINNED_DIR}{rebuild} --output rebuilt.csv && cmp rebuilt.csv {CSV} && echo \"{CSV} matches the signed records\"
```

`report.html` is computed from the same rows by the same relgate version; rebuild it with
`--format html` instead of checking it by hand.
"
    ));
    md
}
