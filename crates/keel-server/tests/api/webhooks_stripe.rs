//! Stripe: `Stripe-Signature` verified (rotation, tolerance), events applied once however
//! often they are delivered, IAMA's semantics (payment succeeded grants, payment failed
//! locks premium, cancellation downgrades at period end, renewal refreshes).

use chrono::{Duration, Utc};
use serde_json::{json, Value};

use crate::webhooks_support::{spawn_webhooks, until, IAMA, STRIPE_SECRET};

#[allow(clippy::too_many_arguments)]
fn subscription_event(
    id: &str,
    kind: &str,
    created: i64,
    sub: &str,
    status: &str,
    price: &str,
    cancel_at_end: bool,
    user: Option<&str>,
) -> Value {
    let start = Utc::now() - Duration::days(1);
    let end = Utc::now() + Duration::days(29);
    json!({
        "id": id, "object": "event", "api_version": "2024-06-20", "created": created, "livemode": false,
        "pending_webhooks": 1, "request": {"id": null, "idempotency_key": null}, "type": kind,
        "data": {"object": {
            "id": sub, "object": "subscription", "customer": "cus_Q1", "status": status,
            "cancel_at_period_end": cancel_at_end,
            "current_period_start": start.timestamp(), "current_period_end": end.timestamp(),
            "metadata": user.map_or(json!({}), |u| json!({"keel_user_id": u})),
            "items": {"object": "list", "data": [{"id": "si_1", "object": "subscription_item",
                "price": {"id": price, "object": "price", "product": "prod_iama", "recurring": {"interval": "month"}},
                "quantity": 1}]}
        }}
    })
}

fn invoice_event(id: &str, kind: &str, created: i64, sub: &str, price: &str) -> Value {
    let start = Utc::now();
    let end = Utc::now() + Duration::days(30);
    json!({
        "id": id, "object": "event", "created": created, "type": kind,
        "data": {"object": {"id": format!("in_{id}"), "object": "invoice", "customer": "cus_Q1",
            "subscription": sub, "billing_reason": "subscription_cycle", "status": "paid",
            "lines": {"object": "list", "data": [{"id": "il_1", "object": "line_item",
                "period": {"start": start.timestamp(), "end": end.timestamp()},
                "price": {"id": price, "object": "price", "product": "prod_iama"}}]}}}
    })
}

#[tokio::test]
async fn iama_payments_grant_lock_refresh_and_cancel_at_period_end() {
    let app = spawn_webhooks(IAMA).await;
    let (access, user) = app.user().await;
    let t = Utc::now().timestamp() - 100;
    // Checkout links the subscription to the user; later events name no user.
    let checkout = json!({"id": "evt_checkout", "object": "event", "created": t, "type": "checkout.session.completed",
        "data": {"object": {"id": "cs_test_1", "object": "checkout.session", "mode": "subscription",
            "client_reference_id": user, "customer": "cus_Q1", "subscription": "sub_1", "payment_status": "paid"}}});
    let (status, ack) = app.stripe(&checkout).await;
    assert_eq!(status, 200, "{ack}");
    app.settled(ack["id"].as_str().unwrap()).await;
    let created = subscription_event(
        "evt_created",
        "customer.subscription.created",
        t + 1,
        "sub_1",
        "active",
        "price_iama_pro_monthly",
        false,
        None,
    );
    let (_, ack) = app.stripe(&created).await;
    app.settled(ack["id"].as_str().unwrap()).await;
    assert_eq!(
        app.plan_of(&access).await.0,
        "pro",
        "payment succeeded grants"
    );

    let failed = invoice_event(
        "evt_failed",
        "invoice.payment_failed",
        t + 2,
        "sub_1",
        "price_iama_pro_monthly",
    );
    let (_, ack) = app.stripe(&failed).await;
    app.settled(ack["id"].as_str().unwrap()).await;
    assert_eq!(
        app.plan_of(&access).await.0,
        "free",
        "payment failed locks premium"
    );

    let paid = invoice_event(
        "evt_paid",
        "invoice.paid",
        t + 3,
        "sub_1",
        "price_iama_pro_monthly",
    );
    let (_, ack) = app.stripe(&paid).await;
    app.settled(ack["id"].as_str().unwrap()).await;
    assert_eq!(app.plan_of(&access).await.0, "pro", "renewal refreshes");

    let cancel = subscription_event(
        "evt_cancel",
        "customer.subscription.updated",
        t + 4,
        "sub_1",
        "active",
        "price_iama_pro_monthly",
        true,
        None,
    );
    let (_, ack) = app.stripe(&cancel).await;
    app.settled(ack["id"].as_str().unwrap()).await;
    assert_eq!(
        app.plan_of(&access).await.0,
        "pro",
        "cancelled keeps the plan until the period ends"
    );

    let deleted = subscription_event(
        "evt_deleted",
        "customer.subscription.deleted",
        t + 5,
        "sub_1",
        "canceled",
        "price_iama_pro_monthly",
        true,
        None,
    );
    let (_, ack) = app.stripe(&deleted).await;
    app.settled(ack["id"].as_str().unwrap()).await;
    assert_eq!(app.plan_of(&access).await.0, "free", "the period ended");
}

#[tokio::test]
async fn the_same_event_delivered_100_times_is_kept_and_applied_once() {
    let app = spawn_webhooks(IAMA).await;
    let (access, user) = app.user().await;
    let event = subscription_event(
        "evt_dup",
        "customer.subscription.created",
        Utc::now().timestamp(),
        "sub_dup",
        "active",
        "price_iama_max_monthly",
        false,
        Some(&user),
    );
    let acks = futures::future::join_all((0..100).map(|_| app.stripe(&event))).await;
    assert!(acks.iter().all(|(s, _)| *s == 200));
    let ids: std::collections::BTreeSet<&str> = acks
        .iter()
        .map(|(_, a)| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "one inbox row");
    assert_eq!(
        acks.iter().filter(|(_, a)| a["duplicate"] == false).count(),
        1
    );
    app.settled(ids.first().unwrap()).await;
    assert_eq!(app.inbox().await.len(), 1);
    assert_eq!(app.plan_of(&access).await.0, "max");
    let u = app
        .state
        .store()
        .locate_user(user.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let audit = app
        .state
        .store()
        .list_audit(
            &keel_store::TenantScope::new(u.tenant_id),
            &keel_store::AuditQuery {
                limit: 500,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.action == "subscription.changed")
            .count(),
        1,
        "applied once"
    );
}

#[tokio::test]
async fn forged_stale_missing_and_malformed_deliveries_are_refused_and_stored_nowhere() {
    let app = spawn_webhooks(IAMA).await;
    let (_, user) = app.user().await;
    let event = subscription_event(
        "evt_x",
        "customer.subscription.created",
        Utc::now().timestamp(),
        "sub_x",
        "active",
        "price_iama_pro_monthly",
        false,
        Some(&user),
    );
    let body = serde_json::to_vec(&event).unwrap();
    let now = Utc::now().timestamp();
    let sign = |secret: &str, t: i64, b: &[u8]| {
        keel_core::webhooks::hmac_sig::stripe_header(secret.as_bytes(), t, b)
    };
    let cases = [
        (
            Some(sign("whsec_forged_0123456789", now, &body)),
            body.clone(),
            401,
            "invalid_signature",
        ),
        (
            Some(sign(STRIPE_SECRET, now - 301, &body)),
            body.clone(),
            401,
            "stale_timestamp",
        ),
        (
            Some(sign(STRIPE_SECRET, now + 301, &body)),
            body.clone(),
            401,
            "stale_timestamp",
        ),
        (
            Some(sign(STRIPE_SECRET, now, b"{}")),
            body.clone(),
            401,
            "invalid_signature",
        ),
        (
            Some("t=abc,v1=zz".to_string()),
            body.clone(),
            401,
            "missing_signature",
        ),
        (None, body.clone(), 401, "missing_signature"),
        (
            Some(sign(STRIPE_SECRET, now, b"{not json")),
            b"{not json".to_vec(),
            400,
            "malformed_payload",
        ),
        (
            Some(sign(STRIPE_SECRET, now, br#"{"id":"evt_1"}"#)),
            br#"{"id":"evt_1"}"#.to_vec(),
            400,
            "malformed_payload",
        ),
    ];
    for (sig, body, status, code) in cases {
        let headers: Vec<(&str, String)> =
            sig.into_iter().map(|s| ("stripe-signature", s)).collect();
        let (got, err) = app.deliver("/v1/webhooks/stripe", &headers, body).await;
        assert_eq!(
            (got, err["error"]["code"].as_str()),
            (status, Some(code)),
            "{err}"
        );
    }
    let huge = vec![b' '; 300 * 1024];
    let sig = sign(STRIPE_SECRET, now, &huge);
    let (status, _) = app
        .deliver("/v1/webhooks/stripe", &[("stripe-signature", sig)], huge)
        .await;
    assert_eq!(status, 413, "bodies above 256 KiB are refused");
    assert!(app.inbox().await.is_empty(), "nothing refused was stored");
    // During rotation a header carries two v1; one valid is enough.
    let good = sign(STRIPE_SECRET, now, &body);
    let rotated = format!("{},v1={}", good, "ab".repeat(32));
    let (status, _) = app
        .deliver(
            "/v1/webhooks/stripe",
            &[("stripe-signature", rotated)],
            body,
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_event_whose_user_never_links_is_retried_then_dead_lettered_and_replay_applies_it() {
    let app = spawn_webhooks(IAMA).await;
    let (access, user) = app.user().await;
    let event = subscription_event(
        "evt_orphan",
        "customer.subscription.created",
        Utc::now().timestamp(),
        "sub_orphan",
        "active",
        "price_iama_plus_monthly",
        false,
        None,
    );
    let (_, ack) = app.stripe(&event).await;
    let id = ack["id"].as_str().unwrap().to_string();
    let dead = app.settled(&id).await;
    assert_eq!(dead.status, keel_store::InboxStatus::Dead);
    assert_eq!(dead.attempts, 3, "max attempts");
    assert!(dead.last_error.as_deref().unwrap().starts_with("no user"));
    // The operator links it and replays.
    app.state
        .store()
        .link_provider_ref(
            &scope(&app, &user).await,
            user.parse().unwrap(),
            "stripe",
            "sub_orphan",
        )
        .await
        .unwrap();
    app.state
        .store()
        .replay_inbox_event(id.parse().unwrap(), Utc::now())
        .await
        .unwrap();
    keel_server::webhooks::worker::wake();
    let applied = app.settled(&id).await;
    assert_eq!(applied.status, keel_store::InboxStatus::Applied);
    until("plus", || async {
        (app.plan_of(&access).await.0 == "plus").then_some(())
    })
    .await;
}

async fn scope(app: &crate::helpers::TestApp, user: &str) -> keel_store::TenantScope {
    let u = app
        .state
        .store()
        .locate_user(user.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    keel_store::TenantScope::new(u.tenant_id)
}
