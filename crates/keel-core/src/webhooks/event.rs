//! One provider event, read into what Keel acts on.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

/// What an event says happened to a subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A first purchase (or a re-subscription).
    Purchased,
    /// A renewal: a new period is paid.
    Renewed,
    /// The product changed now (an upgrade or crossgrade).
    PlanChanged,
    /// Payment recovered after a failure or a pause.
    Recovered,
    /// Auto-renew was turned off: the plan is kept until the period ends.
    CancelAtPeriodEnd,
    /// Auto-renew was turned back on.
    Uncanceled,
    /// A renewal payment failed. With `grace`, the product's (or the provider's) grace
    /// period keeps the plan; without, the plan is locked at once (billing retry, on hold).
    PaymentFailed {
        /// Whether a grace period may apply.
        grace: bool,
    },
    /// The subscription ended (expired, grace over, deleted, paused).
    Expired,
    /// Refunded or revoked: access ends now.
    Revoked,
    /// A subscription reference now belongs to a user (e.g. Stripe Checkout completed);
    /// no state change.
    Linked,
    /// Nothing Keel acts on.
    Ignored,
}

impl EventKind {
    /// A stable name for audit events and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Purchased => "purchased",
            Self::Renewed => "renewed",
            Self::PlanChanged => "plan_changed",
            Self::Recovered => "recovered",
            Self::CancelAtPeriodEnd => "cancel_at_period_end",
            Self::Uncanceled => "uncanceled",
            Self::PaymentFailed { grace: true } => "payment_failed",
            Self::PaymentFailed { grace: false } => "billing_retry",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Linked => "linked",
            Self::Ignored => "ignored",
        }
    }
}

/// A provider event as Keel reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreEvent {
    /// `stripe`, `appstore`, `googleplay` or `lemonsqueezy`.
    pub provider: &'static str,
    /// The provider's event id (the inbox deduplicates on it).
    pub event_id: String,
    /// The provider's event type, e.g. `DID_RENEW` or `invoice.paid`.
    pub event_type: String,
    /// What happened.
    pub kind: EventKind,
    /// The Keel user the provider names (`usr_…` or the user id's UUID), if it names one.
    pub user: Option<String>,
    /// The product ids the event names, most specific first (a Stripe price, then its product).
    pub products: Vec<String>,
    /// The provider's subscription reference (original transaction id, purchase token,
    /// subscription id).
    pub provider_ref: String,
    /// The provider's own time of the event; orders deliveries.
    pub event_at: DateTime<Utc>,
    /// Period start, when the event says.
    pub period_start: Option<DateTime<Utc>>,
    /// Period end, when the event says.
    pub period_end: Option<DateTime<Utc>>,
    /// When the provider's grace period ends, when it says.
    pub grace_until: Option<DateTime<Utc>>,
}

/// Why an event cannot be read; the delivery is refused (400) and stored nowhere.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReadError(pub String);

/// A reference to a Keel user as providers carry it: `usr_…`, or the bare UUID (Apple's
/// `appAccountToken` must be a UUID).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserRef(pub crate::ids::UserId);

impl UserRef {
    /// Reads `usr_<32 hex>` or a UUID in any standard form.
    pub fn parse(text: &str) -> Option<UserRef> {
        let text = text.trim();
        if let Ok(id) = text.parse::<crate::ids::UserId>() {
            return Some(UserRef(id));
        }
        uuid::Uuid::try_parse(text)
            .ok()
            .map(|u| UserRef(crate::ids::UserId::from_uuid(u)))
    }
}

/// `v` at `path` (object keys), if present and not null.
pub(crate) fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    (!cur.is_null()).then_some(cur)
}

/// A string (or a number, as text) at `path`.
pub(crate) fn text(v: &Value, path: &[&str]) -> Option<String> {
    match at(v, path)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A required string at `path`.
pub(crate) fn required(v: &Value, path: &[&str]) -> Result<String, ReadError> {
    text(v, path).ok_or_else(|| ReadError(format!("missing `{}`", path.join("."))))
}

/// Milliseconds since the epoch (number or numeric string) at `path`.
pub(crate) fn millis(v: &Value, path: &[&str]) -> Option<DateTime<Utc>> {
    let ms = match at(v, path)? {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    Utc.timestamp_millis_opt(ms).single()
}

/// Seconds since the epoch at `path`.
pub(crate) fn seconds(v: &Value, path: &[&str]) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(at(v, path)?.as_i64()?, 0).single()
}

/// An RFC 3339 time at `path`.
pub(crate) fn rfc3339(v: &Value, path: &[&str]) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(at(v, path)?.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
