//! Health, errors for unknown routes, security headers, the OpenAPI contract.

use crate::both_backends;
use crate::helpers::*;
use serde_json::Value;

both_backends!(health_and_readiness_answer, |app: TestApp| async move {
    let h = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(h.status(), 200);
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["queue"], "ok");
});

both_backends!(
    unknown_routes_and_methods_are_problems_with_security_headers,
    |app: TestApp| async move {
        let r = app.client.get(app.url("/nope")).send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert!(r.headers().get("strict-transport-security").is_some());
        assert_eq!(r.headers().get("x-content-type-options").unwrap(), "nosniff");
        assert!(r.headers().get("x-request-id").is_some());
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["code"], "not_found");
        let m = app
            .client
            .put(app.url("/api/v1/records"))
            .header("x-api-key", &app.key_a)
            .send()
            .await
            .unwrap();
        assert!(m.status() == 405 || m.status() == 404, "{}", m.status());
        let ct = m
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(ct.starts_with("application/problem+json"));
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_openapi_document_matches_the_committed_contract() {
    let app = TestApp::spawn("sqlite").await;
    let served: Value = app.openapi().await;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../contracts/openapi/etxhub.json");
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_default()).unwrap_or(Value::Null);
    if served != committed && std::env::var("ETX_UPDATE_CONTRACTS").is_ok() {
        std::fs::write(path, serde_json::to_string_pretty(&served).unwrap() + "\n").unwrap();
        return;
    }
    assert!(
        served == committed,
        "contracts/openapi/etxhub.json is out of date: run `ETX_UPDATE_CONTRACTS=1 cargo nextest run -p etxhub openapi` and commit it"
    );
}
