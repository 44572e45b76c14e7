//! `/admin/v1/accounts`: SUPER_ADMIN-only management of operator accounts.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use keel_core::ids::AdminId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{ActiveAdmin, AdminOut};
use crate::http::error::ErrorEnvelope;
use crate::{ApiError, ApiJson, AppState};

/// The accounts routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_accounts, create_account))
        .routes(routes!(update_account))
        .routes(routes!(reset_password))
}

/// Every operator account.
#[derive(Serialize, ToSchema)]
pub struct AccountsOut {
    /// Oldest first.
    pub data: Vec<AdminOut>,
}

/// Lists operator accounts.
#[utoipa::path(get, path = "/admin/v1/accounts", tag = "admin", operation_id = "admin.accounts.list",
    security(("admin" = [])), responses((status = 200, body = AccountsOut), (status = 403, body = ErrorEnvelope)))]
async fn list_accounts(
    State(state): State<AppState>,
    ActiveAdmin(me): ActiveAdmin,
) -> Result<Json<AccountsOut>, ApiError> {
    me.require_role(&["SUPER_ADMIN"])?;
    let data = state
        .store()
        .list_admins()
        .await?
        .into_iter()
        .map(AdminOut::from)
        .collect();
    Ok(Json(AccountsOut { data }))
}

/// A new operator.
#[derive(Deserialize, ToSchema)]
pub struct AccountIn {
    /// Email.
    pub email: String,
    /// `ENGINEER` or `SUPPORT`.
    pub role: String,
}

/// A new operator with a temporary password, shown once.
#[derive(Serialize, ToSchema)]
pub struct AccountCreatedOut {
    /// Must be changed at first sign-in.
    pub temporary_password: String,
    /// The account.
    pub account: AdminOut,
}

/// Creates an ENGINEER or SUPPORT account.
#[utoipa::path(post, path = "/admin/v1/accounts", tag = "admin", operation_id = "admin.accounts.create",
    request_body = AccountIn, security(("admin" = [])),
    responses((status = 201, body = AccountCreatedOut), (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
async fn create_account(
    State(state): State<AppState>,
    ActiveAdmin(me): ActiveAdmin,
    ApiJson(body): ApiJson<AccountIn>,
) -> Result<(StatusCode, Json<AccountCreatedOut>), ApiError> {
    me.require_role(&["SUPER_ADMIN"])?;
    let (account, temporary_password) = state
        .identity()
        .admin_create(&me.admin, &body.email, &body.role)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(AccountCreatedOut {
            temporary_password,
            account: account.into(),
        }),
    ))
}

/// Changes to an account.
#[derive(Deserialize, ToSchema)]
pub struct AccountPatch {
    /// `ENGINEER` or `SUPPORT`.
    pub role: Option<String>,
    /// `active` or `disabled` (disabling ends its sessions).
    pub status: Option<String>,
}

/// Changes an account's role or status.
#[utoipa::path(patch, path = "/admin/v1/accounts/{id}", tag = "admin", operation_id = "admin.accounts.update",
    params(("id" = String, Path, description = "Admin id")), request_body = AccountPatch, security(("admin" = [])),
    responses((status = 200, body = AdminOut), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn update_account(
    State(state): State<AppState>,
    ActiveAdmin(me): ActiveAdmin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AccountPatch>,
) -> Result<Json<AdminOut>, ApiError> {
    me.require_role(&["SUPER_ADMIN"])?;
    let id: AdminId = id.parse().map_err(|_| ApiError::not_found())?;
    let updated = state
        .identity()
        .admin_update(&me.admin, id, body.role, body.status)
        .await?;
    Ok(Json(updated.into()))
}

/// A temporary password.
#[derive(Serialize, ToSchema)]
pub struct ResetOut {
    /// Must be changed at next sign-in.
    pub temporary_password: String,
}

/// Forces a password reset: a temporary password, every session of the account ended.
#[utoipa::path(post, path = "/admin/v1/accounts/{id}/reset-password", tag = "admin", operation_id = "admin.accounts.reset_password",
    params(("id" = String, Path, description = "Admin id")), security(("admin" = [])),
    responses((status = 200, body = ResetOut), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn reset_password(
    State(state): State<AppState>,
    ActiveAdmin(me): ActiveAdmin,
    Path(id): Path<String>,
) -> Result<Json<ResetOut>, ApiError> {
    me.require_role(&["SUPER_ADMIN"])?;
    let id: AdminId = id.parse().map_err(|_| ApiError::not_found())?;
    let temporary_password = state.identity().admin_force_reset(&me.admin, id).await?;
    Ok(Json(ResetOut { temporary_password }))
}
