//! Identity, first part (R-SRC-1, R-SEC-1): organisations, their connected systems and the
//! systems' API keys. This crate holds the domain rules, the ports the adapters implement and
//! the client trait other services (the gateway) call, locally or over HTTP.

pub mod model;
pub mod ports;
pub mod service;

pub use model::{ApiKeyInfo, AuthError, Caller, NewSource, OnboardedSource, SystemInfo};
pub use ports::{IdentityApi, IdentityStore, KeyMaterial, StoreError};
pub use service::{IdentityError, IdentityService};
