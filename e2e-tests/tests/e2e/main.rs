//! End-to-end tests of the real `etxhub` binary, all-in-one and distributed (issue point 13):
//! HTTPS submissions in JSON and XML, `kill -9` during a stream of retried submissions, a
//! canary that must never be stored or logged in clear, graceful shutdown.
//!
//! Needs `cargo build -p etxhub` first, PostgreSQL and Redis (see `scripts/test`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod batch_crash;
mod canary;
mod common;
mod crash;
mod https;
mod oauth;
mod pipeline_crash;
mod revocation;
mod shutdown;
mod soap_zeep;
mod xsd_lxml;
