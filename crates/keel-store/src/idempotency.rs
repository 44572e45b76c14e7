//! Transport-level idempotency records (the `Idempotency-Key` header): a claim taken
//! before a request executes, completed with the sealed response it produced, or
//! released when the response is not kept. Shared by every node through the store.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{StoreResult, TenantScope};

/// A claim on a record, taken before the request executes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewIdempotencyClaim {
    /// The record id (derived from the caller, method, path and key; never the key).
    pub id: String,
    /// Who the caller is, e.g. `user:usr_…` (for operators; the id already binds it).
    pub principal: String,
    /// The request method.
    pub method: String,
    /// The request path.
    pub path: String,
    /// The request fingerprint a retry must match.
    pub fingerprint: Vec<u8>,
    /// Identifies this holder: only it may complete or release the claim.
    pub lock: Uuid,
    /// After this, another request may take the claim over (its holder died).
    pub locked_until: DateTime<Utc>,
    /// After this, the record is as if it never existed and the sweeper deletes it.
    pub expires_at: DateTime<Utc>,
}

/// What a claim found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The caller holds the claim and executes the request.
    Claimed {
        /// True when a dead holder's expired lock was taken over.
        taken_over: bool,
    },
    /// Another request holds a live claim.
    InProgress {
        /// When its lock expires.
        locked_until: DateTime<Utc>,
    },
    /// The record was made by a different request (fingerprint mismatch).
    Mismatch,
    /// The request already completed; replay this.
    Completed(KeptRecord),
}

/// A completed request's kept response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptRecord {
    /// The response status (also inside the sealed response).
    pub status: u16,
    /// The sealed response.
    pub response: Vec<u8>,
}

/// A stored record, as read back (tests and operators).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// The record id.
    pub id: String,
    /// The caller.
    pub principal: String,
    /// The request method.
    pub method: String,
    /// The request path.
    pub path: String,
    /// The request fingerprint.
    pub fingerprint: Vec<u8>,
    /// The holder while in progress; `None` once completed.
    pub lock: Option<Uuid>,
    /// The holder's lock expiry while in progress.
    pub locked_until: Option<DateTime<Utc>>,
    /// The kept response once completed.
    pub kept: Option<KeptRecord>,
    /// When it was first claimed.
    pub created_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

/// The store of idempotency records.
#[async_trait]
pub trait IdempotencyStore {
    /// Claims the record, or reports why not. A record past `expires_at` counts as
    /// absent; an in-progress record past `locked_until` with the same fingerprint is
    /// taken over. Exactly one of many concurrent claims on one id wins.
    async fn claim_idempotency(
        &self,
        scope: &TenantScope,
        claim: &NewIdempotencyClaim,
        now: DateTime<Utc>,
    ) -> StoreResult<ClaimOutcome>;

    /// Stores the response of a claim still held by `lock`; from then on it expires at
    /// `expires_at`. False when the claim was lost (taken over or swept).
    async fn complete_idempotency(
        &self,
        scope: &TenantScope,
        id: &str,
        lock: Uuid,
        kept: KeptRecord,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Deletes a claim still held by `lock`, so a retry executes. False when it was lost.
    async fn release_idempotency(
        &self,
        scope: &TenantScope,
        id: &str,
        lock: Uuid,
    ) -> StoreResult<bool>;

    /// Reads a record.
    async fn find_idempotency(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> StoreResult<Option<IdempotencyRecord>>;

    /// Deletes at most `limit` records that expired at or before `now`, in every tenant;
    /// returns how many. Safe to run on every node at once.
    async fn sweep_idempotency(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<u64>;
}

/// What a claim does to an existing row: the decision both backends share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Existing {
    /// Replace the row with the new claim.
    Replace,
    /// Take the lock of this in-progress row.
    TakeOver,
    /// Leave it and answer this.
    Answer(ClaimOutcome),
}

/// Decides what a claim does, given the row it found.
pub(crate) fn decide(
    row: &IdempotencyRecord,
    claim: &NewIdempotencyClaim,
    now: DateTime<Utc>,
) -> Existing {
    if row.expires_at <= now {
        return Existing::Replace;
    }
    if row.fingerprint != claim.fingerprint {
        return Existing::Answer(ClaimOutcome::Mismatch);
    }
    match (&row.kept, row.locked_until) {
        (Some(kept), _) => Existing::Answer(ClaimOutcome::Completed(kept.clone())),
        (None, Some(until)) if until > now => Existing::Answer(ClaimOutcome::InProgress {
            locked_until: until,
        }),
        (None, _) => Existing::TakeOver,
    }
}
