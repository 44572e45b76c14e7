//! Events of the jobs and inbound-webhook contexts reach a registered endpoint end to end,
//! signed; a refused or stale change sends nothing; Stripe's customer is recorded.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use keel_server::webhooks::outbound::{ManualClock, Worker};
use serde_json::{json, Value};

use crate::gateway_fixture::{ask, gateway_with};
use crate::helpers::{error_of, spawn_full, TestApp};
use crate::jobs_helpers::quick_manifest;
use crate::webhook_receiver::{expected_signature, Receiver};
use crate::webhooks_admin::{admin, register};
use crate::webhooks_support::{configure, until, IAMA};

async fn app(manifest: &str) -> TestApp {
    spawn_full(manifest, |s| {
        configure(s);
        s.jobs_timer_poll = Duration::from_millis(20);
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
async fn job_transitions_are_delivered_and_a_stale_one_is_not() {
    let app = app(&quick_manifest()).await;
    let token = admin(&app).await;
    let receiver = Receiver::start(0).await;
    let (_, secret) = register(&app, &token, &receiver.url, &["job.state_changed"]).await;
    let (access, user) = app.user().await;
    let job = app.quick_job(&access, "p1").await;
    let running = app.moved(&job, "running").await;
    // The first version is stale now: refused, and nothing is sent for it.
    let stale = app.transition(&job, "done").await;
    assert_eq!(stale.status(), 409, "{:?}", stale.text().await);
    let cancel = app.action(&access, &running, "cancel").await;
    assert_eq!(cancel.status(), 200, "{:?}", cancel.text().await);
    assert_eq!(deliver_all(&app).await, 3);
    let mut got = bodies(&receiver);
    got.sort_by_key(|b| b["data"]["version"].as_i64());
    let moves: Vec<(Value, Value, Value)> = got
        .iter()
        .map(|b| {
            assert_eq!(b["type"], "job.state_changed");
            assert_eq!(b["data"]["job_id"], job["id"]);
            assert_eq!(b["data"]["job_type"], "quick");
            assert_eq!(b["data"]["user_id"], user.as_str());
            assert!(b["data"].get("input").is_none());
            let d = &b["data"];
            (d["from"].clone(), d["to"].clone(), d["by"].clone())
        })
        .collect();
    assert_eq!(
        moves,
        vec![
            (Value::Null, json!("queued"), json!("user")),
            (json!("queued"), json!("running"), json!("service")),
            (json!("running"), json!("failed"), json!("user")),
        ]
    );
    assert_eq!(got[2]["data"]["reason"], "user_cancelled");
    for r in receiver.got() {
        assert_eq!(r.signature, expected_signature(&secret, &r));
    }
}

fn subscription_event(id: &str, created: i64, status: &str, user: &str) -> Value {
    let start = Utc::now() - chrono::Duration::days(1);
    let end = Utc::now() + chrono::Duration::days(29);
    json!({
        "id": id, "object": "event", "created": created, "type": "customer.subscription.updated",
        "data": {"object": {
            "id": "sub_src", "object": "subscription", "customer": "cus_Src1", "status": status,
            "cancel_at_period_end": false,
            "current_period_start": start.timestamp(), "current_period_end": end.timestamp(),
            "metadata": {"keel_user_id": user},
            "items": {"object": "list", "data": [{"id": "si_1", "object": "subscription_item",
                "price": {"id": "price_iama_pro_monthly", "object": "price", "product": "prod_iama",
                    "recurring": {"interval": "month"}},
                "quantity": 1}]}
        }}
    })
}

#[tokio::test]
async fn an_applied_stripe_event_is_delivered_and_links_the_customer() {
    let app = app(IAMA).await;
    let token = admin(&app).await;
    let receiver = Receiver::start(0).await;
    let (_, secret) = register(&app, &token, &receiver.url, &["subscription.changed"]).await;
    let (access, user) = app.user().await;
    let me = app
        .state
        .store()
        .locate_user(user.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let scope = keel_store::TenantScope::new(me.tenant_id);
    let t = Utc::now().timestamp() - 100;
    let (status, ack) = app
        .stripe(&subscription_event("evt_src_1", t, "active", &user))
        .await;
    assert_eq!(status, 200, "{ack}");
    app.settled(ack["id"].as_str().unwrap()).await;
    assert_eq!(app.plan_of(&access).await.0, "pro");
    // An older event is stale: applied as nothing, sent as nothing.
    let (_, ack) = app
        .stripe(&subscription_event("evt_src_0", t - 50, "canceled", &user))
        .await;
    app.settled(ack["id"].as_str().unwrap()).await;
    assert_eq!(deliver_all(&app).await, 1);
    let got = bodies(&receiver);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["type"], "subscription.changed");
    assert_eq!(got[0]["data"]["user_id"], user.as_str());
    assert_eq!(got[0]["data"]["plan"], "pro");
    assert_eq!(got[0]["data"]["source"], "stripe");
    let r = &receiver.got()[0];
    assert_eq!(r.signature, expected_signature(&secret, r));
    let customer = app
        .state
        .store()
        .billing_customer(&scope, me.id, "stripe")
        .await
        .unwrap();
    assert_eq!(customer.as_deref(), Some("cus_Src1"));
}

#[tokio::test]
async fn safety_blocks_and_flags_are_delivered_without_the_text() {
    let gw = gateway_with(|s| {
        s.outbound.worker = false;
        s.outbound.allow_private_urls = true;
    })
    .await;
    let token = admin(&gw.app).await;
    let receiver = Receiver::start(0).await;
    let (_, secret) = register(&gw.app, &token, &receiver.url, &["safety.flagged"]).await;
    let (access, user) = gw.user_on(None).await;
    let blocked = gw
        .chat(&access, ask("chat-openai", "I want to END MY LIFE"))
        .await;
    assert_eq!(blocked.status(), 403);
    let blocked = error_of(blocked).await;
    let flagged = gw
        .chat(&access, ask("chat-openai", "what medication dose is safe"))
        .await;
    assert_eq!(flagged.status(), 200);
    // The events are recorded as the requests are answered; deliver until both arrived.
    until("both safety events delivered", || async {
        deliver_all(&gw.app).await;
        (receiver.got().len() >= 2).then_some(())
    })
    .await;
    let got = bodies(&receiver);
    assert_eq!(got.len(), 2);
    let mut seen: Vec<(String, String)> = got
        .iter()
        .map(|b| {
            assert_eq!(b["type"], "safety.flagged");
            assert_eq!(b["data"]["user_id"], user.as_str());
            assert!(b["data"]["feature"].is_string());
            let text = b.to_string().to_lowercase();
            assert!(
                !text.contains("life") && !text.contains("medication"),
                "{b}"
            );
            assert!(b["data"].get("text_hash").is_none());
            let d = &b["data"];
            (
                d["rule"].as_str().unwrap().into(),
                d["action"].as_str().unwrap().into(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("crisis".into(), "block".into()),
            ("medical".into(), "flag".into())
        ]
    );
    let block = got.iter().find(|b| b["data"]["action"] == "block").unwrap();
    assert_eq!(block["data"]["request_id"], blocked["request_id"]);
    for r in receiver.got() {
        assert_eq!(r.signature, expected_signature(&secret, &r));
    }
}

#[tokio::test]
async fn a_timer_transition_is_delivered_as_by_system() {
    let app = app(&quick_manifest()).await;
    let token = admin(&app).await;
    let receiver = Receiver::start(0).await;
    register(&app, &token, &receiver.url, &["job.state_changed"]).await;
    let (access, _) = app.user().await;
    let job = app.quick_job(&access, "p").await;
    let waiting = app
        .moved(&app.moved(&job, "running").await, "waiting")
        .await;
    let id = waiting["id"].as_str().unwrap();
    app.state.job_clock().advance(Duration::from_secs(61 * 60));
    app.wait_for_state(&access, id, "failed").await;
    assert_eq!(deliver_all(&app).await, 4);
    let got = bodies(&receiver);
    let timed_out = got.iter().find(|b| b["data"]["to"] == "failed").unwrap();
    assert_eq!(timed_out["data"]["from"], "waiting");
    assert_eq!(timed_out["data"]["by"], "system");
    assert_eq!(timed_out["data"]["reason"], "wait_timeout");
    assert_eq!(timed_out["data"]["job_id"], waiting["id"]);
}
