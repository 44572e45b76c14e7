//! `POST /v1/service/jobs/{id}/events`: the product's worker appends one event, or a batch
//! of up to `job_event_batch_max` in one transaction with consecutive sequence numbers.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use keel_store::jobs::{BatchLimits, BatchOutcome, BatchRefusal, JobRecord, NewJobEvent};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::service_routes::locate;
use super::{job_finished, JobEventOut};
use crate::http::error::ErrorEnvelope;
use crate::integrity::ServiceCaller;
use crate::{ApiError, ApiJson, AppState};

/// The append route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(append_job_event))
}

/// An event appended by the product's worker.
#[derive(Deserialize, ToSchema)]
pub struct EventIn {
    /// Event type: 1 to 64 of `a-z 0-9 _ . -`; `state_change` is Keel's own.
    #[serde(rename = "type")]
    pub event_type: String,
    /// JSON data (at most the configured event size).
    #[schema(value_type = Object)]
    pub data: Option<Value>,
    /// Whether the job's owner may read it (default true).
    pub user_visible: Option<bool>,
}

/// A batch: appended in order, all or nothing.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct BatchIn {
    /// 1 to `job_event_batch_max` (default 1,000) events.
    pub events: Vec<EventIn>,
}

/// One event, or a batch (the schema; the handler decodes [`RawAppend`]).
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum AppendIn {
    /// One event; the answer is the appended event.
    One(EventIn),
    /// A batch; the answer is its range of sequence numbers.
    Batch(BatchIn),
}

/// What is decoded: one event's fields or `events`, never both.
#[derive(Deserialize)]
pub struct RawAppend {
    #[serde(rename = "type")]
    event_type: Option<String>,
    data: Option<Value>,
    user_visible: Option<bool>,
    events: Option<Vec<EventIn>>,
}

/// The sequence numbers a batch took: `first_seq..=last_seq`, consecutive.
#[derive(Serialize, ToSchema)]
pub struct BatchOut {
    /// The first event's sequence number.
    pub first_seq: i64,
    /// The last event's sequence number.
    pub last_seq: i64,
    /// Events appended.
    pub count: usize,
}

/// The answer: the event, or the batch's range.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum AppendOut {
    /// One event appended.
    One(JobEventOut),
    /// A batch appended.
    Batch(BatchOut),
}

pub(crate) fn check_size(state: &AppState, data: &Value) -> Result<(), ApiError> {
    let limit = state.settings().job_event_max_bytes;
    let size = serde_json::to_vec(data).map_or(usize::MAX, |v| v.len());
    if size > limit {
        return Err(too_large(None, size, limit));
    }
    Ok(())
}

fn too_large(index: Option<usize>, size: usize, limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "event_too_large",
        format!("event data is {size} bytes; the limit is {limit}"),
    )
    .with_details(json!({"size": size, "limit": limit, "index": index}))
}

fn valid_type(t: &str) -> bool {
    (1..=64).contains(&t.len())
        && t != "state_change"
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

fn invalid_batch(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_batch", message)
        .with_details(json!({"field": "events"}))
}

/// Checks one event's type; its size is checked by the store inside the transaction.
fn to_new(state: &AppState, index: Option<usize>, e: EventIn) -> Result<NewJobEvent, ApiError> {
    if !valid_type(&e.event_type) {
        let field = index.map_or("type".to_string(), |i| format!("events[{i}].type"));
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_event_type",
            "type must be 1 to 64 of a-z 0-9 _ . - and not state_change",
        )
        .with_details(json!({"field": field, "index": index})));
    }
    Ok(NewJobEvent {
        event_type: e.event_type,
        data: e.data.unwrap_or(Value::Null),
        user_visible: e.user_visible.unwrap_or(true),
        at: state.job_clock().now(),
    })
}

/// The events of a body and whether it was a batch.
fn events_of(state: &AppState, body: RawAppend) -> Result<(Vec<NewJobEvent>, bool), ApiError> {
    let Some(batch) = body.events else {
        let Some(event_type) = body.event_type else {
            return Err(invalid_batch("send one event (`type`, `data`) or `events`"));
        };
        let one = EventIn {
            event_type,
            data: body.data,
            user_visible: body.user_visible,
        };
        return Ok((vec![to_new(state, None, one)?], false));
    };
    if body.event_type.is_some() || body.data.is_some() || body.user_visible.is_some() {
        return Err(invalid_batch("send one event or `events`, not both"));
    }
    let max = state.settings().job_event_batch_max;
    if batch.is_empty() {
        return Err(invalid_batch("`events` is empty"));
    }
    if batch.len() > max {
        return Err(batch_too_large(batch.len(), max));
    }
    let events = batch
        .into_iter()
        .enumerate()
        .map(|(i, e)| to_new(state, Some(i), e))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((events, true))
}

fn batch_too_large(count: usize, limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "batch_too_large",
        format!("the batch has {count} events; the limit is {limit}"),
    )
    .with_details(json!({"count": count, "limit": limit}))
}

fn refused(refusal: BatchRefusal, batch: bool) -> ApiError {
    match refusal {
        BatchRefusal::Empty => invalid_batch("`events` is empty"),
        BatchRefusal::TooMany { count, max } => batch_too_large(count, max),
        BatchRefusal::TooLarge { index, size, max } => too_large(batch.then_some(index), size, max),
    }
}

fn appended(job: &JobRecord, events: &[keel_store::jobs::JobEvent], batch: bool) -> Response {
    metrics::counter!("keel_job_events_appended_total", "type" => job.job_type.clone())
        .increment(events.len() as u64);
    match (batch, events.first(), events.last()) {
        (false, Some(e), _) => (StatusCode::CREATED, Json(JobEventOut::from(e))).into_response(),
        (_, first, last) => {
            let out = BatchOut {
                first_seq: first.map_or(0, |e| e.seq),
                last_seq: last.map_or(0, |e| e.seq),
                count: events.len(),
            };
            (StatusCode::CREATED, Json(out)).into_response()
        }
    }
}

/// Appends one event, or a batch (`{"events": [...]}`, all or nothing, consecutive sequence
/// numbers, one wake-up for live streams), to a job's log.
#[utoipa::path(post, path = "/v1/service/jobs/{id}/events", tag = "jobs", operation_id = "v1.service.jobs.events.append",
    params(("id" = String, Path, description = "Job id")), request_body = AppendIn, security(("service" = [])),
    responses((status = 201, body = AppendOut, description = "The event, or the batch's range"),
        (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn append_job_event(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RawAppend>,
) -> Result<Response, ApiError> {
    let (job, scope) = locate(&state, &id).await?;
    let (events, batch) = events_of(&state, body)?;
    let limits = BatchLimits {
        max_events: state.settings().job_event_batch_max,
        max_event_bytes: state.settings().job_event_max_bytes,
    };
    match state
        .store()
        .append_job_events(&scope, job.id, events, limits)
        .await?
    {
        BatchOutcome::Appended(events) => {
            state.job_notifier().notify(job.id);
            Ok(appended(&job, &events, batch))
        }
        BatchOutcome::Finished => Err(job_finished(&job)),
        BatchOutcome::Refused(r) => Err(refused(r, batch)),
    }
}
