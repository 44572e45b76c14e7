use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{error_of, spawn_app, spawn_with, TestApp};

async fn entitlements(app: &TestApp, access: &str) -> Value {
    let res = app.get_auth("/v1/entitlements", access).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
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
async fn entitlements_show_the_plan_limits_use_and_a_human_proxy() {
    let app = spawn_app().await;
    let (access, _) = app.user().await;
    let e = entitlements(&app, &access).await;
    assert_eq!(e["plan"], "free");
    assert_eq!(e["plan_source"], "default");
    assert_eq!(e["features"], json!({"chat": true, "tasks": false}));
    let requests = meter(&e, "requests");
    assert_eq!(
        (
            requests["limit"].as_i64(),
            requests["used"].as_i64(),
            requests["remaining"].as_i64()
        ),
        (Some(100), Some(0), Some(100))
    );
    assert_eq!(requests["window"], "day");
    assert_eq!(requests["percent_used"], 0);
    let tomorrow = (chrono::Utc::now().date_naive() + chrono::Duration::days(1)).to_string();
    assert!(
        requests["resets_at"]
            .as_str()
            .unwrap()
            .starts_with(&tomorrow),
        "{requests}"
    );
    assert_eq!(
        meter(&e, "tokens")["human"],
        "about 100 typical chat replies left"
    );
}

#[tokio::test]
async fn reservations_commit_into_the_ledger_and_show_in_entitlements() {
    let app = spawn_app().await;
    let (access, user) = app.user().await;
    let res = app.reserve(&user, "requests", 30, "job-1").await;
    assert_eq!(res.status(), 201);
    let r: Value = res.json().await.unwrap();
    assert_eq!(r["status"], "active");
    assert_eq!(r["snapshot"]["plan"], "free");
    let e = entitlements(&app, &access).await;
    assert_eq!(
        (
            meter(&e, "requests")["used"].as_i64(),
            meter(&e, "requests")["reserved"].as_i64()
        ),
        (Some(30), Some(30))
    );
    assert_eq!(meter(&e, "requests")["percent_used"], 30);
    let id = r["id"].as_str().unwrap();
    let commit = json!({"amount": 12, "source": {"job_id": "job-1", "feature": "chat"}});
    let res = app
        .service(
            Method::POST,
            &format!("/v1/service/reservations/{id}/commit"),
            Some(commit.clone()),
        )
        .await;
    assert_eq!(res.status(), 200);
    let entry: Value = res.json().await.unwrap();
    assert_eq!(
        (entry["amount"].as_i64(), entry["meter"].as_str()),
        (Some(12), Some("requests"))
    );
    let e = entitlements(&app, &access).await;
    assert_eq!(
        (
            meter(&e, "requests")["used"].as_i64(),
            meter(&e, "requests")["reserved"].as_i64()
        ),
        (Some(12), Some(0))
    );
    // The same commit again replays the entry; another amount is refused.
    let res = app
        .service(
            Method::POST,
            &format!("/v1/service/reservations/{id}/commit"),
            Some(commit),
        )
        .await;
    assert_eq!(res.headers()["idempotent-replayed"], "true");
    assert_eq!(res.json::<Value>().await.unwrap()["id"], entry["id"]);
    let res = app
        .service(
            Method::POST,
            &format!("/v1/service/reservations/{id}/commit"),
            Some(json!({"amount": 13})),
        )
        .await;
    assert_eq!(res.status(), 409);
    assert_eq!(error_of(res).await["code"], "reservation_not_active");
    let usage: Value = app
        .get_auth("/v1/usage?group_by=feature", &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        usage["data"],
        json!([{"group": "chat", "meter": "requests", "amount": 12, "cost_micros": 0, "entries": 1}])
    );
}

#[tokio::test]
async fn a_limit_refusal_names_its_gate_with_details() {
    let app = spawn_app().await;
    let (_, user) = app.user().await;
    assert_eq!(app.reserve(&user, "requests", 95, "a").await.status(), 201);
    let res = app.reserve(&user, "requests", 6, "b").await;
    assert_eq!(res.status(), 429);
    let err = error_of(res).await;
    assert_eq!(err["code"], "daily_limit_reached");
    assert_eq!(err["details"]["limit"], 100);
    assert_eq!(err["details"]["used"], 95);
    assert_eq!(err["details"]["required"], 6);
    assert!(err["details"]["resets_at"].is_string());
    assert_eq!(app.reserve(&user, "requests", 5, "c").await.status(), 201);
}

#[tokio::test]
async fn concurrent_reservations_over_http_grant_exactly_the_limit() {
    let app = spawn_app().await;
    let (access, user) = app.user().await;
    let mut tasks = Vec::new();
    for c in 0..16 {
        let (client, url, user) = (
            app.client.clone(),
            app.url("/v1/service/reservations"),
            user.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut granted = 0;
            for i in 0.. {
                let body = json!({"user_id": user, "meter": "requests", "amount": 1, "idempotency_key": format!("{c}-{i}")});
                let res = client.post(&url).bearer_auth(crate::helpers::SERVICE_TOKEN).json(&body).send().await.unwrap();
                match res.status().as_u16() {
                    201 => granted += 1,
                    429 => return granted,
                    other => panic!("unexpected {other}"),
                }
            }
            granted
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 100);
    assert_eq!(
        meter(&entitlements(&app, &access).await, "requests")["used"],
        100
    );
}

#[tokio::test]
async fn a_replayed_key_returns_the_original_and_a_changed_body_is_refused() {
    let app = spawn_app().await;
    let (_, user) = app.user().await;
    let first: Value = app
        .reserve(&user, "requests", 3, "k1")
        .await
        .json()
        .await
        .unwrap();
    let res = app.reserve(&user, "requests", 3, "k1").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["idempotent-replayed"], "true");
    assert_eq!(res.json::<Value>().await.unwrap()["id"], first["id"]);
    let res = app.reserve(&user, "requests", 4, "k1").await;
    assert_eq!(res.status(), 422);
    assert_eq!(error_of(res).await["code"], "idempotency_key_reused");
}

#[tokio::test]
async fn release_returns_the_hold_and_overage_follows_the_meter() {
    let app = spawn_app().await;
    let (access, user) = app.user().await;
    let r: Value = app
        .reserve(&user, "requests", 10, "r")
        .await
        .json()
        .await
        .unwrap();
    let id = r["id"].as_str().unwrap();
    let over = app
        .service(
            Method::POST,
            &format!("/v1/service/reservations/{id}/commit"),
            Some(json!({"amount": 11})),
        )
        .await;
    assert_eq!(error_of(over).await["code"], "commit_exceeds_reservation");
    let res = app
        .service(
            Method::POST,
            &format!("/v1/service/reservations/{id}/release"),
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        meter(&entitlements(&app, &access).await, "requests")["used"],
        0
    );
    let late = app
        .service(
            Method::POST,
            &format!("/v1/service/reservations/{id}/commit"),
            Some(json!({"amount": 1})),
        )
        .await;
    assert_eq!(error_of(late).await["code"], "reservation_not_active");
    // Tokens allow overage: the excess is recorded as such.
    let t: Value = app
        .reserve(&user, "tokens", 1000, "t")
        .await
        .json()
        .await
        .unwrap();
    let id = t["id"].as_str().unwrap();
    let res = app
        .service(
            Method::POST,
            &format!("/v1/service/reservations/{id}/commit"),
            Some(json!({"amount": 1500})),
        )
        .await;
    let entry: Value = res.json().await.unwrap();
    assert_eq!(
        (entry["amount"].as_i64(), entry["overage"].as_i64()),
        (Some(1500), Some(500))
    );
}

#[tokio::test]
async fn expired_reservations_are_released_by_the_sweeper() {
    let app = spawn_with(|s| s.sweep_interval = Duration::from_millis(100)).await;
    let (access, user) = app.user().await;
    let body = json!({"user_id": user, "meter": "requests", "amount": 40, "idempotency_key": "x", "expires_in_seconds": 1});
    let r: Value = app
        .service(Method::POST, "/v1/service/reservations", Some(body))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        meter(&entitlements(&app, &access).await, "requests")["used"],
        40
    );
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(
        meter(&entitlements(&app, &access).await, "requests")["used"],
        0
    );
    let id = r["id"].as_str().unwrap();
    let res = app
        .service(
            Method::POST,
            &format!("/v1/service/reservations/{id}/commit"),
            Some(json!({"amount": 1})),
        )
        .await;
    assert_eq!(error_of(res).await["details"]["status"], "expired");
}

#[tokio::test]
async fn bad_reservation_requests_get_clear_codes_and_change_nothing() {
    let app = spawn_app().await;
    let (access, user) = app.user().await;
    let cases = [
        (
            json!({"user_id": user, "meter": "requests", "amount": 0, "idempotency_key": "a"}),
            422,
            "invalid_amount",
        ),
        (
            json!({"user_id": user, "meter": "requests", "amount": -5, "idempotency_key": "b"}),
            422,
            "invalid_amount",
        ),
        (
            json!({"user_id": user, "meter": "nope", "amount": 1, "idempotency_key": "c"}),
            422,
            "unknown_meter",
        ),
        (
            json!({"user_id": "usr_00000000000000000000000000000000", "meter": "requests", "amount": 1, "idempotency_key": "d"}),
            404,
            "unknown_user",
        ),
        (
            json!({"user_id": user, "meter": "requests", "amount": 1, "idempotency_key": ""}),
            422,
            "invalid_idempotency_key",
        ),
        (
            json!({"user_id": user, "meter": "requests", "amount": 1, "idempotency_key": "e", "expires_in_seconds": 0}),
            422,
            "invalid_expiry",
        ),
        (
            json!({"user_id": user, "meter": "requests", "amount": "one", "idempotency_key": "f"}),
            422,
            "validation_failed",
        ),
    ];
    for (body, status, code) in cases {
        let res = app
            .service(Method::POST, "/v1/service/reservations", Some(body))
            .await;
        assert_eq!(res.status(), status);
        assert_eq!(error_of(res).await["code"], code);
    }
    let res = app
        .client
        .post(app.url("/v1/service/reservations"))
        .bearer_auth(&access)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(res).await["code"], "invalid_service_credentials");
    let res = app
        .service(
            Method::POST,
            "/v1/service/reservations/res_00000000000000000000000000000000/commit",
            Some(json!({"amount": 1})),
        )
        .await;
    assert_eq!(res.status(), 404);
    let e = entitlements(&app, &access).await;
    assert_eq!(meter(&e, "requests")["used"], 0);
    let usage: Value = app
        .get_auth("/v1/usage", &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(usage["data"], json!([]));
}
