//! Service routes for the product's workers: compare-and-set transitions (and, merged from
//! `append_route`, event appends).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use keel_core::jobs::check_transition;
use keel_core::manifest::Actor;
use keel_store::jobs::JobRecord;
use keel_store::TenantScope;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::append_route::check_size;
use super::service::{self, Move, Moved};
use super::{job_error, job_not_found, job_type, parse_job_id, JobOut};
use crate::http::error::ErrorEnvelope;
use crate::integrity::ServiceCaller;
use crate::{ApiError, ApiJson, AppState, RequestId};

/// The service job routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(transition_job))
        .merge(super::append_route::router())
}

pub(crate) async fn locate(
    state: &AppState,
    id: &str,
) -> Result<(JobRecord, TenantScope), ApiError> {
    let id = parse_job_id(id)?;
    let job = state
        .store()
        .locate_job(id)
        .await?
        .ok_or_else(job_not_found)?;
    let scope = TenantScope::new(job.tenant_id);
    Ok((job, scope))
}

/// A transition by the product's worker.
#[derive(Deserialize, ToSchema)]
pub struct TransitionIn {
    /// Target state.
    pub to: String,
    /// The `version` the worker last read; a different current version is a 409.
    pub expected_version: i64,
    /// Recorded reason (default: the transition's own).
    pub reason: Option<String>,
    /// Extra data for the `state_change` event.
    #[schema(value_type = Object)]
    pub data: Option<Value>,
}

/// Moves a job (`by = "service"` transitions), compare-and-set on `expected_version`.
#[utoipa::path(post, path = "/v1/service/jobs/{id}/transition", tag = "jobs", operation_id = "v1.service.jobs.transition",
    params(("id" = String, Path, description = "Job id")), request_body = TransitionIn, security(("service" = [])),
    responses((status = 200, body = JobOut), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn transition_job(
    State(state): State<AppState>,
    caller: ServiceCaller,
    request_id: Option<Extension<RequestId>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TransitionIn>,
) -> Result<Json<JobOut>, ApiError> {
    let (job, scope) = locate(&state, &id).await?;
    if body
        .reason
        .as_ref()
        .is_some_and(|r| r.is_empty() || r.len() > 128)
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_reason",
            "reason must be 1 to 128 characters",
        )
        .with_details(json!({"field": "reason"})));
    }
    let data = body.data.unwrap_or(Value::Null);
    check_size(&state, &data)?;
    let jt = job_type(&state, &job.job_type)?;
    if job.version != body.expected_version && job.finished_at.is_none() {
        return Err(super::version_conflict(&job));
    }
    let t =
        check_transition(jt, &job.state, &body.to, Actor::Service).map_err(|e| job_error(&e))?;
    let mv = Move {
        to: body.to,
        reason: body.reason.or_else(|| t.reason.clone()),
        data,
        by: Actor::Service,
        actor: caller.key_id,
        expected_version: body.expected_version,
        fires: None,
        resume_state: None,
        heartbeat: false,
        request_id: request_id.map(|Extension(RequestId(r))| r),
    };
    match service::apply(&state, &scope, jt, &job, mv).await? {
        Moved::Done(done) => Ok(Json(JobOut::from(&done.0))),
        Moved::TimerGone => Err(ApiError::internal("a service transition fired no timer")),
    }
}
