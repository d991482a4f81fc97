//! etx-ingestion
