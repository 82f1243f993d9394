//! Reading input files (manifests, `relgate.yaml`, data documents) into JSON values.
//!
//! This module owns every defence against hostile input files: the size limit (checked before
//! and while reading), UTF-8, duplicate keys, YAML alias bombs and deep nesting (serde_yaml's
//! own limits turn those into errors), non-string keys and YAML tags, and anything that is not a
//! regular file (FIFOs, sockets, devices: refused before they are opened, never waited on). A
//! file yields one [`Document`] per YAML document, each with its value, its index in the file
//! and a [`LineIndex`] so findings can point at lines.

use std::io::Read as _;
use std::path::Path;

use serde::Deserialize as _;
use sha2::{Digest as _, Sha256};

use crate::line_index::{self, Lines};

/// Default size limit of an input file: 4 MiB.
pub(crate) const DEFAULT_MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// An input file that could not be turned into documents. `Display` gives `file:line: what,
/// and how to fix it`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}{}: {message}", .line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct InputError {
    /// The file as the user knows it (relative to the gate root where possible).
    pub(crate) file: String,
    /// Line (1-based) of the problem, where known.
    pub(crate) line: Option<u32>,
    /// Document index in a multi-document file, where known.
    pub(crate) document: Option<usize>,
    pub(crate) message: String,
}

impl InputError {
    pub(crate) fn new(file: &str, line: Option<u32>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_string(),
            line,
            document: None,
            message: message.into(),
        }
    }
}

/// The bytes of a file and their digest, read within the size limit.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path as reported (relative to the gate root, `/`-separated).
    pub path: String,
    /// `sha256:<hex>` over the exact bytes.
    pub digest: String,
    pub bytes: Vec<u8>,
}

/// One YAML document of a file.
#[derive(Debug, Clone)]
pub struct Document {
    /// Position in the file, from 0.
    pub index: usize,
    pub value: serde_json::Value,
    pub(crate) lines: Lines,
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Why a path that is not a regular file cannot be read, in words a person can act on.
fn not_regular(file_type: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if file_type.is_fifo() {
            return "a named pipe (FIFO)";
        }
        if file_type.is_socket() {
            return "a socket";
        }
        if file_type.is_block_device() || file_type.is_char_device() {
            return "a device";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

/// Opens a path that must be a regular file (symlinks followed), for reading. A FIFO, socket,
/// device or directory is refused *before* it is opened (opening a FIFO for reading waits for
/// a writer forever, reading `/dev/zero` never ends), the open itself does not block
/// (`O_NONBLOCK`), and the opened handle is checked again, so a file swapped for a FIFO between
/// the check and the open is refused too. Every reader of input files goes through here.
pub(crate) fn open_regular(path: &Path, shown: &str) -> Result<std::fs::File, InputError> {
    let io_error =
        |err: std::io::Error| InputError::new(shown, None, format!("cannot read: {err}"));
    let refuse = |file_type: std::fs::FileType| {
        InputError::new(
            shown,
            None,
            format!(
                "not a regular file ({}); relgate reads only regular files: replace it with the file itself",
                not_regular(file_type)
            ),
        )
    };
    let before = std::fs::metadata(path).map_err(io_error)?;
    if !before.is_file() {
        return Err(refuse(before.file_type()));
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        // Opening a FIFO non-blocking returns at once instead of waiting for a writer.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(io_error)?;
    let opened = file.metadata().map_err(io_error)?;
    if !opened.is_file() {
        return Err(refuse(opened.file_type()));
    }
    Ok(file)
}

/// Reads a file, refusing one larger than `max_bytes` and anything that is not a regular file
/// ([`open_regular`]). `shown` is the name used in errors.
pub fn read_limited(path: &Path, shown: &str, max_bytes: u64) -> Result<SourceFile, InputError> {
    let io_error =
        |err: std::io::Error| InputError::new(shown, None, format!("cannot read: {err}"));
    let file = open_regular(path, shown)?;
    let too_large = || {
        InputError::new(
            shown,
            None,
            format!(
                "file is larger than the {max_bytes}-byte limit; split it, or raise \
                 `max_file_bytes` in relgate.yaml (or --max-file-bytes) if it is genuine"
            ),
        )
    };
    if file.metadata().map_err(io_error)?.len() > max_bytes {
        return Err(too_large());
    }
    // The file may grow between the size check and the read: read at most one byte past
    // the limit and refuse if it got there.
    let mut bytes = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large());
    }
    Ok(SourceFile {
        path: shown.to_string(),
        digest: sha256_digest(&bytes),
        bytes,
    })
}

/// Line (1-based) of a byte offset.
fn line_of_offset(bytes: &[u8], offset: usize) -> u32 {
    let newlines = bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count();
    u32::try_from(newlines + 1).unwrap_or(u32::MAX)
}

/// Splits a file into its YAML documents (JSON is read as YAML, of which it is a subset).
/// Every document must be a mapping; an empty file, or one with only comments, is an error,
/// not "nothing to check".
pub fn parse_documents(source: &SourceFile) -> Result<Vec<Document>, InputError> {
    let file = source.path.as_str();
    let text = std::str::from_utf8(&source.bytes).map_err(|err| {
        InputError::new(
            file,
            Some(line_of_offset(&source.bytes, err.valid_up_to())),
            format!(
                "not valid UTF-8 (byte {}): manifests must be UTF-8 text; re-save the file as UTF-8",
                err.valid_up_to()
            ),
        )
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut values = Vec::new();
    for (index, deserializer) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let yaml = serde_yaml::Value::deserialize(deserializer).map_err(|err| {
            let mut error = yaml_error(file, &err);
            if let Some((path, line)) = line_index::first_duplicate_key(text)
                .filter(|_| err.to_string().contains("duplicate entry"))
            {
                error.line = Some(line);
                error.message = format!(
                    "key `{path}` appears twice in the same mapping; each key may appear once: remove or merge the duplicate"
                );
            }
            error.document = Some(index);
            error
        })?;
        values.push((index, yaml));
    }
    // A trailing `---` leaves an empty last document: that is formatting, not a manifest.
    // Empty documents elsewhere are reported below as "document N is empty".
    if values.len() > 1 && values.last().is_some_and(|(_, value)| value.is_null()) {
        values.pop();
    }
    if values.iter().all(|(_, value)| value.is_null()) {
        return Err(InputError::new(
            file,
            None,
            "file holds no YAML document: expected a manifest starting with `apiVersion: relgate.dev/v1`",
        ));
    }
    let mut all_lines = Lines::for_file(text.to_string(), values.len()).into_iter();
    let mut documents = Vec::with_capacity(values.len());
    for (index, yaml) in values {
        let Some(lines) = all_lines.next() else {
            break;
        };
        let value = yaml_to_json(yaml).map_err(|message| InputError {
            file: file.to_string(),
            line: Some(lines.start_line()),
            document: Some(index),
            message,
        })?;
        if !value.is_object() {
            return Err(InputError {
                file: file.to_string(),
                line: Some(lines.start_line()),
                document: Some(index),
                message: format!(
                    "document {index} is {}, expected a mapping (`apiVersion: relgate.dev/v1`, `kind: …`, `metadata: …`, `spec: …`)",
                    describe(&value)
                ),
            });
        }
        documents.push(Document {
            index,
            value,
            lines,
        });
    }
    Ok(documents)
}

fn describe(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "empty",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a sequence",
        serde_json::Value::Object(_) => "a mapping",
    }
}

/// Turns a serde_yaml error into an [`InputError`] with a line and a hint for the errors people
/// meet in practice.
fn yaml_error(file: &str, err: &serde_yaml::Error) -> InputError {
    let line = err
        .location()
        .map(|loc| u32::try_from(loc.line()).unwrap_or(u32::MAX));
    // serde_yaml appends " at line L column C"; the line is already in front of the message.
    let full = err.to_string();
    let text = full
        .rfind(" at line ")
        .map_or(full.as_str(), |at| &full[..at])
        .to_string();
    let hint = if text.contains("duplicate entry") {
        "; each key may appear once in a mapping: remove or merge the duplicate"
    } else if text.contains("recursion limit exceeded") {
        "; the document nests deeper than 128 levels, which no manifest needs"
    } else if text.contains("repetition limit exceeded") {
        "; YAML aliases expand to too many nodes (an alias bomb?): write the values out"
    } else {
        ""
    };
    InputError::new(file, line, format!("invalid YAML: {text}{hint}"))
}

/// Converts a YAML value to JSON. Keys that are scalars become strings (as YAML 1.2 readers
/// like OPA do); complex keys, tags and non-finite numbers are refused, because a policy could
/// not see them faithfully. Depth is bounded by serde_yaml's recursion limit.
fn yaml_to_json(value: serde_yaml::Value) -> Result<serde_json::Value, String> {
    use serde_yaml::Value as Y;
    Ok(match value {
        Y::Null => serde_json::Value::Null,
        Y::Bool(b) => serde_json::Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into()
            } else if let Some(u) = n.as_u64() {
                u.into()
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f)
                    .map(serde_json::Value::Number)
                    .ok_or_else(|| format!("number {n} is not finite; write a finite number"))?
            }
        }
        Y::String(s) => serde_json::Value::String(s),
        Y::Sequence(items) => serde_json::Value::Array(
            items
                .into_iter()
                .map(yaml_to_json)
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (key, value) in map {
                let key = match key {
                    Y::String(s) => s,
                    Y::Bool(b) => b.to_string(),
                    Y::Number(n) => n.to_string(),
                    Y::Null => "null".to_string(),
                    other => {
                        return Err(format!(
                            "a mapping key is {}, keys must be plain strings",
                            match other {
                                Y::Sequence(_) => "a sequence",
                                Y::Mapping(_) => "a mapping",
                                _ => "tagged",
                            }
                        ))
                    }
                };
                if out.contains_key(&key) {
                    return Err(format!(
                        "key `{key}` appears twice (once written as a number or boolean); keep one"
                    ));
                }
                out.insert(key, yaml_to_json(value)?);
            }
            serde_json::Value::Object(out)
        }
        Y::Tagged(tagged) => {
            return Err(format!(
                "YAML tag `{}` is not supported in relgate files; remove the tag",
                tagged.tag
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Document>, InputError> {
        parse_documents(&SourceFile {
            path: "r.yaml".into(),
            digest: sha256_digest(text.as_bytes()),
            bytes: text.as_bytes().to_vec(),
        })
    }

    #[test]
    fn multi_document_files_keep_indexes_and_lines() {
        let docs = parse("a: 1\n---\nb: 2\n---\n").expect("valid");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].index, 1);
        assert_eq!(docs[1].lines.line_of("b"), 3);
    }

    #[test]
    fn hostile_inputs_are_errors_with_lines() {
        let err = parse("a: 1\na: 2\n").expect_err("duplicate");
        assert!(err.message.contains("`a` appears twice"), "{err}");
        assert_eq!(err.line, Some(2));
        assert!(parse("")
            .expect_err("empty")
            .message
            .contains("no YAML document"));
        assert!(parse("# only a comment\n").is_err());
        assert!(parse("- a\n- b\n")
            .expect_err("seq")
            .message
            .contains("a sequence"));
        assert!(parse("a: !custom 1\n")
            .expect_err("tag")
            .message
            .contains("tag"));
        assert!(parse("a: .nan\n")
            .expect_err("nan")
            .message
            .contains("not finite"));
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(parse(&deep)
            .expect_err("deep")
            .message
            .contains("recursion limit"));
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            text.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
        }
        let err = parse(&text).expect_err("bomb");
        assert!(err.message.contains("repetition limit"), "{err}");
    }
}
