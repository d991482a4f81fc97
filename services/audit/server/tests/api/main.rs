//! The audit service's integration tests (R-SEC-8, R-SEC-9), on SQLite and PostgreSQL: a
//! fresh database per test (PostgreSQL ones are dropped at the end).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chain;
mod entries;
mod helpers;
mod purge;
mod vulnerabilities;
