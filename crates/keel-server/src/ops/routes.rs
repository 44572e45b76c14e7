use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::{ApiError, ErrorEnvelope};
use crate::AppState;

/// The ops routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(openapi_json))
        .routes(routes!(jwks))
}

/// Liveness answer.
#[derive(Serialize, ToSchema)]
pub struct HealthOut {
    /// Always `ok` when the process answers.
    pub status: &'static str,
    /// Keel's version.
    pub version: &'static str,
}

/// Readiness answer.
#[derive(Serialize, ToSchema)]
pub struct ReadyOut {
    /// `ready`.
    pub status: &'static str,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Newest applied migration.
    pub schema_version: i64,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops", operation_id = "ops.healthz",
    responses((status = 200, body = HealthOut)))]
async fn healthz() -> Json<HealthOut> {
    Json(HealthOut {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// The store is reachable and its schema is current; 503 with the reason otherwise.
#[utoipa::path(get, path = "/readyz", tag = "ops", operation_id = "ops.readyz",
    responses((status = 200, body = ReadyOut), (status = 503, body = ErrorEnvelope)))]
async fn readyz(State(state): State<AppState>) -> Result<Json<ReadyOut>, ApiError> {
    let not_ready = |reason: String| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "Keel is not ready",
        )
        .with_details(json!({ "reason": reason }))
    };
    let store = state.store();
    let check = async {
        store.ping().await?;
        store.schema_status().await
    };
    let status = match tokio::time::timeout(Duration::from_secs(2), check).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return Err(not_ready(format!("store unreachable: {e}"))),
        Err(_) => return Err(not_ready("store did not answer within 2 s".into())),
    };
    if !status.is_current() {
        return Err(not_ready(format!(
            "schema at version {}, this Keel expects {}",
            status.applied, status.expected
        )));
    }
    Ok(Json(ReadyOut {
        status: "ready",
        backend: format!("{:?}", store.backend()).to_lowercase(),
        schema_version: status.applied,
    }))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", operation_id = "ops.openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
async fn openapi_json(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi_json(),
    )
        .into_response()
}

/// The public keys that verify Keel's access tokens.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "ops", operation_id = "ops.jwks",
    responses((status = 200, description = "A JSON Web Key Set", content_type = "application/json")))]
async fn jwks(State(state): State<AppState>) -> Response {
    let cache = [(header::CACHE_CONTROL, "public, max-age=300")];
    (cache, Json(state.identity().keys().jwks())).into_response()
}
