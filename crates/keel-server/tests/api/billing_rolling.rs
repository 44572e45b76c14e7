//! `rolling:<d>` limits over HTTP: usage anywhere in the last hour counts, entitlements
//! sum every counted bucket, and the limit refuses with `period_limit_reached`.
use chrono::{DateTime, Duration, Utc};
use keel_core::billing::Sliding;
use keel_core::ids::{TenantId, UserId};
use keel_store::{CounterKey, NewLedgerEntry, TenantScope};
use serde_json::{json, Value};

use crate::helpers::{error_of, spawn_full, TestApp};

const HOURLY: &str = r#"
[product]
name = "hourly"
default_plan = "free"
[meters.requests]
unit = "request"
[plans.free.limits.requests]
limit = 10
window = "rolling:1h"
"#;

/// Records `amount` requests half an hour ago, straight into that moment's bucket (the
/// HTTP API always records now); returns when they leave the window.
async fn usage_half_an_hour_ago(
    app: &TestApp,
    tenant: &str,
    user: &str,
    amount: i64,
) -> DateTime<Utc> {
    let then = Sliding::at(3_600, Utc::now() - Duration::minutes(30));
    let entry = NewLedgerEntry {
        user_id: user.parse::<UserId>().unwrap(),
        meter: "requests".into(),
        amount,
        overage: 0,
        cost_micros: 0,
        idempotency_key: format!("earlier-{user}"),
        source: json!({"feature": "chat"}),
        reservation_id: None,
        counters: vec![CounterKey::user("requests", then.id())],
        balance_micros: 0,
    };
    let scope = TenantScope::new(tenant.parse::<TenantId>().unwrap());
    let user_id = entry.user_id;
    let done = app
        .state
        .store()
        .record_usage(&scope, vec![entry])
        .await
        .unwrap();
    assert_eq!((done.len(), done[0].0.user_id), (1, user_id));
    then.leaves_at(then.bucket)
}

#[tokio::test]
async fn a_rolling_limit_counts_the_last_hour_and_refuses_with_period_limit_reached() {
    let app = spawn_full(HOURLY, |_| {}).await;
    let (access, user) = app.user().await;
    let me: Value = app.get_auth("/v1/me", &access).await.json().await.unwrap();
    let tenant = me["tenant_id"].as_str().unwrap();
    let leaves = usage_half_an_hour_ago(&app, tenant, &user, 4).await;
    assert_eq!(
        app.reserve(&user, "requests", 5, "now-5").await.status(),
        201
    );

    let e: Value = app
        .get_auth("/v1/entitlements", &access)
        .await
        .json()
        .await
        .unwrap();
    let m = &e["meters"][0];
    assert_eq!(m["meter"], "requests");
    assert_eq!(m["window"], "period");
    assert_eq!(
        (
            m["limit"].as_i64(),
            m["used"].as_i64(),
            m["reserved"].as_i64()
        ),
        (Some(10), Some(9), Some(5))
    );
    assert_eq!(m["remaining"], 1);
    let resets: DateTime<Utc> = m["resets_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        resets, leaves,
        "room frees when the half-hour-old usage leaves"
    );

    let res = app.reserve(&user, "requests", 2, "now-2").await;
    assert_eq!(res.status(), 429);
    let err = error_of(res).await;
    assert_eq!(err["code"], "period_limit_reached");
    let d = &err["details"];
    assert_eq!(
        (d["limit"].as_i64(), d["used"].as_i64()),
        (Some(10), Some(9))
    );
    assert_eq!(
        (d["required"].as_i64(), d["remaining"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(
        app.reserve(&user, "requests", 1, "now-1").await.status(),
        201
    );
}

#[tokio::test]
async fn a_rolling_window_with_no_usage_has_no_reset_time() {
    let app = spawn_full(HOURLY, |_| {}).await;
    let (access, _) = app.user().await;
    let e: Value = app
        .get_auth("/v1/entitlements", &access)
        .await
        .json()
        .await
        .unwrap();
    let m = &e["meters"][0];
    assert_eq!(
        (m["used"].as_i64(), m["remaining"].as_i64()),
        (Some(0), Some(10))
    );
    assert!(m["resets_at"].is_null(), "{m}");
}
