//! The events the stores themselves put in the outbox, and their payloads: what a change
//! means to the product, decided once for both backends.

use chrono::{DateTime, Utc};
use keel_core::outbound::{threshold_crossings, EventType};
use serde_json::json;

use crate::billing_calc::owner_of;
use crate::{CounterOwner, Gate, OutboxMessage, ReservationRecord, Subscription};

/// `reservation.expired` for a reservation the sweeper (or a late commit or release)
/// expired.
pub(crate) fn reservation_expired(r: &ReservationRecord, now: DateTime<Utc>) -> OutboxMessage {
    OutboxMessage {
        event_type: EventType::ReservationExpired,
        payload: json!({
            "reservation_id": r.id.to_string(),
            "user_id": r.user_id.to_string(),
            "meter": r.meter,
            "amount": r.amount,
            "reason": r.reason,
            "expires_at": r.expires_at,
            "expired_at": now,
        }),
    }
}

/// `subscription.changed` when the plan, status, period or add-ons differ from before.
pub(crate) fn subscription_changed(
    before: Option<&Subscription>,
    after: &Subscription,
) -> Option<OutboxMessage> {
    let same = before.is_some_and(|b| {
        b.plan == after.plan
            && b.status == after.status
            && b.period_start == after.period_start
            && b.period_end == after.period_end
            && b.addons == after.addons
            && b.source == after.source
    });
    if same {
        return None;
    }
    Some(OutboxMessage {
        event_type: EventType::SubscriptionChanged,
        payload: json!({
            "user_id": after.user_id.to_string(),
            "plan": after.plan,
            "status": after.status,
            "period_start": after.period_start,
            "period_end": after.period_end,
            "source": after.source,
            "addons": after.addons,
            "previous": before.map(|b| json!({"plan": b.plan, "status": b.status})),
        }),
    })
}

/// A threshold a counter reached: the dedupe key and the message to send the first time.
pub(crate) struct Reached {
    /// `quota_counters.user_id` of the counter (a user id, or `tenant`).
    pub owner: String,
    /// Meter.
    pub meter: String,
    /// Window.
    pub window: String,
    /// 80 or 100.
    pub percent: i64,
    /// The event.
    pub message: OutboxMessage,
}

/// The gates whose counters can cross a threshold: fixed windows only (a sliding
/// window's buckets are not the window, so a bucket's total says nothing about the limit).
pub(crate) fn watched(gates: &[Gate]) -> impl Iterator<Item = &Gate> {
    gates
        .iter()
        .filter(|g| g.limit > 0 && !g.key.window.starts_with("slide:"))
}

/// The thresholds `committed` reaches on `gate`'s counter for user `user`.
pub(crate) fn reached(gate: &Gate, user: &str, committed: i64) -> Vec<Reached> {
    let owner = owner_of(&gate.key, user).to_string();
    threshold_crossings(committed, gate.limit)
        .into_iter()
        .map(|pct| Reached {
            owner: owner.clone(),
            meter: gate.key.meter.clone(),
            window: gate.key.window.clone(),
            percent: i64::from(pct),
            message: OutboxMessage {
                event_type: EventType::QuotaThresholdReached,
                payload: json!({
                    "scope": if gate.key.owner == CounterOwner::Tenant { "tenant" } else { "user" },
                    "user_id": (gate.key.owner == CounterOwner::User).then_some(user),
                    "meter": gate.key.meter,
                    "window": gate.key.window,
                    "threshold_percent": pct,
                    "limit": gate.limit,
                    "used": committed,
                    "resets_at": gate.resets_at,
                }),
            },
        })
        .collect()
}

/// `job.state_changed` for a job that entered its state (created or transitioned): the
/// job's metadata and the move, never its input nor the transition's data.
pub(crate) fn job_state_changed(
    job: &crate::jobs::JobRecord,
    change: &serde_json::Value,
    at: DateTime<Utc>,
) -> OutboxMessage {
    let field = |name: &str| change.get(name).cloned().unwrap_or(serde_json::Value::Null);
    OutboxMessage {
        event_type: EventType::JobStateChanged,
        payload: json!({
            "job_id": job.id.to_string(),
            "job_type": job.job_type,
            "user_id": job.user_id.to_string(),
            "from": field("from"),
            "to": job.state,
            "reason": job.reason,
            "by": field("by"),
            "version": job.version,
            "at": at,
        }),
    }
}

/// `safety.flagged` for a recorded safety event (block or flag): never the text nor its hash.
pub(crate) fn safety_flagged(event: &crate::SafetyEvent) -> OutboxMessage {
    OutboxMessage {
        event_type: EventType::SafetyFlagged,
        payload: json!({
            "event_id": event.id.to_string(),
            "rule": event.rule,
            "action": event.action,
            "feature": event.feature,
            "user_id": event.user_id.to_string(),
            "request_id": event.request_id,
            "at": event.created_at,
        }),
    }
}
