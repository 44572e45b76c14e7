//! Event retention: for each job type with `[jobs.<name>.retention]`, delete the events of
//! jobs that finished more than `days` ago, in batches, keeping daily statistics. Used by
//! `keel jobs retention` (and by a periodic task).

use chrono::{DateTime, TimeDelta, Utc};
use keel_core::manifest::Manifest;
use keel_store::jobs::PruneOutcome;
use keel_store::{DynStore, StoreResult};

/// Events deleted per transaction.
pub const BATCH: i64 = 1000;

/// Runs retention now; see [`run_at`].
pub async fn run(
    store: &DynStore,
    manifest: &Manifest,
    force: bool,
) -> StoreResult<Vec<(String, PruneOutcome)>> {
    run_at(store, manifest, Utc::now(), force).await
}

/// Runs retention for every job type that declares it; the outcome per type, in name order.
pub async fn run_at(
    store: &DynStore,
    manifest: &Manifest,
    now: DateTime<Utc>,
    force: bool,
) -> StoreResult<Vec<(String, PruneOutcome)>> {
    let mut outcomes = Vec::new();
    for (name, job_type) in &manifest.jobs {
        let Some(retention) = &job_type.retention else {
            continue;
        };
        let cutoff = now - TimeDelta::days(i64::from(retention.days));
        let outcome = store.prune_job_events(name, cutoff, BATCH, force).await?;
        if let PruneOutcome::Pruned { deleted } = outcome {
            metrics::counter!("keel_job_events_pruned_total", "type" => name.clone())
                .increment(deleted);
        }
        outcomes.push((name.clone(), outcome));
    }
    Ok(outcomes)
}

/// The advisory lock key that keeps periodic retention on one node at a time.
const LOCK_KEY: &str = "keel:jobs_retention";

/// Runs retention every `interval` until `stop` turns true. On PostgreSQL a round runs only
/// on the node that wins a session advisory lock; the others skip it. Never forces: a run
/// the half-of-a-type guard refuses is logged for an operator (`keel jobs retention --force`).
pub async fn periodic(
    state: crate::AppState,
    interval: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Err(e) = round(&state).await {
            tracing::warn!(error = %e, "periodic job retention failed");
        }
    }
}

/// One periodic round; returns whether this node ran it.
pub async fn round(state: &crate::AppState) -> anyhow::Result<bool> {
    let Some(pool) = state.job_notifier().pg_pool() else {
        report(run(state.store(), state.manifest(), false).await?);
        return Ok(true);
    };
    let mut conn = pool.acquire().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
        .bind(LOCK_KEY)
        .fetch_one(&mut *conn)
        .await?;
    if !locked {
        return Ok(false);
    }
    let outcome = run(state.store(), state.manifest(), false).await;
    let _ = sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
        .bind(LOCK_KEY)
        .execute(&mut *conn)
        .await;
    report(outcome?);
    Ok(true)
}

fn report(outcomes: Vec<(String, PruneOutcome)>) {
    for (job_type, outcome) in outcomes {
        match outcome {
            PruneOutcome::Pruned { deleted } => {
                tracing::info!(job_type, deleted, "job events pruned");
            }
            other => tracing::warn!(job_type, outcome = ?other, "job retention did not prune"),
        }
    }
}
