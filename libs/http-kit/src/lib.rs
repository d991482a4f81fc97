//! etx-http-kit
