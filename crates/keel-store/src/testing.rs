//! Helpers for tests on both backends: a throwaway PostgreSQL database per test.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::Executor;

/// The server tests create their databases on: `KEEL_TEST_POSTGRES_URL`, or the local
/// trust-auth default.
pub fn admin_url() -> String {
    std::env::var("KEEL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A database created for one test and dropped when the guard is dropped.
pub struct ThrowawayDb {
    /// URL of the new database.
    pub url: String,
    name: String,
}

impl ThrowawayDb {
    /// Creates `keel_test_<uuid>` on the test server.
    pub async fn create() -> Result<Self, sqlx::Error> {
        let admin = admin_url();
        let name = format!("keel_test_{}", uuid::Uuid::now_v7().simple());
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect(&admin)
            .await?;
        pool.execute(format!("CREATE DATABASE {name}").as_str())
            .await?;
        pool.close().await;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        Ok(Self {
            url: format!("{base}/{name}"),
            name,
        })
    }
}

impl Drop for ThrowawayDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Dropping must not need the test's runtime, which may already be shutting down.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(pool) = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&admin_url())
                    .await
                {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = pool.execute(sql.as_str()).await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}
