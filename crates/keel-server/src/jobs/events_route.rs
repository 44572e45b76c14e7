//! The event read routes: the JSON page / SSE stream of a job's events (the owner's token
//! or a viewer token) and the viewer-token issuer.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use keel_store::TenantScope;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::routes::{owned, page_limit};
use super::{job_not_found, parse_job_id, viewer, JobEventOut};
use crate::http::error::ErrorEnvelope;
use crate::identity::AuthUser;
use crate::{ApiError, AppState};

/// The event routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_job_events))
        .routes(routes!(create_viewer_token))
}

/// A viewer token for one job's events.
#[derive(Serialize, ToSchema)]
pub struct ViewerTokenOut {
    /// Pass as `?viewer_token=` on `GET /v1/jobs/{id}/events`.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: i64,
}

/// Issues a short-lived token that reads this job's events (JSON or SSE) without the
/// owner's credentials: for a page or device that should only watch one job.
#[utoipa::path(post, path = "/v1/jobs/{id}/viewer-token", tag = "jobs", operation_id = "v1.jobs.viewer_token",
    params(("id" = String, Path, description = "Job id")), security(("bearer" = [])),
    responses((status = 201, body = ViewerTokenOut), (status = 404, body = ErrorEnvelope)))]
async fn create_viewer_token(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<ViewerTokenOut>), ApiError> {
    user.require_scope("jobs")?;
    let job = owned(&state, &user, &id).await?;
    let (token, expires_in) = viewer::issue(
        state.identity().keys(),
        user.token.tenant,
        job.id,
        state.job_clock().now(),
    )?;
    metrics::counter!("keel_job_viewer_tokens_issued_total").increment(1);
    Ok((
        StatusCode::CREATED,
        Json(ViewerTokenOut { token, expires_in }),
    ))
}

/// Cursor of an event page.
#[derive(Deserialize, IntoParams)]
pub struct EventsQuery {
    /// Events after this sequence number (default 0: from the start).
    pub after: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<String>,
    /// A viewer token for this job, instead of the owner's credentials.
    pub viewer_token: Option<String>,
}

/// A page of a job's events.
#[derive(Serialize, ToSchema)]
pub struct EventPage {
    /// The events, in sequence order.
    pub data: Vec<JobEventOut>,
    /// Pass as `after` for the next page.
    pub next_after: i64,
    /// Whether the job has finished (no more events will follow).
    pub finished: bool,
}

/// The job's user-visible events after a sequence number: a JSON page (for clients that
/// poll), or with `Accept: text/event-stream` a live SSE stream (`id:` = seq, `event:` =
/// type, `data:` = the event as JSON) resumable with `Last-Event-ID`, ending with
/// `event: end` once the job is terminal.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "jobs", operation_id = "v1.jobs.events",
    params(("id" = String, Path, description = "Job id"), EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume a stream after this seq")),
    security(("bearer" = []), ()),
    responses((status = 200, body = EventPage, content_type = "application/json"),
        (status = 200, body = String, content_type = "text/event-stream", description = "Live stream"),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn list_job_events(
    State(state): State<AppState>,
    user: Result<AuthUser, ApiError>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    let (scope, job) = match q.viewer_token.as_deref() {
        Some(token) => {
            let job_id = parse_job_id(&id)?;
            let tenant = viewer::verify(
                state.identity().keys(),
                token,
                job_id,
                state.job_clock().now(),
            )
            .await?;
            let scope = TenantScope::new(tenant);
            let job = state.store().find_job(&scope, job_id).await?;
            (scope, job.ok_or_else(job_not_found)?)
        }
        None => {
            let user = user?;
            user.require_scope("jobs")?;
            (user.scope(), owned(&state, &user, &id).await?)
        }
    };
    let last_event_id = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("-").trim().to_owned());
    let after = match last_event_id.as_deref().or(q.after.as_deref()) {
        None => 0,
        Some(v) => v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_cursor",
                "after (or Last-Event-ID) must be a sequence number",
            )
            .with_details(json!({"field": "after"}))
        })?,
    };
    let wants_stream = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if wants_stream {
        return Ok(super::stream::open(state.clone(), scope, job.id, after));
    }
    let limit = match q.limit.as_deref() {
        None => 100,
        raw => page_limit(raw, 1000)?,
    };
    let events = state
        .store()
        .job_events(&scope, job.id, after, limit, true)
        .await?;
    let next_after = events.last().map_or(after, |e| e.seq);
    Ok(Json(EventPage {
        data: events.iter().map(JobEventOut::from).collect(),
        next_after,
        finished: job.finished_at.is_some(),
    })
    .into_response())
}
