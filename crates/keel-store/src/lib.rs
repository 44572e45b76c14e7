//! Keel's storage: one trait per context, implemented for SQLite (the embedded default)
//! and PostgreSQL (for many nodes). The backend is chosen once, from the URL scheme.
//!
//! Every method that touches tenant data takes a [`TenantScope`] first, so an unscoped
//! read cannot be written.

mod audit;
mod billing;
pub mod billing_batch;
mod billing_calc;
mod billing_records;
mod billing_rows;
mod connect;
mod error;
mod idempotency;
mod identity;
mod identity_records;
pub mod jobs;
mod jobs_batch;
mod jobs_impl;
mod jobs_sql;
mod jobs_write;
pub mod levers;
mod levers_sql;
pub mod postgres;
mod rows;
mod safety;
mod scope;
pub mod sqlite;
mod system;
#[cfg(feature = "test-util")]
pub mod testing;
mod webhook_calc;
mod webhook_events;
mod webhook_out;
mod webhook_records;
mod webhooks;

use std::sync::Arc;

pub use audit::{AuditEvent, AuditQuery, AuditStore, NewAuditEvent};
pub use billing::{
    BillingStore, CommitOutcome, CounterKey, CounterMismatch, CounterOwner, CounterValue, Gate,
    LedgerEntry, NewLedgerEntry, NewReservation, ReservationRecord, ReservationStatus,
    ReserveOutcome, ReverseOutcome, Subscription, UsageGroup, UsageRow,
};
pub use billing_batch::{MeteringStore, Settle, SettleReport, Settled};
pub use connect::{connect, ConnectOptions, Target};
pub use error::{StoreError, StoreResult};
pub use idempotency::{
    ClaimOutcome, IdempotencyRecord, IdempotencyStore, KeptRecord, NewIdempotencyClaim,
};
pub use identity::{
    AdminRecord, AdminSessionRecord, AdminUpdate, ApiKeyRecord, ApiKeyStore, AuthStore,
    ChallengeRecord, FailureCount, NewAdmin, NewApiKey, NewRefreshToken, NewSession, NewUser,
    RefreshTokenRecord, Rotation, SessionRecord, SigningKeyRecord, UserRecord, UserStore,
};
pub use jobs::JobStore;
pub use levers::{KillSwitch, LeverStore, QuotaOverride};
pub use safety::{NewSafetyEvent, SafetyEvent, SafetyQuery, SafetyStore};
pub use scope::TenantScope;
pub use system::{Backend, SchemaStatus, SystemStore};
pub use webhook_out::{
    all_tenants, AttemptOutcome, AttemptRecord, AttemptResult, DeliveryStatus, DueDelivery,
    EndpointRecord, EndpointUpdate, MessageRecord, NewEndpoint, OutboxMessage, WebhookStore,
};
pub use webhooks::{
    InboxEvent, InboxResolution, InboxStatus, InboxStore, NewInboxEvent, ResolveOutcome,
    SubscriptionChange,
};

/// Everything Keel stores, behind one object the server holds.
pub trait Store:
    SystemStore
    + AuditStore
    + UserStore
    + ApiKeyStore
    + AuthStore
    + BillingStore
    + MeteringStore
    + IdempotencyStore
    + LeverStore
    + SafetyStore
    + InboxStore
    + WebhookStore
    + JobStore
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: SystemStore
        + AuditStore
        + UserStore
        + ApiKeyStore
        + AuthStore
        + BillingStore
        + MeteringStore
        + IdempotencyStore
        + LeverStore
        + SafetyStore
        + InboxStore
        + WebhookStore
        + JobStore
        + Send
        + Sync
        + 'static
{
}

/// The shared handle the server and commands use.
pub type DynStore = Arc<dyn Store>;

/// The current time at the precision both backends store (microseconds), so a row
/// read back equals the row written.
pub(crate) fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}

/// A caller-given time at the precision both backends store, so what is returned at
/// write equals what is read back.
pub(crate) fn micros(at: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    at.trunc_subsecs(6)
}

/// The start of a throttling window of `window_secs` ending at `now` (0 to 100 years).
pub(crate) fn window_cutoff(
    now: chrono::DateTime<chrono::Utc>,
    window_secs: i64,
) -> chrono::DateTime<chrono::Utc> {
    const CENTURY_SECS: i64 = 100 * 366 * 86_400;
    let window =
        chrono::TimeDelta::try_seconds(window_secs.clamp(0, CENTURY_SECS)).unwrap_or_default();
    now.checked_sub_signed(window).unwrap_or(now)
}
