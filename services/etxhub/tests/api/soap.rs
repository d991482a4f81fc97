//! SOAP 1.1 and 1.2 (R-ING-3, R-SEC-3): round trips with hand-written envelopes, faults of
//! both versions in Vietnamese and English, authentication, hostile XML, the WSDL contract.

use crate::both_backends;
use crate::helpers::*;
use etx_ingestion_core::xml::{XmlNode, parse_document};
use serde_json::Value;
use std::time::Duration;

const NS: &str = "urn:etxhub:soap:ingestion:v1";
const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";
const PATH: &str = "/soap/v1/ingestion";

#[derive(Clone, Copy, Debug, PartialEq)]
enum V {
    S11,
    S12,
}

fn envelope(v: V, body: &str) -> String {
    let ns = if v == V::S11 { SOAP11 } else { SOAP12 };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soap:Envelope xmlns:soap=\"{ns}\" xmlns:etx=\"{NS}\">\n  <soap:Body>\n    {body}\n  </soap:Body>\n</soap:Envelope>\n"
    )
}

/// A statistics record in the REST XML wire format.
fn record_xml(value: &str, key: Option<&str>) -> String {
    let key = key
        .map(|k| format!("<etx:idempotency_key>{k}</etx:idempotency_key>"))
        .unwrap_or_default();
    format!(
        "<etx:record><etx:category>statistics</etx:category><etx:schema_version>1</etx:schema_version>\
         <etx:period>2026-10</etx:period><etx:classification>internal</etx:classification>\
         <etx:priority>normal</etx:priority><etx:form>raw</etx:form>{key}\
         <etx:payload><indicator>transaction_count</indicator><transaction_kind>e_invoice</transaction_kind>\
         <value>{value}</value><unit>count</unit><dimensions><province_code>79</province_code></dimensions>\
         <note>Số liệu hóa đơn điện tử tháng 10 — Thành phố Hồ Chí Minh</note></etx:payload></etx:record>"
    )
}

fn submit_records(records: &[String], key: Option<&str>) -> String {
    let key = key
        .map(|k| format!("<etx:idempotency_key>{k}</etx:idempotency_key>"))
        .unwrap_or_default();
    format!(
        "<etx:SubmitRecords>{key}<etx:records>{}</etx:records></etx:SubmitRecords>",
        records.concat()
    )
}

fn get_receipt(id: &str) -> String {
    format!("<etx:GetReceipt><etx:receipt_id>{id}</etx:receipt_id></etx:GetReceipt>")
}

/// POSTs an envelope of version `v` for `op` with an optional API key and extra headers.
async fn call(
    app: &TestApp,
    v: V,
    op: &str,
    body: &str,
    key: Option<&str>,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let action = format!("{NS}:{op}");
    let mut req = app.client.post(app.url(PATH)).body(envelope(v, body));
    req = match v {
        V::S11 => req
            .header("content-type", "text/xml; charset=utf-8")
            .header("soapaction", format!("\"{action}\"")),
        V::S12 => req.header(
            "content-type",
            format!("application/soap+xml; charset=utf-8; action=\"{action}\""),
        ),
    };
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    for (k, val) in headers {
        req = req.header(*k, *val);
    }
    req.send().await.unwrap()
}

/// Status, content type and the parsed envelope.
async fn answer(resp: reqwest::Response) -> (u16, String, XmlNode) {
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|c| c.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = resp.text().await.unwrap();
    let root = parse_document(text.as_bytes()).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, ct, root)
}

/// The Body's one element.
fn body_of(root: &XmlNode) -> &XmlNode {
    let body = root.child("Body").expect("a Body");
    &body.children[0]
}

fn text(node: &XmlNode, path: &[&str]) -> Option<String> {
    let mut n = node;
    for p in path {
        n = n.child(p)?;
    }
    Some(n.text.clone())
}

/// What a fault says, whatever its version.
#[derive(Debug)]
struct FaultSeen {
    status: u16,
    soap_code: String,
    reason: String,
    code: String,
    title: String,
    violations: Vec<(Option<String>, String, String, String)>,
}

async fn fault(resp: reqwest::Response, v: V) -> FaultSeen {
    let lang = resp
        .headers()
        .get("content-language")
        .map(|h| h.to_str().unwrap().to_owned());
    let (status, ct, root) = answer(resp).await;
    let f = body_of(&root).clone();
    let (soap_code, reason, detail) = match v {
        V::S11 => {
            assert!(ct.starts_with("text/xml"), "{ct}");
            assert!(root.is(SOAP11, "Envelope"));
            assert!(f.is(SOAP11, "Fault"), "{f:?}");
            (
                text(&f, &["faultcode"]).unwrap(),
                text(&f, &["faultstring"]).unwrap(),
                f.child("detail").unwrap().children[0].clone(),
            )
        }
        V::S12 => {
            assert!(ct.starts_with("application/soap+xml"), "{ct}");
            assert!(root.is(SOAP12, "Envelope"));
            assert!(f.is(SOAP12, "Fault"), "{f:?}");
            let sub = text(&f, &["Code", "Subcode", "Value"]).unwrap();
            let code = text(&f, &["Code", "Value"]).unwrap();
            let detail = f.child("Detail").unwrap().children[0].clone();
            assert_eq!(sub, format!("etx:{}", text(&detail, &["code"]).unwrap()));
            (code, text(&f, &["Reason", "Text"]).unwrap(), detail)
        }
    };
    assert!(detail.is(NS, "Error"), "{detail:?}");
    assert!(text(&detail, &["request_id"]).is_some_and(|r| !r.is_empty()));
    let title = text(&detail, &["title"]).unwrap();
    assert_eq!(reason, title, "the fault reason is the translated title");
    assert!(lang.is_some());
    let violations = detail
        .child("violations")
        .map(|vs| {
            vs.children
                .iter()
                .map(|x| {
                    (
                        text(x, &["item"]),
                        text(x, &["path"]).unwrap(),
                        text(x, &["code"]).unwrap(),
                        text(x, &["message"]).unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    FaultSeen {
        status,
        soap_code,
        reason,
        code: text(&detail, &["code"]).unwrap(),
        title,
        violations,
    }
}

async fn round_trip(app: TestApp, v: V) {
    let records = [record_xml("1250", None), record_xml("97.5", None)];
    let resp = call(
        &app,
        v,
        "SubmitRecords",
        &submit_records(&records, Some("soap-k-1")),
        Some(&app.key_a),
        &[],
    )
    .await;
    let (status, ct, root) = answer(resp).await;
    assert_eq!(status, 200, "{root:?}");
    let expected_ct = if v == V::S11 {
        "text/xml"
    } else {
        "application/soap+xml"
    };
    assert!(ct.starts_with(expected_ct), "{ct}");
    let out = body_of(&root);
    assert!(out.is(NS, "SubmitRecordsResponse"));
    let receipt = out.child("receipt").unwrap();
    let receipt_id = text(receipt, &["receipt_id"]).unwrap();
    let ids: Vec<String> = receipt
        .child("record_ids")
        .unwrap()
        .children
        .iter()
        .map(|c| c.text.clone())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(text(receipt, &["record_count"]).as_deref(), Some("2"));
    assert_eq!(text(receipt, &["replayed"]).as_deref(), Some("false"));
    assert_eq!(text(receipt, &["status"]).as_deref(), Some("received"));
    assert!(text(receipt, &["content_hash"]).unwrap().starts_with("sha256:"));
    assert!(text(receipt, &["received_at"]).unwrap().ends_with('Z'));

    // Stored exactly like a REST submission: the same record reads back over REST.
    let got: Value = app
        .get(&format!("/api/v1/records/{}", ids[1]), &app.key_a)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["payload"], stats_record(97.5, None)["payload"]);
    assert_eq!(got["provenance"]["receipt_id"], receipt_id.as_str());
    assert_eq!(got["provenance"]["method"], "realtime");

    // GetReceipt returns the same receipt.
    let (status, _, root) = answer(
        call(
            &app,
            v,
            "GetReceipt",
            &get_receipt(&receipt_id),
            Some(&app.key_a),
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    let again = body_of(&root).child("receipt").unwrap();
    assert!(body_of(&root).is(NS, "GetReceiptResponse"));
    assert_eq!(text(again, &["receipt_id"]).unwrap(), receipt_id);
    let again_ids: Vec<String> = again
        .child("record_ids")
        .unwrap()
        .children
        .iter()
        .map(|c| c.text.clone())
        .collect();
    assert_eq!(again_ids, ids);

    // The same key and records again: the original receipt, replayed, nothing new.
    let (status, _, root) = answer(
        call(
            &app,
            v,
            "SubmitRecords",
            &submit_records(&records, Some("soap-k-1")),
            Some(&app.key_a),
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    let replay = body_of(&root).child("receipt").unwrap();
    assert_eq!(text(replay, &["receipt_id"]).unwrap(), receipt_id);
    assert_eq!(text(replay, &["replayed"]).as_deref(), Some("true"));
    assert_eq!(app.count("records").await, 2);

    // The same key with other records: a conflict fault.
    let other = [record_xml("1", None)];
    let f = fault(
        call(
            &app,
            v,
            "SubmitRecords",
            &submit_records(&other, Some("soap-k-1")),
            Some(&app.key_a),
            &[],
        )
        .await,
        v,
    )
    .await;
    assert_eq!(f.code, "idempotency_conflict");
}

both_backends!(soap11_records_round_trip, |app: TestApp| async move {
    round_trip(app, V::S11).await;
});

both_backends!(soap12_records_round_trip, |app: TestApp| async move {
    round_trip(app, V::S12).await;
});

both_backends!(
    validation_faults_carry_field_paths_in_vietnamese_and_english,
    |app: TestApp| async move {
        let bad = record_xml("nhiều", None).replace("<etx:period>2026-10</etx:period>", "");
        let body = submit_records(&[record_xml("1", None), bad], None);

        let f = fault(
            call(&app, V::S11, "SubmitRecords", &body, Some(&app.key_a), &[]).await,
            V::S11,
        )
        .await;
        assert_eq!(f.status, 500, "SOAP 1.1 answers every fault with 500");
        assert_eq!(f.soap_code, "soap:Client");
        assert_eq!(f.code, "validation_failed");
        assert_eq!(f.title, "Dữ liệu không hợp lệ");
        assert!(
            f.violations.contains(&(
                Some("1".into()),
                "/payload/value".into(),
                "type".into(),
                "Sai kiểu dữ liệu".into()
            )),
            "{f:?}"
        );
        assert!(
            f.violations
                .iter()
                .any(|(i, p, c, _)| i.as_deref() == Some("1") && p == "/period" && c == "required"),
            "{f:?}"
        );

        let f = fault(
            call(
                &app,
                V::S12,
                "SubmitRecords",
                &body,
                Some(&app.key_a),
                &[("accept-language", "en-GB,en;q=0.9")],
            )
            .await,
            V::S12,
        )
        .await;
        assert_eq!(f.status, 400, "SOAP 1.2 answers env:Sender faults with 400");
        assert_eq!(f.soap_code, "env:Sender");
        assert_eq!(f.reason, "The data is not valid");
        assert!(
            f.violations.contains(&(
                Some("1".into()),
                "/payload/value".into(),
                "type".into(),
                "Wrong data type".into()
            )),
            "{f:?}"
        );

        // The same submission over REST reports the same code, title and violations.
        let mut json = vec![stats_record(1.0, None), stats_record(1.0, None)];
        json[1]["payload"]["value"] = Value::from("nhiều");
        json[1].as_object_mut().unwrap().remove("period");
        let p: Value = app
            .client
            .post(app.url("/api/v1/records"))
            .header("x-api-key", &app.key_a)
            .header("accept-language", "en")
            .json(&json)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(p["code"], "validation_failed");
        let rest: Vec<(Option<String>, String, String, String)> = p["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x["item"].as_u64().map(|i| i.to_string()),
                    x["path"].as_str().unwrap().to_owned(),
                    x["code"].as_str().unwrap().to_owned(),
                    x["message"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(rest, f.violations);
        assert_eq!(app.count("records").await, 0);

        // Decoding errors of the operation itself are violations too.
        let f = fault(
            call(
                &app,
                V::S11,
                "GetReceipt",
                "<etx:GetReceipt><etx:receipt_id>nope</etx:receipt_id><etx:x/></etx:GetReceipt>",
                Some(&app.key_a),
                &[("accept-language", "en")],
            )
            .await,
            V::S11,
        )
        .await;
        assert_eq!(f.code, "validation_failed");
        let paths: Vec<_> = f
            .violations
            .iter()
            .map(|v| (v.1.as_str(), v.2.as_str()))
            .collect();
        assert!(paths.contains(&("/receipt_id", "format")), "{paths:?}");
        assert!(paths.contains(&("/x", "unknown_field")), "{paths:?}");
    }
);

both_backends!(
    refused_credentials_are_faults_not_problems,
    |app: TestApp| async move {
        let body = get_receipt(&uuid::Uuid::now_v7().to_string());
        let f = fault(call(&app, V::S11, "GetReceipt", &body, None, &[]).await, V::S11).await;
        assert_eq!(
            (f.status, f.soap_code.as_str(), f.code.as_str()),
            (500, "soap:Client", "missing_credentials")
        );
        assert_eq!(f.title, "Thiếu khóa API hoặc mã truy cập");

        let f = fault(
            call(
                &app,
                V::S12,
                "GetReceipt",
                &body,
                Some("etx_nope_nope"),
                &[("accept-language", "en")],
            )
            .await,
            V::S12,
        )
        .await;
        assert_eq!(
            (f.status, f.soap_code.as_str(), f.code.as_str()),
            (400, "env:Sender", "invalid_credentials")
        );
        assert_eq!(f.title, "The API key or access token is not valid");

        // A bearer token works like X-API-Key.
        let bearer = format!("Bearer {}", app.key_a);
        let resp = call(
            &app,
            V::S11,
            "GetReceipt",
            &body,
            None,
            &[("authorization", bearer.as_str())],
        )
        .await;
        let f = fault(resp, V::S11).await;
        assert_eq!(
            f.code, "not_found",
            "authenticated, and the receipt does not exist"
        );
    }
);

both_backends!(
    malformed_xml_xxe_and_billion_laughs_are_faults,
    |app: TestApp| async move {
        let raw = |ct: &'static str, body: String| {
            app.client
                .post(app.url(PATH))
                .header("x-api-key", &app.key_a)
                .header("content-type", ct)
                .body(body)
                .send()
        };
        let f = fault(
            raw("text/xml", "<soap:Envelope xmlns:soap=\"x\"><soap:Body>".into())
                .await
                .unwrap(),
            V::S11,
        )
        .await;
        assert_eq!((f.status, f.code.as_str()), (500, "malformed_xml"));

        let xxe = format!(
            "<?xml version=\"1.0\"?>\n<!DOCTYPE foo [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n{}",
            envelope(
                V::S11,
                "<etx:GetReceipt><etx:receipt_id>&xxe;</etx:receipt_id></etx:GetReceipt>"
            )
            .replace("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", "")
        );
        let f = fault(raw("text/xml", xxe).await.unwrap(), V::S11).await;
        assert_eq!(f.code, "xml_dtd_forbidden");
        assert!(!f.reason.contains("root:"));

        let mut laughs = String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n");
        for i in 1..=9 {
            let prev = if i == 1 {
                "lol".to_owned()
            } else {
                format!("lol{}", i - 1)
            };
            laughs.push_str(&format!(
                " <!ENTITY lol{i} \"{}\">\n",
                format!("&{prev};").repeat(10)
            ));
        }
        laughs.push_str("]>\n");
        laughs.push_str(
            &envelope(
                V::S12,
                "<etx:GetReceipt><etx:receipt_id>&lol9;</etx:receipt_id></etx:GetReceipt>",
            )
            .replace("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", ""),
        );
        let f = fault(raw("application/soap+xml", laughs).await.unwrap(), V::S12).await;
        assert_eq!((f.status, f.code.as_str()), (400, "xml_dtd_forbidden"));

        // An undeclared entity without a DTD is simply not well-formed.
        let undeclared = envelope(
            V::S11,
            "<etx:GetReceipt><etx:receipt_id>&xxe;</etx:receipt_id></etx:GetReceipt>",
        );
        let f = fault(raw("text/xml", undeclared).await.unwrap(), V::S11).await;
        assert_eq!(f.code, "malformed_xml");

        // A records payload with a DTD inside the envelope never reaches the use case.
        assert_eq!(app.count("records").await, 0);
    }
);

both_backends!(
    unknown_operations_wrong_versions_and_content_types_are_faults,
    |app: TestApp| async move {
        let f = fault(
            call(
                &app,
                V::S11,
                "Nope",
                "<etx:DeleteEverything/>",
                Some(&app.key_a),
                &[],
            )
            .await,
            V::S11,
        )
        .await;
        assert_eq!(
            (f.soap_code.as_str(), f.code.as_str()),
            ("soap:Client", "invalid_parameter")
        );

        // The action header must match the Body's operation when it is given.
        let body = get_receipt(&uuid::Uuid::now_v7().to_string());
        let f = fault(
            call(&app, V::S11, "SubmitRecords", &body, Some(&app.key_a), &[]).await,
            V::S11,
        )
        .await;
        assert_eq!(f.code, "invalid_parameter");

        // A SOAP 1.1 envelope sent as SOAP 1.2: VersionMismatch.
        let resp = app
            .client
            .post(app.url(PATH))
            .header("x-api-key", &app.key_a)
            .header("content-type", "application/soap+xml")
            .body(envelope(V::S11, &body))
            .send()
            .await
            .unwrap();
        let f = fault(resp, V::S12).await;
        assert_eq!((f.status, f.soap_code.as_str()), (500, "env:VersionMismatch"));

        // A header block the endpoint must understand but does not.
        let with_header = envelope(V::S11, &body).replace(
            "<soap:Body>",
            "<soap:Header><w:Security xmlns:w=\"urn:wsse\" soap:mustUnderstand=\"1\"/></soap:Header><soap:Body>",
        );
        let resp = app
            .client
            .post(app.url(PATH))
            .header("x-api-key", &app.key_a)
            .header("content-type", "text/xml")
            .body(with_header)
            .send()
            .await
            .unwrap();
        let f = fault(resp, V::S11).await;
        assert_eq!(f.soap_code, "soap:MustUnderstand");

        // Not SOAP at all: 415, as a SOAP 1.1 fault.
        let resp = app
            .client
            .post(app.url(PATH))
            .header("x-api-key", &app.key_a)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let f = fault(resp, V::S11).await;
        assert_eq!((f.status, f.code.as_str()), (415, "unsupported_media_type"));

        // GET without ?wsdl, and other methods: 405 faults.
        let resp = app.client.get(app.url(PATH)).send().await.unwrap();
        assert_eq!(resp.headers().get("allow").unwrap(), "POST");
        let f = fault(resp, V::S11).await;
        assert_eq!((f.status, f.code.as_str()), (405, "method_not_allowed"));
        let resp = app
            .client
            .put(app.url(PATH))
            .header("x-api-key", &app.key_a)
            .send()
            .await
            .unwrap();
        let f = fault(resp, V::S11).await;
        assert_eq!((f.status, f.code.as_str()), (405, "method_not_allowed"));
    }
);

both_backends!(
    another_organisations_receipt_is_not_found,
    |app: TestApp| async move {
        let (status, _, root) = answer(
            call(
                &app,
                V::S11,
                "SubmitRecords",
                &submit_records(&[record_xml("5", None)], None),
                Some(&app.key_a),
                &[],
            )
            .await,
        )
        .await;
        assert_eq!(status, 200);
        let id = text(body_of(&root), &["receipt", "receipt_id"]).unwrap();
        let f = fault(
            call(
                &app,
                V::S12,
                "GetReceipt",
                &get_receipt(&id),
                Some(&app.key_b),
                &[],
            )
            .await,
            V::S12,
        )
        .await;
        assert_eq!(
            (f.status, f.soap_code.as_str(), f.code.as_str()),
            (400, "env:Sender", "not_found")
        );
        let (status, _, _) = answer(
            call(
                &app,
                V::S12,
                "GetReceipt",
                &get_receipt(&id),
                Some(&app.key_a),
                &[],
            )
            .await,
        )
        .await;
        assert_eq!(status, 200);
    }
);

fn stats_csv(rows: usize) -> String {
    let mut s = String::from("indicator,transaction_kind,value,unit,dimensions.province_code,note\n");
    for i in 1..=rows {
        s.push_str(&format!(
            "transaction_count,e_invoice,{},count,79,\"dòng {i}\"\n",
            i * 10
        ));
    }
    s
}

fn submit_batch(file: &[u8], extra: &str) -> String {
    use base64::Engine as _;
    format!(
        "<etx:SubmitBatch><etx:format>csv</etx:format><etx:file>{}</etx:file>\
         <etx:defaults><etx:category>statistics</etx:category><etx:schema_version>1</etx:schema_version>\
         <etx:period>2026-10</etx:period><etx:classification>internal</etx:classification></etx:defaults>{extra}</etx:SubmitBatch>",
        base64::engine::general_purpose::STANDARD.encode(file)
    )
}

both_backends!(
    a_batch_goes_in_inline_and_its_status_reads_back,
    |app: TestApp| async move {
        let csv = stats_csv(3);
        let totals = "<etx:control_totals><etx:row_count>3</etx:row_count></etx:control_totals>";
        let (status, _, root) = answer(
            call(
                &app,
                V::S11,
                "SubmitBatch",
                &submit_batch(csv.as_bytes(), totals),
                Some(&app.key_a),
                &[],
            )
            .await,
        )
        .await;
        assert_eq!(status, 200, "{root:?}");
        let out = body_of(&root);
        assert!(out.is(NS, "SubmitBatchResponse"));
        assert_eq!(text(out, &["replayed"]).as_deref(), Some("false"));
        let id = text(out, &["batch", "batch_id"]).unwrap();
        assert_eq!(text(out, &["batch", "format"]).as_deref(), Some("csv"));
        assert_eq!(
            text(out, &["batch", "declared", "row_count"]).as_deref(),
            Some("3")
        );

        let mut last = None;
        for _ in 0..600 {
            let (status, _, root) = answer(
                call(
                    &app,
                    V::S12,
                    "GetBatchStatus",
                    &format!("<etx:GetBatchStatus><etx:batch_id>{id}</etx:batch_id></etx:GetBatchStatus>"),
                    Some(&app.key_a),
                    &[],
                )
                .await,
            )
            .await;
            assert_eq!(status, 200);
            let batch = body_of(&root).child("batch").unwrap().clone();
            if matches!(
                text(&batch, &["state"]).as_deref(),
                Some("completed" | "rejected" | "failed")
            ) {
                last = Some(batch);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let batch = last.expect("the batch finishes");
        assert_eq!(
            text(&batch, &["state"]).as_deref(),
            Some("completed"),
            "{batch:?}"
        );
        assert_eq!(text(&batch, &["counts", "accepted"]).as_deref(), Some("3"));
        assert!(text(&batch, &["receipt_id"]).is_some());
        assert_eq!(app.count("records").await, 3);

        // The same upload again is the same batch.
        let (_, _, root) = answer(
            call(
                &app,
                V::S11,
                "SubmitBatch",
                &submit_batch(csv.as_bytes(), totals),
                Some(&app.key_a),
                &[],
            )
            .await,
        )
        .await;
        assert_eq!(text(body_of(&root), &["replayed"]).as_deref(), Some("true"));
        assert_eq!(text(body_of(&root), &["batch", "batch_id"]).unwrap(), id);

        // Bad inline input is reported at its element; another organisation sees no batch.
        let f = fault(
            call(
                &app,
                V::S11,
                "SubmitBatch",
                "<etx:SubmitBatch><etx:format>zip</etx:format><etx:file>***</etx:file></etx:SubmitBatch>",
                Some(&app.key_a),
                &[],
            )
            .await,
            V::S11,
        )
        .await;
        let paths: Vec<_> = f.violations.iter().map(|v| v.1.as_str()).collect();
        assert_eq!(
            (f.code.as_str(), paths),
            ("validation_failed", vec!["/format", "/file"])
        );
        let f = fault(
            call(
                &app,
                V::S11,
                "GetBatchStatus",
                &format!("<etx:GetBatchStatus><etx:batch_id>{id}</etx:batch_id></etx:GetBatchStatus>"),
                Some(&app.key_b),
                &[],
            )
            .await,
            V::S11,
        )
        .await;
        assert_eq!(f.code, "not_found");
    }
);

const XOP: &str = "http://www.w3.org/2004/08/xop/include";
const BOUNDARY: &str = "uuid:etx-MIMEBoundary_7f3a";
const ROOT_ID: &str = "root.message@etxhub.test";

/// `SubmitBatch` whose `file` is an `xop:Include` of `cid:{href}`, with the example defaults.
fn submit_batch_xop(href: &str) -> String {
    format!(
        "<etx:SubmitBatch><etx:format>csv</etx:format><etx:file><xop:Include xmlns:xop=\"{XOP}\" href=\"cid:{href}\"/></etx:file>\
         <etx:defaults><etx:category>statistics</etx:category><etx:schema_version>1</etx:schema_version>\
         <etx:period>2026-10</etx:period><etx:classification>internal</etx:classification></etx:defaults></etx:SubmitBatch>"
    )
}

/// POSTs an MTOM/XOP package: the envelope of `body` as the root part (Content-ID `root_id`),
/// then `attachments` (Content-ID, bytes) as binary parts; `start` names the root.
async fn call_mtom(
    app: &TestApp,
    v: V,
    body: &str,
    root_id: &str,
    start: &str,
    attachments: &[(&str, &[u8])],
) -> reqwest::Response {
    let action = format!("{NS}:SubmitBatch");
    let soap_type = if v == V::S11 {
        "text/xml"
    } else {
        "application/soap+xml"
    };
    let mut raw = format!(
        "MIME preamble, ignored\r\n--{BOUNDARY}\r\nContent-Type: application/xop+xml; charset=UTF-8; type=\"{soap_type}\"\r\n\
         Content-Transfer-Encoding: 8bit\r\nContent-ID: <{root_id}>\r\n\r\n{}",
        envelope(v, body)
    )
    .into_bytes();
    for (id, bytes) in attachments {
        raw.extend_from_slice(
            format!(
                "\r\n--{BOUNDARY}\r\nContent-Type: text/csv\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <{id}>\r\n\r\n"
            )
            .as_bytes(),
        );
        raw.extend_from_slice(bytes);
    }
    raw.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let ct = match v {
        V::S11 => format!(
            "multipart/related; type=\"application/xop+xml\"; boundary=\"{BOUNDARY}\"; start=\"<{start}>\"; start-info=\"text/xml\""
        ),
        V::S12 => format!(
            "multipart/related; type=\"application/xop+xml\"; boundary=\"{BOUNDARY}\"; start=\"<{start}>\"; start-info=\"application/soap+xml\"; action=\"{action}\""
        ),
    };
    let mut req = app
        .client
        .post(app.url(PATH))
        .header("content-type", ct)
        .header("x-api-key", &app.key_a)
        .body(raw);
    if v == V::S11 {
        req = req.header("soapaction", format!("\"{action}\""));
    }
    req.send().await.unwrap()
}

fn statistics_example() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../contracts/examples/batches/statistics-2026-10.csv"
    );
    std::fs::read(path).unwrap()
}

/// An MTOM SubmitBatch of the statistics example completes with its 12 rows.
async fn mtom_batch_completes(app: TestApp, v: V) {
    let csv = statistics_example();
    // The cid: URL is %-escaped; the Content-ID is not.
    let (status, ct, root) = answer(
        call_mtom(
            &app,
            v,
            &submit_batch_xop("statistics-2026-10.csv%40etxhub.test"),
            ROOT_ID,
            ROOT_ID,
            &[("statistics-2026-10.csv@etxhub.test", &csv)],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{root:?}");
    let expected_ct = if v == V::S11 {
        "text/xml"
    } else {
        "application/soap+xml"
    };
    assert!(ct.starts_with(expected_ct), "{ct}");
    let out = body_of(&root);
    assert!(out.is(NS, "SubmitBatchResponse"), "{out:?}");
    assert_eq!(text(out, &["replayed"]).as_deref(), Some("false"));
    let id = text(out, &["batch", "batch_id"]).unwrap();
    assert_eq!(
        text(out, &["batch", "size_bytes"]),
        Some(csv.len().to_string()),
        "the attachment's bytes, untouched"
    );

    let mut last = None;
    for _ in 0..600 {
        let (status, _, root) = answer(
            call(
                &app,
                v,
                "GetBatchStatus",
                &format!("<etx:GetBatchStatus><etx:batch_id>{id}</etx:batch_id></etx:GetBatchStatus>"),
                Some(&app.key_a),
                &[],
            )
            .await,
        )
        .await;
        assert_eq!(status, 200);
        let batch = body_of(&root).child("batch").unwrap().clone();
        if matches!(
            text(&batch, &["state"]).as_deref(),
            Some("completed" | "rejected" | "failed")
        ) {
            last = Some(batch);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let batch = last.expect("the batch finishes");
    assert_eq!(
        text(&batch, &["state"]).as_deref(),
        Some("completed"),
        "{batch:?}"
    );
    assert_eq!(text(&batch, &["counts", "total"]).as_deref(), Some("12"));
    assert_eq!(text(&batch, &["counts", "accepted"]).as_deref(), Some("12"));
    assert_eq!(app.count("records").await, 12);
}

both_backends!(soap11_mtom_batch_completes, |app: TestApp| async move {
    mtom_batch_completes(app, V::S11).await;
});

both_backends!(soap12_mtom_batch_completes, |app: TestApp| async move {
    mtom_batch_completes(app, V::S12).await;
});

both_backends!(
    mtom_packages_with_an_unknown_cid_or_no_root_are_faults,
    |app: TestApp| async move {
        let csv = statistics_example();
        for v in [V::S11, V::S12] {
            let f = fault(
                call_mtom(
                    &app,
                    v,
                    &submit_batch_xop("missing@etxhub.test"),
                    ROOT_ID,
                    ROOT_ID,
                    &[("statistics@etxhub.test", &csv)],
                )
                .await,
                v,
            )
            .await;
            let (status, code) = if v == V::S11 {
                (500, "soap:Client")
            } else {
                (400, "env:Sender")
            };
            assert_eq!(
                (f.status, f.soap_code.as_str(), f.code.as_str()),
                (status, code, "invalid_parameter"),
                "{f:?}"
            );

            // `start` names a part that is not there.
            let f = fault(
                call_mtom(
                    &app,
                    v,
                    &submit_batch_xop("statistics@etxhub.test"),
                    ROOT_ID,
                    "elsewhere@etxhub.test",
                    &[("statistics@etxhub.test", &csv)],
                )
                .await,
                v,
            )
            .await;
            assert_eq!(
                (f.status, f.soap_code.as_str(), f.code.as_str()),
                (status, code, "invalid_parameter"),
                "{f:?}"
            );
        }
        // An xop:Include in a plain (non-MTOM) request is refused too.
        let f = fault(
            call(
                &app,
                V::S11,
                "SubmitBatch",
                &submit_batch_xop("statistics@etxhub.test"),
                Some(&app.key_a),
                &[],
            )
            .await,
            V::S11,
        )
        .await;
        assert_eq!(f.code, "invalid_parameter");
        assert_eq!(app.count("records").await, 0);
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_wsdl_matches_the_committed_contract() {
    let app = TestApp::spawn("sqlite").await;
    // No API key: the WSDL is public. The committed copy is addressed to the all-in-one default.
    let resp = app
        .client
        .get(app.url(&format!("{PATH}?wsdl")))
        .header("host", "127.0.0.1:8443")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/xml")
    );
    let served = resp.text().await.unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../contracts/wsdl/ingestion.wsdl");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if served != committed && std::env::var("ETX_UPDATE_CONTRACTS").is_ok() {
        std::fs::create_dir_all(std::path::Path::new(path).parent().unwrap()).unwrap();
        std::fs::write(path, &served).unwrap();
        return;
    }
    assert!(
        served == committed,
        "contracts/wsdl/ingestion.wsdl is out of date: run `ETX_UPDATE_CONTRACTS=1 cargo nextest run -p etxhub wsdl` and commit it"
    );

    // Otherwise the address is the one the client used.
    let here = app
        .client
        .get(app.url(&format!("{PATH}?WSDL")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        here.contains(&format!("location=\"{}{PATH}\"", app.base)),
        "{here}"
    );
    assert_eq!(here.replace(&app.base, "https://127.0.0.1:8443"), committed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_over_the_body_limit_is_a_fault() {
    let app = TestApp::spawn_with("sqlite", |c| c.limits.max_body_bytes = 4096).await;
    let records: Vec<String> = (0..20).map(|i| record_xml(&i.to_string(), None)).collect();
    let f = fault(
        call(
            &app,
            V::S12,
            "SubmitRecords",
            &submit_records(&records, None),
            Some(&app.key_a),
            &[],
        )
        .await,
        V::S12,
    )
    .await;
    assert_eq!(
        (f.status, f.soap_code.as_str(), f.code.as_str()),
        (400, "env:Sender", "payload_too_large")
    );
    assert_eq!(app.count("records").await, 0);
}
