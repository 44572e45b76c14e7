//! PostgreSQL, for any number of stateless nodes sharing one database.

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
mod safety;
mod sessions;
mod users;
mod webhook_out;
pub(crate) mod webhook_outbox;
mod webhooks;
mod webhooks_claim;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::connect::redact_url;
use crate::sqlite::expected_version;
use crate::{Backend, SchemaStatus, StoreError, StoreResult, SystemStore};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The PostgreSQL implementation of every store trait.
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects (bounded by `timeout`, never hanging) and migrates under the migrator's
    /// advisory lock, so several nodes starting together migrate once.
    pub async fn connect(url: &str, max_connections: u32, timeout: Duration) -> StoreResult<Self> {
        let unavailable = |e: String| {
            StoreError::Unavailable(format!(
                "cannot connect to PostgreSQL at {}: {e}",
                redact_url(url)
            ))
        };
        let opts = PgConnectOptions::from_str(url).map_err(|e| unavailable(e.to_string()))?;
        let connecting = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(timeout)
            .connect_with(opts);
        let pool = match tokio::time::timeout(timeout, connecting).await {
            Ok(Ok(pool)) => pool,
            Ok(Err(e)) => return Err(unavailable(e.to_string())),
            Err(_) => return Err(unavailable(format!("no answer within {timeout:?}"))),
        };
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A transaction (the name matches SQLite's, so shared impls read the same).
    pub(crate) async fn begin_write(
        &self,
    ) -> StoreResult<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool.begin().await.map_err(crate::error::map_sqlx)
    }

    async fn migrate(&self) -> StoreResult<()> {
        let status = self.schema_status().await?;
        if status.applied > status.expected {
            return Err(StoreError::SchemaTooNew {
                found: status.applied,
                supported: status.expected,
            });
        }
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Unavailable(format!("PostgreSQL migration failed: {e}")))
    }
}

#[async_trait]
impl SystemStore for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn schema_status(&self) -> StoreResult<SchemaStatus> {
        let has_table: Option<String> =
            sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
                .fetch_one(&self.pool)
                .await?;
        let applied =
            match has_table {
                None => 0,
                Some(_) => sqlx::query_scalar(
                    "SELECT COALESCE(MAX(version), 0)::bigint FROM _sqlx_migrations WHERE success",
                )
                .fetch_one(&self.pool)
                .await?,
            };
        Ok(SchemaStatus {
            applied,
            expected: expected_version(&MIGRATOR),
        })
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

crate::levers_sql::lever_store_impl!(PostgresStore);

crate::jobs_impl::job_store_impl!(
    PostgresStore,
    sqlx::Postgres,
    "SELECT pg_advisory_xact_lock($1)",
    crate::jobs_sql::claim_timers_sql!("FOR UPDATE SKIP LOCKED")
);
