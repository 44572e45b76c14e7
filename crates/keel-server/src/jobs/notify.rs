//! Wake-ups for live event streams: an in-process broadcast of job ids woken by every
//! append and transition on this node, and on PostgreSQL a `LISTEN/NOTIFY` bridge on the
//! `keel_job_events` channel so subscribers on every node hear every node's writes.
//! Notifications only say "look again": the store stays the truth.

use std::sync::{Arc, OnceLock};

use keel_core::ids::JobId;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::sync::broadcast;

/// The PostgreSQL channel job wake-ups travel on.
pub const CHANNEL: &str = "keel_job_events";

/// Fans job wake-ups out to this node's subscribers (and, on PostgreSQL, to every node).
#[derive(Clone)]
pub struct JobNotifier {
    tx: broadcast::Sender<JobId>,
    pg: Arc<OnceLock<PgPool>>,
}

impl Default for JobNotifier {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self {
            tx,
            pg: Arc::new(OnceLock::new()),
        }
    }
}

impl std::fmt::Debug for JobNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobNotifier")
            .field("postgres", &self.pg.get().is_some())
            .finish()
    }
}

impl JobNotifier {
    /// A receiver of every wake-up from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<JobId> {
        self.tx.subscribe()
    }

    /// Wakes the job's subscribers here and, on PostgreSQL, on every node.
    pub fn notify(&self, job: JobId) {
        let _ = self.tx.send(job);
        if let Some(pool) = self.pg.get() {
            let pool = pool.clone();
            tokio::spawn(async move {
                if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(job.to_string())
                    .execute(&pool)
                    .await
                {
                    tracing::warn!(error = %e, "job event notify failed");
                }
            });
        }
    }

    /// The PostgreSQL pool of the bridge, when attached (also used for advisory locks).
    pub fn pg_pool(&self) -> Option<&PgPool> {
        self.pg.get()
    }

    /// Bridges to PostgreSQL: publishes through `pg_notify` and spawns a listener task that
    /// forwards every node's wake-ups to this node's subscribers (reconnecting on failure).
    pub async fn attach_postgres(&self, url: &str) -> Result<(), sqlx::Error> {
        let pool = PgPoolOptions::new().max_connections(4).connect(url).await?;
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await?;
        let _ = self.pg.set(pool);
        let tx = self.tx.clone();
        tokio::spawn(async move {
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) => {
                        if let Ok(id) = n.payload().parse::<JobId>() {
                            let _ = tx.send(id);
                        }
                    }
                    // The connection dropped and PgListener reconnects on the next call;
                    // notifications in between are lost, so wake everyone to re-read.
                    Ok(None) => {
                        metrics::counter!("keel_job_notify_reconnects_total").increment(1);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "job event listener error");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(())
    }
}
