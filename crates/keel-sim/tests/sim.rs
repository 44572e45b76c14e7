//! The simulator over HTTP: wire shapes, determinism, faults and stats.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use keel_sim::{ModelMode, SimConfig, SimHandle};
use reqwest::Client;
use serde_json::{json, Value};

async fn sim() -> SimHandle {
    keel_sim::spawn(SimConfig::default()).await.unwrap()
}

fn chat(content: &str) -> Value {
    json!({"model": "sim-small", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": content}]})
}

async fn post(
    sim: &SimHandle,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = Client::new()
        .post(format!("{}{path}", sim.base_url()))
        .header("x-api-key", "k")
        .header("anthropic-version", "2023-06-01")
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// (event name, data) of each event of an SSE body.
fn events(body: &str) -> Vec<(Option<String>, String)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = None;
            let mut data = String::new();
            for line in e.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            (name, data)
        })
        .collect()
}

#[tokio::test]
async fn openai_replies_are_deterministic_with_exact_usage() {
    let sim = sim().await;
    let body = chat("what is the capital of France");
    let response = post(&sim, "/v1/chat/completions", &body, &[]).await;
    assert_eq!(response.status(), 200);
    let out: Value = response.json().await.unwrap();
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(out["model"], "sim-small");
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "sim reply to what is the capital more more more more more more more more more"
    );
    assert_eq!(out["choices"][0]["finish_reason"], "stop");
    // 2 + 6 prompt words; 16 reply words by default.
    assert_eq!(out["usage"]["prompt_tokens"], 8);
    assert_eq!(out["usage"]["completion_tokens"], 16);
    assert_eq!(out["usage"]["total_tokens"], 24);
    let again: Value = post(&sim, "/v1/chat/completions", &body, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["choices"], out["choices"]);
}

#[tokio::test]
async fn openai_streams_chunks_then_usage_then_done() {
    let sim = sim().await;
    let mut body = chat("hello there");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    body["max_tokens"] = json!(5);
    let response = post(
        &sim,
        "/v1/chat/completions",
        &body,
        &[("x-sim-reply-tokens", "9")],
    )
    .await;
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = response.text().await.unwrap();
    let events = events(&text);
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "sim reply to hello there");
    let finish: Vec<_> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .collect();
    assert_eq!(finish, ["length"]);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], 5);
    assert_eq!(last["usage"]["prompt_tokens"], 4);
    assert!(chunks[..chunks.len() - 1]
        .iter()
        .all(|c| c["usage"].is_null()));
    assert_eq!(sim.stats().streams_completed, 1);
}

#[tokio::test]
async fn openai_calls_a_tool_when_asked_streamed_or_not() {
    let sim = sim().await;
    let mut body = chat("use the weather tool");
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let out: Value = post(&sim, "/v1/chat/completions", &body, &[])
        .await
        .json()
        .await
        .unwrap();
    let choice = &out["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], r#"{"city":"sim"}"#);

    body["stream"] = json!(true);
    let text = post(&sim, "/v1/chat/completions", &body, &[])
        .await
        .text()
        .await
        .unwrap();
    let chunks: Vec<Value> = events(&text)
        .iter()
        .filter(|(_, d)| d != "[DONE]")
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert!(calls[0]["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let arguments: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert_eq!(arguments, r#"{"city":"sim"}"#);
}

#[tokio::test]
async fn json_mode_returns_a_json_object() {
    let sim = sim().await;
    let mut body = chat("give me json");
    body["response_format"] = json!({"type": "json_object"});
    body["max_completion_tokens"] = json!(7);
    let out: Value = post(&sim, "/v1/chat/completions", &body, &[])
        .await
        .json()
        .await
        .unwrap();
    let content: Value =
        serde_json::from_str(out["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content["reply"], "sim reply to give me json more");
    assert_eq!(out["usage"]["completion_tokens"], 7);
}

#[tokio::test]
async fn bad_requests_get_openai_shaped_errors() {
    let sim = sim().await;
    let empty = json!({"model": "m", "messages": []});
    let response = post(&sim, "/v1/chat/completions", &empty, &[]).await;
    assert_eq!(response.status(), 400);
    let out: Value = response.json().await.unwrap();
    assert_eq!(out["error"]["type"], "invalid_request_error");

    let mut negative = chat("x");
    negative["max_tokens"] = json!(-1);
    assert_eq!(
        post(&sim, "/v1/chat/completions", &negative, &[])
            .await
            .status(),
        400
    );
    let unknown = post(
        &sim,
        "/v1/chat/completions",
        &chat("x"),
        &[("x-sim-colour", "red")],
    )
    .await;
    assert_eq!(unknown.status(), 400);
}

#[tokio::test]
async fn models_are_listed_in_each_providers_shape() {
    let sim = sim().await;
    let client = Client::new();
    let openai: Value = client
        .get(format!("{}/models", sim.openai_base()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(openai["object"], "list");
    assert_eq!(openai["data"][0]["id"], "sim-small");
    let anthropic: Value = client
        .get(format!("{}/models", sim.openai_base()))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(anthropic["data"][0]["type"], "model");
    assert_eq!(anthropic["has_more"], false);
}

#[tokio::test]
async fn an_api_key_when_configured_is_enforced() {
    let sim = keel_sim::spawn(SimConfig {
        api_key: Some("secret".into()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let url = format!("{}/chat/completions", sim.openai_base());
    let client = Client::new();
    let none = client.post(&url).json(&chat("x")).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let wrong = client
        .post(&url)
        .bearer_auth("nope")
        .json(&chat("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = client
        .post(&url)
        .bearer_auth("secret")
        .json(&chat("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    let anthropic = post(
        &sim,
        "/v1/messages",
        &json!({"model": "m", "max_tokens": 5,
        "messages": [{"role": "user", "content": "x"}]}),
        &[],
    )
    .await;
    assert_eq!(anthropic.status(), 401);
}

#[tokio::test]
async fn per_model_modes_apply_to_their_model_only() {
    let mode: ModelMode = "broken:status=503,retry-after=4".parse().unwrap();
    let config = SimConfig {
        model_modes: [(mode.model, mode.faults)].into_iter().collect(),
        ..SimConfig::default()
    };
    let sim = keel_sim::spawn(config).await.unwrap();
    let mut body = chat("x");
    assert_eq!(
        post(&sim, "/v1/chat/completions", &body, &[])
            .await
            .status(),
        200
    );
    body["model"] = json!("broken");
    let response = post(&sim, "/v1/chat/completions", &body, &[]).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "4");
    assert_eq!(sim.stats().by_model["broken"], 1);
}

#[tokio::test]
async fn a_hang_never_answers() {
    let sim = sim().await;
    let result = Client::new()
        .post(format!("{}/chat/completions", sim.openai_base()))
        .header("x-sim-hang", "1")
        .timeout(Duration::from_millis(300))
        .json(&chat("x"))
        .send()
        .await;
    assert!(result.unwrap_err().is_timeout());
}
