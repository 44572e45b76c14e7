//! The billing context's storage: quota counters, reservations, the append-only usage
//! ledger, prepaid balances and subscriptions.
//!
//! The service decides *which* counters a reservation touches and *what* each one's limit
//! is (windows, plans, add-ons, credits and prices are pure logic in `keel-core`); the
//! store applies those gates atomically, so that a limit of N grants exactly N however
//! many callers race, on both backends.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keel_core::ids::{ReservationId, UserId};
use serde::{Deserialize, Serialize};

use crate::{StoreResult, TenantScope};

/// Whose usage a counter holds. Tenant counters order first: every transaction takes
/// counter rows in key order, so the counter a tenant's users share is always taken before
/// any user's own and two users of one tenant never wait on each other in a cycle.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum CounterOwner {
    /// One counter for all users of the tenant (`scope = "tenant"` limits).
    Tenant,
    /// The counter of the user the reservation or usage is for.
    #[default]
    User,
}

impl CounterOwner {
    fn is_user(&self) -> bool {
        *self == Self::User
    }
}

/// A counter: usage of one meter (or money, for spend limits) in one window of one user,
/// or of the whole tenant, e.g. meter `jobs`, window `day:2026-11-21`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CounterKey {
    /// The user's own counter, or the tenant's shared one. Stored JSON written before
    /// tenant counters existed has no `owner`: it reads as the user's.
    #[serde(default, skip_serializing_if = "CounterOwner::is_user")]
    pub owner: CounterOwner,
    /// Meter name, or `$spend` for the money spent.
    pub meter: String,
    /// Window id: `day:YYYY-MM-DD`, `week:YYYY-MM-DD` (its Monday), `month:YYYY-MM`,
    /// `cycle:<RFC 3339 start>`, a sliding window's bucket `slide:<length>:<width>:<n>`
    /// (its gates sum every bucket the window counts), or `all` for a counter without a window.
    pub window: String,
}

impl CounterKey {
    /// The user's own counter.
    pub fn user(meter: impl Into<String>, window: impl Into<String>) -> Self {
        Self {
            owner: CounterOwner::User,
            meter: meter.into(),
            window: window.into(),
        }
    }

    /// The counter all users of the tenant share.
    pub fn tenant(meter: impl Into<String>, window: impl Into<String>) -> Self {
        Self {
            owner: CounterOwner::Tenant,
            meter: meter.into(),
            window: window.into(),
        }
    }
}

/// One check a reservation must pass: `committed + reserved + amount <= limit` on a counter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gate {
    /// The counter.
    pub key: CounterKey,
    /// The limit in the counter's unit (meter units, or micros for `$spend`).
    pub limit: i64,
    /// How much this reservation adds to the counter.
    pub amount: i64,
    /// The error code when the gate refuses, e.g. `daily_limit_reached`.
    pub code: String,
    /// When the window resets (for the error details), if it does.
    pub resets_at: Option<DateTime<Utc>>,
}

/// A reservation to make.
#[derive(Clone, Debug)]
pub struct NewReservation {
    /// Id.
    pub id: ReservationId,
    /// For whom.
    pub user_id: UserId,
    /// The meter reserved on.
    pub meter: String,
    /// Units reserved (> 0).
    pub amount: i64,
    /// Money held from the prepaid balance, in micros (0 when the plan is not prepaid).
    pub balance_micros: i64,
    /// Unique per tenant; a replay returns the original reservation.
    pub idempotency_key: String,
    /// Hash of the request's meaningful fields, to tell a replay from a reuse.
    pub request_hash: Vec<u8>,
    /// Released by the sweeper after this.
    pub expires_at: DateTime<Utc>,
    /// Why (free text, e.g. `job:job_123`).
    pub reason: String,
    /// The plan, limits and prices at this moment; settlement uses these.
    pub snapshot: serde_json::Value,
    /// Every counter this reservation adds to, with its limit.
    pub gates: Vec<Gate>,
}

/// Reservation states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReservationStatus {
    /// Holding quota.
    Active,
    /// Settled into the ledger.
    Committed,
    /// Returned by the caller.
    Released,
    /// Returned by the sweeper after `expires_at`.
    Expired,
}

impl ReservationStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Committed => "committed",
            Self::Released => "released",
            Self::Expired => "expired",
        }
    }
}

/// A stored reservation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReservationRecord {
    /// Id.
    pub id: ReservationId,
    /// Tenant.
    pub tenant_id: String,
    /// User.
    pub user_id: UserId,
    /// Meter.
    pub meter: String,
    /// Units reserved.
    pub amount: i64,
    /// Money held from the balance.
    pub balance_micros: i64,
    /// Idempotency key.
    pub idempotency_key: String,
    /// State.
    pub status: ReservationStatus,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Why.
    pub reason: String,
    /// Terms at reservation time.
    pub snapshot: serde_json::Value,
    /// The counters it holds.
    pub gates: Vec<Gate>,
    /// Units settled (when committed).
    pub committed_amount: Option<i64>,
    /// Made.
    pub created_at: DateTime<Utc>,
    /// Settled, released or expired.
    pub settled_at: Option<DateTime<Utc>>,
}

/// What `reserve` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Reserved now.
    Reserved(ReservationRecord),
    /// The key was used before with the same request: the original reservation.
    Replayed(ReservationRecord),
    /// The key was used before with a different request; nothing changed.
    KeyReused,
    /// A gate refused; nothing changed. `used` is committed + reserved on that counter.
    Refused {
        /// The gate that refused.
        gate: Gate,
        /// Its counter's current usage.
        used: i64,
    },
    /// The prepaid balance is short; nothing changed.
    InsufficientBalance {
        /// Balance minus what other reservations hold, in micros.
        available: i64,
    },
}

pub use crate::billing_records::{
    CommitOutcome, CounterMismatch, CounterValue, LedgerEntry, NewLedgerEntry, ReverseOutcome,
    Subscription, UsageGroup, UsageRow,
};

/// Billing storage.
#[async_trait]
pub trait BillingStore {
    /// Atomically: honours the idempotency key, checks every gate and the prepaid balance,
    /// and only if all pass inserts the reservation and adds to the counters and the held
    /// balance. Exactly N of any number of concurrent callers pass a gate of limit N.
    async fn reserve(&self, scope: &TenantScope, r: NewReservation) -> StoreResult<ReserveOutcome>;
    /// The tenant a reservation belongs to, whatever it is: only for the product's service
    /// principal, which acts for every tenant and learns the tenant from the reservation.
    async fn reservation_tenant(&self, id: ReservationId) -> StoreResult<Option<String>>;
    /// A reservation of the scope.
    async fn get_reservation(
        &self,
        scope: &TenantScope,
        id: ReservationId,
    ) -> StoreResult<ReservationRecord>;
    /// Atomically settles an active, unexpired reservation: moves its gates' amounts from
    /// reserved to committed (the committed side grows by `entry.amount`, or by
    /// `entry.cost_micros` for `$spend`), takes `entry.balance_micros` from the balance and
    /// releases the rest of the hold, appends the ledger entry, marks it committed.
    /// `allow_overage` permits `entry.amount` above the reservation.
    async fn commit(
        &self,
        scope: &TenantScope,
        id: ReservationId,
        entry: NewLedgerEntry,
        allow_overage: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<CommitOutcome>;
    /// Returns an active reservation's holds; `Ok(status)` says what it was before
    /// (releasing a released one is a no-op returning `Released`).
    async fn release(
        &self,
        scope: &TenantScope,
        id: ReservationId,
        now: DateTime<Utc>,
    ) -> StoreResult<ReservationStatus>;
    /// Reverses a committed reservation (a job that passed its billing checkpoint and then
    /// ended for a non-billable reason): appends one compensating ledger entry (the
    /// original's amount, overage, cost and paid money negated, its counters, idempotency
    /// key `reversal:<reservation id>`, `source` naming the original entry, the reservation
    /// and `reason`), takes the amount back off the committed side of the same counters
    /// (the original windows) and returns the paid money to the balance. The reservation
    /// stays `committed`. Idempotent: a second reversal, even a concurrent one, changes
    /// nothing and answers `Replayed` with the first entry. A reservation that was never
    /// committed answers `NotCommitted`; an unknown one `StoreError::NotFound`.
    async fn reverse_commit(
        &self,
        scope: &TenantScope,
        id: ReservationId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<ReverseOutcome>;
    /// Expires up to `limit` active reservations past their expiry, in every tenant, each
    /// exactly once even with several nodes sweeping; returns them.
    async fn expire_reservations(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<ReservationRecord>>;
    /// Appends entries without reservations (idempotent per key); each adds to its
    /// `counters`' committed side. Returns each entry and whether it was a replay.
    async fn record_usage(
        &self,
        scope: &TenantScope,
        entries: Vec<NewLedgerEntry>,
    ) -> StoreResult<Vec<(LedgerEntry, bool)>>;
    /// As [`Self::record_usage`], and in the same transaction sends
    /// `quota.threshold_reached` for each of `watch`'s users' gates (key and limit; the
    /// amount is ignored) whose counter the usage made reach 80 % or 100 % of its limit,
    /// once per counter, window and threshold.
    async fn record_usage_watched(
        &self,
        scope: &TenantScope,
        entries: Vec<NewLedgerEntry>,
        watch: Vec<(UserId, Vec<Gate>)>,
    ) -> StoreResult<Vec<(LedgerEntry, bool)>>;
    /// Current values of a user's counters, and of the tenant's for keys owned by the
    /// tenant (missing ones are zero).
    async fn counters(
        &self,
        scope: &TenantScope,
        user: UserId,
        keys: &[CounterKey],
    ) -> StoreResult<Vec<CounterValue>>;
    /// Usage of a user in `[from, to)`, grouped.
    async fn usage(
        &self,
        scope: &TenantScope,
        user: UserId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        group: UsageGroup,
    ) -> StoreResult<Vec<UsageRow>>;
    /// Recomputes every counter from the ledger and the active reservations; returns the
    /// mismatches, and rewrites the counters when `repair`.
    async fn verify_counters(&self, repair: bool) -> StoreResult<Vec<CounterMismatch>>;

    /// The user's subscription, if any.
    async fn get_subscription(
        &self,
        scope: &TenantScope,
        user: UserId,
    ) -> StoreResult<Option<Subscription>>;
    /// Creates or replaces the user's subscription.
    async fn put_subscription(&self, scope: &TenantScope, sub: Subscription) -> StoreResult<()>;

    /// The prepaid balance and the part held by active reservations, in micros.
    async fn balance(&self, scope: &TenantScope, user: UserId) -> StoreResult<(i64, i64)>;
    /// Adds (or with a negative amount, removes) money, idempotent per key; returns the
    /// new balance.
    async fn adjust_balance(
        &self,
        scope: &TenantScope,
        user: UserId,
        delta_micros: i64,
        idempotency_key: &str,
    ) -> StoreResult<i64>;
}
