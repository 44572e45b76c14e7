//! The billing hooks of a job type: reserve on create or start, commit at the checkpoint,
//! release when the job ends before it or for a non-billable reason, and reverse the
//! commit when a job that passed the checkpoint ends for a non-billable reason.

use axum::http::StatusCode;
use keel_core::ids::{ReservationId, UserId};
use keel_core::manifest::JobType;
use keel_store::jobs::JobRecord;
use keel_store::{ReservationStatus, ReverseOutcome, TenantScope};
use serde_json::json;

use crate::billing::reservations::{self, ReserveRequest, MAX_HOLD_SECS};
use crate::{ApiError, AppState};

/// Takes the job's reservation; the job id makes a retry reuse it.
pub(crate) async fn reserve(
    state: &AppState,
    scope: &TenantScope,
    job_type: &JobType,
    user: UserId,
    key: &str,
) -> Result<Option<ReservationId>, ApiError> {
    let Some(b) = &job_type.billing else {
        return Ok(None);
    };
    let (r, _) = reservations::reserve(
        state,
        scope,
        ReserveRequest {
            user,
            meter: &b.meter,
            amount: b.amount,
            idempotency_key: key,
            expires_in_secs: MAX_HOLD_SECS,
            reason: "job",
        },
    )
    .await?;
    Ok(Some(r.id))
}

/// Whether the job's reservation was already committed.
pub(crate) async fn committed(
    state: &AppState,
    scope: &TenantScope,
    job: &JobRecord,
) -> Result<bool, ApiError> {
    let Some(id) = job.reservation_id else {
        return Ok(false);
    };
    let r = state.store().get_reservation(scope, id).await?;
    Ok(r.status == ReservationStatus::Committed)
}

/// Commits the job's reservation at the job type's amount.
pub(crate) async fn commit(
    state: &AppState,
    scope: &TenantScope,
    job_type: &JobType,
    job: &JobRecord,
) -> Result<(), ApiError> {
    let (Some(b), Some(id)) = (&job_type.billing, job.reservation_id) else {
        return Ok(());
    };
    let source = json!({"job_id": job.id.to_string(), "state": job.state});
    reservations::commit(state, scope, id, b.amount, source).await?;
    Ok(())
}

/// Returns the reservation's hold.
pub(crate) async fn release(
    state: &AppState,
    scope: &TenantScope,
    id: Option<ReservationId>,
) -> Result<(), ApiError> {
    if let Some(id) = id {
        state.store().release(scope, id, chrono::Utc::now()).await?;
    }
    Ok(())
}

/// Reverses the committed reservation of a job that ended for a non-billable reason: a
/// compensating ledger entry gives the usage (and any prepaid money) back. Idempotent, so
/// a retried transition or a second node never refunds twice.
pub(crate) async fn refund(
    state: &AppState,
    scope: &TenantScope,
    job: &JobRecord,
) -> Result<(), ApiError> {
    let Some(id) = job.reservation_id else {
        return Ok(());
    };
    let reason = job.reason.as_deref().unwrap_or("non_billable");
    let now = chrono::Utc::now();
    match state.store().reverse_commit(scope, id, reason, now).await? {
        ReverseOutcome::Reversed(entry) => {
            metrics::counter!("keel_jobs_refunds_total", "type" => job.job_type.clone())
                .increment(1);
            tracing::info!(job = %job.id, entry = entry.id, reason, "job commit reversed");
            Ok(())
        }
        ReverseOutcome::Replayed(_) => Ok(()),
        ReverseOutcome::NotCommitted(status) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "reservation_not_committed",
            format!(
                "the job's reservation is {}, not committed",
                status.as_str()
            ),
        )),
    }
}
