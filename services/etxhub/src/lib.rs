//! etxhub
