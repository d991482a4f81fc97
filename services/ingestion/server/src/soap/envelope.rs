//! Reading a SOAP request: the version from the Content-Type, the action, the Envelope (parsed
//! by the hardened reader of [`etx_ingestion_core::xml`]: no DTD, no entities; R-SEC-3), its
//! mustUnderstand header blocks and the one operation element in the Body.

use super::fault::{Fault, FaultKind};
use super::{NAMESPACE, Operation, wsdl};
use actix_web::http::header::{self, HeaderMap};
use etx_domain::{ErrorCode, FieldViolation, ViolationCode};
use etx_http_kit::ApiError;
use etx_ingestion_core::xml::{self, XmlNode};

/// The SOAP version of a request (from its Content-Type) and of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoapVersion {
    /// SOAP 1.1: `text/xml` and the `SOAPAction` header.
    V11,
    /// SOAP 1.2: `application/soap+xml`, the action as a media-type parameter.
    V12,
}

impl SoapVersion {
    /// The namespace of the Envelope.
    pub fn envelope_namespace(self) -> &'static str {
        match self {
            Self::V11 => "http://schemas.xmlsoap.org/soap/envelope/",
            Self::V12 => "http://www.w3.org/2003/05/soap-envelope",
        }
    }

    /// The Content-Type of messages of this version.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::V11 => "text/xml; charset=utf-8",
            Self::V12 => "application/soap+xml; charset=utf-8",
        }
    }

    /// `1.1` or `1.2`, for logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::V11 => "1.1",
            Self::V12 => "1.2",
        }
    }

    /// The version a Content-Type selects (parameters ignored).
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match media_type(ct).0.as_str() {
            "text/xml" => Some(Self::V11),
            "application/soap+xml" => Some(Self::V12),
            _ => None,
        }
    }

    /// The version of a request, by its Content-Type (for an MTOM request, `multipart/related`,
    /// by its `start-info` parameter).
    pub fn of_request(headers: &HeaderMap) -> Option<Self> {
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|ct| Self::from_content_type(ct).or_else(|| super::mtom::start_info_version(ct)))
    }
}

/// The lower-cased essence of a media type and its parameters (names lower-cased, values
/// unquoted).
pub(crate) fn media_type(ct: &str) -> (String, Vec<(String, String)>) {
    let mut parts = split_params(ct).into_iter();
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let params = parts
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k.trim().to_ascii_lowercase(), unquote(v.trim())))
        })
        .collect();
    (essence, params)
}

/// Splits on `;` outside quoted strings.
fn split_params(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut escaped) = (false, false);
    for c in s.chars() {
        if c == ';' && !quoted {
            out.push(std::mem::take(&mut cur));
            continue;
        }
        if quoted && escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        }
        cur.push(c);
    }
    out.push(cur);
    out
}

fn unquote(v: &str) -> String {
    match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => v.to_owned(),
    }
}

/// The action the client named — SOAP 1.1: the `SOAPAction` header; SOAP 1.2: the `action`
/// parameter of the Content-Type — or `None` when absent or empty.
pub(crate) fn action(version: SoapVersion, headers: &HeaderMap) -> Option<String> {
    let value = match version {
        SoapVersion::V11 => headers
            .get("soapaction")
            .and_then(|v| v.to_str().ok())
            .map(|v| unquote(v.trim())),
        SoapVersion::V12 => headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|ct| media_type(ct).1.into_iter().find(|(k, _)| k == "action"))
            .map(|(_, v)| v),
    };
    value.filter(|v| !v.trim().is_empty())
}

/// A decoded request: the operation and its wrapper element.
#[derive(Debug)]
pub(crate) struct Call {
    /// The operation.
    pub op: Operation,
    /// `<{op} xmlns="urn:etxhub:soap:ingestion:v1">…</{op}>`.
    pub input: XmlNode,
}

/// Maps the XML reader's refusals to the catalogue (as REST XML bodies).
pub(crate) fn xml_error(e: xml::XmlError) -> ApiError {
    match e {
        xml::XmlError::DtdForbidden => ApiError::new(ErrorCode::XmlDtdForbidden),
        xml::XmlError::TooLarge => ApiError::new(ErrorCode::PayloadTooLarge).with_detail(e.to_string()),
        xml::XmlError::TooDeep | xml::XmlError::Malformed { .. } => {
            ApiError::new(ErrorCode::MalformedXml).with_detail(e.to_string())
        }
    }
}

fn invalid(detail: impl Into<String>) -> Fault {
    Fault::from(ApiError::new(ErrorCode::InvalidParameter).with_detail(detail))
}

/// Reads the envelope of a `version` request whose client named `action`.
pub(crate) fn read(version: SoapVersion, action: Option<&str>, body: &[u8]) -> Result<Call, Fault> {
    let mut root = xml::parse_document(body).map_err(|e| Fault::from(xml_error(e)))?;
    let env = version.envelope_namespace();
    if root.name != "Envelope" {
        return Err(Fault::from(
            ApiError::new(ErrorCode::MalformedXml).with_detail("the root element must be a SOAP Envelope"),
        ));
    }
    if root.namespace.as_deref() != Some(env) {
        return Err(Fault {
            kind: FaultKind::VersionMismatch,
            error: ApiError::new(ErrorCode::InvalidParameter).with_detail(format!(
                "SOAP {} (Content-Type {}) needs an Envelope in the namespace {env}",
                version.label(),
                version.content_type().split(';').next().unwrap_or_default()
            )),
        });
    }
    let mut header = None;
    let mut body = None;
    for (i, child) in root.children.iter().enumerate() {
        match child.name.as_str() {
            "Header" if child.namespace.as_deref() == Some(env) && header.is_none() && body.is_none() => {
                header = Some(child);
            }
            "Body" if child.namespace.as_deref() == Some(env) && body.is_none() => body = Some(i),
            _ => {
                return Err(Fault::from(ApiError::new(ErrorCode::MalformedXml).with_detail(
                    "the Envelope may hold only an optional Header followed by one Body",
                )));
            }
        }
    }
    if let Some(h) = header {
        let not_understood = not_understood(version, h);
        if !not_understood.is_empty() {
            return Err(Fault {
                kind: FaultKind::MustUnderstand(not_understood),
                error: ApiError::new(ErrorCode::InvalidParameter).with_detail(
                    "a header block marked mustUnderstand is not supported; send the API key in the X-API-Key HTTP header",
                ),
            });
        }
    }
    if let Some(path) = header.and_then(|h| super::mtom::include_path(h, "")) {
        return Err(invalid(format!(
            "{path}: an xop:Include may stand only as the content of SubmitBatch/file"
        )));
    }
    let body = body.ok_or_else(|| {
        Fault::from(ApiError::new(ErrorCode::MalformedXml).with_detail("the Envelope has no Body"))
    })?;
    // The operation element is moved out, not copied: it may hold a whole batch file.
    let mut body = root.children.swap_remove(body);
    let input = match body.children.len() {
        1 => body.children.swap_remove(0),
        0 => return Err(invalid("the Body holds no operation element")),
        _ => return Err(invalid("the Body must hold exactly one operation element")),
    };
    let op = Operation::ALL
        .into_iter()
        .find(|op| input.is(NAMESPACE, op.name()))
        .ok_or_else(|| {
            invalid(format!(
                "unknown operation: expected SubmitRecords, GetReceipt, SubmitBatch or GetBatchStatus in the namespace {NAMESPACE}"
            ))
        })?;
    if let Some(a) = action
        && a != op.action()
    {
        return Err(invalid(format!(
            "the SOAP action does not match the operation in the Body; for {} it is {}",
            op.name(),
            op.action()
        )));
    }
    Ok(Call { op, input })
}

/// The header blocks addressed to this node and marked `mustUnderstand`: every one of them,
/// since this endpoint understands no header block.
fn not_understood(version: SoapVersion, header: &XmlNode) -> Vec<(Option<String>, String)> {
    let env = version.envelope_namespace();
    header
        .children
        .iter()
        .filter(|block| {
            let must = matches!(
                block.attribute(Some(env), "mustUnderstand").map(str::trim),
                Some("1" | "true")
            );
            let for_us = match version {
                SoapVersion::V11 => block
                    .attribute(Some(env), "actor")
                    .is_none_or(|a| a.trim() == "http://schemas.xmlsoap.org/soap/actor/next"),
                SoapVersion::V12 => block.attribute(Some(env), "role").is_none_or(|r| {
                    matches!(
                        r.trim(),
                        "http://www.w3.org/2003/05/soap-envelope/role/next"
                            | "http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver"
                    )
                }),
            };
            must && for_us
        })
        .map(|b| (b.namespace.clone(), b.name.clone()))
        .collect()
}

/// Checks the children of `node` against the message type `ty` of the WSDL: unknown elements,
/// missing required ones, repeated single ones. Paths are `{prefix}/{name}`.
pub(crate) fn check(node: &XmlNode, ty: &str, prefix: &str) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    let Some(c) = wsdl::complex(ty) else {
        return out;
    };
    let mut seen: Vec<&str> = Vec::new();
    for child in &node.children {
        let path = format!("{prefix}/{}", child.name);
        match c.fields.iter().find(|f| f.name == child.name) {
            None => out.push(FieldViolation::new(path, ViolationCode::UnknownField)),
            Some(f) if !f.many && seen.contains(&f.name) => {
                out.push(
                    FieldViolation::new(path, ViolationCode::Invalid).with_detail("given more than once"),
                );
            }
            Some(f) => seen.push(f.name),
        }
    }
    for f in c.fields.iter().filter(|f| !f.optional) {
        if !seen.contains(&f.name) {
            out.push(FieldViolation::new(
                format!("{prefix}/{}", f.name),
                ViolationCode::Required,
            ));
        }
    }
    out
}

/// The text of a leaf element, trimmed; a `type` violation at `path` when it has children.
pub(crate) fn leaf<'a>(node: &'a XmlNode, path: &str, v: &mut Vec<FieldViolation>) -> Option<&'a str> {
    if node.children.is_empty() {
        Some(node.text.trim())
    } else {
        v.push(FieldViolation::new(path, ViolationCode::Type).with_detail("expected text, not elements"));
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn env(version: SoapVersion, header: &str, body: &str) -> String {
        format!(
            "<e:Envelope xmlns:e=\"{}\">{header}<e:Body>{body}</e:Body></e:Envelope>",
            version.envelope_namespace()
        )
    }

    const GET: &str =
        "<GetReceipt xmlns=\"urn:etxhub:soap:ingestion:v1\"><receipt_id>x</receipt_id></GetReceipt>";

    fn code(r: Result<Call, Fault>) -> (FaultKind, ErrorCode) {
        let f = r.err().unwrap_or_else(|| panic!("expected a fault"));
        (f.kind, f.error.code)
    }

    #[test]
    fn versions_come_from_the_content_type() {
        assert_eq!(
            SoapVersion::from_content_type("text/xml; charset=utf-8"),
            Some(SoapVersion::V11)
        );
        assert_eq!(
            SoapVersion::from_content_type("Application/SOAP+XML;action=\"urn:a\""),
            Some(SoapVersion::V12)
        );
        assert_eq!(SoapVersion::from_content_type("application/xml"), None);
        assert_eq!(SoapVersion::from_content_type("application/json"), None);
    }

    #[test]
    fn actions_are_read_per_version() {
        let mut h = HeaderMap::new();
        h.insert(
            header::HeaderName::from_static("soapaction"),
            HeaderValue::from_static("\"urn:a:b\""),
        );
        assert_eq!(action(SoapVersion::V11, &h).as_deref(), Some("urn:a:b"));
        h.insert(
            header::HeaderName::from_static("soapaction"),
            HeaderValue::from_static("\"\""),
        );
        assert_eq!(action(SoapVersion::V11, &h), None);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/soap+xml; charset=utf-8; action=\"urn:x;y\""),
        );
        assert_eq!(action(SoapVersion::V12, &h).as_deref(), Some("urn:x;y"));
    }

    #[test]
    fn a_well_formed_request_names_its_operation() {
        let call = read(SoapVersion::V11, None, env(SoapVersion::V11, "", GET).as_bytes());
        let call = call.unwrap_or_else(|f| panic!("{:?}", f.error));
        assert_eq!(call.op, Operation::GetReceipt);
        assert_eq!(call.input.child("receipt_id").map(|c| c.text.as_str()), Some("x"));
        let ok = read(
            SoapVersion::V12,
            Some(Operation::GetReceipt.action()),
            env(SoapVersion::V12, "", GET).as_bytes(),
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn envelope_errors_are_faults() {
        let v11 = SoapVersion::V11;
        assert_eq!(
            code(read(SoapVersion::V12, None, env(v11, "", GET).as_bytes())),
            (FaultKind::VersionMismatch, ErrorCode::InvalidParameter)
        );
        assert_eq!(
            code(read(v11, None, b"<Envelope/>")).1,
            ErrorCode::InvalidParameter,
            "an Envelope without namespace is a version mismatch"
        );
        assert_eq!(code(read(v11, None, b"<x/>")).1, ErrorCode::MalformedXml);
        assert_eq!(code(read(v11, None, b"<x>")).1, ErrorCode::MalformedXml);
        assert_eq!(
            code(read(
                v11,
                None,
                env(v11, "", "<Nope xmlns=\"urn:etxhub:soap:ingestion:v1\"/>").as_bytes()
            ))
            .1,
            ErrorCode::InvalidParameter
        );
        assert_eq!(
            code(read(v11, None, env(v11, "", "<GetReceipt/>").as_bytes())).1,
            ErrorCode::InvalidParameter,
            "an operation outside the namespace is unknown"
        );
        assert_eq!(
            code(read(v11, Some("urn:other"), env(v11, "", GET).as_bytes())).1,
            ErrorCode::InvalidParameter
        );
        assert_eq!(
            code(read(v11, None, env(v11, "", &format!("{GET}{GET}")).as_bytes())).1,
            ErrorCode::InvalidParameter
        );
        let dtd = format!("<!DOCTYPE e [<!ENTITY x \"y\">]>{}", env(v11, "", GET));
        assert_eq!(
            code(read(v11, None, dtd.as_bytes())).1,
            ErrorCode::XmlDtdForbidden
        );
    }

    #[test]
    fn must_understand_blocks_are_refused_unless_for_another_node() {
        let v11 = SoapVersion::V11;
        let ns = v11.envelope_namespace();
        let h = "<e:Header><w:Security xmlns:w=\"urn:wsse\" e:mustUnderstand=\"1\"/></e:Header>";
        let (kind, _) = code(read(v11, None, env(v11, h, GET).as_bytes()));
        assert_eq!(
            kind,
            FaultKind::MustUnderstand(vec![(Some("urn:wsse".into()), "Security".into())])
        );
        let other = "<e:Header><w:S xmlns:w=\"urn:w\" e:mustUnderstand=\"1\" e:actor=\"urn:somebody\"/><w:T xmlns:w=\"urn:w\" e:mustUnderstand=\"0\"/></e:Header>";
        assert!(read(v11, None, env(v11, other, GET).as_bytes()).is_ok(), "{ns}");
        let v12 = SoapVersion::V12;
        let h12 = "<e:Header><w:S xmlns:w=\"urn:w\" e:mustUnderstand=\"true\"/></e:Header>";
        assert!(matches!(
            code(read(v12, None, env(v12, h12, GET).as_bytes())).0,
            FaultKind::MustUnderstand(_)
        ));
    }

    #[test]
    fn children_are_checked_against_the_wsdl() {
        let node = xml::parse_document(
            b"<GetReceipt><receipt_id>1</receipt_id><receipt_id>2</receipt_id><extra/></GetReceipt>",
        )
        .unwrap_or_default();
        let v = check(&node, "GetReceipt", "");
        let got: Vec<_> = v.iter().map(|v| (v.path.as_str(), v.code)).collect();
        assert_eq!(
            got,
            vec![
                ("/receipt_id", ViolationCode::Invalid),
                ("/extra", ViolationCode::UnknownField)
            ]
        );
        let empty = xml::parse_document(b"<GetReceipt/>").unwrap_or_default();
        let v = check(&empty, "GetReceipt", "");
        assert_eq!(v[0].path, "/receipt_id");
        assert_eq!(v[0].code, ViolationCode::Required);
    }
}
