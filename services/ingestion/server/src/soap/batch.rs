//! `SubmitBatch` and `GetBatchStatus`: the batch use cases of [`crate::batch::Batches`], with
//! the file inline as `xs:base64Binary` or as an MTOM/XOP attachment ([`super::mtom`]) (R-ING-1
//! batch, R-ING-3 files, R-REC control totals).

use super::envelope::{check, leaf};
use super::fault::Fault;
use super::{encode, invalid, uuid_of};
use crate::AppIngestion;
use crate::batch::{BatchUpload, UploadOutcome};
use base64::Engine as _;
use bytes::Bytes;
use etx_domain::{ErrorCode, FieldViolation, ViolationCode};
use etx_http_kit::{ApiError, Principal};
use etx_ingestion_core::batch::{BatchDefaults, BatchFormat, ControlTotals};
use etx_ingestion_core::xml::XmlNode;

/// The batch use cases' errors name REST inputs (headers, the body); say the SOAP elements.
fn soap_paths(mut e: ApiError) -> ApiError {
    for v in &mut e.violations {
        let path = match v.path.as_str() {
            "header:X-Batch-SHA256" => "/control_totals/sha256",
            "header:X-Batch-Row-Count" => "/control_totals/row_count",
            "body" => "/file",
            p if p.starts_with("query:") => match &p["query:".len()..] {
                "format" => "/format",
                "dry_run" => "/dry_run",
                other => {
                    v.path = format!("/defaults/{other}");
                    continue;
                }
            },
            _ => continue,
        };
        v.path = path.to_owned();
    }
    e
}

fn text_of(node: &XmlNode, name: &str, prefix: &str, v: &mut Vec<FieldViolation>) -> Option<String> {
    let path = format!("{prefix}/{name}");
    node.child(name)
        .and_then(|c| leaf(c, &path, v))
        .map(str::to_owned)
}

fn boolean(s: &str) -> Option<bool> {
    match s {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// The inline `file`: base64 text.
fn inline_file(input: &XmlNode, v: &mut Vec<FieldViolation>) -> Option<Bytes> {
    text_of(input, "file", "", v).and_then(|b64| {
        let compact: Vec<u8> = b64.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        match base64::engine::general_purpose::STANDARD.decode(compact) {
            Ok(bytes) if bytes.is_empty() => {
                v.push(
                    FieldViolation::new("/file", ViolationCode::Required)
                        .with_detail("the batch file is empty"),
                );
                None
            }
            Ok(bytes) => Some(Bytes::from(bytes)),
            Err(_) => {
                v.push(FieldViolation::new("/file", ViolationCode::Format).with_detail("expected base64"));
                None
            }
        }
    })
}

/// Decodes a `SubmitBatch` element into the upload and the file's bytes;
/// `attachment` is the file of an MTOM request (its `file` element then left empty).
fn decode(input: &XmlNode, attachment: Option<Bytes>) -> Result<(BatchUpload, Bytes), Vec<FieldViolation>> {
    let mut v = check(input, "SubmitBatch", "");
    let format = text_of(input, "format", "", &mut v).and_then(|f| {
        let parsed = BatchFormat::parse(&f);
        if parsed.is_none() {
            v.push(
                FieldViolation::new("/format", ViolationCode::Enum)
                    .with_detail("one of csv, ndjson, json, xml"),
            );
        }
        parsed
    });
    let file = match attachment {
        Some(bytes) if bytes.is_empty() => {
            v.push(
                FieldViolation::new("/file", ViolationCode::Required)
                    .with_detail("the batch file (MTOM attachment) is empty"),
            );
            None
        }
        Some(bytes) => Some(bytes),
        None => inline_file(input, &mut v),
    };
    let mut defaults = BatchDefaults::default();
    if let Some(d) = input.child("defaults") {
        v.extend(check(d, "BatchDefaults", "/defaults"));
        let mut get = |name: &str| text_of(d, name, "/defaults", &mut v).filter(|s| !s.is_empty());
        defaults = BatchDefaults {
            category: get("category"),
            schema_version: get("schema_version"),
            period: get("period"),
            classification: get("classification"),
            priority: get("priority"),
            form: get("form"),
        };
    }
    let mut declared = ControlTotals::default();
    if let Some(c) = input.child("control_totals") {
        v.extend(check(c, "ControlTotals", "/control_totals"));
        declared.row_count = text_of(c, "row_count", "/control_totals", &mut v).and_then(|n| {
            let parsed = n.parse::<u64>().ok();
            if parsed.is_none() {
                v.push(
                    FieldViolation::new("/control_totals/row_count", ViolationCode::Type)
                        .with_detail("a non-negative integer"),
                );
            }
            parsed
        });
        declared.sha256 = text_of(c, "sha256", "/control_totals", &mut v).and_then(|s| {
            let s = s.to_ascii_lowercase();
            if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
                Some(s)
            } else {
                v.push(
                    FieldViolation::new("/control_totals/sha256", ViolationCode::Format)
                        .with_detail("64 hexadecimal characters"),
                );
                None
            }
        });
    }
    let dry_run = match text_of(input, "dry_run", "", &mut v) {
        None => false,
        Some(s) => boolean(&s).unwrap_or_else(|| {
            v.push(FieldViolation::new("/dry_run", ViolationCode::Type).with_detail("true or false"));
            false
        }),
    };
    match (format, file) {
        (Some(format), Some(file)) if v.is_empty() => Ok((
            BatchUpload {
                format,
                defaults,
                declared,
                dry_run,
            },
            file,
        )),
        _ => Err(v),
    }
}

/// `SubmitBatch`: the file is registered and processed in the background, as REST uploads are.
pub(crate) async fn submit_batch(
    app: &AppIngestion,
    p: &Principal,
    input: &XmlNode,
    attachment: Option<Bytes>,
) -> Result<String, Fault> {
    let caller = crate::http::source(p)?;
    let (upload, file) = decode(input, attachment).map_err(invalid)?;
    let body = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(file)]);
    let outcome = app
        .batches
        .upload(caller, upload, body)
        .await
        .map_err(|e| Fault::from(soap_paths(crate::batch::api_error(e))))?;
    let replayed = matches!(outcome, UploadOutcome::Replayed(_));
    Ok(encode::response("SubmitBatch", |x| {
        encode::batch(x, "batch", outcome.view());
        x.leaf("replayed", replayed.to_string());
    }))
}

/// `GetBatchStatus`: one of the caller's batches; another organisation's is `not_found`.
pub(crate) async fn get_batch_status(
    app: &AppIngestion,
    p: &Principal,
    input: &XmlNode,
) -> Result<String, Fault> {
    let id = uuid_of(input, "GetBatchStatus", "batch_id")?;
    let view = app
        .batches
        .status(p.org_scope(), id)
        .await
        .map_err(|e| Fault::from(soap_paths(crate::batch::api_error(e))))?
        .ok_or_else(|| Fault::from(ApiError::new(ErrorCode::NotFound)))?;
    Ok(encode::response("GetBatchStatus", |x| {
        encode::batch(x, "batch", &view)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use etx_ingestion_core::xml;

    fn node(s: &str) -> XmlNode {
        xml::parse_document(s.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_full_submit_batch_decodes() {
        let n = node(
            "<SubmitBatch><format>CSV</format><file>Y2F0ZWdvcnkK\n  MQo=</file>\
             <defaults><category>statistics</category><period>2026-10</period></defaults>\
             <control_totals><row_count>1</row_count><sha256>AB00000000000000000000000000000000000000000000000000000000000000</sha256></control_totals>\
             <dry_run>true</dry_run></SubmitBatch>",
        );
        let (u, file) = decode(&n, None).unwrap_or_else(|v| panic!("{v:?}"));
        assert_eq!(u.format, BatchFormat::Csv);
        assert_eq!(&file[..], b"category\n1\n");
        assert_eq!(u.defaults.category.as_deref(), Some("statistics"));
        assert_eq!(u.defaults.schema_version, None);
        assert_eq!(u.declared.row_count, Some(1));
        assert!(u.declared.sha256.as_deref().is_some_and(|s| s.starts_with("ab")));
        assert!(u.dry_run);
    }

    #[test]
    fn every_bad_element_is_reported_at_its_path() {
        let n = node(
            "<SubmitBatch><format>zip</format><file>***</file><control_totals><row_count>-1</row_count><sha256>x</sha256></control_totals><dry_run>maybe</dry_run><x/></SubmitBatch>",
        );
        let v = decode(&n, None).err().unwrap_or_default();
        let paths: Vec<_> = v.iter().map(|v| (v.path.as_str(), v.code)).collect();
        for expected in [
            ("/x", ViolationCode::UnknownField),
            ("/format", ViolationCode::Enum),
            ("/file", ViolationCode::Format),
            ("/control_totals/row_count", ViolationCode::Type),
            ("/control_totals/sha256", ViolationCode::Format),
            ("/dry_run", ViolationCode::Type),
        ] {
            assert!(paths.contains(&expected), "{expected:?} in {paths:?}");
        }
        let missing = decode(&node("<SubmitBatch/>"), None).err().unwrap_or_default();
        assert_eq!(missing.len(), 2);
    }

    #[test]
    fn an_mtom_attachment_is_the_file() {
        let n = node("<SubmitBatch><format>csv</format><file/></SubmitBatch>");
        let (_, file) =
            decode(&n, Some(Bytes::from_static(b"a\r\n1\r\n"))).unwrap_or_else(|v| panic!("{v:?}"));
        assert_eq!(&file[..], b"a\r\n1\r\n");
        let v = decode(&n, Some(Bytes::new())).err().unwrap_or_default();
        assert_eq!(v[0].path, "/file");
        assert_eq!(v[0].code, ViolationCode::Required);
    }

    #[test]
    fn rest_paths_become_soap_paths() {
        let e = ApiError::new(ErrorCode::ControlTotalMismatch).with_violations(vec![
            FieldViolation::new("header:X-Batch-SHA256", ViolationCode::Invalid),
            FieldViolation::new("query:category", ViolationCode::Invalid),
            FieldViolation::new("/payload/x", ViolationCode::Invalid),
        ]);
        let paths: Vec<_> = soap_paths(e).violations.into_iter().map(|v| v.path).collect();
        assert_eq!(
            paths,
            ["/control_totals/sha256", "/defaults/category", "/payload/x"]
        );
    }
}
