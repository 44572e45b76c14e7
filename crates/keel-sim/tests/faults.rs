//! Injected faults, the Anthropic wire format and the stats endpoints.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keel_sim::{SimConfig, SimHandle, StatsSnapshot};
use reqwest::Client;
use serde_json::{json, Value};

async fn sim() -> SimHandle {
    keel_sim::spawn(SimConfig::default()).await.unwrap()
}

fn chat() -> Value {
    json!({"model": "sim-small", "messages": [{"role": "user", "content": "hello"}]})
}

fn messages(stream: bool) -> Value {
    json!({"model": "claude-sim", "max_tokens": 50, "stream": stream, "system": "be brief",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello world"}]}]})
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

#[tokio::test]
async fn error_statuses_come_in_each_providers_shape_with_retry_after() {
    let sim = sim().await;
    let date = "Wed, 21 Oct 2099 07:28:00 GMT";
    let r = post(
        &sim,
        "/v1/chat/completions",
        &chat(),
        &[("x-sim-status", "429"), ("x-sim-retry-after", date)],
    )
    .await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], date);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");

    let r = post(
        &sim,
        "/v1/messages",
        &messages(false),
        &[("x-sim-status", "529")],
    )
    .await;
    assert_eq!(r.status(), 529);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "overloaded_error");

    let r = post(
        &sim,
        "/v1/chat/completions",
        &chat(),
        &[("x-sim-status", "500")],
    )
    .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "server_error");
}

#[tokio::test]
async fn n_failures_then_success_per_key() {
    let sim = sim().await;
    let headers = [
        ("x-sim-fail-times", "2"),
        ("x-sim-key", "abc"),
        ("x-sim-fail-status", "503"),
    ];
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            post(&sim, "/v1/chat/completions", &chat(), &headers)
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [503, 503, 200]);
    // Another key has its own sequence.
    let other = [("x-sim-fail-times", "1"), ("x-sim-key", "xyz")];
    assert_eq!(
        post(&sim, "/v1/chat/completions", &chat(), &other)
            .await
            .status(),
        500
    );
    let stats = sim.stats();
    assert_eq!(
        (stats.by_key["abc"], stats.by_key["xyz"], stats.total),
        (3, 1, 4)
    );

    // Over HTTP too, and reset forgets the sequence.
    let url = format!("{}/_sim/stats", sim.base_url());
    let over_http: StatsSnapshot = Client::new()
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http, stats);
    Client::new()
        .post(format!("{}/_sim/reset", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(sim.stats().total, 0);
    assert_eq!(
        post(&sim, "/v1/chat/completions", &chat(), &headers)
            .await
            .status(),
        503
    );
}

#[tokio::test]
async fn the_last_request_of_a_key_is_kept_without_credentials() {
    let sim = sim().await;
    post(
        &sim,
        "/v1/messages",
        &messages(false),
        &[("x-sim-key", "k1")],
    )
    .await;
    let last = sim.last_request("k1").unwrap();
    assert_eq!(last["path"], "/v1/messages");
    assert_eq!(last["body"]["system"], "be brief");
    assert_eq!(last["headers"]["anthropic-version"], "2023-06-01");
    assert!(last["headers"].get("x-api-key").is_none());
    let url = format!("{}/_sim/requests/k1", sim.base_url());
    let over_http: Value = Client::new()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http, last);
}

#[tokio::test]
async fn anthropic_needs_its_headers_and_max_tokens() {
    let sim = sim().await;
    let url = format!("{}/v1/messages", sim.base_url());
    let client = Client::new();
    let no_key = client
        .post(&url)
        .header("anthropic-version", "2023-06-01")
        .json(&messages(false))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);
    let body: Value = no_key.json().await.unwrap();
    assert_eq!(body["error"]["type"], "authentication_error");
    let no_version = client
        .post(&url)
        .header("x-api-key", "k")
        .json(&messages(false))
        .send()
        .await
        .unwrap();
    assert_eq!(no_version.status(), 400);
    let mut no_max = messages(false);
    no_max.as_object_mut().unwrap().remove("max_tokens");
    assert_eq!(post(&sim, "/v1/messages", &no_max, &[]).await.status(), 400);
}

#[tokio::test]
async fn anthropic_answers_with_its_message_shape() {
    let sim = sim().await;
    let out: Value = post(
        &sim,
        "/v1/messages",
        &messages(false),
        &[("x-sim-reply-tokens", "5")],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(out["type"], "message");
    assert_eq!(
        out["content"],
        json!([{"type": "text", "text": "sim reply to hello world"}])
    );
    assert_eq!(out["stop_reason"], "end_turn");
    assert_eq!(out["usage"]["input_tokens"], 4);
    assert_eq!(out["usage"]["output_tokens"], 5);
}

#[tokio::test]
async fn anthropic_streams_the_real_event_sequence() {
    let sim = sim().await;
    let text = post(
        &sim,
        "/v1/messages",
        &messages(true),
        &[("x-sim-reply-tokens", "3")],
    )
    .await
    .text()
    .await
    .unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let datas: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(datas[0]["message"]["usage"]["input_tokens"], 4);
    assert_eq!(
        datas[3]["delta"],
        json!({"type": "text_delta", "text": "sim"})
    );
    assert_eq!(datas[7]["delta"]["stop_reason"], "end_turn");
    assert_eq!(datas[7]["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn anthropic_streams_tool_use_as_input_json_deltas() {
    let sim = sim().await;
    let mut body = messages(true);
    body["tools"] = json!([{"name": "lookup", "input_schema": {"type": "object",
        "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}}}}]);
    body["tool_choice"] = json!({"type": "any"});
    let text = post(&sim, "/v1/messages", &body, &[])
        .await
        .text()
        .await
        .unwrap();
    let datas: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(datas[1]["content_block"]["type"], "tool_use");
    assert_eq!(datas[1]["content_block"]["name"], "lookup");
    let json: String = datas
        .iter()
        .filter_map(|d| d["delta"]["partial_json"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&json).unwrap(),
        json!({"query": "sim", "limit": 1})
    );
    let delta = datas.iter().find(|d| d["type"] == "message_delta").unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
}

#[tokio::test]
async fn a_stream_is_cut_after_n_events() {
    let sim = sim().await;
    let mut body = chat();
    body["stream"] = json!(true);
    let response = post(
        &sim,
        "/v1/chat/completions",
        &body,
        &[("x-sim-disconnect-after", "2")],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.is_err());
    assert_eq!(sim.stats().streams_cut, 1);

    let response = post(
        &sim,
        "/v1/chat/completions",
        &chat(),
        &[("x-sim-disconnect-after", "0")],
    )
    .await;
    assert!(response.text().await.is_err());
}

#[tokio::test]
async fn malformed_chunks_garbage_and_stream_errors_are_sent_on_demand() {
    let sim = sim().await;
    let mut body = chat();
    body["stream"] = json!(true);
    let text = post(
        &sim,
        "/v1/chat/completions",
        &body,
        &[("x-sim-malformed-after", "1")],
    )
    .await
    .text()
    .await
    .unwrap();
    let datas: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert!(serde_json::from_str::<Value>(datas[1]).is_err());
    assert_eq!(*datas.last().unwrap(), "[DONE]");

    let garbage = post(
        &sim,
        "/v1/chat/completions",
        &chat(),
        &[("x-sim-garbage", "1")],
    )
    .await;
    assert_eq!(garbage.status(), 200);
    assert!(garbage.json::<Value>().await.is_err());

    let text = post(
        &sim,
        "/v1/messages",
        &messages(true),
        &[("x-sim-stream-error-after", "2")],
    )
    .await
    .text()
    .await
    .unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names, ["message_start", "content_block_start", "error"]);
}
