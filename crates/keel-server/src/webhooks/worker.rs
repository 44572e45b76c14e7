//! The inbox worker: claims due events (each by one node only), applies them, retries
//! failures with exponential backoff and dead-letters an event after
//! `KEEL_INBOX_MAX_ATTEMPTS` failures or at once when it can never apply.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use keel_store::{InboxEvent, InboxResolution, ResolveOutcome};
use tokio::sync::{watch, Notify};

use crate::AppState;

/// How long a claim lasts; a worker that dies mid-event leaves it due again after this.
const CLAIM: TimeDelta = TimeDelta::seconds(60);

/// Events one claim takes.
const BATCH: i64 = 20;

fn bell() -> &'static Notify {
    static BELL: OnceLock<Notify> = OnceLock::new();
    BELL.get_or_init(Notify::new)
}

/// Tells this process's workers an event arrived, so they need not wait for the next poll.
pub fn wake() {
    bell().notify_waiters();
}

/// Runs until `stop` turns true.
pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    let poll = state
        .settings()
        .webhooks
        .poll_interval
        .max(Duration::from_millis(10));
    loop {
        while let Ok(n) = drain(&state).await {
            if n == 0 {
                break;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = bell().notified() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Claims and applies one batch of due events; how many there were.
pub async fn drain(state: &AppState) -> Result<usize, keel_store::StoreError> {
    let now = Utc::now();
    let events = state
        .store()
        .claim_inbox_events(now, now + CLAIM, BATCH)
        .await
        .inspect_err(|e| tracing::warn!(error = %e, "cannot claim webhook events"))?;
    let n = events.len();
    for event in events {
        process(state, event).await;
    }
    Ok(n)
}

async fn process(state: &AppState, event: InboxEvent) {
    let cfg = &state.settings().webhooks;
    let resolution = match super::apply::decide(state, &event).await {
        Ok(r) => r,
        Err(failure) => {
            let exhausted = event.attempts >= cfg.max_attempts;
            let retry_at = (!failure.permanent && !exhausted).then(|| {
                let delay = TimeDelta::from_std(cfg.backoff(event.attempts)).unwrap_or(CLAIM);
                Utc::now() + delay
            });
            InboxResolution::Fail {
                error: failure.reason,
                retry_at,
            }
        }
    };
    let label = match &resolution {
        InboxResolution::Change(_) => "changed",
        InboxResolution::Link { .. } => "linked",
        InboxResolution::Ignore { .. } => "ignored",
        InboxResolution::Fail {
            retry_at: Some(_), ..
        } => "retry",
        InboxResolution::Fail { retry_at: None, .. } => "dead",
    };
    if let InboxResolution::Fail { error, retry_at } = &resolution {
        tracing::warn!(id = %event.id, provider = %event.provider, attempts = event.attempts,
            dead = retry_at.is_none(), reason = %error, "webhook event not applied");
    }
    let customer = super::customer::customer_of(&event, &resolution);
    match state
        .store()
        .resolve_inbox_event(event.id, event.attempts, resolution, Utc::now())
        .await
    {
        Ok(outcome) => {
            if let Some(customer) = customer.filter(|_| outcome != ResolveOutcome::LostClaim) {
                super::customer::record(state, customer).await;
            }
            let label = if outcome == ResolveOutcome::Stale {
                "stale"
            } else {
                label
            };
            metrics::counter!("keel_webhook_events_processed_total",
                "provider" => provider_label(&event.provider), "outcome" => label)
            .increment(1);
            tracing::info!(id = %event.id, provider = %event.provider, outcome = label, "webhook event processed");
        }
        // The event stays claimed; it is due again when the claim lapses.
        Err(e) => tracing::warn!(id = %event.id, error = %e, "cannot record a webhook outcome"),
    }
}

/// A bounded label: one of the known providers.
fn provider_label(provider: &str) -> &'static str {
    keel_core::webhooks::PROVIDERS
        .into_iter()
        .find(|p| *p == provider)
        .unwrap_or("other")
}
