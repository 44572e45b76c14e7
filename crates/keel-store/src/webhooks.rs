//! The inbound webhook inbox: verified deliveries from the stores and payment providers,
//! deduplicated by the provider's event id and kept for good, applied by a worker with
//! retries, dead-lettered after too many failures.
//!
//! A delivery arrives before Keel knows its tenant, so the inbox is not tenant scoped;
//! applying an event resolves its user and writes the subscription, the audit event and
//! the event's new status in one transaction, under the user's [`TenantScope`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keel_core::ids::{InboxEventId, UserId};
use serde::Serialize;

use crate::{NewAuditEvent, StoreResult, Subscription, TenantScope};

/// Where an inbox event is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InboxStatus {
    /// Received, not yet attempted.
    Pending,
    /// Applied (or found to change nothing); final.
    Applied,
    /// Failed at least once; retried at `next_attempt_at`.
    Failed,
    /// Failed too often, or cannot ever apply; waits for an operator's replay.
    Dead,
}

impl InboxStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Applied => "applied",
            Self::Failed => "failed",
            Self::Dead => "dead",
        }
    }

    /// Parses the stored text.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => Self::Pending,
            "applied" => Self::Applied,
            "failed" => Self::Failed,
            "dead" => Self::Dead,
            _ => return None,
        })
    }
}

/// A verified delivery to keep.
#[derive(Clone, Debug)]
pub struct NewInboxEvent {
    /// `stripe`, `appstore`, `googleplay` or `lemonsqueezy`.
    pub provider: String,
    /// The provider's id of the event; unique per provider, for good.
    pub provider_event_id: String,
    /// The provider's event type, e.g. `customer.subscription.updated`.
    pub event_type: String,
    /// The verified, decoded event.
    pub payload: serde_json::Value,
    /// When Keel received it.
    pub received_at: DateTime<Utc>,
}

/// A stored inbox event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InboxEvent {
    /// Keel's id.
    pub id: InboxEventId,
    /// Provider.
    pub provider: String,
    /// The provider's event id.
    pub provider_event_id: String,
    /// The provider's event type.
    pub event_type: String,
    /// The verified, decoded event.
    pub payload: serde_json::Value,
    /// State.
    pub status: InboxStatus,
    /// Attempts made so far (also the fencing token of the current claim).
    pub attempts: i64,
    /// When the next attempt is due (or, while claimed, when the claim lapses).
    pub next_attempt_at: DateTime<Utc>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// What applying did, e.g. `subscription.changed` or `ignored: …`.
    pub outcome: Option<String>,
    /// The tenant of the user it resolved to.
    pub tenant_id: Option<String>,
    /// The user it resolved to.
    pub user_id: Option<UserId>,
    /// Received.
    pub received_at: DateTime<Utc>,
    /// Applied.
    pub applied_at: Option<DateTime<Utc>>,
}

/// A subscription change an event makes.
#[derive(Clone, Debug)]
pub struct SubscriptionChange {
    /// The user's tenant.
    pub scope: TenantScope,
    /// The new subscription record.
    pub subscription: Subscription,
    /// The provider's own time of the event; a change older than the one the
    /// subscription was last set from changes nothing.
    pub event_at: DateTime<Utc>,
    /// The provider's subscription reference (original transaction id, purchase token…).
    pub provider_ref: String,
    /// Written with the change.
    pub audit: NewAuditEvent,
}

/// How an attempt ended.
#[derive(Clone, Debug)]
pub enum InboxResolution {
    /// Apply a subscription change.
    Change(Box<SubscriptionChange>),
    /// Record that a provider's subscription reference belongs to a user; final.
    Link {
        /// The user's tenant.
        scope: TenantScope,
        /// The user.
        user: UserId,
        /// The provider's subscription reference.
        provider_ref: String,
    },
    /// Nothing to change (an event type Keel does not act on); final.
    Ignore {
        /// Why.
        reason: String,
    },
    /// The attempt failed; retry at `retry_at`, or dead-letter when `None`.
    Fail {
        /// Why.
        error: String,
        /// When to try again.
        retry_at: Option<DateTime<Utc>>,
    },
}

/// What resolving did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResolveOutcome {
    /// The subscription changed.
    Applied,
    /// The subscription was last set from a newer event: nothing changed, event applied.
    Stale,
    /// Marked ignored, failed or dead as asked.
    Recorded,
    /// The claim was lost (another worker took the event after the claim lapsed, or an
    /// operator replayed it): nothing changed.
    LostClaim,
}

/// Inbox storage.
#[async_trait]
pub trait InboxStore {
    /// Keeps a delivery unless one with the same provider and provider event id exists;
    /// returns the stored event and whether it was new.
    async fn record_inbox_event(&self, event: NewInboxEvent) -> StoreResult<(InboxEvent, bool)>;
    /// Claims up to `limit` due events (pending, or failed and due), each for one worker
    /// only (`SKIP LOCKED` on PostgreSQL): counts the attempt and pushes `next_attempt_at`
    /// to `claim_until`, so an event whose worker died is claimed again after that.
    async fn claim_inbox_events(
        &self,
        now: DateTime<Utc>,
        claim_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<InboxEvent>>;
    /// Ends the attempt `attempt` of an event atomically: a change writes the subscription
    /// (unless a newer provider event already set it), the audit event and the event's
    /// new status together.
    async fn resolve_inbox_event(
        &self,
        id: InboxEventId,
        attempt: i64,
        resolution: InboxResolution,
        now: DateTime<Utc>,
    ) -> StoreResult<ResolveOutcome>;
    /// One event.
    async fn get_inbox_event(&self, id: InboxEventId) -> StoreResult<InboxEvent>;
    /// Events, newest first, optionally of one status and provider.
    async fn list_inbox_events(
        &self,
        status: Option<InboxStatus>,
        provider: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<InboxEvent>>;
    /// The user a provider's subscription reference is linked to, in every tenant (the
    /// inbox learns the tenant from it).
    async fn find_provider_link(
        &self,
        provider: &str,
        provider_ref: &str,
    ) -> StoreResult<Option<(TenantScope, UserId)>>;
    /// Links a provider's subscription reference to a user (a client telling Keel about
    /// its purchase); `Conflict` when it is linked to another user.
    async fn link_provider_ref(
        &self,
        scope: &TenantScope,
        user: UserId,
        provider: &str,
        provider_ref: &str,
    ) -> StoreResult<()>;
    /// Makes an event due again now with its attempts reset (an operator's replay);
    /// returns it.
    async fn replay_inbox_event(
        &self,
        id: InboxEventId,
        now: DateTime<Utc>,
    ) -> StoreResult<InboxEvent>;
}

/// The columns every inbox query reads.
macro_rules! inbox_columns {
    () => {
        "id, provider, provider_event_id, event_type, payload, status, attempts, \
         next_attempt_at, last_error, outcome, tenant_id, user_id, received_at, applied_at"
    };
}
pub(crate) use inbox_columns;

/// A stored inbox row.
pub(crate) fn inbox_event(row: &impl crate::rows::Columns) -> StoreResult<InboxEvent> {
    let status = row.text("status")?;
    Ok(InboxEvent {
        id: row.id("id")?,
        provider: row.text("provider")?,
        provider_event_id: row.text("provider_event_id")?,
        event_type: row.text("event_type")?,
        payload: row.json_value("payload")?,
        status: InboxStatus::parse(&status).ok_or_else(|| {
            crate::StoreError::Other(sqlx::Error::Decode(
                format!("unknown inbox status {status}").into(),
            ))
        })?,
        attempts: row.int("attempts")?,
        next_attempt_at: row.time("next_attempt_at")?,
        last_error: row.opt_text("last_error")?,
        outcome: row.opt_text("outcome")?,
        tenant_id: row.opt_text("tenant_id")?,
        user_id: row.opt_id("user_id")?,
        received_at: row.time("received_at")?,
        applied_at: row.opt_time("applied_at")?,
    })
}

/// The most events one list returns.
pub(crate) const MAX_LIST: i64 = 1000;

/// A stored link's tenant and user.
pub(crate) fn parse_link(tenant: &str, user: &str) -> StoreResult<(TenantScope, UserId)> {
    let bad =
        |e: keel_core::ids::InvalidId| crate::StoreError::Other(sqlx::Error::Decode(Box::new(e)));
    Ok((
        TenantScope::new(tenant.parse().map_err(bad)?),
        user.parse().map_err(bad)?,
    ))
}
