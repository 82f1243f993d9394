//! Maps field paths of a YAML (or JSON) document to the line they are written on.
//!
//! serde_yaml, which gives relgate its values, keeps no positions. So the same bytes are read a
//! second time with yaml-rust2's event parser, which reports a line for every key and sequence
//! item. This pass runs only after serde_yaml accepted the file, which already bounds nesting
//! depth and alias expansion; it is iterative (an explicit stack) and never expands aliases, so
//! it cannot be made to recurse or blow up.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};

use crate::field_path::{self, Segment};

/// Line numbers (1-based) of the fields of one document.
#[derive(Debug, Default, Clone)]
pub(crate) struct LineIndex {
    lines: HashMap<String, u32>,
    /// Line where the document's root node starts.
    pub(crate) start_line: u32,
}

impl LineIndex {
    /// Line of `path`, or of its nearest ancestor that exists (a finding about a missing field
    /// points at the parent that should hold it). Paths that do not parse fall back to the
    /// document start.
    pub(crate) fn line_of(&self, path: &str) -> u32 {
        let Some(mut segments) = field_path::parse(path) else {
            return self.start_line;
        };
        loop {
            if segments.is_empty() {
                return self.start_line;
            }
            if let Some(line) = self.lines.get(&field_path::render(&segments)) {
                return *line;
            }
            segments.pop();
        }
    }

    /// Line of a path given as segments.
    pub(crate) fn line_of_segments(&self, segments: &[Segment]) -> u32 {
        self.line_of(&field_path::render(segments))
    }
}

/// The line indexes of one file's documents, built on first use: most documents of a run
/// have no finding, and building an index costs a second parse of the text.
#[derive(Debug)]
pub(crate) struct FileLines {
    text: String,
    documents: usize,
    indexes: std::sync::OnceLock<Vec<LineIndex>>,
}

/// Lines of one document of a file (cheap to clone; the index is shared and lazy).
#[derive(Debug, Clone)]
pub(crate) struct Lines {
    file: std::sync::Arc<FileLines>,
    document: usize,
}

impl Lines {
    /// The lines of each of a file's `documents` documents.
    pub(crate) fn for_file(text: String, documents: usize) -> Vec<Lines> {
        let file = std::sync::Arc::new(FileLines {
            text,
            documents,
            indexes: std::sync::OnceLock::new(),
        });
        (0..documents)
            .map(|document| Lines {
                file: file.clone(),
                document,
            })
            .collect()
    }

    fn index(&self) -> Option<&LineIndex> {
        self.file
            .indexes
            .get_or_init(|| index_documents(&self.file.text))
            .get(self.document)
    }

    /// See [`LineIndex::line_of`].
    pub(crate) fn line_of(&self, path: &str) -> u32 {
        self.index().map_or(1, |index| index.line_of(path))
    }

    /// See [`LineIndex::line_of_segments`].
    pub(crate) fn line_of_segments(&self, segments: &[Segment]) -> u32 {
        self.index()
            .map_or(1, |index| index.line_of_segments(segments))
    }

    /// Line where the document starts (1-based). A single-document file is read by a plain
    /// scan (the first line that is not blank, a comment, a directive or a bare `---`), so no
    /// index is built for it.
    pub(crate) fn start_line(&self) -> u32 {
        if self.file.documents == 1 {
            return first_content_line(&self.file.text);
        }
        self.index().map_or(1, |index| index.start_line.max(1))
    }
}

/// The first line holding YAML content.
fn first_content_line(text: &str) -> u32 {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        let after_marker = trimmed.strip_prefix("---").map(str::trim_start);
        let is_empty_marker =
            after_marker.is_some_and(|rest| rest.is_empty() || rest.starts_with('#'));
        if trimmed.is_empty()
            || trimmed.starts_with('#')
            || trimmed.starts_with('%')
            || is_empty_marker
        {
            continue;
        }
        return u32::try_from(number + 1).unwrap_or(u32::MAX);
    }
    1
}

/// One open collection while walking the events.
enum Frame {
    /// A mapping; `pending_key` is set between a key and its value.
    Mapping {
        pending_key: Option<String>,
    },
    Sequence {
        next_index: usize,
    },
}

/// Builds one [`LineIndex`] per document of `text`. Returns fewer indexes than documents only if
/// the event parser stops early, in which case the remaining documents get default indexes
/// (their findings then carry the document's first line, never a wrong one).
pub(crate) fn index_documents(text: &str) -> Vec<LineIndex> {
    let mut parser = Parser::new_from_str(text);
    let mut indexes = Vec::new();
    let mut current = LineIndex::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut path: Vec<Segment> = Vec::new();
    while let Ok((event, marker)) = parser.next_token() {
        // yaml-rust2 markers count lines from 1.
        let line = u32::try_from(marker.line()).unwrap_or(u32::MAX).max(1);
        match event {
            Event::StreamEnd => break,
            Event::DocumentStart => {
                current = LineIndex::default();
                stack.clear();
                path.clear();
            }
            Event::DocumentEnd => indexes.push(std::mem::take(&mut current)),
            Event::Scalar(value, ..) => {
                if let Some(Frame::Mapping { pending_key }) = stack.last_mut() {
                    if pending_key.is_none() {
                        // A key: remember where it is written.
                        path.push(Segment::Key(value.clone()));
                        current.lines.insert(field_path::render(&path), line);
                        path.pop();
                        *pending_key = Some(value);
                        continue;
                    }
                }
                enter_value(&mut stack, &mut path, &mut current, line);
                leave_value(&mut stack, &mut path);
            }
            Event::Alias(_) => {
                enter_value(&mut stack, &mut path, &mut current, line);
                leave_value(&mut stack, &mut path);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                if matches!(stack.last(), Some(Frame::Mapping { pending_key: None })) {
                    // A complex key (a mapping used as a key): not addressable by path. Track
                    // it as a value of a synthetic key so nesting stays balanced.
                    if let Some(Frame::Mapping { pending_key }) = stack.last_mut() {
                        *pending_key = Some(String::from("?"));
                    }
                }
                let is_root = stack.is_empty();
                enter_value(&mut stack, &mut path, &mut current, line);
                if is_root {
                    current.start_line = line;
                }
                stack.push(if matches!(event, Event::MappingStart(..)) {
                    Frame::Mapping { pending_key: None }
                } else {
                    Frame::Sequence { next_index: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                leave_value(&mut stack, &mut path);
            }
            Event::StreamStart | Event::Nothing => {}
        }
    }
    indexes
}

/// A value starts: extend the path with its key or index and record its line.
fn enter_value(stack: &mut [Frame], path: &mut Vec<Segment>, index: &mut LineIndex, line: u32) {
    match stack.last_mut() {
        Some(Frame::Mapping { pending_key }) => {
            path.push(Segment::Key(pending_key.clone().unwrap_or_default()));
        }
        Some(Frame::Sequence { next_index }) => {
            path.push(Segment::Index(*next_index));
            index.lines.insert(field_path::render(path), line);
        }
        None => index.start_line = line,
    }
}

/// A value ended: drop its segment and advance the parent.
fn leave_value(stack: &mut [Frame], path: &mut Vec<Segment>) {
    match stack.last_mut() {
        Some(Frame::Mapping { pending_key }) => {
            *pending_key = None;
            path.pop();
        }
        Some(Frame::Sequence { next_index }) => {
            *next_index += 1;
            path.pop();
        }
        None => {}
    }
}

/// The first key that appears twice in one mapping: its path (canonical form) and the line of
/// the second occurrence. serde_yaml refuses such files but reports the mapping's line; this
/// tells the person which key and where.
pub(crate) fn first_duplicate_key(text: &str) -> Option<(String, u32)> {
    let mut parser = Parser::new_from_str(text);
    // Per open collection: keys seen (mappings only) and whether a key is pending.
    let mut stack: Vec<(Option<std::collections::HashSet<String>>, bool)> = Vec::new();
    let mut path: Vec<Segment> = Vec::new();
    loop {
        let (event, marker) = parser.next_token().ok()?;
        let line = u32::try_from(marker.line()).unwrap_or(u32::MAX).max(1);
        let is_key = matches!(stack.last(), Some((Some(_), false)));
        match event {
            Event::StreamEnd => return None,
            Event::Scalar(value, ..) if is_key => {
                if let Some((Some(keys), pending)) = stack.last_mut() {
                    if !keys.insert(value.clone()) {
                        path.push(Segment::Key(value));
                        return Some((field_path::render(&path), line));
                    }
                    *pending = true;
                    path.push(Segment::Key(value));
                }
                continue;
            }
            Event::MappingStart(..) => stack.push((Some(Default::default()), false)),
            Event::SequenceStart(..) => stack.push((None, false)),
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
            }
            Event::DocumentStart => {
                stack.clear();
                path.clear();
                continue;
            }
            _ => {}
        }
        // A value finished (scalar, alias, or a collection closed): pop its key.
        if matches!(
            event,
            Event::Scalar(..) | Event::Alias(_) | Event::MappingEnd | Event::SequenceEnd
        ) {
            if let Some((Some(_), pending)) = stack.last_mut() {
                if *pending {
                    *pending = false;
                    path.pop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
apiVersion: relgate.dev/v1
kind: PromptRelease
metadata:
  name: a
spec:
  prr:
    PRR-OWN-01: {status: done}
  logging:
    sinks:
      - name: langfuse
        retention_days: 30
      - {name: datadog, retention_days: 90}
---
kind: ModelRelease
spec:
  rollback:
    max_minutes: 5
";

    #[test]
    fn finds_lines_of_keys_and_items() {
        let indexes = index_documents(TEXT);
        assert_eq!(indexes.len(), 2);
        let first = &indexes[0];
        assert_eq!(first.line_of("kind"), 2);
        assert_eq!(first.line_of("metadata.name"), 4);
        assert_eq!(first.line_of("spec.prr[\"PRR-OWN-01\"].status"), 7);
        assert_eq!(first.line_of("spec.logging.sinks[0]"), 10);
        assert_eq!(first.line_of("spec.logging.sinks[0].retention_days"), 11);
        assert_eq!(first.line_of("spec.logging.sinks[1].retention_days"), 12);
        // A missing field points at its nearest existing parent.
        assert_eq!(first.line_of("spec.prr.PRR-SEC-01.evidence"), 6);
        assert_eq!(first.line_of("nonsense"), 1);
        let second = &indexes[1];
        assert_eq!(second.line_of("spec.rollback.max_minutes"), 17);
        assert_eq!(second.start_line, 14);
    }

    #[test]
    fn finds_duplicate_keys() {
        assert_eq!(
            first_duplicate_key("a: 1\nb:\n  c: 1\n  d: [1]\n  c: 2\n"),
            Some(("b.c".to_string(), 5))
        );
        assert_eq!(first_duplicate_key("a: 1\n---\na: 2\n"), None);
    }

    #[test]
    fn lazy_lines_agree_with_the_index() {
        for text in [
            TEXT,
            "# c\n\n---\napiVersion: x\n",
            "{\n\"a\": 1}\n",
            "--- # c\n\n  a: 1\n",
        ] {
            let documents = index_documents(text);
            for (document, lines) in Lines::for_file(text.to_string(), documents.len())
                .iter()
                .enumerate()
            {
                assert_eq!(
                    lines.start_line(),
                    documents[document].start_line.max(1),
                    "{text:?}"
                );
                assert_eq!(
                    lines.line_of("spec.rollback"),
                    documents[document].line_of("spec.rollback")
                );
            }
        }
    }

    #[test]
    fn indexes_json_documents() {
        let indexes = index_documents("{\n  \"a\": {\n    \"b\": [1,\n 2]\n  }\n}\n");
        assert_eq!(indexes[0].line_of("a.b[1]"), 4);
    }
}
