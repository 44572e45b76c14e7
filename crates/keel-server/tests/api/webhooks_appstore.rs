//! App Store Server Notifications V2: the x5c chain is verified to the configured root,
//! nested signed info too; a Kalei subscription walks purchase → renewal → payment failure
//! with grace → expiry, entitlements following each step.

use chrono::{Duration, Utc};
use serde_json::json;

use crate::webhooks_support::{
    account_token, apple_jws, apple_signed, b64url, spawn_webhooks, AppleEvent, KALEI,
};

#[tokio::test]
async fn a_kalei_subscription_walks_purchase_renewal_grace_and_expiry() {
    let app = spawn_webhooks(KALEI).await;
    let (access, user) = app.user().await;
    let account = account_token(&user);
    assert_eq!(app.plan_of(&access).await.0, "free");
    let t0 = Utc::now() - Duration::days(40);
    let step = |kind, subtype, signed, expires, grace_until| AppleEvent {
        kind,
        subtype,
        account: &account,
        product: "com.kalei.prism.monthly",
        signed,
        expires,
        grace_until,
    };
    // Purchase: prism for 30 days from t0 (the period covers now).
    let buy = step(
        "SUBSCRIBED",
        Some("INITIAL_BUY"),
        t0,
        Utc::now() + Duration::days(1),
        None,
    );
    let id = app
        .accepted(
            "/v1/webhooks/appstore",
            &[],
            serde_json::to_vec(&json!({"signedPayload": buy.signed_payload()})).unwrap(),
        )
        .await;
    assert_eq!(
        app.settled(&id).await.outcome.as_deref(),
        Some("subscription.changed")
    );
    let (plan, ent) = app.plan_of(&access).await;
    assert_eq!(
        (plan.as_str(), ent["plan_source"].as_str()),
        ("prism", Some("subscription"))
    );

    // Renewal: a new period.
    let renew = step(
        "DID_RENEW",
        None,
        t0 + Duration::days(1),
        Utc::now() + Duration::days(29),
        None,
    );
    let id = app
        .accepted(
            "/v1/webhooks/appstore",
            &[],
            serde_json::to_vec(&json!({"signedPayload": renew.signed_payload()})).unwrap(),
        )
        .await;
    app.settled(&id).await;
    let sub = app
        .state
        .store()
        .get_subscription(&scope_of(&app, &user).await, user.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (sub.status.as_str(), sub.source.as_str()),
        ("active", "appstore")
    );

    // Payment failure inside Apple's grace period: the plan is kept until the grace ends.
    let grace_end = Utc::now() + Duration::days(6);
    let fail = step(
        "DID_FAIL_TO_RENEW",
        Some("GRACE_PERIOD"),
        t0 + Duration::days(2),
        Utc::now() - Duration::hours(1),
        Some(grace_end),
    );
    let (status, _) = app.appstore(fail.signed_payload()).await;
    assert_eq!(status, 200);
    let sub = until_status(&app, &user, "grace").await;
    assert_eq!(sub.period_end.timestamp(), grace_end.timestamp());
    assert_eq!(
        app.plan_of(&access).await.0,
        "prism",
        "grace keeps the plan"
    );

    // Grace over: expired, back to the free plan.
    let expire = step(
        "EXPIRED",
        Some("BILLING_RETRY"),
        t0 + Duration::days(3),
        Utc::now() - Duration::hours(1),
        None,
    );
    let (status, _) = app.appstore(expire.signed_payload()).await;
    assert_eq!(status, 200);
    until_status(&app, &user, "expired").await;
    assert_eq!(app.plan_of(&access).await.0, "free");

    // Every change was audited.
    let audit = app
        .state
        .store()
        .list_audit(
            &scope_of(&app, &user).await,
            &keel_store::AuditQuery {
                limit: 100,
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
        4
    );
}

async fn scope_of(app: &crate::helpers::TestApp, user: &str) -> keel_store::TenantScope {
    let u = app
        .state
        .store()
        .locate_user(user.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    keel_store::TenantScope::new(u.tenant_id)
}

async fn until_status(
    app: &crate::helpers::TestApp,
    user: &str,
    status: &str,
) -> keel_store::Subscription {
    let scope = scope_of(app, user).await;
    crate::webhooks_support::until(status, || async {
        let s = app
            .state
            .store()
            .get_subscription(&scope, user.parse().unwrap())
            .await
            .unwrap()?;
        (s.status == status).then_some(s)
    })
    .await
}

#[tokio::test]
async fn notifications_delivered_in_reverse_order_end_in_the_newest_state() {
    let app = spawn_webhooks(KALEI).await;
    let (access, user) = app.user().await;
    let account = account_token(&user);
    let t0 = Utc::now() - Duration::hours(5);
    let end = Utc::now() + Duration::days(20);
    let events = [
        ("SUBSCRIBED", Some("INITIAL_BUY"), "com.kalei.prism.monthly"),
        (
            "DID_CHANGE_RENEWAL_PREF",
            Some("UPGRADE"),
            "com.kalei.prismplus.monthly",
        ),
        (
            "DID_CHANGE_RENEWAL_STATUS",
            Some("AUTO_RENEW_DISABLED"),
            "com.kalei.prismplus.monthly",
        ),
    ];
    let payloads: Vec<String> = events
        .iter()
        .enumerate()
        .map(|(i, (kind, subtype, product))| {
            AppleEvent {
                kind,
                subtype: *subtype,
                account: &account,
                product,
                signed: t0 + Duration::hours(i as i64),
                expires: end,
                grace_until: None,
            }
            .signed_payload()
        })
        .collect();
    let mut ids = Vec::new();
    for p in payloads.into_iter().rev() {
        let (status, ack) = app.appstore(p).await;
        assert_eq!(status, 200);
        ids.push(ack["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        app.settled(id).await;
    }
    // The newest (cancel at period end, on prism_plus) wins; it keeps the plan to period end.
    let sub = until_status(&app, &user, "active").await;
    assert_eq!(sub.plan, "prism_plus");
    assert_eq!(app.plan_of(&access).await.0, "prism_plus");
    let stale = app
        .inbox()
        .await
        .into_iter()
        .filter(|e| e.outcome.as_deref().is_some_and(|o| o.starts_with("stale")))
        .count();
    assert_eq!(stale, 2, "the two older notifications changed nothing");
}

#[tokio::test]
async fn a_chain_that_does_not_reach_the_trusted_root_is_refused_and_stored_nowhere() {
    let app = spawn_webhooks(KALEI).await;
    let (_, user) = app.user().await;
    let account = account_token(&user);
    let ev = AppleEvent {
        kind: "SUBSCRIBED",
        subtype: None,
        account: &account,
        product: "com.kalei.prism.monthly",
        signed: Utc::now(),
        expires: Utc::now() + Duration::days(30),
        grace_until: None,
    };
    let claims = ev.claims();
    // A chain to another root.
    let rogue = apple_jws(&claims, "rogue_leaf", &["rogue_leaf", "other_root"]);
    let (status, body) = app.appstore(rogue).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("untrusted_certificate"))
    );
    // The right leaf without its intermediate.
    let (status, body) = app.appstore(apple_jws(&claims, "leaf", &["leaf"])).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("untrusted_certificate"))
    );
    // Signed by a key other than the leaf's it presents.
    let (status, body) = app
        .appstore(apple_jws(&claims, "rogue_leaf", &["leaf", "intermediate"]))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_signature"))
    );
    // A tampered payload.
    let good = apple_signed(&claims);
    let parts: Vec<&str> = good.split('.').collect();
    let mut forged = claims.clone();
    forged["data"]["bundleId"] = json!("com.evil.app");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64url(forged.to_string().as_bytes()),
        parts[2]
    );
    let (status, body) = app.appstore(tampered).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_signature"))
    );
    // A good outer JWS whose nested transaction is signed by an untrusted chain.
    let mut nested = claims.clone();
    let tx = json!({"originalTransactionId": "1", "productId": "com.kalei.prism.monthly", "appAccountToken": account});
    nested["data"]["signedTransactionInfo"] =
        json!(apple_jws(&tx, "rogue_leaf", &["rogue_leaf", "other_root"]));
    let (status, body) = app.appstore(apple_signed(&nested)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("untrusted_certificate"))
    );
    // Malformed bodies.
    for body in [
        b"not json".to_vec(),
        b"{}".to_vec(),
        br#"{"signedPayload":"a.b"}"#.to_vec(),
    ] {
        let (status, err) = app.deliver("/v1/webhooks/appstore", &[], body).await;
        assert_eq!(
            (status, err["error"]["code"].as_str()),
            (400, Some("malformed_payload"))
        );
    }
    assert!(app.inbox().await.is_empty(), "nothing refused was stored");
}

#[tokio::test]
async fn an_unknown_user_or_product_is_dead_lettered_with_a_reason() {
    let app = spawn_webhooks(KALEI).await;
    let stranger = uuid::Uuid::now_v7().hyphenated().to_string();
    let ev = AppleEvent {
        kind: "SUBSCRIBED",
        subtype: None,
        account: &stranger,
        product: "com.kalei.prism.monthly",
        signed: Utc::now(),
        expires: Utc::now() + Duration::days(30),
        grace_until: None,
    };
    let (_, ack) = app.appstore(ev.signed_payload()).await;
    let dead = app.settled(ack["id"].as_str().unwrap()).await;
    assert_eq!(dead.status, keel_store::InboxStatus::Dead);
    assert!(
        dead.last_error
            .as_deref()
            .unwrap()
            .starts_with("unknown user"),
        "{:?}",
        dead.last_error
    );

    let (access, user) = app.user().await;
    let account = account_token(&user);
    let ev = AppleEvent {
        kind: "SUBSCRIBED",
        subtype: None,
        account: &account,
        product: "com.kalei.unknown",
        signed: Utc::now(),
        expires: Utc::now() + Duration::days(30),
        grace_until: None,
    };
    let (_, ack) = app.appstore(ev.signed_payload()).await;
    let dead = app.settled(ack["id"].as_str().unwrap()).await;
    assert_eq!(dead.status, keel_store::InboxStatus::Dead);
    assert!(
        dead.last_error
            .as_deref()
            .unwrap()
            .contains("com.kalei.unknown"),
        "{:?}",
        dead.last_error
    );
    assert_eq!(app.plan_of(&access).await.0, "free", "nothing half-applied");
    let scope = scope_of(&app, &user).await;
    assert!(app
        .state
        .store()
        .get_subscription(&scope, user.parse().unwrap())
        .await
        .unwrap()
        .is_none());
}
