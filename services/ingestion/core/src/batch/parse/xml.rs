//! `xml` batch files: the real-time XML wire format ([`crate::xml`]) read with quick-xml's pull
//! reader, one `<record>` at a time, with the same safety rules (no DTD, no entity
//! declarations, no custom entities, no processing instructions, bounded depth, UTF-8 only) and
//! the same schema-directed conversion.

use super::source::Source;
use super::{Ctx, MAX_ROW_BYTES, RowReader, too_large};
use crate::batch::{FileError, RowItem};
use crate::xml::{Element, MAX_DEPTH, error_reason, is_dtd_markup, local, record_to_json, resolve_ref};
use etx_domain::FieldViolation;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;
use serde_json::Value;
use std::io::{BufRead, Read};

/// Where the reader is in the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the root element.
    Prolog,
    /// Inside `<records>`.
    Records,
    /// After the root element.
    After,
}

/// One event, detached from the read buffer.
#[derive(Debug)]
enum Ev {
    Decl { utf8: bool },
    DocType,
    Pi,
    Comment,
    Start { name: String, attrs_ok: bool },
    Empty { name: String, attrs_ok: bool },
    End,
    Text(String),
    CData(String),
    Ref(Option<char>),
    Eof,
}

fn is_blank(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

fn start(e: &BytesStart<'_>) -> (String, bool) {
    let name = local(e.name().into_inner()).to_owned();
    let attrs_ok = e.attributes().all(|a| a.is_ok());
    (name, attrs_ok)
}

/// Reads the records of an XML file.
#[derive(Debug)]
pub(super) struct XmlRows<'a, R: Read> {
    reader: Reader<Source<R>>,
    buf: Vec<u8>,
    ctx: Ctx<'a>,
    phase: Phase,
    first: bool,
    row: u64,
}

impl<'a, R: Read> XmlRows<'a, R> {
    pub(super) fn new(reader: R, ctx: Ctx<'a>) -> Self {
        let mut reader = Reader::from_reader(Source::for_xml(reader, MAX_ROW_BYTES as u64));
        {
            let cfg = reader.config_mut();
            cfg.check_end_names = true;
            cfg.check_comments = true;
            cfg.expand_empty_elements = false;
            cfg.allow_dangling_amp = false;
            cfg.allow_unmatched_ends = false;
            cfg.trim_text(false);
        }
        Self {
            reader,
            buf: Vec::new(),
            ctx,
            phase: Phase::Prolog,
            first: true,
            row: 0,
        }
    }

    fn src(&self) -> &Source<R> {
        self.reader.get_ref()
    }

    fn malformed(&self, reason: &str) -> FileError {
        self.src().malformed(reason)
    }

    /// Reads the next event.
    fn read(&mut self) -> Result<Ev, FileError> {
        self.buf.clear();
        self.reader.get_mut().open_window();
        let ev = match self.reader.read_event_into(&mut self.buf) {
            Ok(ev) => ev,
            Err(e) => return Err(self.read_error(&e)),
        };
        let ev = match ev {
            Event::Decl(d) => Ev::Decl {
                utf8: match d.encoding() {
                    None => true,
                    Some(Ok(enc)) => enc.eq_ignore_ascii_case("utf-8") || enc.eq_ignore_ascii_case("utf8"),
                    Some(Err(_)) => false,
                },
            },
            Event::DocType(_) => Ev::DocType,
            Event::PI(_) => Ev::Pi,
            Event::Comment(_) => Ev::Comment,
            Event::Start(e) => {
                let (name, attrs_ok) = start(&e);
                Ev::Start { name, attrs_ok }
            }
            Event::Empty(e) => {
                let (name, attrs_ok) = start(&e);
                Ev::Empty { name, attrs_ok }
            }
            Event::End(_) => Ev::End,
            Event::Text(t) => Ev::Text(t.xml10_content().into_owned()),
            Event::CData(c) => Ev::CData(c.xml10_content().into_owned()),
            Event::GeneralRef(r) => Ev::Ref(resolve_ref(&r)),
            Event::Eof => Ev::Eof,
        };
        if let Some(failure) = self.src().failure() {
            return Err(failure);
        }
        let was_first = std::mem::replace(&mut self.first, false);
        match ev {
            Ev::Decl { .. } if !was_first => Err(self.malformed("the XML declaration must come first")),
            Ev::Decl { utf8: false } => Err(self.malformed("unsupported encoding: only UTF-8 is accepted")),
            Ev::DocType => Err(FileError::DtdForbidden),
            Ev::Pi => Err(self.malformed("processing instructions are not accepted")),
            Ev::Ref(None) => Err(self.malformed(
                "undefined entity or invalid character reference (only &lt; &gt; &amp; &apos; &quot; and &#N; are accepted)",
            )),
            Ev::Start { attrs_ok: false, .. } | Ev::Empty { attrs_ok: false, .. } => {
                Err(self.malformed("malformed attribute"))
            }
            ev => Ok(ev),
        }
    }

    /// Maps a reader error, without quoting the document.
    fn read_error(&mut self, e: &quick_xml::Error) -> FileError {
        // `<!ENTITY` & co. outside a DOCTYPE stop the reader right after `<!`.
        if self.buf.starts_with(b"<!") {
            let mut probe: Vec<u8> = self.buf.iter().take(10).copied().collect();
            if probe.len() < 10
                && let Ok(more) = self.reader.get_mut().fill_buf()
            {
                probe.extend(more.iter().take(10 - probe.len()));
            }
            if is_dtd_markup(&probe) {
                return FileError::DtdForbidden;
            }
        }
        if let Some(failure) = self.src().failure() {
            return failure;
        }
        if let quick_xml::Error::Io(io) = e {
            return FileError::Io(io.to_string());
        }
        match error_reason(e) {
            Some(reason) => self.malformed(reason),
            None => FileError::DtdForbidden,
        }
    }

    /// Reads one `<record>` whose start tag was just read (`depth` is its depth), up to its
    /// end tag, and converts it.
    fn record(&mut self, name: String, line: u64, at: u64, depth: usize) -> Result<RowItem, FileError> {
        let mut stack = vec![Element {
            name,
            offset: at,
            ..Element::default()
        }];
        let mut oversize = false;
        loop {
            if !oversize && self.src().consumed - at > MAX_ROW_BYTES as u64 {
                oversize = true;
                for el in &mut stack {
                    el.children = Vec::new();
                    el.text = String::new();
                }
            }
            let offset = self.src().consumed;
            match self.read()? {
                // The new element would be at depth `depth + stack.len()`.
                Ev::Start { .. } | Ev::Empty { .. } if depth + stack.len() > MAX_DEPTH => {
                    return Err(
                        self.malformed(&format!("elements are nested more than {MAX_DEPTH} levels deep"))
                    );
                }
                Ev::Start { name, .. } => stack.push(Element {
                    name: if oversize { String::new() } else { name },
                    offset,
                    ..Element::default()
                }),
                Ev::Empty { name, .. } => {
                    if !oversize && let Some(parent) = stack.last_mut() {
                        parent.children.push(Element {
                            name,
                            offset,
                            ..Element::default()
                        });
                    }
                }
                Ev::End => {
                    let Some(el) = stack.pop() else {
                        return Err(self.malformed("an end tag has no start tag"));
                    };
                    if !el.children.is_empty() && !is_blank(&el.text) {
                        return Err(self.malformed("an element mixes text and child elements"));
                    }
                    match stack.last_mut() {
                        Some(parent) => {
                            if !oversize {
                                parent.children.push(el);
                            }
                        }
                        None => {
                            self.row += 1;
                            let item = if oversize {
                                Err(too_large())
                            } else {
                                self.convert(el)
                            };
                            return Ok(RowItem {
                                row: self.row,
                                line,
                                item,
                            });
                        }
                    }
                }
                Ev::Text(t) | Ev::CData(t) => {
                    if !oversize && let Some(el) = stack.last_mut() {
                        el.text.push_str(&t);
                    }
                }
                Ev::Ref(Some(c)) => {
                    if !oversize && let Some(el) = stack.last_mut() {
                        el.text.push(c);
                    }
                }
                Ev::Comment => {}
                Ev::Eof => return Err(self.malformed("an element is not closed")),
                // `read` refuses the others.
                Ev::Decl { .. } | Ev::DocType | Ev::Pi | Ev::Ref(None) => {
                    return Err(self.malformed("unexpected markup"));
                }
            }
        }
    }

    /// A `<record/>`.
    fn empty_record(&mut self, name: String, line: u64, at: u64) -> RowItem {
        self.row += 1;
        let el = Element {
            name,
            offset: at,
            ..Element::default()
        };
        RowItem {
            row: self.row,
            line,
            item: self.convert(el),
        }
    }

    /// Converts a `<record>` like the real-time XML converter, its payload typed by the
    /// record's own category and version or, when it has none, by the defaults'.
    fn convert(&self, mut record: Element) -> Result<Value, Vec<FieldViolation>> {
        let defaults = self.ctx.defaults;
        let mut lent = Vec::new();
        for (name, value) in [
            ("category", &defaults.category),
            ("schema_version", &defaults.schema_version),
        ] {
            if let Some(value) = value
                && !record.children.iter().any(|c| c.name == name)
            {
                record.children.push(Element {
                    name: name.to_owned(),
                    text: value.clone(),
                    ..Element::default()
                });
                lent.push(name);
            }
        }
        let mut value = record_to_json(self.ctx.schemas, &record);
        // The defaults lent for typing are applied as in every format (a number version).
        if let Some(obj) = value.as_object_mut() {
            for name in lent {
                obj.remove(name);
            }
        }
        self.ctx.item_from(value)
    }
}

impl<R: Read> RowReader for XmlRows<'_, R> {
    fn next_row(&mut self) -> Result<Option<RowItem>, FileError> {
        loop {
            let (line, at) = (self.src().line, self.src().consumed);
            let ev = self.read()?;
            match (self.phase, ev) {
                (_, Ev::Decl { .. } | Ev::Comment) => {}
                (Phase::Prolog | Phase::After, Ev::Text(t)) if is_blank(&t) => {}
                (Phase::Prolog | Phase::After, Ev::Ref(Some(c))) if c.is_whitespace() => {}
                (Phase::Prolog | Phase::After, Ev::Text(_) | Ev::CData(_) | Ev::Ref(_)) => {
                    return Err(self.malformed("text outside the root element"));
                }
                (Phase::Prolog, Ev::Start { name, .. }) => match name.as_str() {
                    "records" => self.phase = Phase::Records,
                    "record" => {
                        self.phase = Phase::After;
                        return self.record(name, line, at, 1).map(Some);
                    }
                    _ => return Err(self.malformed("the root element must be <records> or <record>")),
                },
                (Phase::Prolog, Ev::Empty { name, .. }) => match name.as_str() {
                    "records" => self.phase = Phase::After,
                    "record" => {
                        self.phase = Phase::After;
                        return Ok(Some(self.empty_record(name, line, at)));
                    }
                    _ => return Err(self.malformed("the root element must be <records> or <record>")),
                },
                (Phase::Prolog | Phase::After, Ev::End) => {
                    return Err(self.malformed("an end tag has no start tag"));
                }
                (Phase::Prolog, Ev::Eof) => {
                    return Err(self.malformed("the document has no root element"));
                }
                (Phase::Records, Ev::Start { name, .. }) if name == "record" => {
                    return self.record(name, line, at, 2).map(Some);
                }
                (Phase::Records, Ev::Empty { name, .. }) if name == "record" => {
                    return Ok(Some(self.empty_record(name, line, at)));
                }
                (Phase::Records, Ev::Start { .. } | Ev::Empty { .. }) => {
                    return Err(self.malformed("expected only <record> elements inside <records>"));
                }
                (Phase::Records, Ev::Text(t) | Ev::CData(t)) => {
                    if !is_blank(&t) {
                        return Err(self.malformed("unexpected text inside <records>"));
                    }
                }
                (Phase::Records, Ev::Ref(c)) => {
                    if !c.is_some_and(char::is_whitespace) {
                        return Err(self.malformed("unexpected text inside <records>"));
                    }
                }
                (Phase::Records, Ev::End) => self.phase = Phase::After,
                (Phase::Records, Ev::Eof) => return Err(self.malformed("an element is not closed")),
                (Phase::After, Ev::Start { .. } | Ev::Empty { .. }) => {
                    return Err(self.malformed("more than one root element"));
                }
                (Phase::After, Ev::Eof) => return Ok(None),
                // `read` refuses these.
                (_, Ev::DocType | Ev::Pi) => return Err(self.malformed("unexpected markup")),
            }
        }
    }
}
