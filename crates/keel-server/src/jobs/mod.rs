//! Jobs: manifest-defined state machines with durable timers, heartbeats, billing hooks and
//! an append-only event log. Rules in [`service`], HTTP in [`routes`] and
//! [`service_routes`], the timer loop in [`timers`].

mod append_route;
mod billing;
pub mod events_route;
pub mod notify;
pub mod retention;
pub mod routes;
pub mod service;
pub mod service_routes;
pub mod stream;
pub mod timers;
pub mod viewer;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use chrono::{DateTime, TimeDelta, Utc};
use keel_core::ids::JobId;
use keel_core::jobs::JobError;
use keel_core::manifest::JobType;
use keel_store::jobs::{JobEvent, JobRecord};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::{ApiError, AppState};

/// The jobs context's clock: the wall clock plus an offset tests can advance, so timers of
/// minutes fire without waiting minutes.
#[derive(Clone, Debug, Default)]
pub struct JobClock {
    offset_ms: Arc<AtomicI64>,
}

impl JobClock {
    /// Now, as the jobs context sees it.
    pub fn now(&self) -> DateTime<Utc> {
        let offset = TimeDelta::milliseconds(self.offset_ms.load(Ordering::Relaxed));
        Utc::now()
            .checked_add_signed(offset)
            .unwrap_or_else(Utc::now)
    }

    /// Moves this node's job clock forward (tests and drills).
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

/// A job as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct JobOut {
    /// `job_…`.
    pub id: String,
    /// The job type.
    #[serde(rename = "type")]
    pub job_type: String,
    /// The current state.
    pub state: String,
    /// The compare-and-set version for service transitions.
    pub version: i64,
    /// The owner.
    pub user_id: String,
    /// The input given at creation.
    #[schema(value_type = Object)]
    pub input: Value,
    /// The reason of the last transition.
    pub reason: Option<String>,
    /// Whether the job is in a terminal state.
    pub finished: bool,
    /// Sequence of the last event (resume event reads after it).
    pub last_seq: i64,
    /// The reservation held for the job, if any.
    pub reservation_id: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Last heartbeat.
    pub heartbeat_at: Option<DateTime<Utc>>,
}

impl From<&JobRecord> for JobOut {
    fn from(j: &JobRecord) -> Self {
        Self {
            id: j.id.to_string(),
            job_type: j.job_type.clone(),
            state: j.state.clone(),
            version: j.version,
            user_id: j.user_id.to_string(),
            input: j.input.clone(),
            reason: j.reason.clone(),
            finished: j.finished_at.is_some(),
            last_seq: j.last_seq,
            reservation_id: j.reservation_id.map(|r| r.to_string()),
            created_at: j.created_at,
            updated_at: j.updated_at,
            finished_at: j.finished_at,
            heartbeat_at: j.heartbeat_at,
        }
    }
}

/// One event of a job's log.
#[derive(Serialize, ToSchema)]
pub struct JobEventOut {
    /// Position in the log, from 1, without gaps.
    pub seq: i64,
    /// Event type (`state_change` for Keel's own).
    #[serde(rename = "type")]
    pub event_type: String,
    /// JSON data.
    #[schema(value_type = Object)]
    pub data: Value,
    /// Whether the owner can read it.
    pub user_visible: bool,
    /// When it was appended.
    pub created_at: DateTime<Utc>,
}

impl From<&JobEvent> for JobEventOut {
    fn from(e: &JobEvent) -> Self {
        Self {
            seq: e.seq,
            event_type: e.event_type.clone(),
            data: e.data.clone(),
            user_visible: e.user_visible,
            created_at: e.created_at,
        }
    }
}

/// The job type of a stored job; a type removed from the manifest reads as not found.
pub(crate) fn job_type<'a>(state: &'a AppState, name: &str) -> Result<&'a JobType, ApiError> {
    state
        .manifest()
        .jobs
        .get(name)
        .ok_or_else(ApiError::not_found)
}

pub(crate) fn parse_job_id(raw: &str) -> Result<JobId, ApiError> {
    raw.parse().map_err(|_| job_not_found())
}

pub(crate) fn job_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "job_not_found", "no such job")
}

pub(crate) fn job_error(e: &JobError) -> ApiError {
    let (status, details) = match e {
        JobError::TerminalState { state } => (StatusCode::CONFLICT, json!({"state": state})),
        JobError::InvalidTransition { from, to, allowed } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"from": from, "to": to, "allowed": allowed}),
        ),
        JobError::UnknownAction { action } => (StatusCode::NOT_FOUND, json!({"action": action})),
        JobError::ActionNotAllowed {
            action,
            from,
            allowed,
        } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"action": action, "from": from, "allowed_actions": allowed}),
        ),
    };
    ApiError::new(status, e.code(), e.to_string()).with_details(details)
}

pub(crate) fn version_conflict(current: &JobRecord) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "version_conflict",
        "the job changed since that version was read",
    )
    .with_details(json!({"state": current.state, "version": current.version}))
}

pub(crate) fn job_finished(job: &JobRecord) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "job_finished", "the job has finished")
        .with_details(json!({"state": job.state}))
}
