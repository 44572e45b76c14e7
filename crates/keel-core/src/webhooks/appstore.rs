//! App Store Server Notifications V2, after the server verified every JWS: the decoded
//! `{"notification": …, "transaction": …, "renewal": …}`.

use serde_json::Value;

use super::event::{at, millis, required, text, EventKind, ReadError, StoreEvent};

/// Reads a verified notification.
pub fn read(payload: &Value) -> Result<StoreEvent, ReadError> {
    let n =
        at(payload, &["notification"]).ok_or_else(|| ReadError("missing notification".into()))?;
    let empty = Value::Null;
    let tx = at(payload, &["transaction"]).unwrap_or(&empty);
    let renewal = at(payload, &["renewal"]).unwrap_or(&empty);
    let kind_text = required(n, &["notificationType"])?;
    let subtype = text(n, &["subtype"]).unwrap_or_default();
    let kind = kind(&kind_text, &subtype);
    let event_at =
        millis(n, &["signedDate"]).ok_or_else(|| ReadError("missing signedDate".into()))?;
    let provider_ref = text(tx, &["originalTransactionId"])
        .or_else(|| text(renewal, &["originalTransactionId"]))
        .unwrap_or_default();
    if provider_ref.is_empty() && kind != EventKind::Ignored {
        return Err(ReadError("missing originalTransactionId".into()));
    }
    let products = [text(tx, &["productId"]), text(renewal, &["productId"])]
        .into_iter()
        .flatten()
        .collect();
    Ok(StoreEvent {
        provider: "appstore",
        event_id: required(n, &["notificationUUID"])?,
        event_type: if subtype.is_empty() {
            kind_text
        } else {
            format!("{kind_text}:{subtype}")
        },
        kind,
        user: text(tx, &["appAccountToken"]).or_else(|| text(renewal, &["appAccountToken"])),
        products,
        provider_ref,
        event_at,
        period_start: millis(tx, &["purchaseDate"]),
        period_end: millis(tx, &["expiresDate"]),
        grace_until: millis(renewal, &["gracePeriodExpiresDate"]),
    })
}

fn kind(notification: &str, subtype: &str) -> EventKind {
    match (notification, subtype) {
        ("SUBSCRIBED", _) | ("OFFER_REDEEMED", _) => EventKind::Purchased,
        ("DID_RENEW", _) => EventKind::Renewed,
        ("DID_CHANGE_RENEWAL_PREF", "UPGRADE") => EventKind::PlanChanged,
        ("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_DISABLED") => EventKind::CancelAtPeriodEnd,
        ("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_ENABLED") => EventKind::Uncanceled,
        ("DID_FAIL_TO_RENEW", "GRACE_PERIOD") => EventKind::PaymentFailed { grace: true },
        ("DID_FAIL_TO_RENEW", _) => EventKind::PaymentFailed { grace: false },
        ("GRACE_PERIOD_EXPIRED", _) | ("EXPIRED", _) => EventKind::Expired,
        ("REFUND", _) | ("REVOKE", _) => EventKind::Revoked,
        _ => EventKind::Ignored,
    }
}
