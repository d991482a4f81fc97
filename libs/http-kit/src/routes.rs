//! Route helpers: a path that exists answers a method it has no route for with
//! `405 Method Not Allowed` and an `Allow` header (RFC 9110 §15.5.6), not `404`.
//!
//! actix-web's `ServiceConfig::route` hoists the route's method guard onto the resource, so any
//! other method falls through to the app's `404`; mount routes as resources instead:
//!
//! ```ignore
//! cfg.service(
//!     web::resource("/records")
//!         .route(web::post().to(submit_records))
//!         .default_service(etx_http_kit::method_not_allowed("POST")),
//! );
//! ```

use crate::error::ApiError;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, Responder, Route, web};
use etx_domain::ErrorCode;

/// The default service of a resource whose methods are `allow` (e.g. `"GET"`, `"GET, POST"`):
/// a `method_not_allowed` problem with `Allow: <allow>`.
pub fn method_not_allowed(allow: &'static str) -> Route {
    web::to(move |req: HttpRequest| async move { not_allowed(&req, allow) })
}

fn not_allowed(req: &HttpRequest, allow: &'static str) -> HttpResponse {
    let mut res = ApiError::new(ErrorCode::MethodNotAllowed).respond_to(req);
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    res
}
