//! The input side shared by the readers: a buffered byte source that skips a UTF-8 BOM, lets
//! only valid UTF-8 through (and, for XML, only characters XML allows), counts lines and
//! columns of what was consumed, and can cap how much one XML event may consume.
//!
//! Failures are found before the bytes are handed out: the valid prefix is served first, and
//! the failure surfaces as an `io::Error` at the exact place, its typed [`FileError`] kept for
//! [`Source::error`] (so its line is the line of the bad byte).

use crate::batch::FileError;
use std::io::{self, BufRead, Read};

const BUF_SIZE: usize = 64 * 1024;
const UTF8_BOM: &[u8] = &[0xEF, 0xBB, 0xBF];

/// A failure found ahead of the consumer, surfaced when it gets there.
#[derive(Debug, Clone)]
enum Pending {
    NotUtf8,
    NotXmlChar,
    Io(String),
}

/// See the module docs.
#[derive(Debug)]
pub(super) struct Source<R> {
    inner: R,
    format: &'static str,
    buf: Box<[u8]>,
    /// Next byte to hand out.
    pos: usize,
    /// End of the validated bytes (`pos..valid` may be handed out).
    valid: usize,
    /// End of the bytes read (`valid..end` is an incomplete UTF-8 sequence).
    end: usize,
    started: bool,
    eof: bool,
    xml_chars: bool,
    pending: Option<Pending>,
    failure: Option<FileError>,
    /// 1-based line of the next byte.
    pub(super) line: u64,
    /// 1-based column (in bytes) of the next byte.
    pub(super) column: u64,
    /// Bytes consumed so far (a BOM excluded).
    pub(super) consumed: u64,
    window_start: u64,
    window_cap: Option<u64>,
}

impl<R: Read> Source<R> {
    /// A source for `format` (used in [`FileError::Malformed`]).
    pub(super) fn new(inner: R, format: &'static str) -> Self {
        Self {
            inner,
            format,
            buf: vec![0; BUF_SIZE].into_boxed_slice(),
            pos: 0,
            valid: 0,
            end: 0,
            started: false,
            eof: false,
            xml_chars: false,
            pending: None,
            failure: None,
            line: 1,
            column: 1,
            consumed: 0,
            window_start: 0,
            window_cap: None,
        }
    }

    /// Also refuses characters XML does not allow, and caps what one window (see
    /// [`Self::open_window`]) may consume.
    pub(super) fn for_xml(inner: R, window_cap: u64) -> Self {
        let mut s = Self::new(inner, "xml");
        s.xml_chars = true;
        s.window_cap = Some(window_cap);
        s
    }

    /// Starts a new window: the window cap counts from here.
    pub(super) fn open_window(&mut self) {
        self.window_start = self.consumed;
    }

    /// The typed failure behind an `io::Error` this source returned (or an I/O failure).
    pub(super) fn error(&self, e: &io::Error) -> FileError {
        self.failure
            .clone()
            .unwrap_or_else(|| FileError::Io(e.to_string()))
    }

    /// The typed failure met so far, if any.
    pub(super) fn failure(&self) -> Option<FileError> {
        self.failure.clone()
    }

    /// A [`FileError::Malformed`] at the current line.
    pub(super) fn malformed(&self, reason: impl Into<String>) -> FileError {
        self.malformed_at(self.line, reason)
    }

    /// A [`FileError::Malformed`] at `line`.
    pub(super) fn malformed_at(&self, line: u64, reason: impl Into<String>) -> FileError {
        FileError::Malformed {
            format: self.format,
            line,
            reason: reason.into(),
        }
    }

    /// Records the pending failure as the typed one and returns the `io::Error` that carries it.
    fn surface(&mut self) -> io::Error {
        if self.failure.is_none() {
            let line = self.line;
            self.failure = Some(match self.pending.clone() {
                Some(Pending::NotUtf8) | None => FileError::NotUtf8 { line },
                Some(Pending::NotXmlChar) => {
                    self.malformed("the document contains a character not allowed in XML")
                }
                Some(Pending::Io(msg)) => FileError::Io(msg),
            });
        }
        io::Error::other("the batch file cannot be read further")
    }

    /// Reads until there are bytes to hand out, a pending failure, or the end of the input.
    fn refill(&mut self) {
        loop {
            if self.pos < self.valid || self.pending.is_some() {
                return;
            }
            // Keep the incomplete UTF-8 sequence, if any, at the front.
            self.buf.copy_within(self.valid..self.end, 0);
            self.end -= self.valid;
            self.pos = 0;
            self.valid = 0;
            if self.eof {
                if self.end > 0 {
                    self.pending = Some(Pending::NotUtf8);
                }
                return;
            }
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.pending = Some(Pending::Io(e.to_string()));
                    return;
                }
            }
            if !self.started {
                if self.end < UTF8_BOM.len() && !self.eof {
                    continue;
                }
                self.started = true;
                let head = &self.buf[..self.end];
                if head.starts_with(UTF8_BOM) {
                    self.pos = UTF8_BOM.len();
                    self.valid = UTF8_BOM.len();
                } else if head.starts_with(&[0xFE, 0xFF]) || head.starts_with(&[0xFF, 0xFE]) {
                    self.pending = Some(Pending::NotUtf8);
                    return;
                }
            }
            self.validate();
        }
    }

    /// Advances `valid` over the new bytes, stopping at the first bad one.
    fn validate(&mut self) {
        let chunk = &self.buf[self.valid..self.end];
        let (mut ok, bad) = match std::str::from_utf8(chunk) {
            Ok(_) => (chunk.len(), false),
            Err(e) => (e.valid_up_to(), e.error_len().is_some()),
        };
        if self.xml_chars
            && let Ok(text) = std::str::from_utf8(&chunk[..ok])
            && let Some((i, _)) = text.char_indices().find(|(_, c)| !crate::xml::is_xml_char(*c))
        {
            ok = i;
            self.pending = Some(Pending::NotXmlChar);
        }
        self.valid += ok;
        if bad && self.pending.is_none() {
            self.pending = Some(Pending::NotUtf8);
        }
    }
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for Source<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if let Some(cap) = self.window_cap
            && self.consumed - self.window_start > cap
        {
            if self.failure.is_none() {
                self.failure = Some(self.malformed(format!(
                    "a single element, text or markup is longer than {cap} bytes"
                )));
            }
            return Err(io::Error::other("the batch file cannot be read further"));
        }
        if self.failure.is_some() {
            return Err(io::Error::other("the batch file cannot be read further"));
        }
        self.refill();
        if self.pos == self.valid && self.pending.is_some() {
            return Err(self.surface());
        }
        Ok(&self.buf[self.pos..self.valid])
    }

    fn consume(&mut self, amt: usize) {
        let n = amt.min(self.valid - self.pos);
        for &b in &self.buf[self.pos..self.pos + n] {
            if b == b'\n' {
                self.line += 1;
                self.column = 1;
            } else {
                self.column += 1;
            }
        }
        self.pos += n;
        self.consumed += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its bytes `step` at a time, to split sequences across reads.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        step: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len() - self.at);
            out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn drain(data: &[u8], step: usize) -> (Vec<u8>, Option<FileError>, u64) {
        let mut src = Source::new(
            Trickle {
                data: data.to_vec(),
                at: 0,
                step,
            },
            "csv",
        );
        let mut out = Vec::new();
        loop {
            match src.fill_buf() {
                Ok([]) => return (out, None, src.line),
                Ok(b) => {
                    let n = b.len();
                    out.extend_from_slice(b);
                    src.consume(n);
                }
                Err(e) => {
                    let err = src.error(&e);
                    return (out, Some(err), src.line);
                }
            }
        }
    }

    #[test]
    fn a_bom_is_skipped_and_split_characters_pass() {
        let text = "\u{feff}Hà Nội\nĐà Nẵng\n";
        for step in [1, 2, 3, 7, 4096] {
            let (out, err, line) = drain(text.as_bytes(), step);
            assert_eq!(out, "Hà Nội\nĐà Nẵng\n".as_bytes(), "step {step}");
            assert_eq!(err, None);
            assert_eq!(line, 3);
        }
    }

    #[test]
    fn invalid_utf8_surfaces_at_its_line_after_the_valid_prefix() {
        let data = b"ok\nstill ok\nbad \xC3\x28 here\n";
        for step in [1, 3, 4096] {
            let (out, err, _) = drain(data, step);
            assert_eq!(out, b"ok\nstill ok\nbad ");
            assert_eq!(err, Some(FileError::NotUtf8 { line: 3 }));
        }
        let (_, err, _) = drain(b"abc\xE1\xBB", 2);
        assert_eq!(err, Some(FileError::NotUtf8 { line: 1 }));
        let (_, err, _) = drain(b"\xFF\xFEa\0", 4096);
        assert_eq!(err, Some(FileError::NotUtf8 { line: 1 }));
    }

    #[test]
    fn short_inputs_are_not_mistaken_for_a_bom() {
        assert_eq!(drain(b"", 1).0, b"");
        assert_eq!(drain(b"a", 1).0, b"a");
        assert_eq!(drain(b"\xEF\xBB\xBF", 1).0, b"");
    }
}
