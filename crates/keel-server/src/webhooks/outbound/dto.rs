//! The admin API's shapes for endpoints and attempts, and the validation of what comes in.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use keel_core::ids::TenantId;
use keel_core::outbound::{check_endpoint_url, EventType};
use keel_store::{AttemptRecord, EndpointRecord};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::ApiError;

/// An endpoint to register.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointIn {
    /// `https://…` (or `http://…`); private addresses only when the operator allows them.
    pub url: String,
    /// Event types to receive, e.g. `["subscription.changed"]` (at least one).
    pub event_types: Vec<String>,
    /// Free text, up to 500 characters.
    pub description: Option<String>,
    /// Only this tenant's events; omitted: every tenant's.
    pub tenant_id: Option<String>,
}

/// Changes to an endpoint; omitted fields stay.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatch {
    /// Enable (clears a failure streak) or disable.
    pub enabled: Option<bool>,
    /// Replace the subscribed event types.
    pub event_types: Option<Vec<String>>,
    /// Replace the URL.
    pub url: Option<String>,
    /// Replace the description.
    pub description: Option<String>,
}

/// An endpoint as shown: never its secret.
#[derive(Serialize, ToSchema)]
pub struct EndpointOut {
    /// `ep_…`.
    pub id: String,
    /// The tenant whose events it receives; null for every tenant's.
    pub tenant_id: Option<String>,
    /// URL.
    pub url: String,
    /// Free text.
    pub description: String,
    /// Subscribed event types.
    pub event_types: Vec<String>,
    /// Whether messages are delivered.
    pub enabled: bool,
    /// `failing` (disabled after 5 days of failures) or `operator`.
    pub disabled_reason: Option<String>,
    /// Start of the current run of failed attempts.
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the previous secret still signs, after a rotation.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    /// Made.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<EndpointRecord> for EndpointOut {
    fn from(e: EndpointRecord) -> Self {
        let all = e.tenant_id == keel_store::all_tenants();
        EndpointOut {
            id: e.id.to_string(),
            tenant_id: (!all).then(|| e.tenant_id.to_string()),
            url: e.url,
            description: e.description,
            event_types: e.event_types.iter().map(|t| t.as_str().into()).collect(),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            failing_since: e.failing_since,
            previous_secret_expires_at: e.previous_until.filter(|u| *u > Utc::now()),
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// An endpoint with its signing secret: answered once, at creation or rotation.
#[derive(Serialize, ToSchema)]
pub struct EndpointWithSecretOut {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: EndpointOut,
    /// `whsec_…`: keep it; it is never shown again.
    pub secret: String,
}

/// Endpoints, oldest first.
#[derive(Serialize, ToSchema)]
pub struct EndpointsOut {
    /// The endpoints.
    pub data: Vec<EndpointOut>,
}

/// One recorded attempt.
#[derive(Serialize, ToSchema)]
pub struct AttemptOut {
    /// `att_…`.
    pub id: String,
    /// The message (`webhook-id`).
    pub message_id: String,
    /// 1 for the first attempt of the delivery.
    pub attempt: i64,
    /// When.
    pub attempted_at: DateTime<Utc>,
    /// The response status, if a response came.
    pub status_code: Option<i64>,
    /// Milliseconds until the response or the failure.
    pub latency_ms: i64,
    /// Why it failed without a 2xx.
    pub error: Option<String>,
    /// The response body, truncated.
    pub response_body: Option<String>,
    /// A 2xx came back.
    pub succeeded: bool,
}

impl From<AttemptRecord> for AttemptOut {
    fn from(a: AttemptRecord) -> Self {
        AttemptOut {
            id: a.id.to_string(),
            message_id: a.message_id.to_string(),
            attempt: a.attempt,
            attempted_at: a.attempted_at,
            status_code: a.status_code,
            latency_ms: a.latency_ms,
            error: a.error,
            response_body: a.response_body,
            succeeded: a.succeeded,
        }
    }
}

/// Attempts, newest first.
#[derive(Serialize, ToSchema)]
pub struct AttemptsOut {
    /// The attempts.
    pub data: Vec<AttemptOut>,
}

fn invalid(code: &'static str, field: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
        .with_details(json!({ "field": field }))
}

/// A URL endpoints may have.
pub(super) fn url_of(url: &str, allow_private: bool) -> Result<String, ApiError> {
    check_endpoint_url(url, allow_private)
        .map_err(|e| invalid("invalid_url", "url", e.to_string()))?;
    Ok(url.to_string())
}

/// One or more known event types, deduplicated.
pub(super) fn event_types_of(names: &[String]) -> Result<Vec<EventType>, ApiError> {
    let mut types = Vec::new();
    for name in names {
        let t: EventType = name.parse().map_err(|_| {
            invalid(
                "invalid_event_type",
                "event_types",
                format!(
                    "unknown event type {name:?}; known: {}",
                    EventType::ALL.map(|t| t.as_str()).join(", ")
                ),
            )
        })?;
        if !types.contains(&t) {
            types.push(t);
        }
    }
    if types.is_empty() {
        return Err(invalid(
            "invalid_event_type",
            "event_types",
            "event_types must name at least one event type",
        ));
    }
    Ok(types)
}

/// Up to 500 characters.
pub(super) fn description_of(text: Option<&str>) -> Result<String, ApiError> {
    let text = text.unwrap_or_default().trim();
    if text.chars().count() > 500 {
        return Err(invalid(
            "invalid_description",
            "description",
            "description must be at most 500 characters",
        ));
    }
    Ok(text.to_string())
}

/// A tenant id, or every tenant when absent.
pub(super) fn tenant_of(text: Option<&str>) -> Result<TenantId, ApiError> {
    match text {
        None => Ok(keel_store::all_tenants()),
        Some(t) => t.parse().map_err(|_| {
            invalid(
                "invalid_tenant",
                "tenant_id",
                "tenant_id is not a tenant id",
            )
        }),
    }
}
