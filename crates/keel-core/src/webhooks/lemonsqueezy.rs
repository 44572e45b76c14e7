//! Lemon Squeezy webhooks (`{"meta": {"event_name", "custom_data", …}, "data": {…}}`),
//! after the server verified `X-Signature`.

use serde_json::Value;

use super::event::{at, required, rfc3339, text, EventKind, ReadError, StoreEvent};

/// Reads a verified event.
pub fn read(payload: &Value) -> Result<StoreEvent, ReadError> {
    let name = required(payload, &["meta", "event_name"])?;
    let data = at(payload, &["data"]).ok_or_else(|| ReadError("missing data".into()))?;
    let attrs =
        at(data, &["attributes"]).ok_or_else(|| ReadError("missing data.attributes".into()))?;
    let data_type = required(data, &["type"])?;
    let id = required(data, &["id"])?;
    let event_at = rfc3339(attrs, &["updated_at"])
        .or_else(|| rfc3339(attrs, &["created_at"]))
        .ok_or_else(|| ReadError("missing data.attributes.updated_at".into()))?;
    // Lemon Squeezy sends no event id: the resource, the event and the resource's version name one.
    let event_id = text(payload, &["meta", "webhook_id"])
        .map(|w| format!("{w}:{name}:{id}:{}", event_at.timestamp_micros()))
        .unwrap_or_else(|| format!("{data_type}:{id}:{name}:{}", event_at.timestamp_micros()));
    let status = text(attrs, &["status"]).unwrap_or_default();
    let kind = match name.as_str() {
        "subscription_created" => EventKind::Purchased,
        "subscription_payment_success" => EventKind::Renewed,
        "subscription_payment_recovered" | "subscription_unpaused" => EventKind::Recovered,
        "subscription_plan_changed" => EventKind::PlanChanged,
        "subscription_cancelled" => EventKind::CancelAtPeriodEnd,
        "subscription_resumed" => EventKind::Uncanceled,
        "subscription_payment_failed" => EventKind::PaymentFailed { grace: true },
        "subscription_expired" | "subscription_paused" => EventKind::Expired,
        "subscription_payment_refunded" => EventKind::Revoked,
        "subscription_updated" => match status.as_str() {
            "active" | "on_trial" => EventKind::PlanChanged,
            "cancelled" => EventKind::CancelAtPeriodEnd,
            "past_due" => EventKind::PaymentFailed { grace: true },
            "unpaid" => EventKind::PaymentFailed { grace: false },
            "expired" | "paused" => EventKind::Expired,
            _ => EventKind::Ignored,
        },
        _ => EventKind::Ignored,
    };
    let subscription_id = if data_type == "subscriptions" {
        Some(id.clone())
    } else {
        text(attrs, &["subscription_id"])
    };
    let kind = if subscription_id.is_none() {
        EventKind::Ignored
    } else {
        kind
    };
    let products = [text(attrs, &["variant_id"]), text(attrs, &["product_id"])]
        .into_iter()
        .flatten()
        .collect();
    let period_end = rfc3339(attrs, &["renews_at"]).or_else(|| rfc3339(attrs, &["ends_at"]));
    Ok(StoreEvent {
        provider: "lemonsqueezy",
        event_id,
        event_type: name,
        kind,
        user: text(payload, &["meta", "custom_data", "keel_user_id"]),
        products,
        provider_ref: subscription_id.unwrap_or_default(),
        event_at,
        period_start: None,
        period_end: if kind == EventKind::CancelAtPeriodEnd {
            rfc3339(attrs, &["ends_at"]).or(period_end)
        } else {
            period_end
        },
        grace_until: None,
    })
}
