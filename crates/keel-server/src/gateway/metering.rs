//! Budget admission and settlement through the billing context. Admission reserves, per
//! meter the route declares: its request meter 1, its token meter the request's maximum
//! tokens, its cost meter the maximum possible cost in micros; all in one store write, all
//! or nothing. Settlement commits what the call used (request 1, tokens = total tokens,
//! cost = micros from the price table) and releases the rest, with the call's audit event,
//! again in one write: one ledger entry per meter per call, idempotent by reservation.

use chrono::Utc;
use keel_core::ids::{ReservationId, UserId};
use keel_core::manifest::Route;
use keel_store::{
    NewAuditEvent, NewReservation, ReservationRecord, ReserveOutcome, Settle, Settled, TenantScope,
};
use serde_json::json;

use super::errors::{rejected, Step};
use crate::billing::reservations::{self, ReserveRequest, Terms};
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
    /// The reservation as stored (its price snapshot prices the commit).
    record: ReservationRecord,
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

/// Reserves every meter of the route in one write, or refuses and holds nothing. Returns
/// the reservations and the cost budget the call may spend (the cost reservation).
pub async fn admit(
    state: &AppState,
    scope: &TenantScope,
    terms: &Terms,
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
    let wanted: Vec<(Role, &str, i64)> = wanted
        .into_iter()
        .filter_map(|(role, meter, amount)| meter.filter(|_| amount > 0).map(|m| (role, m, amount)))
        .collect();
    if wanted.is_empty() {
        return Ok((Vec::new(), None));
    }
    match reserve(state, scope, terms, ask, &wanted, "").await {
        Ok(held) => Ok(with_budget(held)),
        Err((role, e)) if role == Role::Cost && is_limit(&e) => {
            let remaining = e
                .details()
                .and_then(|d| d["remaining"].as_i64())
                .unwrap_or(0);
            let amount = wanted.iter().find(|w| w.0 == Role::Cost).map_or(0, |w| w.2);
            // A stream may start on what is left; it is cut when its cost reaches it.
            if !ask.stream || remaining <= 0 {
                return Err(rejected(Step::Budget, budget_exceeded(e, amount)));
            }
            let partial: Vec<(Role, &str, i64)> = wanted
                .iter()
                .map(|&(r, m, a)| (r, m, if r == Role::Cost { remaining } else { a }))
                .collect();
            match reserve(state, scope, terms, ask, &partial, ":partial").await {
                Ok(held) => Ok(with_budget(held)),
                Err((_, e)) if is_limit(&e) => {
                    Err(rejected(Step::Budget, budget_exceeded(e, amount)))
                }
                Err((_, e)) => Err(rejected(Step::Budget, e)),
            }
        }
        Err((_, e)) => Err(rejected(Step::Budget, e)),
    }
}

fn with_budget(held: Vec<Held>) -> (Vec<Held>, Option<i64>) {
    let budget = held.iter().find(|h| h.role == Role::Cost).map(|h| h.amount);
    (held, budget)
}

/// One `reserve_all`; a refusal names the role it refused.
async fn reserve(
    state: &AppState,
    scope: &TenantScope,
    terms: &Terms,
    ask: &Ask<'_>,
    wanted: &[(Role, &str, i64)],
    suffix: &str,
) -> Result<Vec<Held>, (Role, ApiError)> {
    let mut requests: Vec<NewReservation> = Vec::with_capacity(wanted.len());
    for &(role, meter, amount) in wanted {
        let key = format!("gw:{}:{}{suffix}", ask.call_id, role.as_str());
        let new = terms
            .prepare(state, &request(ask, meter, amount, &key))
            .map_err(|e| (role, e))?;
        requests.push(new);
    }
    let balances: Vec<i64> = requests.iter().map(|r| r.balance_micros).collect();
    let outcomes = state
        .store()
        .reserve_all(scope, requests)
        .await
        .map_err(|e| (Role::Request, ApiError::from(e)))?;
    let mut held = Vec::with_capacity(outcomes.len());
    for ((outcome, &(role, meter, _)), balance) in outcomes.into_iter().zip(wanted).zip(balances) {
        let record = match outcome {
            ReserveOutcome::Reserved(r) | ReserveOutcome::Replayed(r) => r,
            refused => {
                let e = reservations::outcome_of(refused, meter, balance)
                    .err()
                    .unwrap_or_else(|| ApiError::internal("refused without an error"));
                return Err((role, e));
            }
        };
        held.push(Held {
            role,
            id: record.id,
            amount: record.amount,
            record,
        });
    }
    Ok(held)
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

/// What a call used, per role.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Used {
    /// Total tokens.
    pub tokens: i64,
    /// Cost in micros.
    pub cost: i64,
}

/// Commits what the call used on each reservation (releasing those with nothing to
/// commit, or all of them when `used` is `None`) and appends `audit`, in one write that
/// is durable when this returns. A commit the meter would refuse as over its reservation
/// commits the reservation instead, and is counted: the difference is the caller's,
/// never double billed.
pub async fn settle(
    state: &AppState,
    scope: &TenantScope,
    held: &[Held],
    used: Option<Used>,
    source: &serde_json::Value,
    audit: NewAuditEvent,
) {
    let items: Vec<Settle> = held.iter().map(|h| item(h, used, source)).collect();
    let report = match state
        .store()
        .settle_all(scope, items, Some(audit), Utc::now())
        .await
    {
        Ok(report) => report,
        Err(e) => {
            tracing::error!(error = %e, "settling a gateway call failed; its reservations expire");
            return;
        }
    };
    for (h, result) in held.iter().zip(&report.items) {
        match result {
            Ok(Settled::Commit(
                keel_store::CommitOutcome::Committed(_) | keel_store::CommitOutcome::Replayed(_),
            ))
            | Ok(Settled::Release(_)) => {}
            Ok(other) => {
                tracing::error!(reservation = %h.id, outcome = ?other, "a gateway commit was refused");
            }
            Err(e) => {
                tracing::error!(error = %e, reservation = %h.id, "committing gateway usage failed");
            }
        }
    }
    if let Some(Err(e)) = &report.audit {
        tracing::error!(error = %e, "audit write failed");
    }
}

fn item(h: &Held, used: Option<Used>, source: &serde_json::Value) -> Settle {
    let release = Settle::Release { id: h.id };
    let Some(used) = used else { return release };
    let amount = match h.role {
        Role::Request => 1,
        Role::Tokens => used.tokens,
        Role::Cost => used.cost,
    };
    if amount <= 0 {
        return release;
    }
    let overage = h.record.snapshot["overage"].as_bool().unwrap_or(false);
    let amount = if amount > h.amount && !overage {
        metrics::counter!("keel_gateway_over_reservation_total", "meter" => h.role.as_str())
            .increment(1);
        h.amount
    } else {
        amount
    };
    match reservations::commit_entry(&h.record, amount, source.clone()) {
        Ok((entry, allow_overage)) => Settle::Commit {
            id: h.id,
            entry,
            allow_overage,
        },
        Err(e) => {
            tracing::error!(error = %e, reservation = %h.id, "a gateway commit could not be priced; released");
            release
        }
    }
}
