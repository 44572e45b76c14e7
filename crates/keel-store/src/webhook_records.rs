//! The webhook store's records: endpoints, messages, deliveries and attempts.

use chrono::{DateTime, Utc};
use keel_core::ids::{AttemptId, EndpointId, MessageId, TenantId};
use keel_core::outbound::EventType;
use serde::Serialize;

/// An endpoint to register.
#[derive(Clone, Debug)]
pub struct NewEndpoint {
    /// Id.
    pub id: EndpointId,
    /// Where messages are POSTed (validated by the caller).
    pub url: String,
    /// Free text.
    pub description: String,
    /// What it subscribes to (at least one).
    pub event_types: Vec<EventType>,
    /// The `whsec_…` signing secret.
    pub secret: String,
}

/// A stored endpoint. The secrets are here for the worker; never return them from an API.
#[derive(Clone, PartialEq, Eq)]
pub struct EndpointRecord {
    /// Id.
    pub id: EndpointId,
    /// Tenant (the nil id: every tenant's events).
    pub tenant_id: TenantId,
    /// URL.
    pub url: String,
    /// Free text.
    pub description: String,
    /// Subscribed event types.
    pub event_types: Vec<EventType>,
    /// Current signing secret.
    pub secret: String,
    /// The secret before the last rotation, while it still signs.
    pub previous_secret: Option<String>,
    /// Until when the previous secret signs.
    pub previous_until: Option<DateTime<Utc>>,
    /// Whether messages are delivered.
    pub enabled: bool,
    /// Why it was disabled (`failing`, `operator`).
    pub disabled_reason: Option<String>,
    /// Start of the current run of failed attempts.
    pub failing_since: Option<DateTime<Utc>>,
    /// Made.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for EndpointRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointRecord")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("enabled", &self.enabled)
            .field("failing_since", &self.failing_since)
            .finish_non_exhaustive()
    }
}

/// What `update_endpoint` changes; `None` leaves a field alone.
#[derive(Clone, Debug, Default)]
pub struct EndpointUpdate {
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// Replace the subscribed event types (at least one).
    pub event_types: Option<Vec<EventType>>,
    /// Replace the URL (validated by the caller).
    pub url: Option<String>,
    /// Replace the description.
    pub description: Option<String>,
}

/// An event to put in the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Its type.
    pub event_type: EventType,
    /// The event's data (the `data` of the delivered body).
    pub payload: serde_json::Value,
}

/// A stored message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MessageRecord {
    /// Id (`msg_…`), sent as `webhook-id`: receivers deduplicate on it.
    pub id: MessageId,
    /// Tenant.
    pub tenant_id: TenantId,
    /// Type.
    pub event_type: EventType,
    /// Data.
    pub payload: serde_json::Value,
    /// Written.
    pub created_at: DateTime<Utc>,
}

/// A delivery's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// An attempt got a 2xx.
    Succeeded,
    /// Given up on without exhausting the schedule (reserved; not written today).
    Failed,
    /// Every scheduled attempt failed.
    Dead,
}

impl DeliveryStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Dead => "dead",
        }
    }

    /// Parses the stored text.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Succeeded, Self::Failed, Self::Dead]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

/// A claimed delivery: everything the worker needs to make one attempt. Its `Debug`
/// leaves the secrets out.
#[derive(Clone)]
pub struct DueDelivery {
    /// The message.
    pub message: MessageRecord,
    /// The endpoint.
    pub endpoint_id: EndpointId,
    /// Its URL.
    pub url: String,
    /// The secrets to sign with: the current one, then the previous one while it signs.
    pub secrets: Vec<String>,
    /// The number this attempt will have (1 for the first).
    pub attempt: i64,
    /// Failed attempts since the schedule started (the schedule position).
    pub failures: i64,
}

impl std::fmt::Debug for DueDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DueDelivery")
            .field("message", &self.message.id)
            .field("endpoint_id", &self.endpoint_id)
            .field("url", &self.url)
            .field("attempt", &self.attempt)
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

/// What happened when the worker tried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptResult {
    /// When the request was sent.
    pub attempted_at: DateTime<Utc>,
    /// The response status, when one came.
    pub status_code: Option<u16>,
    /// How long it took.
    pub latency_ms: i64,
    /// Why it failed without a status (timeout, connection refused…).
    pub error: Option<String>,
    /// The response body, truncated.
    pub response_body: Option<String>,
    /// A 2xx came back.
    pub succeeded: bool,
}

/// What `record_attempt` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptOutcome {
    /// False when this attempt had already been recorded (nothing changed).
    pub recorded: bool,
    /// The delivery's state now.
    pub status: DeliveryStatus,
    /// When it is tried next, if it is.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The endpoint was disabled by this attempt (failing for too long).
    pub endpoint_disabled: bool,
}

/// A recorded attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AttemptRecord {
    /// Id.
    pub id: AttemptId,
    /// Message.
    pub message_id: MessageId,
    /// Endpoint.
    pub endpoint_id: EndpointId,
    /// 1 for the first attempt of the delivery.
    pub attempt: i64,
    /// When.
    pub attempted_at: DateTime<Utc>,
    /// Response status, if a response came.
    pub status_code: Option<i64>,
    /// Milliseconds until the response (or the failure).
    pub latency_ms: i64,
    /// Why no response came.
    pub error: Option<String>,
    /// Response body, truncated.
    pub response_body: Option<String>,
    /// 2xx.
    pub succeeded: bool,
}
