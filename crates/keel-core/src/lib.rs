//! Keel's core: the manifest model, domain types and pure logic shared by every context.
//!
//! Nothing in this crate performs I/O other than reading a manifest file; storage,
//! HTTP and providers live at the edges in other crates.

pub mod billing;
pub mod gateway;
pub mod identity;
pub mod ids;
pub mod integrity;
pub mod jobs;
pub mod manifest;
pub mod money;
pub mod outbound;
pub mod webhooks;
