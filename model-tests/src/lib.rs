//! Tests only: see `tests/` and docs/testing.md. This crate has no library code.
