//! What an audit entry is (R-SEC-9, Art. 8.3): who connected, from where, to what, with
//! which result — as handed to the log ([`NewAuditEntry`]), as stored and hashed
//! ([`AuditBody`]), and as read back with its place in the chain ([`AuditRecord`]).

use chrono::{DateTime, Utc};
use etx_domain::{ApiKeyId, OrgId, SystemId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::net::IpAddr;
use uuid::Uuid;

/// Longest subject kept, in characters.
pub const SUBJECT_MAX: usize = 256;
/// Longest action name kept, in characters.
pub const ACTION_MAX: usize = 128;
/// Longest HTTP method kept, in characters.
pub const METHOD_MAX: usize = 16;
/// Longest route kept, in characters.
pub const ROUTE_MAX: usize = 1024;
/// Longest session id kept, in characters.
pub const SESSION_MAX: usize = 128;
/// Largest `detail` object kept, in bytes of compact JSON; a larger one is replaced by
/// `{"truncated":true,"bytes":<n>}`.
pub const DETAIL_MAX: usize = 8 * 1024;

/// What kind of event an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// One HTTP request through the gateway (the connection log).
    Request,
    /// An administrative action: a change of configuration, keys, accounts, findings, or a
    /// read of the audit log itself.
    AdminAction,
    /// A read of raw (unmasked) data.
    RawRead,
    /// A security-relevant event of the log itself (e.g. entries lost under overload).
    Security,
}

impl AuditKind {
    /// Every kind, in a fixed order.
    pub const ALL: [AuditKind; 4] = [Self::Request, Self::AdminAction, Self::RawRead, Self::Security];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::AdminAction => "admin_action",
            Self::RawRead => "raw_read",
            Self::Security => "security",
        }
    }

    /// The kind with this name; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who performs an administrative action, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// `user:<uuid>`, `system:<uuid>`, …
    pub subject: String,
    /// The organisation acted for.
    pub org_id: Option<OrgId>,
    /// The client address the gateway saw.
    pub ip: Option<IpAddr>,
}

/// An entry handed to the log (through an [`AuditSink`](crate::AuditSink)). The log assigns
/// its sequence number and hash; over-long texts are cut when it is stored (see
/// [`AuditBody::from_new`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    /// When it happened (UTC; stored to the microsecond).
    pub at: DateTime<Utc>,
    /// The kind of event.
    pub kind: AuditKind,
    /// Who: `system:<uuid>`, `user:<uuid>`, `anonymous`, …
    pub subject: String,
    /// The organisation acted for.
    pub org_id: Option<OrgId>,
    /// The connected system.
    pub system_id: Option<SystemId>,
    /// The API key used.
    pub key_id: Option<ApiKeyId>,
    /// The session's identifier (never its secret cookie value).
    pub session_id: Option<String>,
    /// The client address.
    pub ip: Option<IpAddr>,
    /// HTTP method.
    pub method: Option<String>,
    /// The request path; the query string is reduced to its parameter names
    /// ([`sanitize_route`]).
    pub route: Option<String>,
    /// HTTP status answered.
    pub status: Option<u16>,
    /// Request body bytes.
    pub bytes_in: u64,
    /// Response body bytes.
    pub bytes_out: u64,
    /// Time to answer, in milliseconds.
    pub duration_ms: u64,
    /// SHA-256 of the request body ([`payload_hash`]), when the caller computed it.
    pub payload_hash: Option<[u8; 32]>,
    /// Short name of an administrative action, e.g. `api_key.revoke`.
    pub action: Option<String>,
    /// A small JSON object with facts about the event (never secrets or personal data).
    pub detail: serde_json::Map<String, serde_json::Value>,
}

impl NewAuditEntry {
    /// An entry of `kind` by `subject`, happening now, with nothing else set.
    pub fn new(kind: AuditKind, subject: impl Into<String>) -> Self {
        Self {
            at: Utc::now(),
            kind,
            subject: subject.into(),
            org_id: None,
            system_id: None,
            key_id: None,
            session_id: None,
            ip: None,
            method: None,
            route: None,
            status: None,
            bytes_in: 0,
            bytes_out: 0,
            duration_ms: 0,
            payload_hash: None,
            action: None,
            detail: serde_json::Map::new(),
        }
    }

    /// An administrative action by `actor`, e.g. `api_key.revoke`, with facts in `detail`
    /// (anything but a JSON object is kept under the key `value`).
    pub fn admin_action(actor: &Actor, action: impl Into<String>, detail: serde_json::Value) -> Self {
        let mut e = Self::new(AuditKind::AdminAction, actor.subject.clone());
        e.org_id = actor.org_id;
        e.ip = actor.ip;
        e.action = Some(action.into());
        e.detail = match detail {
            serde_json::Value::Object(m) => m,
            serde_json::Value::Null => serde_json::Map::new(),
            other => serde_json::Map::from_iter([("value".to_owned(), other)]),
        };
        e
    }

    /// Sets the time (tests, replays).
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.at = at;
        self
    }

    /// Sets the HTTP facts of a request.
    pub fn http(mut self, method: &str, route: &str, status: u16) -> Self {
        self.method = Some(method.to_owned());
        self.route = Some(route.to_owned());
        self.status = Some(status);
        self
    }
}

/// SHA-256 of a request body, for [`NewAuditEntry::payload_hash`].
pub fn payload_hash(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
}

/// The route as logged: the path, and of the query string only the parameter names that are
/// plain identifiers (`/api/v1/x?limit&format`), since values may hold secrets or personal
/// data. Fragments are dropped; the result is at most [`ROUTE_MAX`] characters.
pub fn sanitize_route(raw: &str) -> String {
    let raw = raw.split('#').next().unwrap_or_default();
    let (path, query) = match raw.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (raw, None),
    };
    let mut out = path.to_owned();
    if let Some(q) = query {
        let names: Vec<&str> = q
            .split('&')
            .filter_map(|pair| pair.split('=').next())
            .filter(|n| {
                !n.is_empty()
                    && n.len() <= 64
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            })
            .collect();
        if !names.is_empty() {
            out.push('?');
            out.push_str(&names.join("&"));
        }
    }
    cut(&out, ROUTE_MAX)
}

/// At most `max` characters of `s`.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}

fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Everything the log stores of an entry except its sequence number and hash, in the exact
/// form stored — so that [`canonical_bytes`](crate::canonical_bytes) over a row read back
/// equals what was hashed when it was written. Any column changed in the database changes
/// these bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditBody {
    /// Microseconds since the Unix epoch (UTC).
    pub at_us: i64,
    /// [`AuditKind`] name.
    pub kind: String,
    /// Who.
    pub subject: String,
    /// Organisation.
    pub org_id: Option<Uuid>,
    /// Connected system.
    pub system_id: Option<Uuid>,
    /// API key.
    pub key_id: Option<Uuid>,
    /// Session id.
    pub session_id: Option<String>,
    /// Client address, as text.
    pub ip: Option<String>,
    /// HTTP method.
    pub method: Option<String>,
    /// Route ([`sanitize_route`]).
    pub route: Option<String>,
    /// HTTP status.
    pub status: Option<i32>,
    /// Request bytes.
    pub bytes_in: i64,
    /// Response bytes.
    pub bytes_out: i64,
    /// Duration in milliseconds.
    pub duration_ms: i64,
    /// SHA-256 of the request body.
    pub payload_hash: Option<Vec<u8>>,
    /// Action name.
    pub action: Option<String>,
    /// The detail object as compact JSON text (hashed as stored, so the JSON library's key
    /// order never matters).
    pub detail: String,
}

impl AuditBody {
    /// The stored form of a new entry: time to the microsecond, texts cut to their limits,
    /// the route sanitised, an over-large detail replaced by a marker.
    pub fn from_new(e: NewAuditEntry) -> Self {
        let detail = serde_json::Value::Object(e.detail).to_string();
        let detail = if detail.len() > DETAIL_MAX {
            serde_json::json!({"truncated": true, "bytes": detail.len()}).to_string()
        } else {
            detail
        };
        Self {
            at_us: e.at.timestamp_micros(),
            kind: e.kind.as_str().to_owned(),
            subject: cut(&e.subject, SUBJECT_MAX),
            org_id: e.org_id.map(|o| o.as_uuid()),
            system_id: e.system_id.map(|s| s.as_uuid()),
            key_id: e.key_id.map(|k| k.as_uuid()),
            session_id: e.session_id.map(|s| cut(&s, SESSION_MAX)),
            ip: e.ip.map(|ip| ip.to_string()),
            method: e.method.map(|m| cut(&m, METHOD_MAX)),
            route: e.route.map(|r| sanitize_route(&r)),
            status: e.status.map(i32::from),
            bytes_in: saturating_i64(e.bytes_in),
            bytes_out: saturating_i64(e.bytes_out),
            duration_ms: saturating_i64(e.duration_ms),
            payload_hash: e.payload_hash.map(|h| h.to_vec()),
            action: e.action.map(|a| cut(&a, ACTION_MAX)),
            detail,
        }
    }

    /// [`Self::at_us`] as a time; `None` if out of range (only a tampered row can be).
    pub fn at(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_micros(self.at_us)
    }
}

/// An entry as stored: its dense, global sequence number, its body and its chain hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// 1, 2, 3, … with no gap.
    pub seq: i64,
    /// The stored fields.
    pub body: AuditBody,
    /// `HMAC-SHA256(chain_key, prev_hash || canonical_bytes(seq, body))` as stored (32 bytes
    /// unless tampered with).
    pub hash: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_keep_the_path_and_only_parameter_names() {
        assert_eq!(sanitize_route("/api/v1/records"), "/api/v1/records");
        assert_eq!(
            sanitize_route("/api/v1/x?token=SECRET&limit=5&=v&we%20ird=1#frag"),
            "/api/v1/x?token&limit"
        );
        assert_eq!(sanitize_route("/a?"), "/a");
        assert_eq!(sanitize_route(&"é".repeat(2000)).chars().count(), ROUTE_MAX);
    }

    #[test]
    fn bodies_cut_long_texts_and_large_details() {
        let mut e = NewAuditEntry::new(AuditKind::Request, "x".repeat(1000));
        e.detail
            .insert("blob".into(), serde_json::Value::String("a".repeat(DETAIL_MAX)));
        e.method = Some("M".repeat(100));
        let b = AuditBody::from_new(e);
        assert_eq!(b.subject.len(), SUBJECT_MAX);
        assert_eq!(b.method.as_deref().map(str::len), Some(METHOD_MAX));
        let d: serde_json::Value = serde_json::from_str(&b.detail).unwrap_or_default();
        assert_eq!(d["truncated"], true);
    }

    #[test]
    fn admin_actions_carry_the_actor_and_wrap_non_object_details() {
        let actor = Actor {
            subject: "user:1".into(),
            org_id: Some(OrgId::new()),
            ip: "203.0.113.9".parse().ok(),
        };
        let e = NewAuditEntry::admin_action(&actor, "api_key.revoke", serde_json::json!(42));
        assert_eq!(e.kind, AuditKind::AdminAction);
        assert_eq!(e.org_id, actor.org_id);
        assert_eq!(e.detail.get("value"), Some(&serde_json::json!(42)));
        assert_eq!(AuditBody::from_new(e).ip.as_deref(), Some("203.0.113.9"));
    }

    #[test]
    fn kinds_round_trip_by_name() {
        for k in AuditKind::ALL {
            assert_eq!(AuditKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(AuditKind::parse("Request"), None);
    }
}
