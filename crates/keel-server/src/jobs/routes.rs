//! Client routes: create, list, get, cancel, heartbeat, user actions, and the JSON event page.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use keel_core::jobs::{check_action, on_heartbeat, HeartbeatAction};
use keel_core::manifest::Actor;
use keel_store::jobs::{HeartbeatOutcome, HeartbeatWrite, JobQuery, JobRecord, NewTimer};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::service::{self, CreateJob, Move, Moved};
use super::{job_error, job_finished, job_not_found, job_type, parse_job_id, JobOut};
use crate::http::error::ErrorEnvelope;
use crate::identity::AuthUser;
use crate::{ApiError, ApiJson, AppState, RequestId};

/// The client job routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_job, list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(cancel_job))
        .routes(routes!(heartbeat_job))
        .routes(routes!(job_action))
        .merge(super::events_route::router())
}

/// A job to create.
#[derive(Deserialize, ToSchema)]
pub struct JobIn {
    /// A job type of the manifest.
    #[serde(rename = "type")]
    pub job_type: String,
    /// Input for the product's worker (an object; default `{}`).
    #[schema(value_type = Object)]
    pub input: Option<Value>,
    /// Dedupe key (the `Idempotency-Key` header is used when absent).
    pub idempotency_key: Option<String>,
}

fn rid(id: Option<Extension<RequestId>>) -> Option<String> {
    id.map(|Extension(RequestId(r))| r)
}

fn invalid(code: &'static str, field: &str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message.to_owned())
        .with_details(json!({"field": field}))
}

/// Creates a job in its initial state (200 with the existing job on a repeated key).
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", operation_id = "v1.jobs.create",
    request_body = JobIn, security(("bearer" = [])),
    responses((status = 201, body = JobOut), (status = 200, body = JobOut),
        (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope)))]
async fn create_job(
    State(state): State<AppState>,
    user: AuthUser,
    request_id: Option<Extension<RequestId>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<JobIn>,
) -> Result<Response, ApiError> {
    user.require_scope("jobs")?;
    let input = body.input.unwrap_or_else(|| json!({}));
    if !input.is_object() {
        return Err(invalid(
            "invalid_input",
            "input",
            "input must be a JSON object",
        ));
    }
    let header = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let key = body.idempotency_key.or(header);
    if key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 255) {
        return Err(invalid(
            "invalid_idempotency_key",
            "idempotency_key",
            "idempotency_key must be 1 to 255 characters",
        ));
    }
    let req = CreateJob {
        user: user.token.user,
        job_type: body.job_type,
        input,
        idempotency_key: key,
        request_id: rid(request_id),
    };
    let (job, existed) = service::create(&state, &user.scope(), req).await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(JobOut::from(&job))).into_response())
}

/// Filters and cursor of a job listing.
#[derive(Deserialize, IntoParams)]
pub struct ListQuery {
    /// Only this job type.
    #[serde(rename = "type")]
    pub job_type: Option<String>,
    /// Only this state.
    pub state: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<String>,
}

/// A page of jobs, newest first.
#[derive(Serialize, ToSchema)]
pub struct JobPage {
    /// The jobs.
    pub data: Vec<JobOut>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

fn invalid_cursor() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_cursor",
        "the cursor is malformed",
    )
    .with_details(json!({"field": "cursor"}))
}

pub(crate) fn page_limit(raw: Option<&str>, max: i64) -> Result<i64, ApiError> {
    match raw {
        None => Ok(20.min(max)),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                invalid(
                    "invalid_limit",
                    "limit",
                    &format!("limit must be 1 to {max}"),
                )
            }),
    }
}

/// The caller's jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", operation_id = "v1.jobs.list",
    params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = JobPage), (status = 400, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn list_jobs(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<ListQuery>,
) -> Result<Json<JobPage>, ApiError> {
    user.require_scope("jobs")?;
    let limit = page_limit(q.limit.as_deref(), 100)?;
    let before = q
        .cursor
        .as_deref()
        .map(|c| c.parse().map_err(|_| invalid_cursor()))
        .transpose()?;
    let query = JobQuery {
        user_id: Some(user.token.user),
        job_type: q.job_type,
        state: q.state,
        before,
        limit,
    };
    let jobs = state.store().list_jobs(&user.scope(), &query).await?;
    let next_cursor = (jobs.len() as i64 == limit)
        .then(|| jobs.last().map(|j| j.id.to_string()))
        .flatten();
    Ok(Json(JobPage {
        data: jobs.iter().map(JobOut::from).collect(),
        next_cursor,
    }))
}

/// The caller's job, or 404 (another user's or tenant's job is not found).
pub(crate) async fn owned(
    state: &AppState,
    user: &AuthUser,
    id: &str,
) -> Result<JobRecord, ApiError> {
    let id = parse_job_id(id)?;
    let job = state.store().find_job(&user.scope(), id).await?;
    job.filter(|j| j.user_id == user.token.user)
        .ok_or_else(job_not_found)
}

/// One job.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", operation_id = "v1.jobs.get",
    params(("id" = String, Path, description = "Job id")), security(("bearer" = [])),
    responses((status = 200, body = JobOut), (status = 404, body = ErrorEnvelope)))]
async fn get_job(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<JobOut>, ApiError> {
    user.require_scope("jobs")?;
    Ok(Json(JobOut::from(&owned(&state, &user, &id).await?)))
}

async fn take_action(
    state: &AppState,
    user: &AuthUser,
    id: &str,
    action: &str,
    request_id: Option<String>,
) -> Result<Json<JobOut>, ApiError> {
    user.require_scope("jobs")?;
    let job = owned(state, user, id).await?;
    let jt = job_type(state, &job.job_type)?;
    let t = check_action(jt, &job.state, action).map_err(|e| job_error(&e))?;
    let mv = Move {
        to: t.to.clone(),
        reason: t.reason.clone().or_else(|| Some(action.to_owned())),
        data: json!({"action": action}),
        by: Actor::User,
        actor: user.token.user.to_string(),
        expected_version: job.version,
        fires: None,
        resume_state: None,
        heartbeat: false,
        request_id,
    };
    match service::apply(state, &user.scope(), jt, &job, mv).await? {
        Moved::Done(done) => Ok(Json(JobOut::from(&done.0))),
        Moved::TimerGone => Err(ApiError::internal("a user action fired no timer")),
    }
}

/// Cancels the job: the job type's user action named `cancel`.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs", operation_id = "v1.jobs.cancel",
    params(("id" = String, Path, description = "Job id")), security(("bearer" = [])),
    responses((status = 200, body = JobOut), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn cancel_job(
    State(state): State<AppState>,
    user: AuthUser,
    request_id: Option<Extension<RequestId>>,
    Path(id): Path<String>,
) -> Result<Json<JobOut>, ApiError> {
    take_action(&state, &user, &id, "cancel", rid(request_id)).await
}

/// Takes a user action declared by the job type (`by = "user"` transitions).
#[utoipa::path(post, path = "/v1/jobs/{id}/actions/{action}", tag = "jobs", operation_id = "v1.jobs.action",
    params(("id" = String, Path, description = "Job id"), ("action" = String, Path, description = "Action name")),
    security(("bearer" = [])),
    responses((status = 200, body = JobOut), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn job_action(
    State(state): State<AppState>,
    user: AuthUser,
    request_id: Option<Extension<RequestId>>,
    Path((id, action)): Path<(String, String)>,
) -> Result<Json<JobOut>, ApiError> {
    take_action(&state, &user, &id, &action, rid(request_id)).await
}

/// Keeps the job alive; while its heartbeat is lost, moves it back to where it was.
#[utoipa::path(post, path = "/v1/jobs/{id}/heartbeat", tag = "jobs", operation_id = "v1.jobs.heartbeat",
    params(("id" = String, Path, description = "Job id")), security(("bearer" = [])),
    responses((status = 200, body = JobOut), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
async fn heartbeat_job(
    State(state): State<AppState>,
    user: AuthUser,
    request_id: Option<Extension<RequestId>>,
    Path(id): Path<String>,
) -> Result<Json<JobOut>, ApiError> {
    user.require_scope("jobs")?;
    let mut job = owned(&state, &user, &id).await?;
    // One retry: a transition racing the heartbeat moves the version once.
    for _ in 0..2 {
        if job.finished_at.is_some() {
            return Err(job_finished(&job));
        }
        let jt = job_type(&state, &job.job_type)?;
        let now = state.job_clock().now();
        match on_heartbeat(jt, &job.state, job.resume_state.as_deref(), now) {
            HeartbeatAction::Resume(back) => {
                let mv = Move {
                    to: back,
                    reason: Some("heartbeat_resumed".into()),
                    data: json!({}),
                    by: Actor::System,
                    actor: user.token.user.to_string(),
                    expected_version: job.version,
                    fires: None,
                    resume_state: None,
                    heartbeat: true,
                    request_id: rid(request_id.clone()),
                };
                if let Moved::Done(done) =
                    service::apply(&state, &user.scope(), jt, &job, mv).await?
                {
                    return Ok(Json(JobOut::from(&done.0)));
                }
            }
            HeartbeatAction::Rearm(specs) => {
                let write = HeartbeatWrite {
                    job_id: job.id,
                    expected_version: job.version,
                    timers: specs
                        .iter()
                        .map(|t| NewTimer {
                            kind: t.kind,
                            fire_at: t.fire_at,
                        })
                        .collect(),
                    at: now,
                };
                match state.store().heartbeat_job(&user.scope(), write).await? {
                    HeartbeatOutcome::Recorded(job) => return Ok(Json(JobOut::from(&job))),
                    HeartbeatOutcome::Stale(current) => job = current,
                }
            }
        }
    }
    Err(super::version_conflict(&job))
}
