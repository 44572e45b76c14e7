//! The billing store's ledger and read models: ledger entries, commit outcomes, counter
//! values, subscriptions, usage rows and counter mismatches.

use chrono::{DateTime, Utc};
use keel_core::ids::{ReservationId, UserId};
use serde::{Deserialize, Serialize};

use crate::billing::{CounterKey, ReservationStatus};

/// A ledger entry to append.
#[derive(Clone, Debug)]
pub struct NewLedgerEntry {
    /// For whom.
    pub user_id: UserId,
    /// Meter.
    pub meter: String,
    /// Units used (> 0).
    pub amount: i64,
    /// Of which beyond the reservation (overage meters only).
    pub overage: i64,
    /// Cost in micros (from the snapshot's prices).
    pub cost_micros: i64,
    /// Unique per tenant; a replay returns the original entry.
    pub idempotency_key: String,
    /// Request, job, feature… that caused it.
    pub source: serde_json::Value,
    /// The reservation it settles, if any.
    pub reservation_id: Option<ReservationId>,
    /// Counters it adds to (committed side) — for a direct usage record; a commit uses the
    /// reservation's own gates.
    pub counters: Vec<CounterKey>,
    /// Money taken from the prepaid balance, in micros.
    pub balance_micros: i64,
}

/// A stored ledger entry (never updated or deleted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LedgerEntry {
    /// Sequence within the deployment.
    pub id: i64,
    /// Tenant.
    pub tenant_id: String,
    /// User.
    pub user_id: UserId,
    /// Meter.
    pub meter: String,
    /// Units.
    pub amount: i64,
    /// Units beyond the reservation.
    pub overage: i64,
    /// Cost in micros.
    pub cost_micros: i64,
    /// Idempotency key.
    pub idempotency_key: String,
    /// Cause.
    pub source: serde_json::Value,
    /// Settled reservation.
    pub reservation_id: Option<ReservationId>,
    /// Counters it added to.
    pub counters: Vec<CounterKey>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// What `commit` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Settled now.
    Committed(LedgerEntry),
    /// Already committed with the same amount: the original entry.
    Replayed(LedgerEntry),
    /// The reservation is not active (released, expired, or committed with another amount).
    NotActive(ReservationStatus),
    /// `amount` exceeds the reservation and overage was not allowed.
    OverReservation {
        /// Units reserved.
        reserved: i64,
    },
}

/// A counter's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CounterValue {
    /// The counter.
    pub key: CounterKey,
    /// Settled usage.
    pub committed: i64,
    /// Held by active reservations.
    pub reserved: i64,
}

/// A user's subscription: where their plan comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// The user.
    pub user_id: UserId,
    /// Plan name (a manifest plan).
    pub plan: String,
    /// `active`, `trialing`, `past_due`, `grace`, `canceled`, `expired`.
    pub status: String,
    /// Current period start.
    pub period_start: DateTime<Utc>,
    /// Current period end.
    pub period_end: DateTime<Utc>,
    /// `manual`, `stripe`, `appstore`, `googleplay`, `lemonsqueezy`.
    pub source: String,
    /// Purchased add-ons.
    pub addons: Vec<String>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Usage grouped for `GET /v1/usage`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    /// Group value: a meter name, a feature (from `source.feature`) or a day `YYYY-MM-DD` (UTC).
    pub group: String,
    /// Meter.
    pub meter: String,
    /// Units.
    pub amount: i64,
    /// Cost in micros.
    pub cost_micros: i64,
    /// Entries.
    pub entries: i64,
}

/// How to group usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageGroup {
    /// By meter.
    Meter,
    /// By `source.feature`.
    Feature,
    /// By UTC day.
    Day,
}

/// A mismatch found by `verify_counters`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CounterMismatch {
    /// Tenant.
    pub tenant_id: String,
    /// The user whose counter it is; `None` for a tenant counter (`key.owner`).
    pub user_id: Option<String>,
    /// Counter.
    pub key: CounterKey,
    /// Stored (committed, reserved).
    pub stored: (i64, i64),
    /// Recomputed from the ledger and active reservations.
    pub expected: (i64, i64),
}

/// What `reverse_commit` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReverseOutcome {
    /// Reversed now: the compensating entry (negative amount and cost, `source.reverses`
    /// naming the original entry).
    Reversed(LedgerEntry),
    /// Reversed before: the first reversal's entry; nothing changed.
    Replayed(LedgerEntry),
    /// The reservation was never committed (it is active, released or expired): there is
    /// nothing to reverse; nothing changed.
    NotCommitted(ReservationStatus),
}
