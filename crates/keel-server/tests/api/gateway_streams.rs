//! Streams that end early: cut by the budget, abandoned by the client, cut by the upstream.
//! Each is billed for what it produced, exactly once.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

use crate::gateway_fixture::{ask, gateway, sse_events, stream_cost};

fn streamed(model: &str, max_tokens: u32) -> Value {
    let mut body = ask(model, "write a long story");
    body["stream"] = json!(true);
    body["max_tokens"] = json!(max_tokens);
    body
}

#[tokio::test]
async fn a_stream_reaching_its_budget_ends_with_budget_exceeded_and_bills_what_was_sent() {
    let gw = gateway().await;
    // 300 µ a day; the reply would be 200 tokens at 2 µ each.
    let (access, _) = gw.user_on(Some("tight")).await;
    let res = gw.chat(&access, streamed("long", 1000)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["x-keel-cost-micros"],
        "300",
        "the budget it may spend"
    );
    let (data, comments) = sse_events(&res.text().await.unwrap());
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "budget_exceeded", "{last}");
    assert!(!data.iter().any(|d| d == "[DONE]"));
    let words = data
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter(|c| c["choices"][0]["delta"]["content"].is_string())
        .count();
    assert!(words > 50 && words < 200, "{words} chunks sent");
    let cost = stream_cost(&comments);
    let usage = gw.usage(&access).await;
    assert_eq!(usage["cost"], (cost, 1));
    assert!(cost > 250 && cost <= 300, "{cost}");
    // The budget is spent: the next call is refused at admission.
    let mut next = ask("long", "hi");
    next["max_tokens"] = json!(10);
    let next = gw.chat(&access, next).await;
    assert_eq!(next.status(), 429);
    assert_eq!(gw.sim.stats().total, 1);
}

#[tokio::test]
async fn a_client_leaving_mid_stream_is_billed_and_the_upstream_is_cancelled() {
    let gw = gateway().await;
    let (access, _) = gw.user_on(None).await;
    let res = gw.chat(&access, streamed("slow", 1000)).await;
    assert_eq!(res.status(), 200);
    let mut body = res.bytes_stream();
    let mut seen = String::new();
    while seen.matches("data: ").count() < 5 {
        let piece = body.next().await.unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&piece));
    }
    drop(body);
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.sim.stats().streams_cancelled < 1 {
        assert!(
            Instant::now() < deadline,
            "the upstream stream was never cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let usage = gw.usage_once_settled(&access, "cost").await;
    let (tokens, entries) = usage["tokens"];
    assert_eq!(entries, 1);
    // Some words were produced, far fewer than the 400 the reply would have had.
    assert!(tokens > 4 && tokens < 400, "{tokens}");
    assert!(usage["cost"].0 > 0);
    assert_eq!(gw.sim.stats().streams_completed, 0);
}

#[tokio::test]
async fn an_upstream_cutting_a_stream_ends_it_with_an_error_and_bills_what_was_sent() {
    let gw = gateway().await;
    let (access, _) = gw.user_on(None).await;
    let res = gw.chat(&access, streamed("cut", 100)).await;
    assert_eq!(res.status(), 200);
    let (data, comments) = sse_events(&res.text().await.unwrap());
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_stream_cut", "{last}");
    let cost = stream_cost(&comments);
    assert!(cost > 0, "the words sent are billed");
    let usage = gw.usage(&access).await;
    assert_eq!(usage["cost"], (cost, 1));
    assert_eq!(usage["requests"], (1, 1));
}

#[tokio::test]
async fn a_client_leaving_before_the_answer_releases_the_holds() {
    let gw = gateway().await;
    // 300 µ a day; a call capped at 130 tokens holds up to 18 + 260 = 278 µ.
    let (access, _) = gw.user_on(Some("tight")).await;
    let capped = |model: &str| {
        let mut body = ask(model, "hi");
        body["max_tokens"] = json!(130);
        body
    };
    let gone = gw
        .app
        .client
        .post(gw.app.url("/v1/chat/completions"))
        .bearer_auth(&access)
        .timeout(Duration::from_millis(300))
        .json(&capped("lag"))
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up");
    // Once the abandoned call is settled its hold is released and the budget fits again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = gw.chat(&access, capped("chat-openai")).await;
        if res.status() == 200 {
            break;
        }
        assert_eq!(res.status(), 429);
        assert!(Instant::now() < deadline, "the hold was never released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let usage = gw.usage(&access).await;
    assert_eq!(usage["cost"].1, 1, "only the answered call is billed");
}

#[tokio::test]
async fn a_malformed_chunk_mid_stream_ends_it_with_an_error_and_bills_what_was_sent() {
    let gw = gateway().await;
    let (access, _) = gw.user_on(None).await;
    let res = gw.chat(&access, streamed("malformed", 100)).await;
    assert_eq!(res.status(), 200);
    let (data, comments) = sse_events(&res.text().await.unwrap());
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_invalid_response", "{last}");
    let cost = stream_cost(&comments);
    assert!(cost > 0);
    assert_eq!(gw.usage(&access).await["cost"], (cost, 1));
    // Non-streamed, the same upstream cut halfway through its body is a 502, billed nothing.
    let (other, _) = gw.user_on(None).await;
    let res = gw.chat(&other, ask("cut", "hi")).await;
    assert_eq!(res.status(), 502);
    assert!(gw.usage(&other).await.is_empty());
}
