//! The timer loop, on every node: claim due timers (each claim is exclusive while its lease
//! lives) and fire them. Firing is a transition that consumes the timer in the same
//! transaction, so a timer moves its job once even if two nodes fire it.

use std::time::Duration;

use keel_core::jobs::on_timer;
use keel_core::manifest::Actor;
use keel_store::jobs::DueTimer;
use keel_store::TenantScope;
use serde_json::json;
use tokio::sync::watch;

use super::service::{self, Move, Moved};
use crate::{ApiError, AppState};

/// How long a claim protects a timer from other nodes.
const LEASE: Duration = Duration::from_secs(30);
/// Timers claimed per round.
const BATCH: i64 = 100;

/// Fires due timers every `interval` until `stop` turns true; a restarted node fires
/// overdue timers on its first round.
pub async fn run(state: AppState, interval: Duration, mut stop: watch::Receiver<bool>) {
    let owner = format!("node-{}", uuid::Uuid::now_v7().simple());
    loop {
        loop {
            match fire_due(&state, &owner).await {
                Ok(n) if n as i64 == BATCH => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "job timer round failed");
                    break;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Claims and fires one batch; returns how many timers were claimed.
pub async fn fire_due(state: &AppState, owner: &str) -> Result<usize, ApiError> {
    let now = state.job_clock().now();
    let lease = chrono::TimeDelta::from_std(LEASE).unwrap_or_default();
    let due = state
        .store()
        .claim_due_timers(owner, now, now + lease, BATCH)
        .await?;
    for timer in &due {
        if let Err(e) = fire(state, timer).await {
            tracing::warn!(job = %timer.job_id, kind = timer.kind.as_str(), error = %e, "job timer did not fire");
        }
    }
    Ok(due.len())
}

async fn fire(state: &AppState, timer: &DueTimer) -> Result<(), ApiError> {
    let scope = TenantScope::new(timer.tenant_id);
    let Some(job) = state.store().find_job(&scope, timer.job_id).await? else {
        return Ok(());
    };
    let jt = state.manifest().jobs.get(&job.job_type);
    let fire = jt.and_then(|jt| on_timer(jt, timer.kind, &timer.state, &job.state));
    let (Some(jt), Some(fire)) = (jt, fire) else {
        // The job left the state, or the manifest no longer declares the timer.
        state
            .store()
            .discard_timer(&scope, job.id, timer.kind)
            .await?;
        return Ok(());
    };
    let mv = Move {
        to: fire.to,
        reason: Some(fire.reason),
        data: json!({"timer": timer.kind.as_str()}),
        by: Actor::System,
        actor: "system".into(),
        expected_version: job.version,
        fires: Some(timer.kind),
        resume_state: fire.resume_state,
        heartbeat: false,
        request_id: None,
    };
    if let Moved::Done(..) = service::apply(state, &scope, jt, &job, mv).await? {
        metrics::counter!("keel_jobs_timers_fired_total", "kind" => timer.kind.as_str())
            .increment(1);
    }
    Ok(())
}
