#![allow(clippy::unwrap_used)]
use serde_json::json;

use super::*;

#[test]
fn stripe_invoices_name_their_subscription_and_period_and_one_offs_are_ignored() {
    let paid = json!({"id": "evt_1", "type": "invoice.paid", "created": 1_700_000_000,
        "data": {"object": {"subscription": "sub_1",
            "subscription_details": {"metadata": {"keel_user_id": "usr_0192f0c0aa0b7c1d8e9f000000000001"}},
            "lines": {"data": [{"period": {"start": 1_700_000_000, "end": 1_702_592_000},
                "price": {"id": "price_pro", "product": "prod_x"}}]}}}});
    let e = stripe::read(&paid).unwrap();
    assert_eq!(
        (e.kind, e.provider_ref.as_str()),
        (EventKind::Renewed, "sub_1")
    );
    assert_eq!(e.products, ["price_pro", "prod_x"]);
    assert_eq!(e.period_end.unwrap().timestamp(), 1_702_592_000);
    assert!(e.user.is_some());
    let one_off = json!({"id": "evt_2", "type": "invoice.paid", "created": 1, "data": {"object": {"id": "in_1"}}});
    assert_eq!(stripe::read(&one_off).unwrap().kind, EventKind::Ignored);
    let unknown =
        json!({"id": "evt_3", "type": "customer.created", "created": 1, "data": {"object": {}}});
    assert_eq!(stripe::read(&unknown).unwrap().kind, EventKind::Ignored);
    assert!(stripe::read(&json!({"id": "evt_4", "type": "invoice.paid"})).is_err());
}

#[test]
fn lemon_squeezy_invoice_events_name_the_subscription_they_belong_to() {
    let failed = json!({"meta": {"event_name": "subscription_payment_failed", "custom_data": {}},
        "data": {"type": "subscription-invoices", "id": "77",
            "attributes": {"subscription_id": 5, "status": "failed", "updated_at": "2026-01-01T00:00:00Z"}}});
    let e = lemonsqueezy::read(&failed).unwrap();
    assert_eq!(
        (e.kind, e.provider_ref.as_str(), e.user),
        (EventKind::PaymentFailed { grace: true }, "5", None)
    );
    let order = json!({"meta": {"event_name": "order_created"},
        "data": {"type": "orders", "id": "1", "attributes": {"updated_at": "2026-01-01T00:00:00Z"}}});
    assert_eq!(lemonsqueezy::read(&order).unwrap().kind, EventKind::Ignored);
    assert!(lemonsqueezy::read(&json!({"meta": {"event_name": "x"}})).is_err());
}

#[test]
fn google_test_notifications_are_ignored_and_types_map_to_changes() {
    let test = json!({"messageId": "m1", "notification": {"version": "1.0", "packageName": "p",
        "eventTimeMillis": "1700000000000", "testNotification": {"version": "1.0"}}});
    assert_eq!(googleplay::read(&test).unwrap().kind, EventKind::Ignored);
    let hold = json!({"messageId": "m2", "notification": {"eventTimeMillis": "1700000000000",
        "subscriptionNotification": {"notificationType": 5, "purchaseToken": "t", "subscriptionId": "s"}}});
    let e = googleplay::read(&hold).unwrap();
    assert_eq!(
        (e.kind, e.event_type.as_str()),
        (
            EventKind::PaymentFailed { grace: false },
            "SUBSCRIPTION_ON_HOLD"
        )
    );
    assert!(googleplay::read(&json!({"messageId": "m3", "notification": {}})).is_err());
}

#[test]
fn app_store_notifications_need_their_uuid_date_and_transaction() {
    let n = |extra: serde_json::Value| json!({"notification": extra, "transaction": {"originalTransactionId": "1", "productId": "p"}});
    let ok = n(
        json!({"notificationType": "DID_RENEW", "notificationUUID": "u", "signedDate": 1_700_000_000_000_i64}),
    );
    assert_eq!(appstore::read(&ok).unwrap().kind, EventKind::Renewed);
    assert!(appstore::read(&n(
        json!({"notificationType": "DID_RENEW", "notificationUUID": "u"})
    ))
    .is_err());
    assert!(appstore::read(&n(
        json!({"notificationType": "DID_RENEW", "signedDate": 1})
    ))
    .is_err());
    let test = json!({"notification": {"notificationType": "TEST", "notificationUUID": "u", "signedDate": 1}});
    assert_eq!(appstore::read(&test).unwrap().kind, EventKind::Ignored);
}

#[test]
fn user_references_are_keel_ids_or_their_uuids() {
    let id = crate::ids::UserId::new();
    assert_eq!(UserRef::parse(&id.to_string()), Some(UserRef(id)));
    assert_eq!(
        UserRef::parse(&id.as_uuid().hyphenated().to_string()),
        Some(UserRef(id))
    );
    assert_eq!(UserRef::parse("alice@example.com"), None);
}
