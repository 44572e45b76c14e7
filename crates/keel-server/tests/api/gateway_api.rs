//! The public gateway surface against keel-sim: completions and streams for every adapter
//! billing the same, usage chunks, tools, models, headers and token caps.

use serde_json::{json, Value};

use crate::gateway_fixture::{ask, gateway, sse_events, stream_cost};

const ADAPTERS: [&str; 3] = ["chat-openai", "chat-anthropic", "chat-compat"];

#[tokio::test]
async fn streamed_and_non_streamed_calls_bill_the_same_for_every_adapter() {
    let gw = gateway().await;
    for route in ADAPTERS {
        let (access, _) = gw.user_on(None).await;
        let res = gw.chat(&access, ask(route, "tell me about rust")).await;
        assert_eq!(res.status(), 200, "{route}");
        let cost: i64 = res.headers()["x-keel-cost-micros"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let body: Value = res.json().await.unwrap();
        let total = body["usage"]["total_tokens"].as_i64().unwrap();
        assert!(total > 0 && cost > 0, "{route}: {body}");
        let mut streamed = ask(route, "tell me about rust");
        streamed["stream"] = json!(true);
        let res = gw.chat(&access, streamed).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        let (data, comments) = sse_events(&res.text().await.unwrap());
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
        assert_eq!(stream_cost(&comments), cost, "{route}: same cost streamed");
        let usage = gw.usage(&access).await;
        assert_eq!(usage["tokens"], (2 * total, 2), "{route}");
        assert_eq!(usage["cost"], (2 * cost, 2), "{route}");
        assert_eq!(usage["requests"], (2, 2), "{route}");
    }
}

#[tokio::test]
async fn the_usage_chunk_is_sent_only_when_the_client_asks_for_it() {
    let gw = gateway().await;
    let (access, _) = gw.user_on(None).await;
    for include in [true, false] {
        let mut body = ask("chat-anthropic", "count the words");
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": include});
        let text = gw.chat(&access, body).await.text().await.unwrap();
        let (data, _) = sse_events(&text);
        let chunks: Vec<Value> = data
            .iter()
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        let with_usage = chunks.iter().filter(|c| c["usage"].is_object()).count();
        assert_eq!(with_usage, usize::from(include), "include_usage={include}");
        let words: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert!(words.starts_with("sim reply to"), "{words}");
    }
}

#[tokio::test]
async fn tool_calls_round_trip_through_every_adapter() {
    let gw = gateway().await;
    let (access, _) = gw.user_on(None).await;
    let tools = json!([{"type": "function", "function": {"name": "lookup",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    for route in ADAPTERS {
        let first = json!({"model": route, "tools": tools, "messages": [
            {"role": "user", "content": "use the tool for paris"}]});
        let body: Value = gw.chat(&access, first).await.json().await.unwrap();
        let message = &body["choices"][0]["message"];
        assert_eq!(
            body["choices"][0]["finish_reason"], "tool_calls",
            "{route}: {body}"
        );
        let call = &message["tool_calls"][0];
        assert_eq!(call["function"]["name"], "lookup");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"city": "sim"}));
        let second = json!({"model": route, "tools": tools, "messages": [
            {"role": "user", "content": "use the tool for paris"},
            message,
            {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}]});
        let res = gw.chat(&access, second).await;
        assert_eq!(res.status(), 200, "{route}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body["choices"][0]["finish_reason"], "stop",
            "{route}: {body}"
        );
    }
}

#[tokio::test]
async fn models_lists_the_routes_the_plan_may_use() {
    let gw = gateway().await;
    let ids = |body: Value| -> Vec<String> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (free, _) = gw.user_on(None).await;
    let body: Value = gw
        .app
        .get_auth("/v1/models", &free)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["object"], "list");
    let free_ids = ids(body);
    assert!(free_ids.contains(&"chat-openai".to_owned()));
    assert!(!free_ids.contains(&"chat-l2".to_owned()));
    assert!(!free_ids.contains(&"premium".to_owned()));
    let (pro, _) = gw.user_on(Some("pro")).await;
    let pro_ids = ids(gw
        .app
        .get_auth("/v1/models", &pro)
        .await
        .json()
        .await
        .unwrap());
    assert!(pro_ids.contains(&"chat-l2".to_owned()) && pro_ids.contains(&"premium".to_owned()));
    let anonymous = gw.app.get("/v1/models").await;
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn responses_carry_provider_cost_and_overhead_headers() {
    let gw = gateway().await;
    let (access, _) = gw.user_on(None).await;
    let res = gw.chat(&access, ask("chat-anthropic", "hello")).await;
    let h = res.headers();
    assert_eq!(h["x-keel-provider"], "anthropic");
    assert!(h.contains_key("x-request-id"));
    let overhead: f64 = h["x-keel-overhead-ms"].to_str().unwrap().parse().unwrap();
    assert!(overhead >= 0.0);
    let cost: i64 = h["x-keel-cost-micros"].to_str().unwrap().parse().unwrap();
    let body: Value = res.json().await.unwrap();
    // 1 µ per prompt token, 2 µ per completion token, rounded up.
    let usage = &body["usage"];
    let expected =
        usage["prompt_tokens"].as_i64().unwrap() + 2 * usage["completion_tokens"].as_i64().unwrap();
    assert_eq!(cost, expected);
}

#[tokio::test]
async fn a_model_class_resolves_to_its_route_and_caps_clamp_max_tokens() {
    let gw = gateway().await;
    let (access, _) = gw.user_on(None).await;
    let mut body = ask("L1", "hello there");
    body["max_tokens"] = json!(50_000);
    let res = gw.chat(&access, body).await;
    assert_eq!(res.status(), 200);
    // L1 on the free plan resolves to the first L1 route of the feature, by name:
    // `chat-anthropic`, whose Messages request carries the clamped cap as `max_tokens`.
    assert_eq!(res.headers()["x-keel-provider"], "anthropic");
    let sent = gw
        .sim
        .last_request("sim-a")
        .expect("the upstream saw the call");
    assert_eq!(sent["path"], "/v1/messages", "{sent}");
    assert_eq!(sent["body"]["max_tokens"], 1000, "{sent}");
}

#[tokio::test]
async fn every_call_is_audited_and_counted() {
    let gw = gateway().await;
    let (access, user) = gw.user_on(None).await;
    let res = gw.chat(&access, ask("chat-openai", "audit me")).await;
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    let id: keel_core::ids::UserId = user.parse().unwrap();
    let record = gw.app.state.store().locate_user(id).await.unwrap().unwrap();
    let scope = keel_store::TenantScope::new(record.tenant_id);
    let query = keel_store::AuditQuery {
        action: Some("gateway.call".into()),
        limit: 10,
        ..Default::default()
    };
    let events = gw
        .app
        .state
        .store()
        .list_audit(&scope, &query)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.request_id.as_deref(), Some(request_id.as_str()));
    assert_eq!(e.actor, user);
    let d = &e.data;
    assert_eq!(
        (d["model_class"].as_str(), d["feature"].as_str()),
        (Some("L1"), Some("chat"))
    );
    assert_eq!(
        (d["plan"].as_str(), d["outcome"].as_str()),
        (Some("free"), Some("ok"))
    );
    assert_eq!(d["cache_hit"], false);
    assert_eq!(d["completion_tokens"], body["usage"]["completion_tokens"]);
    assert!(d["cost_micros"].as_i64().unwrap() > 0);
    let metrics = gw.app.client.get(&gw.app.metrics).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    for name in [
        "keel_gateway_calls_total",
        "keel_gateway_tokens_total",
        "keel_gateway_cost_micros_total",
        "keel_gateway_overhead_seconds",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
    assert!(text.contains("model=\"chat-openai\""));
}

#[tokio::test]
async fn usage_over_the_cap_is_billed_as_reported_and_flagged() {
    let gw = gateway().await;
    let (access, user) = gw.user_on(None).await;
    // The cap is 1 token; a forced tool call's arguments take more, whatever the cap.
    let tools = json!([{"type": "function", "function": {"name": "lookup",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let body = json!({"model": "tiny", "tools": tools, "tool_choice": "required",
        "messages": [{"role": "user", "content": "weather"}]});
    let res = gw.chat(&access, body).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let completion = body["usage"]["completion_tokens"].as_i64().unwrap();
    assert!(completion > 1, "{body}");
    let total = body["usage"]["total_tokens"].as_i64().unwrap();
    assert_eq!(
        gw.usage(&access).await["tokens"],
        (total, 1),
        "billed as reported"
    );
    let id: keel_core::ids::UserId = user.parse().unwrap();
    let record = gw.app.state.store().locate_user(id).await.unwrap().unwrap();
    let scope = keel_store::TenantScope::new(record.tenant_id);
    let query = keel_store::AuditQuery {
        action: Some("gateway.call".into()),
        limit: 10,
        ..Default::default()
    };
    let events = gw
        .app
        .state
        .store()
        .list_audit(&scope, &query)
        .await
        .unwrap();
    assert_eq!(events[0].data["over_token_cap"], true);
}
