//! The embedded default: one SQLite file in WAL mode, created on first start.

mod admins;
mod api_keys;
mod audit;
mod auth;
mod billing;
mod billing_accounts;
mod billing_batch;
mod billing_ledger;
mod billing_reserve;
mod billing_reverse;
mod billing_settle;
mod billing_sliding;
mod billing_verify;
mod idempotency;
mod lite;
mod safety;
mod sessions;
mod users;
mod webhook_out;
pub(crate) mod webhook_outbox;
mod webhooks;
mod webhooks_claim;
mod writer;

use std::io::Write;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

use self::writer::Writer;
use crate::error::map_sqlx;
use crate::{Backend, SchemaStatus, StoreError, StoreResult, SystemStore};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite implementation of every store trait.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: Writer,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and migrates it.
    pub async fn open(path: &Path, max_connections: u32) -> StoreResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            probe_writable(dir)?;
        }
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(|e| {
                StoreError::Unavailable(format!("bad SQLite path {}: {e}", path.display()))
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_with(opts)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        migrate(&pool).await?;
        let writer = Writer::open(path)?;
        Ok(Self { pool, writer })
    }

    /// The pool, for sibling modules.
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The billing writer, for sibling modules.
    pub(crate) fn writer(&self) -> &Writer {
        &self.writer
    }

    /// A transaction that takes the write lock at `BEGIN`: writers then queue on
    /// `busy_timeout` instead of failing with `SQLITE_BUSY` when a read would upgrade.
    pub(crate) async fn begin_write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_sqlx)
    }
}

async fn migrate(pool: &SqlitePool) -> StoreResult<()> {
    let status = schema_status(pool).await?;
    if status.applied > status.expected {
        return Err(StoreError::SchemaTooNew {
            found: status.applied,
            supported: status.expected,
        });
    }
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| StoreError::Unavailable(format!("SQLite migration failed: {e}")))
}

async fn schema_status(pool: &SqlitePool) -> StoreResult<SchemaStatus> {
    let has_table: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(pool)
    .await?;
    let applied = match has_table {
        None => 0,
        Some(_) => {
            sqlx::query_scalar(
                "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success",
            )
            .fetch_one(pool)
            .await?
        }
    };
    Ok(SchemaStatus {
        applied,
        expected: expected_version(&MIGRATOR),
    })
}

/// Fails early and plainly when the data dir cannot be created or written.
fn probe_writable(dir: &Path) -> StoreResult<()> {
    let fail = |e: std::io::Error| {
        StoreError::Unavailable(format!("data dir {} is not writable: {e}", dir.display()))
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(".keel-write-probe");
    let result = std::fs::File::create(&probe)
        .and_then(|mut f| f.write_all(&[0u8; 4096]).and_then(|()| f.sync_all()));
    let _ = std::fs::remove_file(&probe);
    result.map_err(fail)
}

pub(crate) fn expected_version(migrator: &Migrator) -> i64 {
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

#[async_trait]
impl SystemStore for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn schema_status(&self) -> StoreResult<SchemaStatus> {
        schema_status(&self.pool).await
    }

    async fn close(&self) {
        self.writer.stop().await;
        self.pool.close().await;
    }
}

crate::levers_sql::lever_store_impl!(SqliteStore);

crate::jobs_impl::job_store_impl!(
    SqliteStore,
    sqlx::Sqlite,
    // The write lock taken at BEGIN already serialises creates.
    "SELECT $1",
    crate::jobs_sql::claim_timers_sql!("")
);
