//! Who a service call comes from. The product's own workers call `/v1/service/*` with an
//! HMAC-signed request (docs/signing.md; checked once by [`super::signature`]), or, unless
//! `service_auth = "signed"`, with `Authorization: Bearer <service>.<secret>`. Keys come
//! from `KEEL_SERVICE_KEYS` / `KEEL_SERVICE_KEYS_FILE` only and are never logged.

use std::fmt;
use std::str::FromStr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use keel_core::integrity::BearerRefusal;
use serde_json::json;

use crate::identity::extract::bearer;
use crate::{ApiError, AppState};

/// Which credentials the service API accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServiceAuthMode {
    /// Signed requests, and bearer service keys.
    #[default]
    SignedOrBearer,
    /// Signed requests only; a bearer service key is refused with `bearer_not_allowed`.
    Signed,
}

impl FromStr for ServiceAuthMode {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "signed_or_bearer" => Ok(ServiceAuthMode::SignedOrBearer),
            "signed" => Ok(ServiceAuthMode::Signed),
            _ => Err("signed_or_bearer or signed"),
        }
    }
}

/// An authenticated product service.
#[derive(Clone, Debug)]
pub struct ServiceCaller {
    /// The service (the key id without `@key`).
    pub key_id: String,
    /// Which of its keys matched.
    pub key_name: String,
    /// `v2`, `v1` or `bearer`.
    pub scheme: &'static str,
}

impl fmt::Display for ServiceCaller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{} ({})", self.key_id, self.key_name, self.scheme)
    }
}

/// Counts one authentication attempt: `keel_service_auth_total{scheme, outcome}`.
pub(crate) fn record(scheme: &'static str, outcome: &'static str) {
    metrics::counter!("keel_service_auth_total", "scheme" => scheme, "outcome" => outcome)
        .increment(1);
}

/// Authenticates `Bearer <service>.<secret>` under the configured mode.
pub(crate) fn bearer_caller(state: &AppState, token: &str) -> Result<ServiceCaller, ApiError> {
    let settings = state.settings();
    if settings.service_auth == ServiceAuthMode::Signed {
        record("bearer", "bearer_not_allowed");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bearer_not_allowed",
            "service keys must sign requests (docs/signing.md); bearer service keys are disabled",
        ));
    }
    let invalid = || {
        record("bearer", "invalid_service_credentials");
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_service_credentials",
            "a valid service key is required",
        )
    };
    let (service, secret) = token.split_once('.').ok_or_else(invalid)?;
    match settings.service_keys.verify_bearer(service, secret) {
        Ok(key) => {
            record("bearer", "ok");
            Ok(ServiceCaller {
                key_id: key.service.clone(),
                key_name: key.name.clone(),
                scheme: "bearer",
            })
        }
        Err(BearerRefusal::Invalid) => Err(invalid()),
        Err(BearerRefusal::Revoked) => {
            record("bearer", "key_revoked");
            Err(revoked(service))
        }
    }
}

/// `401 key_revoked`.
pub(crate) fn revoked(key_id: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "key_revoked",
        "this service key has been revoked",
    )
    .with_details(json!({ "key_id": key_id }))
}

impl FromRequestParts<AppState> for ServiceCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Under /v1/service/ the signature layer has already decided.
        if let Some(caller) = parts.extensions.get::<ServiceCaller>() {
            return Ok(caller.clone());
        }
        match bearer(parts) {
            Some(token) => bearer_caller(state, token),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "signature_missing",
                "a signed request or a service key is required",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn modes_parse_from_their_documented_names() {
        assert_eq!(
            "signed_or_bearer".parse::<ServiceAuthMode>(),
            Ok(ServiceAuthMode::SignedOrBearer)
        );
        assert_eq!(
            "signed".parse::<ServiceAuthMode>(),
            Ok(ServiceAuthMode::Signed)
        );
        assert!("bearer".parse::<ServiceAuthMode>().is_err());
    }
}
