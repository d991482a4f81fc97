//! etx-gateway-core
