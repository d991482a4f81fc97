//! Wire types of ingestion's HTTP API. They are not domain types: conversions are explicit.

use chrono::{DateTime, Utc};
use etx_domain::Category;
use etx_ingestion_core::{Receipt, SchemaRegistry, StoredRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// One record as submitted (documentation of the envelope; the body is validated against
/// `contracts/schemas/envelope.v1.schema.json` and the category schema).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecordIn {
    /// `policy`, `statistics`, `workforce` or `enforcement` (R-DATA-1).
    #[schema(example = "statistics")]
    pub category: String,
    /// Schema version of the payload, e.g. `1`.
    #[schema(example = "1")]
    pub schema_version: String,
    /// Reporting period: `YYYY`, `YYYY-Qn`, `YYYY-MM` or `YYYY-MM-DD`.
    #[schema(example = "2026-10")]
    pub period: String,
    /// `public`, `internal`, `confidential` or `secret`. State secrets are refused (R-SRC-2).
    #[schema(example = "internal")]
    pub classification: String,
    /// `high`, `normal` (default) or `low` (R-DATA-2).
    pub priority: Option<String>,
    /// `raw` (default) or `masked` (R-ING-2).
    pub form: Option<String>,
    /// Optional idempotency key (R-ING-5); the `Idempotency-Key` header is also accepted.
    pub idempotency_key: Option<String>,
    /// The payload, valid against the category schema.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

/// A receipt: the records are durably stored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReceiptOut {
    /// Receipt id.
    pub receipt_id: Uuid,
    /// The records' ids, in submission order.
    pub record_ids: Vec<Uuid>,
    /// How many records.
    pub record_count: usize,
    /// When the submission was durably stored (UTC).
    pub received_at: DateTime<Utc>,
    /// SHA-256 of the canonical submission (`sha256:<hex>`).
    pub content_hash: String,
    /// The idempotency key, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// `received`.
    pub status: String,
    /// True when this answers a replay of an earlier submission.
    pub replayed: bool,
}

impl ReceiptOut {
    /// From the domain receipt.
    pub fn from_receipt(r: &Receipt, replayed: bool) -> Self {
        Self {
            receipt_id: r.id.as_uuid(),
            record_ids: r.record_ids.iter().map(|i| i.as_uuid()).collect(),
            record_count: r.record_ids.len(),
            received_at: r.received_at,
            content_hash: r.content_hash.to_string(),
            idempotency_key: r.idempotency_key.as_ref().map(|k| k.to_string()),
            status: "received".into(),
            replayed,
        }
    }

    /// The receipt as XML, for XML clients (yaserde).
    pub fn to_xml(&self) -> String {
        let x = xml::ReceiptXml {
            receipt_id: self.receipt_id.to_string(),
            record_ids: xml::RecordIdsXml {
                ids: self.record_ids.iter().map(Uuid::to_string).collect(),
            },
            record_count: self.record_count as u64,
            received_at: self
                .received_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            content_hash: self.content_hash.clone(),
            idempotency_key: self.idempotency_key.clone(),
            status: self.status.clone(),
            replayed: self.replayed,
        };
        yaserde::ser::to_string(&x).unwrap_or_default()
    }
}

mod xml {
    use yaserde::YaSerialize;

    #[derive(Debug, Default, YaSerialize)]
    #[yaserde(rename = "receipt", namespaces = { "" = "urn:etxhub:ingestion:v1" })]
    pub struct ReceiptXml {
        pub receipt_id: String,
        pub record_ids: RecordIdsXml,
        pub record_count: u64,
        pub received_at: String,
        pub content_hash: String,
        pub idempotency_key: Option<String>,
        pub status: String,
        pub replayed: bool,
    }

    #[derive(Debug, Default, YaSerialize)]
    pub struct RecordIdsXml {
        #[yaserde(rename = "record_id")]
        pub ids: Vec<String>,
    }
}

/// Where a record came from (R-DATA-3).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProvenanceOut {
    /// Submitting organisation.
    pub org_id: Uuid,
    /// Submitting system.
    pub system_id: Uuid,
    /// Receipt.
    pub receipt_id: Uuid,
    /// Durably received at.
    pub received_at: DateTime<Utc>,
    /// `realtime` or `batch`.
    pub method: String,
    /// `raw` or `masked`, as submitted.
    pub original_form: String,
}

/// A stored record, read back by its source.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecordOut {
    /// Record id.
    pub id: Uuid,
    /// Category.
    pub category: String,
    /// Schema version.
    pub schema_version: u16,
    /// Reporting period.
    pub period: String,
    /// Classification.
    pub classification: String,
    /// Priority.
    pub priority: String,
    /// Form.
    pub form: String,
    /// Idempotency key, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Status (`received`).
    pub status: String,
    /// Provenance.
    pub provenance: ProvenanceOut,
    /// The payload as submitted.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

impl From<StoredRecord> for RecordOut {
    fn from(r: StoredRecord) -> Self {
        Self {
            id: r.id.as_uuid(),
            category: r.envelope.category.to_string(),
            schema_version: r.envelope.schema_version.number(),
            period: r.envelope.period.to_string(),
            classification: r.envelope.classification.to_string(),
            priority: r.envelope.priority.to_string(),
            form: r.envelope.form.to_string(),
            idempotency_key: r.envelope.idempotency_key.map(|k| k.to_string()),
            status: r.status.as_str().into(),
            provenance: ProvenanceOut {
                org_id: r.provenance.org_id.as_uuid(),
                system_id: r.provenance.system_id.as_uuid(),
                receipt_id: r.provenance.receipt_id.as_uuid(),
                received_at: r.provenance.received_at,
                method: r.provenance.method.as_str().into(),
                original_form: r.provenance.original_form.to_string(),
            },
            payload: r.payload,
        }
    }
}

/// The schema versions of one category.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CategorySchemasOut {
    /// Category code.
    pub category: String,
    /// Vietnamese name.
    pub name_vi: String,
    /// English name.
    pub name_en: String,
    /// Accepted versions.
    pub versions: Vec<u16>,
    /// The newest version.
    pub latest: u16,
    /// Where to fetch each accepted version, oldest first.
    pub documents: Vec<SchemaDocumentsOut>,
}

/// The documents of one schema version: the JSON Schema, and the XSD of the XML wire format
/// generated from it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SchemaDocumentsOut {
    /// The version.
    pub version: u16,
    /// Path of the JSON Schema (draft 2020-12).
    #[schema(example = "/api/v1/schemas/statistics/1")]
    pub json_schema_url: String,
    /// Path of the XSD of the XML wire format.
    #[schema(example = "/api/v1/schemas/statistics/1?format=xsd")]
    pub xsd_url: String,
}

/// Every category's schemas.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SchemaListOut {
    /// One entry per category.
    pub categories: Vec<CategorySchemasOut>,
}

impl SchemaListOut {
    /// From the registry.
    pub fn from_registry(reg: &SchemaRegistry) -> Self {
        Self {
            categories: Category::ALL
                .into_iter()
                .map(|c| CategorySchemasOut {
                    category: c.to_string(),
                    name_vi: c.name_vi().into(),
                    name_en: c.name_en().into(),
                    versions: reg.versions(c).into_iter().map(|v| v.number()).collect(),
                    latest: reg.latest(c).number(),
                    documents: reg
                        .versions(c)
                        .into_iter()
                        .map(|v| SchemaDocumentsOut {
                            version: v.number(),
                            json_schema_url: format!("/api/v1/schemas/{c}/{v}"),
                            xsd_url: format!("/api/v1/schemas/{c}/{v}?format=xsd"),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}
