//! Reserve, commit, release and direct usage records: the rules around the store's atomic
//! operations, and the mapping of every outcome to a stable error.

use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use keel_core::billing::{apply_to_gates, snapshot_cost, status_of, terms_for, TermsError};
use keel_core::ids::{ReservationId, UserId};
use keel_store::{
    CommitOutcome, Gate, LedgerEntry, NewLedgerEntry, NewReservation, ReservationRecord,
    ReservationStatus, ReserveOutcome, TenantScope,
};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{gate_key, levers, plan_for, PlanChoice};
use crate::{ApiError, AppState};

/// Longest a reservation may be held.
pub const MAX_HOLD_SECS: i64 = 7 * 24 * 3600;

/// A reservation request.
pub struct ReserveRequest<'a> {
    /// For whom.
    pub user: UserId,
    /// The meter.
    pub meter: &'a str,
    /// Units.
    pub amount: i64,
    /// Caller's idempotency key.
    pub idempotency_key: &'a str,
    /// Hold duration.
    pub expires_in_secs: i64,
    /// Why.
    pub reason: &'a str,
}

pub(crate) fn terms_error(e: TermsError) -> ApiError {
    let (code, field) = match &e {
        TermsError::UnknownMeter(_) => ("unknown_meter", "meter"),
        TermsError::UnknownPlan(_) => ("unknown_plan", "plan"),
        TermsError::InvalidAmount => ("invalid_amount", "amount"),
    };
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string())
        .with_details(json!({ "field": field }))
}

fn validate_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > 255 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_idempotency_key",
            "idempotency_key must be 1 to 255 characters",
        )
        .with_details(json!({"field": "idempotency_key"})));
    }
    Ok(())
}

/// Reserves, or explains which gate refused. Returns the reservation and whether it was a replay.
pub async fn reserve(
    state: &AppState,
    scope: &TenantScope,
    req: ReserveRequest<'_>,
) -> Result<(ReservationRecord, bool), ApiError> {
    validate(&req)?;
    let terms = Terms::read(state, scope, req.user).await?;
    let new = terms.prepare(state, &req)?;
    let balance = new.balance_micros;
    let outcome = state.store().reserve(scope, new).await?;
    outcome_of(outcome, req.meter, balance)
}

fn validate(req: &ReserveRequest<'_>) -> Result<(), ApiError> {
    validate_key(req.idempotency_key)?;
    if !(1..=MAX_HOLD_SECS).contains(&req.expires_in_secs) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_expiry",
            "expires_in_seconds must be 1 to 604800",
        )
        .with_details(json!({"field": "expires_in_seconds"})));
    }
    Ok(())
}

/// What a user's reservations are gated and priced by right now: read once, then used
/// for every reservation of one operation (a gateway call reserves several meters).
pub struct Terms {
    choice: PlanChoice,
    overrides: Vec<keel_core::billing::LimitOverride>,
    now: DateTime<Utc>,
}

impl Terms {
    /// Checks the kill switches, then reads the user's plan and operator overrides.
    pub async fn read(
        state: &AppState,
        scope: &TenantScope,
        user: UserId,
    ) -> Result<Self, ApiError> {
        levers::check_kill_switch(state.kill_switches(), state.store(), user).await?;
        let now = Utc::now();
        let choice = plan_for(state.store(), state.manifest(), scope, user, now).await?;
        Self::with_choice(state, scope, user, choice, now).await
    }

    /// As [`Terms::read`] for a caller that already checked the kill switches and read the plan.
    pub async fn with_choice(
        state: &AppState,
        scope: &TenantScope,
        user: UserId,
        choice: PlanChoice,
        now: DateTime<Utc>,
    ) -> Result<Self, ApiError> {
        let overrides = levers::overrides_for(state.store(), scope, user).await?;
        Ok(Self::from_parts(choice, overrides, now))
    }

    /// Terms from a plan and overrides the caller read itself.
    pub fn from_parts(
        choice: PlanChoice,
        overrides: Vec<keel_core::billing::LimitOverride>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            choice,
            overrides,
            now,
        }
    }

    /// The reservation `req` asks for, with its gates and price snapshot (validated).
    pub fn prepare(
        &self,
        state: &AppState,
        req: &ReserveRequest<'_>,
    ) -> Result<NewReservation, ApiError> {
        validate(req)?;
        let now = self.now;
        let mut terms = self
            .choice
            .with_subject(|subject| {
                terms_for(state.manifest(), subject, req.meter, req.amount, now)
            })
            .map_err(terms_error)?;
        if apply_to_gates(&mut terms.gates, &self.overrides, now) > 0 {
            terms.snapshot["gates"] = json!(terms.gates);
            terms.snapshot["overrides"] = levers::applied_json(&self.overrides, req.meter, now);
        }
        let hash = Sha256::digest(format!(
            "{}\n{}\n{}\n{}\n{}",
            req.user, req.meter, req.amount, req.expires_in_secs, req.reason
        ))
        .to_vec();
        let gates: Vec<Gate> = terms
            .gates
            .iter()
            .map(|g| Gate {
                key: gate_key(g),
                limit: g.limit,
                amount: g.amount,
                code: g.code.to_string(),
                resets_at: Some(g.resets_at),
            })
            .collect();
        Ok(NewReservation {
            id: ReservationId::new(),
            user_id: req.user,
            meter: req.meter.to_string(),
            amount: req.amount,
            balance_micros: terms.balance_micros,
            idempotency_key: req.idempotency_key.to_string(),
            request_hash: hash,
            expires_at: now + Duration::seconds(req.expires_in_secs),
            reason: req.reason.to_string(),
            snapshot: terms.snapshot,
            gates,
        })
    }
}

/// A store outcome as the API answers it: the reservation and whether it was a replay,
/// or the refusal's stable error.
pub fn outcome_of(
    outcome: ReserveOutcome,
    meter: &str,
    balance_micros: i64,
) -> Result<(ReservationRecord, bool), ApiError> {
    match outcome {
        ReserveOutcome::Reserved(r) => Ok((r, false)),
        ReserveOutcome::Replayed(r) => Ok((r, true)),
        ReserveOutcome::KeyReused => Err(key_reused()),
        ReserveOutcome::Refused { gate, used } => Err(refused(&gate, used, meter)),
        ReserveOutcome::InsufficientBalance { available } => Err(ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            "insufficient_balance",
            "the prepaid balance does not cover this reservation",
        )
        .with_details(json!({"available_micros": available, "required_micros": balance_micros}))),
    }
}

pub(crate) fn key_reused() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "this idempotency key was used with a different request",
    )
}

fn refused(gate: &Gate, used: i64, meter: &str) -> ApiError {
    let status =
        StatusCode::from_u16(status_of(&gate.code)).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
    let resets: Option<DateTime<Utc>> = gate.resets_at;
    ApiError::new(
        status,
        static_code(&gate.code),
        format!("the reservation would exceed the {} limit", gate.key.meter),
    )
    .with_details(json!({
        "meter": meter,
        "limit": gate.limit,
        "used": used,
        "required": gate.amount,
        "remaining": (gate.limit - used).max(0),
        "resets_at": resets,
    }))
}

/// Gate codes are a closed set; anything else is reported as a generic limit.
fn static_code(code: &str) -> &'static str {
    match code {
        "daily_limit_reached" => "daily_limit_reached",
        "weekly_limit_reached" => "weekly_limit_reached",
        "monthly_limit_reached" => "monthly_limit_reached",
        "cycle_limit_reached" => "cycle_limit_reached",
        "period_limit_reached" => "period_limit_reached",
        "insufficient_credits" => "insufficient_credits",
        "monthly_spend_limit" => "monthly_spend_limit",
        _ => "limit_reached",
    }
}

/// Settles a reservation at `amount` (its own snapshot's prices).
pub async fn commit(
    state: &AppState,
    scope: &TenantScope,
    id: ReservationId,
    amount: i64,
    source: serde_json::Value,
) -> Result<(LedgerEntry, bool), ApiError> {
    if amount <= 0 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_amount",
            "amount must be a positive whole number",
        )
        .with_details(json!({"field": "amount"})));
    }
    let r = state.store().get_reservation(scope, id).await?;
    let (entry, allow_overage) = commit_entry(&r, amount, source)?;
    match state
        .store()
        .commit(scope, id, entry, allow_overage, Utc::now())
        .await?
    {
        CommitOutcome::Committed(e) => Ok((e, false)),
        CommitOutcome::Replayed(e) => Ok((e, true)),
        CommitOutcome::NotActive(status) => Err(not_active(status)),
        CommitOutcome::OverReservation { reserved } => Err(over_reservation(reserved, amount)),
    }
}

/// The ledger entry committing `r` at `amount` (its own snapshot's prices), and whether
/// its meter allows overage past the reservation.
pub fn commit_entry(
    r: &ReservationRecord,
    amount: i64,
    source: serde_json::Value,
) -> Result<(NewLedgerEntry, bool), ApiError> {
    let cost = snapshot_cost(&r.snapshot, amount).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_amount",
            "amount is too large",
        )
        .with_details(json!({"field": "amount"}))
    })?;
    let allow_overage = r.snapshot["overage"].as_bool().unwrap_or(false);
    let prepaid = r.snapshot["prepaid"].as_bool().unwrap_or(false);
    let entry = NewLedgerEntry {
        user_id: r.user_id,
        meter: r.meter.clone(),
        amount,
        overage: (amount - r.amount).max(0),
        cost_micros: cost,
        idempotency_key: format!("reservation:{}", r.id),
        source,
        reservation_id: Some(r.id),
        counters: Vec::new(),
        balance_micros: if prepaid { cost } else { 0 },
    };
    Ok((entry, allow_overage))
}

/// The error for a commit the meter refuses as above the reservation.
pub fn over_reservation(reserved: i64, amount: i64) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "commit_exceeds_reservation",
        "the meter does not allow overage beyond the reserved amount",
    )
    .with_details(json!({"reserved": reserved, "amount": amount}))
}

pub(crate) fn not_active(status: ReservationStatus) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "reservation_not_active",
        format!("the reservation is {}", status.as_str()),
    )
    .with_details(json!({"status": status.as_str()}))
}
