//! etx-crypto
