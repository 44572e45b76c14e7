//! Service routes for the product's workers: reservations, usage records, a user's
//! entitlements, subscriptions and balances.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::Json;
use chrono::{DateTime, Utc};
use keel_core::ids::{ReservationId, UserId};
use keel_store::{ReservationRecord, ReservationStatus, Subscription, TenantScope};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::entitlements::{entitlements, EntitlementsOut};
use super::reservations::{self, not_active, ReserveRequest};
use super::routes::{usage, UsageOut, UsageQuery};
use crate::http::error::ErrorEnvelope;
use crate::integrity::ServiceCaller;
use crate::{ApiError, ApiJson, AppState};

/// The service billing routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_reservation))
        .routes(routes!(commit_reservation))
        .routes(routes!(release_reservation))
        .routes(routes!(user_entitlements))
        .routes(routes!(user_usage))
        .routes(routes!(put_subscription))
        .routes(routes!(adjust_balance))
        .merge(super::service_usage::router())
}

pub(crate) fn replayed() -> [(HeaderName, HeaderValue); 1] {
    [(
        HeaderName::from_static("idempotent-replayed"),
        HeaderValue::from_static("true"),
    )]
}

/// The user and their tenant scope, for a service caller acting on any tenant.
pub(crate) async fn locate(
    state: &AppState,
    user: &str,
) -> Result<(UserId, TenantScope), ApiError> {
    let id: UserId = user.parse().map_err(|_| unknown_user())?;
    let record = state
        .store()
        .locate_user(id)
        .await?
        .ok_or_else(unknown_user)?;
    Ok((record.id, TenantScope::new(record.tenant_id)))
}

fn unknown_user() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "unknown_user", "no such user")
        .with_details(json!({"field": "user_id"}))
}

/// A reservation request.
#[derive(Deserialize, ToSchema)]
pub struct ReservationIn {
    /// The user (`usr_…`).
    pub user_id: String,
    /// A meter of the manifest.
    pub meter: String,
    /// Units to hold (> 0).
    pub amount: i64,
    /// e.g. `{user}:{cycle}:{job}`; a replay returns the original reservation.
    pub idempotency_key: String,
    /// Seconds until the sweeper releases it (default 900, at most 7 days).
    pub expires_in_seconds: Option<i64>,
    /// Why (free text).
    pub reason: Option<String>,
}

/// A reservation.
#[derive(Serialize, ToSchema)]
pub struct ReservationOut {
    /// Fields of the stored reservation.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub reservation: ReservationRecord,
}

/// Holds quota (and credits, balance, spend) for a user, or says which gate refused.
#[utoipa::path(post, path = "/v1/service/reservations", tag = "billing", operation_id = "v1.service.reservations.create",
    request_body = ReservationIn, security(("service" = [])),
    responses((status = 201, body = ReservationOut), (status = 200, description = "A replay of the same key", body = ReservationOut),
        (status = 402, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn create_reservation(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    ApiJson(body): ApiJson<ReservationIn>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let (user, scope) = locate(&state, &body.user_id).await?;
    let req = ReserveRequest {
        user,
        meter: &body.meter,
        amount: body.amount,
        idempotency_key: &body.idempotency_key,
        expires_in_secs: body.expires_in_seconds.unwrap_or(900),
        reason: body.reason.as_deref().unwrap_or(""),
    };
    let (r, replay) = reservations::reserve(&state, &scope, req).await?;
    let out = Json(ReservationOut { reservation: r });
    Ok(if replay {
        (StatusCode::OK, replayed(), out).into_response()
    } else {
        (StatusCode::CREATED, out).into_response()
    })
}

/// How much was used.
#[derive(Deserialize, ToSchema)]
pub struct CommitIn {
    /// Units actually used (> 0; at most the reserved amount unless the meter allows overage).
    pub amount: i64,
    /// What caused it: `request_id`, `job_id`, `feature`….
    #[schema(value_type = Object)]
    pub source: Option<serde_json::Value>,
}

async fn scoped_reservation(
    state: &AppState,
    id: &str,
) -> Result<(ReservationId, TenantScope), ApiError> {
    let id: ReservationId = id.parse().map_err(|_| ApiError::not_found())?;
    let tenant = state
        .store()
        .reservation_tenant(id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let tenant = tenant
        .parse()
        .map_err(|_| ApiError::internal("bad tenant id in store"))?;
    Ok((id, TenantScope::new(tenant)))
}

/// Settles a reservation into the ledger (its snapshot's prices apply).
#[utoipa::path(post, path = "/v1/service/reservations/{id}/commit", tag = "billing", operation_id = "v1.service.reservations.commit",
    params(("id" = String, Path, description = "Reservation id")), request_body = CommitIn, security(("service" = [])),
    responses((status = 200, description = "The ledger entry", body = Object), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn commit_reservation(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CommitIn>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let (id, scope) = scoped_reservation(&state, &id).await?;
    let source = body.source.unwrap_or_else(|| json!({}));
    let (entry, replay) = reservations::commit(&state, &scope, id, body.amount, source).await?;
    Ok(if replay {
        (replayed(), Json(entry)).into_response()
    } else {
        Json(entry).into_response()
    })
}

/// The reservation's state after release.
#[derive(Serialize, ToSchema)]
pub struct ReleaseOut {
    /// `released`.
    pub status: &'static str,
}

/// Returns a reservation's hold.
#[utoipa::path(post, path = "/v1/service/reservations/{id}/release", tag = "billing", operation_id = "v1.service.reservations.release",
    params(("id" = String, Path, description = "Reservation id")), security(("service" = [])),
    responses((status = 200, body = ReleaseOut), (status = 409, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn release_reservation(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Path(id): Path<String>,
) -> Result<Json<ReleaseOut>, ApiError> {
    let (id, scope) = scoped_reservation(&state, &id).await?;
    match state.store().release(&scope, id, Utc::now()).await? {
        ReservationStatus::Active | ReservationStatus::Released => {
            Ok(Json(ReleaseOut { status: "released" }))
        }
        other => Err(not_active(other)),
    }
}

/// A user's entitlements.
#[utoipa::path(get, path = "/v1/service/users/{id}/entitlements", tag = "billing", operation_id = "v1.service.users.entitlements",
    params(("id" = String, Path, description = "User id")), security(("service" = [])),
    responses((status = 200, body = EntitlementsOut), (status = 404, body = ErrorEnvelope)))]
async fn user_entitlements(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Path(id): Path<String>,
) -> Result<Json<EntitlementsOut>, ApiError> {
    let (user, scope) = locate(&state, &id).await?;
    Ok(Json(entitlements(&state, &scope, user).await?))
}

/// A user's usage over a period.
#[utoipa::path(get, path = "/v1/service/users/{id}/usage", tag = "billing", operation_id = "v1.service.users.usage",
    params(("id" = String, Path, description = "User id"), UsageQuery), security(("service" = [])),
    responses((status = 200, body = UsageOut), (status = 404, body = ErrorEnvelope)))]
async fn user_usage(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    Path(id): Path<String>,
    Query(q): Query<UsageQuery>,
) -> Result<Json<UsageOut>, ApiError> {
    let (user, scope) = locate(&state, &id).await?;
    Ok(Json(usage(&state, &scope, user, q).await?))
}

/// A subscription to set.
#[derive(Deserialize, ToSchema)]
pub struct SubscriptionIn {
    /// A plan of the manifest.
    pub plan: String,
    /// `active`, `trialing`, `past_due`, `grace`, `canceled`, `expired`.
    pub status: String,
    /// Period start (RFC 3339).
    pub period_start: DateTime<Utc>,
    /// Period end (RFC 3339), after the start.
    pub period_end: DateTime<Utc>,
    /// `manual` (default), `stripe`, `appstore`, `googleplay`, `lemonsqueezy`.
    pub source: Option<String>,
    /// Purchased add-ons of the plan.
    pub addons: Option<Vec<String>>,
}

/// Sets a user's subscription; limits change from the next reservation on.
#[utoipa::path(put, path = "/v1/service/users/{id}/subscription", tag = "billing", operation_id = "v1.service.users.subscription.put",
    params(("id" = String, Path, description = "User id")), request_body = SubscriptionIn, security(("service" = [])),
    responses((status = 200, body = Object), (status = 422, body = ErrorEnvelope)))]
async fn put_subscription(
    State(state): State<AppState>,
    caller: ServiceCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SubscriptionIn>,
) -> Result<Json<Subscription>, ApiError> {
    let (user, scope) = locate(&state, &id).await?;
    let invalid = |code: &'static str, field: &str, msg: &str| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, msg.to_string())
            .with_details(json!({"field": field}))
    };
    let plan = state
        .manifest()
        .plans
        .get(&body.plan)
        .ok_or_else(|| invalid("unknown_plan", "plan", "no such plan in the manifest"))?;
    if ![
        "active", "trialing", "past_due", "grace", "canceled", "expired",
    ]
    .contains(&body.status.as_str())
    {
        return Err(invalid(
            "invalid_status",
            "status",
            "status must be active, trialing, past_due, grace, canceled or expired",
        ));
    }
    if body.period_end <= body.period_start {
        return Err(invalid(
            "invalid_period",
            "period_end",
            "period_end must be after period_start",
        ));
    }
    let source = body.source.unwrap_or_else(|| "manual".into());
    if !["manual", "stripe", "appstore", "googleplay", "lemonsqueezy"].contains(&source.as_str()) {
        return Err(invalid(
            "invalid_source",
            "source",
            "unknown subscription source",
        ));
    }
    let addons = body.addons.unwrap_or_default();
    if let Some(bad) = addons.iter().find(|a| !plan.addons.contains_key(*a)) {
        return Err(invalid(
            "unknown_addon",
            "addons",
            &format!("the plan has no add-on `{bad}`"),
        ));
    }
    let sub = Subscription {
        user_id: user,
        plan: body.plan,
        status: body.status,
        period_start: body.period_start,
        period_end: body.period_end,
        source,
        addons,
        updated_at: Utc::now(),
    };
    state.store().put_subscription(&scope, sub.clone()).await?;
    let data = json!({"plan": sub.plan, "status": sub.status, "source": sub.source});
    state
        .identity()
        .audit(
            scope.tenant(),
            &format!("service:{}", caller.key_id),
            "subscription.changed",
            Some(user.to_string()),
            data,
        )
        .await;
    Ok(Json(sub))
}

/// A balance change.
#[derive(Deserialize, ToSchema)]
pub struct BalanceIn {
    /// Micros to add (negative removes; never below what reservations hold).
    pub delta_micros: i64,
    /// A replay with the same key changes nothing.
    pub idempotency_key: String,
}

/// The balance after the change.
#[derive(Serialize, ToSchema)]
pub struct BalanceOut {
    /// Micros.
    pub balance_micros: i64,
}

/// Tops up (or debits) a user's prepaid balance.
#[utoipa::path(post, path = "/v1/service/users/{id}/balance", tag = "billing", operation_id = "v1.service.users.balance.adjust",
    params(("id" = String, Path, description = "User id")), request_body = BalanceIn, security(("service" = [])),
    responses((status = 200, body = BalanceOut), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn adjust_balance(
    State(state): State<AppState>,
    caller: ServiceCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<BalanceIn>,
) -> Result<Json<BalanceOut>, ApiError> {
    let (user, scope) = locate(&state, &id).await?;
    if body.delta_micros == 0 || body.idempotency_key.is_empty() || body.idempotency_key.len() > 255
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_adjustment",
            "a non-zero delta_micros and a 1–255 character idempotency_key are required",
        ));
    }
    let balance_micros = state
        .store()
        .adjust_balance(&scope, user, body.delta_micros, &body.idempotency_key)
        .await
        .map_err(|e| match e {
            keel_store::StoreError::Conflict(_) => ApiError::new(
                StatusCode::CONFLICT,
                "balance_held",
                "the balance cannot go below what reservations hold",
            ),
            other => other.into(),
        })?;
    let data = json!({"delta_micros": body.delta_micros});
    state
        .identity()
        .audit(
            scope.tenant(),
            &format!("service:{}", caller.key_id),
            "balance.adjusted",
            Some(user.to_string()),
            data,
        )
        .await;
    Ok(Json(BalanceOut { balance_micros }))
}
