//! Stripe events (`{"id", "type", "created", "data": {"object": …}}`), after the server
//! verified `Stripe-Signature`.

use serde_json::Value;

use super::event::{at, required, seconds, text, EventKind, ReadError, StoreEvent};

/// Reads a verified event.
pub fn read(payload: &Value) -> Result<StoreEvent, ReadError> {
    let event_type = required(payload, &["type"])?;
    let obj = at(payload, &["data", "object"])
        .filter(|o| o.is_object())
        .ok_or_else(|| ReadError("missing data.object".into()))?;
    let event_at =
        seconds(payload, &["created"]).ok_or_else(|| ReadError("missing created".into()))?;
    let mut event = StoreEvent {
        provider: "stripe",
        event_id: required(payload, &["id"])?,
        event_type: event_type.clone(),
        kind: EventKind::Ignored,
        user: None,
        products: vec![],
        provider_ref: String::new(),
        event_at,
        period_start: None,
        period_end: None,
        grace_until: None,
    };
    match event_type.as_str() {
        "checkout.session.completed" => {
            event.user = text(obj, &["client_reference_id"])
                .or_else(|| text(obj, &["metadata", "keel_user_id"]));
            event.provider_ref = text(obj, &["subscription"]).unwrap_or_default();
            if !event.provider_ref.is_empty() && event.user.is_some() {
                event.kind = EventKind::Linked;
            }
        }
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted"
        | "customer.subscription.resumed"
        | "customer.subscription.paused" => {
            let status = text(obj, &["status"]).unwrap_or_default();
            let cancelling =
                at(obj, &["cancel_at_period_end"]).and_then(Value::as_bool) == Some(true);
            event.kind = match (event_type.as_str(), status.as_str()) {
                ("customer.subscription.deleted", _)
                | (_, "canceled" | "incomplete_expired" | "paused") => EventKind::Expired,
                (_, "past_due") => EventKind::PaymentFailed { grace: true },
                (_, "unpaid") => EventKind::PaymentFailed { grace: false },
                (_, "active" | "trialing") if cancelling => EventKind::CancelAtPeriodEnd,
                ("customer.subscription.created", "active" | "trialing") => EventKind::Purchased,
                (_, "active" | "trialing") => EventKind::PlanChanged,
                _ => EventKind::Ignored,
            };
            event.provider_ref = required(obj, &["id"])?;
            event.user = text(obj, &["metadata", "keel_user_id"]);
            let item = at(obj, &["items", "data"])
                .and_then(|d| d.get(0))
                .unwrap_or(&Value::Null);
            event.products = prices(item);
            event.period_start = seconds(obj, &["current_period_start"])
                .or_else(|| seconds(item, &["current_period_start"]));
            event.period_end = seconds(obj, &["current_period_end"])
                .or_else(|| seconds(item, &["current_period_end"]));
        }
        "invoice.paid" | "invoice.payment_succeeded" | "invoice.payment_failed" => {
            event.kind = if event_type == "invoice.payment_failed" {
                EventKind::PaymentFailed { grace: true }
            } else {
                EventKind::Renewed
            };
            event.provider_ref = text(obj, &["subscription"])
                .or_else(|| text(obj, &["parent", "subscription_details", "subscription"]))
                .unwrap_or_default();
            if event.provider_ref.is_empty() {
                // A one-off invoice: no subscription to change.
                event.kind = EventKind::Ignored;
            }
            event.user = text(obj, &["subscription_details", "metadata", "keel_user_id"])
                .or_else(|| {
                    text(
                        obj,
                        &["parent", "subscription_details", "metadata", "keel_user_id"],
                    )
                })
                .or_else(|| text(obj, &["metadata", "keel_user_id"]));
            let line = at(obj, &["lines", "data"])
                .and_then(|d| d.get(0))
                .unwrap_or(&Value::Null);
            event.products = prices(line);
            if event.kind == EventKind::Renewed {
                event.period_start = seconds(line, &["period", "start"]);
                event.period_end = seconds(line, &["period", "end"]);
            }
        }
        _ => {}
    }
    Ok(event)
}

/// A price id, then its product id (an item's or an invoice line's).
fn prices(item: &Value) -> Vec<String> {
    let price = at(item, &["price"]).or_else(|| at(item, &["pricing", "price_details"]));
    let Some(price) = price else { return vec![] };
    let id = text(price, &["id"]).or_else(|| text(price, &["price"]));
    let product = text(price, &["product"]);
    id.into_iter().chain(product).collect()
}
