//! Google Play Real-time developer notifications, after the server verified the Pub/Sub
//! push token: the decoded `DeveloperNotification`, with the Pub/Sub `messageId`.
//!
//! An RTDN carries only the purchase token and the subscription id, no user and no
//! expiry. Keel treats it as authoritative for the transition it names; a production
//! deployment should confirm each token with the Play Developer API
//! (`purchases.subscriptionsv2.get`) — the server's lookup seam fills in
//! `obfuscatedExternalAccountId` and `expiryTime` here when it does.

use serde_json::Value;

use super::event::{at, millis, required, rfc3339, text, EventKind, ReadError, StoreEvent};

/// Reads `{"messageId": …, "notification": <DeveloperNotification>, "lookup": {…}?}`.
pub fn read(payload: &Value) -> Result<StoreEvent, ReadError> {
    let n =
        at(payload, &["notification"]).ok_or_else(|| ReadError("missing notification".into()))?;
    let event_at = millis(n, &["eventTimeMillis"])
        .ok_or_else(|| ReadError("missing eventTimeMillis".into()))?;
    let event_id = required(payload, &["messageId"])?;
    let empty = Value::Null;
    let lookup = at(payload, &["lookup"]).unwrap_or(&empty);
    let Some(sub) = at(n, &["subscriptionNotification"]) else {
        // Test, one-time product and voided purchase notifications change no subscription.
        return Ok(StoreEvent {
            provider: "googleplay",
            event_id,
            event_type: "other".into(),
            kind: EventKind::Ignored,
            user: None,
            products: vec![],
            provider_ref: String::new(),
            event_at,
            period_start: None,
            period_end: None,
            grace_until: None,
        });
    };
    let code = at(sub, &["notificationType"])
        .and_then(Value::as_i64)
        .ok_or_else(|| ReadError("missing subscriptionNotification.notificationType".into()))?;
    Ok(StoreEvent {
        provider: "googleplay",
        event_id,
        event_type: format!("SUBSCRIPTION_{}", name(code)),
        kind: kind(code),
        user: text(lookup, &["obfuscatedExternalAccountId"]),
        products: text(sub, &["subscriptionId"]).into_iter().collect(),
        provider_ref: required(sub, &["purchaseToken"])?,
        event_at,
        period_start: None,
        period_end: rfc3339(lookup, &["expiryTime"]),
        grace_until: None,
    })
}

fn kind(code: i64) -> EventKind {
    match code {
        1 => EventKind::Recovered,
        2 => EventKind::Renewed,
        3 => EventKind::CancelAtPeriodEnd,
        4 => EventKind::Purchased,
        5 => EventKind::PaymentFailed { grace: false },
        6 => EventKind::PaymentFailed { grace: true },
        7 => EventKind::Uncanceled,
        10 | 13 => EventKind::Expired,
        12 => EventKind::Revoked,
        _ => EventKind::Ignored,
    }
}

fn name(code: i64) -> &'static str {
    match code {
        1 => "RECOVERED",
        2 => "RENEWED",
        3 => "CANCELED",
        4 => "PURCHASED",
        5 => "ON_HOLD",
        6 => "IN_GRACE_PERIOD",
        7 => "RESTARTED",
        8 => "PRICE_CHANGE_CONFIRMED",
        9 => "DEFERRED",
        10 => "PAUSED",
        11 => "PAUSE_SCHEDULE_CHANGED",
        12 => "REVOKED",
        13 => "EXPIRED",
        20 => "PENDING_PURCHASE_CANCELED",
        _ => "UNKNOWN",
    }
}
