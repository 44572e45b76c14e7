//! The integrity context: how the product's own services authenticate to Keel, rate limits
//! that hold across nodes, and the browser-facing security headers and CORS.

pub mod client_ip;
pub(crate) mod headers;
pub mod limiter;
pub mod limiter_memory;
pub mod limiter_redis;
mod plan_cache;
pub mod rate_limit;
pub mod redis;
pub mod service_auth;

pub use client_ip::TrustedProxies;
pub use limiter::FailMode;
pub use service_auth::{ServiceCaller, ServiceKeys};
