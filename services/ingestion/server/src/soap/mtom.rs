//! MTOM/XOP requests (W3C SOAP MTOM, XOP 1.0): `Content-Type: multipart/related;
//! type="application/xop+xml"; boundary=…; start="<root>"; start-info="text/xml"` (SOAP 1.1)
//! or `start-info="application/soap+xml"` (SOAP 1.2). The root part is the envelope
//! (`application/xop+xml; type="text/xml"` or `…type="application/soap+xml"`); the only place
//! an `<xop:Include href="cid:…"/>` may stand is `SubmitBatch/file`, whose bytes are then the
//! raw content of the MIME part with that `Content-ID` (transfer encoding `binary`, `8bit` or
//! `7bit`). The body is already buffered (capped by `limits.max_body_bytes`); parts are slices
//! of it, not copies. Delimiter lines end with CRLF (RFC 2046 §5.1.1).

use super::envelope::{Call, media_type};
use super::fault::Fault;
use super::{Operation, SoapVersion};
use bytes::Bytes;
use etx_domain::ErrorCode;
use etx_http_kit::ApiError;
use etx_ingestion_core::xml::XmlNode;
use std::ops::Range;

/// The namespace of `xop:Include`.
pub(crate) const XOP: &str = "http://www.w3.org/2004/08/xop/include";

/// An unpacked XOP package.
#[derive(Debug)]
pub(crate) struct Package {
    /// The SOAP version of the root part.
    pub version: SoapVersion,
    /// A SOAP 1.2 `action` given in `start-info` or in the root part's `type`.
    pub action: Option<String>,
    /// The envelope's bytes.
    pub root: Bytes,
    /// The other parts.
    parts: Vec<Part>,
}

/// One MIME part other than the root.
#[derive(Debug)]
struct Part {
    /// The `Content-ID`, without its angle brackets.
    id: Option<String>,
    /// The `Content-Transfer-Encoding`, lower-cased.
    encoding: Option<String>,
    /// The content.
    body: Bytes,
}

fn invalid(detail: impl Into<String>) -> Fault {
    Fault::from(ApiError::new(ErrorCode::InvalidParameter).with_detail(detail))
}

fn malformed(detail: impl Into<String>) -> Fault {
    Fault::from(ApiError::new(ErrorCode::MalformedXml).with_detail(detail))
}

/// Whether a Content-Type is `multipart/related` (an MTOM request, or a refused one).
pub(crate) fn is_package(content_type: &str) -> bool {
    media_type(content_type).0 == "multipart/related"
}

/// The SOAP version the `start-info` parameter of a `multipart/related` Content-Type names.
pub(crate) fn start_info_version(content_type: &str) -> Option<SoapVersion> {
    let (essence, params) = media_type(content_type);
    if essence != "multipart/related" {
        return None;
    }
    params
        .iter()
        .find(|(k, _)| k == "start-info")
        .and_then(|(_, v)| SoapVersion::from_content_type(v))
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// `<id>` → `id` (surrounding spaces and one pair of angle brackets removed).
fn bare_id(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(s)
        .trim()
}

fn plain_encoding(e: Option<&str>) -> bool {
    matches!(e, None | Some("binary" | "8bit" | "7bit"))
}

/// Unpacks a `multipart/related` request whose Content-Type is `content_type`.
pub(crate) fn unpack(content_type: &str, body: &Bytes) -> Result<Package, Fault> {
    let (_, params) = media_type(content_type);
    if !param(&params, "type").is_some_and(|t| t.trim().eq_ignore_ascii_case("application/xop+xml")) {
        return Err(Fault::from(
            ApiError::new(ErrorCode::UnsupportedMediaType).with_detail(
                "a multipart/related request must be an MTOM/XOP package: type=\"application/xop+xml\"",
            ),
        ));
    }
    let boundary = param(&params, "boundary")
        .filter(|b| !b.is_empty() && b.len() <= 70)
        .ok_or_else(|| {
            invalid("the multipart/related Content-Type needs a boundary parameter (1-70 characters)")
        })?;
    let declared = match param(&params, "start-info") {
        None => None,
        Some(info) => Some(SoapVersion::from_content_type(info).ok_or_else(|| {
            Fault::from(
                ApiError::new(ErrorCode::UnsupportedMediaType)
                    .with_detail("start-info must be text/xml (SOAP 1.1) or application/soap+xml (SOAP 1.2)"),
            )
        })?),
    };
    let mut action =
        param(&params, "start-info").and_then(|i| param(&media_type(i).1, "action").map(str::to_owned));
    let ranges =
        split(body, boundary.as_bytes()).map_err(|e| invalid(format!("malformed multipart body: {e}")))?;
    let mut parsed = Vec::with_capacity(ranges.len());
    for (i, r) in ranges.into_iter().enumerate() {
        let (headers, content) = headers(&body[r.clone()])
            .map_err(|e| invalid(format!("malformed multipart body: part {}: {e}", i + 1)))?;
        let content = body.slice(r.start + content.start..r.start + content.end);
        parsed.push((headers, content));
    }
    let mut ids: Vec<&str> = Vec::new();
    for (h, _) in &parsed {
        if let Some(id) = header(h, "content-id").map(bare_id) {
            if ids.contains(&id) {
                return Err(invalid(format!("two MIME parts have the Content-ID <{id}>")));
            }
            ids.push(id);
        }
    }
    let root_at = match param(&params, "start").map(bare_id) {
        None => 0,
        Some(start) => parsed
            .iter()
            .position(|(h, _)| header(h, "content-id").map(bare_id) == Some(start))
            .ok_or_else(|| {
                invalid(format!(
                    "no MIME part has the Content-ID <{start}> that the start parameter names (the root part, the SOAP envelope)"
                ))
            })?,
    };
    let (root_headers, root) = parsed.swap_remove(root_at);
    let (essence, root_params) = media_type(header(&root_headers, "content-type").unwrap_or_default());
    if essence != "application/xop+xml" {
        return Err(invalid(
            "the root part must be the envelope with Content-Type: application/xop+xml; type=\"text/xml\" (SOAP 1.1) or type=\"application/soap+xml\" (SOAP 1.2)",
        ));
    }
    if param(&root_params, "charset").is_some_and(|c| !c.eq_ignore_ascii_case("utf-8")) {
        return Err(invalid("the root part must be UTF-8 (charset=UTF-8)"));
    }
    let root_type = param(&root_params, "type");
    let from_root = root_type.and_then(SoapVersion::from_content_type);
    let version = match (declared, from_root) {
        (Some(a), Some(b)) if a != b => {
            return Err(invalid(
                "start-info and the root part's type parameter name different SOAP versions",
            ));
        }
        (Some(v), _) | (None, Some(v)) => v,
        (None, None) => {
            return Err(invalid(
                "the root part's Content-Type needs type=\"text/xml\" (SOAP 1.1) or type=\"application/soap+xml\" (SOAP 1.2)",
            ));
        }
    };
    if action.is_none() {
        action = root_type.and_then(|t| param(&media_type(t).1, "action").map(str::to_owned));
    }
    let root_encoding =
        header(&root_headers, "content-transfer-encoding").map(|e| e.trim().to_ascii_lowercase());
    if !plain_encoding(root_encoding.as_deref()) {
        return Err(invalid(
            "the root part's Content-Transfer-Encoding must be 8bit or binary",
        ));
    }
    let parts = parsed
        .into_iter()
        .map(|(h, body)| Part {
            id: header(&h, "content-id").map(|i| bare_id(i).to_owned()),
            encoding: header(&h, "content-transfer-encoding").map(|e| e.trim().to_ascii_lowercase()),
            body,
        })
        .collect();
    Ok(Package {
        version,
        action: action.filter(|a| !a.trim().is_empty()),
        root,
        parts,
    })
}

/// The first element `xop:Include` under `node` (itself included), as a path from `prefix`.
pub(crate) fn include_path(node: &XmlNode, prefix: &str) -> Option<String> {
    let path = format!("{prefix}/{}", node.name);
    if node.is(XOP, "Include") {
        return Some(path);
    }
    node.children.iter().find_map(|c| include_path(c, &path))
}

/// `%XX` escapes of a `cid:` URL decoded (RFC 2392).
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Resolves the `xop:Include` of `SubmitBatch/file` against `package` (removing it, so that
/// the element is left empty) and returns the attachment's bytes; an `xop:Include` anywhere
/// else — or in a request that is no XOP package — is a fault.
pub(crate) fn attach(call: &mut Call, package: Option<&Package>) -> Result<Option<Bytes>, Fault> {
    let mut found = None;
    if let (Operation::SubmitBatch, Some(package)) = (call.op, package)
        && let Some(file) = call.input.children.iter_mut().find(|c| c.name == "file")
        && file.children.iter().any(|c| c.is(XOP, "Include"))
    {
        if file.children.len() != 1 || !file.text.trim().is_empty() {
            return Err(malformed(
                "/file: an xop:Include must be the only content of its element",
            ));
        }
        let include = file.children.remove(0);
        if !include.children.is_empty() {
            return Err(malformed("/file: xop:Include must be empty"));
        }
        let href = include
            .attribute(None, "href")
            .ok_or_else(|| invalid("/file: xop:Include needs an href attribute (cid:…)"))?;
        let cid = href
            .trim()
            .get(..4)
            .filter(|s| s.eq_ignore_ascii_case("cid:"))
            .map(|_| &href.trim()[4..])
            .ok_or_else(|| invalid(format!("/file: the xop:Include href {href:?} is not a cid: URL")))?;
        let cid = percent_decode(cid)
            .ok_or_else(|| invalid(format!("/file: the xop:Include href {href:?} has a bad %-escape")))?;
        let part = package
            .parts
            .iter()
            .find(|p| p.id.as_deref() == Some(cid.as_str()))
            .ok_or_else(|| {
                invalid(format!(
                    "/file: no MIME part has the Content-ID <{cid}> that the xop:Include href {href:?} names"
                ))
            })?;
        if !plain_encoding(part.encoding.as_deref()) {
            return Err(invalid(format!(
                "/file: the MIME part <{cid}> has Content-Transfer-Encoding {}; send attachments as binary",
                part.encoding.as_deref().unwrap_or_default()
            )));
        }
        found = Some(part.body.clone());
    }
    if let Some(path) = call.input.children.iter().find_map(|c| include_path(c, "")) {
        return Err(invalid(match package {
            Some(_) => format!("{path}: an xop:Include may stand only as the content of SubmitBatch/file"),
            None => format!(
                "{path}: an xop:Include needs an MTOM request (Content-Type: multipart/related; type=\"application/xop+xml\")"
            ),
        }));
    }
    Ok(found)
}

/// The header of `name` (lower-case) among `headers`.
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Where a delimiter `--boundary` that starts at `at` ends: `Some((end, closing))` after its
/// line's CRLF (or after `--` when it closes the body), `None` when it is no delimiter (the
/// boundary is only the prefix of a longer word).
fn delimiter_end(body: &[u8], at: usize, dash_boundary: usize) -> Option<(usize, bool)> {
    let mut i = at + dash_boundary;
    if body.get(i..i + 2) == Some(b"--") {
        return Some((i + 2, true));
    }
    while matches!(body.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    (body.get(i..i + 2) == Some(b"\r\n")).then_some((i + 2, false))
}

/// The byte ranges of the parts of a multipart body (RFC 2046 §5.1.1): the preamble before
/// the first delimiter and the epilogue after the closing one are ignored; a part ends at the
/// CRLF that precedes the next delimiter, so CRLFs inside it are content.
pub(crate) fn split(body: &[u8], boundary: &[u8]) -> Result<Vec<Range<usize>>, String> {
    let mut dash = Vec::with_capacity(boundary.len() + 4);
    dash.extend_from_slice(b"\r\n--");
    dash.extend_from_slice(boundary);
    let dash_len = dash.len() - 2;
    // The first delimiter opens the body or follows the preamble's last CRLF.
    let mut at = (body.starts_with(&dash[2..]) && delimiter_end(body, 0, dash_len).is_some()).then_some(0);
    let mut from = 0;
    while at.is_none() {
        let p = find(body, &dash, from).ok_or("the boundary of the Content-Type is not in the body")?;
        if delimiter_end(body, p + 2, dash_len).is_some() {
            at = Some(p + 2);
        }
        from = p + 1;
    }
    let mut pos = at.unwrap_or_default();
    let mut parts = Vec::new();
    loop {
        let (start, closing) =
            delimiter_end(body, pos, dash_len).ok_or("a boundary line must end with CRLF")?;
        if closing {
            if parts.is_empty() {
                return Err("the body has no part".into());
            }
            return Ok(parts);
        }
        let mut from = start;
        let next = loop {
            let p = find(body, &dash, from).ok_or("the body has no closing boundary")?;
            if delimiter_end(body, p + 2, dash_len).is_some() {
                break p;
            }
            from = p + 1;
        };
        parts.push(start..next);
        pos = next + 2;
    }
}

type Headers = Vec<(String, String)>;

/// A part's headers (names lower-cased, folded lines unfolded) and the range of its content.
fn headers(part: &[u8]) -> Result<(Headers, Range<usize>), String> {
    let (head, content_start) = if part.starts_with(b"\r\n") {
        (&part[..0], 2)
    } else if let Some(end) = find(part, b"\r\n\r\n", 0) {
        (&part[..end], end + 4)
    } else {
        // Headers only, no content.
        (part, part.len())
    };
    let head = std::str::from_utf8(head).map_err(|_| "the headers are not UTF-8".to_owned())?;
    let mut out: Headers = Vec::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        if line.starts_with([' ', '\t']) {
            let last = out.last_mut().ok_or("a folded header line opens the part")?;
            last.1.push(' ');
            last.1.push_str(line.trim());
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("the header line {line:?} has no colon"))?;
        out.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    Ok((out, content_start..part.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use etx_ingestion_core::xml;

    fn parts<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
        split(body, boundary.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|r| &body[r])
            .collect()
    }

    #[test]
    fn parts_are_split_at_crlf_delimiters_ignoring_preamble_and_epilogue() {
        let body = b"preamble, ignored\r\n--b1\r\nContent-ID: <a>\r\n\r\none\r\n--b1  \r\n\r\ntwo\r\n--b1--\r\nepilogue\r\n--b1\r\nnot a part";
        assert_eq!(
            parts(body, "b1"),
            vec![&b"Content-ID: <a>\r\n\r\none"[..], &b"\r\ntwo"[..]]
        );
        // No preamble, no epilogue, nothing after the closing delimiter.
        assert_eq!(parts(b"--b1\r\n\r\nx\r\n--b1--", "b1"), vec![&b"\r\nx"[..]]);
        // An empty part.
        assert_eq!(parts(b"--b1\r\n\r\n--b1--", "b1"), vec![&b""[..]]);
    }

    #[test]
    fn binary_content_keeps_its_crlfs_and_lookalike_boundaries() {
        let mut content = vec![0u8, 255, b'\r', b'\n', b'\r', b'\n'];
        content.extend_from_slice(b"--b1x\r\n--b\r\n\r\n--b1");
        content.extend_from_slice(b"-not-closing\r\n\r\n");
        let mut body = b"--b1\r\nContent-ID: <f>\r\n\r\n".to_vec();
        body.extend_from_slice(&content);
        body.extend_from_slice(b"\r\n--b1--\r\n");
        let got = parts(&body, "b1");
        assert_eq!(got.len(), 1);
        let (h, r) = headers(got[0]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h, vec![("content-id".to_owned(), "<f>".to_owned())]);
        assert_eq!(&got[0][r], &content[..]);
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        for (body, boundary) in [
            (&b""[..], "b"),
            (b"no boundary here", "b"),
            (b"--b\r\nx", "b"),
            (b"--b--", "b"),
            (b"--bx\r\n\r\nx\r\n--bx--", "b"),
            (b"--b\r\n\r\nx\r\n--b", "b"),
            (b"--b", "b"),
            (b"--bjunk", "b"),
            (b"\r\n--b", "b"),
        ] {
            assert!(split(body, boundary.as_bytes()).is_err(), "{body:?}");
        }
        assert!(headers(b"no colon\r\n\r\nx").is_err());
        assert!(headers(b" folded\r\n\r\nx").is_err());
        assert!(headers(b"\xff: x\r\n\r\nx").is_err());
    }

    #[test]
    fn headers_unfold_and_lower_case_names() {
        let (h, r) = headers(
            b"Content-Type: application/xop+xml;\r\n\ttype=\"text/xml\"\r\nCONTENT-ID:<r>\r\n\r\n<x/>",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            header(&h, "content-type"),
            Some("application/xop+xml; type=\"text/xml\"")
        );
        assert_eq!(header(&h, "content-id").map(bare_id), Some("r"));
        assert_eq!(
            &b"Content-Type: application/xop+xml;\r\n\ttype=\"text/xml\"\r\nCONTENT-ID:<r>\r\n\r\n<x/>"[r],
            b"<x/>"
        );
    }

    const ENV11: &str = "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><SubmitBatch xmlns=\"urn:etxhub:soap:ingestion:v1\"><format>csv</format><file><xop:Include xmlns:xop=\"http://www.w3.org/2004/08/xop/include\" href=\"cid:f%40x\"/></file></SubmitBatch></s:Body></s:Envelope>";

    fn package(root_type: &str, file_id: &str, file: &[u8]) -> Vec<u8> {
        let mut b = format!(
            "--MIME_b\r\nContent-Type: application/xop+xml; charset=UTF-8; type=\"{root_type}\"\r\nContent-ID: <root@x>\r\n\r\n{ENV11}\r\n--MIME_b\r\nContent-Type: text/csv\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <{file_id}>\r\n\r\n"
        )
        .into_bytes();
        b.extend_from_slice(file);
        b.extend_from_slice(b"\r\n--MIME_b--\r\n");
        b
    }

    const CT: &str = "multipart/related; type=\"application/xop+xml\"; boundary=\"MIME_b\"; start=\"<root@x>\"; start-info=\"text/xml\"";

    fn resolve(ct: &str, body: Vec<u8>) -> Result<Option<Bytes>, Fault> {
        let body = Bytes::from(body);
        let p = unpack(ct, &body)?;
        let mut call = super::super::envelope::read(p.version, None, &p.root)?;
        attach(&mut call, Some(&p))
    }

    #[test]
    fn an_include_resolves_to_its_part() {
        let file = b"a,b\r\n1,2\r\n";
        let got = resolve(CT, package("text/xml", "f@x", file)).unwrap_or_else(|f| panic!("{:?}", f.error));
        assert_eq!(got.as_deref(), Some(&file[..]));
        assert_eq!(start_info_version(CT), Some(SoapVersion::V11));
    }

    #[test]
    fn package_errors_are_precise_faults() {
        let code = |ct: &str, body: Vec<u8>| resolve(ct, body).err().map(|f| (f.error.code, f.error.detail));
        let (c, d) = code(CT, package("text/xml", "other@x", b"x")).unwrap_or_else(|| panic!());
        assert_eq!(c, ErrorCode::InvalidParameter);
        assert!(d.unwrap_or_default().contains("<f@x>"));
        let no_root = CT.replace("<root@x>", "<nope>");
        let (c, d) = code(&no_root, package("text/xml", "f@x", b"x")).unwrap_or_else(|| panic!());
        assert_eq!(c, ErrorCode::InvalidParameter);
        assert!(d.unwrap_or_default().contains("<nope>"));
        let no_boundary = "multipart/related; type=\"application/xop+xml\"";
        assert!(code(no_boundary, package("text/xml", "f@x", b"x")).is_some());
        let mismatch = code(CT, package("application/soap+xml", "f@x", b"x"));
        assert!(mismatch.is_some_and(|(_, d)| d.unwrap_or_default().contains("different")));
        let swa = "multipart/related; type=\"text/xml\"; boundary=MIME_b";
        assert_eq!(
            code(swa, package("text/xml", "f@x", b"x")).map(|c| c.0),
            Some(ErrorCode::UnsupportedMediaType)
        );
        let dup = package("text/xml", "root@x", b"x");
        assert!(code(CT, dup).is_some_and(|(_, d)| d.unwrap_or_default().contains("two MIME parts")));
        let b64 = String::from_utf8(package("text/xml", "f@x", b"eA=="))
            .unwrap_or_default()
            .replace("binary", "base64");
        assert!(code(CT, b64.into_bytes()).is_some_and(|(_, d)| d.unwrap_or_default().contains("base64")));
    }

    #[test]
    fn an_include_elsewhere_is_refused() {
        let env = ENV11.replace("<format>csv</format>", "<format><xop:Include xmlns:xop=\"http://www.w3.org/2004/08/xop/include\" href=\"cid:f%40x\"/></format>");
        let mut call = super::super::envelope::read(SoapVersion::V11, None, env.as_bytes())
            .unwrap_or_else(|f| panic!("{:?}", f.error));
        let f = attach(&mut call, None).err().unwrap_or_else(|| panic!());
        assert!(f.error.detail.unwrap_or_default().starts_with("/format/Include"));
        let node = xml::parse_document(ENV11.as_bytes()).unwrap_or_default();
        assert_eq!(
            include_path(&node, "").as_deref(),
            Some("/Envelope/Body/SubmitBatch/file/Include")
        );
        assert_eq!(percent_decode("a%40b%2F").as_deref(), Some("a@b/"));
        assert_eq!(percent_decode("a%4"), None);
        assert_eq!(percent_decode("%zz"), None);
    }
}
