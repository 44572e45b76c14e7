//! One conformance suite, generic over the store, run on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use keel_store::testing::ThrowawayDb;
use keel_store::{connect, Backend, ConnectOptions, DynStore};

/// Runs each listed `async fn(Backend)` as a test on SQLite and on PostgreSQL, in
/// `<module>::sqlite::<name>` and `<module>::postgres::<name>`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(Backend::Sqlite).await })*
        }
        mod postgres {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(Backend::Postgres).await })*
        }
    };
}

mod admins;
mod api_keys;
mod audit;
mod auth;
mod billing_accounts;
mod billing_batch;
mod billing_fixtures;
mod billing_ledger;
mod billing_reserve;
mod billing_reverse;
mod billing_settle;
mod billing_sliding;
mod billing_tenant;
mod fixtures;
mod idempotency;
mod jobs;
mod jobs_batch;
mod jobs_fixtures;
mod jobs_timers;
mod levers;
mod safety;
mod sessions;
mod users;
mod webhook_fixtures;
mod webhook_out;
mod webhooks;
mod webhooks_apply;
mod webhooks_outbox;
mod webhooks_replay;
mod webhooks_sources;

struct Harness {
    store: DynStore,
    opts: ConnectOptions,
    _dir: tempfile::TempDir,
    _db: Option<ThrowawayDb>,
}

async fn harness(backend: Backend) -> Harness {
    harness_with(backend, 8).await
}

/// Concurrency tests give every caller its own connection, so they all contend at once.
async fn harness_with(backend: Backend, max_connections: u32) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let db = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(ThrowawayDb::create().await.expect("PostgreSQL for tests")),
    };
    let opts = ConnectOptions {
        database_url: db.as_ref().map(|d| d.url.clone()),
        data_dir: dir.path().join("data"),
        connect_timeout: Duration::from_secs(10),
        max_connections,
    };
    let store = connect(&opts).await.unwrap();
    assert_eq!(store.backend(), backend);
    Harness {
        store,
        opts,
        _dir: dir,
        _db: db,
    }
}
