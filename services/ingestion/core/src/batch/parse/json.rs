//! `json` batch files: a top-level array of record items, split element by element by a
//! byte-level scanner so that only one element is ever held in memory.

use super::source::Source;
use super::{Ctx, MAX_JSON_DEPTH, MAX_ROW_BYTES, RowReader, not_json, too_large};
use crate::batch::{FileError, RowItem};
use std::io::{BufRead, Read};

/// Where the scanner is in the array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before `[`.
    Open,
    /// After `[`: an element or `]`.
    First,
    /// After an element: `,` or `]`.
    Next,
    /// After `,`: an element.
    Element,
    /// After `]`: only whitespace.
    Closed,
}

/// Reads the elements of a JSON array file.
#[derive(Debug)]
pub(super) struct JsonRows<'a, R> {
    src: Source<R>,
    ctx: Ctx<'a>,
    state: State,
    row: u64,
    /// The element being read.
    buf: Vec<u8>,
    /// Closing brackets expected, innermost last.
    stack: Vec<u8>,
}

impl<'a, R: Read> JsonRows<'a, R> {
    pub(super) fn new(reader: R, ctx: Ctx<'a>) -> Self {
        Self {
            src: Source::new(reader, "json"),
            ctx,
            state: State::Open,
            row: 0,
            buf: Vec::new(),
            stack: Vec::new(),
        }
    }

    /// Skips JSON whitespace and returns the next byte, not consumed (`None` at the end).
    fn peek_non_ws(&mut self) -> Result<Option<u8>, FileError> {
        loop {
            let avail = match self.src.fill_buf() {
                Ok(b) => b,
                Err(e) => return Err(self.src.error(&e)),
            };
            if avail.is_empty() {
                return Ok(None);
            }
            match avail
                .iter()
                .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            {
                Some(i) => {
                    let b = avail[i];
                    self.src.consume(i);
                    return Ok(Some(b));
                }
                None => {
                    let n = avail.len();
                    self.src.consume(n);
                }
            }
        }
    }

    /// Reads one element: a container up to its closing bracket, a string up to its closing
    /// quote, a number or literal up to the whitespace, `,` or `]` after it.
    fn element(&mut self) -> Result<RowItem, FileError> {
        let (line, column) = (self.src.line, self.src.column);
        self.row += 1;
        self.buf.clear();
        self.stack.clear();
        let mut oversize = false;
        let mut in_string = false;
        let mut escaped = false;
        loop {
            let avail = match self.src.fill_buf() {
                Ok(b) => b,
                Err(e) => return Err(self.src.error(&e)),
            };
            if avail.is_empty() {
                return Err(self.src.malformed_at(
                    line,
                    "the file ends inside an array element that starts on this line",
                ));
            }
            let mut end = None;
            let mut broken = None;
            for (i, &b) in avail.iter().enumerate() {
                if in_string {
                    if escaped {
                        escaped = false;
                    } else if b == b'\\' {
                        escaped = true;
                    } else if b == b'"' {
                        in_string = false;
                        if self.stack.is_empty() {
                            end = Some(i + 1);
                            break;
                        }
                    }
                    continue;
                }
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => {
                        if self.stack.len() >= MAX_JSON_DEPTH {
                            broken = Some((i, "brackets are nested more than 128 levels deep"));
                            break;
                        }
                        self.stack.push(if b == b'{' { b'}' } else { b']' });
                    }
                    b'}' | b']' => match self.stack.pop() {
                        Some(close) if close == b => {
                            if self.stack.is_empty() {
                                end = Some(i + 1);
                                break;
                            }
                        }
                        Some(_) => {
                            broken = Some((i, "a closing bracket does not match its opening bracket"));
                            break;
                        }
                        // The `]` of the array, after a number or literal.
                        None if b == b']' => {
                            end = Some(i);
                            break;
                        }
                        None => {
                            broken = Some((i, "a } has no matching {"));
                            break;
                        }
                    },
                    // The end of a number or literal.
                    b',' | b' ' | b'\t' | b'\n' | b'\r' if self.stack.is_empty() => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let take = broken.map(|(i, _)| i).or(end).unwrap_or(avail.len());
            if !oversize {
                if self.buf.len() + take > MAX_ROW_BYTES {
                    oversize = true;
                    self.buf = Vec::new();
                } else {
                    self.buf.extend_from_slice(&avail[..take]);
                }
            }
            self.src.consume(take);
            if let Some((_, reason)) = broken {
                return Err(self.src.malformed(reason));
            }
            if end.is_some() {
                break;
            }
        }
        self.state = State::Next;
        let item = if oversize {
            Err(too_large())
        } else {
            match serde_json::from_slice(&self.buf) {
                Ok(v) => self.ctx.item_from(v),
                Err(e) => {
                    let (l, c) = (e.line() as u64, e.column() as u64);
                    let at_line = line + l.saturating_sub(1);
                    let at_column = if l <= 1 {
                        column + c.saturating_sub(1)
                    } else {
                        c.max(1)
                    };
                    Err(not_json("the array element", at_line, at_column))
                }
            }
        };
        Ok(RowItem {
            row: self.row,
            line,
            item,
        })
    }
}

impl<R: Read> RowReader for JsonRows<'_, R> {
    fn next_row(&mut self) -> Result<Option<RowItem>, FileError> {
        loop {
            let next = self.peek_non_ws()?;
            match (self.state, next) {
                (State::Open, Some(b'[')) => {
                    self.src.consume(1);
                    self.state = State::First;
                }
                (State::Open, Some(_)) => {
                    return Err(self
                        .src
                        .malformed("expected a JSON array ([) at the start of the file"));
                }
                (State::Open, None) => {
                    return Err(self.src.malformed("the file is empty: expected a JSON array"));
                }
                (State::First | State::Next, Some(b']')) => {
                    self.src.consume(1);
                    self.state = State::Closed;
                }
                (State::Next, Some(b',')) => {
                    self.src.consume(1);
                    self.state = State::Element;
                }
                (State::Next, Some(_)) => {
                    return Err(self.src.malformed("expected , or ] after an array element"));
                }
                (State::First, Some(b',')) | (State::Element, Some(b',' | b']')) => {
                    return Err(self.src.malformed("an array element is missing (an extra comma)"));
                }
                (State::First | State::Element, Some(_)) => return self.element().map(Some),
                (State::First | State::Next | State::Element, None) => {
                    return Err(self
                        .src
                        .malformed("the file ends before the array is closed with ]"));
                }
                (State::Closed, None) => return Ok(None),
                (State::Closed, Some(_)) => {
                    return Err(self
                        .src
                        .malformed("unexpected content after the end of the array"));
                }
            }
        }
    }
}
