//! A minimal Stripe REST client: form-encoded POSTs with the secret key as a bearer token
//! and an `Idempotency-Key`, for Checkout Sessions and Billing Portal sessions. Stripe's
//! errors become `payment_provider_error`; the key and Stripe's messages never reach a
//! client or a log.

use std::time::Duration;

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::settings::{StripeKey, StripeSettings};
use crate::ApiError;

/// A created session: its id and the URL to send the user to.
#[derive(Debug, Deserialize)]
pub struct Session {
    /// `cs_…` or `bps_…`.
    pub id: String,
    /// The hosted page.
    pub url: String,
}

#[derive(Deserialize)]
struct StripeErrorBody {
    error: StripeError,
}

#[derive(Deserialize)]
struct StripeError {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
}

/// Talks to Stripe.
#[derive(Clone, Debug)]
pub struct Stripe {
    http: reqwest::Client,
    base: String,
    key: StripeKey,
}

/// 503 when Stripe is not configured on this deployment.
pub(crate) fn not_configured(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "payment_provider_not_configured",
        format!("payments are not configured on this deployment ({what} is not set)"),
    )
}

fn provider_error(status: Option<u16>, kind: Option<String>, code: Option<String>) -> ApiError {
    tracing::warn!(
        provider = "stripe",
        status,
        kind = kind.as_deref(),
        code = code.as_deref(),
        "Stripe refused or failed a request"
    );
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "payment_provider_error",
        "the payment provider could not create the session; try again later",
    )
    .with_details(json!({"provider": "stripe", "provider_status": status,
        "provider_error_type": kind, "provider_error_code": code}))
}

impl Stripe {
    /// A client for the configured account; 503 without a key.
    pub fn from_settings(s: &StripeSettings) -> Result<Self, ApiError> {
        let key = s
            .secret_key
            .clone()
            .ok_or_else(|| not_configured("KEEL_STRIPE_SECRET_KEY"))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(ApiError::internal)?;
        Ok(Self {
            http,
            base: s.api_base.clone(),
            key,
        })
    }

    /// POSTs `form` to `path` (e.g. `/v1/checkout/sessions`) and reads a session.
    pub async fn create(
        &self,
        path: &str,
        form: &[(&str, String)],
        idempotency_key: &str,
    ) -> Result<Session, ApiError> {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(self.key.expose())
            .header("Idempotency-Key", idempotency_key)
            .form(form)
            .send()
            .await
            .map_err(|e| provider_error(e.status().map(|s| s.as_u16()), None, None))?;
        let status = res.status();
        let body = res
            .bytes()
            .await
            .map_err(|_| provider_error(Some(status.as_u16()), None, None))?;
        if !status.is_success() {
            let err = serde_json::from_slice::<StripeErrorBody>(&body).ok();
            let (kind, code) = err.map_or((None, None), |e| (e.error.kind, e.error.code));
            return Err(provider_error(Some(status.as_u16()), kind, code));
        }
        serde_json::from_slice::<Session>(&body).map_err(|_| {
            provider_error(
                Some(status.as_u16()),
                Some("unreadable_response".into()),
                None,
            )
        })
    }
}
