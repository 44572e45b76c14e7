//! `/v1/me`: the signed-in user's account, and the profile settings they may change.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{Duration, Utc};
use keel_core::manifest::TimeZone;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AuthUser;
use crate::http::error::ErrorEnvelope;
use crate::{ApiError, ApiJson, AppState};

/// How long after a time zone change the next one is allowed: hopping zones would start a
/// fresh calendar day (and a fresh daily quota) early.
pub const TIMEZONE_CHANGE_INTERVAL_DAYS: i64 = 7;

/// `/v1/me`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_me, patch_me))
}

/// The signed-in user.
#[derive(Serialize, ToSchema)]
pub struct MeOut {
    /// User id.
    pub id: String,
    /// Tenant id.
    pub tenant_id: String,
    /// Email, for password users.
    pub email: Option<String>,
    /// Wallet, for wallet users.
    pub wallet_address: Option<String>,
    /// `user` or `admin`.
    pub role: String,
    /// The plan in force now.
    pub plan: String,
    /// The user's own IANA time zone for daily, weekly and monthly quota windows, or null
    /// (the plan's or product's zone applies).
    pub timezone: Option<String>,
    /// Created (RFC 3339).
    pub created_at: String,
}

/// The caller's account.
#[utoipa::path(get, path = "/v1/me", tag = "identity", operation_id = "v1.me.get",
    security(("bearer" = [])), responses((status = 200, body = MeOut), (status = 401, body = ErrorEnvelope)))]
async fn get_me(State(state): State<AppState>, user: AuthUser) -> Result<Json<MeOut>, ApiError> {
    user.require_scope("profile:read")?;
    let record = state
        .store()
        .get_user(&user.scope(), user.token.user)
        .await?;
    let choice = crate::billing::plan_for(
        state.store(),
        state.manifest(),
        &user.scope(),
        user.token.user,
        chrono::Utc::now(),
    )
    .await?;
    let plan = choice.plan;
    Ok(Json(MeOut {
        id: record.id.to_string(),
        tenant_id: record.tenant_id.to_string(),
        email: record.email,
        wallet_address: record.wallet_address,
        role: record.role,
        plan,
        timezone: record.timezone,
        created_at: record.created_at.to_rfc3339(),
    }))
}

/// Profile changes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MePatch {
    /// An IANA time zone (`Europe/Paris`), or null to follow the plan's zone. The first
    /// choice is free; later changes at most once every 7 days.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub timezone: Option<Option<String>>,
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Changes the caller's profile settings (a signed-in session, not an API key).
#[utoipa::path(patch, path = "/v1/me", tag = "identity", operation_id = "v1.me.update",
    request_body = MePatch, security(("bearer" = [])),
    responses((status = 200, body = MeOut), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn patch_me(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<MePatch>,
) -> Result<Json<MeOut>, ApiError> {
    user.require_session()?;
    if let Some(tz) = body.timezone {
        let tz = match tz {
            Some(name) => Some(TimeZone::parse(&name).map_err(|_| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_timezone",
                    "timezone must be an IANA name such as Europe/Paris",
                )
                .with_details(json!({"field": "timezone"}))
            })?),
            None => None,
        };
        let name = tz.map(|t| t.to_string());
        let now = Utc::now();
        let since = now - Duration::days(TIMEZONE_CHANGE_INTERVAL_DAYS);
        let changed = state
            .store()
            .set_timezone(&user.scope(), user.token.user, name.as_deref(), now, since)
            .await?;
        if !changed {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "timezone_change_too_soon",
                "the time zone can change once every 7 days",
            )
            .with_details(
                json!({"field": "timezone", "interval_days": TIMEZONE_CHANGE_INTERVAL_DAYS}),
            ));
        }
        state
            .identity()
            .audit(
                user.token.tenant,
                &user.token.user.to_string(),
                "user.timezone_changed",
                Some(user.token.user.to_string()),
                json!({"timezone": name}),
            )
            .await;
    }
    get_me(State(state), user).await
}
