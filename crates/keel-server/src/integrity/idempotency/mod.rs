//! `Idempotency-Key` on every mutating client and service request, in one route layer:
//! a request with a key claims a record in the store before its handler runs; the
//! response is kept (sealed) and replayed byte for byte to retries; a retry while the
//! first is running gets 409, the same key on another request 422. The rules live in
//! `keel_core::integrity::idempotency`; see docs/idempotency.md for the contract.

mod keep;
mod openapi;
pub mod sweeper;

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use keel_core::integrity::idempotency::{
    IdempotencyKey, KeyError, RecordKeys, KEY_HEADER, MAX_KEY_LEN,
};
use keel_store::{ClaimOutcome, NewIdempotencyClaim, TenantScope};
use serde_json::json;
use uuid::Uuid;

pub(crate) use openapi::document;

use crate::http::principal::{self, Principal};
use crate::identity::system_tenant;
use crate::integrity::ServiceCaller;
use crate::{ApiError, AppState, Settings};

/// Added to `request_timeout` for a claim's lock: time to read the response and store it.
const LOCK_MARGIN: Duration = Duration::from_secs(10);

/// Who a record belongs to: the tenant it is stored under and the caller's name.
struct Caller {
    scope: TenantScope,
    principal: String,
}

/// Route layer: applies idempotency to mutating `/v1/*` requests that carry a key.
pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !applies(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let Some(raw) = req.headers().get(KEY_HEADER) else {
        return next.run(req).await;
    };
    let key = match IdempotencyKey::parse(raw.as_bytes()) {
        Ok(key) => key,
        Err(why) => return invalid_key(why).into_response(),
    };
    let (mut parts, body) = req.into_parts();
    let Some(caller) = caller(&state, &mut parts).await else {
        // Anonymous calls (sign-up, login, refresh…) answer with tokens: never replay
        // one caller's answer to another, so their key is ignored.
        return next.run(Request::from_parts(parts, body)).await;
    };
    let body = match buffer(body, state.settings().body_limit).await {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let keys = RecordKeys::derive(
        &caller.principal,
        parts.method.as_str(),
        parts.uri.path(),
        &key,
    );
    let now = Utc::now();
    let claim = new_claim(state.settings(), &caller, &keys, &parts, &body, now);
    let store = state.store();
    match store.claim_idempotency(&caller.scope, &claim, now).await {
        Err(e) => ApiError::internal(e).into_response(),
        Ok(ClaimOutcome::Completed(kept)) => {
            count("replayed");
            keep::replay(&keys, &kept)
        }
        Ok(ClaimOutcome::InProgress { .. }) => {
            count("in_progress");
            in_progress().into_response()
        }
        Ok(ClaimOutcome::Mismatch) => {
            count("reused");
            reused().into_response()
        }
        Ok(ClaimOutcome::Claimed { taken_over }) => {
            if taken_over {
                tracing::warn!(record = %claim.id, "took over an idempotency claim whose holder stopped");
            }
            count("executed");
            let held = keep::Held {
                store: store.clone(),
                scope: caller.scope,
                id: claim.id,
                lock: claim.lock,
                keys,
                ttl: state.settings().idempotency_ttl,
            };
            let req = Request::from_parts(parts, Body::from(body));
            keep::execute(held, state.settings().request_timeout, req, next).await
        }
    }
}

/// The claim for this request: its fingerprint, a fresh lock and the lock's expiry.
fn new_claim(
    settings: &Settings,
    caller: &Caller,
    keys: &RecordKeys,
    parts: &Parts,
    body: &[u8],
    now: DateTime<Utc>,
) -> NewIdempotencyClaim {
    let (method, path) = (parts.method.as_str(), parts.uri.path());
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let query = parts.uri.query().unwrap_or("");
    let lock_window = settings.request_timeout + LOCK_MARGIN;
    NewIdempotencyClaim {
        id: keys.id().to_string(),
        principal: caller.principal.clone(),
        method: method.to_string(),
        path: path.to_string(),
        fingerprint: keys.fingerprint(method, path, query, &content_type, body),
        lock: Uuid::now_v7(),
        locked_until: after(now, lock_window),
        // A record outlives its lock, so a slow first request is never swept mid-way.
        expires_at: after(now, settings.idempotency_ttl.max(lock_window)),
    }
}

/// Mutating methods on the client and service APIs; webhooks carry their own event ids.
fn applies(method: &Method, path: &str) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) && path.starts_with("/v1/")
        && !path.starts_with("/v1/webhooks/")
}

/// The caller a record is kept for, or `None` when the key is ignored (anonymous, or a
/// service whose credential does not verify: nothing may be replayed to it).
async fn caller(state: &AppState, parts: &mut Parts) -> Option<Caller> {
    match principal::resolve(state, parts).await {
        Principal::User {
            tenant,
            user,
            api_key,
        } => Some(Caller {
            scope: TenantScope::new(tenant),
            // Per API key: a narrow key must not be handed what a broader one did.
            principal: match api_key {
                Some(key) => format!("user:{user}/{key}"),
                None => format!("user:{user}"),
            },
        }),
        Principal::Service { key_id } => {
            let verified = match parts.extensions.get::<ServiceCaller>() {
                Some(c) => c.key_id == key_id,
                None => ServiceCaller::from_request_parts(parts, state)
                    .await
                    .is_ok_and(|c| c.key_id == key_id),
            };
            verified.then(|| Caller {
                scope: TenantScope::new(system_tenant()),
                principal: format!("service:{key_id}"),
            })
        }
        Principal::Anonymous => None,
    }
}

/// Reads the whole request body (it is fingerprinted), within the configured limit.
async fn buffer(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is larger than the configured limit",
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("the request body could not be read: {e}"),
        )),
    }
}

fn invalid_key(why: KeyError) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "idempotency_key_invalid",
        format!("{why}; use 1 to {MAX_KEY_LEN} printable ASCII characters"),
    )
    .with_details(json!({"header": "Idempotency-Key", "max_length": MAX_KEY_LEN}))
}

fn in_progress() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_in_progress",
        "a request with this idempotency key is still being processed; retry shortly",
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
}

fn reused() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "this idempotency key was used with a different request; use a new key",
    )
}

fn count(outcome: &'static str) {
    metrics::counter!("keel_idempotency_total", "outcome" => outcome).increment(1);
}

fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mutations_of_the_client_and_service_apis_are_covered() {
        assert!(applies(&Method::POST, "/v1/api-keys"));
        assert!(applies(&Method::DELETE, "/v1/api-keys/key_1"));
        assert!(applies(&Method::PUT, "/v1/service/users/u/subscription"));
        assert!(applies(&Method::PATCH, "/v1/jobs/j"));
        assert!(!applies(&Method::GET, "/v1/api-keys"));
        assert!(!applies(&Method::HEAD, "/v1/me"));
        assert!(!applies(&Method::POST, "/v1/webhooks/stripe"));
        assert!(!applies(&Method::POST, "/admin/v1/accounts"));
        assert!(!applies(&Method::POST, "/v1"));
    }

    #[test]
    fn times_past_the_calendar_saturate() {
        assert_eq!(
            after(DateTime::<Utc>::MAX_UTC, Duration::from_secs(1)),
            DateTime::<Utc>::MAX_UTC
        );
    }
}
