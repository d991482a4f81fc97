//! Gateway hardening (issue 4 §11, R-SEC-3, R-SEC-4): TLS 1.2+ with AEAD/forward-secret
//! suites only, CORS closed by default, header limits, slow-client timeouts, and services that
//! refuse any request not carrying a principal signed by the gateway.

use crate::helpers::*;
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn problem_code(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(ct.starts_with("application/problem+json"), "{status} {ct}");
    (status, resp.json().await.unwrap())
}

/// Runs `openssl s_client` against the app with extra arguments; returns (handshake done,
/// everything it printed).
async fn s_client(app: &TestApp, args: &[&str]) -> (bool, String) {
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    let out = tokio::process::Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("openssl must be installed for the TLS tests");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let done = text.contains("New, TLSv1") && !text.contains("Cipher is (NONE)");
    (done, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_tls_1_2_and_up_with_aead_forward_secret_suites_is_offered() {
    let app = TestApp::spawn("sqlite").await;
    let (ok13, text) = s_client(&app, &["-tls1_3"]).await;
    assert!(ok13, "TLS 1.3 works: {text}");
    let (ok12, text) = s_client(&app, &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]).await;
    assert!(ok12, "TLS 1.2 with ECDHE + AES-GCM works: {text}");
    assert!(text.contains("ECDHE-ECDSA-AES128-GCM-SHA256"), "{text}");
    // The client offers TLS 1.1 (security level 0 so OpenSSL itself does not hold it back):
    // the server refuses the handshake with an alert.
    let (ok11, text) = s_client(&app, &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]).await;
    assert!(!ok11, "TLS 1.1 must be refused: {text}");
    assert!(
        text.contains("alert handshake failure") || text.contains("alert protocol version"),
        "{text}"
    );
    // CBC suites and static-RSA key exchange are not offered, even over TLS 1.2.
    for weak in [
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-ECDSA-AES256-SHA384",
        "AES128-GCM-SHA256",
    ] {
        let (ok, text) = s_client(&app, &["-tls1_2", "-cipher", weak]).await;
        assert!(!ok, "{weak} must be refused: {text}");
        assert!(text.contains("handshake failure"), "{weak}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_3_only_when_configured() {
    let app = TestApp::spawn_with("sqlite", |c| c.tls.min_version = "1.3".into()).await;
    let (ok12, text) = s_client(&app, &["-tls1_2"]).await;
    assert!(!ok12, "{text}");
    let (ok13, text) = s_client(&app, &["-tls1_3"]).await;
    assert!(ok13, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_closed_by_default_and_opens_only_to_configured_origins() {
    let app = TestApp::spawn("sqlite").await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/records"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "x-api-key, content-type")
            .send()
    };
    let (status, p) = problem_code(preflight("https://portal.gov.vn").await.unwrap()).await;
    assert_eq!((status, p["code"].as_str()), (403, Some("forbidden")));
    let simple = app
        .client
        .get(app.url("/api/v1/systems"))
        .header("origin", "https://portal.gov.vn")
        .header("x-api-key", &app.key_a)
        .send()
        .await
        .unwrap();
    assert_eq!(simple.status(), 200);
    assert!(simple.headers().get("access-control-allow-origin").is_none());

    let app = TestApp::spawn_with("sqlite", |c| {
        c.http.cors_origins = vec!["https://portal.gov.vn".into()];
    })
    .await;
    let ok = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/records"))
        .header("origin", "https://portal.gov.vn")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://portal.gov.vn"
    );
    assert!(ok.headers().get("access-control-allow-credentials").is_none());
    let (status, _) = problem_code(
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/records"))
            .header("origin", "https://evil.example")
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_or_too_many_headers_are_refused() {
    let app = TestApp::spawn("sqlite").await;
    let request = |extra: String| {
        format!(
            "GET /api/v1/systems HTTP/1.1\r\nhost: localhost\r\nx-api-key: {}\r\n{extra}\r\n",
            app.key_a
        )
    };
    // Over our 32 KiB: a problem+json answer.
    let big = send_and_stall(
        &app,
        request(format!("x-filler: {}\r\n", "a".repeat(40 * 1024))).as_bytes(),
    )
    .await;
    assert!(big.starts_with("HTTP/1.1 431"), "{big}");
    assert!(big.contains("request_headers_too_large"), "{big}");
    // Over the parser's own limits (128 KiB, 96 headers): refused before any handler runs.
    let huge = send_and_stall(
        &app,
        request(format!("x-filler: {}\r\n", "a".repeat(200 * 1024))).as_bytes(),
    )
    .await;
    // (The server may close before the client has written everything; then no answer arrives.)
    assert!(huge.is_empty() || huge.starts_with("HTTP/1.1 431"), "{huge}");
    let many: String = (0..150).map(|i| format!("x-h{i}: 1\r\n")).collect();
    let many = send_and_stall(&app, request(many).as_bytes()).await;
    assert!(many.starts_with("HTTP/1.1 431"), "{many}");
    // The server is still fine.
    assert_eq!(app.get("/api/v1/systems", &app.key_a).await.status(), 200);
}

/// Whether `buf` holds a whole HTTP response (head, and a body of its `content-length`).
fn complete_response(buf: &[u8]) -> bool {
    let text = String::from_utf8_lossy(buf);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    body.len() >= length
}

/// Opens a raw TLS connection with `openssl s_client` (a client that, unlike hyper, reads an
/// answer while it still "sends"), sends `bytes` and then nothing more; returns the server's
/// answer once it is complete or the connection closes.
async fn send_and_stall(app: &TestApp, bytes: &[u8]) -> String {
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    let mut child = tokio::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl must be installed for the slow-client tests");
    let mut stdin = child.stdin.take().unwrap();
    // The server may refuse and close before everything is written (a head over its limits).
    let _ = stdin.write_all(bytes).await;
    let _ = stdin.flush().await;
    let mut out = Vec::new();
    let mut stdout = child.stdout.take().unwrap();
    // The bound only keeps a broken server from hanging the suite.
    tokio::time::timeout(Duration::from_secs(60), async {
        let mut chunk = [0u8; 4096];
        while !complete_response(&out) {
            let n = stdout.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("the server must answer");
    drop(stdin);
    let _ = child.kill().await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_cut_off_with_408_and_stores_nothing() {
    let app = TestApp::spawn_with("sqlite", |c| c.http.body_idle_timeout_secs = 1).await;
    for framing in ["content-length: 4000", "transfer-encoding: chunked"] {
        let first = if framing.starts_with("transfer") {
            "1b\r\n{\"category\": \"statistics\", \r\n"
        } else {
            "{\"category\": \"statistics\", "
        };
        let head = format!(
            "POST /api/v1/records HTTP/1.1\r\nhost: localhost\r\nx-api-key: {}\r\n\
             content-type: application/json\r\naccept-language: en\r\n{framing}\r\n\r\n{first}",
            app.key_a
        );
        let answer = send_and_stall(&app, head.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{framing}: {answer}");
        assert!(answer.contains("request_timeout"), "{framing}: {answer}");
        assert!(answer.contains("connection: close"), "{framing}: {answer}");
    }
    assert_eq!(app.count("records").await, 0);
    assert_eq!(app.get("/api/v1/systems", &app.key_a).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let app = TestApp::spawn_with("sqlite", |c| c.http.header_timeout_secs = 1).await;
    // Never send the blank line: the server gives up, answers 408 and closes.
    let answer = send_and_stall(&app, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_refuses_requests_without_a_gateway_signed_principal() {
    install_crypto();
    let db = etx_storage::testing::TestDb::of("sqlite").await;
    let data_dir = std::env::temp_dir().join(format!("etx-api-{}", uuid::Uuid::now_v7().simple()));
    let mut cfg = etxhub::config::Config::load(None, Some(&data_dir)).unwrap();
    cfg.listen = "127.0.0.1:0".into();
    cfg.shutdown.timeout_secs = 1;
    cfg.database.url = db.url.clone().into();
    // An ingestion process alone, as in the distributed mode: plain HTTP on a private network.
    let running = etxhub::app::build(&cfg, &etxhub::app::parse_targets("ingestion").unwrap())
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", running.addr.port());
    tokio::spawn(running.server);
    let client = reqwest::Client::new();
    let record = stats_record(1.0, None).to_string();
    let post = |principal: Option<String>| {
        let mut r = client
            .post(format!("{base}/api/v1/records"))
            .header("content-type", "application/json")
            .body(record.clone());
        if let Some(p) = principal {
            r = r.header(etx_http_kit::PRINCIPAL_HEADER, p);
        }
        r.send()
    };
    let me = etx_http_kit::Principal {
        org_id: etx_domain::OrgId::new(),
        system_id: Some(etx_domain::SystemId::new()),
        key_id: None,
        subject: "system:x".into(),
        roles: vec!["source".into()],
        scopes: Vec::new(),
        client_ip: None,
    };
    let forged = etx_http_kit::PrincipalSigner::new(&[7u8; 32], Duration::from_secs(30)).sign(&me);
    for (case, principal) in [
        ("none", None),
        ("garbage", Some("not-a-token".to_owned())),
        ("signed with another secret", Some(forged)),
    ] {
        let (status, p) = problem_code(post(principal).await.unwrap()).await;
        assert_eq!(
            (status, p["code"].as_str()),
            (401, Some("untrusted_caller")),
            "{case}: {p}"
        );
    }
    let n = db.connect().await;
    use sea_orm::ConnectionTrait;
    let row = n
        .query_one_raw(sea_orm::Statement::from_string(
            n.get_database_backend(),
            "SELECT COUNT(*) AS n FROM records",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get::<i64>("", "n").unwrap(), 0);
}
