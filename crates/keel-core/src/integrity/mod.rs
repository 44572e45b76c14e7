//! Integrity of calls into Keel: transport-level idempotency keys.

pub mod idempotency;
