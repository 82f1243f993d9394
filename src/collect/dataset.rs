//! The Parquet side of `relgate collect`: the published column schema
//! (`schemas/collect.schema.json`, compiled in) and the writer of one part file.
//!
//! Rows are built from [`ExportRow`], the row model of `relgate export`, serialized to JSON and
//! then read column by column in the order the published schema gives. So a column added to
//! the export row flows into the dataset as soon as the schema file names it, and a column the
//! schema does not name is an error (never silently dropped): [`DatasetSchema::published`]
//! checks that the schema's columns are exactly `repo` followed by [`ExportRow::COLUMNS`].
//!
//! The writer uses parquet's low-level column writer API (no Arrow): five value shapes cover
//! every column, and leaving Arrow out keeps the build small. Pages are Snappy-compressed
//! (pure Rust). Files are written under a temporary name and renamed into place.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;

use parquet::basic::{Compression, LogicalType, Repetition, Type as PhysicalType};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use serde::Deserialize;
use serde_json::Value;

use crate::export::ExportRow;

/// The published schema file, compiled in.
pub(crate) const SCHEMA_JSON: &str = include_str!("../../schemas/collect.schema.json");

/// The repository column, first in every file and the first partition key.
pub(crate) const REPO_COLUMN: &str = "repo";

/// Value shape of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) enum ColumnType {
    /// UTF-8 string (`binary (STRING)`).
    #[serde(rename = "string")]
    String,
    /// `int64`.
    #[serde(rename = "int64")]
    Int64,
    /// `int32`.
    #[serde(rename = "int32")]
    Int32,
    /// `boolean`.
    #[serde(rename = "boolean")]
    Boolean,
    /// A 3-level LIST of required strings.
    #[serde(rename = "list<string>")]
    StringList,
}

/// One column of the published schema.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Column {
    /// Column name.
    pub(crate) name: String,
    /// Value shape.
    #[serde(rename = "type")]
    pub(crate) kind: ColumnType,
    /// Whether the value may be null (lists are never null: empty instead).
    pub(crate) nullable: bool,
}

#[derive(Deserialize)]
struct SchemaFile {
    partitioning: Vec<String>,
    columns: Vec<Column>,
}

/// The dataset's columns, in file order.
#[derive(Debug, Clone)]
pub(crate) struct DatasetSchema {
    /// Columns, `repo` first.
    pub(crate) columns: Vec<Column>,
    parquet: Arc<Type>,
}

/// Why the dataset could not be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DatasetError {
    /// The compiled-in schema does not fit the export row (a build defect, caught by tests).
    #[error("schemas/collect.schema.json: {0}")]
    Schema(String),
    /// A row value does not fit its column's declared type.
    #[error("column {column}: {detail}")]
    Value {
        /// The column.
        column: String,
        /// What was wrong.
        detail: String,
    },
    /// Writing the file failed.
    #[error("cannot write {path}: {detail}")]
    Write {
        /// The file.
        path: String,
        /// The cause.
        detail: String,
    },
}

impl DatasetSchema {
    /// The published schema, checked against the export row's columns.
    pub(crate) fn published() -> Result<DatasetSchema, DatasetError> {
        let file: SchemaFile =
            serde_json::from_str(SCHEMA_JSON).map_err(|e| DatasetError::Schema(e.to_string()))?;
        if file.partitioning != [REPO_COLUMN, "date"] {
            return Err(DatasetError::Schema(
                "partitioning must be [\"repo\", \"date\"]".into(),
            ));
        }
        let names: Vec<&str> = file.columns.iter().map(|c| c.name.as_str()).collect();
        let mut want = vec![REPO_COLUMN];
        want.extend(ExportRow::COLUMNS);
        if names != want {
            return Err(DatasetError::Schema(format!(
                "columns are {names:?}; the export row needs exactly {want:?} (add a new export \
                 column to the schema file with its type)"
            )));
        }
        let fields = file
            .columns
            .iter()
            .map(|c| parquet_field(c).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let parquet = Type::group_type_builder("relgate_collect")
            .with_fields(fields)
            .build()
            .map_err(|e| DatasetError::Schema(e.to_string()))?;
        Ok(DatasetSchema {
            columns: file.columns,
            parquet: Arc::new(parquet),
        })
    }
}

fn parquet_field(c: &Column) -> Result<Type, DatasetError> {
    let repetition = if c.nullable {
        Repetition::OPTIONAL
    } else {
        Repetition::REQUIRED
    };
    let schema_err = |e: parquet::errors::ParquetError| DatasetError::Schema(e.to_string());
    let primitive = |physical, logical| {
        Type::primitive_type_builder(&c.name, physical)
            .with_repetition(repetition)
            .with_logical_type(logical)
            .build()
            .map_err(schema_err)
    };
    match c.kind {
        ColumnType::String => primitive(PhysicalType::BYTE_ARRAY, Some(LogicalType::String)),
        ColumnType::Int64 => primitive(PhysicalType::INT64, None),
        ColumnType::Int32 => primitive(PhysicalType::INT32, None),
        ColumnType::Boolean => primitive(PhysicalType::BOOLEAN, None),
        ColumnType::StringList => {
            if c.nullable {
                return Err(DatasetError::Schema(format!(
                    "{}: list columns are never null (an empty list instead)",
                    c.name
                )));
            }
            let element = Type::primitive_type_builder("element", PhysicalType::BYTE_ARRAY)
                .with_repetition(Repetition::REQUIRED)
                .with_logical_type(Some(LogicalType::String))
                .build()
                .map_err(schema_err)?;
            let list = Type::group_type_builder("list")
                .with_repetition(Repetition::REPEATED)
                .with_fields(vec![Arc::new(element)])
                .build()
                .map_err(schema_err)?;
            Type::group_type_builder(&c.name)
                .with_repetition(Repetition::REQUIRED)
                .with_logical_type(Some(LogicalType::List))
                .with_fields(vec![Arc::new(list)])
                .build()
                .map_err(schema_err)
        }
    }
}

/// One column's values, ready for the column writer.
enum Values {
    Bytes(Vec<ByteArray>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    Bool(Vec<bool>),
}

/// Column values with their definition and repetition levels.
struct Leaf {
    values: Values,
    def: Option<Vec<i16>>,
    rep: Option<Vec<i16>>,
}

fn leaf_of(column: &Column, cells: &[&Value]) -> Result<Leaf, DatasetError> {
    let bad = |detail: String| DatasetError::Value {
        column: column.name.clone(),
        detail,
    };
    let mut def = Vec::with_capacity(cells.len());
    let mut rep = Vec::new();
    let mut values = match column.kind {
        ColumnType::String | ColumnType::StringList => Values::Bytes(Vec::new()),
        ColumnType::Int64 => Values::I64(Vec::new()),
        ColumnType::Int32 => Values::I32(Vec::new()),
        ColumnType::Boolean => Values::Bool(Vec::new()),
    };
    for cell in cells {
        if column.kind == ColumnType::StringList {
            let items = cell
                .as_array()
                .ok_or_else(|| bad(format!("expected a list of strings, got {cell}")))?;
            let Values::Bytes(out) = &mut values else {
                continue;
            };
            if items.is_empty() {
                def.push(0);
                rep.push(0);
            }
            for (i, item) in items.iter().enumerate() {
                let s = item
                    .as_str()
                    .ok_or_else(|| bad(format!("expected a string in the list, got {item}")))?;
                out.push(ByteArray::from(s.as_bytes().to_vec()));
                def.push(1);
                rep.push(i16::from(i > 0));
            }
            continue;
        }
        if cell.is_null() {
            if !column.nullable {
                return Err(bad("null in a column that is never null".into()));
            }
            def.push(0);
            continue;
        }
        def.push(1);
        match &mut values {
            Values::Bytes(out) => {
                let s = cell
                    .as_str()
                    .ok_or_else(|| bad(format!("expected a string, got {cell}")))?;
                out.push(ByteArray::from(s.as_bytes().to_vec()));
            }
            Values::I64(out) => out.push(
                cell.as_i64()
                    .ok_or_else(|| bad(format!("expected a 64-bit integer, got {cell}")))?,
            ),
            Values::I32(out) => out.push(
                cell.as_i64()
                    .and_then(|v| i32::try_from(v).ok())
                    .ok_or_else(|| bad(format!("expected a 32-bit integer, got {cell}")))?,
            ),
            Values::Bool(out) => out.push(
                cell.as_bool()
                    .ok_or_else(|| bad(format!("expected a boolean, got {cell}")))?,
            ),
        }
    }
    let (def, rep) = match (column.kind, column.nullable) {
        (ColumnType::StringList, _) => (Some(def), Some(rep)),
        (_, true) => (Some(def), None),
        (_, false) => (None, None),
    };
    Ok(Leaf { values, def, rep })
}

/// Writes `rows` of repository `repo` as one Parquet file at `path` (through a temporary file
/// beside it, renamed into place), one row group, Snappy pages.
pub(crate) fn write_part(
    path: &Path,
    schema: &DatasetSchema,
    repo: &str,
    rows: &[ExportRow],
) -> Result<(), DatasetError> {
    let objects: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).map_err(|e| DatasetError::Value {
                column: "*".into(),
                detail: e.to_string(),
            })?;
            if let Some(o) = v.as_object_mut() {
                o.insert(REPO_COLUMN.to_owned(), Value::String(repo.to_owned()));
                // A bundle is an object in JSON; in the dataset it is the CSV cell's text, so
                // the column stays a plain list of strings every engine reads.
                let bundles = r.bundles.iter().map(crate::export::csv::bundle_cell);
                o.insert("bundles".to_owned(), bundles.map(Value::String).collect());
            }
            Ok(v)
        })
        .collect::<Result<_, DatasetError>>()?;
    let leaves = schema
        .columns
        .iter()
        .map(|c| {
            let cells: Vec<&Value> = objects
                .iter()
                .map(|o| o.get(&c.name).unwrap_or(&Value::Null))
                .collect();
            leaf_of(c, &cells)
        })
        .collect::<Result<Vec<_>, _>>()?;

    let write_err = |detail: String| DatasetError::Write {
        path: path.display().to_string(),
        detail,
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| write_err("not a file name".into()))?;
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = write_file(&tmp, path, schema, &leaves);
    if let Err(detail) = result {
        // Best effort: the part was not written, and its temporary file must not linger.
        let _ = fs::remove_file(&tmp);
        return Err(write_err(detail));
    }
    Ok(())
}

/// Writes the leaves as a Parquet file at `tmp`, then renames it to `path`.
fn write_file(
    tmp: &Path,
    path: &Path,
    schema: &DatasetSchema,
    leaves: &[Leaf],
) -> Result<(), String> {
    let file = File::create(tmp).map_err(|e| e.to_string())?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = SerializedFileWriter::new(
        BufWriter::new(file),
        schema.parquet.clone(),
        Arc::new(props),
    )
    .map_err(|e| e.to_string())?;
    let mut group = writer.next_row_group().map_err(|e| e.to_string())?;
    for leaf in leaves {
        let mut col = group
            .next_column()
            .map_err(|e| e.to_string())?
            .ok_or("the schema has more columns than the writer")?;
        let def = leaf.def.as_deref();
        let rep = leaf.rep.as_deref();
        match &leaf.values {
            Values::Bytes(v) => col
                .typed::<ByteArrayType>()
                .write_batch(v, def, rep)
                .map(drop),
            Values::I64(v) => col.typed::<Int64Type>().write_batch(v, def, rep).map(drop),
            Values::I32(v) => col.typed::<Int32Type>().write_batch(v, def, rep).map(drop),
            Values::Bool(v) => col.typed::<BoolType>().write_batch(v, def, rep).map(drop),
        }
        .map_err(|e| e.to_string())?;
        col.close().map_err(|e| e.to_string())?;
    }
    group.close().map_err(|e| e.to_string())?;
    let inner = writer.into_inner().map_err(|e| e.to_string())?;
    let file = inner.into_inner().map_err(|e| e.error().to_string())?;
    file.sync_all().map_err(|e| e.to_string())?;
    fs::rename(tmp, path).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The compiled-in schema file names exactly `repo` and the export row's columns.
    #[test]
    fn published_schema_matches_the_export_row() {
        let schema = DatasetSchema::published().expect("schema");
        assert_eq!(schema.columns[0].name, REPO_COLUMN);
        assert_eq!(schema.columns.len(), ExportRow::COLUMNS.len() + 1);
    }
}
