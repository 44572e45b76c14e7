//! `POST /v1/store-links`: the signed-in user tells Keel a store purchase is theirs (an
//! app reports its Play purchase token, or an App Store original transaction id bought
//! without an `appAccountToken`), so the provider's later notifications, which name no
//! user, reach them. The first link wins: a reference linked to another user is refused.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use keel_core::webhooks::PROVIDERS;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::ErrorEnvelope;
use crate::identity::AuthUser;
use crate::{ApiError, ApiJson, AppState};

/// The link routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_store_link))
}

/// A purchase to link.
#[derive(Deserialize, ToSchema)]
pub struct StoreLinkIn {
    /// `googleplay`, `appstore`, `stripe` or `lemonsqueezy`.
    pub provider: String,
    /// The provider's subscription reference: Play purchase token, App Store original
    /// transaction id, Stripe subscription id, Lemon Squeezy subscription id.
    pub provider_ref: String,
}

/// The link.
#[derive(Serialize, ToSchema)]
pub struct StoreLinkOut {
    /// Provider.
    pub provider: String,
    /// Reference.
    pub provider_ref: String,
    /// The user it belongs to.
    pub user_id: String,
}

/// Links a store purchase to the caller.
#[utoipa::path(post, path = "/v1/store-links", tag = "webhooks", operation_id = "v1.store_links.create",
    request_body = StoreLinkIn, security(("bearer" = [])),
    responses((status = 200, body = StoreLinkOut), (status = 401, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn create_store_link(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<StoreLinkIn>,
) -> Result<Json<StoreLinkOut>, ApiError> {
    user.require_scope("billing:read")?;
    let invalid = |field: &str, msg: &str| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_store_link",
            msg.to_string(),
        )
        .with_details(json!({"field": field}))
    };
    if !PROVIDERS.contains(&body.provider.as_str()) {
        return Err(invalid(
            "provider",
            "provider must be googleplay, appstore, stripe or lemonsqueezy",
        ));
    }
    let r = body.provider_ref.trim();
    if r.is_empty() || r.len() > 1024 || r.chars().any(char::is_control) {
        return Err(invalid(
            "provider_ref",
            "provider_ref must be 1 to 1024 printable characters",
        ));
    }
    let scope = user.scope();
    let me = user.token.user;
    state
        .store()
        .link_provider_ref(&scope, me, &body.provider, r)
        .await
        .map_err(|e| match e {
            keel_store::StoreError::Conflict(_) => ApiError::new(
                StatusCode::CONFLICT,
                "store_link_taken",
                "this purchase is linked to another account",
            ),
            other => other.into(),
        })?;
    let data = json!({"provider": body.provider});
    state
        .identity()
        .audit(
            scope.tenant(),
            &me.to_string(),
            "store_link.created",
            Some(me.to_string()),
            data,
        )
        .await;
    // An event that was waiting for this link can apply now.
    super::worker::wake();
    Ok(Json(StoreLinkOut {
        provider: body.provider,
        provider_ref: r.to_string(),
        user_id: me.to_string(),
    }))
}
