//! etx-storage
