//! `/admin/v1/webhooks/endpoints`: register, list, read, change, delete and rotate the
//! secret of outbound endpoints. ENGINEER and SUPER_ADMIN change them, SUPPORT reads them;
//! every change is audited in the endpoint's tenant. Secrets are answered once only.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{TimeDelta, Utc};
use keel_core::ids::{EndpointId, TenantId};
use keel_core::outbound::EndpointSecret;
use keel_store::{EndpointUpdate, NewEndpoint, TenantScope};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::{
    description_of, event_types_of, tenant_of, url_of, EndpointIn, EndpointOut, EndpointPatch,
    EndpointWithSecretOut, EndpointsOut,
};
use crate::admin::auth::{ActiveAdmin, AdminUser};
use crate::http::error::ErrorEnvelope;
use crate::{ApiError, ApiJson, AppState};

pub(super) const WRITERS: &[&str] = &["SUPER_ADMIN", "ENGINEER"];
pub(super) const READERS: &[&str] = &["SUPER_ADMIN", "ENGINEER", "SUPPORT"];

/// How long the previous secret keeps signing after a rotation.
const ROTATION_OVERLAP: TimeDelta = TimeDelta::hours(24);

/// The outbound webhook admin routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_endpoint, list_endpoints))
        .routes(routes!(get_endpoint, update_endpoint, delete_endpoint))
        .routes(routes!(rotate_secret))
        .merge(super::messages::router())
}

pub(super) async fn audit(
    state: &AppState,
    me: &AdminUser,
    tenant: TenantId,
    action: &str,
    target: String,
    data: serde_json::Value,
) {
    let actor = me.admin.id.to_string();
    state
        .identity()
        .audit(tenant, &actor, action, Some(target), data)
        .await;
}

/// The scope of an endpoint named in a path; 404 for a malformed or unknown id.
pub(super) async fn endpoint_scope(
    state: &AppState,
    id: &str,
) -> Result<(EndpointId, TenantScope), ApiError> {
    let id: EndpointId = id.parse().map_err(|_| ApiError::not_found())?;
    let tenant = state
        .store()
        .endpoint_tenant(id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok((id, TenantScope::new(tenant)))
}

/// Which tenant's endpoints to list.
#[derive(Deserialize, IntoParams)]
pub struct ListQuery {
    /// A tenant id; omitted: the endpoints that receive every tenant's events.
    pub tenant_id: Option<String>,
}

/// Registers an endpoint; the answer carries its signing secret, shown only this once.
#[utoipa::path(post, path = "/admin/v1/webhooks/endpoints", tag = "admin", operation_id = "admin.webhooks.endpoints.create",
    request_body = EndpointIn, security(("admin" = [])),
    responses((status = 201, body = EndpointWithSecretOut), (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn create_endpoint(
    State(state): State<AppState>,
    ActiveAdmin(me): ActiveAdmin,
    ApiJson(body): ApiJson<EndpointIn>,
) -> Result<(StatusCode, Json<EndpointWithSecretOut>), ApiError> {
    me.require_role(WRITERS)?;
    let allow_private = state.settings().outbound.allow_private_urls;
    let url = url_of(&body.url, allow_private)?;
    let event_types = event_types_of(&body.event_types)?;
    let description = description_of(body.description.as_deref())?;
    let tenant = tenant_of(body.tenant_id.as_deref())?;
    let secret = EndpointSecret::generate();
    let endpoint = NewEndpoint {
        id: EndpointId::new(),
        url,
        description,
        event_types,
        secret: secret.expose(),
    };
    let created = state
        .store()
        .create_endpoint(&TenantScope::new(tenant), endpoint)
        .await?;
    let out = EndpointOut::from(created);
    audit(
        &state,
        &me,
        tenant,
        "webhook.endpoint_created",
        out.id.clone(),
        json!({"url": out.url, "event_types": out.event_types}),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(EndpointWithSecretOut {
            endpoint: out,
            secret: secret.expose(),
        }),
    ))
}

/// Lists endpoints (never their secrets).
#[utoipa::path(get, path = "/admin/v1/webhooks/endpoints", tag = "admin", operation_id = "admin.webhooks.endpoints.list",
    params(ListQuery), security(("admin" = [])),
    responses((status = 200, body = EndpointsOut), (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn list_endpoints(
    State(state): State<AppState>,
    ActiveAdmin(me): ActiveAdmin,
    Query(q): Query<ListQuery>,
) -> Result<Json<EndpointsOut>, ApiError> {
    me.require_role(READERS)?;
    let tenant = tenant_of(q.tenant_id.as_deref())?;
    let data = state
        .store()
        .list_endpoints(&TenantScope::new(tenant))
        .await?;
    Ok(Json(EndpointsOut {
        data: data.into_iter().map(EndpointOut::from).collect(),
    }))
}

/// One endpoint.
#[utoipa::path(get, path = "/admin/v1/webhooks/endpoints/{id}", tag = "admin", operation_id = "admin.webhooks.endpoints.get",
    params(("id" = String, Path, description = "Endpoint id")), security(("admin" = [])),
    responses((status = 200, body = EndpointOut), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn get_endpoint(
    State(state): State<AppState>,
    ActiveAdmin(me): ActiveAdmin,
    Path(id): Path<String>,
) -> Result<Json<EndpointOut>, ApiError> {
    me.require_role(READERS)?;
    let (id, scope) = endpoint_scope(&state, &id).await?;
    Ok(Json(state.store().get_endpoint(&scope, id).await?.into()))
}

/// Enables or disables an endpoint, or changes its event types, URL or description.
#[utoipa::path(patch, path = "/admin/v1/webhooks/endpoints/{id}", tag = "admin", operation_id = "admin.webhooks.endpoints.update",
    params(("id" = String, Path, description = "Endpoint id")), request_body = EndpointPatch, security(("admin" = [])),
    responses((status = 200, body = EndpointOut), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn update_endpoint(
    State(state): State<AppState>,
    ActiveAdmin(me): ActiveAdmin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<EndpointPatch>,
) -> Result<Json<EndpointOut>, ApiError> {
    me.require_role(WRITERS)?;
    let (id, scope) = endpoint_scope(&state, &id).await?;
    let allow_private = state.settings().outbound.allow_private_urls;
    let update = EndpointUpdate {
        enabled: body.enabled,
        event_types: body
            .event_types
            .as_deref()
            .map(event_types_of)
            .transpose()?,
        url: body
            .url
            .as_deref()
            .map(|u| url_of(u, allow_private))
            .transpose()?,
        description: match body.description.as_deref() {
            Some(d) => Some(description_of(Some(d))?),
            None => None,
        },
    };
    let changed: Vec<&str> = [
        ("enabled", update.enabled.is_some()),
        ("event_types", update.event_types.is_some()),
        ("url", update.url.is_some()),
        ("description", update.description.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    let updated = state
        .store()
        .update_endpoint(&scope, id, update, Utc::now())
        .await?;
    let out = EndpointOut::from(updated);
    audit(
        &state,
        &me,
        scope.tenant(),
        "webhook.endpoint_updated",
        out.id.clone(),
        json!({"changed": changed, "enabled": out.enabled, "event_types": out.event_types}),
    )
    .await;
    Ok(Json(out))
}

/// Deletes an endpoint and its pending deliveries; its attempts stay on record.
#[utoipa::path(delete, path = "/admin/v1/webhooks/endpoints/{id}", tag = "admin", operation_id = "admin.webhooks.endpoints.delete",
    params(("id" = String, Path, description = "Endpoint id")), security(("admin" = [])),
    responses((status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn delete_endpoint(
    State(state): State<AppState>,
    ActiveAdmin(me): ActiveAdmin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    me.require_role(WRITERS)?;
    let (id, scope) = endpoint_scope(&state, &id).await?;
    if !state.store().delete_endpoint(&scope, id).await? {
        return Err(ApiError::not_found());
    }
    audit(
        &state,
        &me,
        scope.tenant(),
        "webhook.endpoint_deleted",
        id.to_string(),
        json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret, answered once; the old one keeps signing beside it for 24 h.
#[utoipa::path(post, path = "/admin/v1/webhooks/endpoints/{id}/rotate-secret", tag = "admin", operation_id = "admin.webhooks.endpoints.rotate_secret",
    params(("id" = String, Path, description = "Endpoint id")), security(("admin" = [])),
    responses((status = 200, body = EndpointWithSecretOut), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn rotate_secret(
    State(state): State<AppState>,
    ActiveAdmin(me): ActiveAdmin,
    Path(id): Path<String>,
) -> Result<Json<EndpointWithSecretOut>, ApiError> {
    me.require_role(WRITERS)?;
    let (id, scope) = endpoint_scope(&state, &id).await?;
    let secret = EndpointSecret::generate();
    let now = Utc::now();
    let rotated = state
        .store()
        .rotate_endpoint_secret(&scope, id, secret.expose(), now + ROTATION_OVERLAP, now)
        .await?;
    let out = EndpointOut::from(rotated);
    audit(
        &state,
        &me,
        scope.tenant(),
        "webhook.secret_rotated",
        out.id.clone(),
        json!({"previous_secret_expires_at": out.previous_secret_expires_at}),
    )
    .await;
    Ok(Json(EndpointWithSecretOut {
        endpoint: out,
        secret: secret.expose(),
    }))
}
