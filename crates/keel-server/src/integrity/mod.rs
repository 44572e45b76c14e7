//! The integrity context: how the product's own services authenticate to Keel, and
//! idempotency keys on every mutating request.

pub mod idempotency;
pub mod redis;
pub mod service_auth;

pub use service_auth::{ServiceCaller, ServiceKeys};
