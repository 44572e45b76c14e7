use async_trait::async_trait;
use serde::Serialize;

use crate::StoreResult;

/// Which database a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// How the database schema compares with this binary's migrations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SchemaStatus {
    /// Newest migration applied to the database (0 when none).
    pub applied: i64,
    /// Newest migration this binary ships.
    pub expected: i64,
}

impl SchemaStatus {
    /// True when the database is exactly at this binary's schema.
    pub fn is_current(&self) -> bool {
        self.applied == self.expected
    }
}

/// Health and lifecycle of the store itself (not tenant data).
#[async_trait]
pub trait SystemStore {
    /// Which backend this is.
    fn backend(&self) -> Backend;
    /// A round trip to the database.
    async fn ping(&self) -> StoreResult<()>;
    /// The applied and expected schema versions.
    async fn schema_status(&self) -> StoreResult<SchemaStatus>;
    /// Closes every connection, waiting for those in use to be returned.
    async fn close(&self);
}
