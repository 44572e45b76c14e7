//! HTTP plumbing shared by every context: the error envelope, request ids, the JSON
//! extractor, per-request observation, timeouts and the OpenAPI document.

pub(crate) mod error;
pub(crate) mod json;
pub(crate) mod middleware;
pub(crate) mod openapi;
pub mod principal;
pub(crate) mod request_id;
