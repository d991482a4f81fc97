//! Routing to services in other processes (distributed mode): the request goes on to the
//! owning service with the caller's principal signed by the gateway; credentials and
//! hop-by-hop headers are not forwarded — except `Authorization` on a public path, where it is
//! meant for the service (an OAuth2 client's HTTP Basic credentials at the token endpoint).

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use bytes::Bytes;
use etx_domain::ErrorCode;
use etx_gateway_core::{Upstream, is_public, route};
use etx_http_kit::{ApiError, KeepErrorBody, PRINCIPAL_HEADER, Principal, PrincipalSigner};
use futures_util::StreamExt;
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

/// Forwards an authenticated `/api/v1/**` request to the service that owns its path. Bodies
/// are streamed both ways, so a 1 GiB batch upload or a large export never sits in the
/// gateway's memory; the owning service enforces its own size limits.
pub async fn forward(
    req: HttpRequest,
    mut payload: web::Payload,
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
    let public = is_public(req.method().as_str(), req.path());
    for (name, value) in req.headers() {
        let meant_for_service = public && name == actix_web::http::header::AUTHORIZATION;
        if HOP_BY_HOP.contains(&name.as_str()) && !meant_for_service {
            continue;
        }
        out = out.header(name.as_str(), value.as_bytes());
    }
    if let Some(ip) = &principal.client_ip {
        out = out.header("x-forwarded-for", ip.as_str());
    }
    out = out.header(PRINCIPAL_HEADER, proxy.signer.sign(&principal));
    // Small bodies with a declared length (real-time submissions) go in one piece.
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(len) = declared
        && len <= SMALL_BODY
    {
        let mut buf = Vec::with_capacity(len);
        while let Some(piece) = payload.next().await {
            let piece = piece.map_err(|e| ApiError::from_payload_error(&e))?;
            if buf.len() + piece.len() > SMALL_BODY {
                return Err(ApiError::new(ErrorCode::IncompleteBody)
                    .with_detail("body longer than its Content-Length"));
            }
            buf.extend_from_slice(&piece);
        }
        return relay(out.body(buf).send().await, upstream.target());
    }
    // actix's payload lives on this thread; it is pumped into a channel that reqwest's body
    // reads, both driven by this handler's future.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let body = etx_http_kit::channel_stream(rx);
    let send = out.body(reqwest::Body::wrap_stream(body)).send();
    let pump = async move {
        while let Some(piece) = payload.next().await {
            let item = piece.map_err(|e| std::io::Error::other(e.to_string()));
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    };
    let (resp, ()) = futures_util::future::join(send, pump).await;
    relay(resp, upstream.target())
}

/// Bodies up to this size with a `Content-Length` are forwarded in one piece.
const SMALL_BODY: usize = 64 * 1024;

/// Streams the upstream's answer back to the caller.
fn relay(resp: reqwest::Result<reqwest::Response>, target: &'static str) -> Result<HttpResponse, ApiError> {
    let resp = resp.map_err(|e| {
        tracing::warn!(error = %e, upstream = target, "upstream unreachable");
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
    let stream = resp.bytes_stream().map(move |r| {
        r.map_err(|e| {
            tracing::warn!(error = %e, upstream = target, "upstream answer cut short");
            std::io::Error::other("upstream answer cut short")
        })
    });
    let mut resp = builder.streaming(stream);
    // The service already wrote its error bodies (problem+json, or RFC 6749 JSON at the OAuth2
    // endpoints): the gateway's standard middleware keeps them as they are.
    resp.extensions_mut().insert(KeepErrorBody);
    Ok(resp)
}
