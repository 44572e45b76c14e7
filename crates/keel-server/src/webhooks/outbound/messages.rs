//! `/admin/v1/webhooks/endpoints/{id}/attempts` and `/admin/v1/webhooks/messages/{id}`:
//! what was tried, and replaying a message.

use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use keel_core::ids::MessageId;
use keel_store::TenantScope;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::{AttemptOut, AttemptsOut};
use super::routes::{audit, endpoint_scope, READERS, WRITERS};
use crate::admin::auth::ActiveAdmin;
use crate::http::error::ErrorEnvelope;
use crate::{ApiError, AppState};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_attempts))
        .routes(routes!(get_message))
        .routes(routes!(replay_message))
}

/// A page size.
#[derive(Deserialize, IntoParams)]
pub struct LimitQuery {
    /// 1 to 500, default 100.
    pub limit: Option<i64>,
}

/// One delivery of a message.
#[derive(Serialize, ToSchema)]
pub struct DeliveryOut {
    /// The endpoint.
    pub endpoint_id: String,
    /// `pending`, `succeeded`, `failed` or `dead`.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
}

/// A message and where it went.
#[derive(Serialize, ToSchema)]
pub struct MessageOut {
    /// `msg_…` (the `webhook-id`).
    pub id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Event type.
    pub event_type: String,
    /// The event's data.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// Written.
    pub created_at: DateTime<Utc>,
    /// Its deliveries.
    pub deliveries: Vec<DeliveryOut>,
}

/// How many deliveries a replay queued.
#[derive(Serialize, ToSchema)]
pub struct ReplayOut {
    /// The message.
    pub message_id: String,
    /// Deliveries queued, due now.
    pub queued: usize,
}

async fn message_scope(state: &AppState, id: &str) -> Result<(MessageId, TenantScope), ApiError> {
    let id: MessageId = id.parse().map_err(|_| ApiError::not_found())?;
    let tenant = state
        .store()
        .message_tenant(id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok((id, TenantScope::new(tenant)))
}

/// Every attempt made to an endpoint, newest first.
#[utoipa::path(get, path = "/admin/v1/webhooks/endpoints/{id}/attempts", tag = "admin", operation_id = "admin.webhooks.endpoints.attempts",
    params(("id" = String, Path, description = "Endpoint id"), LimitQuery), security(("admin" = [])),
    responses((status = 200, body = AttemptsOut), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn list_attempts(
    State(state): State<AppState>,
    ActiveAdmin(me): ActiveAdmin,
    Path(id): Path<String>,
    Query(q): Query<LimitQuery>,
) -> Result<Json<AttemptsOut>, ApiError> {
    me.require_role(READERS)?;
    let (id, scope) = endpoint_scope(&state, &id).await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    let data = state.store().list_attempts(&scope, id, limit).await?;
    Ok(Json(AttemptsOut {
        data: data.into_iter().map(AttemptOut::from).collect(),
    }))
}

/// A message of the outbox and its deliveries.
#[utoipa::path(get, path = "/admin/v1/webhooks/messages/{id}", tag = "admin", operation_id = "admin.webhooks.messages.get",
    params(("id" = String, Path, description = "Message id")), security(("admin" = [])),
    responses((status = 200, body = MessageOut), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn get_message(
    State(state): State<AppState>,
    ActiveAdmin(me): ActiveAdmin,
    Path(id): Path<String>,
) -> Result<Json<MessageOut>, ApiError> {
    me.require_role(READERS)?;
    let (id, scope) = message_scope(&state, &id).await?;
    let m = state.store().get_message(&scope, id).await?;
    let deliveries = state.store().message_deliveries(&scope, id).await?;
    Ok(Json(MessageOut {
        id: m.id.to_string(),
        tenant_id: m.tenant_id.to_string(),
        event_type: m.event_type.as_str().into(),
        payload: m.payload,
        created_at: m.created_at,
        deliveries: deliveries
            .into_iter()
            .map(|(e, s, n)| DeliveryOut {
                endpoint_id: e.to_string(),
                status: s.as_str().into(),
                attempts: n,
            })
            .collect(),
    }))
}

/// Queues a message again, due now, to every enabled endpoint subscribed to its type
/// (restarting their retry schedule); receivers deduplicate on its unchanged `webhook-id`.
#[utoipa::path(post, path = "/admin/v1/webhooks/messages/{id}/replay", tag = "admin", operation_id = "admin.webhooks.messages.replay",
    params(("id" = String, Path, description = "Message id")), security(("admin" = [])),
    responses((status = 200, body = ReplayOut), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn replay_message(
    State(state): State<AppState>,
    ActiveAdmin(me): ActiveAdmin,
    Path(id): Path<String>,
) -> Result<Json<ReplayOut>, ApiError> {
    me.require_role(WRITERS)?;
    let (id, scope) = message_scope(&state, &id).await?;
    let queued = state.store().replay_message(&scope, id, Utc::now()).await?;
    audit(
        &state,
        &me,
        scope.tenant(),
        "webhook.message_replayed",
        id.to_string(),
        json!({"queued": queued}),
    )
    .await;
    Ok(Json(ReplayOut {
        message_id: id.to_string(),
        queued,
    }))
}
