//! Keel's storage: one trait per context, implemented for SQLite (the embedded default)
//! and PostgreSQL (for many nodes). The backend is chosen once, from the URL scheme.
//!
//! Every method that touches tenant data takes a [`TenantScope`] first, so an unscoped
//! read cannot be written.

mod audit;
mod connect;
mod error;
pub mod postgres;
mod scope;
pub mod sqlite;
mod system;
#[cfg(feature = "test-util")]
pub mod testing;

use std::sync::Arc;

pub use audit::{AuditEvent, AuditQuery, AuditStore, NewAuditEvent};
pub use connect::{connect, ConnectOptions, Target};
pub use error::{StoreError, StoreResult};
pub use scope::TenantScope;
pub use system::{Backend, SchemaStatus, SystemStore};

/// Everything Keel stores, behind one object the server holds.
pub trait Store: SystemStore + AuditStore + Send + Sync + 'static {}

impl<T: SystemStore + AuditStore + Send + Sync + 'static> Store for T {}

/// The shared handle the server and commands use.
pub type DynStore = Arc<dyn Store>;

/// The current time at the precision both backends store (microseconds), so a row
/// read back equals the row written.
pub(crate) fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}
