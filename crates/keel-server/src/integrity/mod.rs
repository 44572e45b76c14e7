//! The integrity context: how the product's own services authenticate to Keel.

pub mod redis;
pub mod service_auth;

pub use service_auth::{ServiceCaller, ServiceKeys};
