//! Automatic configuration over HTTP (R-ADM, issue 4 §5 and §9): onboarding a data source with
//! its connection bundle, a system's bundle without secrets, key rotation with overlap, and the
//! configuration changes a connected system declares (Art. 10.4, notified on `events.config`).
//!
//! The gateway has already decided the permission of every route here
//! (`etx_gateway_core::authz`); handlers ask again of the signed principal and scope every
//! look-up to the caller's organisation (`404` otherwise).

use super::{ApiKeyOut, SystemOut, api_error, body_is_empty, resource};
use crate::AppIdentity;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use etx_domain::authz::{Denial, Permission, Scope};
use etx_domain::net::{IpNetwork, MAX_ALLOWED_NETWORKS};
use etx_domain::{
    ApiKeyId, ErrorCode, FieldViolation, OrgCode, OrgKind, OrgName, SystemId, SystemName, ViolationCode,
};
use etx_http_kit::{ApiError, Principal, Problem};
use etx_identity_core::{
    ChangeKind, ConfigChange, ConnectionBundle, ConnectionLimits, Endpoints, IdentityError, KeyOptions,
    NewConfigChange, NewSource, Onboarding, RateFacts, SchemaVersions,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{Object, RefOr};
use uuid::Uuid;

/// A scope a key may be granted (R-SEC-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum ScopeName {
    /// Submit records and batches (REST and SOAP).
    #[serde(rename = "records:write")]
    RecordsWrite,
    /// Read back the organisation's records, receipts, batch reports and exports.
    #[serde(rename = "records:read")]
    RecordsRead,
    /// Read the published schemas.
    #[serde(rename = "schemas:read")]
    SchemasRead,
    /// Manage the organisation's keys, read its systems' connection bundles, declare
    /// configuration changes.
    #[serde(rename = "keys:manage")]
    KeysManage,
}

impl From<ScopeName> for Scope {
    fn from(s: ScopeName) -> Self {
        match s {
            ScopeName::RecordsWrite => Scope::RecordsWrite,
            ScopeName::RecordsRead => Scope::RecordsRead,
            ScopeName::SchemasRead => Scope::SchemasRead,
            ScopeName::KeysManage => Scope::KeysManage,
        }
    }
}

/// An IPv4 or IPv6 network in CIDR notation (`203.0.113.0/24`, `2001:db8::/48`); a bare
/// address is one host. The address must be the network's first (no bits past the prefix).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(min_length = 2, max_length = 43)]
pub struct NetworkIn(pub String);

/// Longest list of scopes (each once).
const MAX_SCOPES: usize = Scope::ALL.len();

/// Parses key options from a request (`/scopes`, `/allowed_networks/<i>` …) into the use
/// case's [`KeyOptions`]; the rules that need the clock and the issuer are the use case's.
pub(crate) fn key_options(
    scopes: Option<Vec<ScopeName>>,
    expires_at: Option<DateTime<Utc>>,
    ttl_days: Option<u32>,
    networks: Option<Vec<NetworkIn>>,
) -> Result<KeyOptions, Vec<FieldViolation>> {
    let mut v = Vec::new();
    if scopes.as_ref().is_some_and(|s| s.len() > MAX_SCOPES) {
        v.push(
            FieldViolation::new("/scopes", ViolationCode::TooLarge)
                .with_detail(format!("at most {MAX_SCOPES} scopes")),
        );
    }
    if ttl_days.is_some_and(|d| !(1..=etx_identity_core::keys::MAX_TTL_DAYS).contains(&d)) {
        v.push(
            FieldViolation::new("/ttl_days", ViolationCode::Invalid)
                .with_detail(format!("1 to {} days", etx_identity_core::keys::MAX_TTL_DAYS)),
        );
    }
    let networks = networks.unwrap_or_default();
    if networks.len() > MAX_ALLOWED_NETWORKS {
        v.push(
            FieldViolation::new("/allowed_networks", ViolationCode::TooLarge)
                .with_detail(format!("at most {MAX_ALLOWED_NETWORKS} networks")),
        );
    }
    let mut allowed = Vec::new();
    for (i, n) in networks.iter().enumerate().take(MAX_ALLOWED_NETWORKS) {
        match IpNetwork::parse(&n.0) {
            Ok(net) => allowed.push(net),
            Err(e) => {
                v.push(FieldViolation::new(format!("/allowed_networks/{i}"), e.code).with_detail(e.detail))
            }
        }
    }
    if !v.is_empty() {
        return Err(v);
    }
    Ok(KeyOptions {
        scopes: scopes.map(|s| s.into_iter().map(Scope::from).collect()),
        expires_at,
        ttl_days,
        allowed_networks: allowed,
    })
}

fn invalid(v: Vec<FieldViolation>) -> ApiError {
    ApiError::new(ErrorCode::ValidationFailed).with_violations(v)
}

/// The kinds of organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrgKindName {
    /// A ministry.
    Ministry,
    /// A ministry-level agency.
    MinistryLevelAgency,
    /// A government agency.
    GovernmentAgency,
    /// A department of a ministry or agency.
    Department,
    /// A province or centrally-run city.
    Province,
    /// A department of a province.
    ProvincialDepartment,
    /// A district (before 1 July 2025).
    District,
    /// A commune.
    Commune,
    /// A company providing e-transaction systems.
    EtxProvider,
}

impl From<OrgKindName> for OrgKind {
    fn from(k: OrgKindName) -> Self {
        match k {
            OrgKindName::Ministry => OrgKind::Ministry,
            OrgKindName::MinistryLevelAgency => OrgKind::MinistryLevelAgency,
            OrgKindName::GovernmentAgency => OrgKind::GovernmentAgency,
            OrgKindName::Department => OrgKind::Department,
            OrgKindName::Province => OrgKind::Province,
            OrgKindName::ProvincialDepartment => OrgKind::ProvincialDepartment,
            OrgKindName::District => OrgKind::District,
            OrgKindName::Commune => OrgKind::Commune,
            OrgKindName::EtxProvider => OrgKind::EtxProvider,
        }
    }
}

/// Onboarding a data source (R-ADM automatic configuration): its organisation (created below
/// the administrator's own, or an existing one of the administrator's subtree), its connected
/// system and the system's first key with its options.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OnboardingIn {
    /// The organisation's unique code (stored upper-case), e.g. `HCM-SKHCN`.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$")]
    pub org_code: String,
    /// The organisation's name, with diacritics.
    #[schema(min_length = 1, max_length = 255)]
    pub org_name: String,
    /// The organisation's kind; it must fit under the parent (e.g. a provincial department
    /// under a province).
    pub org_kind: OrgKindName,
    /// The parent organisation's code: the administrator's own organisation or one below it.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$")]
    pub parent_code: String,
    /// The connected system's name.
    #[schema(min_length = 1, max_length = 255)]
    pub system_name: String,
    /// The key's scopes; default: every scope.
    #[schema(min_items = 1, max_items = 4)]
    pub scopes: Option<Vec<ScopeName>>,
    /// The key's expiry (at most 730 days ahead); exclusive with `ttl_days`.
    pub expires_at: Option<DateTime<Utc>>,
    /// The key's lifetime in days; exclusive with `expires_at`.
    #[schema(minimum = 1, maximum = 730)]
    pub ttl_days: Option<u32>,
    /// Networks (CIDR) the key may be used from; absent or empty: any address.
    #[schema(max_items = 32)]
    pub allowed_networks: Option<Vec<NetworkIn>>,
}

impl OnboardingIn {
    /// The use case's request, or every field's violation.
    fn parse(self) -> Result<(NewSource, KeyOptions), Vec<FieldViolation>> {
        let mut v = Vec::new();
        let code = |s: &str, path: &str, v: &mut Vec<FieldViolation>| {
            // Exactly the documented pattern: no surrounding blanks.
            match OrgCode::parse(s) {
                Ok(c) if s.trim() == s => Some(c),
                Ok(_) => {
                    v.push(
                        FieldViolation::new(path, ViolationCode::Format).with_detail("no surrounding blanks"),
                    );
                    None
                }
                Err(e) => {
                    v.push(FieldViolation::new(path, e.code).with_detail(e.detail));
                    None
                }
            }
        };
        let org_code = code(&self.org_code, "/org_code", &mut v);
        let parent = code(&self.parent_code, "/parent_code", &mut v);
        // At most 255 characters as sent (the documented bound), blanks included.
        let name = |s: &str, path: &str, v: &mut Vec<FieldViolation>| {
            if s.chars().count() > 255 {
                v.push(
                    FieldViolation::new(path, ViolationCode::TooLarge).with_detail("at most 255 characters"),
                );
                false
            } else {
                true
            }
        };
        let org_name = name(&self.org_name, "/org_name", &mut v)
            .then(|| {
                OrgName::parse(&self.org_name)
                    .map_err(|e| v.push(FieldViolation::new("/org_name", e.code).with_detail(e.detail)))
                    .ok()
            })
            .flatten();
        let system_name = name(&self.system_name, "/system_name", &mut v)
            .then(|| {
                SystemName::parse(&self.system_name)
                    .map_err(|e| v.push(FieldViolation::new("/system_name", e.code).with_detail(e.detail)))
                    .ok()
            })
            .flatten();
        let key = key_options(self.scopes, self.expires_at, self.ttl_days, self.allowed_networks)
            .map_err(|e| v.extend(e))
            .ok();
        match (org_code, parent, org_name, system_name, key) {
            (Some(org_code), Some(parent), Some(org_name), Some(system_name), Some(key)) if v.is_empty() => {
                Ok((
                    NewSource {
                        org_code,
                        org_name,
                        org_kind: self.org_kind.into(),
                        parent: Some(parent),
                        valid_from: None,
                        system_name,
                    },
                    key,
                ))
            }
            _ => Err(v),
        }
    }
}

/// An organisation as a bundle names it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BundleOrganisationOut {
    /// Organisation id.
    pub id: Uuid,
    /// Unique code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
}

/// The gateway's addresses a connected system uses (from the `public_url` setting).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EndpointsOut {
    /// The public base URL.
    pub base_url: String,
    /// The REST API's base (`…/api/v1`); send the key as `X-API-Key`.
    pub rest: String,
    /// `POST` records here (real time).
    pub records: String,
    /// `POST` batch files here.
    pub batches: String,
    /// The SOAP 1.1/1.2 endpoint.
    pub soap: String,
    /// The SOAP service's WSDL.
    pub wsdl: String,
    /// The OpenAPI document.
    pub openapi: String,
    /// The schema list.
    pub schemas: String,
}

impl From<Endpoints> for EndpointsOut {
    fn from(e: Endpoints) -> Self {
        Self {
            base_url: e.base_url,
            rest: e.rest,
            records: e.records,
            batches: e.batches,
            soap: e.soap,
            wsdl: e.wsdl,
            openapi: e.openapi,
            schemas: e.schemas,
        }
    }
}

/// A category's schema versions.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SchemaVersionsOut {
    /// `policy`, `statistics`, `workforce` or `enforcement`.
    pub category: String,
    /// Every published version, oldest first.
    pub versions: Vec<String>,
    /// The newest: use it in `schema_version`.
    pub latest: String,
}

impl From<SchemaVersions> for SchemaVersionsOut {
    fn from(s: SchemaVersions) -> Self {
        Self {
            category: s.category.as_str().to_owned(),
            versions: s.versions.iter().map(ToString::to_string).collect(),
            latest: s.latest.to_string(),
        }
    }
}

/// A rate limit (R-SEC-2): above it, `429` with `Retry-After`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RateOut {
    /// Sustained requests per second.
    pub rate: f64,
    /// Requests at once.
    pub burst: u32,
}

impl From<RateFacts> for RateOut {
    fn from(r: RateFacts) -> Self {
        Self {
            rate: r.rate,
            burst: r.burst,
        }
    }
}

/// The limits the system meets, as configured.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LimitsOut {
    /// Per API key.
    pub rate_per_key: RateOut,
    /// Per organisation (all its keys together; the organisation's own rate when one is
    /// configured).
    pub rate_per_organisation: RateOut,
    /// Per client address.
    pub rate_per_address: RateOut,
    /// Largest request body, in bytes (`413` above).
    pub max_body_bytes: u64,
    /// Most records in one real-time submission.
    pub max_records_per_submission: u64,
    /// Largest batch file, in bytes.
    pub max_batch_bytes: u64,
}

impl From<ConnectionLimits> for LimitsOut {
    fn from(l: ConnectionLimits) -> Self {
        Self {
            rate_per_key: l.per_key.into(),
            rate_per_organisation: l.per_organisation.into(),
            rate_per_address: l.per_address.into(),
            max_body_bytes: l.max_body_bytes,
            max_records_per_submission: l.max_records_per_submission,
            max_batch_bytes: l.max_batch_bytes,
        }
    }
}

/// Everything a connected system needs to connect, without secrets.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConnectionOut {
    /// Its organisation.
    pub organisation: BundleOrganisationOut,
    /// The system.
    pub system: SystemOut,
    /// Its keys that work (scopes, expiry, allow-list; never a secret). At onboarding: the key
    /// just issued.
    pub keys: Vec<ApiKeyOut>,
    /// Where to connect.
    pub endpoints: EndpointsOut,
    /// The schema versions per category.
    pub schemas: Vec<SchemaVersionsOut>,
    /// The limits.
    pub limits: LimitsOut,
}

impl From<ConnectionBundle> for ConnectionOut {
    fn from(b: ConnectionBundle) -> Self {
        Self {
            organisation: BundleOrganisationOut {
                id: b.organisation.id.as_uuid(),
                code: b.organisation.code,
                name: b.organisation.name,
                kind: b.organisation.kind,
            },
            system: b.system.into(),
            keys: b.keys.into_iter().map(ApiKeyOut::from).collect(),
            endpoints: b.endpoints.into(),
            schemas: b.schemas.into_iter().map(SchemaVersionsOut::from).collect(),
            limits: b.limits.into(),
        }
    }
}

/// An onboarded source: its credentials — shown this once — and its connection bundle. Also
/// what `etxhub sources add --output json` prints.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct OnboardedOut {
    /// The organisation's id.
    pub org_id: Uuid,
    /// Whether the organisation was created now (else a system was added to it).
    pub org_created: bool,
    /// The new system's id.
    pub system_id: Uuid,
    /// The key's id.
    pub key_id: Uuid,
    /// The API key in clear. Store it now; it cannot be shown again. Send it as `X-API-Key`.
    pub api_key: String,
    /// The connection bundle.
    #[serde(flatten)]
    pub connection: ConnectionOut,
}

impl std::fmt::Debug for OnboardedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnboardedOut")
            .field("org_id", &self.org_id)
            .field("system_id", &self.system_id)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl From<Onboarding> for OnboardedOut {
    fn from(o: Onboarding) -> Self {
        Self {
            org_id: o.bundle.organisation.id.as_uuid(),
            org_created: o.org_created,
            system_id: o.bundle.system.id.as_uuid(),
            key_id: o.key_id.as_uuid(),
            api_key: o.api_key,
            connection: o.bundle.into(),
        }
    }
}

/// Onboards a data source (R-ADM automatic configuration, issue 4 §9): creates its organisation
/// below the administrator's own (or adds a system to an existing organisation of the
/// administrator's subtree), registers the system, issues its first key with the asked scopes,
/// expiry and allow-list, and answers the credentials — once — with the connection bundle. The
/// key works at once. `system_admin` only; connected systems never.
#[utoipa::path(post, path = "/api/v1/onboarding", tag = "identity", request_body = OnboardingIn,
    responses((status = 201, body = OnboardedOut, description = "onboarded; the API key is shown this once"),
        (status = 403, description = "`forbidden`: not a system_admin, or a connected system", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The parent (or the existing organisation) is not within the administrator's organisation subtree", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already_exists`: the organisation code was taken meanwhile", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: a field breaks its rules (one violation per field), the kind does not fit under the parent, or the code exists with another kind", body = Problem, content_type = "application/problem+json")),
    security(("session" = [])))]
pub async fn onboard(
    id: web::Data<AppIdentity>,
    p: Principal,
    body: web::Json<OnboardingIn>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::Onboard)?;
    let (req, key) = body.into_inner().parse().map_err(invalid)?;
    let out = id
        .service
        .onboard_source(req, key, Some(p.org_id))
        .await
        .map_err(api_error)?;
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(OnboardedOut::from(out)))
}

/// A system's connection bundle without secrets (R-ADM): its organisation, its keys that work,
/// the endpoints, schema versions and limits. The caller's organisation only (`404` otherwise).
#[utoipa::path(get, path = "/api/v1/systems/{id}/connection", tag = "identity",
    params(("id" = Uuid, Path, description = "system id")),
    responses((status = 200, body = ConnectionOut),
        (status = 404, description = "No such system in the caller's organisation", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []), ("session" = [])))]
pub async fn connection(
    id: web::Data<AppIdentity>,
    p: Principal,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageKeys)?;
    let bundle = id
        .service
        .connection(p.org_id, SystemId::from_uuid(path.into_inner()))
        .await
        .map_err(api_error)?;
    Ok(HttpResponse::Ok().json(ConnectionOut::from(bundle)))
}

/// Rotation options.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyIn {
    /// Seconds the old key keeps working beside its successor (default 86400, one day; at most
    /// 2592000, 30 days; 0 retires it at once).
    #[schema(minimum = 0, maximum = 2_592_000)]
    pub overlap_secs: Option<u32>,
}

/// A rotation's outcome: the successor with its secret (once) and the old key as it is now.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RotatedKeyOut {
    /// The successor.
    #[serde(flatten)]
    pub key: ApiKeyOut,
    /// The successor's API key in clear. Store it now; it cannot be shown again.
    pub api_key: String,
    /// The old key: it works until its `expires_at` (the end of the overlap).
    pub previous: ApiKeyOut,
}

impl std::fmt::Debug for RotatedKeyOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatedKeyOut")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Rotates an API key with overlap (issue 4 §5): issues a successor for the same system with
/// the same scopes and allow-list (and, for a key with a lifetime, the same lifetime again),
/// and makes the old key expire after `overlap_secs`. Both work during the overlap; afterwards
/// only the successor (`401 invalid_credentials` for the old one). The body is optional.
#[utoipa::path(post, path = "/api/v1/keys/{id}/rotate", tag = "identity", request_body = Option<RotateKeyIn>,
    params(("id" = Uuid, Path, description = "key id")),
    responses((status = 201, body = RotatedKeyOut),
        (status = 403, description = "`forbidden`, or `insufficient_scope`: a connected system rotating a key with a scope its own key lacks", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key in the caller's organisation", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: an overlap above 30 days, or a key that is revoked, expired or already rotated", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []), ("session" = [])))]
pub async fn rotate_key(
    id: web::Data<AppIdentity>,
    p: Principal,
    req: HttpRequest,
    path: web::Path<Uuid>,
    body: Result<web::Json<Option<RotateKeyIn>>, actix_web::Error>,
) -> Result<HttpResponse, actix_web::Error> {
    p.require(Permission::ManageKeys)?;
    let body = match body {
        Ok(b) => b.into_inner(),
        Err(_) if body_is_empty(&req) => None,
        Err(e) => return Err(e),
    };
    let overlap = etx_identity_core::keys::overlap(body.and_then(|b| b.overlap_secs)).map_err(invalid)?;
    let (successor, plaintext, previous) = id
        .service
        .rotate_key(
            p.org_id,
            ApiKeyId::from_uuid(path.into_inner()),
            overlap,
            p.actor(),
        )
        .await
        .map_err(api_error)?;
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(RotatedKeyOut {
            key: successor.into(),
            api_key: plaintext,
            previous: previous.into(),
        }))
}

/// What changed in a connected system's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKindName {
    /// Its endpoint or address.
    Endpoint,
    /// Its software version.
    SoftwareVersion,
    /// The schema version it submits.
    SchemaVersion,
    /// The network it connects from.
    Network,
    /// Its TLS certificate.
    Certificate,
    /// Its contact person.
    Contact,
    /// Anything else.
    Other,
}

impl From<ChangeKindName> for ChangeKind {
    fn from(k: ChangeKindName) -> Self {
        match k {
            ChangeKindName::Endpoint => ChangeKind::Endpoint,
            ChangeKindName::SoftwareVersion => ChangeKind::SoftwareVersion,
            ChangeKindName::SchemaVersion => ChangeKind::SchemaVersion,
            ChangeKindName::Network => ChangeKind::Network,
            ChangeKindName::Certificate => ChangeKind::Certificate,
            ChangeKindName::Contact => ChangeKind::Contact,
            ChangeKindName::Other => ChangeKind::Other,
        }
    }
}

/// The schema of a change's details: at most 32 entries, each name 1–64 characters, each
/// value a text of at most 500 characters, a number, a boolean or null.
fn details_schema() -> Object {
    let value = OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(500)),
        )
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .build();
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .max_properties(Some(32))
        .property_names(Some(ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).max_length(Some(64))))
        .additional_properties(Some(RefOr::T(Schema::OneOf(value))))
        .description(Some(
            "Structured facts (old and new endpoint, version …): at most 32 entries; values are texts of at most 500 characters, numbers, booleans or null — no nesting.",
        ))
        .build()
}

/// A configuration-change declaration (Art. 10.4).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigChangeIn {
    /// What changed.
    pub kind: ChangeKindName,
    /// How, in words (no control characters but line breaks and tabs).
    #[schema(min_length = 1, max_length = 2000)]
    pub description: String,
    /// When it takes (or took) effect; between the years 2000 and 2100.
    pub effective_at: DateTime<Utc>,
    /// Structured facts.
    #[schema(schema_with = details_schema)]
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A recorded declaration.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConfigChangeOut {
    /// Its id.
    pub id: Uuid,
    /// The system.
    pub system_id: Uuid,
    /// What changed.
    pub kind: ChangeKindName,
    /// How, in words.
    pub description: String,
    /// When it takes (or took) effect.
    pub effective_at: DateTime<Utc>,
    /// Structured facts.
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
    /// Who declared it: `system:<id>` or `user:<id>`.
    pub declared_by: String,
    /// When it was declared.
    pub declared_at: DateTime<Utc>,
}

fn kind_name(k: ChangeKind) -> ChangeKindName {
    match k {
        ChangeKind::Endpoint => ChangeKindName::Endpoint,
        ChangeKind::SoftwareVersion => ChangeKindName::SoftwareVersion,
        ChangeKind::SchemaVersion => ChangeKindName::SchemaVersion,
        ChangeKind::Network => ChangeKindName::Network,
        ChangeKind::Certificate => ChangeKindName::Certificate,
        ChangeKind::Contact => ChangeKindName::Contact,
        ChangeKind::Other => ChangeKindName::Other,
    }
}

impl From<ConfigChange> for ConfigChangeOut {
    fn from(c: ConfigChange) -> Self {
        Self {
            id: c.id,
            system_id: c.system_id.as_uuid(),
            kind: kind_name(c.kind),
            description: c.description,
            effective_at: c.effective_at,
            details: c.details,
            declared_by: c.declared_by,
            declared_at: c.declared_at,
        }
    }
}

/// The problem of a change declaration or listing: a connected system may only use its own
/// system's (`403`), people (`system_admin`) any system of their organisation.
fn change_error(e: IdentityError) -> ApiError {
    match e {
        IdentityError::Denied(Denial::Forbidden) => ApiError::new(ErrorCode::Forbidden)
            .with_detail("a connected system declares and reads the changes of its own system only"),
        e => api_error(e),
    }
}

/// Declares a change of a connected system's configuration (Art. 10.4: endpoint, software or
/// schema version, network, certificate, contact …). It is recorded with who declared it and
/// when, and notified on the `events.config` stream in the same transaction. By the system
/// itself (its own system only, scope `keys:manage`) or a `system_admin` of its organisation.
#[utoipa::path(post, path = "/api/v1/systems/{id}/changes", tag = "identity", request_body = ConfigChangeIn,
    params(("id" = Uuid, Path, description = "system id")),
    responses((status = 201, body = ConfigChangeOut),
        (status = 403, description = "`forbidden` (another system of the organisation, or not a system_admin) or `insufficient_scope`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such system in the caller's organisation", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: one violation per field (an empty description, control characters, details too large or nested, an effective time outside 2000–2100)", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []), ("session" = [])))]
pub async fn declare_change(
    id: web::Data<AppIdentity>,
    p: Principal,
    path: web::Path<Uuid>,
    body: web::Json<ConfigChangeIn>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::DeclareChanges)?;
    let system = SystemId::from_uuid(path.into_inner());
    let b = body.into_inner();
    let change = NewConfigChange {
        kind: b.kind.into(),
        description: b.description,
        effective_at: b.effective_at,
        details: b.details,
    };
    let recorded = id
        .service
        .declare_change(p.org_id, system, change, p.subject.clone(), p.system_id)
        .await
        .map_err(change_error)?;
    Ok(HttpResponse::Created().json(ConfigChangeOut::from(recorded)))
}

/// Which declarations to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChangesQuery {
    /// Most declarations returned, newest first (1–500, default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Only those declared before this instant (the `declared_at` of the last one of the
    /// previous page).
    pub before: Option<DateTime<Utc>>,
}

/// The configuration changes declared for a system, newest first (Art. 10.4). The caller's
/// organisation only (`404` otherwise); a connected system reads its own system's.
#[utoipa::path(get, path = "/api/v1/systems/{id}/changes", tag = "identity",
    params(("id" = Uuid, Path, description = "system id"), ChangesQuery),
    responses((status = 200, body = Vec<ConfigChangeOut>),
        (status = 400, description = "`invalid_parameter`: a limit outside 1–500 or an unreadable `before`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden` or `insufficient_scope`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such system in the caller's organisation", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []), ("session" = [])))]
pub async fn list_changes(
    id: web::Data<AppIdentity>,
    p: Principal,
    path: web::Path<Uuid>,
    q: web::Query<ChangesQuery>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::DeclareChanges)?;
    let limit = match q.limit {
        None => 100,
        Some(n @ 1..=500) => n,
        Some(_) => {
            return Err(ApiError::new(ErrorCode::InvalidParameter).with_detail("limit must be 1 to 500"));
        }
    };
    let system = SystemId::from_uuid(path.into_inner());
    let changes = id
        .service
        .config_changes(p.org_id, system, q.before, limit, p.system_id)
        .await
        .map_err(change_error)?;
    Ok(HttpResponse::Ok().json(changes.into_iter().map(ConfigChangeOut::from).collect::<Vec<_>>()))
}

/// Mounts the routes (under `/api/v1`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/onboarding", "POST").route(web::post().to(onboard)))
        .service(resource("/keys/{id}/rotate", "POST").route(web::post().to(rotate_key)))
        .service(resource("/systems/{id}/connection", "GET").route(web::get().to(connection)))
        .service(
            resource("/systems/{id}/changes", "GET, POST")
                .route(web::get().to(list_changes))
                .route(web::post().to(declare_change)),
        );
}

/// This part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(onboard, connection, rotate_key, declare_change, list_changes),
    components(schemas(
        ScopeName,
        NetworkIn,
        OrgKindName,
        OnboardingIn,
        OnboardedOut,
        ConnectionOut,
        BundleOrganisationOut,
        EndpointsOut,
        SchemaVersionsOut,
        RateOut,
        LimitsOut,
        RotateKeyIn,
        RotatedKeyOut,
        ChangeKindName,
        ConfigChangeIn,
        ConfigChangeOut
    ))
)]
#[derive(Debug)]
pub struct SourcesDoc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_options_name_the_bad_network_and_count_before_deduplicating() {
        let nets = |v: &[&str]| Some(v.iter().map(|s| NetworkIn((*s).to_owned())).collect());
        let e = key_options(None, None, None, nets(&["203.0.113.0/24", "10.0.0.5/8", "::1"])).unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].path, "/allowed_networks/1");
        let o = key_options(
            Some(vec![ScopeName::RecordsWrite]),
            None,
            Some(30),
            nets(&["203.0.113.0/24", "2001:db8::/32"]),
        )
        .unwrap();
        assert_eq!(o.scopes, Some(vec![Scope::RecordsWrite]));
        assert_eq!(o.allowed_networks.len(), 2);
        let five = Some(vec![ScopeName::RecordsWrite; 5]);
        assert_eq!(
            key_options(five, None, None, None).unwrap_err()[0].path,
            "/scopes"
        );
        let many: Vec<String> = (0..33).map(|i| format!("10.0.{i}.0/24")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            key_options(None, None, None, nets(&many)).unwrap_err()[0].path,
            "/allowed_networks"
        );
    }
}
