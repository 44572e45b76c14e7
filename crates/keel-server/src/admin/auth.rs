//! `/admin/v1/auth/*` and the `AdminUser` extractor. Admin sessions use opaque `kadm_…`
//! tokens, so a product JWT or API key can never open an admin route, nor an admin
//! token a product route.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use keel_core::identity::hash_secret;
use keel_core::ids::SessionId;
use keel_store::AdminRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::ErrorEnvelope;
use crate::identity::extract::{bearer, invalid_token};
use crate::identity::routes::Meta;
use crate::{ApiError, ApiJson, AppState};

/// The `/admin/v1/auth` routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(admin_login))
        .routes(routes!(admin_logout))
        .routes(routes!(admin_me))
        .routes(routes!(admin_password))
}

/// A signed-in operator.
#[derive(Clone, Debug)]
pub struct AdminUser {
    /// The account.
    pub admin: AdminRecord,
    /// The session.
    pub session: SessionId,
}

impl AdminUser {
    /// Refuses unless the role is one of `roles`.
    pub fn require_role(&self, roles: &[&str]) -> Result<(), ApiError> {
        if roles.contains(&self.admin.role.as_str()) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("needs role {}", roles.join(" or ")),
            ))
        }
    }

    fn require_password_current(&self) -> Result<(), ApiError> {
        if self.admin.must_change_password {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "password_change_required",
                "change the temporary password at /admin/v1/auth/password first",
            ));
        }
        Ok(())
    }
}

/// Any admin route but `me`, `password` and `logout` also requires a changed password.
pub struct ActiveAdmin(pub AdminUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)
            .filter(|t| t.starts_with("kadm_"))
            .ok_or_else(invalid_token)?;
        let store = state.store();
        let session = store
            .find_admin_session(&hash_secret(token))
            .await?
            .ok_or_else(invalid_token)?;
        if session.revoked_at.is_some() || session.expires_at <= Utc::now() {
            return Err(invalid_token());
        }
        let admin = store
            .get_admin(session.admin_id)
            .await
            .map_err(|_| invalid_token())?;
        if admin.status != "active" {
            return Err(invalid_token());
        }
        Ok(AdminUser {
            admin,
            session: session.id,
        })
    }
}

impl FromRequestParts<AppState> for ActiveAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user = AdminUser::from_request_parts(parts, state).await?;
        user.require_password_current()?;
        Ok(ActiveAdmin(user))
    }
}

/// Admin credentials.
#[derive(Deserialize, ToSchema)]
pub struct AdminLoginIn {
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
}

/// An admin session.
#[derive(Serialize, ToSchema)]
pub struct AdminLoginOut {
    /// Opaque bearer token for `/admin/v1/*`.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: &'static str,
    /// Seconds (8 hours).
    pub expires_in: i64,
    /// The session.
    pub session_id: String,
    /// The account.
    pub admin: AdminOut,
}

/// An admin account as shown.
#[derive(Serialize, ToSchema)]
pub struct AdminOut {
    /// Id.
    pub id: String,
    /// Email.
    pub email: String,
    /// Role.
    pub role: String,
    /// `active` or `disabled`.
    pub status: String,
    /// A temporary password must be changed first.
    pub must_change_password: bool,
    /// Created.
    pub created_at: String,
}

impl From<AdminRecord> for AdminOut {
    fn from(a: AdminRecord) -> Self {
        Self {
            id: a.id.to_string(),
            email: a.email,
            role: a.role,
            status: a.status,
            must_change_password: a.must_change_password,
            created_at: a.created_at.to_rfc3339(),
        }
    }
}

/// Operator sign-in (8-hour session).
#[utoipa::path(post, path = "/admin/v1/auth/login", tag = "admin", operation_id = "admin.auth.login",
    request_body = AdminLoginIn,
    responses((status = 200, body = AdminLoginOut), (status = 401, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope)))]
async fn admin_login(
    State(state): State<AppState>,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<AdminLoginIn>,
) -> Result<Json<AdminLoginOut>, ApiError> {
    let login = state
        .identity()
        .admin_login(&body.email, &body.password, meta.ip.as_deref())
        .await?;
    Ok(Json(AdminLoginOut {
        access_token: login.token,
        token_type: "Bearer",
        expires_in: super::service::ADMIN_SESSION_HOURS * 3600,
        session_id: login.session.to_string(),
        admin: login.admin.into(),
    }))
}

/// Ends the admin session.
#[utoipa::path(post, path = "/admin/v1/auth/logout", tag = "admin", operation_id = "admin.auth.logout",
    security(("admin" = [])), responses((status = 204), (status = 401, body = ErrorEnvelope)))]
async fn admin_logout(
    State(state): State<AppState>,
    admin: AdminUser,
) -> Result<StatusCode, ApiError> {
    state
        .store()
        .revoke_admin_session(admin.session, Utc::now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in operator.
#[utoipa::path(get, path = "/admin/v1/auth/me", tag = "admin", operation_id = "admin.auth.me",
    security(("admin" = [])), responses((status = 200, body = AdminOut), (status = 401, body = ErrorEnvelope)))]
async fn admin_me(admin: AdminUser) -> Json<AdminOut> {
    Json(admin.admin.into())
}

/// A password change.
#[derive(Deserialize, ToSchema)]
pub struct AdminPasswordIn {
    /// Current (or temporary) password.
    pub current_password: String,
    /// New password, 12+ characters.
    pub new_password: String,
}

/// Changes the operator's own password; other sessions end.
#[utoipa::path(post, path = "/admin/v1/auth/password", tag = "admin", operation_id = "admin.auth.password",
    request_body = AdminPasswordIn, security(("admin" = [])),
    responses((status = 204), (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn admin_password(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiJson(body): ApiJson<AdminPasswordIn>,
) -> Result<StatusCode, ApiError> {
    state
        .identity()
        .admin_change_password(
            &admin.admin,
            admin.session,
            &body.current_password,
            &body.new_password,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
