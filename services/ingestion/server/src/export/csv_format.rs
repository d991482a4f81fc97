//! CSV exports: UTF-8 (with a byte-order mark by default, so that Excel reads Vietnamese
//! diacritics correctly), RFC 4180 quoting and CRLF line ends, one header row.
//!
//! Formula-injection guard: a cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage
//! return is written with a leading `'`, so a spreadsheet shows it as text instead of running
//! it. Readers that want the exact value strip that one `'`.

use super::ExportError;
use super::source::{COLUMNS, ExportRecord};
use std::borrow::Cow;

/// The UTF-8 byte-order mark.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Whether a spreadsheet would read a cell starting like this as a formula.
pub fn looks_like_formula(cell: &str) -> bool {
    matches!(
        cell.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    )
}

fn guarded(cell: Cow<'_, str>) -> Cow<'_, str> {
    if looks_like_formula(&cell) {
        Cow::Owned(format!("'{cell}"))
    } else {
        cell
    }
}

fn writer(buf: &mut Vec<u8>) -> csv::Writer<&mut Vec<u8>> {
    csv::WriterBuilder::new()
        .has_headers(false)
        .terminator(csv::Terminator::CRLF)
        .from_writer(buf)
}

/// Appends the byte-order mark (if asked) and the header row.
pub fn head(bom: bool, buf: &mut Vec<u8>) -> Result<(), ExportError> {
    if bom {
        buf.extend_from_slice(BOM);
    }
    let mut w = writer(buf);
    w.write_record(COLUMNS)?;
    w.flush()?;
    Ok(())
}

/// Appends one line per record.
pub fn rows(records: &[ExportRecord], buf: &mut Vec<u8>) -> Result<(), ExportError> {
    let mut w = writer(buf);
    for r in records {
        w.write_record(r.cells().map(|c| guarded(c).into_owned()))?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::source::tests::sample;

    #[test]
    fn a_file_is_a_bom_a_header_and_quoted_rows() {
        let mut buf = Vec::new();
        head(true, &mut buf).unwrap();
        rows(&[sample(r#"{"note":"Số liệu, \"quý\" 3"}"#)], &mut buf).unwrap();
        assert!(buf.starts_with(BOM));
        let text = std::str::from_utf8(&buf[3..]).unwrap();
        let mut lines = text.split("\r\n");
        assert_eq!(lines.next().unwrap(), COLUMNS.join(","));
        let row = lines.next().unwrap();
        assert!(
            row.ends_with(r#","{""note"":""Số liệu, \""quý\"" 3""}""#),
            "{row}"
        );
        assert_eq!(lines.next(), Some(""));
    }

    #[test]
    fn no_bom_when_not_asked() {
        let mut buf = Vec::new();
        head(false, &mut buf).unwrap();
        assert!(buf.starts_with(b"record_id,"));
    }

    #[test]
    fn formula_like_cells_are_prefixed_with_a_quote() {
        for s in ["=SUM(A1:A2)", "+1", "-2", "@cmd", "\tx", "\rx"] {
            assert_eq!(guarded(Cow::Borrowed(s)), format!("'{s}"));
        }
        for s in ["{\"a\":1}", "2026-10", "", "a=b"] {
            assert_eq!(guarded(Cow::Borrowed(s)), s);
        }
        let mut r = sample("{}");
        r.period = "=1+1".into();
        let mut buf = Vec::new();
        rows(&[r], &mut buf).unwrap();
        assert!(String::from_utf8(buf).unwrap().contains(",'=1+1,"));
    }
}
