//! Budget admission and settlement through the billing context. Admission reserves, per
//! meter the route declares: its request meter 1, its token meter the request's maximum
//! tokens, its cost meter the maximum possible cost in micros. Settlement commits what the
//! call used (request 1, tokens = total tokens, cost = micros from the price table) and
//! releases the rest: one ledger entry per meter per call, idempotent by reservation.

use chrono::Utc;
use keel_core::ids::{ReservationId, UserId};
use keel_core::manifest::Route;
use keel_store::TenantScope;
use serde_json::json;

use super::errors::{rejected, Step};
use crate::billing::reservations::{self, ReserveRequest};
use crate::{ApiError, AppState};

/// How long a call's reservations are held at most (the sweeper releases them after).
const HOLD_SECS: i64 = 3600;

/// What a reservation of a call stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The route's request meter: one per call.
    Request,
    /// The route's token meter: total tokens.
    Tokens,
    /// The route's cost meter: micros.
    Cost,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Request => "request",
            Role::Tokens => "tokens",
            Role::Cost => "cost",
        }
    }
}

/// One reservation a call holds.
#[derive(Clone, Debug)]
pub struct Held {
    /// What it is for.
    pub role: Role,
    /// The reservation.
    pub id: ReservationId,
    /// Units reserved.
    pub amount: i64,
}

/// What admission asks for.
pub struct Ask<'a> {
    /// Who.
    pub user: UserId,
    /// The route.
    pub route: &'a Route,
    /// A fresh id of this call (reservation keys derive from it).
    pub call_id: &'a str,
    /// Upper bound of the call's total tokens.
    pub max_tokens: u64,
    /// Upper bound of the call's cost, in micros.
    pub max_cost: i64,
    /// Whether the call streams (only a stream may start on a partial budget).
    pub stream: bool,
}

/// Reserves every meter of the route, or refuses and holds nothing. Returns the
/// reservations and the cost budget the call may spend (the cost reservation).
pub async fn admit(
    state: &AppState,
    scope: &TenantScope,
    ask: &Ask<'_>,
) -> Result<(Vec<Held>, Option<i64>), ApiError> {
    let route = ask.route;
    let wanted = [
        (Role::Request, route.request_meter.as_deref(), 1),
        (
            Role::Tokens,
            route.token_meter.as_deref(),
            i64::try_from(ask.max_tokens).unwrap_or(i64::MAX),
        ),
        (Role::Cost, route.cost_meter.as_deref(), ask.max_cost),
    ];
    let mut held: Vec<Held> = Vec::new();
    let mut budget = None;
    for (role, meter, amount) in wanted {
        let Some(meter) = meter else { continue };
        if amount <= 0 {
            continue;
        }
        match reserve(state, scope, ask, role, meter, amount).await {
            Ok(h) => {
                if role == Role::Cost {
                    budget = Some(h.amount);
                }
                held.push(h);
            }
            Err(e) => {
                release_all(state, scope, &held).await;
                return Err(rejected(Step::Budget, e));
            }
        }
    }
    Ok((held, budget))
}

async fn reserve(
    state: &AppState,
    scope: &TenantScope,
    ask: &Ask<'_>,
    role: Role,
    meter: &str,
    amount: i64,
) -> Result<Held, ApiError> {
    let key = format!("gw:{}:{}", ask.call_id, role.as_str());
    match reservations::reserve(state, scope, request(ask, meter, amount, &key)).await {
        Ok((r, _)) => Ok(Held {
            role,
            id: r.id,
            amount: r.amount,
        }),
        Err(e) if role == Role::Cost && is_limit(&e) => {
            let remaining = e
                .details()
                .and_then(|d| d["remaining"].as_i64())
                .unwrap_or(0);
            // A stream may start on what is left; it is cut when its cost reaches it.
            if !ask.stream || remaining <= 0 {
                return Err(budget_exceeded(e, amount));
            }
            let partial = format!("{key}:partial");
            match reservations::reserve(state, scope, request(ask, meter, remaining, &partial))
                .await
            {
                Ok((r, _)) => Ok(Held {
                    role,
                    id: r.id,
                    amount: r.amount,
                }),
                Err(e) if is_limit(&e) => Err(budget_exceeded(e, amount)),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

fn request<'a>(ask: &Ask<'_>, meter: &'a str, amount: i64, key: &'a str) -> ReserveRequest<'a> {
    ReserveRequest {
        user: ask.user,
        meter,
        amount,
        idempotency_key: key,
        expires_in_secs: HOLD_SECS,
        reason: "gateway call",
    }
}

fn is_limit(e: &ApiError) -> bool {
    e.details().is_some_and(|d| d.get("remaining").is_some())
}

/// A refusal on the cost meter is a budget refusal: same status and facts, one code.
fn budget_exceeded(e: ApiError, required: i64) -> ApiError {
    let mut details = e.details().cloned().unwrap_or_else(|| json!({}));
    details["required"] = json!(required);
    details["limit_code"] = json!(e.code());
    ApiError::new(
        e.status(),
        "budget_exceeded",
        "the remaining budget does not cover this request's maximum cost",
    )
    .with_details(details)
}

/// Releases every reservation (nothing was used).
pub async fn release_all(state: &AppState, scope: &TenantScope, held: &[Held]) {
    for h in held {
        if let Err(e) = state.store().release(scope, h.id, Utc::now()).await {
            tracing::error!(error = %e, reservation = %h.id, "releasing a gateway reservation failed");
        }
    }
}

/// What a call used, per role.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Used {
    /// Total tokens.
    pub tokens: i64,
    /// Cost in micros.
    pub cost: i64,
}

/// Commits what the call used on each reservation (releasing those with nothing to
/// commit). A commit the meter refuses as over its reservation commits the reservation
/// instead, and is counted: the difference is the caller's, never double billed.
pub async fn commit_all(
    state: &AppState,
    scope: &TenantScope,
    held: &[Held],
    used: Used,
    source: &serde_json::Value,
) {
    for h in held {
        let amount = match h.role {
            Role::Request => 1,
            Role::Tokens => used.tokens,
            Role::Cost => used.cost,
        };
        if amount <= 0 {
            release_all(state, scope, std::slice::from_ref(h)).await;
            continue;
        }
        let first = reservations::commit(state, scope, h.id, amount, source.clone()).await;
        let outcome = match first {
            Err(e) if e.code() == "commit_exceeds_reservation" => {
                metrics::counter!("keel_gateway_over_reservation_total", "meter" => h.role.as_str())
                    .increment(1);
                reservations::commit(state, scope, h.id, h.amount, source.clone()).await
            }
            other => other,
        };
        if let Err(e) = outcome {
            tracing::error!(error = %e, reservation = %h.id, "committing gateway usage failed");
        }
    }
}
