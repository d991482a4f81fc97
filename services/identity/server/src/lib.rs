//! etx-identity
