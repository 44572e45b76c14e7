//! Stripe checkout links: `POST /v1/billing/checkout` makes a Checkout Session that
//! subscribes the signed-in user to a plan's Stripe price (`[plans.<name>.stripe]`), and
//! `POST /v1/billing/portal` a Billing Portal session for the user's Stripe customer. The
//! subscription itself arrives later through Stripe's webhooks (linked back to the user by
//! `client_reference_id` and `metadata[keel_user_id]`).

mod settings;
mod stripe;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) use self::settings::{apply, secret_key};
pub use self::settings::{StripeKey, StripeSettings};
use self::stripe::{not_configured, Stripe};
use crate::http::error::ErrorEnvelope;
use crate::identity::AuthUser;
use crate::{ApiError, ApiJson, AppState};

/// The provider name customers are stored under.
pub const PROVIDER: &str = "stripe";

/// The checkout routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_checkout))
        .routes(routes!(create_portal))
}

/// What to buy.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutIn {
    /// A plan of the manifest that has a Stripe price.
    pub plan: String,
}

/// A hosted page to send the user to.
#[derive(Serialize, ToSchema)]
pub struct SessionOut {
    /// Stripe's session id.
    pub id: String,
    /// The page.
    pub url: String,
}

/// Starts a Stripe Checkout for a plan; answers the page to send the user to.
#[utoipa::path(post, path = "/v1/billing/checkout", tag = "billing", operation_id = "v1.billing.checkout",
    request_body = CheckoutIn, security(("bearer" = [])),
    responses((status = 200, body = SessionOut), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope), (status = 502, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
async fn create_checkout(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<CheckoutIn>,
) -> Result<Json<SessionOut>, ApiError> {
    user.require_session()?;
    let plan = state.manifest().plans.get(&body.plan).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_plan",
            "no such plan",
        )
        .with_details(json!({"field": "plan"}))
    })?;
    let price = plan
        .stripe
        .as_ref()
        .map(|s| s.price.clone())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "plan_not_purchasable",
                "this plan cannot be bought through Stripe",
            )
            .with_details(json!({"field": "plan"}))
        })?;
    let s = &state.settings().stripe;
    let stripe = Stripe::from_settings(s)?;
    let success = s
        .success_url
        .clone()
        .ok_or_else(|| not_configured("stripe_success_url"))?;
    let cancel = s
        .cancel_url
        .clone()
        .ok_or_else(|| not_configured("stripe_cancel_url"))?;
    let user_id = user.token.user.to_string();
    let mut form = vec![
        ("mode", "subscription".to_string()),
        ("line_items[0][price]", price),
        ("line_items[0][quantity]", "1".to_string()),
        ("client_reference_id", user_id.clone()),
        ("metadata[keel_user_id]", user_id.clone()),
        ("metadata[keel_plan]", body.plan.clone()),
        ("subscription_data[metadata][keel_user_id]", user_id.clone()),
        ("success_url", success),
        ("cancel_url", cancel),
    ];
    let scope = user.scope();
    if let Some(customer) = state
        .store()
        .billing_customer(&scope, user.token.user, PROVIDER)
        .await?
    {
        form.push(("customer", customer));
    }
    let key = format!("keel-checkout-{}", uuid::Uuid::now_v7());
    let session = stripe.create("/v1/checkout/sessions", &form, &key).await?;
    Ok(Json(SessionOut {
        id: session.id,
        url: session.url,
    }))
}

/// Opens the Stripe Billing Portal for the user's customer.
#[utoipa::path(post, path = "/v1/billing/portal", tag = "billing", operation_id = "v1.billing.portal",
    security(("bearer" = [])),
    responses((status = 200, body = SessionOut), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope), (status = 502, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
async fn create_portal(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<SessionOut>, ApiError> {
    user.require_session()?;
    let s = &state.settings().stripe;
    let stripe = Stripe::from_settings(s)?;
    let return_url = s
        .portal_return_url
        .clone()
        .ok_or_else(|| not_configured("stripe_portal_return_url"))?;
    let customer = state
        .store()
        .billing_customer(&user.scope(), user.token.user, PROVIDER)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "no_billing_customer",
                "there is no Stripe customer for this user yet; buy a plan through checkout first",
            )
        })?;
    let form = [("customer", customer), ("return_url", return_url)];
    let key = format!("keel-portal-{}", uuid::Uuid::now_v7());
    let session = stripe
        .create("/v1/billing_portal/sessions", &form, &key)
        .await?;
    Ok(Json(SessionOut {
        id: session.id,
        url: session.url,
    }))
}
