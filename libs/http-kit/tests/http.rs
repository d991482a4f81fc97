//! The toolkit seen from outside: a small app wrapped in the standard middleware.

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpMessage, HttpRequest, HttpResponse, test, web};
use etx_domain::{ErrorCode, FieldViolation, OrgId, ViolationCode};
use etx_http_kit::{
    ApiError, KeepErrorBody, PRINCIPAL_HEADER, Principal, PrincipalSigner, RequestId, RequestLang,
    json_config, not_found_handler, path_config, payload_config, query_config, standard, standard_middleware,
};
use serde::Deserialize;
use std::time::Duration;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Reading {
    value: u32,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Paging {
    limit: u32,
}

async fn invalid() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(ErrorCode::ValidationFailed).with_violations(vec![
        FieldViolation::new("/payload/value", ViolationCode::Type)
            .at_item(0)
            .with_detail("expected number"),
    ]))
}

async fn boom() -> Result<HttpResponse, ApiError> {
    Err(ApiError::internal(
        "connection to postgres://admin:hunter2@db failed",
    ))
}

async fn busy() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(ErrorCode::ServiceUnavailable).with_retry_after(7))
}

async fn ok() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

async fn reading(body: web::Json<Reading>) -> HttpResponse {
    HttpResponse::Ok().body(body.value.to_string())
}

async fn raw(body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok().body(body.len().to_string())
}

async fn by_id(id: web::Path<u32>) -> HttpResponse {
    HttpResponse::Ok().body(id.to_string())
}

async fn paged(q: web::Query<Paging>) -> HttpResponse {
    HttpResponse::Ok().body(q.limit.to_string())
}

async fn who(p: Principal) -> HttpResponse {
    HttpResponse::Ok().json(p)
}

async fn ids(id: RequestId, lang: RequestLang) -> HttpResponse {
    HttpResponse::Ok().body(format!("{} {}", id.0, lang.0.tag()))
}

async fn teapot_plain() -> HttpResponse {
    HttpResponse::BadRequest().body("plain text error with <script>")
}

async fn soap_fault() -> HttpResponse {
    HttpResponse::InternalServerError()
        .content_type("text/xml; charset=utf-8")
        .body("<Fault/>")
}

async fn probe_down() -> HttpResponse {
    let mut res = HttpResponse::ServiceUnavailable().json(serde_json::json!({"db": "down"}));
    res.extensions_mut().insert(KeepErrorBody);
    res
}

async fn own_csp() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_SECURITY_POLICY, "default-src 'self'"))
        .insert_header((header::CACHE_CONTROL, "max-age=60"))
        .body("docs")
}

/// A gateway-like middleware that puts an in-process principal in the request.
async fn insert_principal(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    req.extensions_mut().insert(in_process_principal());
    next.call(req).await
}

/// A middleware that fails before any handler runs.
async fn reject_all(
    _req: actix_web::dev::ServiceRequest,
    _next: actix_web::middleware::Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    Err::<ServiceResponse<actix_web::body::BoxBody>, _>(ApiError::new(ErrorCode::Forbidden).into())
}

fn in_process_principal() -> Principal {
    Principal {
        org_id: OrgId::new(),
        system_id: None,
        key_id: None,
        subject: "system:in-process".into(),
        roles: vec![],
        scopes: Vec::new(),
        client_ip: None,
    }
}

fn forwarded_principal() -> Principal {
    Principal {
        org_id: OrgId::new(),
        system_id: None,
        key_id: None,
        subject: "system:forwarded".into(),
        roles: vec!["submitter".into()],
        scopes: Vec::new(),
        client_ip: Some("198.51.100.1".into()),
    }
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/invalid", web::get().to(invalid))
        .route("/boom", web::get().to(boom))
        .route("/busy", web::get().to(busy))
        // `route()` guards the resource by method (a wrong method falls through to 404);
        // `web::resource` answers a wrong method with 405.
        .service(web::resource("/ok").route(web::get().to(ok)))
        .route("/readings", web::post().to(reading))
        .route("/raw", web::post().to(raw))
        .route("/items/{id}", web::get().to(by_id))
        .route("/paged", web::get().to(paged))
        .route("/who", web::get().to(who))
        .route("/ids", web::get().to(ids))
        .route("/plain", web::get().to(teapot_plain))
        .route("/soap", web::post().to(soap_fault))
        .route("/probe", web::get().to(probe_down))
        .route("/docs", web::get().to(own_csp))
        .service(
            web::scope("/inproc")
                .wrap(from_fn(insert_principal))
                .route("/who", web::get().to(who)),
        )
        .service(
            web::scope("/locked")
                .wrap(from_fn(reject_all))
                .route("/x", web::get().to(ok)),
        );
}

macro_rules! app {
    () => {
        test::init_service(
            App::new()
                .app_data(json_config(64))
                .app_data(payload_config(32))
                .app_data(path_config())
                .app_data(query_config())
                .app_data(web::Data::new(PrincipalSigner::new(
                    SECRET,
                    Duration::from_secs(30),
                )))
                .configure(routes)
                .default_service(web::to(not_found_handler))
                .wrap(standard_middleware()),
        )
        .await
    };
}

async fn send<S, R, B>(app: &S, req: R) -> (StatusCode, header::HeaderMap, serde_json::Value)
where
    S: Service<R, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let res = test::call_service(app, req).await;
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = test::read_body(res).await;
    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::String(
        String::from_utf8_lossy(&bytes).into_owned(),
    ));
    (status, headers, body)
}

fn header_str<'a>(h: &'a header::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn assert_problem(status: StatusCode, h: &header::HeaderMap, body: &serde_json::Value, code: &str) {
    assert_eq!(
        header_str(h, "content-type"),
        "application/problem+json",
        "{body}"
    );
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert_eq!(body["type"], format!("urn:etxhub:problem:{code}"));
    assert!(body["title"].is_string());
    assert_eq!(body["request_id"], header_str(h, "x-request-id"), "{body}");
}

fn assert_security_headers(h: &header::HeaderMap) {
    assert_eq!(
        header_str(h, "strict-transport-security"),
        "max-age=31536000; includeSubDomains"
    );
    assert_eq!(header_str(h, "x-content-type-options"), "nosniff");
    assert_eq!(header_str(h, "x-frame-options"), "DENY");
    assert_eq!(header_str(h, "referrer-policy"), "no-referrer");
    assert!(!header_str(h, "content-security-policy").is_empty());
    assert!(!header_str(h, "cache-control").is_empty());
    assert!(!header_str(h, "x-request-id").is_empty());
}

#[actix_web::test]
async fn errors_are_vietnamese_by_default() {
    let app = app!();
    let (status, h, body) = send(&app, test::TestRequest::get().uri("/invalid").to_request()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_problem(status, &h, &body, "validation_failed");
    assert_eq!(header_str(&h, "content-language"), "vi");
    assert_eq!(body["title"], "Dữ liệu không hợp lệ");
    assert_eq!(body["instance"], "/invalid");
    assert_eq!(
        body["violations"],
        serde_json::json!([{"item": 0, "path": "/payload/value", "code": "type",
                            "message": "Sai kiểu dữ liệu", "detail": "expected number"}])
    );
}

#[actix_web::test]
async fn errors_are_english_when_asked() {
    let app = app!();
    let req = test::TestRequest::get()
        .uri("/invalid")
        .insert_header(("accept-language", "en-GB,en;q=0.9,vi;q=0.5"));
    let (status, h, body) = send(&app, req.to_request()).await;
    assert_problem(status, &h, &body, "validation_failed");
    assert_eq!(header_str(&h, "content-language"), "en");
    assert_eq!(body["title"], "The data is not valid");
    assert_eq!(body["violations"][0]["message"], "Wrong data type");
}

#[actix_web::test]
async fn unknown_route_is_a_404_problem() {
    let app = app!();
    let req = test::TestRequest::get()
        .uri("/nope")
        .insert_header(("accept-language", "en"));
    let (status, h, body) = send(&app, req.to_request()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_problem(status, &h, &body, "not_found");
    assert_eq!(body["title"], "Not found");
    assert_eq!(body["instance"], "/nope");
    assert_security_headers(&h);
}

#[actix_web::test]
async fn unknown_route_without_a_default_service_is_still_a_problem() {
    let app = test::init_service(
        App::new()
            .route("/ok", web::get().to(ok))
            .wrap(standard_middleware()),
    )
    .await;
    let (status, h, body) = send(&app, test::TestRequest::get().uri("/nope").to_request()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_problem(status, &h, &body, "not_found");
}

#[actix_web::test]
async fn wrong_method_is_a_405_problem() {
    let app = app!();
    let (status, h, body) = send(&app, test::TestRequest::delete().uri("/ok").to_request()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_problem(status, &h, &body, "method_not_allowed");
    assert_eq!(header_str(&h, "allow"), "GET", "actix's Allow header is kept");
    assert_eq!(body["title"], "Phương thức không được hỗ trợ");
}

#[actix_web::test]
async fn malformed_json_is_a_400_with_position_but_no_content() {
    let app = app!();
    let req = test::TestRequest::post()
        .uri("/readings")
        .insert_header(("content-type", "application/json"))
        .set_payload("{\"value\": SECRET}");
    let (status, h, body) = send(&app, req.to_request()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_problem(status, &h, &body, "malformed_json");
    let detail = body["detail"].as_str().unwrap_or("");
    assert!(detail.contains("line 1, column"), "{detail}");
    assert!(!body.to_string().contains("SECRET"), "{body}");
}

#[actix_web::test]
async fn json_of_the_wrong_type_is_a_validation_failure() {
    let app = app!();
    let req = test::TestRequest::post()
        .uri("/readings")
        .insert_header(("content-type", "application/json"))
        .set_payload(r#"{"value": "SECRET"}"#);
    let (status, h, body) = send(&app, req.to_request()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_problem(status, &h, &body, "validation_failed");
    assert_eq!(body["violations"][0]["code"], "type");
    assert_eq!(body["violations"][0]["message"], "Sai kiểu dữ liệu");
    assert!(!body.to_string().contains("SECRET"), "{body}");
}

#[actix_web::test]
async fn valid_json_reaches_the_handler() {
    let app = app!();
    let req = test::TestRequest::post()
        .uri("/readings")
        .set_json(serde_json::json!({"value": 42}));
    let (status, h, body) = send(&app, req.to_request()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, serde_json::json!(42));
    assert_security_headers(&h);
}

#[actix_web::test]
async fn too_large_json_is_a_413_problem() {
    let app = app!();
    let big = format!(r#"{{"value": 1, "pad": "{}"}}"#, "x".repeat(200));
    let req = test::TestRequest::post()
        .uri("/readings")
        .insert_header(("content-type", "application/json"))
        .set_payload(big);
    let (status, h, body) = send(&app, req.to_request()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_problem(status, &h, &body, "payload_too_large");
    assert_eq!(body["detail"], "limit is 64 bytes");
}

#[actix_web::test]
async fn too_large_raw_body_is_a_413_problem() {
    let app = app!();
    let req = test::TestRequest::post().uri("/raw").set_payload("y".repeat(100));
    let (status, h, body) = send(&app, req.to_request()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_problem(status, &h, &body, "payload_too_large");
}

#[actix_web::test]
async fn wrong_content_type_for_json_is_a_415_problem() {
    let app = app!();
    let req = test::TestRequest::post()
        .uri("/readings")
        .insert_header(("content-type", "text/plain"))
        .set_payload(r#"{"value": 1}"#);
    let (status, h, body) = send(&app, req.to_request()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_problem(status, &h, &body, "unsupported_media_type");
}

#[actix_web::test]
async fn bad_path_and_query_parameters_are_invalid_parameter_problems() {
    let app = app!();
    let (status, h, body) = send(&app, test::TestRequest::get().uri("/items/SECRET").to_request()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_problem(status, &h, &body, "invalid_parameter");
    assert!(
        !body.to_string().replace("/items/SECRET", "").contains("SECRET"),
        "{body}"
    );

    let (status, h, body) = send(&app, test::TestRequest::get().uri("/paged").to_request()).await;
    assert_problem(status, &h, &body, "invalid_parameter");
    assert_eq!(body["violations"][0]["path"], "limit");
    assert_eq!(body["violations"][0]["code"], "required");

    let (status, h, body) = send(
        &app,
        test::TestRequest::get().uri("/paged?limit=SECRET").to_request(),
    )
    .await;
    assert_problem(status, &h, &body, "invalid_parameter");
    assert!(!body.to_string().contains("SECRET"), "{body}");
}

#[actix_web::test]
async fn security_headers_are_on_success_and_error_responses() {
    let app = app!();
    let (status, h, _) = send(&app, test::TestRequest::get().uri("/ok").to_request()).await;
    assert_eq!(status, StatusCode::OK);
    assert_security_headers(&h);
    assert_eq!(
        header_str(&h, "content-security-policy"),
        "default-src 'none'; frame-ancestors 'none'"
    );
    assert_eq!(header_str(&h, "cache-control"), "no-store");

    let (status, h, _) = send(&app, test::TestRequest::get().uri("/invalid").to_request()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_security_headers(&h);
}

#[actix_web::test]
async fn a_handlers_own_csp_and_cache_control_are_kept() {
    let app = app!();
    let (_, h, _) = send(&app, test::TestRequest::get().uri("/docs").to_request()).await;
    assert_eq!(header_str(&h, "content-security-policy"), "default-src 'self'");
    assert_eq!(header_str(&h, "cache-control"), "max-age=60");
    assert_eq!(header_str(&h, "x-frame-options"), "DENY");
}

#[actix_web::test]
async fn request_id_is_generated_and_echoed() {
    let app = app!();
    let (_, h, body) = send(&app, test::TestRequest::get().uri("/ids").to_request()).await;
    let id = header_str(&h, "x-request-id");
    let parsed = uuid::Uuid::parse_str(id).expect("a UUID");
    assert_eq!(parsed.get_version_num(), 7);
    assert_eq!(body, serde_json::Value::String(format!("{id} vi")));
}

#[actix_web::test]
async fn a_plain_client_request_id_is_kept() {
    let app = app!();
    let req = test::TestRequest::get()
        .uri("/ids")
        .insert_header(("x-request-id", "client-abc.123_X"))
        .insert_header(("accept-language", "en"));
    let (_, h, body) = send(&app, req.to_request()).await;
    assert_eq!(header_str(&h, "x-request-id"), "client-abc.123_X");
    assert_eq!(body, serde_json::Value::String("client-abc.123_X en".into()));
}

#[actix_web::test]
async fn a_hostile_client_request_id_is_replaced() {
    let app = app!();
    for hostile in ["a".repeat(200), "abc\tdef".to_owned(), "abc def".to_owned()] {
        let req = test::TestRequest::get()
            .uri("/nope")
            .insert_header(("x-request-id", hostile.as_str()));
        let (_, h, body) = send(&app, req.to_request()).await;
        let id = header_str(&h, "x-request-id");
        assert_ne!(id, hostile);
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
        assert_eq!(body["request_id"], id);
    }
    // A raw newline cannot even be put in a header value; check the guard itself too.
    assert!(!etx_http_kit::is_acceptable_request_id("abc\ndef"));
}

#[actix_web::test]
async fn internal_errors_never_leak_the_cause() {
    let app = app!();
    let (status, h, body) = send(&app, test::TestRequest::get().uri("/boom").to_request()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_problem(status, &h, &body, "internal");
    let text = body.to_string();
    assert!(!text.contains("hunter2") && !text.contains("postgres"), "{text}");
    assert!(body.get("detail").is_none());
}

#[actix_web::test]
async fn retry_after_is_sent_when_set() {
    let app = app!();
    let (status, h, body) = send(&app, test::TestRequest::get().uri("/busy").to_request()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_problem(status, &h, &body, "service_unavailable");
    assert_eq!(header_str(&h, "retry-after"), "7");
}

#[actix_web::test]
async fn a_plain_error_body_becomes_a_problem() {
    let app = app!();
    let (status, h, body) = send(&app, test::TestRequest::get().uri("/plain").to_request()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_problem(status, &h, &body, "invalid_parameter");
    assert!(!body.to_string().contains("script"));
}

#[actix_web::test]
async fn soap_faults_and_marked_bodies_are_kept() {
    let app = app!();
    let (status, h, body) = send(&app, test::TestRequest::post().uri("/soap").to_request()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, serde_json::Value::String("<Fault/>".into()));
    assert_security_headers(&h);

    let (status, h, body) = send(&app, test::TestRequest::get().uri("/probe").to_request()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, serde_json::json!({"db": "down"}));
    assert_security_headers(&h);
}

#[actix_web::test]
async fn an_error_from_an_inner_middleware_is_a_problem() {
    let app = app!();
    let req = test::TestRequest::get()
        .uri("/locked/x")
        .insert_header(("accept-language", "en"))
        .to_request();
    // The server turns a middleware error into its error response; do the same here.
    let err = match test::try_call_service(&app, req).await {
        Ok(_) => panic!("the inner middleware must fail"),
        Err(err) => err,
    };
    let res = err.as_response_error().error_response();
    let status = res.status();
    let h = res.headers().clone();
    let body: serde_json::Value = serde_json::from_slice(
        &actix_web::body::to_bytes(res.into_body())
            .await
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_problem(status, &h, &body, "forbidden");
    assert_eq!(body["title"], "You are not allowed to do this");
    assert_eq!(body["instance"], "/locked/x");
    assert_security_headers(&h);
}

#[actix_web::test]
async fn the_async_fn_form_works_with_from_fn() {
    let app = test::init_service(
        App::new()
            .route("/invalid", web::get().to(invalid))
            .wrap(from_fn(standard)),
    )
    .await;
    let req = test::TestRequest::get()
        .uri("/invalid")
        .insert_header(("accept-language", "en"));
    let (status, h, body) = send(&app, req.to_request()).await;
    assert_problem(status, &h, &body, "validation_failed");
    assert_eq!(body["title"], "The data is not valid");
    assert_security_headers(&h);
}

#[actix_web::test]
async fn api_error_is_rendered_without_middleware_too() {
    let app = test::init_service(App::new().route("/invalid", web::get().to(invalid))).await;
    let (status, h, body) = send(&app, test::TestRequest::get().uri("/invalid").to_request()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(header_str(&h, "content-type"), "application/problem+json");
    assert_eq!(header_str(&h, "content-language"), "vi");
    assert_eq!(body["code"], "validation_failed");
}

#[actix_web::test]
async fn principal_extractor_prefers_the_in_process_extension() {
    let app = app!();
    let forged = PrincipalSigner::new(SECRET, Duration::from_secs(30)).sign(&forwarded_principal());
    let req = test::TestRequest::get()
        .uri("/inproc/who")
        .insert_header((PRINCIPAL_HEADER, forged));
    let (status, _, body) = send(&app, req.to_request()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["subject"], "system:in-process");
}

#[actix_web::test]
async fn principal_extractor_verifies_the_forwarded_header() {
    let app = app!();
    let token = PrincipalSigner::new(SECRET, Duration::from_secs(30)).sign(&forwarded_principal());
    let req = test::TestRequest::get()
        .uri("/who")
        .insert_header((PRINCIPAL_HEADER, token));
    let (status, _, body) = send(&app, req.to_request()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["subject"], "system:forwarded");
    assert_eq!(body["roles"], serde_json::json!(["submitter"]));
}

#[actix_web::test]
async fn principal_extractor_without_a_principal_is_a_401_problem() {
    let app = app!();
    let (status, h, body) = send(&app, test::TestRequest::get().uri("/who").to_request()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_problem(status, &h, &body, "untrusted_caller");
    assert_eq!(
        header_str(&h, "www-authenticate"),
        "ApiKey realm=\"etxhub\", Bearer realm=\"etxhub\""
    );
}

#[actix_web::test]
async fn principal_signed_with_another_secret_is_a_401_problem() {
    let app = app!();
    let token = PrincipalSigner::new(b"some other secret, 32 bytes long!", Duration::from_secs(30))
        .sign(&forwarded_principal());
    let req = test::TestRequest::get()
        .uri("/who")
        .insert_header((PRINCIPAL_HEADER, token));
    let (status, h, body) = send(&app, req.to_request()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_problem(status, &h, &body, "untrusted_caller");
}

#[actix_web::test]
async fn forwarded_header_is_refused_when_the_service_has_no_signer() {
    let app = test::init_service(
        App::new()
            .route("/who", web::get().to(who))
            .wrap(standard_middleware()),
    )
    .await;
    let token = PrincipalSigner::new(SECRET, Duration::from_secs(30)).sign(&forwarded_principal());
    let req = test::TestRequest::get()
        .uri("/who")
        .insert_header((PRINCIPAL_HEADER, token));
    let (status, h, body) = send(&app, req.to_request()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_problem(status, &h, &body, "untrusted_caller");
}

#[actix_web::test]
async fn request_lang_and_id_extractors_work_without_middleware() {
    async fn both(req: HttpRequest, id: RequestId, lang: RequestLang) -> HttpResponse {
        let again = req.extensions().get::<RequestId>().cloned();
        assert_eq!(again.as_ref(), Some(&id));
        HttpResponse::Ok().body(lang.0.tag())
    }
    let app = test::init_service(App::new().route("/", web::get().to(both))).await;
    let req = test::TestRequest::get()
        .uri("/")
        .insert_header(("accept-language", "en"));
    let (status, _, body) = send(&app, req.to_request()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, serde_json::Value::String("en".into()));
}
