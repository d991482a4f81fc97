//! The published schemas (R-DATA-1, R-ING-3): each category version as a JSON Schema and as the
//! XSD of the XML wire format, chosen by `?format=` or the `Accept` header; the committed XSDs
//! (`contracts/schemas/<category>/v<n>.xsd`) are exactly what the hub serves.

use crate::helpers::*;
use serde_json::Value;

async fn get_with(app: &TestApp, path: &str, accept: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(app.url(path)).header("x-api-key", &app.key_a);
    if let Some(accept) = accept {
        req = req.header("accept", accept);
    }
    req.send().await.unwrap()
}

fn content_type(r: &reqwest::Response) -> String {
    r.headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_xsd_is_served_for_format_xsd_or_when_accept_prefers_xml() {
    let app = TestApp::spawn("sqlite").await;
    let path = "/api/v1/schemas/statistics/1";
    for (query, accept) in [
        ("?format=xsd", None),
        ("?format=XSD", Some("application/json")),
        ("", Some("application/xml")),
        ("", Some("text/xml")),
        ("", Some("application/json;q=0.5, application/xml")),
    ] {
        let r = get_with(&app, &format!("{path}{query}"), accept).await;
        assert_eq!(r.status(), 200, "{query} {accept:?}");
        assert_eq!(
            content_type(&r),
            "application/xml; charset=utf-8",
            "{query} {accept:?}"
        );
        assert!(
            r.headers().get_all("vary").iter().any(|v| v
                .to_str()
                .unwrap()
                .to_ascii_lowercase()
                .contains("accept")),
            "the answer depends on Accept"
        );
        let body = r.text().await.unwrap();
        assert!(body.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
        assert!(body.contains("targetNamespace=\"urn:etxhub:ingestion:v1\""));
        assert!(body.contains("<xs:enumeration value=\"statistics\"/>"));
    }
    for (query, accept) in [
        ("", None),
        ("", Some("*/*")),
        ("", Some("application/json, application/xml")),
        ("", Some("application/xml;q=0.5, application/json")),
        ("?format=json", Some("application/xml")),
    ] {
        let r = get_with(&app, &format!("{path}{query}"), accept).await;
        assert_eq!(r.status(), 200, "{query} {accept:?}");
        assert_eq!(content_type(&r), "application/schema+json", "{query} {accept:?}");
        let schema: Value = r.json().await.unwrap();
        assert_eq!(schema["$id"], "urn:etxhub:schema:statistics:v1");
    }
    for missing in [
        "/api/v1/schemas/statistics/99?format=xsd",
        "/api/v1/schemas/weather/1?format=xsd",
    ] {
        let r = get_with(&app, missing, None).await;
        assert_eq!(r.status(), 404, "{missing}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["code"], "not_found");
    }
    let anonymous = app
        .client
        .get(app.url(&format!("{path}?format=xsd")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_schema_format_is_an_invalid_parameter() {
    let app = TestApp::spawn("sqlite").await;
    for format in ["wsdl", "", "json-schema"] {
        let r = get_with(
            &app,
            &format!("/api/v1/schemas/policy/1?format={format}"),
            Some("application/xml"),
        )
        .await;
        assert_eq!(r.status(), 400, "{format}");
        assert!(content_type(&r).starts_with("application/problem+json"));
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["code"], "invalid_parameter");
        assert_eq!(p["violations"][0]["path"], "query:format");
        assert_eq!(p["violations"][0]["code"], "enum");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_list_links_the_json_schema_and_the_xsd_of_every_version() {
    let app = TestApp::spawn("sqlite").await;
    let list: Value = app.get("/api/v1/schemas", &app.key_a).await.json().await.unwrap();
    let categories = list["categories"].as_array().unwrap();
    assert_eq!(categories.len(), 4);
    for c in categories {
        let name = c["category"].as_str().unwrap();
        assert_eq!(c["versions"], serde_json::json!([1]), "existing fields stay");
        assert_eq!(c["latest"], 1);
        let docs = c["documents"].as_array().unwrap();
        assert_eq!(docs.len(), c["versions"].as_array().unwrap().len());
        let doc = &docs[0];
        assert_eq!(doc["version"], 1);
        assert_eq!(doc["json_schema_url"], format!("/api/v1/schemas/{name}/1"));
        assert_eq!(doc["xsd_url"], format!("/api/v1/schemas/{name}/1?format=xsd"));
        let json = app
            .get(doc["json_schema_url"].as_str().unwrap(), &app.key_a)
            .await;
        assert_eq!(content_type(&json), "application/schema+json");
        let xsd = app.get(doc["xsd_url"].as_str().unwrap(), &app.key_a).await;
        assert_eq!(content_type(&xsd), "application/xml; charset=utf-8");
        let body = xsd.text().await.unwrap();
        assert!(
            body.contains(&format!("<xs:enumeration value=\"{name}\"/>")),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committed_xsds_match_the_served_ones() {
    let app = TestApp::spawn("sqlite").await;
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let list: Value = app.get("/api/v1/schemas", &app.key_a).await.json().await.unwrap();
    let update = std::env::var("ETX_UPDATE_CONTRACTS").is_ok();
    let mut served_paths = Vec::new();
    let mut stale = Vec::new();
    for c in list["categories"].as_array().unwrap() {
        let category = c["category"].as_str().unwrap();
        for doc in c["documents"].as_array().unwrap() {
            let rel = format!("contracts/schemas/{category}/v{}.xsd", doc["version"]);
            let r = app.get(doc["xsd_url"].as_str().unwrap(), &app.key_a).await;
            assert_eq!(r.status(), 200, "{rel}");
            let served = r.text().await.unwrap();
            let path = root.join(&rel);
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            if served != committed {
                if update {
                    std::fs::write(&path, &served).unwrap();
                } else {
                    stale.push(rel.clone());
                }
            }
            served_paths.push(path);
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?} out of date: run `ETX_UPDATE_CONTRACTS=1 cargo nextest run -p etxhub xsd` and commit them"
    );
    // No XSD is left behind for a version the hub does not serve.
    for dir in std::fs::read_dir(root.join("contracts/schemas")).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|e| e == "xsd") {
                assert!(
                    served_paths
                        .iter()
                        .any(|p| p.canonicalize().ok() == file.canonicalize().ok()),
                    "{} is not served by the hub",
                    file.display()
                );
            }
        }
    }
}
