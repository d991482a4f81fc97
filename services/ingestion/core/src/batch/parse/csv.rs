//! `csv` batch files: a header row, then one record item per record. See the parent module for
//! the column mapping.
//!
//! Records are split and decoded here, at the byte level, with the quoting rules of the `csv`
//! crate (RFC 4180; its `StartField`, `InField`, `InQuotedField` and `InDoubleEscapedQuote`
//! states, delimiter `,`, line ends LF, CRLF or CR, blank lines skipped): the crate's reader
//! keeps a whole record in memory however long it is, whereas splitting here caps a row at
//! [`MAX_ROW_BYTES`] and still finds the next one. The tests check the decoding against the
//! crate.

use super::source::Source;
use super::{Ctx, MAX_ROW_BYTES, RowReader, too_large, version_value};
use crate::batch::{FileError, RowItem};
use crate::schema::{JsonType, SchemaRegistry};
use crate::xml::{parse_integer, parse_number};
use etx_domain::{Category, FieldViolation, SchemaVersion, ViolationCode};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::io::{BufRead, Read};

/// The envelope columns; every other column is a payload field.
const ENVELOPE_COLUMNS: [&str; 7] = [
    "category",
    "schema_version",
    "period",
    "classification",
    "priority",
    "form",
    "idempotency_key",
];

/// What a header column maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Column {
    /// An envelope field.
    Envelope(&'static str),
    /// A payload field, by its path inside the payload.
    Payload(Vec<String>),
}

/// Where the splitter and the decoder are in a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    StartField,
    Unquoted,
    Quoted,
    /// A `"` inside a quoted field: the end of the quotes, or the first half of `""`.
    QuoteSeen,
}

/// The schema types of every column for one category and version: the column's own type and,
/// for arrays, the type of its items.
type ColumnTypes = Vec<(Option<JsonType>, Option<JsonType>)>;

/// Reads the records of a CSV file.
#[derive(Debug)]
pub(super) struct CsvRows<'a, R> {
    src: Source<R>,
    ctx: Ctx<'a>,
    /// `None` until the header is read.
    columns: Option<Vec<Column>>,
    types: Vec<((Category, SchemaVersion), ColumnTypes)>,
    row: u64,
    /// The raw bytes of the record being read.
    buf: Vec<u8>,
    /// Its decoded fields.
    fields: Fields,
}

/// The decoded fields of one record: their bytes one after another, and where each ends.
#[derive(Debug, Default)]
struct Fields {
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl Fields {
    /// Decodes one record (without its line end).
    fn decode(&mut self, record: &[u8]) {
        self.data.clear();
        self.ends.clear();
        let mut state = Split::StartField;
        for &b in record {
            state = match (state, b) {
                (Split::Quoted, b'"') => Split::QuoteSeen,
                (Split::QuoteSeen, b'"') | (Split::Quoted, _) => {
                    self.data.push(b);
                    Split::Quoted
                }
                (Split::StartField, b'"') => Split::Quoted,
                (_, b',') => {
                    self.ends.push(self.data.len());
                    Split::StartField
                }
                // A quote inside an unquoted field, or after a closing quote, is a character.
                (_, _) => {
                    self.data.push(b);
                    Split::Unquoted
                }
            };
        }
        self.ends.push(self.data.len());
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(a, b)| &self.data[a..b])
    }
}

impl<'a, R: Read> CsvRows<'a, R> {
    pub(super) fn new(reader: R, ctx: Ctx<'a>) -> Self {
        Self {
            src: Source::new(reader, "csv"),
            ctx,
            columns: None,
            types: Vec::new(),
            row: 0,
            buf: Vec::new(),
            fields: Fields::default(),
        }
    }

    /// Reads the raw bytes of the next record (blank lines skipped) into `buf`: its first line
    /// and whether it was longer than the row limit (its content is then dropped), or `None` at
    /// the end of the file.
    fn next_record(&mut self) -> Result<Option<(u64, bool)>, FileError> {
        self.buf.clear();
        let mut state = Split::StartField;
        let mut oversize = false;
        let mut start_line = None;
        loop {
            let avail = match self.src.fill_buf() {
                Ok(b) => b,
                Err(e) => return Err(self.src.error(&e)),
            };
            let Some(line) = start_line else {
                if avail.is_empty() {
                    return Ok(None);
                }
                let skip = avail
                    .iter()
                    .position(|&b| b != b'\r' && b != b'\n')
                    .unwrap_or(avail.len());
                let found = skip < avail.len();
                self.src.consume(skip);
                if found {
                    start_line = Some(self.src.line);
                }
                continue;
            };
            if avail.is_empty() {
                if state == Split::Quoted {
                    return Err(self
                        .src
                        .malformed_at(line, "a quoted field starting on this line is not closed"));
                }
                return Ok(Some((line, oversize)));
            }
            let mut end = None;
            for (i, &b) in avail.iter().enumerate() {
                state = match state {
                    Split::Quoted if b == b'"' => Split::QuoteSeen,
                    Split::Quoted => Split::Quoted,
                    _ if b == b'\n' || b == b'\r' => {
                        end = Some(i);
                        break;
                    }
                    Split::StartField | Split::QuoteSeen if b == b'"' => Split::Quoted,
                    _ if b == b',' => Split::StartField,
                    _ => Split::Unquoted,
                };
            }
            let take = end.unwrap_or(avail.len());
            if !oversize {
                if self.buf.len() + take > MAX_ROW_BYTES {
                    oversize = true;
                    self.buf = Vec::new();
                } else {
                    self.buf.extend_from_slice(&avail[..take]);
                }
            }
            self.src.consume(take + usize::from(end.is_some()));
            if end.is_some() {
                return Ok(Some((line, oversize)));
            }
        }
    }

    /// Reads the header row and maps its columns.
    fn read_header(&mut self) -> Result<Vec<Column>, FileError> {
        let Some((line, oversize)) = self.next_record()? else {
            return Err(self.src.malformed("the file is empty: expected a header row"));
        };
        if oversize {
            return Err(self.src.malformed_at(
                line,
                format!("the header row is longer than {MAX_ROW_BYTES} bytes"),
            ));
        }
        self.fields.decode(&self.buf);
        let bad = |reason: String| FileError::Malformed {
            format: "csv",
            line,
            reason,
        };
        let mut columns = Vec::with_capacity(self.fields.len());
        let mut envelope: HashMap<&'static str, usize> = HashMap::new();
        let mut payload: HashMap<Vec<String>, usize> = HashMap::new();
        for (i, raw) in self.fields.iter().enumerate() {
            let n = i + 1;
            let name = std::str::from_utf8(raw)
                .map_err(|_| FileError::NotUtf8 { line })?
                .trim();
            if name.is_empty() {
                return Err(bad(format!("header column {n} has no name")));
            }
            let column = match ENVELOPE_COLUMNS.iter().find(|e| **e == name) {
                Some(env) => {
                    if let Some(first) = envelope.insert(env, n) {
                        return Err(bad(format!("header columns {first} and {n} name the same field")));
                    }
                    Column::Envelope(env)
                }
                None => {
                    if name == "payload" {
                        return Err(bad(format!(
                            "header column {n} must name a payload field (payload.<field>)"
                        )));
                    }
                    let path = name.strip_prefix("payload.").unwrap_or(name);
                    let segs: Vec<String> = path.split('.').map(str::to_owned).collect();
                    if segs.iter().any(String::is_empty) {
                        return Err(bad(format!(
                            "header column {n} has an empty part in its dotted name"
                        )));
                    }
                    if let Some(first) = payload.insert(segs.clone(), n) {
                        return Err(bad(format!("header columns {first} and {n} name the same field")));
                    }
                    Column::Payload(segs)
                }
            };
            columns.push(column);
        }
        for (i, column) in columns.iter().enumerate() {
            if let Column::Payload(segs) = column {
                for len in 1..segs.len() {
                    if let Some(parent) = payload.get(&segs[..len]) {
                        return Err(bad(format!(
                            "header column {parent} is a field and also the parent of column {}",
                            i + 1
                        )));
                    }
                }
            }
        }
        Ok(columns)
    }

    /// The record in `fields` as an item, or why it is not one.
    fn item(
        &mut self,
        columns: &[Column],
        line: u64,
    ) -> Result<Result<Value, Vec<FieldViolation>>, FileError> {
        if self.fields.len() != columns.len() {
            return Ok(Err(vec![
                FieldViolation::new("", ViolationCode::Invalid).with_detail(format!(
                    "expected {} fields, got {}",
                    columns.len(),
                    self.fields.len()
                )),
            ]));
        }
        let mut cells = Vec::with_capacity(columns.len());
        for raw in self.fields.iter() {
            cells.push(std::str::from_utf8(raw).map_err(|_| FileError::NotUtf8 { line })?);
        }
        let mut obj = Map::new();
        for (column, cell) in columns.iter().zip(&cells) {
            if let Column::Envelope(name) = column
                && !cell.is_empty()
            {
                let value = if *name == "schema_version" {
                    version_value(cell)
                } else {
                    Value::String((*cell).to_owned())
                };
                obj.insert((*name).to_owned(), value);
            }
        }
        let target = self.target(&obj);
        let types = target.map(|t| column_types(&mut self.types, self.ctx.schemas, t, columns));
        let mut payload = Map::new();
        for (i, (column, cell)) in columns.iter().zip(&cells).enumerate() {
            let Column::Payload(segs) = column else {
                continue;
            };
            if cell.is_empty() {
                continue;
            }
            let (ty, items) = types.map_or((None, None), |t| self.types[t].1[i]);
            let value = match ty {
                Some(JsonType::Array) => {
                    Value::Array(cell.split('|').map(|p| scalar(items, p.trim())).collect())
                }
                _ => scalar(ty, cell),
            };
            insert_path(&mut payload, segs, value);
        }
        obj.insert("payload".to_owned(), Value::Object(payload));
        self.ctx.apply_defaults(&mut obj);
        Ok(Ok(Value::Object(obj)))
    }

    /// The category and version the row's cells are typed by: its own, else the defaults.
    fn target(&self, obj: &Map<String, Value>) -> Option<(Category, SchemaVersion)> {
        let category = match obj.get("category") {
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => None,
            None => self.ctx.defaults.category.as_deref(),
        }?;
        let version = match obj.get("schema_version") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => return None,
            None => self.ctx.defaults.schema_version.clone()?,
        };
        let c = Category::parse(category).ok()?;
        let v = SchemaVersion::parse(version.trim()).ok()?;
        self.ctx.schemas.has(c, v).then_some((c, v))
    }
}

/// The index in `cache` of the schema types of the columns for `target`, computed once per
/// target.
fn column_types(
    cache: &mut Vec<((Category, SchemaVersion), ColumnTypes)>,
    schemas: &SchemaRegistry,
    target: (Category, SchemaVersion),
    columns: &[Column],
) -> usize {
    if let Some(i) = cache.iter().position(|(t, _)| *t == target) {
        return i;
    }
    let (c, v) = target;
    let types = columns
        .iter()
        .map(|col| match col {
            Column::Envelope(_) => (None, None),
            Column::Payload(segs) => {
                let mut path: Vec<&str> = segs.iter().map(String::as_str).collect();
                let ty = schemas.type_at(c, v, &path);
                path.push("0");
                let items = if ty == Some(JsonType::Array) {
                    schemas.type_at(c, v, &path)
                } else {
                    None
                };
                (ty, items)
            }
        })
        .collect();
    cache.push((target, types));
    cache.len() - 1
}

/// A cell typed by the schema type at its place; a cell that does not parse stays a string.
fn scalar(ty: Option<JsonType>, cell: &str) -> Value {
    let parsed = match ty {
        Some(JsonType::Integer) => parse_integer(cell.trim()),
        Some(JsonType::Number) => parse_number(cell.trim()),
        Some(JsonType::Boolean) => match cell.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(Value::Bool(true)),
            "false" | "0" => Some(Value::Bool(false)),
            _ => None,
        },
        _ => None,
    };
    parsed.unwrap_or_else(|| Value::String(cell.to_owned()))
}

/// Puts `value` at `path` inside `obj`, creating the intermediate objects.
fn insert_path(obj: &mut Map<String, Value>, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = obj;
    for seg in parents {
        let child = node
            .entry(seg.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !child.is_object() {
            *child = Value::Object(Map::new());
        }
        let Value::Object(map) = child else {
            return;
        };
        node = map;
    }
    node.insert(last.clone(), value);
}

impl<R: Read> RowReader for CsvRows<'_, R> {
    fn next_row(&mut self) -> Result<Option<RowItem>, FileError> {
        let columns = match self.columns.take() {
            Some(c) => c,
            None => self.read_header()?,
        };
        let result = (|| {
            let Some((line, oversize)) = self.next_record()? else {
                return Ok(None);
            };
            self.row += 1;
            let item = if oversize {
                Err(too_large())
            } else {
                self.fields.decode(&self.buf);
                self.item(&columns, line)?
            };
            Ok(Some(RowItem {
                row: self.row,
                line,
                item,
            }))
        })();
        self.columns = Some(columns);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_parse_as_their_schema_type_or_stay_text() {
        assert_eq!(scalar(Some(JsonType::Boolean), "TRUE"), json!(true));
        assert_eq!(scalar(Some(JsonType::Boolean), " 0 "), json!(false));
        assert_eq!(scalar(Some(JsonType::Boolean), "yes"), json!("yes"));
        assert_eq!(scalar(Some(JsonType::Integer), " 42 "), json!(42));
        assert_eq!(scalar(Some(JsonType::Integer), "4.5"), json!("4.5"));
        assert_eq!(scalar(Some(JsonType::Number), "4.5"), json!(4.5));
        assert_eq!(scalar(Some(JsonType::Number), "1,5"), json!("1,5"));
        assert_eq!(scalar(Some(JsonType::String), " 07 "), json!(" 07 "));
        assert_eq!(scalar(None, "12"), json!("12"));
    }

    #[test]
    fn dotted_paths_build_nested_objects() {
        let mut obj = Map::new();
        insert_path(&mut obj, &["a".into(), "b".into()], json!(1));
        insert_path(&mut obj, &["a".into(), "c".into()], json!(2));
        insert_path(&mut obj, &["d".into()], json!(3));
        assert_eq!(Value::Object(obj), json!({ "a": { "b": 1, "c": 2 }, "d": 3 }));
    }
}
