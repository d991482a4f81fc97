//! Masking of personal data, pure part (R-SEC-10, R-ING-2, R-SHR; issue 5 §2–3): detectors for
//! Vietnamese identifiers, masking operators, keyed tokens with authorised re-identification,
//! and versioned masking policies per data category (R-DATA-1), field and audience. No I/O
//! here: the server crate (`etx-masking`, to come) consumes the record streams, stores masked
//! copies and audits re-identifications.
//!
//! * [`detect`] — [`scan`] a text or [`scan_value`] a JSON payload for citizen ids, old id
//!   cards, tax codes, phones, bank accounts and e-mail addresses ([`Finding`]).
//! * [`ids`] — the identifiers as validated types: [`CitizenId`], [`TaxCode`] (check digit),
//!   [`PhoneNumber`].
//! * [`operators`] — redact, [`partial_mask`], [`generalise`], small-cell suppression
//!   ([`suppress_cells`]); [`Operator`] as a policy writes it.
//! * [`tokens`] — [`TokenKeys`]: irreversible `tok_…` (HMAC-SHA256) and reversible `rtk_…`
//!   (AES-SIV) tokens, one key per [`Purpose`]; [`TokenKeys::reidentify`] needs an
//!   [`Authorisation`] and returns the [`ReidentificationEvent`] to audit.
//! * [`policy`] — [`MaskingPolicy`]: parse and validate a policy document
//!   ([`BUILTIN_POLICY`] is version 1).
//! * [`apply`](mod@apply) — [`Masker::apply`] masks a payload for an [`Audience`] into a
//!   [`MaskedPayload`].
//! * [`masked`] — [`looks_masked`] (never use such a value as a match key) and
//!   [`check_declared_masked`] for records declared `masked`.
//! * [`provinces`] — the provincial-level units before and after the 2025 reform.
//!
//! The exact rules of every detector and operator are listed in `README.md` beside this crate.
//!
//! ```
//! use etx_crypto::MasterKey;
//! use etx_domain::Category;
//! use etx_masking_core::{Audience, Detector, Masker, MaskingPolicy, TokenKeys, BUILTIN_POLICY};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = MaskingPolicy::parse(BUILTIN_POLICY)?;
//! let masker = Masker::new(TokenKeys::new(MasterKey::generate("mk-masking")), Detector::for_today());
//! let payload = serde_json::json!({
//!     "activity_type": "expert_registry",
//!     "expert": { "full_name": "Nguyễn Thị Minh Thư", "citizen_id": "079190000123",
//!                 "phone": "0900000123" },
//!     "note": "Liên hệ qua số 0912 345 678."
//! });
//! let masked = masker.apply(&policy, Audience::Public, Category::Workforce, &payload)?;
//! assert_eq!(masked.value["expert"]["citizen_id"], "[CCCD]");
//! assert_eq!(masked.value["note"], "Liên hệ qua số [SĐT].");
//! # Ok(())
//! # }
//! ```

pub mod apply;
pub mod detect;
pub mod ids;
pub mod masked;
pub mod operators;
mod pointer;
pub mod policy;
pub mod ports;
pub mod provinces;
mod text;
pub mod tokens;

pub use apply::{Applied, MaskError, MaskedPayload, Masker, apply};
pub use detect::{Detector, Finding, FindingKind, ValueFinding, scan, scan_value};
pub use ids::{CitizenId, PhoneKind, PhoneNumber, Sex, TaxCode, tax_code_check_digit};
pub use masked::{check_declared_masked, check_declared_masked_with, looks_masked};
pub use operators::{
    Cell, DEFAULT_K, Generalisation, Operator, OperatorKind, REDACTED, generalise, partial_mask,
    suppress_cells, suppress_count,
};
pub use pointer::FieldPattern;
pub use policy::{Audience, AudienceOperators, BUILTIN_POLICY, FieldRule, MaskingPolicy, PolicyError};
pub use ports::{PayloadVault, RecordSource, SourceError, SourceRecord};
pub use tokens::{
    Authorisation, Normalise, Purpose, ReidentificationEvent, Reidentified, ReidentifyError, TokenError,
    TokenKeys, is_token,
};
