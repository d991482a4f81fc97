//! The connection log (R-SEC-9, Decree Art. 8.3): every request through the gateway — who,
//! organisation, system, client address, route, status, bytes in and out, duration and a
//! SHA-256 of the request body — becomes one entry of the hash-chained audit log, handed to an
//! [`AuditSink`] that never blocks the request (`etx-audit`'s writer batches and chains them).
//! Administrative actions and raw-data reads are marked as such by
//! [`etx_gateway_core::audit::classify`].
//!
//! The entry is written when the response has been sent completely (or the client went
//! away), so `bytes_out` and `duration_ms` cover a streamed export too. Mount this middleware
//! *outside* authentication so that refused requests are logged as well (as `anonymous`).

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};
use bytes::Bytes;
use etx_audit_core::{AuditKind, AuditSink, NewAuditEntry, sanitize_route};
use etx_gateway_core::audit::{AuditClass, classify, may_hash_body};
use etx_http_kit::Principal;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// The sink the gateway logs to, as app data.
pub type AuditHandle = Arc<dyn AuditSink>;

/// What the request body looked like as the service read it.
#[derive(Default)]
struct BodySeen {
    bytes: u64,
    hasher: Option<Sha256>,
}

/// Middleware (use with `actix_web::middleware::from_fn`) logging the request (see the module
/// docs). Without an [`AuditHandle`] in app data it does nothing.
pub async fn audit(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<AuditedBody>, Error> {
    let Some(sink) = req
        .app_data::<web::Data<AuditHandle>>()
        .map(|s| s.get_ref().clone())
    else {
        return Ok(next
            .call(req)
            .await?
            .map_body(|_, b| AuditedBody::plain(b.boxed())));
    };
    let started = Instant::now();
    let at = chrono::Utc::now();
    let method = req.method().as_str().to_owned();
    let raw_route = match req.query_string() {
        "" => req.path().to_owned(),
        q => format!("{}?{q}", req.path()),
    };
    let class = classify(&method, req.path());
    let seen = Rc::new(RefCell::new(BodySeen {
        bytes: 0,
        hasher: may_hash_body(req.path()).then(Sha256::new),
    }));
    let inner = req.take_payload();
    let counting = CountingPayload {
        inner,
        seen: seen.clone(),
    };
    let boxed: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(counting);
    req.set_payload(Payload::from(boxed));
    let peer = req.peer_addr().map(|a| a.ip());

    let resp = next.call(req).await?;
    let principal = resp.request().extensions().get::<Principal>().cloned();
    let mut entry = NewAuditEntry::new(kind_of(class), "anonymous");
    entry.at = at;
    entry.method = Some(method);
    entry.route = Some(sanitize_route(&raw_route));
    entry.status = Some(resp.status().as_u16());
    entry.action = class.action().map(str::to_owned);
    entry.ip = peer;
    if let Some(p) = principal {
        entry.subject = p.subject;
        entry.org_id = Some(p.org_id);
        entry.system_id = p.system_id;
        entry.key_id = p.key_id;
        if let Some(ip) = p.client_ip.and_then(|ip| ip.parse().ok()) {
            entry.ip = Some(ip);
        }
    }
    let pending = PendingEntry {
        sink,
        entry: Some(entry),
        seen,
        started,
        bytes_out: 0,
    };
    Ok(resp.map_body(move |_, body| AuditedBody {
        inner: body.boxed(),
        pending: Some(pending),
    }))
}

fn kind_of(class: AuditClass) -> AuditKind {
    match class {
        AuditClass::Request | AuditClass::Named(_) => AuditKind::Request,
        AuditClass::Admin(_) => AuditKind::AdminAction,
        AuditClass::RawRead(_) => AuditKind::RawRead,
    }
}

/// The request body, counted and (where allowed) hashed as the service reads it.
struct CountingPayload {
    inner: Payload,
    seen: Rc<RefCell<BodySeen>>,
}

impl Stream for CountingPayload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = self.inner.poll_next_unpin(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &item {
            let mut seen = self.seen.borrow_mut();
            seen.bytes += chunk.len() as u64;
            if let Some(h) = seen.hasher.as_mut() {
                h.update(chunk);
            }
        }
        item
    }
}

/// The entry waiting for the response body to finish.
struct PendingEntry {
    sink: AuditHandle,
    entry: Option<NewAuditEntry>,
    seen: Rc<RefCell<BodySeen>>,
    started: Instant,
    bytes_out: u64,
}

impl PendingEntry {
    fn finish(&mut self, complete: bool) {
        let Some(mut entry) = self.entry.take() else {
            return;
        };
        let seen = std::mem::take(&mut *self.seen.borrow_mut());
        entry.bytes_in = seen.bytes;
        entry.payload_hash = seen
            .hasher
            .filter(|_| seen.bytes > 0)
            .map(|h| h.finalize().into());
        entry.bytes_out = self.bytes_out;
        entry.duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if !complete {
            entry
                .detail
                .insert("response_incomplete".into(), serde_json::Value::Bool(true));
        }
        self.sink.record(entry);
    }
}

/// A response body that logs its request's entry when it has been sent completely, or when
/// it is dropped early (client gone).
pub struct AuditedBody {
    inner: BoxBody,
    pending: Option<PendingEntry>,
}

impl AuditedBody {
    fn plain(inner: BoxBody) -> Self {
        Self { inner, pending: None }
    }
}

impl std::fmt::Debug for AuditedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditedBody").finish_non_exhaustive()
    }
}

impl MessageBody for AuditedBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.inner.size()
    }

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = &mut *self;
        let item = Pin::new(&mut this.inner).poll_next(cx);
        match &item {
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(p) = this.pending.as_mut() {
                    p.bytes_out += chunk.len() as u64;
                }
            }
            Poll::Ready(None) => {
                if let Some(mut p) = this.pending.take() {
                    p.finish(true);
                }
            }
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        item
    }

    fn try_into_bytes(mut self) -> Result<Bytes, Self>
    where
        Self: Sized,
    {
        // Taking the whole body at once (a sized body) counts as sending it.
        let inner = std::mem::replace(&mut self.inner, BoxBody::new(()));
        match inner.try_into_bytes() {
            Ok(bytes) => {
                if let Some(mut p) = self.pending.take() {
                    p.bytes_out = bytes.len() as u64;
                    p.finish(true);
                }
                Ok(bytes)
            }
            Err(inner) => {
                self.inner = inner;
                Err(self)
            }
        }
    }
}

impl Drop for AuditedBody {
    fn drop(&mut self) {
        if let Some(mut p) = self.pending.take() {
            // An empty body may be dropped without being polled; anything else dropped before
            // its end means the client went away.
            let complete = matches!(self.inner.size(), BodySize::None | BodySize::Sized(0));
            p.finish(complete);
        }
    }
}
