//! Events from the billing context reach a registered endpoint end to end: the sweeper's
//! expiry, and thresholds reached by commits racing through the service API.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use keel_server::webhooks::outbound::{ManualClock, Worker};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_with, TestApp};
use crate::webhook_receiver::{expected_signature, Receiver};
use crate::webhooks_admin::{admin, register};

async fn app() -> TestApp {
    spawn_with(|s| {
        s.outbound.worker = false;
        s.outbound.allow_private_urls = true;
    })
    .await
}

async fn deliver_all(app: &TestApp) -> usize {
    let clock = ManualClock::at(Utc::now() + TimeDelta::seconds(1));
    let settings = app.state.settings().outbound.clone();
    let w = Worker::new(app.state.store().clone(), Arc::new(clock), settings);
    w.run_once().await.unwrap()
}

fn bodies(receiver: &Receiver) -> Vec<Value> {
    receiver
        .got()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test]
async fn the_sweepers_expiry_is_delivered_as_reservation_expired() {
    let app = app().await;
    let token = admin(&app).await;
    let receiver = Receiver::start(0).await;
    let (_, secret) = register(&app, &token, &receiver.url, &["reservation.expired"]).await;
    let (_, user) = app.user().await;
    let body = json!({"user_id": user, "meter": "requests", "amount": 4, "idempotency_key": "exp-1", "expires_in_seconds": 1});
    let res = app
        .service(Method::POST, "/v1/service/reservations", Some(body))
        .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let reservation: Value = res.json().await.unwrap();
    // The sweeper runs on its own every 200 ms; wait until it has expired the reservation.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while receiver.got().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no expiry event within 15 s"
        );
        deliver_all(&app).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = bodies(&receiver);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["type"], "reservation.expired");
    assert_eq!(got[0]["data"]["reservation_id"], reservation["id"]);
    assert_eq!(got[0]["data"]["user_id"], user.as_str());
    assert_eq!(got[0]["data"]["amount"], 4);
    let r = &receiver.got()[0];
    assert_eq!(r.signature, expected_signature(&secret, r));
}

#[tokio::test]
async fn racing_commits_deliver_80_and_100_percent_once_each() {
    let app = app().await;
    let token = admin(&app).await;
    let receiver = Receiver::start(0).await;
    register(&app, &token, &receiver.url, &["quota.threshold_reached"]).await;
    let (_, user) = app.user().await;
    // The free plan allows 100 requests a day: ten reservations of 10, committed at once.
    let mut ids = Vec::new();
    for i in 0..10 {
        let res = app.reserve(&user, "requests", 10, &format!("r-{i}")).await;
        assert_eq!(res.status(), 201);
        let r: Value = res.json().await.unwrap();
        ids.push(r["id"].as_str().unwrap().to_string());
    }
    let commits = ids.iter().map(|id| {
        let path = format!("/v1/service/reservations/{id}/commit");
        let app = &app;
        async move {
            app.service(Method::POST, &path, Some(json!({"amount": 10})))
                .await
                .status()
        }
    });
    let statuses = futures::future::join_all(commits).await;
    assert!(statuses.iter().all(|s| s.is_success()), "{statuses:?}");
    assert_eq!(deliver_all(&app).await, 2);
    let got = bodies(&receiver);
    let mut percents: Vec<i64> = got
        .iter()
        .filter(|b| b["data"]["meter"] == "requests" && b["data"]["user_id"] == user.as_str())
        .map(|b| b["data"]["threshold_percent"].as_i64().unwrap())
        .collect();
    percents.sort();
    assert_eq!(percents, vec![80, 100], "{got:?}");
    assert!(got
        .iter()
        .all(|b| b["type"] == "quota.threshold_reached" && b["data"]["limit"] == 100));
}
