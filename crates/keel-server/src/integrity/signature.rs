//! The one place service calls are authenticated: a layer on `/v1/service/*` that buffers
//! the body (within `body_limit`), verifies the HMAC signature or the bearer service key,
//! claims the nonce, and leaves the [`ServiceCaller`] in the request extensions. A refused
//! request never reaches a handler.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use keel_core::integrity::keys::valid_key_id;
use keel_core::integrity::signing::scheme_label;
use keel_core::integrity::{
    nonce_ttl_secs, verify, Refusal, SignatureHeaders, SignedRequest, KEY_ID_HEADER, NONCE_HEADER,
    SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use serde_json::json;

use super::nonces::{NonceError, NonceStore};
use super::service_auth::{bearer_caller, record, revoked, ServiceCaller};
use crate::http::principal::Principal;
use crate::identity::extract::bearer;
use crate::{ApiError, AppState};

/// Paths this layer guards.
pub const SERVICE_PREFIX: &str = "/v1/service/";

/// The layer's state: the app and its nonce store.
pub(crate) struct Gate {
    app: AppState,
    nonces: NonceStore,
}

impl Gate {
    /// A gate whose nonce store follows the app's (Redis when configured).
    pub(crate) fn new(app: AppState) -> Arc<Gate> {
        let tolerance = app.settings().signature_tolerance.as_secs();
        let nonces = NonceStore::new(app.redis().cloned(), nonce_ttl_secs(tolerance));
        Arc::new(Gate { app, nonces })
    }
}

/// The middleware.
pub(crate) async fn authenticate(
    State(gate): State<Arc<Gate>>,
    req: Request,
    next: Next,
) -> Response {
    if !req.uri().path().starts_with(SERVICE_PREFIX) {
        return next.run(req).await;
    }
    match gate.admit(req).await {
        Ok(req) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl Gate {
    async fn admit(&self, req: Request) -> Result<Request, ApiError> {
        let (mut parts, body) = req.into_parts();
        let signed = [
            KEY_ID_HEADER,
            TIMESTAMP_HEADER,
            NONCE_HEADER,
            SIGNATURE_HEADER,
        ]
        .iter()
        .any(|h| parts.headers.contains_key(*h));
        let (caller, body) = if signed {
            let bytes = buffer(body, self.app.settings().body_limit).await?;
            (self.check_signed(&parts, &bytes).await?, Body::from(bytes))
        } else if let Some(token) = bearer(&parts) {
            (bearer_caller(&self.app, token)?, body)
        } else {
            record("none", "signature_missing");
            let all = vec![
                KEY_ID_HEADER,
                TIMESTAMP_HEADER,
                NONCE_HEADER,
                SIGNATURE_HEADER,
            ];
            return Err(refusal_error(Refusal::Missing(all), None));
        };
        parts.extensions.insert(Principal::Service {
            key_id: caller.key_id.clone(),
        });
        parts.extensions.insert(caller);
        Ok(Request::from_parts(parts, body))
    }

    async fn check_signed(&self, parts: &Parts, body: &[u8]) -> Result<ServiceCaller, ApiError> {
        let h = &parts.headers;
        let headers = SignatureHeaders {
            key_id: header(h, KEY_ID_HEADER),
            timestamp: header(h, TIMESTAMP_HEADER),
            nonce: header(h, NONCE_HEADER),
            signature: header(h, SIGNATURE_HEADER),
        };
        let request = SignedRequest {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            body,
        };
        let settings = self.app.settings();
        let now = chrono::Utc::now().timestamp();
        let tolerance = settings.signature_tolerance.as_secs();
        let refused = |refusal: Refusal| {
            let scheme = scheme_label(headers.signature);
            record(scheme, refusal.code());
            let key_id = headers.key_id.filter(|k| valid_key_id(k)).unwrap_or("-");
            tracing::info!(target: "keel::integrity", code = refusal.code(), scheme, key_id, "signed service call refused");
            refusal_error(refusal, headers.key_id)
        };
        let verified =
            verify(&settings.service_keys, &headers, &request, now, tolerance).map_err(refused)?;
        let scheme = verified.version.label();
        let service = verified.key.service.as_str();
        self.claim_nonce(scheme, service, &verified.nonce).await?;
        record(scheme, "ok");
        Ok(ServiceCaller {
            key_id: verified.key.service.clone(),
            key_name: verified.key.name.clone(),
            scheme,
        })
    }

    /// Claims the nonce, or says why the call is refused (replayed, or no answer).
    async fn claim_nonce(
        &self,
        scheme: &'static str,
        service: &str,
        nonce: &str,
    ) -> Result<(), ApiError> {
        match self.nonces.claim(service, nonce).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                record(scheme, "nonce_replayed");
                tracing::warn!(target: "keel::integrity", service, "replayed nonce refused");
                Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "nonce_replayed",
                    "this nonce was already used; sign each request with a fresh nonce",
                ))
            }
            Err(NonceError::Full) => {
                record(scheme, "nonce_store_full");
                tracing::error!(target: "keel::integrity", "nonce window full; refusing signed calls");
                Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "nonce_store_full",
                    "too many signed calls in the nonce window; retry shortly",
                ))
            }
            Err(NonceError::Unavailable(why)) => {
                record(scheme, "nonce_store_unavailable");
                tracing::error!(target: "keel::integrity", error = %why, "nonce store unavailable");
                Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "nonce_store_unavailable",
                    "signed calls cannot be checked right now; retry shortly",
                ))
            }
        }
    }
}

async fn buffer(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is larger than the configured limit",
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "the request body could not be read",
        )),
    }
}

/// The envelope for a refusal: 400 for a malformed header, 401 otherwise.
fn refusal_error(refusal: Refusal, key_id: Option<&str>) -> ApiError {
    let unauthorized = StatusCode::UNAUTHORIZED;
    let code = refusal.code();
    match refusal {
        Refusal::Missing(missing) => ApiError::new(
            unauthorized,
            code,
            "a signed request (x-keel-key-id, x-keel-timestamp, x-keel-nonce, x-keel-signature) or a service key is required",
        )
        .with_details(json!({ "missing": missing })),
        Refusal::Malformed { header, expected } => ApiError::new(
            StatusCode::BAD_REQUEST,
            code,
            format!("{header} is malformed: expected {expected}"),
        )
        .with_details(json!({ "header": header, "expected": expected })),
        Refusal::UnknownKey => ApiError::new(unauthorized, code, "no such service key")
            .with_details(json!({ "key_id": key_id })),
        Refusal::KeyRevoked => revoked(key_id.unwrap_or_default()),
        Refusal::Expired {
            server_time,
            timestamp,
            tolerance_secs,
        } => ApiError::new(
            unauthorized,
            code,
            "x-keel-timestamp is outside the accepted window; check the clock",
        )
        .with_details(json!({
            "server_time": server_time,
            "timestamp": timestamp,
            "tolerance_seconds": tolerance_secs,
        })),
        Refusal::VersionNotAllowed => ApiError::new(
            unauthorized,
            code,
            "v1 signatures are accepted only for keys in legacy mode; sign with v2",
        )
        .with_details(json!({ "key_id": key_id, "allowed": ["v2"] })),
        Refusal::Invalid { canonical } => ApiError::new(
            unauthorized,
            code,
            "the signature does not match this request (wrong secret, or the request changed after signing)",
        )
        .with_details(json!({ "canonical": canonical })),
    }
}
