//! The delivery worker, on every node: claims due deliveries (each claim goes to one node),
//! attempts them concurrently, records every attempt, and reports endpoints disabled for
//! failing too long. Time comes from a [`Clock`], so tests drive the retry schedule.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use futures::future::join_all;
use keel_store::{DeliveryStatus, DueDelivery, DynStore, NewAuditEvent, StoreResult, TenantScope};
use serde_json::json;
use tokio::sync::watch;

use super::clock::Clock;
use super::{deliver, WebhookSettings};

/// Most claim rounds one [`Worker::run_once`] makes, so a flood cannot starve shutdown.
const MAX_ROUNDS: usize = 64;

/// Delivers outbound webhooks.
#[derive(Clone)]
pub struct Worker {
    store: DynStore,
    clock: Arc<dyn Clock>,
    client: reqwest::Client,
    settings: WebhookSettings,
}

impl Worker {
    /// A worker on `store` with its own HTTP client.
    pub fn new(store: DynStore, clock: Arc<dyn Clock>, settings: WebhookSettings) -> Self {
        Self {
            client: deliver::client(settings.timeout),
            store,
            clock,
            settings,
        }
    }

    /// Attempts everything due now; returns how many attempts were made.
    pub async fn run_once(&self) -> StoreResult<usize> {
        let mut made = 0;
        for _ in 0..MAX_ROUNDS {
            let now = self.clock.now();
            let lease = self.settings.timeout + Duration::from_secs(30);
            let lease_until = now + TimeDelta::from_std(lease).unwrap_or(TimeDelta::minutes(6));
            let due = self
                .store
                .claim_deliveries(now, lease_until, self.settings.batch)
                .await?;
            if due.is_empty() {
                break;
            }
            let results = join_all(due.iter().map(|d| self.attempt(d))).await;
            for result in results {
                result?;
                made += 1;
            }
        }
        Ok(made)
    }

    async fn attempt(&self, d: &DueDelivery) -> StoreResult<()> {
        let now = self.clock.now();
        let result = deliver::attempt(&self.client, d, now, self.settings.max_recorded_body).await;
        let outcome_label = if result.succeeded {
            "succeeded"
        } else {
            "failed"
        };
        metrics::counter!("keel_webhook_attempts_total", "outcome" => outcome_label).increment(1);
        metrics::histogram!("keel_webhook_attempt_seconds")
            .record(result.latency_ms as f64 / 1000.0);
        let outcome = self.store.record_attempt(d, result).await?;
        if outcome.status == DeliveryStatus::Dead && outcome.recorded {
            metrics::counter!("keel_webhook_deliveries_dead_total").increment(1);
            tracing::warn!(message_id = %d.message.id, endpoint_id = %d.endpoint_id,
                "webhook delivery dead after its last scheduled attempt");
        }
        if outcome.endpoint_disabled {
            self.report_disabled(d).await;
        }
        Ok(())
    }

    async fn report_disabled(&self, d: &DueDelivery) {
        metrics::counter!("keel_webhook_endpoints_disabled_total").increment(1);
        tracing::warn!(
            event = "webhook.endpoint_disabled",
            endpoint_id = %d.endpoint_id,
            "webhook.endpoint_disabled: every attempt failed for 5 days; endpoint disabled"
        );
        let Ok(Some(tenant)) = self.store.endpoint_tenant(d.endpoint_id).await else {
            return;
        };
        let event = NewAuditEvent {
            actor: "system".into(),
            action: "webhook.endpoint_disabled".into(),
            target: Some(d.endpoint_id.to_string()),
            request_id: None,
            data: json!({"reason": "failing", "last_message_id": d.message.id.to_string()}),
        };
        if let Err(e) = self
            .store
            .append_audit(&TenantScope::new(tenant), event)
            .await
        {
            tracing::error!(error = %e, "cannot audit a disabled webhook endpoint");
        }
    }

    /// Runs until `stop` turns true, polling every `poll_interval` when idle.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, "webhook delivery round failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}
