//! Tests only: see `tests/loom_handoffs.rs` and docs/testing.md.
