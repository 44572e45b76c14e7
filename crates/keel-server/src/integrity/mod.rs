//! The integrity context: how the product's own services authenticate to Keel
//! (HMAC-signed requests with a nonce cache, or bearer service keys).

pub(crate) mod nonces;
pub mod redis;
pub mod service_auth;
pub(crate) mod signature;

pub use keel_core::integrity::ServiceKeys;
pub use nonces::MEMORY_CAPACITY as NONCE_MEMORY_CAPACITY;
pub use service_auth::{ServiceAuthMode, ServiceCaller};
