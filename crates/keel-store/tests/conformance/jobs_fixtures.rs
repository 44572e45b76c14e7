//! Jobs with fresh ids, and the writes tests make of them.

use chrono::{DateTime, Utc};
use keel_core::ids::{JobId, TenantId, UserId};
use keel_store::jobs::{
    CreateOutcome, JobRecord, NewJob, NewTimer, TimerKind, TransitionOutcome, TransitionWrite,
};
use keel_store::{DynStore, TenantScope};
use serde_json::json;

pub fn scope() -> TenantScope {
    TenantScope::new(TenantId::new())
}

pub fn new_job(user: UserId, at: DateTime<Utc>) -> NewJob {
    NewJob {
        id: JobId::new(),
        user_id: user,
        job_type: "build".into(),
        state: "queued".into(),
        input: json!({"project": "p1"}),
        idempotency_key: None,
        concurrency_key: None,
        cap: None,
        reservation_id: None,
        timers: Vec::new(),
        event_data: json!({"to": "queued"}),
        at,
    }
}

pub async fn created(store: &DynStore, scope: &TenantScope, job: NewJob) -> JobRecord {
    match store.create_job(scope, job).await.unwrap() {
        CreateOutcome::Created(job) => job,
        other => panic!("expected a created job, got {other:?}"),
    }
}

pub fn move_to(job: &JobRecord, to: &str, at: DateTime<Utc>) -> TransitionWrite {
    TransitionWrite {
        job_id: job.id,
        expected_version: job.version,
        to: to.into(),
        reason: None,
        event_data: json!({"from": job.state, "to": to}),
        finished: false,
        resume_state: None,
        reservation_id: None,
        timers: Vec::new(),
        fires: None,
        heartbeat: false,
        at,
    }
}

pub async fn moved(store: &DynStore, scope: &TenantScope, write: TransitionWrite) -> JobRecord {
    match store.transition_job(scope, write).await.unwrap() {
        TransitionOutcome::Done { job, .. } => job,
        other => panic!("expected a transition, got {other:?}"),
    }
}

pub fn timer(kind: TimerKind, at: DateTime<Utc>) -> NewTimer {
    NewTimer { kind, fire_at: at }
}
