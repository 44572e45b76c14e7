//! The inbox is durable: an event acknowledged by a node that dies before processing it is
//! applied by the next node started on the same database.

use std::time::Duration;

use chrono::Utc;
use keel_server::config::Layers;
use keel_server::{Application, Settings};
use keel_store::testing::ThrowawayDb;
use serde_json::json;

use crate::webhooks_support::{configure, until, IAMA, STRIPE_SECRET};

async fn start(settings: &Settings) -> (Application, String) {
    let manifest = keel_core::manifest::parse_str(IAMA, "iama.toml").unwrap();
    let app = Application::build(settings.clone(), manifest)
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    (app, base)
}

#[tokio::test]
async fn an_event_acknowledged_before_a_crash_is_applied_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = match std::env::var("KEEL_TEST_BACKEND").as_deref() {
        Ok("postgres") => Some(ThrowawayDb::create().await.unwrap()),
        _ => None,
    };
    let mut settings = Settings::resolve(&Layers::default()).unwrap();
    settings.addr = "127.0.0.1:0".parse().unwrap();
    settings.metrics_addr = "127.0.0.1:0".parse().unwrap();
    settings.data_dir = dir.path().join("data");
    settings.database_url = db.as_ref().map(|d| d.url.clone());
    configure(&mut settings);
    settings.webhooks.worker = false;

    // Node one acknowledges the event and dies (its task aborted, no graceful drain).
    let (app, base) = start(&settings).await;
    let state = app.state().clone();
    let node = tokio::spawn(app.run_until_stopped(std::future::pending()));
    let client = reqwest::Client::new();
    let reg: serde_json::Value = client
        .post(format!("{base}/v1/auth/register"))
        .json(
            &json!({"email": crate::helpers::unique_email(), "password": crate::helpers::PASSWORD}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = reg["access_token"].as_str().unwrap().to_string();
    let me: serde_json::Value = client
        .get(format!("{base}/v1/me"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user = me["id"].as_str().unwrap().to_string();
    let event = json!({"id": "evt_crash", "object": "event", "created": Utc::now().timestamp(),
        "type": "customer.subscription.created", "data": {"object": {"id": "sub_crash", "object": "subscription",
        "status": "active", "metadata": {"keel_user_id": user}, "current_period_start": Utc::now().timestamp() - 60,
        "current_period_end": Utc::now().timestamp() + 86_400,
        "items": {"data": [{"price": {"id": "price_iama_pro_monthly", "product": "prod_iama"}}]}}}});
    let body = serde_json::to_vec(&event).unwrap();
    let sig = keel_core::webhooks::hmac_sig::stripe_header(
        STRIPE_SECRET.as_bytes(),
        Utc::now().timestamp(),
        &body,
    );
    let res = client
        .post(format!("{base}/v1/webhooks/stripe"))
        .header("stripe-signature", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let pending = state
        .store()
        .list_inbox_events(Some(keel_store::InboxStatus::Pending), None, 10)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1, "acknowledged and kept, not yet applied");
    node.abort();
    let _ = node.await;
    drop(state);

    // Node two, on the same database, with its worker on.
    settings.webhooks.worker = true;
    let (app, base) = start(&settings).await;
    let state = app.state().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let node = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    until("the event to apply after restart", || async {
        let e = state
            .store()
            .list_inbox_events(Some(keel_store::InboxStatus::Applied), None, 10)
            .await
            .unwrap();
        (!e.is_empty()).then_some(())
    })
    .await;
    let ent: serde_json::Value = client
        .get(format!("{base}/v1/entitlements"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ent["plan"], "pro");
    let _ = tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), node).await;
}
