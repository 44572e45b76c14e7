//! Several billing writes as one: what a metered call does twice (reserve every meter it
//! uses before the upstream call; settle them all, with the call's audit event, after).
//! One transaction each instead of one per meter, so a call costs two writes, and on
//! SQLite those share the billing writer's group commit with every other call in flight.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keel_core::ids::ReservationId;

use crate::{
    CommitOutcome, NewAuditEvent, NewLedgerEntry, NewReservation, ReservationStatus,
    ReserveOutcome, StoreResult, TenantScope,
};

/// How one reservation of a settlement batch ends.
#[derive(Clone, Debug)]
pub enum Settle {
    /// Commit it with this ledger entry (as [`crate::BillingStore::commit`]).
    Commit {
        /// The reservation.
        id: ReservationId,
        /// The entry to append.
        entry: NewLedgerEntry,
        /// Whether `entry.amount` may exceed the reservation.
        allow_overage: bool,
    },
    /// Release it (as [`crate::BillingStore::release`]).
    Release {
        /// The reservation.
        id: ReservationId,
    },
}

/// What one item of a settlement batch did. (One short-lived value per reservation
/// settled: boxing the commit outcome would only add an allocation.)
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    /// The commit's outcome.
    Commit(CommitOutcome),
    /// The reservation's status before the release.
    Release(ReservationStatus),
}

/// What a settlement batch did: one result per item, in order, and the audit append's.
#[derive(Debug)]
pub struct SettleReport {
    /// Per item: its outcome, or the error that undid it alone.
    pub items: Vec<StoreResult<Settled>>,
    /// The audit event's append, when one was given.
    pub audit: Option<StoreResult<()>>,
}

/// Batched billing writes.
#[async_trait]
pub trait MeteringStore {
    /// Reserves every request in one transaction, all or nothing. Returns one outcome per
    /// request up to and including the first that is not `Reserved` or `Replayed`; when
    /// there is such an outcome, nothing of the batch was kept.
    async fn reserve_all(
        &self,
        scope: &TenantScope,
        requests: Vec<NewReservation>,
    ) -> StoreResult<Vec<ReserveOutcome>>;

    /// Ends every reservation in one transaction, each independently (one failing undoes
    /// only itself), and appends `audit` in the same transaction. Callers are answered
    /// after the commit: an acknowledged settlement is durable.
    async fn settle_all(
        &self,
        scope: &TenantScope,
        items: Vec<Settle>,
        audit: Option<NewAuditEvent>,
        now: DateTime<Utc>,
    ) -> StoreResult<SettleReport>;
}

/// Whether the batch stopped at a refusal (so nothing of it was kept).
pub fn refused(outcomes: &[ReserveOutcome]) -> bool {
    outcomes
        .iter()
        .any(|o| !matches!(o, ReserveOutcome::Reserved(_) | ReserveOutcome::Replayed(_)))
}
