//! `/v1/auth/*`: sign-up, sign-in, refresh, sign-out, sessions, password, wallet.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::Json;
use keel_core::ids::SessionId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::service::{ClientMeta, TokenPairOut};
use super::AuthUser;
use crate::http::error::ErrorEnvelope;
use crate::{ApiError, ApiJson, AppState};

/// The `/v1/auth` routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(logout_all))
        .routes(routes!(list_sessions))
        .routes(routes!(delete_session))
        .routes(routes!(change_password))
        .routes(routes!(super::account_routes::wallet_challenge))
        .routes(routes!(super::account_routes::wallet_verify))
}

/// Who is calling, from the connection and headers.
pub(crate) struct Meta(pub ClientMeta);

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(Meta(ClientMeta {
            device_name: None,
            user_agent,
            ip,
        }))
    }
}

/// Sign-up or sign-in with a password.
#[derive(Deserialize, ToSchema)]
pub struct CredentialsIn {
    /// Email; trimmed and its domain lower-cased.
    pub email: String,
    /// Password (12+ characters, not a common one).
    pub password: String,
    /// A name for this device, shown in the session list.
    pub device_name: Option<String>,
}

/// A refresh token to spend.
#[derive(Deserialize, ToSchema)]
pub struct RefreshIn {
    /// The refresh token of the last pair.
    pub refresh_token: String,
}

/// Creates an account (and its personal tenant) and signs in.
#[utoipa::path(post, path = "/v1/auth/register", tag = "identity", operation_id = "v1.auth.register",
    request_body = CredentialsIn,
    responses((status = 201, body = TokenPairOut), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn register(
    State(state): State<AppState>,
    Meta(mut meta): Meta,
    ApiJson(body): ApiJson<CredentialsIn>,
) -> Result<(StatusCode, Json<TokenPairOut>), ApiError> {
    meta.device_name = body.device_name;
    let plan = state.manifest().product.default_plan.clone();
    let pair = state
        .identity()
        .register(&body.email, &body.password, meta, &plan)
        .await?;
    Ok((StatusCode::CREATED, Json(pair)))
}

/// Signs in with email and password.
#[utoipa::path(post, path = "/v1/auth/login", tag = "identity", operation_id = "v1.auth.login",
    request_body = CredentialsIn,
    responses((status = 200, body = TokenPairOut), (status = 401, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope)))]
async fn login(
    State(state): State<AppState>,
    Meta(mut meta): Meta,
    ApiJson(body): ApiJson<CredentialsIn>,
) -> Result<Json<TokenPairOut>, ApiError> {
    meta.device_name = body.device_name;
    let plan = state.manifest().product.default_plan.clone();
    Ok(Json(
        state
            .identity()
            .login(&body.email, &body.password, meta, &plan)
            .await?,
    ))
}

/// Exchanges a refresh token for a new pair (the old one is spent).
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "identity", operation_id = "v1.auth.refresh",
    request_body = RefreshIn,
    responses((status = 200, body = TokenPairOut), (status = 401, body = ErrorEnvelope)))]
async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshIn>,
) -> Result<Json<TokenPairOut>, ApiError> {
    let plan = state.manifest().product.default_plan.clone();
    Ok(Json(
        state.identity().refresh(&body.refresh_token, &plan).await?,
    ))
}

/// Ends the current session.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "identity", operation_id = "v1.auth.logout",
    security(("bearer" = [])), responses((status = 204), (status = 401, body = ErrorEnvelope)))]
async fn logout(State(state): State<AppState>, user: AuthUser) -> Result<StatusCode, ApiError> {
    let session = user.require_session()?;
    state
        .identity()
        .end_session(&user.token, session, "logout")
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How many sessions were ended.
#[derive(Serialize, ToSchema)]
pub struct EndedOut {
    /// Count.
    pub ended: u64,
}

/// Ends every session of the user, this one included.
#[utoipa::path(post, path = "/v1/auth/logout-all", tag = "identity", operation_id = "v1.auth.logout_all",
    security(("bearer" = [])), responses((status = 200, body = EndedOut), (status = 401, body = ErrorEnvelope)))]
async fn logout_all(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<EndedOut>, ApiError> {
    user.require_session()?;
    let ended = state
        .identity()
        .end_all_sessions(&user.token, None, "logout_all")
        .await?;
    Ok(Json(EndedOut { ended }))
}

/// A session as its owner sees it.
#[derive(Serialize, ToSchema)]
pub struct SessionOut {
    /// Id.
    pub id: String,
    /// Device name given at sign-in.
    pub device_name: Option<String>,
    /// User agent at sign-in.
    pub user_agent: Option<String>,
    /// IP at sign-in.
    pub ip: Option<String>,
    /// Opened (RFC 3339).
    pub created_at: String,
    /// Last refresh.
    pub last_seen_at: String,
    /// This request's session.
    pub current: bool,
}

/// The user's live sessions.
#[derive(Serialize, ToSchema)]
pub struct SessionsOut {
    /// Newest first.
    pub data: Vec<SessionOut>,
}

/// Lists the user's live sessions.
#[utoipa::path(get, path = "/v1/auth/sessions", tag = "identity", operation_id = "v1.auth.sessions.list",
    security(("bearer" = [])), responses((status = 200, body = SessionsOut), (status = 401, body = ErrorEnvelope)))]
async fn list_sessions(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<SessionsOut>, ApiError> {
    let current = user.require_session()?;
    let rows = state
        .store()
        .list_sessions(&user.scope(), user.token.user)
        .await?;
    let data = rows
        .into_iter()
        .map(|s| SessionOut {
            id: s.id.to_string(),
            device_name: s.device_name,
            user_agent: s.user_agent,
            ip: s.ip,
            created_at: s.created_at.to_rfc3339(),
            last_seen_at: s.last_seen_at.to_rfc3339(),
            current: s.id == current,
        })
        .collect();
    Ok(Json(SessionsOut { data }))
}

/// Ends one of the user's sessions; another user's session is a 404.
#[utoipa::path(delete, path = "/v1/auth/sessions/{id}", tag = "identity", operation_id = "v1.auth.sessions.delete",
    params(("id" = String, Path, description = "Session id")),
    security(("bearer" = [])), responses((status = 204), (status = 404, body = ErrorEnvelope)))]
async fn delete_session(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    user.require_session()?;
    let id: SessionId = id.parse().map_err(|_| ApiError::not_found())?;
    state
        .identity()
        .end_session(&user.token, id, "revoked")
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A password change.
#[derive(Deserialize, ToSchema)]
pub struct PasswordIn {
    /// The current password.
    pub current_password: String,
    /// The new one.
    pub new_password: String,
}

/// Changes the password; every other session ends.
#[utoipa::path(post, path = "/v1/auth/password", tag = "identity", operation_id = "v1.auth.password",
    request_body = PasswordIn, security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn change_password(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<PasswordIn>,
) -> Result<StatusCode, ApiError> {
    user.require_session()?;
    state
        .identity()
        .change_password(&user.token, &body.current_password, &body.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
