//! Operator levers over billing: `/admin/v1/kill-switches` here, `/admin/v1/quota` in
//! [`super::quota`]. SUPER_ADMIN and ENGINEER change them, SUPPORT reads them; every change
//! is audited in the user's tenant (the global switch in the system tenant).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use keel_core::ids::UserId;
use keel_store::{KillSwitch, UserRecord};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{ActiveAdmin, AdminUser};
use crate::http::error::ErrorEnvelope;
use crate::identity::system_tenant;
use crate::{ApiError, ApiJson, AppState};

pub(super) const WRITERS: &[&str] = &["SUPER_ADMIN", "ENGINEER"];
pub(super) const READERS: &[&str] = &["SUPER_ADMIN", "ENGINEER", "SUPPORT"];

/// The levers' routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(super::quota::router())
        .routes(routes!(list_switches))
        .routes(routes!(engage_global, disengage_global))
        .routes(routes!(engage_user, disengage_user))
}

pub(super) fn invalid(code: &'static str, field: &str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message.to_string())
        .with_details(json!({ "field": field }))
}

pub(super) fn reason_of(reason: &str) -> Result<String, ApiError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(invalid(
            "invalid_reason",
            "reason",
            "reason must be 1 to 500 characters",
        ));
    }
    Ok(reason.to_string())
}

pub(super) async fn user_of(state: &AppState, id: &str) -> Result<UserRecord, ApiError> {
    let id: UserId = id.parse().map_err(|_| ApiError::not_found())?;
    state
        .store()
        .locate_user(id)
        .await?
        .ok_or_else(ApiError::not_found)
}

pub(super) async fn audit(
    state: &AppState,
    me: &AdminUser,
    tenant: keel_core::ids::TenantId,
    action: &str,
    target: String,
    data: serde_json::Value,
) {
    state
        .identity()
        .audit(tenant, &me.admin.id.to_string(), action, Some(target), data)
        .await;
}

/// An engaged kill switch.
#[derive(Serialize, ToSchema)]
pub struct SwitchOut {
    /// `global` or `user`.
    pub scope: String,
    /// The user, for a user switch.
    pub user_id: Option<String>,
    /// Their tenant.
    pub tenant_id: Option<String>,
    /// Why.
    pub reason: String,
    /// The admin who engaged it.
    pub actor: String,
    /// Since when.
    pub created_at: DateTime<Utc>,
}

impl From<KillSwitch> for SwitchOut {
    fn from(s: KillSwitch) -> Self {
        SwitchOut {
            scope: if s.user_id.is_some() {
                "user"
            } else {
                "global"
            }
            .to_string(),
            user_id: s.user_id.map(|u| u.to_string()),
            tenant_id: s.tenant_id.map(|t| t.to_string()),
            reason: s.reason,
            actor: s.actor,
            created_at: s.created_at,
        }
    }
}

/// Engaged switches.
#[derive(Serialize, ToSchema)]
pub struct SwitchesOut {
    /// Oldest first.
    pub data: Vec<SwitchOut>,
}

/// Why a switch is engaged.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchIn {
    /// 1–500 characters, kept with the switch and in the audit log.
    pub reason: String,
}

/// Lists the engaged billing kill switches.
#[utoipa::path(get, path = "/admin/v1/kill-switches", tag = "admin", operation_id = "admin.kill_switches.list",
    security(("admin" = [])), responses((status = 200, body = SwitchesOut), (status = 403, body = ErrorEnvelope)))]
async fn list_switches(
    State(state): State<AppState>,
    ActiveAdmin(me): ActiveAdmin,
) -> Result<Json<SwitchesOut>, ApiError> {
    me.require_role(READERS)?;
    let data = state.store().kill_switches().await?;
    Ok(Json(SwitchesOut {
        data: data.into_iter().map(SwitchOut::from).collect(),
    }))
}

async fn engage(
    state: &AppState,
    me: &AdminUser,
    user: Option<&UserRecord>,
    reason: &str,
) -> Result<SwitchOut, ApiError> {
    let switch = KillSwitch {
        tenant_id: user.map(|u| u.tenant_id),
        user_id: user.map(|u| u.id),
        reason: reason_of(reason)?,
        actor: me.admin.id.to_string(),
        created_at: Utc::now(),
    };
    state.store().engage_kill_switch(switch.clone()).await?;
    state.kill_switches().invalidate();
    let tenant = user.map_or_else(system_tenant, |u| u.tenant_id);
    let target = user.map_or_else(|| "global".to_string(), |u| u.id.to_string());
    audit(
        state,
        me,
        tenant,
        "billing.kill_switch_engaged",
        target,
        json!({"reason": switch.reason}),
    )
    .await;
    Ok(switch.into())
}

async fn disengage(
    state: &AppState,
    me: &AdminUser,
    user: Option<&UserRecord>,
) -> Result<StatusCode, ApiError> {
    if !state
        .store()
        .disengage_kill_switch(user.map(|u| u.id))
        .await?
    {
        return Err(ApiError::not_found());
    }
    state.kill_switches().invalidate();
    let tenant = user.map_or_else(system_tenant, |u| u.tenant_id);
    let target = user.map_or_else(|| "global".to_string(), |u| u.id.to_string());
    audit(
        state,
        me,
        tenant,
        "billing.kill_switch_disengaged",
        target,
        json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Engages the global billing kill switch: no new reservation for anyone.
#[utoipa::path(put, path = "/admin/v1/kill-switches/global", tag = "admin", operation_id = "admin.kill_switches.engage_global",
    request_body = SwitchIn, security(("admin" = [])),
    responses((status = 200, body = SwitchOut), (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn engage_global(
    State(state): State<AppState>,
    ActiveAdmin(me): ActiveAdmin,
    ApiJson(body): ApiJson<SwitchIn>,
) -> Result<Json<SwitchOut>, ApiError> {
    me.require_role(WRITERS)?;
    Ok(Json(engage(&state, &me, None, &body.reason).await?))
}

/// Disengages the global billing kill switch.
#[utoipa::path(delete, path = "/admin/v1/kill-switches/global", tag = "admin", operation_id = "admin.kill_switches.disengage_global",
    security(("admin" = [])), responses((status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn disengage_global(
    State(state): State<AppState>,
    ActiveAdmin(me): ActiveAdmin,
) -> Result<StatusCode, ApiError> {
    me.require_role(WRITERS)?;
    disengage(&state, &me, None).await
}

/// Engages a user's billing kill switch.
#[utoipa::path(put, path = "/admin/v1/kill-switches/users/{user_id}", tag = "admin", operation_id = "admin.kill_switches.engage_user",
    params(("user_id" = String, Path, description = "User id")), request_body = SwitchIn, security(("admin" = [])),
    responses((status = 200, body = SwitchOut), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn engage_user(
    State(state): State<AppState>,
    ActiveAdmin(me): ActiveAdmin,
    Path(user_id): Path<String>,
    ApiJson(body): ApiJson<SwitchIn>,
) -> Result<Json<SwitchOut>, ApiError> {
    me.require_role(WRITERS)?;
    let user = user_of(&state, &user_id).await?;
    Ok(Json(engage(&state, &me, Some(&user), &body.reason).await?))
}

/// Disengages a user's billing kill switch.
#[utoipa::path(delete, path = "/admin/v1/kill-switches/users/{user_id}", tag = "admin", operation_id = "admin.kill_switches.disengage_user",
    params(("user_id" = String, Path, description = "User id")), security(("admin" = [])),
    responses((status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn disengage_user(
    State(state): State<AppState>,
    ActiveAdmin(me): ActiveAdmin,
    Path(user_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    me.require_role(WRITERS)?;
    let user = user_of(&state, &user_id).await?;
    disengage(&state, &me, Some(&user)).await
}
