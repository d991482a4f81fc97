//! etx-ingestion-core
