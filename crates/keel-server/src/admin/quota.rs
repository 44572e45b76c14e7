//! `/admin/v1/quota/{user_id}`: per-user quota overrides — a custom limit replacing the
//! plan's and extra units on top, until they expire, with a reason, each change audited.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use keel_core::billing::OverrideTarget;
use keel_store::{QuotaOverride, TenantScope};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::ActiveAdmin;
use super::levers::{audit, invalid, reason_of, user_of, READERS, WRITERS};
use crate::http::error::ErrorEnvelope;
use crate::{ApiError, ApiJson, AppState};

/// The quota routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_overrides, put_override))
        .routes(routes!(delete_override))
}

/// A quota override as shown.
#[derive(Serialize, ToSchema)]
pub struct OverrideOut {
    /// Meter.
    pub meter: String,
    /// `limit` or `credits`.
    pub target: String,
    /// Units added on top.
    pub extra: i64,
    /// Replaces the plan's limit when set.
    pub custom_limit: Option<i64>,
    /// When it stops applying (RFC 3339), or null.
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether it applies now.
    pub active: bool,
    /// Why.
    pub reason: String,
    /// The admin who set it.
    pub actor: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl From<QuotaOverride> for OverrideOut {
    fn from(o: QuotaOverride) -> Self {
        OverrideOut {
            active: o.expires_at.is_none_or(|e| Utc::now() < e),
            meter: o.meter,
            target: o.target,
            extra: o.extra,
            custom_limit: o.custom_limit,
            expires_at: o.expires_at,
            reason: o.reason,
            actor: o.actor,
            created_at: o.created_at,
        }
    }
}

/// A user's overrides.
#[derive(Serialize, ToSchema)]
pub struct OverridesOut {
    /// The user.
    pub user_id: String,
    /// Their tenant.
    pub tenant_id: String,
    /// By meter, then target; expired ones included (`active = false`).
    pub data: Vec<OverrideOut>,
}

/// Lists a user's quota overrides.
#[utoipa::path(get, path = "/admin/v1/quota/{user_id}", tag = "admin", operation_id = "admin.quota.list",
    params(("user_id" = String, Path, description = "User id")), security(("admin" = [])),
    responses((status = 200, body = OverridesOut), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn list_overrides(
    State(state): State<AppState>,
    ActiveAdmin(me): ActiveAdmin,
    Path(user_id): Path<String>,
) -> Result<Json<OverridesOut>, ApiError> {
    me.require_role(READERS)?;
    let user = user_of(&state, &user_id).await?;
    let scope = TenantScope::new(user.tenant_id);
    let data = state.store().quota_overrides(&scope, user.id).await?;
    Ok(Json(OverridesOut {
        user_id: user.id.to_string(),
        tenant_id: user.tenant_id.to_string(),
        data: data.into_iter().map(OverrideOut::from).collect(),
    }))
}

/// An override to set (replacing one on the same meter and target).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideIn {
    /// A meter of the manifest.
    pub meter: String,
    /// `limit` (default: the plan's period limit) or `credits` (the credit allowance).
    pub target: Option<String>,
    /// Units added on top (may be negative to lower a limit); default 0.
    pub extra: Option<i64>,
    /// A limit replacing the plan's (≥ 0).
    pub custom_limit: Option<i64>,
    /// When it stops applying; must be in the future. Omitted = until removed.
    pub expires_at: Option<DateTime<Utc>>,
    /// Why (1–500 characters), kept with the override and in the audit log.
    pub reason: String,
}

/// Sets a user's quota override.
#[utoipa::path(put, path = "/admin/v1/quota/{user_id}", tag = "admin", operation_id = "admin.quota.set",
    params(("user_id" = String, Path, description = "User id")), request_body = OverrideIn, security(("admin" = [])),
    responses((status = 200, body = OverrideOut), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn put_override(
    State(state): State<AppState>,
    ActiveAdmin(me): ActiveAdmin,
    Path(user_id): Path<String>,
    ApiJson(body): ApiJson<OverrideIn>,
) -> Result<Json<OverrideOut>, ApiError> {
    me.require_role(WRITERS)?;
    let user = user_of(&state, &user_id).await?;
    if !state.manifest().meters.contains_key(&body.meter) {
        return Err(invalid(
            "unknown_meter",
            "meter",
            "the manifest has no such meter",
        ));
    }
    let target =
        OverrideTarget::parse(body.target.as_deref().unwrap_or("limit")).ok_or_else(|| {
            invalid(
                "invalid_target",
                "target",
                "target must be `limit` or `credits`",
            )
        })?;
    let extra = body.extra.unwrap_or(0);
    if body.custom_limit.is_some_and(|l| l < 0) {
        return Err(invalid(
            "invalid_limit",
            "custom_limit",
            "custom_limit must be 0 or more",
        ));
    }
    if extra == 0 && body.custom_limit.is_none() {
        return Err(invalid(
            "empty_override",
            "extra",
            "set extra, custom_limit, or both",
        ));
    }
    let now = Utc::now();
    if body.expires_at.is_some_and(|e| e <= now) {
        return Err(invalid(
            "invalid_expiry",
            "expires_at",
            "expires_at must be in the future",
        ));
    }
    let o = QuotaOverride {
        user_id: user.id,
        meter: body.meter,
        target: target.as_str().to_string(),
        extra,
        custom_limit: body.custom_limit,
        expires_at: body.expires_at,
        reason: reason_of(&body.reason)?,
        actor: me.admin.id.to_string(),
        created_at: now,
    };
    let scope = TenantScope::new(user.tenant_id);
    state.store().put_quota_override(&scope, o.clone()).await?;
    let data = json!({"meter": o.meter, "target": o.target, "extra": o.extra,
        "custom_limit": o.custom_limit, "expires_at": o.expires_at, "reason": o.reason});
    audit(
        &state,
        &me,
        user.tenant_id,
        "billing.quota_override_set",
        user.id.to_string(),
        data,
    )
    .await;
    Ok(Json(o.into()))
}

/// Which override to remove.
#[derive(Deserialize, IntoParams)]
pub struct TargetQuery {
    /// `limit` (default) or `credits`.
    pub target: Option<String>,
}

/// Removes a user's override of one meter.
#[utoipa::path(delete, path = "/admin/v1/quota/{user_id}/{meter}", tag = "admin", operation_id = "admin.quota.remove",
    params(("user_id" = String, Path, description = "User id"), ("meter" = String, Path, description = "Meter"), TargetQuery),
    security(("admin" = [])),
    responses((status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn delete_override(
    State(state): State<AppState>,
    ActiveAdmin(me): ActiveAdmin,
    Path((user_id, meter)): Path<(String, String)>,
    Query(q): Query<TargetQuery>,
) -> Result<StatusCode, ApiError> {
    me.require_role(WRITERS)?;
    let user = user_of(&state, &user_id).await?;
    let target =
        OverrideTarget::parse(q.target.as_deref().unwrap_or("limit")).ok_or_else(|| {
            invalid(
                "invalid_target",
                "target",
                "target must be `limit` or `credits`",
            )
        })?;
    let scope = TenantScope::new(user.tenant_id);
    if !state
        .store()
        .delete_quota_override(&scope, user.id, &meter, target.as_str())
        .await?
    {
        return Err(ApiError::not_found());
    }
    let data = json!({"meter": meter, "target": target.as_str()});
    audit(
        &state,
        &me,
        user.tenant_id,
        "billing.quota_override_removed",
        user.id.to_string(),
        data,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
