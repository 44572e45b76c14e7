//! Lemon Squeezy: `X-Signature` verified; custom data links the user.

use serde_json::{json, Value};

use crate::webhooks_support::{spawn_webhooks, IAMA};

fn event(name: &str, user: &str, status: &str, variant: i64, updated: &str) -> Value {
    json!({
        "meta": {"event_name": name, "custom_data": {"keel_user_id": user}, "test_mode": true},
        "data": {"type": "subscriptions", "id": "1",
            "attributes": {"store_id": 1, "customer_id": 1, "order_id": 1, "product_id": 10,
                "variant_id": variant, "product_name": "IAMA", "variant_name": "Pro",
                "user_email": "u@example.com", "status": status, "cancelled": status == "cancelled",
                "renews_at": "2099-01-01T00:00:00.000000Z", "ends_at": if status == "cancelled" { json!("2099-01-01T00:00:00.000000Z") } else { Value::Null },
                "created_at": "2026-01-01T00:00:00.000000Z", "updated_at": updated}}
    })
}

#[tokio::test]
async fn lemon_squeezy_events_grant_and_keep_the_plan_and_forgeries_are_refused() {
    let app = spawn_webhooks(IAMA).await;
    let (access, user) = app.user().await;
    let created = event(
        "subscription_created",
        &user,
        "active",
        102,
        "2026-01-01T00:00:00.000000Z",
    );
    let (status, ack) = app.lemon(&created).await;
    assert_eq!(status, 200, "{ack}");
    app.settled(ack["id"].as_str().unwrap()).await;
    assert_eq!(app.plan_of(&access).await.0, "pro");
    let cancelled = event(
        "subscription_cancelled",
        &user,
        "cancelled",
        102,
        "2026-01-02T00:00:00.000000Z",
    );
    let (_, ack) = app.lemon(&cancelled).await;
    app.settled(ack["id"].as_str().unwrap()).await;
    assert_eq!(app.plan_of(&access).await.0, "pro", "kept until ends_at");

    let before = app.inbox().await.len();
    let body = serde_json::to_vec(&created).unwrap();
    let forged =
        keel_core::webhooks::hmac_sig::lemonsqueezy_header(b"not-the-secret-0123456789", &body);
    for (headers, code) in [
        (vec![("x-signature", forged)], "invalid_signature"),
        (vec![], "missing_signature"),
    ] {
        let (status, err) = app
            .deliver("/v1/webhooks/lemonsqueezy", &headers, body.clone())
            .await;
        assert_eq!((status, err["error"]["code"].as_str()), (401, Some(code)));
    }
    assert_eq!(app.inbox().await.len(), before);
}
