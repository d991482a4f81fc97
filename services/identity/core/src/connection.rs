//! Automatic configuration (R-ADM, issue 4 §9): what a connected system needs to connect —
//! its credentials, the endpoints, the schema versions and the limits — as one connection
//! bundle, and the configuration changes a connected system declares (Art. 10.4).
//!
//! Identity knows organisations, systems and keys; the rest (the public address, the limits,
//! the schema registry) only the composition root knows, and hands it over at start-up as
//! [`ConnectionFacts`].

use crate::model::{ApiKeyInfo, SystemInfo};
use chrono::{DateTime, Datelike, Utc};
use etx_domain::{Category, FieldViolation, OrgId, Organisation, SchemaVersion, SystemId, ViolationCode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// A rate limit: sustained requests per second and the burst allowed at once (R-SEC-2).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateFacts {
    /// Requests per second.
    pub rate: f64,
    /// Requests at once.
    pub burst: u32,
}

/// The gateway's addresses a connected system uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    /// The public base URL, e.g. `https://etxhub.example.gov.vn` (no trailing slash).
    pub base_url: String,
    /// The REST API's base, `…/api/v1`.
    pub rest: String,
    /// Real-time submission (`POST`).
    pub records: String,
    /// Batch upload (`POST`).
    pub batches: String,
    /// The SOAP endpoint.
    pub soap: String,
    /// The SOAP service's WSDL.
    pub wsdl: String,
    /// The OpenAPI document.
    pub openapi: String,
    /// The schema list.
    pub schemas: String,
}

/// The published schema versions of one category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaVersions {
    /// The category.
    pub category: Category,
    /// Its versions, oldest first.
    pub versions: Vec<SchemaVersion>,
    /// The newest.
    pub latest: SchemaVersion,
}

/// The limits a connected system meets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ConnectionLimits {
    /// Per API key.
    pub per_key: RateFacts,
    /// Per organisation (all its keys together): the organisation's own rate when configured.
    pub per_organisation: RateFacts,
    /// Per client address.
    pub per_address: RateFacts,
    /// Largest request body, in bytes.
    pub max_body_bytes: u64,
    /// Most records in one real-time submission.
    pub max_records_per_submission: u64,
    /// Largest batch file, in bytes.
    pub max_batch_bytes: u64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        let unknown = RateFacts { rate: 0.0, burst: 0 };
        Self {
            per_key: unknown,
            per_organisation: unknown,
            per_address: unknown,
            max_body_bytes: 0,
            max_records_per_submission: 0,
            max_batch_bytes: 0,
        }
    }
}

/// What only the composition root knows, handed to identity at start-up: where the gateway is
/// reached, the schema versions, the limits and the per-organisation rates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectionFacts {
    /// The gateway's addresses.
    pub endpoints: Endpoints,
    /// Every category's schema versions.
    pub schemas: Vec<SchemaVersions>,
    /// The limits, with the default per-organisation rate.
    pub limits: ConnectionLimits,
    /// Per-organisation rates of some organisations (`[rate_limits.orgs]`).
    pub org_rates: BTreeMap<OrgId, RateFacts>,
}

impl ConnectionFacts {
    /// The limits `org` meets: its own per-organisation rate when it has one.
    pub fn limits_for(&self, org: OrgId) -> ConnectionLimits {
        let mut l = self.limits;
        if let Some(r) = self.org_rates.get(&org) {
            l.per_organisation = *r;
        }
        l
    }

    /// The bundle of `system` of `org` with `keys`.
    pub fn bundle(&self, org: &Organisation, system: SystemInfo, keys: Vec<ApiKeyInfo>) -> ConnectionBundle {
        ConnectionBundle {
            organisation: BundleOrganisation {
                id: org.id,
                code: org.code.to_string(),
                name: org.name.to_string(),
                kind: org.kind.to_string(),
            },
            system,
            keys,
            endpoints: self.endpoints.clone(),
            schemas: self.schemas.clone(),
            limits: self.limits_for(org.id),
        }
    }
}

/// The organisation, as a bundle names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleOrganisation {
    /// Its id.
    pub id: OrgId,
    /// Its code.
    pub code: String,
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: String,
}

/// Everything a connected system needs to connect, without secrets.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionBundle {
    /// Its organisation.
    pub organisation: BundleOrganisation,
    /// The system.
    pub system: SystemInfo,
    /// Its keys that work (at onboarding: the one issued).
    pub keys: Vec<ApiKeyInfo>,
    /// Where to connect.
    pub endpoints: Endpoints,
    /// The schema versions.
    pub schemas: Vec<SchemaVersions>,
    /// The limits.
    pub limits: ConnectionLimits,
}

/// The result of onboarding through the API or the CLI: the credentials, once, and the bundle.
#[derive(Debug, Clone)]
pub struct Onboarding {
    /// Whether the organisation was created now.
    pub org_created: bool,
    /// The key's id.
    pub key_id: etx_domain::ApiKeyId,
    /// The API key in clear — shown once, never stored.
    pub api_key: String,
    /// The bundle (its `keys` hold the new key).
    pub bundle: ConnectionBundle,
}

/// What changed in a connected system's configuration (Art. 10.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Its endpoint or address.
    Endpoint,
    /// Its software version.
    SoftwareVersion,
    /// The schema version it submits.
    SchemaVersion,
    /// Its network (addresses it connects from).
    Network,
    /// Its TLS certificate.
    Certificate,
    /// Its contact person.
    Contact,
    /// Anything else.
    Other,
}

impl ChangeKind {
    /// Every kind.
    pub const ALL: [ChangeKind; 7] = [
        Self::Endpoint,
        Self::SoftwareVersion,
        Self::SchemaVersion,
        Self::Network,
        Self::Certificate,
        Self::Contact,
        Self::Other,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Endpoint => "endpoint",
            Self::SoftwareVersion => "software_version",
            Self::SchemaVersion => "schema_version",
            Self::Network => "network",
            Self::Certificate => "certificate",
            Self::Contact => "contact",
            Self::Other => "other",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Longest description of a change, in characters.
pub const MAX_CHANGE_DESCRIPTION: usize = 2_000;
/// Most entries of a change's details.
pub const MAX_DETAIL_ENTRIES: usize = 32;
/// Longest name of a detail, in characters.
pub const MAX_DETAIL_NAME: usize = 64;
/// Longest text value of a detail, in characters.
pub const MAX_DETAIL_TEXT: usize = 500;
/// Most declarations one listing returns.
pub const MAX_CHANGES_LISTED: u32 = 500;

/// A declaration as asked.
#[derive(Debug, Clone, PartialEq)]
pub struct NewConfigChange {
    /// What changed.
    pub kind: ChangeKind,
    /// How, in words.
    pub description: String,
    /// When it takes (or took) effect.
    pub effective_at: DateTime<Utc>,
    /// Structured facts (old and new endpoint, version …): names to text, numbers, booleans or
    /// null, no nesting.
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Whether a text holds control characters other than line breaks and tabs (never stored).
fn has_control(s: &str) -> bool {
    s.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

impl NewConfigChange {
    /// MUST return every broken rule with its path: an empty or too long description or one
    /// with control characters (`/description`), an effective time outside the years 2000–2100
    /// (`/effective_at`), details with too many entries, an empty, too long or control-character
    /// name, a nested or too long value (`/details…`).
    pub fn check(&self) -> Result<(), Vec<FieldViolation>> {
        let mut v = Vec::new();
        let d = self.description.trim();
        if d.is_empty() {
            v.push(
                FieldViolation::new("/description", ViolationCode::Required)
                    .with_detail("describe the change"),
            );
        } else if self.description.chars().count() > MAX_CHANGE_DESCRIPTION {
            v.push(
                FieldViolation::new("/description", ViolationCode::TooLarge)
                    .with_detail(format!("at most {MAX_CHANGE_DESCRIPTION} characters")),
            );
        } else if has_control(&self.description) {
            v.push(
                FieldViolation::new("/description", ViolationCode::Format)
                    .with_detail("control characters are not allowed (line breaks and tabs are)"),
            );
        }
        if !(2000..=2100).contains(&self.effective_at.year()) {
            v.push(
                FieldViolation::new("/effective_at", ViolationCode::Invalid)
                    .with_detail("a time between the years 2000 and 2100"),
            );
        }
        if let Some(details) = &self.details {
            if details.len() > MAX_DETAIL_ENTRIES {
                v.push(
                    FieldViolation::new("/details", ViolationCode::TooLarge)
                        .with_detail(format!("at most {MAX_DETAIL_ENTRIES} entries")),
                );
            }
            for (i, (name, value)) in details.iter().enumerate().take(MAX_DETAIL_ENTRIES + 1) {
                // The name is the input: the path names the entry's position instead.
                let path = format!("/details/{i}");
                if name.is_empty()
                    || name.chars().count() > MAX_DETAIL_NAME
                    || has_control(name)
                    || name.contains(['\n', '\r', '\t'])
                {
                    v.push(
                        FieldViolation::new(path.clone(), ViolationCode::Format).with_detail(format!(
                            "a name of 1 to {MAX_DETAIL_NAME} characters without control characters"
                        )),
                    );
                }
                match value {
                    serde_json::Value::String(s) if s.chars().count() > MAX_DETAIL_TEXT => v.push(
                        FieldViolation::new(path, ViolationCode::TooLarge)
                            .with_detail(format!("a text of at most {MAX_DETAIL_TEXT} characters")),
                    ),
                    serde_json::Value::String(s) if has_control(s) => v.push(
                        FieldViolation::new(path, ViolationCode::Format)
                            .with_detail("control characters are not allowed (line breaks and tabs are)"),
                    ),
                    serde_json::Value::Array(_) | serde_json::Value::Object(_) => v.push(
                        FieldViolation::new(path, ViolationCode::Type)
                            .with_detail("a text, number, boolean or null; no nesting"),
                    ),
                    _ => {}
                }
            }
        }
        if v.is_empty() { Ok(()) } else { Err(v) }
    }
}

/// A recorded declaration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigChange {
    /// Its id.
    pub id: Uuid,
    /// The system's organisation.
    pub org_id: OrgId,
    /// The system.
    pub system_id: SystemId,
    /// What changed.
    pub kind: ChangeKind,
    /// How, in words.
    pub description: String,
    /// When it takes (or took) effect.
    pub effective_at: DateTime<Utc>,
    /// Structured facts.
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
    /// Who declared it: `system:<id>` or `user:<id>`.
    pub declared_by: String,
    /// When.
    pub declared_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(description: &str, details: serde_json::Value) -> NewConfigChange {
        NewConfigChange {
            kind: ChangeKind::Endpoint,
            description: description.into(),
            effective_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            details: details.as_object().cloned(),
        }
    }

    fn paths(c: &NewConfigChange) -> Vec<String> {
        c.check()
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.path)
            .collect::<Vec<_>>()
    }

    #[test]
    fn kinds_round_trip() {
        for k in ChangeKind::ALL {
            assert_eq!(ChangeKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), json!(k.as_str()));
        }
        assert_eq!(ChangeKind::parse("firmware"), None);
    }

    #[test]
    fn a_plain_declaration_passes_and_broken_ones_name_their_fields() {
        let ok = change(
            "Chuyển điểm cuối sang máy chủ mới.\nNew endpoint from Monday.",
            json!({"old": "https://a.example", "new": "https://b.example", "port": 443, "tls13": true, "note": null}),
        );
        assert!(ok.check().is_ok());
        assert_eq!(paths(&change("  ", json!({}))), ["/description"]);
        assert_eq!(
            paths(&change(&"x".repeat(MAX_CHANGE_DESCRIPTION + 1), json!({}))),
            ["/description"]
        );
        assert!(
            change(&"ẩ".repeat(MAX_CHANGE_DESCRIPTION), json!({}))
                .check()
                .is_ok(),
            "characters, not bytes"
        );
        assert_eq!(paths(&change("a\u{0}b", json!({}))), ["/description"]);
        assert_eq!(
            paths(&change(
                "ok",
                json!({"nested": {"a": 1}, "list": [1], "long": "y".repeat(501), "": 1})
            )),
            ["/details/0", "/details/1", "/details/2", "/details/3"]
        );
        let many: serde_json::Map<_, _> = (0..40).map(|i| (format!("k{i}"), json!(i))).collect();
        assert_eq!(
            paths(&change("ok", serde_json::Value::Object(many))),
            ["/details"]
        );
        let mut far = change("ok", json!({}));
        far.effective_at = DateTime::from_timestamp(5_000_000_000, 0).unwrap();
        assert_eq!(paths(&far), ["/effective_at"]);
    }

    #[test]
    fn an_organisation_meets_its_own_rate_when_configured() {
        let org = OrgId::new();
        let mut facts = ConnectionFacts::default();
        facts.limits.per_organisation = RateFacts {
            rate: 500.0,
            burst: 1000,
        };
        facts.org_rates.insert(
            org,
            RateFacts {
                rate: 50.0,
                burst: 100,
            },
        );
        assert_eq!(facts.limits_for(org).per_organisation.burst, 100);
        assert_eq!(facts.limits_for(OrgId::new()).per_organisation.burst, 1000);
    }
}
