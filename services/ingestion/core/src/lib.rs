//! Ingestion's domain (R-ING-1..5): validating submissions against the category schemas,
//! canonical hashing for idempotency, and the submit/read use cases over a record-store port.
//! No HTTP, no database: those are the server crate's adapters.

pub mod batch;
pub mod canonical;
pub mod model;
pub mod ports;
pub mod schema;
pub mod service;
pub mod xml;
pub mod xsd;

pub use model::{NewRecord, Receipt, RecordStatus, StoredRecord, Submission, SubmitOutcome};
pub use ports::{RecordStore, StoreError, SubmitError};
pub use schema::SchemaRegistry;
pub use service::{IngestError, IngestionService, Limits, SourceCaller};
