//! Plans with prices: snapshots across a plan change, prepaid balances, spend limits.
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{error_of, spawn_full, TestApp};

async fn entitlements(app: &TestApp, access: &str) -> Value {
    app.get_auth("/v1/entitlements", access)
        .await
        .json()
        .await
        .unwrap()
}

const PRICED: &str = r#"
[product]
name = "priced"
default_plan = "basic"
[meters.calls]
unit = "call"
[plans.basic]
unit_prices_micros = { calls = 1000 }
[plans.basic.limits.calls]
limit = 100
window = "day"
[plans.premium]
unit_prices_micros = { calls = 3000 }
[plans.premium.limits.calls]
limit = 1000
window = "day"
[plans.paygo]
prepaid = true
monthly_spend_limit_micros = 20000
unit_prices_micros = { calls = 1500 }
"#;

async fn subscribe(app: &TestApp, user: &str, plan: &str) {
    let now = chrono::Utc::now();
    let body = json!({"plan": plan, "status": "active", "period_start": now - chrono::Duration::days(1), "period_end": now + chrono::Duration::days(29)});
    let res = app
        .service(
            Method::PUT,
            &format!("/v1/service/users/{user}/subscription"),
            Some(body),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
}

#[tokio::test]
async fn a_plan_change_never_changes_a_running_reservations_terms() {
    let app = spawn_full(PRICED, |_| {}).await;
    let (access, user) = app.user().await;
    let r: Value = app
        .reserve(&user, "calls", 10, "job")
        .await
        .json()
        .await
        .unwrap();
    subscribe(&app, &user, "premium").await;
    assert_eq!(entitlements(&app, &access).await["plan"], "premium");
    let id = r["id"].as_str().unwrap();
    let entry: Value = app
        .service(
            Method::POST,
            &format!("/v1/service/reservations/{id}/commit"),
            Some(json!({"amount": 10})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        entry["cost_micros"], 10_000,
        "basic's price at reservation time, not premium's"
    );
    let r2: Value = app
        .reserve(&user, "calls", 10, "job2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r2["snapshot"]["plan"], "premium");
    assert_eq!(r2["snapshot"]["unit_price_micros"], 3000);
}

#[tokio::test]
async fn a_prepaid_balance_is_held_spent_and_refused_precisely() {
    let app = spawn_full(PRICED, |_| {}).await;
    let (access, user) = app.user().await;
    subscribe(&app, &user, "paygo").await;
    let res = app.reserve(&user, "calls", 1, "nothing").await;
    assert_eq!(res.status(), 402);
    assert_eq!(error_of(res).await["code"], "insufficient_balance");
    let top = json!({"delta_micros": 10_000, "idempotency_key": "topup-1"});
    let res = app
        .service(
            Method::POST,
            &format!("/v1/service/users/{user}/balance"),
            Some(top.clone()),
        )
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["balance_micros"], 10_000);
    let again = app
        .service(
            Method::POST,
            &format!("/v1/service/users/{user}/balance"),
            Some(top),
        )
        .await;
    assert_eq!(
        again.json::<Value>().await.unwrap()["balance_micros"],
        10_000,
        "a replayed top-up adds nothing"
    );
    let r: Value = app
        .reserve(&user, "calls", 4, "a")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["balance_micros"], 6000);
    let res = app.reserve(&user, "calls", 3, "b").await;
    assert_eq!(res.status(), 402);
    let err = error_of(res).await;
    assert_eq!(err["code"], "insufficient_balance");
    assert_eq!(err["details"]["available_micros"], 4000);
    let id = r["id"].as_str().unwrap();
    app.service(
        Method::POST,
        &format!("/v1/service/reservations/{id}/commit"),
        Some(json!({"amount": 2})),
    )
    .await;
    let e = entitlements(&app, &access).await;
    assert_eq!(
        (
            e["balance_micros"].as_i64(),
            e["balance_held_micros"].as_i64()
        ),
        (Some(7000), Some(0))
    );
    // The monthly spend limit (20000) is the next gate: 3000 spent, 16500 more pass, 18000 not.
    let top = json!({"delta_micros": 20_000, "idempotency_key": "topup-2"});
    app.service(
        Method::POST,
        &format!("/v1/service/users/{user}/balance"),
        Some(top),
    )
    .await;
    let res = app.reserve(&user, "calls", 11, "c").await;
    assert_eq!(res.status(), 201);
    let res = app.reserve(&user, "calls", 1, "d").await;
    assert_eq!(error_of(res).await["code"], "monthly_spend_limit");
}
