//! Delivering outbound webhooks: Standard Webhooks signatures checked by an independent
//! implementation, the retry schedule with the clock driven by the test, two workers on
//! one database, disabling after 5 days of failures, and replay.

use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use keel_core::outbound::{EventType, RETRY_SCHEDULE};
use keel_server::webhooks::outbound::{Clock, ManualClock, WebhookSettings, Worker};
use keel_store::{OutboxMessage, TenantScope};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_with, TestApp};
use crate::webhook_receiver::{expected_signature, Receiver};
use crate::webhooks_admin::{admin, call, register};

async fn app() -> TestApp {
    spawn_with(|s| {
        s.outbound.worker = false;
        s.outbound.allow_private_urls = true;
    })
    .await
}

fn worker(app: &TestApp, clock: &ManualClock) -> Worker {
    let settings = WebhookSettings {
        timeout: std::time::Duration::from_secs(5),
        ..app.state.settings().outbound.clone()
    };
    Worker::new(app.state.store().clone(), Arc::new(clock.clone()), settings)
}

async fn subscribe_user(app: &TestApp, user: &str, status: &str) {
    let start = Utc::now();
    let body = json!({"plan": "pro", "status": status, "period_start": start,
        "period_end": start + TimeDelta::days(30)});
    let path = format!("/v1/service/users/{user}/subscription");
    let res = app.service(Method::PUT, &path, Some(body)).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
}

#[tokio::test]
async fn a_change_is_delivered_signed_and_retried_on_the_schedule_until_it_succeeds() {
    let app = app().await;
    let token = admin(&app).await;
    let receiver = Receiver::start(3).await;
    let (endpoint, secret) = register(&app, &token, &receiver.url, &["subscription.changed"]).await;
    let (_, user) = app.user().await;
    subscribe_user(&app, &user, "active").await;

    let clock = ManualClock::at(Utc::now() + TimeDelta::seconds(1));
    let w = worker(&app, &clock);
    let mut times = vec![clock.now()];
    assert_eq!(w.run_once().await.unwrap(), 1);
    for delay in &RETRY_SCHEDULE[..3] {
        clock.advance(*delay - TimeDelta::seconds(1));
        assert_eq!(
            w.run_once().await.unwrap(),
            0,
            "nothing before the retry is due"
        );
        clock.advance(TimeDelta::seconds(1));
        times.push(clock.now());
        assert_eq!(w.run_once().await.unwrap(), 1);
    }
    clock.advance(TimeDelta::days(1));
    assert_eq!(w.run_once().await.unwrap(), 0, "delivered: nothing more");

    let got = receiver.got();
    assert_eq!(got.len(), 4);
    for (r, at) in got.iter().zip(&times) {
        assert_eq!(r.id, got[0].id, "one webhook-id across retries");
        assert!(r.id.starts_with("msg_"));
        assert_eq!(r.timestamp, at.timestamp().to_string());
        assert_eq!(r.signature, expected_signature(&secret, r));
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["type"], "subscription.changed");
        assert_eq!(body["data"]["user_id"], user.as_str());
        assert_eq!(body["data"]["plan"], "pro");
        assert_eq!(body["data"]["status"], "active");
    }
    let path = format!("/admin/v1/webhooks/endpoints/{endpoint}/attempts");
    let attempts: Value = call(&app, Method::GET, &path, &token, None)
        .await
        .json()
        .await
        .unwrap();
    let data = attempts["data"].as_array().unwrap();
    let codes: Vec<i64> = data
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, vec![204, 500, 500, 500]);
    let numbers: Vec<i64> = data
        .iter()
        .map(|a| a["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, vec![4, 3, 2, 1]);
    assert!(data.iter().all(|a| a["latency_ms"].as_i64().unwrap() >= 0));
    assert_eq!(data[1]["error"], "endpoint answered 500");

    // Replay: the same message again, same id, after the operator asks.
    let replay = format!("/admin/v1/webhooks/messages/{}/replay", got[0].id);
    let res: Value = call(&app, Method::POST, &replay, &token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(res["queued"], 1);
    assert_eq!(w.run_once().await.unwrap(), 1);
    let again = receiver.got();
    assert_eq!(again.len(), 5);
    assert_eq!(again[4].id, got[0].id);
    let message: Value = call(
        &app,
        Method::GET,
        &format!("/admin/v1/webhooks/messages/{}", got[0].id),
        &token,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(message["deliveries"][0]["status"], "succeeded");
    assert_eq!(message["deliveries"][0]["attempts"], 5);
}

#[tokio::test]
async fn during_a_rotation_both_secrets_sign_each_delivery() {
    let app = app().await;
    let token = admin(&app).await;
    let receiver = Receiver::start(0).await;
    let (endpoint, old) = register(&app, &token, &receiver.url, &["subscription.changed"]).await;
    let path = format!("/admin/v1/webhooks/endpoints/{endpoint}/rotate-secret");
    let rotated: Value = call(&app, Method::POST, &path, &token, None)
        .await
        .json()
        .await
        .unwrap();
    let new = rotated["secret"].as_str().unwrap().to_string();
    let (_, user) = app.user().await;
    subscribe_user(&app, &user, "trialing").await;
    let clock = ManualClock::at(Utc::now() + TimeDelta::seconds(1));
    assert_eq!(worker(&app, &clock).run_once().await.unwrap(), 1);
    let r = &receiver.got()[0];
    let signatures: Vec<&str> = r.signature.split(' ').collect();
    assert_eq!(
        signatures,
        vec![expected_signature(&new, r), expected_signature(&old, r)]
    );
    // After 24 h only the new secret signs.
    subscribe_user(&app, &user, "active").await;
    clock.advance(TimeDelta::hours(25));
    assert_eq!(worker(&app, &clock).run_once().await.unwrap(), 1);
    let r = &receiver.got()[1];
    assert_eq!(r.signature, expected_signature(&new, r));
}

#[tokio::test]
async fn two_workers_on_one_database_make_each_attempt_once() {
    let app = app().await;
    let token = admin(&app).await;
    let receiver = Receiver::start(0).await;
    register(&app, &token, &receiver.url, &["safety.flagged"]).await;
    let tenant = TenantScope::new(keel_core::ids::TenantId::new());
    for i in 0..24 {
        let message = OutboxMessage {
            event_type: EventType::SafetyFlagged,
            payload: json!({"n": i}),
        };
        app.state.store().enqueue(&tenant, message).await.unwrap();
    }
    // A second node: its own connection pool on the same database.
    let settings = app.state.settings();
    let other = keel_store::connect(&keel_store::ConnectOptions {
        database_url: settings.database_url.clone(),
        data_dir: settings.data_dir.clone(),
        connect_timeout: std::time::Duration::from_secs(10),
        max_connections: 4,
    })
    .await
    .unwrap();
    let clock = ManualClock::at(Utc::now() + TimeDelta::seconds(1));
    let mut settings = app.state.settings().outbound.clone();
    settings.batch = 5;
    let a = Worker::new(
        app.state.store().clone(),
        Arc::new(clock.clone()),
        settings.clone(),
    );
    let b = Worker::new(other.clone(), Arc::new(clock.clone()), settings);
    let (ra, rb) = tokio::join!(a.run_once(), b.run_once());
    assert_eq!(ra.unwrap() + rb.unwrap(), 24);
    let got = receiver.got();
    let mut ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        (got.len(), ids.len()),
        (24, 24),
        "each message delivered exactly once"
    );
    other.close().await;
}

#[tokio::test]
async fn an_endpoint_failing_for_five_days_is_disabled_and_audited() {
    let app = app().await;
    let token = admin(&app).await;
    let receiver = Receiver::start(usize::MAX).await;
    let (endpoint, _) = register(&app, &token, &receiver.url, &["safety.flagged"]).await;
    let tenant = TenantScope::new(keel_core::ids::TenantId::new());
    let flag = || OutboxMessage {
        event_type: EventType::SafetyFlagged,
        payload: json!({"rule": "pii"}),
    };
    let clock = ManualClock::at(Utc::now() + TimeDelta::seconds(1));
    let w = worker(&app, &clock);
    app.state.store().enqueue(&tenant, flag()).await.unwrap();
    assert_eq!(w.run_once().await.unwrap(), 1);
    for _ in 0..4 {
        clock.advance(TimeDelta::days(1));
        app.state.store().enqueue(&tenant, flag()).await.unwrap();
        assert!(w.run_once().await.unwrap() >= 1);
    }
    let path = format!("/admin/v1/webhooks/endpoints/{endpoint}");
    let still: Value = call(&app, Method::GET, &path, &token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(still["enabled"], true, "4 days of failures are not enough");
    clock.advance(TimeDelta::days(1));
    app.state.store().enqueue(&tenant, flag()).await.unwrap();
    w.run_once().await.unwrap();
    let off: Value = call(&app, Method::GET, &path, &token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(off["enabled"], false);
    assert_eq!(off["disabled_reason"], "failing");
    let q = keel_store::AuditQuery {
        limit: 100,
        action: Some("webhook.endpoint_disabled".into()),
        ..Default::default()
    };
    let scope = TenantScope::new(keel_store::all_tenants());
    let events = app.state.store().list_audit(&scope, &q).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].target.as_deref(), Some(endpoint.as_str()));
    // Nothing more is sent to it.
    let sent = receiver.got().len();
    clock.advance(TimeDelta::days(1));
    app.state.store().enqueue(&tenant, flag()).await.unwrap();
    assert_eq!(w.run_once().await.unwrap(), 0);
    assert_eq!(receiver.got().len(), sent);
}
