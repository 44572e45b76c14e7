//! `GET /v1/models`: the routes the caller's plan may call, in OpenAI's list shape.

use axum::extract::State;
use axum::Json;
use chrono::Utc;
use keel_core::gateway::visible_routes;
use serde::Serialize;
use utoipa::ToSchema;

use super::errors::{rejected, Step};
use crate::billing::plan_for;
use crate::http::error::ErrorEnvelope;
use crate::identity::extract::AuthUser;
use crate::{ApiError, AppState};

/// One model (a route).
#[derive(Serialize, ToSchema)]
pub struct ModelOut {
    /// The route name, as `model` in chat requests.
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// Unix seconds (0: routes come from the manifest).
    pub created: i64,
    /// The product.
    pub owned_by: String,
    /// The feature the route serves.
    pub feature: String,
    /// Its model class, if any.
    pub model_class: Option<String>,
    /// Its cap on generated tokens, if any.
    pub max_tokens: Option<u32>,
}

/// OpenAI's list shape.
#[derive(Serialize, ToSchema)]
pub struct ModelListOut {
    /// Always `list`.
    pub object: &'static str,
    /// The models.
    pub data: Vec<ModelOut>,
}

/// Lists the models (routes) the caller's plan may use.
#[utoipa::path(get, path = "/v1/models", tag = "gateway", operation_id = "v1.models.list",
    security(("bearer" = [])),
    responses((status = 200, body = ModelListOut), (status = 401, body = ErrorEnvelope)))]
pub(crate) async fn list_models(
    State(state): State<AppState>,
    user: Result<AuthUser, ApiError>,
) -> Result<Json<ModelListOut>, ApiError> {
    let user = user.map_err(|e| rejected(Step::Authenticate, e))?;
    user.require_scope("gateway")
        .map_err(|e| rejected(Step::Authenticate, e))?;
    let manifest = state.manifest();
    let plan = plan_for(
        state.store(),
        manifest,
        &user.scope(),
        user.token.user,
        Utc::now(),
    )
    .await?;
    let data = visible_routes(manifest, &plan.plan)
        .into_iter()
        .filter_map(|name| manifest.routes.get_key_value(name))
        .map(|(name, route)| ModelOut {
            id: name.clone(),
            object: "model",
            created: 0,
            owned_by: manifest.product.name.clone(),
            feature: route.feature.clone(),
            model_class: route.model_class.clone(),
            max_tokens: route.max_tokens,
        })
        .collect();
    Ok(Json(ModelListOut {
        object: "list",
        data,
    }))
}
