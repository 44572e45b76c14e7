//! The outbound webhooks context's storage: endpoints, the outbox (messages), deliveries
//! (message × endpoint) and every attempt; plus each user's payment provider customer.
//!
//! Messages are written in the transaction of the change that caused them: the billing
//! store's expiry, commit and subscription writes enqueue theirs with the backend's
//! `enqueue` helper (`sqlite::webhook_outbox`, `postgres::webhook_outbox`), and
//! [`WebhookStore::enqueue`] writes one on its own for callers without a transaction.
//! Enqueueing fans the message out to every enabled endpoint subscribed to its type, so a
//! delivery row exists for each endpoint from the moment the change commits.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keel_core::ids::{AttemptId, EndpointId, MessageId, TenantId, UserId};
use keel_core::outbound::EventType;

pub use crate::webhook_records::{
    AttemptOutcome, AttemptRecord, AttemptResult, DeliveryStatus, DueDelivery, EndpointRecord,
    EndpointUpdate, MessageRecord, NewEndpoint, OutboxMessage,
};
use crate::{StoreResult, TenantScope};

/// The tenant whose endpoints receive every tenant's events (the nil id, the system tenant).
pub fn all_tenants() -> TenantId {
    TenantId::from_uuid(uuid::Uuid::nil())
}

/// Outbound webhook storage.
#[async_trait]
pub trait WebhookStore {
    /// Registers an endpoint in the scope (the [`all_tenants`] scope: every tenant's events).
    async fn create_endpoint(
        &self,
        scope: &TenantScope,
        endpoint: NewEndpoint,
    ) -> StoreResult<EndpointRecord>;
    /// The tenant an endpoint belongs to, whatever it is: only for operators, who act for
    /// every tenant and learn the tenant from the endpoint.
    async fn endpoint_tenant(&self, id: EndpointId) -> StoreResult<Option<TenantId>>;
    /// An endpoint of the scope.
    async fn get_endpoint(
        &self,
        scope: &TenantScope,
        id: EndpointId,
    ) -> StoreResult<EndpointRecord>;
    /// The scope's endpoints, oldest first.
    async fn list_endpoints(&self, scope: &TenantScope) -> StoreResult<Vec<EndpointRecord>>;
    /// Changes what `update` sets; enabling clears the failure streak and the reason.
    async fn update_endpoint(
        &self,
        scope: &TenantScope,
        id: EndpointId,
        update: EndpointUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<EndpointRecord>;
    /// Deletes an endpoint and its deliveries (attempts are kept); false when absent.
    async fn delete_endpoint(&self, scope: &TenantScope, id: EndpointId) -> StoreResult<bool>;
    /// Replaces the signing secret; the old one keeps signing until `previous_until`.
    async fn rotate_endpoint_secret(
        &self,
        scope: &TenantScope,
        id: EndpointId,
        secret: String,
        previous_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<EndpointRecord>;

    /// Writes one message to the outbox on its own (for changes made outside a store
    /// transaction), fanned out to the subscribed endpoints.
    async fn enqueue(
        &self,
        scope: &TenantScope,
        message: OutboxMessage,
    ) -> StoreResult<MessageRecord>;
    /// The tenant a message belongs to (operators only, as [`Self::endpoint_tenant`]).
    async fn message_tenant(&self, id: MessageId) -> StoreResult<Option<TenantId>>;
    /// A message of the scope.
    async fn get_message(&self, scope: &TenantScope, id: MessageId) -> StoreResult<MessageRecord>;
    /// The scope's messages of one type, newest first (at most `limit`, 1 to 500).
    async fn list_messages(
        &self,
        scope: &TenantScope,
        event_type: Option<EventType>,
        limit: i64,
    ) -> StoreResult<Vec<MessageRecord>>;
    /// Queues the message again, due at `now`, to every enabled endpoint subscribed to its
    /// type now (those that had it restart their retry schedule); returns how many.
    async fn replay_message(
        &self,
        scope: &TenantScope,
        id: MessageId,
        now: DateTime<Utc>,
    ) -> StoreResult<usize>;

    /// Claims up to `limit` pending deliveries due at `now`, of enabled endpoints, in every
    /// tenant, until `lease_until`: each claim is given to one caller however many nodes
    /// ask at once, and is not claimable again until the lease ends or its attempt is
    /// recorded.
    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<DueDelivery>>;
    /// Records the attempt a claim was made for and moves the delivery on (succeeded,
    /// scheduled again, or dead); disables the endpoint when it has been failing for the
    /// [`keel_core::outbound::DISABLE_AFTER`] period. An attempt already recorded (a lease
    /// that ran out while another node took over) changes nothing.
    async fn record_attempt(
        &self,
        delivery: &DueDelivery,
        result: AttemptResult,
    ) -> StoreResult<AttemptOutcome>;
    /// An endpoint's attempts, newest first (at most `limit`, 1 to 500).
    async fn list_attempts(
        &self,
        scope: &TenantScope,
        endpoint: EndpointId,
        limit: i64,
    ) -> StoreResult<Vec<AttemptRecord>>;
    /// The deliveries of a message: (endpoint, status, attempts made).
    async fn message_deliveries(
        &self,
        scope: &TenantScope,
        id: MessageId,
    ) -> StoreResult<Vec<(EndpointId, DeliveryStatus, i64)>>;

    /// The user's customer id at `provider` (e.g. `stripe`), if known.
    async fn billing_customer(
        &self,
        scope: &TenantScope,
        user: UserId,
        provider: &str,
    ) -> StoreResult<Option<String>>;
    /// Records (or replaces) the user's customer id at `provider`.
    async fn put_billing_customer(
        &self,
        scope: &TenantScope,
        user: UserId,
        provider: &str,
        customer_id: &str,
    ) -> StoreResult<()>;
}

/// A new attempt id (kept here so both backends make them the same way).
pub(crate) fn attempt_id() -> AttemptId {
    AttemptId::new()
}
