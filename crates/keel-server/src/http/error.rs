//! The one error envelope every route answers with:
//! `{"error": {"code", "message", "type", "request_id", "details"}}`.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::request_id;

/// An API error with a stable snake_case `code`; internals are logged, never returned.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Option<Value>,
    // Boxed: keeps `ApiError` small enough to return by value everywhere.
    param: Option<Box<str>>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// The serialized envelope.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

/// The body of an error.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable, snake_case; clients branch on this.
    pub code: String,
    /// For humans; may change.
    pub message: String,
    /// OpenAI-style error family, e.g. `invalid_request_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The request field at fault, OpenAI style (`messages`, `max_tokens`), when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// The request's id, as in the `x-request-id` header.
    pub request_id: String,
    /// Structured facts about the error (field, position, limits…).
    #[schema(value_type = Object)]
    pub details: Value,
}

impl ApiError {
    /// An error with a status, a stable code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
            param: None,
            headers: Vec::new(),
        }
    }

    /// Names the request field at fault (OpenAI's `param`).
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into().into_boxed_str());
        self
    }

    /// The structured details, if any.
    pub fn details(&self) -> Option<&Value> {
        self.details.as_ref()
    }

    /// Adds structured details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Adds a response header (e.g. `Retry-After`).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// 404 for a route or object that does not exist (or is not the caller's).
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    /// 500 that reveals nothing; the cause is logged with the request id.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "authentication_error",
            402 => "billing_error",
            403 => "permission_error",
            404 => "not_found_error",
            409 => "conflict_error",
            429 => "rate_limit_error",
            s if s >= 500 => "api_error",
            _ => "invalid_request_error",
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorEnvelope {
            error: ErrorBody {
                code: self.code.to_string(),
                kind: self.kind().to_string(),
                message: self.message,
                param: self.param.map(String::from),
                request_id: request_id::current().unwrap_or_default(),
                details: self
                    .details
                    .unwrap_or_else(|| Value::Object(Default::default())),
            },
        };
        let mut res = (self.status, Json(body)).into_response();
        for (name, value) in self.headers {
            res.headers_mut().append(name, value);
        }
        res
    }
}

impl From<keel_store::StoreError> for ApiError {
    fn from(err: keel_store::StoreError) -> Self {
        match err {
            keel_store::StoreError::NotFound => ApiError::not_found(),
            keel_store::StoreError::Conflict(what) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", what)
            }
            other => ApiError::internal(other),
        }
    }
}
