//! etx-gateway
