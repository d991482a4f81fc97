//! XLSX exports: one worksheet named `records`, a bold header row, one row per record.
//!
//! The worksheet runs in rust_xlsxwriter's *constant memory* mode: only the current row is in
//! memory, earlier rows are written to an unnamed temporary file (in `TMPDIR`, deleted when
//! closed). When the last row is written the workbook is zipped straight into the response, so
//! memory stays bounded whatever the export's size; the disk needs about the size of the
//! uncompressed sheet XML. The work is blocking, so it runs on a blocking thread.
//!
//! Every text cell is written as a string cell, never as a formula, so text that begins with
//! `=`, `+`, `-` or `@` stays text. `schema_version` is a number cell. A payload longer than
//! Excel's limit of 32,767 characters per cell continues in the next cells of the row (the
//! columns after `payload`, which have no header): joining them gives the whole JSON text.

use super::source::{COLUMNS, ExportRecord};
use super::{Chunk, ExportError};
use bytes::Bytes;
use rust_xlsxwriter::{ColNum, Format, RowNum, Workbook, Worksheet, XlsxError};
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc;

/// Most records one worksheet holds: Excel's 1,048,576 rows less the header.
pub const MAX_RECORDS: u64 = 1_048_575;

/// Excel's limit of characters (UTF-16 code units) in one cell.
const MAX_CELL_UNITS: usize = 32_767;

/// What the reader of the database hands the worksheet writer.
#[derive(Debug)]
pub enum Feed {
    /// The next page of records.
    Rows(Vec<ExportRecord>),
    /// Every record was handed over: finish the workbook.
    End,
}

/// How the writer stopped without error.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The workbook was written out.
    Written,
    /// The feed stopped before [`Feed::End`]; nothing was written out.
    Cancelled,
}

/// Writes the workbook from `feed` into `out` (blocking: run it on a blocking thread).
pub fn write(feed: &mut mpsc::Receiver<Feed>, out: &mut (impl Write + Send)) -> Result<Outcome, ExportError> {
    let mut workbook = Workbook::new();
    // ZIP64 costs 20 bytes and removes the 4 GiB limit of a sheet.
    workbook.use_zip_large_file(true);
    let sheet = workbook.add_worksheet_with_constant_memory()?;
    header(sheet)?;
    let mut row: RowNum = 1;
    loop {
        match feed.blocking_recv() {
            Some(Feed::Rows(records)) => {
                for r in &records {
                    if u64::from(row) > MAX_RECORDS {
                        return Err(ExportError::TooManyRows);
                    }
                    record(sheet, row, r)?;
                    row += 1;
                }
            }
            Some(Feed::End) => break,
            None => return Ok(Outcome::Cancelled),
        }
    }
    workbook.save_to_writer(&mut *out)?;
    out.flush()?;
    Ok(Outcome::Written)
}

fn header(sheet: &mut Worksheet) -> Result<(), XlsxError> {
    sheet.set_name("records")?;
    let bold = Format::new().set_bold();
    for (c, name) in (0..).zip(COLUMNS) {
        sheet.write_string_with_format(0, c, name, &bold)?;
    }
    let widths: [f64; 12] = [
        38.0, 38.0, 12.0, 8.0, 10.0, 14.0, 9.0, 8.0, 10.0, 10.0, 32.0, 100.0,
    ];
    for (c, w) in (0..).zip(widths) {
        sheet.set_column_width(c, w)?;
    }
    sheet.set_freeze_panes(1, 0)?;
    Ok(())
}

fn record(sheet: &mut Worksheet, row: RowNum, r: &ExportRecord) -> Result<(), XlsxError> {
    let cells = r.cells();
    let payload_col = (COLUMNS.len() - 1) as ColNum;
    for (c, cell) in (0..payload_col).zip(&cells) {
        if COLUMNS[usize::from(c)] == "schema_version" {
            sheet.write_number(row, c, f64::from(r.schema_version))?;
        } else {
            sheet.write_string(row, c, cell.as_ref())?;
        }
    }
    for (c, part) in (payload_col..).zip(cell_parts(r.payload.get())) {
        sheet.write_string(row, c, part)?;
    }
    Ok(())
}

/// Splits text into pieces that each fit one cell, on character boundaries.
fn cell_parts(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut units = 0;
    for (i, ch) in text.char_indices() {
        if units + ch.len_utf16() > MAX_CELL_UNITS {
            parts.push(&text[start..i]);
            start = i;
            units = 0;
        }
        units += ch.len_utf16();
    }
    parts.push(&text[start..]);
    parts
}

/// Sends what the workbook writes to the response in chunks of about 64 KiB.
#[derive(Debug)]
pub struct ChunkWriter {
    tx: mpsc::Sender<Chunk>,
    buf: Vec<u8>,
    started: Arc<AtomicBool>,
}

const CHUNK_BYTES: usize = 64 * 1024;

impl ChunkWriter {
    /// A writer into `tx`; `started` turns true once the first chunk was handed over.
    pub fn new(tx: mpsc::Sender<Chunk>, started: Arc<AtomicBool>) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(CHUNK_BYTES),
            started,
        }
    }

    fn send(&mut self) -> io::Result<()> {
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
        self.started.store(true, Ordering::Release);
        Ok(())
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::source::tests::sample;

    #[test]
    fn long_text_is_split_into_cells_on_character_boundaries() {
        assert_eq!(cell_parts("{}"), vec!["{}"]);
        let long = "ệ".repeat(MAX_CELL_UNITS + 10);
        let parts = cell_parts(&long);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].chars().count(), MAX_CELL_UNITS);
        assert_eq!(parts.concat(), long);
        // A character outside the BMP takes two UTF-16 units and is never cut.
        let astral = "😀".repeat(MAX_CELL_UNITS);
        let parts = cell_parts(&astral);
        assert!(parts.iter().all(|p| p.encode_utf16().count() <= MAX_CELL_UNITS));
        assert_eq!(parts.concat(), astral);
    }

    #[test]
    fn a_workbook_is_written_only_after_the_end_of_the_feed() {
        let (tx, mut rx) = mpsc::channel(4);
        let mut r = sample(r#"{"note":"Thừa Thiên Huế"}"#);
        r.period = "=1+1".into();
        tx.blocking_send(Feed::Rows(vec![r, sample("{}")])).unwrap();
        tx.blocking_send(Feed::End).unwrap();
        let mut out = Vec::new();
        assert_eq!(write(&mut rx, &mut out).unwrap(), Outcome::Written);
        assert!(out.starts_with(b"PK"));

        let (tx, mut rx) = mpsc::channel(4);
        tx.blocking_send(Feed::Rows(vec![sample("{}")])).unwrap();
        drop(tx);
        let mut out = Vec::new();
        assert_eq!(write(&mut rx, &mut out).unwrap(), Outcome::Cancelled);
        assert!(out.is_empty());
    }
}
