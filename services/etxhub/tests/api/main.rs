//! API tests of the whole application over HTTPS, each against both backends
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! (R-ING-1..5, R-SEC-1, R-SEC-3, R-SRC-2, R-I18N).

mod audit;
mod authz;
mod batches;
mod bola;
mod dump;
mod early_warning;
mod exports;
mod hardening;
mod helpers;
mod ingestion;
mod keys;
mod masking_policy;
mod oauth;
mod oidc;
mod onboarding;
mod pipeline;
mod platform;
mod ratelimit;
mod reconciliation;
mod schemas;
mod security;
mod soap;
mod subtree;
mod users;
