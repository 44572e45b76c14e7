//! The in-process simulator (`provider = "sim"` without `base_url`): keel-sim's replies
//! with no network, its faults as upstream errors, and the engine over it.

use std::sync::Arc;
use std::time::Duration;

use keel_core::gateway::openai::{ChatMessage, FunctionDef, MessageContent, Tool};
use keel_core::gateway::Policy;
use keel_core::manifest::ProviderKind;
use keel_server::gateway::providers::{
    build, ClientSettings, InProcessSim, Provider, ProviderConfig, UpstreamClient,
    UpstreamErrorKind,
};
use keel_server::gateway::resilience::{Engine, Target};
use keel_sim::{ModelMode, SimConfig};
use serde_json::json;

use crate::gateway_sim::{ask, drain, request, text, within};

/// The provider `build` makes for a `sim` deployment with no base URL.
fn built(model: &str) -> Arc<dyn Provider> {
    let config = ProviderConfig {
        kind: ProviderKind::Sim,
        model: model.to_owned(),
        base_url: None,
        api_key: None,
        default_max_tokens: 1024,
    };
    let client = UpstreamClient::new(ClientSettings::default()).unwrap();
    build(config, &client).unwrap()
}

/// An in-process sim whose `model` runs in `mode` (`NAME=VALUE,...`).
fn faulty(model: &str, mode: &str) -> Arc<dyn Provider> {
    let mode: ModelMode = format!("{model}:{mode}").parse().unwrap();
    let config = SimConfig {
        model_modes: [(mode.model, mode.faults)].into_iter().collect(),
        ..SimConfig::default()
    };
    Arc::new(InProcessSim::with_config(model, config))
}

#[tokio::test]
async fn a_sim_deployment_without_base_url_answers_in_process_with_word_usage() {
    let p = built("sim-small");
    assert_eq!((p.kind(), p.model()), (ProviderKind::Sim, "sim-small"));
    let out = p
        .chat(&ask("what is the capital of France"), within(5000))
        .await
        .unwrap();
    assert_eq!(out.model, "sim-small");
    let choice = &out.choices[0];
    let Some(MessageContent::Text(content)) = &choice.message.content else {
        panic!("{choice:?}")
    };
    assert!(content.starts_with("sim reply to what is the capital more"));
    assert_eq!(content.split_whitespace().count(), 16);
    assert_eq!(choice.finish_reason.as_deref(), Some("stop"));
    let usage = out.usage.unwrap();
    // "be brief" + "what is the capital of France": one token per word.
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (8, 16));
    assert_eq!(usage.total_tokens, 24);
}

#[tokio::test]
async fn its_stream_says_the_same_words_and_ends_with_the_same_usage() {
    let p = built("sim-small");
    let question = ask("stream me something");
    let whole = p.chat(&question, within(5000)).await.unwrap();
    let (chunks, error) = drain(p.chat_stream(&question, within(5000)).await.unwrap()).await;
    assert_eq!(error, None);
    let Some(MessageContent::Text(content)) = &whole.choices[0].message.content else {
        panic!()
    };
    assert_eq!(&text(&chunks), content);
    // Usage is always asked for, so the last chunk carries it.
    assert_eq!(chunks.last().unwrap().usage, whole.usage);
    assert_eq!(
        chunks[0].choices[0].delta.role.as_deref(),
        Some("assistant")
    );
}

#[tokio::test]
async fn max_tokens_caps_the_reply() {
    let p = built("sim-small");
    let mut req = ask("hello");
    req.max_completion_tokens = Some(3);
    let out = p.chat(&req, within(5000)).await.unwrap();
    assert_eq!(out.choices[0].finish_reason.as_deref(), Some("length"));
    assert_eq!(out.usage.unwrap().completion_tokens, 3);
}

#[tokio::test]
async fn it_calls_tools_streamed_and_not() {
    let p = built("sim-small");
    let mut req = ask("use the weather tool");
    req.tools = Some(vec![Tool {
        kind: "function".into(),
        function: FunctionDef {
            name: "get_weather".into(),
            description: None,
            parameters: Some(json!({"type": "object", "properties": {"city": {"type": "string"}}})),
            extra: Default::default(),
        },
    }]);
    let out = p.chat(&req, within(5000)).await.unwrap();
    assert_eq!(out.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    let call = &out.choices[0].message.tool_calls.as_ref().unwrap()[0];
    assert_eq!(call.function.name, "get_weather");
    assert_eq!(call.function.arguments, r#"{"city":"sim"}"#);

    let (chunks, error) = drain(p.chat_stream(&req, within(5000)).await.unwrap()).await;
    assert_eq!(error, None);
    let arguments: String = chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .flat_map(|c| c.delta.tool_calls.clone().unwrap_or_default())
        .filter_map(|d| d.function?.arguments)
        .collect();
    assert_eq!(arguments, call.function.arguments);
    assert_eq!(chunks.last().unwrap().usage, out.usage);
}

#[tokio::test]
async fn a_request_it_cannot_answer_is_rejected() {
    let p = built("sim-small");
    let e = p
        .chat(&request(Vec::<ChatMessage>::new()), within(5000))
        .await
        .unwrap_err();
    assert_eq!((e.kind, e.status), (UpstreamErrorKind::Rejected, Some(400)));
    assert!(!e.may_fall_back());
}

#[tokio::test]
async fn model_modes_become_upstream_errors() {
    let limited = faulty("m", "status=429,retry-after=2");
    let e = limited.chat(&ask("hi"), within(5000)).await.unwrap_err();
    assert_eq!(e.kind, UpstreamErrorKind::RateLimited);
    assert_eq!(e.retry_after, Some(Duration::from_secs(2)));

    let cut = faulty("m", "disconnect-after=4");
    let (chunks, error) = drain(cut.chat_stream(&ask("hi"), within(5000)).await.unwrap()).await;
    assert_eq!(chunks.len(), 4);
    let error = error.unwrap();
    assert_eq!(error.kind, UpstreamErrorKind::StreamCut);
    assert!(error.output_produced);

    let broken = faulty("m", "stream-error-after=2");
    let (_, error) = drain(broken.chat_stream(&ask("hi"), within(5000)).await.unwrap()).await;
    assert_eq!(error.unwrap().kind, UpstreamErrorKind::Unavailable);
}

#[tokio::test]
async fn a_hang_times_out_per_attempt_then_falls_back_to_the_next_deployment() {
    let targets = [
        Target::new("r/0", faulty("m", "hang=1")),
        Target::new("r/1", built("sim-small")),
    ];
    let policy = Policy {
        attempts: 2,
        attempt_timeout: Duration::from_millis(200),
        ..Policy::default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (_, trace) = Engine::default()
        .chat(&targets, &ask("hi"), &policy, deadline)
        .await
        .unwrap();
    assert_eq!(trace.served_by.as_deref(), Some("r/1"));
    assert_eq!((trace.retries, trace.fallbacks), (1, 1));
    assert_eq!(trace.attempts.len(), 3);
    for attempt in &trace.attempts[..2] {
        assert_eq!(attempt.deployment, "r/0");
        assert_eq!(
            attempt.error.as_ref().unwrap().kind,
            UpstreamErrorKind::Timeout
        );
        assert!(attempt.elapsed >= Duration::from_millis(200));
    }
}

#[tokio::test]
async fn a_stalled_stream_ends_at_the_idle_timeout_without_retry() {
    let targets = [
        Target::new("r/0", faulty("m", "stall-after=3")),
        Target::new("r/1", built("sim-small")),
    ];
    let policy = Policy {
        idle_timeout: Duration::from_millis(200),
        ..Policy::default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (stream, trace) = Engine::default()
        .chat_stream(&targets, &ask("hi"), &policy, deadline)
        .await
        .unwrap();
    assert_eq!(trace.served_by.as_deref(), Some("r/0"));
    let (chunks, error) = drain(stream).await;
    // The role chunk and two words, then silence.
    assert_eq!(text(&chunks), "sim reply");
    let error = error.unwrap();
    assert_eq!(error.kind, UpstreamErrorKind::Timeout);
    assert!(error.output_produced && !error.is_retryable());
}
