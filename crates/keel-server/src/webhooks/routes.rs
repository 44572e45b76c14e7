//! `POST /v1/webhooks/{stripe|appstore|googleplay|lemonsqueezy}`: verify, read, keep in the
//! inbox, acknowledge. A delivery that fails verification or cannot be read is refused and
//! stored nowhere; a duplicate is acknowledged without a second row.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::Utc;
use keel_core::webhooks::{self as core, StoreEvent};
use keel_store::NewInboxEvent;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{appstore, googleplay};
use crate::http::error::ErrorEnvelope;
use crate::{ApiError, AppState};

/// Largest webhook body accepted (providers send far less).
pub const BODY_LIMIT: usize = 256 * 1024;

/// The webhook routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(stripe))
        .routes(routes!(appstore))
        .routes(routes!(googleplay))
        .routes(routes!(lemonsqueezy))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

/// The acknowledgement.
#[derive(Serialize, ToSchema)]
pub struct WebhookAck {
    /// The inbox event id (`whk_…`).
    pub id: String,
    /// Whether this delivery was already in the inbox.
    pub duplicate: bool,
}

fn refuse(provider: &'static str, status: StatusCode, code: &'static str, msg: String) -> ApiError {
    metrics::counter!("keel_webhooks_refused_total", "provider" => provider, "code" => code)
        .increment(1);
    tracing::warn!(provider, code, reason = %msg, "webhook refused");
    ApiError::new(status, code, msg)
}

fn unauthorized(provider: &'static str, code: &'static str, msg: impl Into<String>) -> ApiError {
    refuse(provider, StatusCode::UNAUTHORIZED, code, msg.into())
}

fn malformed(provider: &'static str, msg: impl Into<String>) -> ApiError {
    refuse(
        provider,
        StatusCode::BAD_REQUEST,
        "malformed_payload",
        msg.into(),
    )
}

fn not_configured(provider: &'static str) -> ApiError {
    refuse(
        provider,
        StatusCode::SERVICE_UNAVAILABLE,
        "webhook_not_configured",
        format!("{provider} webhooks are not configured on this server"),
    )
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Keeps a verified, readable event and acknowledges it.
async fn keep(
    state: &AppState,
    event: StoreEvent,
    payload: Value,
) -> Result<Json<WebhookAck>, ApiError> {
    let provider = event.provider;
    let (stored, new) = state
        .store()
        .record_inbox_event(NewInboxEvent {
            provider: provider.to_string(),
            provider_event_id: event.event_id,
            event_type: event.event_type,
            payload,
            received_at: Utc::now(),
        })
        .await?;
    let outcome = if new { "new" } else { "duplicate" };
    metrics::counter!("keel_webhooks_received_total", "provider" => provider, "outcome" => outcome)
        .increment(1);
    tracing::info!(provider, id = %stored.id, duplicate = !new, "webhook received");
    if new {
        super::worker::wake();
    }
    Ok(Json(WebhookAck {
        id: stored.id.to_string(),
        duplicate: !new,
    }))
}

fn read_json(provider: &'static str, body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| malformed(provider, "the body is not a JSON object"))
}

/// A Stripe event, signed with `Stripe-Signature: t=…,v1=…`.
#[utoipa::path(post, path = "/v1/webhooks/stripe", tag = "webhooks", operation_id = "v1.webhooks.stripe",
    request_body(content = Object, description = "A Stripe event"),
    params(("Stripe-Signature" = String, Header, description = "t=<unix>,v1=<hex HMAC-SHA256 of t.payload>")),
    responses((status = 200, body = WebhookAck), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
async fn stripe(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookAck>, ApiError> {
    const P: &str = "stripe";
    let cfg = &state.settings().webhooks;
    if cfg.stripe_secrets.is_empty() {
        return Err(not_configured(P));
    }
    let sig = header(&headers, "stripe-signature")
        .ok_or_else(|| unauthorized(P, "missing_signature", "Stripe-Signature is required"))?;
    let tolerance = i64::try_from(cfg.stripe_tolerance.as_secs()).unwrap_or(300);
    core::verify_stripe(
        sig,
        &body,
        &cfg.stripe_secrets,
        Utc::now().timestamp(),
        tolerance,
    )
    .map_err(|e| unauthorized(P, e.code(), e.to_string()))?;
    let payload = read_json(P, &body)?;
    let event = core::stripe::read(&payload).map_err(|e| malformed(P, e.0))?;
    keep(&state, event, payload).await
}

/// A Lemon Squeezy event, signed with `X-Signature` (hex HMAC-SHA256 of the body).
#[utoipa::path(post, path = "/v1/webhooks/lemonsqueezy", tag = "webhooks", operation_id = "v1.webhooks.lemonsqueezy",
    request_body(content = Object, description = "A Lemon Squeezy event"),
    params(("X-Signature" = String, Header, description = "hex HMAC-SHA256 of the raw body")),
    responses((status = 200, body = WebhookAck), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
async fn lemonsqueezy(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookAck>, ApiError> {
    const P: &str = "lemonsqueezy";
    let cfg = &state.settings().webhooks;
    if cfg.lemonsqueezy_secrets.is_empty() {
        return Err(not_configured(P));
    }
    let sig = header(&headers, "x-signature")
        .ok_or_else(|| unauthorized(P, "missing_signature", "X-Signature is required"))?;
    core::verify_lemonsqueezy(sig, &body, &cfg.lemonsqueezy_secrets)
        .map_err(|e| unauthorized(P, e.code(), e.to_string()))?;
    let payload = read_json(P, &body)?;
    let event = core::lemonsqueezy::read(&payload).map_err(|e| malformed(P, e.0))?;
    keep(&state, event, payload).await
}

/// An App Store Server Notification V2: `{"signedPayload": "<JWS>"}`.
#[utoipa::path(post, path = "/v1/webhooks/appstore", tag = "webhooks", operation_id = "v1.webhooks.appstore",
    request_body(content = Object, description = "{\"signedPayload\": \"<JWS signed by an x5c chain to Apple Root CA - G3>\"}"),
    responses((status = 200, body = WebhookAck), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
async fn appstore(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<WebhookAck>, ApiError> {
    const P: &str = "appstore";
    let cfg = &state.settings().webhooks;
    if cfg.appstore_roots.is_empty() {
        return Err(not_configured(P));
    }
    let now = rustls_pki_types::UnixTime::now();
    let payload =
        appstore::verify_notification(&body, &cfg.appstore_roots, now).map_err(|e| match e {
            appstore::JwsError::Malformed(m) => malformed(P, m),
            other => unauthorized(P, other.code(), other.to_string()),
        })?;
    if let Some(bundle) = &cfg.appstore_bundle_id {
        let named = payload
            .pointer("/notification/data/bundleId")
            .and_then(Value::as_str);
        if named.is_some_and(|b| b != bundle) {
            return Err(refuse(
                P,
                StatusCode::UNPROCESSABLE_ENTITY,
                "wrong_app",
                "the notification is for another bundle id".into(),
            ));
        }
    }
    let event = core::appstore::read(&payload).map_err(|e| malformed(P, e.0))?;
    keep(&state, event, payload).await
}

/// A Google Play RTDN through a Pub/Sub push subscription with an OIDC token.
#[utoipa::path(post, path = "/v1/webhooks/googleplay", tag = "webhooks", operation_id = "v1.webhooks.googleplay",
    request_body(content = Object, description = "Pub/Sub push envelope {\"message\": {\"data\": <base64 DeveloperNotification>, \"messageId\"}, \"subscription\"}"),
    params(("Authorization" = String, Header, description = "Bearer <Google-signed OIDC token>")),
    responses((status = 200, body = WebhookAck), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
async fn googleplay(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookAck>, ApiError> {
    const P: &str = "googleplay";
    let cfg = &state.settings().webhooks;
    let Some(audience) = &cfg.google_audience else {
        return Err(not_configured(P));
    };
    let auth = header(&headers, "authorization");
    let fail = |e: googleplay::PushError| match e {
        googleplay::PushError::JwksUnavailable(_) => {
            refuse(P, StatusCode::SERVICE_UNAVAILABLE, e.code(), e.to_string())
        }
        other => unauthorized(P, other.code(), other.to_string()),
    };
    let verify = |jwks: &str| {
        let expect = googleplay::Expect {
            jwks,
            issuer: &cfg.google_issuer,
            audience,
            email: cfg.google_email.as_deref(),
        };
        googleplay::verify_token(auth, &expect)
    };
    match (&cfg.google_jwks, &cfg.google_jwks_url) {
        (Some(jwks), _) => verify(jwks).map_err(fail)?,
        (None, Some(url)) => {
            match verify(&googleplay::remote_jwks(url, false).await.map_err(fail)?) {
                // Google rotated its keys: fetch again once.
                Err(googleplay::PushError::UnknownKey) => {
                    verify(&googleplay::remote_jwks(url, true).await.map_err(fail)?)
                        .map_err(fail)?
                }
                other => other.map_err(fail)?,
            }
        }
        (None, None) => return Err(not_configured(P)),
    }
    let payload = googleplay::read_envelope(&body).map_err(|e| malformed(P, e.to_string()))?;
    if let Some(package) = &cfg.google_package {
        let named = payload
            .pointer("/notification/packageName")
            .and_then(Value::as_str);
        if named != Some(package.as_str()) {
            return Err(refuse(
                P,
                StatusCode::UNPROCESSABLE_ENTITY,
                "wrong_app",
                "the notification is for another package".into(),
            ));
        }
    }
    let event = core::googleplay::read(&payload).map_err(|e| malformed(P, e.0))?;
    keep(&state, event, payload).await
}
