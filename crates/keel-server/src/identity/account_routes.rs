//! `/v1/api-keys`, and the wallet sign-in handlers.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use keel_core::ids::ApiKeyId;
use keel_store::ApiKeyRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::routes::Meta;
use super::service::TokenPairOut;
use super::AuthUser;
use crate::http::error::ErrorEnvelope;
use crate::{ApiError, ApiJson, AppState};

/// `/v1/api-keys`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_api_keys, create_api_key))
        .routes(routes!(delete_api_key))
}

/// A key to create.
#[derive(Deserialize, ToSchema)]
pub struct ApiKeyIn {
    /// A name to recognise it by.
    pub name: String,
    /// Any of `all`, `gateway`, `jobs`, `billing:read`, `profile:read`.
    pub scopes: Vec<String>,
    /// Optional expiry (RFC 3339, in the future).
    pub expires_at: Option<DateTime<Utc>>,
}

/// A key as listed (never the secret).
#[derive(Serialize, ToSchema)]
pub struct ApiKeyOut {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Display prefix.
    pub prefix: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Expiry.
    pub expires_at: Option<String>,
    /// Last use.
    pub last_used_at: Option<String>,
    /// Revocation.
    pub revoked_at: Option<String>,
    /// Created.
    pub created_at: String,
}

impl From<ApiKeyRecord> for ApiKeyOut {
    fn from(r: ApiKeyRecord) -> Self {
        Self {
            id: r.id.to_string(),
            name: r.name,
            prefix: r.prefix,
            scopes: r.scopes,
            expires_at: r.expires_at.map(|t| t.to_rfc3339()),
            last_used_at: r.last_used_at.map(|t| t.to_rfc3339()),
            revoked_at: r.revoked_at.map(|t| t.to_rfc3339()),
            created_at: r.created_at.to_rfc3339(),
        }
    }
}

/// A new key, with its secret shown this once.
#[derive(Serialize, ToSchema)]
pub struct ApiKeyCreatedOut {
    /// The full key: store it now, it is never shown again.
    pub key: String,
    /// The key's record.
    #[serde(flatten)]
    pub record: ApiKeyOut,
}

/// The caller's keys.
#[derive(Serialize, ToSchema)]
pub struct ApiKeysOut {
    /// Newest first.
    pub data: Vec<ApiKeyOut>,
}

/// Lists the caller's API keys.
#[utoipa::path(get, path = "/v1/api-keys", tag = "identity", operation_id = "v1.api_keys.list",
    security(("bearer" = [])), responses((status = 200, body = ApiKeysOut), (status = 401, body = ErrorEnvelope)))]
async fn list_api_keys(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<ApiKeysOut>, ApiError> {
    user.require_session()?;
    let rows = state
        .store()
        .list_api_keys(&user.scope(), user.token.user)
        .await?;
    Ok(Json(ApiKeysOut {
        data: rows.into_iter().map(ApiKeyOut::from).collect(),
    }))
}

/// Creates an API key.
#[utoipa::path(post, path = "/v1/api-keys", tag = "identity", operation_id = "v1.api_keys.create",
    request_body = ApiKeyIn, security(("bearer" = [])),
    responses((status = 201, body = ApiKeyCreatedOut), (status = 422, body = ErrorEnvelope)))]
async fn create_api_key(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<ApiKeyIn>,
) -> Result<(StatusCode, Json<ApiKeyCreatedOut>), ApiError> {
    user.require_session()?;
    let (record, key) = state
        .identity()
        .create_api_key(&user, &body.name, body.scopes, body.expires_at)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyCreatedOut {
            key,
            record: record.into(),
        }),
    ))
}

/// Revokes an API key; another user's key is a 404.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "identity", operation_id = "v1.api_keys.delete",
    params(("id" = String, Path, description = "API key id")), security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
async fn delete_api_key(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    user.require_session()?;
    let id: ApiKeyId = id.parse().map_err(|_| ApiError::not_found())?;
    state.identity().revoke_api_key(&user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A wallet asking to sign in.
#[derive(Deserialize, ToSchema)]
pub struct ChallengeIn {
    /// Ed25519 public key, 64 hex digits.
    pub address: String,
}

/// The message to sign.
#[derive(Serialize, ToSchema)]
pub struct ChallengeOut {
    /// Pass back to `verify`.
    pub challenge_id: String,
    /// Sign exactly these bytes (UTF-8).
    pub message: String,
    /// RFC 3339; 5 minutes after issue.
    pub expires_at: String,
}

/// Issues a single-use wallet challenge.
#[utoipa::path(post, path = "/v1/auth/wallet/challenge", tag = "identity", operation_id = "v1.auth.wallet.challenge",
    request_body = ChallengeIn, responses((status = 200, body = ChallengeOut), (status = 422, body = ErrorEnvelope)))]
pub(crate) async fn wallet_challenge(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ChallengeIn>,
) -> Result<Json<ChallengeOut>, ApiError> {
    let product = state.manifest().product.name.clone();
    let c = state
        .identity()
        .wallet_challenge(&body.address, &product)
        .await?;
    Ok(Json(ChallengeOut {
        challenge_id: c.id.to_string(),
        message: c.message,
        expires_at: c.expires_at.to_rfc3339(),
    }))
}

/// A signed challenge.
#[derive(Deserialize, ToSchema)]
pub struct WalletVerifyIn {
    /// From `challenge`.
    pub challenge_id: String,
    /// The wallet's public key, 64 hex digits.
    pub address: String,
    /// Ed25519 signature of the message, 128 hex digits.
    pub signature: String,
    /// A name for this device.
    pub device_name: Option<String>,
}

/// Verifies a signed challenge and signs in (creating the user on first sign-in).
#[utoipa::path(post, path = "/v1/auth/wallet/verify", tag = "identity", operation_id = "v1.auth.wallet.verify",
    request_body = WalletVerifyIn, responses((status = 200, body = TokenPairOut), (status = 401, body = ErrorEnvelope)))]
pub(crate) async fn wallet_verify(
    State(state): State<AppState>,
    Meta(mut meta): Meta,
    ApiJson(body): ApiJson<WalletVerifyIn>,
) -> Result<Json<TokenPairOut>, ApiError> {
    meta.device_name = body.device_name;
    let plan = state.manifest().product.default_plan.clone();
    let pair = state
        .identity()
        .wallet_verify(
            &body.challenge_id,
            &body.address,
            &body.signature,
            meta,
            &plan,
        )
        .await?;
    Ok(Json(pair))
}
