//! The rules of jobs: creating one (entitlement, billing, concurrency, dedupe) and moving
//! one (checks in keel-core, the compare-and-set write in the store, billing hooks after,
//! audit and metrics), shared by user actions, service transitions, timers and heartbeats.

use axum::http::StatusCode;
use keel_core::ids::{JobId, UserId};
use keel_core::jobs::{enter, BillingAction, EntryFacts, TimerKind, TimerSpec};
use keel_core::manifest::{Actor, ConcurrencyScope, JobType};
use keel_store::jobs::{
    ConcurrencyCap, CreateOutcome, JobEvent, JobRecord, NewJob, NewTimer, TransitionOutcome,
    TransitionWrite,
};
use keel_store::{NewAuditEvent, TenantScope};
use serde_json::{json, Value};

use super::{billing, version_conflict};
use crate::billing::plan_for;
use crate::{ApiError, AppState};

/// A create request, validated by the route.
pub struct CreateJob {
    /// The owner.
    pub user: UserId,
    /// The job type.
    pub job_type: String,
    /// The input.
    pub input: Value,
    /// Dedupe key.
    pub idempotency_key: Option<String>,
    /// The request, for the audit log.
    pub request_id: Option<String>,
}

fn timers(specs: &[TimerSpec]) -> Vec<NewTimer> {
    specs
        .iter()
        .map(|t| NewTimer {
            kind: t.kind,
            fire_at: t.fire_at,
        })
        .collect()
}

fn unknown_job_type(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_job_type",
        format!("the manifest declares no job type named {name}"),
    )
    .with_details(json!({"field": "type"}))
}

/// The concurrency partition value: the input's `key` field as text.
fn partition(job_type: &JobType, input: &Value) -> Result<Option<String>, ApiError> {
    let Some(key) = job_type.concurrency.as_ref().and_then(|c| c.key.as_deref()) else {
        return Ok(None);
    };
    match input.get(key) {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 255 => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        _ => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            format!("input.{key} is required: a non-empty string (1 to 255 bytes) or a number"),
        )
        .with_details(json!({"field": format!("input.{key}")}))),
    }
}

/// Refuses a job type whose `feature` the user's plan does not grant.
async fn check_feature(
    state: &AppState,
    scope: &TenantScope,
    job_type: &JobType,
    user: UserId,
) -> Result<(), ApiError> {
    let Some(feature) = &job_type.feature else {
        return Ok(());
    };
    let choice = plan_for(
        state.store(),
        state.manifest(),
        scope,
        user,
        chrono::Utc::now(),
    )
    .await?;
    let granted = state
        .manifest()
        .plans
        .get(&choice.plan)
        .is_some_and(|p| p.has_feature(feature));
    if granted {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "feature_not_in_plan",
        format!("your plan does not include {feature}"),
    )
    .with_details(json!({"feature": feature, "plan": choice.plan})))
}

/// Creates a job, or returns the one the idempotency key already made (`true`).
pub async fn create(
    state: &AppState,
    scope: &TenantScope,
    req: CreateJob,
) -> Result<(JobRecord, bool), ApiError> {
    let job_type = state
        .manifest()
        .jobs
        .get(&req.job_type)
        .ok_or_else(|| unknown_job_type(&req.job_type))?;
    let concurrency_key = partition(job_type, &req.input)?;
    check_feature(state, scope, job_type, req.user).await?;
    let id = JobId::new();
    let now = state.job_clock().now();
    let entry = enter(
        job_type,
        EntryFacts {
            from: None,
            to: &job_type.initial,
            reason: None,
            reserved: false,
            committed: false,
            now,
        },
    );
    let reserve_now = job_type
        .billing
        .as_ref()
        .is_some_and(|b| b.reserve_on == keel_core::manifest::ReserveOn::Create);
    let reservation = if reserve_now {
        // Keyed by the new job id: a repeated create holds a second reservation until the
        // store answers with the existing job, then returns it.
        billing::reserve(state, scope, job_type, req.user, &format!("job:{id}")).await?
    } else {
        None
    };
    let new = NewJob {
        id,
        user_id: req.user,
        job_type: req.job_type.clone(),
        state: job_type.initial.clone(),
        input: req.input,
        idempotency_key: req.idempotency_key,
        concurrency_key,
        cap: job_type.concurrency.as_ref().map(|c| ConcurrencyCap {
            max: c.max,
            per_user: c.scope == ConcurrencyScope::User,
        }),
        reservation_id: reservation,
        timers: timers(&entry.timers),
        event_data: json!({"from": null, "to": job_type.initial, "reason": null, "by": "user"}),
        at: now,
    };
    match state.store().create_job(scope, new).await {
        Ok(CreateOutcome::Created(job)) => {
            audit(
                state,
                scope,
                &job,
                &req.user.to_string(),
                "job.created",
                req.request_id,
            )
            .await;
            metrics::counter!("keel_jobs_created_total", "type" => job.job_type.clone())
                .increment(1);
            Ok((job, false))
        }
        Ok(CreateOutcome::Existing(job)) => {
            billing::release(state, scope, reservation).await?;
            Ok((job, true))
        }
        Ok(CreateOutcome::AtCapacity { active }) => {
            billing::release(state, scope, reservation).await?;
            let max = job_type.concurrency.as_ref().map_or(0, |c| c.max);
            Err(ApiError::new(
                StatusCode::CONFLICT,
                "concurrency_limit",
                format!("{active} active jobs of this type already run (at most {max})"),
            )
            .with_details(json!({"active": active, "max": max})))
        }
        Err(e) => {
            billing::release(state, scope, reservation).await?;
            Err(e.into())
        }
    }
}

/// A move of a job, already checked against the manifest by the caller.
pub struct Move {
    /// Target state.
    pub to: String,
    /// Recorded reason.
    pub reason: Option<String>,
    /// Extra data on the `state_change` event.
    pub data: Value,
    /// Who moves it.
    pub by: Actor,
    /// Actor id for the audit log (user id, service key id, `system`).
    pub actor: String,
    /// The version the move was computed from.
    pub expected_version: i64,
    /// A timer this move fires.
    pub fires: Option<TimerKind>,
    /// Where a heartbeat returns (entering the lost state).
    pub resume_state: Option<String>,
    /// Whether a heartbeat caused it.
    pub heartbeat: bool,
    /// The request, for the audit log.
    pub request_id: Option<String>,
}

/// What a move did.
pub enum Moved {
    /// Written.
    Done(Box<(JobRecord, JobEvent)>),
    /// The timer it fires is gone (another node fired it).
    TimerGone,
}

fn actor_name(by: Actor) -> &'static str {
    match by {
        Actor::User => "user",
        Actor::Service => "service",
        Actor::System => "system",
    }
}

/// Moves a job: billing reserve before, the atomic write, commit or release after.
pub async fn apply(
    state: &AppState,
    scope: &TenantScope,
    job_type: &JobType,
    job: &JobRecord,
    mv: Move,
) -> Result<Moved, ApiError> {
    let now = state.job_clock().now();
    let committed = billing::committed(state, scope, job).await?;
    let mut facts = EntryFacts {
        from: Some(&job.state),
        to: &mv.to,
        reason: mv.reason.as_deref(),
        reserved: job.reservation_id.is_some(),
        committed,
        now,
    };
    let mut entry = enter(job_type, facts);
    let mut reserved = None;
    if entry.billing == BillingAction::Reserve {
        reserved = billing::reserve(
            state,
            scope,
            job_type,
            job.user_id,
            &format!("job:{}", job.id),
        )
        .await?;
        facts.reserved = reserved.is_some();
        entry = enter(job_type, facts);
    }
    let write = TransitionWrite {
        job_id: job.id,
        expected_version: mv.expected_version,
        to: mv.to.clone(),
        reason: mv.reason.clone(),
        event_data: json!({
            "from": job.state, "to": mv.to, "reason": mv.reason, "by": actor_name(mv.by),
            "data": mv.data,
        }),
        finished: entry.terminal,
        resume_state: mv.resume_state.clone(),
        reservation_id: reserved,
        timers: timers(&entry.timers),
        fires: mv.fires,
        heartbeat: mv.heartbeat,
        at: now,
    };
    let (after, event) = match state.store().transition_job(scope, write).await {
        Ok(TransitionOutcome::Done { job, event }) => (job, event),
        Ok(TransitionOutcome::Stale(current)) => {
            billing::release(state, scope, reserved).await?;
            return Err(version_conflict(&current));
        }
        Ok(TransitionOutcome::TimerGone) => {
            billing::release(state, scope, reserved).await?;
            return Ok(Moved::TimerGone);
        }
        Err(e) => {
            billing::release(state, scope, reserved).await?;
            return Err(e.into());
        }
    };
    state.job_notifier().notify(after.id);
    settle(state, scope, job_type, &after, entry.billing).await;
    metrics::counter!("keel_jobs_transitions_total", "type" => after.job_type.clone(), "to" => after.state.clone())
        .increment(1);
    let action = format!("job.transition.{}", actor_name(mv.by));
    audit(state, scope, &after, &mv.actor, &action, mv.request_id).await;
    Ok(Moved::Done(Box::new((after, event))))
}

/// Billing after a durable transition: failures are logged, never undo the move (an
/// uncommitted reservation expires and is released by the sweeper).
async fn settle(
    state: &AppState,
    scope: &TenantScope,
    job_type: &JobType,
    job: &JobRecord,
    action: BillingAction,
) {
    let result = match action {
        BillingAction::Commit => billing::commit(state, scope, job_type, job).await,
        BillingAction::Release => billing::release(state, scope, job.reservation_id).await,
        BillingAction::Refund => billing::refund(state, scope, job).await,
        BillingAction::Reserve | BillingAction::None => Ok(()),
    };
    if let Err(e) = result {
        tracing::error!(job = %job.id, error = %e, "job billing hook failed");
    }
}

async fn audit(
    state: &AppState,
    scope: &TenantScope,
    job: &JobRecord,
    actor: &str,
    action: &str,
    request_id: Option<String>,
) {
    let event = NewAuditEvent {
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: Some(job.id.to_string()),
        request_id,
        data: json!({"type": job.job_type, "state": job.state, "version": job.version,
                     "reason": job.reason}),
    };
    if let Err(e) = state.store().append_audit(scope, event).await {
        tracing::error!(job = %job.id, error = %e, "cannot append the job audit event");
    }
}
