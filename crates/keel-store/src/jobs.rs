//! Jobs: durable state machines, their append-only event log and their durable timers.
//!
//! The store enforces what must hold under concurrency: a concurrency cap counted and
//! written in one transaction, compare-and-set transitions on `version` that write their
//! `state_change` event and re-arm the job's timers atomically, per-job event sequences
//! assigned without gaps, and timers that fire at most once across nodes. What a
//! transition means (which timers, which billing action) is decided by `keel_core::jobs`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keel_core::ids::{JobId, ReservationId, TenantId, UserId};
use serde_json::Value;

use crate::{StoreResult, TenantScope};

/// A stored job.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRecord {
    /// The job.
    pub id: JobId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Its owner.
    pub user_id: UserId,
    /// The manifest job type.
    pub job_type: String,
    /// The current state.
    pub state: String,
    /// Incremented by every transition; the compare-and-set token.
    pub version: i64,
    /// The input given at creation.
    pub input: Value,
    /// The concurrency partition (e.g. the project), when the type has a keyed cap.
    pub concurrency_key: Option<String>,
    /// The quota reservation held for the job, if any.
    pub reservation_id: Option<ReservationId>,
    /// The reason of the last transition.
    pub reason: Option<String>,
    /// While the heartbeat is lost: the state a heartbeat moves the job back to.
    pub resume_state: Option<String>,
    /// The sequence of the last event.
    pub last_seq: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it reached a terminal state.
    pub finished_at: Option<DateTime<Utc>>,
    /// The last heartbeat.
    pub heartbeat_at: Option<DateTime<Utc>>,
}

pub use crate::jobs_batch::{BatchLimits, BatchOutcome, BatchRefusal};
pub use keel_core::jobs::TimerKind;

/// A timer to arm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTimer {
    /// What it does.
    pub kind: TimerKind,
    /// When it fires.
    pub fire_at: DateTime<Utc>,
}

/// A due timer claimed by one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueTimer {
    /// The job's tenant.
    pub tenant_id: TenantId,
    /// The job.
    pub job_id: JobId,
    /// What it does.
    pub kind: TimerKind,
    /// The state the job was in when it was armed.
    pub state: String,
    /// When it was due.
    pub fire_at: DateTime<Utc>,
}

/// A concurrency cap checked atomically with the insert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConcurrencyCap {
    /// Active jobs allowed in the partition.
    pub max: u32,
    /// Counted per user (else per tenant).
    pub per_user: bool,
}

/// A job to create, in its initial state.
#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    /// The new id.
    pub id: JobId,
    /// The owner.
    pub user_id: UserId,
    /// The manifest job type.
    pub job_type: String,
    /// The initial state.
    pub state: String,
    /// The input.
    pub input: Value,
    /// Dedupe key: a second create with it returns the first job.
    pub idempotency_key: Option<String>,
    /// The concurrency partition value.
    pub concurrency_key: Option<String>,
    /// The cap to enforce, if any.
    pub cap: Option<ConcurrencyCap>,
    /// A reservation taken for the job before creating it.
    pub reservation_id: Option<ReservationId>,
    /// Timers of the initial state.
    pub timers: Vec<NewTimer>,
    /// Data of the first `state_change` event.
    pub event_data: Value,
    /// Creation time.
    pub at: DateTime<Utc>,
}

/// What a create did.
#[derive(Clone, Debug, PartialEq)]
pub enum CreateOutcome {
    /// The job was created.
    Created(JobRecord),
    /// A job with the same idempotency key already existed; nothing was written.
    Existing(JobRecord),
    /// The concurrency cap is reached; nothing was written.
    AtCapacity {
        /// Active jobs in the partition.
        active: i64,
    },
}

/// A transition to write.
#[derive(Clone, Debug, PartialEq)]
pub struct TransitionWrite {
    /// The job.
    pub job_id: JobId,
    /// The version the caller saw; a different current version refuses the write.
    pub expected_version: i64,
    /// The target state.
    pub to: String,
    /// The reason recorded on the job and the event.
    pub reason: Option<String>,
    /// Data of the `state_change` event.
    pub event_data: Value,
    /// Whether the target state is terminal.
    pub finished: bool,
    /// The state a heartbeat returns to (set when entering the lost state, else cleared).
    pub resume_state: Option<String>,
    /// Sets the job's reservation (reserve on start).
    pub reservation_id: Option<ReservationId>,
    /// Replaces every pending timer of the job.
    pub timers: Vec<NewTimer>,
    /// The timer this transition fires: it must still be pending and due, or nothing is written.
    pub fires: Option<TimerKind>,
    /// Records a heartbeat at the transition time (a heartbeat ending a lost heartbeat).
    pub heartbeat: bool,
    /// Transition time.
    pub at: DateTime<Utc>,
}

/// What a transition did.
#[derive(Clone, Debug, PartialEq)]
pub enum TransitionOutcome {
    /// Written, with its `state_change` event.
    Done {
        /// The job after the transition.
        job: JobRecord,
        /// The `state_change` event.
        event: JobEvent,
    },
    /// The job's version differs from the expected one; nothing was written.
    Stale(JobRecord),
    /// The timer it fires was already fired or re-armed; nothing was written.
    TimerGone,
}

/// One event of a job's log.
#[derive(Clone, Debug, PartialEq)]
pub struct JobEvent {
    /// The job.
    pub job_id: JobId,
    /// Position in the job's log, from 1, without gaps.
    pub seq: i64,
    /// Event type (`state_change` for Keel's own).
    pub event_type: String,
    /// JSON data.
    pub data: Value,
    /// Whether the job's owner may read it.
    pub user_visible: bool,
    /// When it was appended.
    pub created_at: DateTime<Utc>,
}

/// An event to append.
#[derive(Clone, Debug, PartialEq)]
pub struct NewJobEvent {
    /// Event type.
    pub event_type: String,
    /// JSON data.
    pub data: Value,
    /// Whether the job's owner may read it.
    pub user_visible: bool,
    /// Append time.
    pub at: DateTime<Utc>,
}

/// What an append did.
#[derive(Clone, Debug, PartialEq)]
pub enum AppendOutcome {
    /// Appended.
    Appended(JobEvent),
    /// The job is finished; nothing was written.
    Finished,
}

/// A heartbeat to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatWrite {
    /// The job.
    pub job_id: JobId,
    /// The version the caller saw (a heartbeat never changes it).
    pub expected_version: i64,
    /// Replaces the job's pending heartbeat timers.
    pub timers: Vec<NewTimer>,
    /// Heartbeat time.
    pub at: DateTime<Utc>,
}

/// What a heartbeat did.
#[derive(Clone, Debug, PartialEq)]
pub enum HeartbeatOutcome {
    /// Recorded.
    Recorded(JobRecord),
    /// The job's version differs from the expected one; nothing was written.
    Stale(JobRecord),
}

/// Filters of a job listing, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobQuery {
    /// Only this user's jobs.
    pub user_id: Option<UserId>,
    /// Only this type.
    pub job_type: Option<String>,
    /// Only this state.
    pub state: Option<String>,
    /// Only jobs older than this one (the cursor).
    pub before: Option<JobId>,
    /// Page size.
    pub limit: i64,
}

/// What a retention run did for one job type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PruneOutcome {
    /// Deleted this many events (counted in `job_event_stats` first).
    Pruned {
        /// Events deleted.
        deleted: u64,
    },
    /// More than half of the type's events would go; nothing was deleted.
    Refused {
        /// Events eligible for deletion.
        eligible: i64,
        /// All events of the type.
        total: i64,
    },
}

/// One row of the daily statistics retention keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventStat {
    /// `YYYY-MM-DD` (UTC) the events were appended.
    pub day: String,
    /// The job type.
    pub job_type: String,
    /// Events appended that day that retention deleted.
    pub events: i64,
}

/// The store of jobs, their events and their timers.
#[async_trait]
pub trait JobStore {
    /// Creates a job with its first `state_change` event (seq 1) and its initial timers,
    /// unless the idempotency key already names a job or the cap is reached. Exactly one of
    /// many concurrent creates in a partition at `max - 1` active jobs succeeds.
    async fn create_job(&self, scope: &TenantScope, job: NewJob) -> StoreResult<CreateOutcome>;

    /// Reads a job; `None` when it is not in the scope.
    async fn find_job(&self, scope: &TenantScope, id: JobId) -> StoreResult<Option<JobRecord>>;

    /// Reads a job in any tenant: only for service callers, which act for every tenant.
    async fn locate_job(&self, id: JobId) -> StoreResult<Option<JobRecord>>;

    /// Lists jobs, newest first.
    async fn list_jobs(&self, scope: &TenantScope, query: &JobQuery)
        -> StoreResult<Vec<JobRecord>>;

    /// Compare-and-set transition: state, version + 1, the `state_change` event and the
    /// replaced timers in one transaction. `NotFound` when the job is not in the scope.
    async fn transition_job(
        &self,
        scope: &TenantScope,
        write: TransitionWrite,
    ) -> StoreResult<TransitionOutcome>;

    /// Appends an event with the next sequence number. `NotFound` when not in the scope.
    async fn append_job_event(
        &self,
        scope: &TenantScope,
        job_id: JobId,
        event: NewJobEvent,
    ) -> StoreResult<AppendOutcome>;

    /// Appends a batch with consecutive sequence numbers in one transaction, all or nothing.
    async fn append_job_events(
        &self,
        scope: &TenantScope,
        job_id: JobId,
        events: Vec<NewJobEvent>,
        limits: BatchLimits,
    ) -> StoreResult<BatchOutcome>;

    /// Events with `seq > after`, in order, at most `limit`; only user-visible ones when asked.
    async fn job_events(
        &self,
        scope: &TenantScope,
        job_id: JobId,
        after: i64,
        limit: i64,
        user_visible_only: bool,
    ) -> StoreResult<Vec<JobEvent>>;

    /// Records a heartbeat and replaces the heartbeat timers. `NotFound` when not in the scope.
    async fn heartbeat_job(
        &self,
        scope: &TenantScope,
        write: HeartbeatWrite,
    ) -> StoreResult<HeartbeatOutcome>;

    /// Claims up to `limit` timers due at `now` that no live claim holds, for `owner` until
    /// `lease_until`. Concurrent claimers never receive the same timer while a lease lives.
    async fn claim_due_timers(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<DueTimer>>;

    /// Deletes a pending timer that no longer applies (its state was left).
    async fn discard_timer(
        &self,
        scope: &TenantScope,
        job_id: JobId,
        kind: TimerKind,
    ) -> StoreResult<bool>;

    /// The pending timers of a job (tests and operators).
    async fn job_timers(&self, scope: &TenantScope, job_id: JobId) -> StoreResult<Vec<DueTimer>>;

    /// Deletes, in batches of `batch`, the events of `job_type`'s jobs that finished before
    /// `cutoff`, adding them to the daily statistics first. Refuses to delete more than half
    /// of the type's events unless `force`.
    async fn prune_job_events(
        &self,
        job_type: &str,
        cutoff: DateTime<Utc>,
        batch: i64,
        force: bool,
    ) -> StoreResult<PruneOutcome>;

    /// The daily statistics of a job type, oldest first.
    async fn job_event_stats(&self, job_type: &str) -> StoreResult<Vec<EventStat>>;
}

/// A stable 64-bit key of a concurrency partition, for PostgreSQL's advisory locks.
pub(crate) fn partition_lock_key(
    tenant: TenantId,
    job_type: &str,
    owner: Option<UserId>,
    key: Option<&str>,
) -> i64 {
    // FNV-1a: stable across processes and versions, unlike `DefaultHasher`.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let owner = owner.map(|u| u.to_string()).unwrap_or_default();
    let parts = [
        tenant.to_string(),
        job_type.to_owned(),
        owner,
        key.unwrap_or("").to_owned(),
    ];
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}
