//! Deletes expired idempotency records in the background, in batches, on every node
//! (on PostgreSQL, nodes sweeping together skip each other's rows).

use std::time::Duration;

use chrono::Utc;
use keel_store::DynStore;
use tokio::sync::watch;

/// Records deleted per statement, so one sweep never holds a long transaction.
const BATCH: i64 = 500;

/// Sweeps every `interval` until `stop` turns true.
pub async fn run(store: DynStore, interval: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        loop {
            match store.sweep_idempotency(Utc::now(), BATCH).await {
                Ok(deleted) => {
                    if deleted > 0 {
                        metrics::counter!("keel_idempotency_swept_total").increment(deleted);
                        tracing::debug!(count = deleted, "expired idempotency records deleted");
                    }
                    if deleted < BATCH as u64 {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "idempotency sweep failed");
                    break;
                }
            }
        }
    }
}
