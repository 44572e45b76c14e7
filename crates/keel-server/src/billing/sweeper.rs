//! Releases expired reservations in the background, on every node; the store makes each
//! expiry happen exactly once.

use std::time::Duration;

use chrono::Utc;
use keel_store::DynStore;
use tokio::sync::watch;

/// Sweeps every `interval` until `stop` turns true.
pub async fn run(store: DynStore, interval: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        loop {
            match store.expire_reservations(Utc::now(), 500).await {
                Ok(expired) => {
                    if expired.is_empty() {
                        break;
                    }
                    metrics::counter!("keel_reservations_expired_total")
                        .increment(expired.len() as u64);
                    tracing::info!(count = expired.len(), "expired reservations released");
                    if expired.len() < 500 {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reservation sweep failed");
                    break;
                }
            }
        }
    }
}
