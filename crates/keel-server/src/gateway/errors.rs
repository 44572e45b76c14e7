//! The gateway's errors in OpenAI's shape (`code`, `message`, `type`, `param`), and the
//! rejection metric every enforcement step reports through.

use axum::http::{header, HeaderValue, StatusCode};
use keel_core::gateway::RouteError;
use serde_json::json;

use super::providers::{UpstreamError, UpstreamErrorKind};
use crate::ApiError;

/// The enforcement steps, in order; the `step` label of `keel_gateway_rejections_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Credentials and the API key's `gateway` scope.
    Authenticate,
    /// The request body.
    Request,
    /// Operator kill switches.
    KillSwitch,
    /// Feature, model and model class.
    Entitlement,
    /// Token budgets per key, user and tenant.
    RateLimit,
    /// The safety precheck.
    Safety,
    /// Budget admission (reservations).
    Budget,
    /// The upstream call.
    Upstream,
}

impl Step {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Authenticate => "authenticate",
            Step::Request => "request",
            Step::KillSwitch => "kill_switch",
            Step::Entitlement => "entitlement",
            Step::RateLimit => "rate_limit",
            Step::Safety => "safety",
            Step::Budget => "budget",
            Step::Upstream => "upstream",
        }
    }
}

/// Counts a refusal at `step` and passes the error on.
pub fn rejected(step: Step, error: ApiError) -> ApiError {
    metrics::counter!(
        "keel_gateway_rejections_total",
        "step" => step.as_str(),
        "code" => error.code()
    )
    .increment(1);
    error
}

/// 400 `invalid_request_error` about one request field.
pub fn invalid(code: &'static str, message: impl Into<String>, param: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
        .with_param(param)
        .with_details(json!({ "field": param }))
}

/// A routing refusal.
pub fn route_error(error: RouteError) -> ApiError {
    let message = error.to_string();
    match &error {
        RouteError::ModelNotFound(model) => {
            ApiError::new(StatusCode::NOT_FOUND, "model_not_found", message)
                .with_param("model")
                .with_details(json!({ "model": model }))
        }
        RouteError::UnknownFeature(feature) => {
            ApiError::new(StatusCode::BAD_REQUEST, "unknown_feature", message)
                .with_details(json!({ "feature": feature, "header": "x-keel-feature" }))
        }
        RouteError::NoFeature => {
            ApiError::new(StatusCode::BAD_REQUEST, "feature_required", message)
                .with_details(json!({ "header": "x-keel-feature" }))
        }
        RouteError::FeatureNotEntitled(feature) => {
            ApiError::new(StatusCode::FORBIDDEN, "feature_not_entitled", message)
                .with_details(json!({ "feature": feature }))
        }
        RouteError::ModelClassNotEntitled(class) => {
            ApiError::new(StatusCode::FORBIDDEN, "model_class_not_entitled", message)
                .with_param("model")
                .with_details(json!({ "model_class": class }))
        }
        RouteError::FeatureMismatch {
            model,
            route_feature,
            requested,
        } => ApiError::new(StatusCode::BAD_REQUEST, "feature_mismatch", message)
            .with_param("model")
            .with_details(json!({
                "model": model, "feature": route_feature, "requested_feature": requested,
            })),
    }
}

/// An upstream failure after every deployment was tried (the message never holds a key).
pub fn upstream_error(error: &UpstreamError) -> ApiError {
    let status = match error.kind {
        UpstreamErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        UpstreamErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        UpstreamErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        UpstreamErrorKind::Rejected => StatusCode::BAD_REQUEST,
        _ => StatusCode::BAD_GATEWAY,
    };
    let message = match error.kind {
        UpstreamErrorKind::Rejected => {
            format!("the upstream refused the request: {}", error.message)
        }
        _ => "the upstream model failed to answer; retry shortly".to_owned(),
    };
    let mut api = ApiError::new(status, error.kind.code(), message).with_details(json!({
        "provider": error.provider,
        "upstream_status": error.status,
    }));
    if let Some(after) = error.retry_after {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        api = api.with_header(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    api
}

/// 503 for a route none of whose deployments could be built.
pub fn no_deployment(route: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "upstream_unavailable",
        format!("no upstream of `{route}` is available on this server"),
    )
    .with_details(json!({ "model": route }))
}
