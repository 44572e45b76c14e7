//! The gateway under concurrency and across nodes: budgets hold under parallel calls,
//! token budgets are shared through Redis, replays are billed once.

use futures::StreamExt;
use serde_json::json;

use crate::gateway_fixture::{ask, gateway, gateway_with, second_node};
use crate::helpers::{error_of, spawn_app};

fn redis_url() -> String {
    std::env::var("KEEL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[tokio::test]
async fn parallel_calls_never_spend_more_than_the_budget() {
    let gw = gateway().await;
    // 300 µ a day; each call may cost up to 18 + 2 × 40 = 98 µ, so at most 3 are admitted
    // at once, whatever the interleaving.
    let (access, _) = gw.user_on(Some("tight")).await;
    let statuses: Vec<u16> = futures::stream::iter(0..12)
        .map(|_| {
            let (gw, access) = (&gw, access.clone());
            async move {
                let mut body = ask("chat-openai", "hi");
                body["max_tokens"] = json!(40);
                gw.chat(&access, body).await.status().as_u16()
            }
        })
        .buffer_unordered(12)
        .collect()
        .await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(ok >= 3, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    let usage = gw.usage(&access).await;
    let (cost, entries) = usage["cost"];
    assert_eq!(entries as usize, ok, "one cost entry per admitted call");
    assert!(cost <= 300, "spent {cost} of 300");
    assert_eq!(gw.sim.stats().total as usize, ok);
}

#[tokio::test]
async fn token_budgets_are_shared_by_every_node_through_redis() {
    let prefix = format!("keel-test-{}:", uuid::Uuid::now_v7().simple());
    let tweak = |s: &mut keel_server::Settings| {
        s.redis_url = Some(redis_url());
        s.redis_prefix = prefix.clone();
    };
    let a = gateway_with(tweak).await;
    let b = second_node(&a, tweak).await;
    let (access, _) = a.user_on(Some("metered")).await;
    let call = |app: &crate::helpers::TestApp, n: u32| {
        let mut body = ask("chat-openai", "hi");
        body["max_tokens"] = json!(n);
        app.client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&access)
            .json(&body)
            .send()
    };
    assert_eq!(call(&a.app, 200).await.unwrap().status(), 200);
    // Node b sees what node a used: the whole budget no longer fits.
    let refused = call(&b, 290).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(error_of(refused).await["details"]["unit"], "tokens");
    // ... and a's refund of its unused maximum.
    assert_eq!(call(&b, 150).await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_replayed_idempotency_key_calls_upstream_once_and_bills_once() {
    let gw = gateway().await;
    let (access, _) = gw.user_on(None).await;
    let send = || {
        gw.app
            .client
            .post(gw.app.url("/v1/chat/completions"))
            .bearer_auth(&access)
            .header("Idempotency-Key", "chat-1")
            .json(&ask("chat-openai", "hello"))
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 200);
    let first = first.text().await.unwrap();
    let again = send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.text().await.unwrap(), first);
    assert_eq!(gw.sim.stats().total, 1);
    assert_eq!(gw.usage(&access).await["requests"], (1, 1));
}

#[tokio::test]
async fn the_feature_header_picks_the_routes_a_class_resolves_among() {
    let gw = gateway().await;
    let (access, _) = gw.user_on(Some("pro")).await;
    let mismatch = gw
        .chat_as(&access, Some("premium"), ask("chat-openai", "hi"))
        .await;
    assert_eq!(mismatch.status(), 400);
    assert_eq!(error_of(mismatch).await["code"], "feature_mismatch");
    let unknown = gw.chat_as(&access, Some("nope"), ask("L1", "hi")).await;
    assert_eq!(error_of(unknown).await["code"], "unknown_feature");
    // No L1 route serves `premium`.
    let none = gw.chat_as(&access, Some("premium"), ask("L1", "hi")).await;
    assert_eq!(error_of(none).await["code"], "model_not_found");
    let ok = gw
        .chat_as(&access, Some("premium"), ask("premium", "hi"))
        .await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn the_demo_manifest_answers_offline_through_the_in_process_sim() {
    let app = spawn_app().await;
    let (access, _) = app.user().await;
    let res = app
        .post_json("/v1/chat/completions", Some(&access), ask("small", "hi"))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-keel-provider"], "sim");
    let cost: i64 = res.headers()["x-keel-cost-micros"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(!body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .is_empty());
    let total = body["usage"]["total_tokens"].as_i64().unwrap();
    assert!(
        total > 0 && cost > 0,
        "billed from usage: {total} tokens, {cost} micros"
    );
    let models: serde_json::Value = app
        .get_auth("/v1/models", &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "chat-small");
    // The demo's free plan meters requests and tokens: the call is on the ledger.
    let ents: serde_json::Value = app
        .get_auth("/v1/entitlements", &access)
        .await
        .json()
        .await
        .unwrap();
    let used = |meter: &str| {
        ents["meters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["meter"] == meter)
            .map(|m| m["used"].as_i64().unwrap())
            .unwrap()
    };
    assert_eq!(used("requests"), 1);
    assert_eq!(used("tokens"), total);
}
