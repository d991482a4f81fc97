//! Regressions for what the OpenAPI fuzz run (`scripts/fuzz-api`) found in the toolkit, and the
//! toolkit pieces that make the published document tell the truth.

use actix_web::http::{StatusCode, header};
use actix_web::middleware::from_fn;
use actix_web::test as actix_test;
use actix_web::{App, HttpResponse, web};
use etx_http_kit::openapi::{AuthErrors, BadParameter, TooLarge};
use etx_http_kit::{BodyIdleTimeout, client_limits, method_not_allowed, standard};
use futures_util::StreamExt;
use std::time::Duration;
use utoipa::IntoResponses;

/// Reads the body to its end, then polls once more, as actix-multipart does.
async fn drain_then_poll_again(mut body: web::Payload) -> HttpResponse {
    let mut n = 0;
    while let Some(chunk) = body.next().await {
        n += chunk.map(|c| c.len()).unwrap_or_default();
    }
    let again = body.next().await;
    HttpResponse::Ok().body(format!("{n} {}", again.is_none()))
}

#[actix_web::test]
async fn a_body_polled_after_its_end_under_the_idle_timeout_stays_ended() {
    // Found by the fuzzer: a multipart batch upload killed the worker thread ("`Unfold` must not
    // be polled after it returned `Poll::Ready(None)`") and the client saw the connection close.
    let app = actix_test::init_service(
        App::new()
            .app_data(web::Data::new(BodyIdleTimeout(Duration::from_secs(5))))
            .route("/upload", web::post().to(drain_then_poll_again))
            .wrap(from_fn(client_limits))
            .wrap(from_fn(standard)),
    )
    .await;
    let req = actix_test::TestRequest::post()
        .uri("/upload")
        .insert_header((header::CONTENT_LENGTH, "5"))
        .set_payload("a,b\n1")
        .to_request();
    let resp = actix_test::call_service(&app, req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(actix_test::read_body(resp).await, "5 true");
}

#[actix_web::test]
async fn another_method_on_a_known_path_is_405_with_allow() {
    let app = actix_test::init_service(
        App::new()
            .service(
                web::resource("/records")
                    .route(web::post().to(|| async { HttpResponse::Accepted().finish() }))
                    .default_service(method_not_allowed("POST")),
            )
            .wrap(from_fn(standard)),
    )
    .await;
    for method in ["GET", "PUT", "DELETE", "PATCH", "TRACE"] {
        let req = actix_test::TestRequest::default()
            .method(method.parse().expect("a method"))
            .uri("/records")
            .to_request();
        let resp = actix_test::call_service(&app, req).await;
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(
            resp.headers().get(header::ALLOW).map(|v| v.as_bytes()),
            Some(&b"POST"[..])
        );
        assert_eq!(
            resp.headers().get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
            Some(&b"application/problem+json"[..])
        );
        let body: serde_json::Value = actix_test::read_body_json(resp).await;
        assert_eq!(body["code"], "method_not_allowed", "{method}");
        assert_eq!(body["status"], 405, "{method}");
    }
    let req = actix_test::TestRequest::post().uri("/records").to_request();
    assert_eq!(
        actix_test::call_service(&app, req).await.status(),
        StatusCode::ACCEPTED
    );
}

#[test]
fn shared_error_responses_are_problems() {
    let mut responses = AuthErrors::responses();
    responses.extend(BadParameter::responses());
    responses.extend(TooLarge::responses());
    let doc = serde_json::to_value(&responses).expect("serialisable");
    for status in ["400", "401", "403", "413"] {
        assert_eq!(
            doc[status]["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem",
            "{status}: {doc}"
        );
        assert!(
            doc[status]["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{status}"
        );
    }
    assert!(doc["401"]["headers"].get("WWW-Authenticate").is_some(), "{doc}");
}
