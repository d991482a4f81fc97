//! Streaming row readers of the four batch file formats (R-ING-1 batch, R-ING-3): a byte stream
//! in, one [`RowItem`] at a time out, with memory bounded by one row whatever the file size.
//!
//! Every row becomes a record item: an object with the envelope fields `category`,
//! `schema_version`, `period`, `classification`, `priority`, `form`, `idempotency_key` and a
//! `payload` object, exactly what `POST /api/v1/records` accepts for one record. Envelope
//! fields a row does not carry are filled from the [`BatchDefaults`] (a row's own value always
//! wins, even an invalid one); `schema_version` defaults to a JSON number when it is an
//! integer. Items are *not* validated here: the caller runs [`crate::schema::parse_item`] on
//! each. A row that cannot even be turned into an item yields `item: Err(violations)` and
//! reading goes on; a file whose structure is broken yields one [`FileError`], after which the
//! iterator is finished.
//!
//! `row` is the 1-based position of the row (a CSV header and blank NDJSON/CSV lines are not
//! rows); `line` is the 1-based line where the row starts (lines end with LF; a CR before it is
//! part of the line end).
//!
//! # Limits and encodings (all formats)
//!
//! * A row may be at most [`MAX_ROW_BYTES`] (1 MiB). A longer row yields a row error
//!   [`ViolationCode::TooLarge`] at path `""` and reading goes on at the next row (JSON array,
//!   NDJSON, CSV, and XML records made of many events); a single XML text, tag or comment
//!   longer than that cannot be skipped and is a [`FileError::Malformed`].
//! * Input must be UTF-8; a leading UTF-8 BOM is skipped. Any invalid byte sequence, and a
//!   UTF-16 BOM, is [`FileError::NotUtf8`] with its line, for every format: a file in a legacy
//!   encoding (TCVN3, VNI, Windows-1258) is refused as a whole rather than producing one row error
//!   per line with diacritics.
//! * A failing read of the underlying stream is [`FileError::Io`].
//!
//! # `json`
//!
//! A top-level array of record items, split element by element by a byte-level scanner (strings,
//! escapes and bracket nesting are tracked; nesting is limited to [`MAX_JSON_DEPTH`]), then each
//! element parsed with `serde_json`. Leading whitespace and a BOM are allowed. Broken structure
//! (no `[`, mismatched brackets, a missing or extra comma, an unclosed array, content after `]`)
//! is [`FileError::Malformed`]. An element that is not valid JSON is a row error
//! [`ViolationCode::Invalid`]; one that is not an object is a row error [`ViolationCode::Type`].
//!
//! # `ndjson`
//!
//! One JSON object per line (LF or CRLF). Blank lines are skipped and are not rows. A line that
//! is not valid JSON is a row error [`ViolationCode::Invalid`] at path `""` with the detail
//! `line is not valid JSON: line L column C` (the content is never echoed); a value that is not
//! an object is a row error [`ViolationCode::Type`]. Reading always goes on at the next line.
//!
//! # `csv`
//!
//! UTF-8 (optional BOM), `,` delimiter, RFC 4180 quoting (a field starting with `"` may hold
//! commas, line breaks and `""` for a quote), LF or CRLF line ends, a header row first. Blank
//! lines are skipped. Column mapping:
//!
//! * `category`, `schema_version`, `period`, `classification`, `priority`, `form`,
//!   `idempotency_key` are envelope columns, all optional (the batch defaults fill them);
//! * every other column is a payload field. A dotted name maps to nested objects
//!   (`dimensions.province_code` → `{"dimensions":{"province_code":…}}`); a column may also be
//!   written with a `payload.` prefix (`payload.note`, or `payload.category` for a payload field
//!   that shares a name with an envelope field);
//! * header names are trimmed; an empty name, an empty dotted segment, two columns naming the
//!   same field, or a column that is both a field and the parent of another
//!   (`dimensions` and `dimensions.channel`) make the file [`FileError::Malformed`];
//! * cells are typed by the payload schema of the row's category and version (the row's own
//!   `category`/`schema_version` cells, else the defaults; when those are unknown every cell
//!   stays a string and validation reports the envelope): `integer` and `number` cells are
//!   parsed (decimal point, no thousands separator), `boolean` cells accept `true`/`false`/`1`/`0`
//!   in any case, array-of-scalars fields take `|`-separated values (each trimmed and typed by
//!   the array's items), everything else is a string as written. A cell that does not parse
//!   stays a string, so validation reports `type` at its path. `schema_version` cells become a
//!   number when they are an integer. An empty cell means the field is absent;
//! * arrays of objects (`failure_reasons`…) cannot be written in CSV: use another format;
//! * a record with more or fewer fields than the header is a row error
//!   [`ViolationCode::Invalid`] at path `""` (`expected N fields, got M`); a quoted field still
//!   open at the end of the file is [`FileError::Malformed`].
//!
//! # `xml`
//!
//! The real-time XML wire format of [`crate::xml`]: a `<records>` root of `<record>` elements
//! (or a single `<record>` root), optional namespace `urn:etxhub:ingestion:v1`, converted with
//! the same schema-directed rules (a record without its own `category`/`schema_version` is
//! typed by the defaults'). The document is read with quick-xml's pull reader, one
//! `<record>` at a time. A DTD or any markup declaration (`<!DOCTYPE`, `<!ENTITY`…) is
//! [`FileError::DtdForbidden`] as soon as it is met, so entity expansion (billion laughs) and
//! external entities (XXE) never happen; processing instructions, undefined entities, other
//! encodings, characters not allowed in XML and elements nested deeper than
//! [`crate::xml::MAX_DEPTH`] are [`FileError::Malformed`].

mod csv;
mod json;
mod ndjson;
mod source;
mod xml;

use super::{BatchDefaults, BatchFormat, FileError, RowItem};
use crate::schema::SchemaRegistry;
use etx_domain::{FieldViolation, ViolationCode};
use serde_json::{Map, Value};

/// The largest row accepted, in bytes of the file (1 MiB).
pub const MAX_ROW_BYTES: usize = 1 << 20;

/// The deepest bracket nesting accepted in a JSON array file (serde_json's own limit).
pub const MAX_JSON_DEPTH: usize = 128;

/// Reads the rows of a batch file one at a time. After an `Err`, the iterator is finished.
pub fn read_rows<'a, R: std::io::BufRead + 'a>(
    format: BatchFormat,
    reader: R,
    schemas: &'a SchemaRegistry,
    defaults: &'a BatchDefaults,
) -> Box<dyn Iterator<Item = Result<RowItem, FileError>> + 'a> {
    let ctx = Ctx { schemas, defaults };
    match format {
        BatchFormat::Json => Box::new(Rows::new(json::JsonRows::new(reader, ctx))),
        BatchFormat::Ndjson => Box::new(Rows::new(ndjson::NdjsonRows::new(reader, ctx))),
        BatchFormat::Csv => Box::new(Rows::new(csv::CsvRows::new(reader, ctx))),
        BatchFormat::Xml => Box::new(Rows::new(xml::XmlRows::new(reader, ctx))),
    }
}

/// What every reader needs besides its input.
#[derive(Debug, Clone, Copy)]
struct Ctx<'a> {
    schemas: &'a SchemaRegistry,
    defaults: &'a BatchDefaults,
}

impl Ctx<'_> {
    /// Fills the envelope fields the item does not carry from the defaults.
    fn apply_defaults(&self, obj: &mut Map<String, Value>) {
        let d = self.defaults;
        let fields = [
            ("category", &d.category),
            ("schema_version", &d.schema_version),
            ("period", &d.period),
            ("classification", &d.classification),
            ("priority", &d.priority),
            ("form", &d.form),
        ];
        for (name, value) in fields {
            if let Some(v) = value
                && !obj.contains_key(name)
            {
                let v = if name == "schema_version" {
                    version_value(v)
                } else {
                    Value::String(v.clone())
                };
                obj.insert(name.to_owned(), v);
            }
        }
    }

    /// A parsed JSON value as a row: an object gets the defaults, anything else is a row error.
    fn item_from(&self, value: Value) -> Result<Value, Vec<FieldViolation>> {
        match value {
            Value::Object(mut obj) => {
                self.apply_defaults(&mut obj);
                Ok(Value::Object(obj))
            }
            _ => Err(vec![
                FieldViolation::new("", ViolationCode::Type).with_detail("expected type: object"),
            ]),
        }
    }
}

/// A `schema_version` written as text: a number when it is an integer, else the text.
fn version_value(s: &str) -> Value {
    let t = s.trim();
    if let Ok(i) = t.parse::<i64>() {
        Value::from(i)
    } else if let Ok(u) = t.parse::<u64>() {
        Value::from(u)
    } else {
        Value::String(s.to_owned())
    }
}

/// The row error of a row longer than [`MAX_ROW_BYTES`].
fn too_large() -> Vec<FieldViolation> {
    vec![
        FieldViolation::new("", ViolationCode::TooLarge)
            .with_detail(format!("the row is longer than {MAX_ROW_BYTES} bytes (1 MiB)")),
    ]
}

/// The row error of a row that is not valid JSON (position only, never the content).
fn not_json(what: &str, line: u64, column: u64) -> Vec<FieldViolation> {
    vec![
        FieldViolation::new("", ViolationCode::Invalid)
            .with_detail(format!("{what} is not valid JSON: line {line} column {column}")),
    ]
}

/// One format's reader: `Ok(None)` at the end of the file.
trait RowReader {
    fn next_row(&mut self) -> Result<Option<RowItem>, FileError>;
}

/// Turns a [`RowReader`] into an iterator that stops after the end or the first file error.
struct Rows<T> {
    inner: T,
    done: bool,
}

impl<T> Rows<T> {
    fn new(inner: T) -> Self {
        Self { inner, done: false }
    }
}

impl<T: RowReader> Iterator for Rows<T> {
    type Item = Result<RowItem, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.inner.next_row() {
            Ok(Some(row)) => Some(Ok(row)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_versions_become_numbers() {
        assert_eq!(version_value("1"), Value::from(1));
        assert_eq!(version_value(" 2 "), Value::from(2));
        assert_eq!(version_value("v1"), Value::from("v1"));
        assert_eq!(version_value("1.0"), Value::from("1.0"));
    }
}
