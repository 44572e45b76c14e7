//! `POST /v1/service/usage`: an idempotent batch of usage records measured after the fact
//! (no reservation). Each record counts against its plan's windows and is priced at the
//! plan's unit price.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use keel_core::billing::terms_for;
use keel_core::ids::UserId;
use keel_store::{Gate, LedgerEntry, NewLedgerEntry, TenantScope};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::reservations::terms_error;
use super::service_routes::locate;
use super::{gate_key, plan_for};
use crate::http::error::ErrorEnvelope;
use crate::integrity::ServiceCaller;
use crate::{ApiError, ApiJson, AppState};

/// One tenant's records: its scope, the entries with their positions, and each entry's
/// user and gates (for threshold events).
type Batch = (
    TenantScope,
    Vec<(usize, NewLedgerEntry)>,
    Vec<(UserId, Vec<Gate>)>,
);

/// Most records in one batch.
pub const MAX_BATCH: usize = 1000;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(record_usage))
}

/// One usage record.
#[derive(Deserialize, ToSchema)]
pub struct UsageIn {
    /// The user.
    pub user_id: String,
    /// A meter of the manifest.
    pub meter: String,
    /// Units (> 0).
    pub amount: i64,
    /// A replay with the same key is a no-op returning the original entry.
    pub idempotency_key: String,
    /// What caused it: `request_id`, `job_id`, `feature`….
    #[schema(value_type = Object)]
    pub source: Option<serde_json::Value>,
}

/// A batch.
#[derive(Deserialize, ToSchema)]
pub struct UsageBatchIn {
    /// 1 to 1000 records.
    pub entries: Vec<UsageIn>,
}

/// One recorded entry.
#[derive(Serialize, ToSchema)]
pub struct RecordedOut {
    /// The ledger entry.
    #[schema(value_type = Object)]
    pub entry: LedgerEntry,
    /// True when the key had been recorded before.
    pub replayed: bool,
}

/// The batch's entries, in order.
#[derive(Serialize, ToSchema)]
pub struct UsageBatchOut {
    /// One per record.
    pub data: Vec<RecordedOut>,
}

/// Records usage measured after the fact; all records are validated before any is written.
#[utoipa::path(post, path = "/v1/service/usage", tag = "billing", operation_id = "v1.service.usage.record",
    request_body = UsageBatchIn, security(("service" = [])),
    responses((status = 200, body = UsageBatchOut), (status = 422, body = ErrorEnvelope)))]
async fn record_usage(
    State(state): State<AppState>,
    _caller: ServiceCaller,
    ApiJson(body): ApiJson<UsageBatchIn>,
) -> Result<Json<UsageBatchOut>, ApiError> {
    if body.entries.is_empty() || body.entries.len() > MAX_BATCH {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_batch",
            "entries must hold 1 to 1000 records",
        )
        .with_details(json!({"field": "entries"})));
    }
    let now = Utc::now();
    // Validate everything first: a bad record changes nothing.
    let mut per_tenant: HashMap<String, Batch> = HashMap::new();
    for (i, e) in body.entries.into_iter().enumerate() {
        let at = |err: ApiError| err.with_details(json!({"index": i}));
        if e.idempotency_key.is_empty() || e.idempotency_key.len() > 255 {
            return Err(at(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_idempotency_key",
                "idempotency_key must be 1 to 255 characters",
            )));
        }
        let (user, scope) = locate(&state, &e.user_id).await.map_err(at)?;
        let choice = plan_for(state.store(), state.manifest(), &scope, user, now).await?;
        let terms = choice
            .with_subject(|subject| terms_for(state.manifest(), subject, &e.meter, e.amount, now))
            .map_err(|err| at(terms_error(err)))?;
        let entry = NewLedgerEntry {
            user_id: user,
            meter: e.meter,
            amount: e.amount,
            overage: 0,
            cost_micros: terms.cost_micros,
            idempotency_key: e.idempotency_key,
            source: e.source.unwrap_or_else(|| json!({})),
            reservation_id: None,
            counters: terms.gates.iter().map(gate_key).collect(),
            balance_micros: terms.balance_micros,
        };
        let batch = per_tenant
            .entry(scope.tenant().to_string())
            .or_insert_with(|| (scope, Vec::new(), Vec::new()));
        batch.1.push((i, entry));
        // Their limits, so the store can tell when the usage reaches 80 % or 100 %.
        let gates = terms.gates.iter().map(|g| Gate {
            key: gate_key(g),
            limit: g.limit,
            amount: g.amount,
            code: g.code.to_string(),
            resets_at: Some(g.resets_at),
        });
        batch.2.push((user, gates.collect()));
    }
    let mut out: Vec<(usize, RecordedOut)> = Vec::new();
    for (_, (scope, entries, watch)) in per_tenant {
        let (idx, entries): (Vec<usize>, Vec<NewLedgerEntry>) = entries.into_iter().unzip();
        let recorded = state
            .store()
            .record_usage_watched(&scope, entries, watch)
            .await?;
        out.extend(
            idx.into_iter()
                .zip(recorded)
                .map(|(i, (entry, replayed))| (i, RecordedOut { entry, replayed })),
        );
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(Json(UsageBatchOut {
        data: out.into_iter().map(|(_, r)| r).collect(),
    }))
}
