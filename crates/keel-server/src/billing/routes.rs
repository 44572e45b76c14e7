//! Client routes: `GET /v1/entitlements`, `GET /v1/usage`.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use keel_core::ids::UserId;
use keel_store::{TenantScope, UsageGroup, UsageRow};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::entitlements::{entitlements, EntitlementsOut};
use crate::http::error::ErrorEnvelope;
use crate::identity::AuthUser;
use crate::{ApiError, AppState};

/// The client billing routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_entitlements))
        .routes(routes!(get_usage))
}

/// The caller's plan, limits, usage and features.
#[utoipa::path(get, path = "/v1/entitlements", tag = "billing", operation_id = "v1.entitlements.get",
    security(("bearer" = [])), responses((status = 200, body = EntitlementsOut), (status = 401, body = ErrorEnvelope)))]
async fn get_entitlements(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<EntitlementsOut>, ApiError> {
    user.require_scope("billing:read")?;
    Ok(Json(
        entitlements(&state, &user.scope(), user.token.user).await?,
    ))
}

/// A usage query.
#[derive(Deserialize, IntoParams)]
pub struct UsageQuery {
    /// Start (RFC 3339); default 30 days ago.
    pub from: Option<DateTime<Utc>>,
    /// End, exclusive (RFC 3339); default now.
    pub to: Option<DateTime<Utc>>,
    /// `meter` (default), `feature` or `day`.
    pub group_by: Option<String>,
}

/// Usage, grouped.
#[derive(Serialize, ToSchema)]
pub struct UsageOut {
    /// Start.
    pub from: String,
    /// End (exclusive).
    pub to: String,
    /// Grouping.
    pub group_by: String,
    /// Rows.
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<UsageRow>,
}

/// The caller's usage over a period.
#[utoipa::path(get, path = "/v1/usage", tag = "billing", operation_id = "v1.usage.get", params(UsageQuery),
    security(("bearer" = [])), responses((status = 200, body = UsageOut), (status = 422, body = ErrorEnvelope)))]
async fn get_usage(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<UsageQuery>,
) -> Result<Json<UsageOut>, ApiError> {
    user.require_scope("billing:read")?;
    Ok(Json(
        usage(&state, &user.scope(), user.token.user, q).await?,
    ))
}

/// Shared by the client and service routes.
pub(crate) async fn usage(
    state: &AppState,
    scope: &TenantScope,
    user: UserId,
    q: UsageQuery,
) -> Result<UsageOut, ApiError> {
    let to = q.to.unwrap_or_else(Utc::now);
    let from = q.from.unwrap_or(to - Duration::days(30));
    if from >= to || to - from > Duration::days(400) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_period",
            "`from` must be before `to`, at most 400 days apart",
        )
        .with_details(json!({"field": "from"})));
    }
    let (group, name) = match q.group_by.as_deref().unwrap_or("meter") {
        "meter" => (UsageGroup::Meter, "meter"),
        "feature" => (UsageGroup::Feature, "feature"),
        "day" => (UsageGroup::Day, "day"),
        _ => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_group_by",
                "group_by must be meter, feature or day",
            )
            .with_details(json!({"field": "group_by"})))
        }
    };
    let data = state.store().usage(scope, user, from, to, group).await?;
    Ok(UsageOut {
        from: from.to_rfc3339(),
        to: to.to_rfc3339(),
        group_by: name.to_string(),
        data,
    })
}
