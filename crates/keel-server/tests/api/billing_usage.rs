//! Usage records measured after the fact, and usage reads.
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{error_of, spawn_app, TestApp};

async fn entitlements(app: &TestApp, access: &str) -> Value {
    app.get_auth("/v1/entitlements", access)
        .await
        .json()
        .await
        .unwrap()
}

fn meter<'a>(e: &'a Value, name: &str) -> &'a Value {
    e["meters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["meter"] == name)
        .unwrap()
}

#[tokio::test]
async fn usage_batches_are_idempotent_and_grouped() {
    let app = spawn_app().await;
    let (access, user) = app.user().await;
    let batch = json!({"entries": [
        {"user_id": user, "meter": "tokens", "amount": 500, "idempotency_key": "u1", "source": {"feature": "chat"}},
        {"user_id": user, "meter": "requests", "amount": 1, "idempotency_key": "u2", "source": {"feature": "chat"}},
    ]});
    let res = app
        .service(Method::POST, "/v1/service/usage", Some(batch.clone()))
        .await;
    assert_eq!(res.status(), 200);
    let first: Value = res.json().await.unwrap();
    assert_eq!(first["data"][0]["replayed"], false);
    let again: Value = app
        .service(Method::POST, "/v1/service/usage", Some(batch))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["data"][0]["replayed"], true);
    assert_eq!(
        again["data"][0]["entry"]["id"],
        first["data"][0]["entry"]["id"]
    );
    let by_meter: Value = app
        .get_auth("/v1/usage", &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_meter["data"].as_array().unwrap().len(), 2);
    let today = chrono::Utc::now().date_naive().to_string();
    let by_day: Value = app
        .get_auth("/v1/usage?group_by=day", &access)
        .await
        .json()
        .await
        .unwrap();
    assert!(by_day["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["group"] == today.as_str()));
    let e = entitlements(&app, &access).await;
    assert_eq!(meter(&e, "tokens")["used"], 500);
    let bad = json!({"entries": [
        {"user_id": user, "meter": "tokens", "amount": 5, "idempotency_key": "u3"},
        {"user_id": user, "meter": "tokens", "amount": -5, "idempotency_key": "u4"},
    ]});
    let res = app
        .service(Method::POST, "/v1/service/usage", Some(bad))
        .await;
    let err = error_of(res).await;
    assert_eq!(
        (err["code"].as_str(), err["details"]["index"].as_i64()),
        (Some("invalid_amount"), Some(1))
    );
    assert_eq!(
        meter(&entitlements(&app, &access).await, "tokens")["used"],
        500,
        "nothing of a bad batch is written"
    );
    let res = app.get_auth("/v1/usage?group_by=week", &access).await;
    assert_eq!(error_of(res).await["code"], "invalid_group_by");
}
