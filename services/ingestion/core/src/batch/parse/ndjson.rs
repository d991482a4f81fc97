//! `ndjson` batch files: one record item per line; a bad line is a row error and reading goes
//! on at the next line.

use super::source::Source;
use super::{Ctx, MAX_ROW_BYTES, RowReader, not_json, too_large};
use crate::batch::{FileError, RowItem};
use std::io::{BufRead, Read};

/// Reads the lines of an NDJSON file.
#[derive(Debug)]
pub(super) struct NdjsonRows<'a, R> {
    src: Source<R>,
    ctx: Ctx<'a>,
    row: u64,
    /// The line being read.
    buf: Vec<u8>,
}

impl<'a, R: Read> NdjsonRows<'a, R> {
    pub(super) fn new(reader: R, ctx: Ctx<'a>) -> Self {
        Self {
            src: Source::new(reader, "ndjson"),
            ctx,
            row: 0,
            buf: Vec::new(),
        }
    }

    /// Reads one line (without its LF) into `buf`; `None` at the end of the file, `Some(true)`
    /// when the line is longer than the row limit (its content is then dropped).
    fn read_line(&mut self) -> Result<Option<bool>, FileError> {
        self.buf.clear();
        let mut oversize = false;
        let mut any = false;
        loop {
            let avail = match self.src.fill_buf() {
                Ok(b) => b,
                Err(e) => return Err(self.src.error(&e)),
            };
            if avail.is_empty() {
                return Ok(any.then_some(oversize));
            }
            any = true;
            let (take, ends) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (avail.len(), false),
            };
            if !oversize {
                if self.buf.len() + take > MAX_ROW_BYTES {
                    oversize = true;
                    self.buf = Vec::new();
                } else {
                    self.buf.extend_from_slice(&avail[..take]);
                }
            }
            self.src.consume(take + usize::from(ends));
            if ends {
                return Ok(Some(oversize));
            }
        }
    }
}

impl<R: Read> RowReader for NdjsonRows<'_, R> {
    fn next_row(&mut self) -> Result<Option<RowItem>, FileError> {
        loop {
            let line = self.src.line;
            let Some(oversize) = self.read_line()? else {
                return Ok(None);
            };
            if !oversize && self.buf.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
                continue;
            }
            self.row += 1;
            let item = if oversize {
                Err(too_large())
            } else {
                match serde_json::from_slice(&self.buf) {
                    Ok(v) => self.ctx.item_from(v),
                    Err(e) => Err(not_json("line", line, (e.column() as u64).max(1))),
                }
            };
            return Ok(Some(RowItem {
                row: self.row,
                line,
                item,
            }));
        }
    }
}
