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
