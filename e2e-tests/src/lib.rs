//! End-to-end harness: starts the real `etxhub` binary.
