//! Routing to services in other processes (distributed mode): the request goes on to the
//! owning service with the caller's principal signed by the gateway; credentials and
//! hop-by-hop headers are not forwarded.

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use etx_domain::ErrorCode;
use etx_gateway_core::{Upstream, route};
use etx_http_kit::{ApiError, PRINCIPAL_HEADER, Principal, PrincipalSigner};
use std::collections::HashMap;

/// Where each service lives, and how to reach it.
#[derive(Debug, Clone)]
pub struct Proxy {
    upstreams: HashMap<Upstream, String>,
    http: reqwest::Client,
    signer: PrincipalSigner,
}

impl Proxy {
    /// A proxy to the given base URLs.
    pub fn new(upstreams: HashMap<Upstream, String>, http: reqwest::Client, signer: PrincipalSigner) -> Self {
        let upstreams = upstreams
            .into_iter()
            .map(|(k, v)| (k, v.trim_end_matches('/').to_owned()))
            .collect();
        Self {
            upstreams,
            http,
            signer,
        }
    }
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "x-api-key",
    "authorization",
    PRINCIPAL_HEADER,
];

/// Forwards an authenticated `/api/v1/**` request to the service that owns its path.
pub async fn forward(
    req: HttpRequest,
    body: web::Bytes,
    proxy: web::Data<Proxy>,
) -> Result<HttpResponse, ApiError> {
    let principal = req
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| ApiError::new(ErrorCode::UntrustedCaller))?;
    let upstream = route(req.path()).ok_or_else(ApiError::not_found)?;
    let base = proxy.upstreams.get(&upstream).ok_or_else(|| {
        ApiError::new(ErrorCode::ServiceUnavailable)
            .with_detail(format!("no {} service configured", upstream.target()))
    })?;
    let url = match req.uri().query() {
        Some(q) => format!("{base}{}?{q}", req.path()),
        None => format!("{base}{}", req.path()),
    };
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|_| ApiError::new(ErrorCode::MethodNotAllowed))?;
    let mut out = proxy.http.request(method, url);
    for (name, value) in req.headers() {
        if HOP_BY_HOP.contains(&name.as_str()) {
            continue;
        }
        out = out.header(name.as_str(), value.as_bytes());
    }
    if let Some(ip) = &principal.client_ip {
        out = out.header("x-forwarded-for", ip.as_str());
    }
    out = out.header(PRINCIPAL_HEADER, proxy.signer.sign(&principal));
    let resp = out.body(body.to_vec()).send().await.map_err(|e| {
        tracing::warn!(error = %e, upstream = upstream.target(), "upstream unreachable");
        ApiError::new(ErrorCode::ServiceUnavailable)
    })?;
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut builder = HttpResponse::build(status);
    for (name, value) in resp.headers() {
        if HOP_BY_HOP.contains(&name.as_str()) {
            continue;
        }
        builder.append_header((name.as_str(), value.as_bytes()));
    }
    let bytes = resp.bytes().await.map_err(|e| {
        tracing::warn!(error = %e, upstream = upstream.target(), "upstream answer cut short");
        ApiError::new(ErrorCode::BadGateway)
    })?;
    Ok(builder.body(bytes.to_vec()))
}
