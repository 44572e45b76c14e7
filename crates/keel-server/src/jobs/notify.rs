//! Wake-ups for live event streams: per-job wake-ups on this node, woken by every append
//! and transition, and on PostgreSQL a `LISTEN/NOTIFY` bridge on the `keel_job_events`
//! channel so subscribers on every node hear every node's writes. Notifications only say
//! "look again": the store stays the truth.
//!
//! Each job with subscribers has one `watch` channel (a counter) that all its streams
//! share, registered while any of them is open: a wake-up touches only that job's streams
//! (a broadcast of every job id to every stream woke all 10,000 idle streams per event),
//! and a counter cannot lag or lose a wake-up that came between a read and the wait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use keel_core::ids::JobId;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::sync::watch;

type Registry = Arc<Mutex<HashMap<JobId, watch::Sender<u64>>>>;

fn locked(jobs: &Registry) -> std::sync::MutexGuard<'_, HashMap<JobId, watch::Sender<u64>>> {
    jobs.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn wake(jobs: &Registry, job: JobId) {
    if let Some(tx) = locked(jobs).get(&job) {
        tx.send_modify(|n| *n = n.wrapping_add(1));
    }
}

fn wake_all(jobs: &Registry) {
    for tx in locked(jobs).values() {
        tx.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// One stream's subscription to one job's wake-ups; the job's channel is dropped with its
/// last subscription.
pub struct JobWake {
    job: JobId,
    rx: watch::Receiver<u64>,
    jobs: Registry,
}

impl JobWake {
    /// Waits for a wake-up after the last one seen (or after subscribing).
    pub async fn changed(&mut self) {
        // The sender lives in the registry while this receiver does: never closed.
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for JobWake {
    fn drop(&mut self) {
        let mut jobs = locked(&self.jobs);
        // Only this receiver left: the job's channel goes.
        if jobs
            .get(&self.job)
            .is_some_and(|tx| tx.receiver_count() <= 1)
        {
            jobs.remove(&self.job);
        }
    }
}

/// The PostgreSQL channel job wake-ups travel on.
pub const CHANNEL: &str = "keel_job_events";

/// Fans job wake-ups out to this node's subscribers (and, on PostgreSQL, to every node).
#[derive(Clone)]
pub struct JobNotifier {
    jobs: Registry,
    pg: Arc<OnceLock<PgPool>>,
}

impl Default for JobNotifier {
    fn default() -> Self {
        Self {
            jobs: Registry::default(),
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
    /// A receiver of the job's wake-ups from now on.
    pub fn subscribe(&self, job: JobId) -> JobWake {
        let rx = locked(&self.jobs)
            .entry(job)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        JobWake {
            job,
            rx,
            jobs: self.jobs.clone(),
        }
    }

    /// Wakes the job's subscribers here and, on PostgreSQL, on every node.
    pub fn notify(&self, job: JobId) {
        wake(&self.jobs, job);
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
        let jobs = self.jobs.clone();
        tokio::spawn(async move {
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) => {
                        if let Ok(id) = n.payload().parse::<JobId>() {
                            wake(&jobs, id);
                        }
                    }
                    // The connection dropped and PgListener reconnects on the next call;
                    // notifications in between are lost, so wake everyone to re-read.
                    Ok(None) => {
                        metrics::counter!("keel_job_notify_reconnects_total").increment(1);
                        wake_all(&jobs);
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
