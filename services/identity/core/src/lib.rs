//! etx-identity-core
