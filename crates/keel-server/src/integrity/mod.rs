//! The integrity context: how the product's own services authenticate to Keel
//! (HMAC-signed requests with a nonce cache, or bearer service keys), rate limits that
//! hold across nodes, idempotency keys on every mutating request, and the browser-facing security headers and CORS.

pub mod client_ip;
pub mod headers;
pub mod idempotency;
pub mod limiter;
pub mod limiter_memory;
pub mod limiter_redis;
pub(crate) mod nonces;
mod plan_cache;
pub mod rate_limit;
pub mod redis;
pub mod service_auth;
pub(crate) mod signature;

pub use client_ip::TrustedProxies;
pub use keel_core::integrity::ServiceKeys;
pub use limiter::FailMode;
pub use nonces::MEMORY_CAPACITY as NONCE_MEMORY_CAPACITY;
pub use service_auth::{ServiceAuthMode, ServiceCaller};
