//! The gateway's enforcement order: kill switches, entitlement, token budgets, safety,
//! budget admission; each refusal is OpenAI-shaped, calls no upstream and bills nothing.

use keel_core::ids::UserId;
use keel_store::{KillSwitch, SafetyQuery, TenantScope};
use serde_json::{json, Value};

use crate::gateway_fixture::{ask, gateway, Gw};
use crate::helpers::error_of;

async fn refused(gw: &Gw, access: &str, body: Value, status: u16, code: &str) -> Value {
    let res = gw.chat(access, body).await;
    assert_eq!(res.status(), status, "{code}");
    let err = error_of(res).await;
    assert_eq!(err["code"], code, "{err}");
    err
}

async fn scope_of(gw: &Gw, user: &str) -> TenantScope {
    let id: UserId = user.parse().unwrap();
    let record = gw.app.state.store().locate_user(id).await.unwrap().unwrap();
    TenantScope::new(record.tenant_id)
}

#[tokio::test]
async fn unentitled_calls_are_refused_before_any_upstream_call() {
    let gw = gateway().await;
    let (access, _) = gw.user_on(None).await;
    let err = refused(
        &gw,
        &access,
        ask("L2", "hi"),
        403,
        "model_class_not_entitled",
    )
    .await;
    assert_eq!(err["type"], "permission_error");
    assert_eq!(err["param"], "model");
    refused(
        &gw,
        &access,
        ask("chat-l2", "hi"),
        403,
        "model_class_not_entitled",
    )
    .await;
    refused(
        &gw,
        &access,
        ask("premium", "hi"),
        403,
        "feature_not_entitled",
    )
    .await;
    let err = refused(&gw, &access, ask("gpt-9", "hi"), 404, "model_not_found").await;
    assert_eq!(err["type"], "not_found_error");
    assert_eq!(gw.sim.stats().total, 0, "no upstream call");
    assert!(gw.usage(&access).await.is_empty(), "nothing billed");
    // The same calls on a plan that has them go through.
    let (pro, _) = gw.user_on(Some("pro")).await;
    assert_eq!(gw.chat(&pro, ask("L2", "hi")).await.status(), 200);
    assert_eq!(gw.chat(&pro, ask("premium", "hi")).await.status(), 200);
}

#[tokio::test]
async fn a_killed_user_gets_the_kill_switch_error_even_when_unentitled() {
    let gw = gateway().await;
    let (access, user) = gw.user_on(None).await;
    let switch = KillSwitch {
        tenant_id: None,
        user_id: Some(user.parse().unwrap()),
        reason: "test".into(),
        actor: "test".into(),
        created_at: chrono::Utc::now(),
    };
    gw.app
        .state
        .store()
        .engage_kill_switch(switch)
        .await
        .unwrap();
    refused(&gw, &access, ask("L2", "hi"), 403, "billing_kill_switch").await;
    refused(
        &gw,
        &access,
        ask("chat-openai", "hi"),
        403,
        "billing_kill_switch",
    )
    .await;
    assert_eq!(gw.sim.stats().total, 0);
}

#[tokio::test]
async fn a_safety_block_writes_an_event_and_calls_no_upstream() {
    let gw = gateway().await;
    let (access, user) = gw.user_on(None).await;
    let body = ask("chat-openai", "I want to END MY LIFE");
    let err = refused(&gw, &access, body, 403, "safety_blocked").await;
    assert_eq!(err["details"]["status"], "crisis_support");
    assert_eq!(
        err["details"]["message"],
        "Please reach out to a crisis line."
    );
    assert_eq!(gw.sim.stats().total, 0);
    assert!(gw.usage(&access).await.is_empty());
    let scope = scope_of(&gw, &user).await;
    let q = SafetyQuery {
        limit: 10,
        ..Default::default()
    };
    let events = gw
        .app
        .state
        .store()
        .list_safety_events(&scope, &q)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].rule.as_str(), events[0].action.as_str()),
        ("crisis", "block")
    );
    assert_eq!(events[0].request_id, err["request_id"].as_str().unwrap());
    assert!(!events[0].text_hash.contains("life"));
}

#[tokio::test]
async fn a_safety_flag_lets_the_call_through_and_records_it() {
    let gw = gateway().await;
    let (access, user) = gw.user_on(None).await;
    let res = gw
        .chat(&access, ask("chat-openai", "what medication dose is safe"))
        .await;
    assert_eq!(res.status(), 200);
    let scope = scope_of(&gw, &user).await;
    let q = SafetyQuery {
        limit: 10,
        ..Default::default()
    };
    let events = gw
        .app
        .state
        .store()
        .list_safety_events(&scope, &q)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].rule.as_str(), events[0].action.as_str()),
        ("medical", "flag")
    );
    assert_eq!(gw.sim.stats().total, 1);
}

#[tokio::test]
async fn budget_admission_refuses_a_call_whose_maximum_cost_does_not_fit() {
    let gw = gateway().await;
    let (access, _) = gw.user_on(Some("tight")).await;
    let mut body = ask("chat-openai", "hi");
    body["max_tokens"] = json!(1000);
    let err = refused(&gw, &access, body, 429, "budget_exceeded").await;
    assert_eq!(err["details"]["remaining"], 300);
    assert_eq!(gw.sim.stats().total, 0);
    assert!(
        gw.usage(&access).await.is_empty(),
        "the holds were released"
    );
    // A call whose maximum fits goes through and is billed.
    let mut small = ask("chat-openai", "hi");
    small["max_tokens"] = json!(20);
    assert_eq!(gw.chat(&access, small).await.status(), 200);
    assert!(gw.usage(&access).await["cost"].0 > 0);
}

#[tokio::test]
async fn a_token_budget_charges_the_maximum_then_refunds_to_actual_use() {
    let gw = gateway().await;
    let (access, _) = gw.user_on(Some("metered")).await;
    let with_max = |n: u32| {
        let mut body = ask("chat-openai", "hi");
        body["max_tokens"] = json!(n);
        body
    };
    // About 40 tokens used of 300 per minute, after charging about 230.
    assert_eq!(gw.chat(&access, with_max(200)).await.status(), 200);
    // A call that may need the whole budget does not fit what is left.
    let err = refused(&gw, &access, with_max(290), 429, "rate_limited").await;
    assert_eq!(err["details"]["unit"], "tokens");
    assert_eq!(err["details"]["scope"], "user");
    // Had the first call kept its maximum charge, this one would not fit either.
    assert_eq!(gw.chat(&access, with_max(150)).await.status(), 200);
    assert_eq!(gw.sim.stats().total, 2);
}

#[tokio::test]
async fn bad_input_gets_openai_shaped_errors_and_changes_nothing() {
    let gw = gateway().await;
    let (access, _) = gw.user_on(None).await;
    let raw = gw
        .app
        .client
        .post(gw.app.url("/v1/chat/completions"))
        .bearer_auth(&access)
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    assert_eq!(error_of(raw).await["code"], "invalid_json");
    let empty = json!({"model": "chat-openai", "messages": []});
    let err = refused(&gw, &access, empty, 400, "empty_messages").await;
    assert_eq!(
        (err["type"].as_str(), err["param"].as_str()),
        (Some("invalid_request_error"), Some("messages"))
    );
    let mut negative = ask("chat-openai", "hi");
    negative["max_tokens"] = json!(-1);
    let err = refused(&gw, &access, negative, 400, "invalid_max_tokens").await;
    assert_eq!(err["param"], "max_tokens");
    let no_model = json!({"messages": [{"role": "user", "content": "hi"}]});
    refused(&gw, &access, no_model, 400, "invalid_model").await;
    let unauthenticated = gw.chat("not-a-token", ask("chat-openai", "hi")).await;
    assert_eq!(unauthenticated.status(), 401);
    assert_eq!(gw.sim.stats().total, 0);
    assert!(gw.usage(&access).await.is_empty());
}

#[tokio::test]
async fn an_upstream_answering_garbage_or_failing_is_a_clear_error_billed_nothing() {
    let gw = gateway().await;
    let (access, _) = gw.user_on(None).await;
    let err = refused(
        &gw,
        &access,
        ask("garbage", "hi"),
        502,
        "upstream_invalid_response",
    )
    .await;
    assert_eq!(err["type"], "api_error");
    refused(&gw, &access, ask("down", "hi"), 503, "upstream_unavailable").await;
    let mut stream = ask("down", "hi");
    stream["stream"] = json!(true);
    refused(&gw, &access, stream, 503, "upstream_unavailable").await;
    assert!(gw.usage(&access).await.is_empty(), "reservations released");
}
