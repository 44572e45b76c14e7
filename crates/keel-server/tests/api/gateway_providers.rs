//! Provider adapters against keel-sim: both wire formats, streamed and not, with exact usage.

use keel_core::gateway::openai::{ChatMessage, FunctionDef, MessageContent, Tool};
use keel_core::manifest::{Deployment, ProviderKind};
use keel_server::gateway::providers::{
    build, BuildError, ClientSettings, KeyError, ProviderConfig, UpstreamClient, UpstreamErrorKind,
};
use serde_json::json;

use crate::gateway_sim::{ask, drain, provider, request, sim, text, within, KINDS};

fn content(message: &ChatMessage) -> String {
    match &message.content {
        Some(MessageContent::Text(t)) => t.clone(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn every_adapter_answers_non_streamed_with_the_upstream_usage() {
    let sim = sim(&[]).await;
    for kind in KINDS {
        let p = provider(kind, &sim, "sim-small");
        let completion = p
            .chat(&ask("what is the capital of France"), within(5000))
            .await
            .unwrap();
        assert_eq!(completion.object, "chat.completion", "{kind:?}");
        let choice = &completion.choices[0];
        assert_eq!(
            content(&choice.message),
            "sim reply to what is the capital more more more more more more more more more"
        );
        assert_eq!(choice.finish_reason.as_deref(), Some("stop"));
        // "be brief" + six words in; sixteen words out: the sim's one-token-per-word rule.
        let usage = completion.usage.unwrap();
        let counts = (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens,
        );
        assert_eq!(counts, (8, 16, 24), "{kind:?}");
        assert_eq!(usage.cached_tokens(), 0);
    }
    assert_eq!(sim.stats().by_model["sim-small"], 3);
}

#[tokio::test]
async fn streamed_and_non_streamed_calls_report_the_same_usage_for_every_adapter() {
    let sim = sim(&[]).await;
    for kind in KINDS {
        let p = provider(kind, &sim, "sim-small");
        let mut req = ask("count my tokens please");
        req.max_completion_tokens = Some(9);
        let whole = p.chat(&req, within(5000)).await.unwrap();
        let (chunks, error) = drain(p.chat_stream(&req, within(5000)).await.unwrap()).await;
        assert_eq!(error, None, "{kind:?}");
        assert_eq!(
            text(&chunks),
            content(&whole.choices[0].message),
            "{kind:?}"
        );
        let finish: Vec<_> = chunks
            .iter()
            .flat_map(|c| c.choices.iter())
            .filter_map(|c| c.finish_reason.clone())
            .collect();
        assert_eq!(finish, ["length"], "{kind:?}");
        // The client did not ask for usage; the adapter always does, for metering.
        let usage: Vec<_> = chunks.iter().filter_map(|c| c.usage).collect();
        assert_eq!(usage, [whole.usage.unwrap()], "{kind:?}");
        assert_eq!(whole.usage.unwrap().completion_tokens, 9);
    }
    assert_eq!(sim.stats().streams_completed, 3);
}

#[tokio::test]
async fn openai_requests_carry_the_deployment_model_and_force_usage() {
    let sim = sim(&[]).await;
    let p = provider(ProviderKind::OpenAi, &sim, "gpt-sim");
    drain(p.chat_stream(&ask("hi"), within(5000)).await.unwrap()).await;
    let sent = sim.last_request("gpt-sim").unwrap();
    assert_eq!(sent["body"]["model"], "gpt-sim");
    assert_eq!(sent["body"]["stream"], true);
    assert_eq!(
        sent["body"]["stream_options"],
        json!({"include_usage": true})
    );

    let mut req = ask("hi");
    req.stream_options = Some(Default::default());
    req.max_completion_tokens = Some(5);
    p.chat(&req, within(5000)).await.unwrap();
    let sent = sim.last_request("gpt-sim").unwrap();
    assert!(sent["body"].get("stream").is_none() && sent["body"].get("stream_options").is_none());
    assert_eq!(sent["body"]["max_completion_tokens"], 5);
}

#[tokio::test]
async fn openai_compatible_works_without_a_key_and_sends_max_tokens() {
    let sim = keel_sim::spawn(keel_sim::SimConfig {
        record_by_model: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let client = UpstreamClient::new(ClientSettings::default()).unwrap();
    let config = ProviderConfig {
        kind: ProviderKind::OpenAiCompatible,
        model: "llama-sim".into(),
        base_url: Some(sim.openai_base()),
        api_key: None,
        default_max_tokens: 100,
    };
    let p = build(config, &client).unwrap();
    let mut req = ask("hi");
    req.max_completion_tokens = Some(4);
    let out = p.chat(&req, within(5000)).await.unwrap();
    assert_eq!(out.usage.unwrap().completion_tokens, 4);
    let sent = sim.last_request("llama-sim").unwrap();
    assert_eq!(sent["body"]["max_tokens"], 4);
    assert!(sent["body"].get("max_completion_tokens").is_none());
    assert!(sent["headers"].get("authorization").is_none());
}

#[tokio::test]
async fn anthropic_gets_a_translated_request_with_its_headers() {
    let sim = sim(&[]).await;
    let p = provider(ProviderKind::Anthropic, &sim, "claude-sim");
    let mut req = request(vec![
        ChatMessage::text("system", "be brief"),
        ChatMessage::text("developer", "and kind"),
        ChatMessage::text("user", "hello"),
    ]);
    req.user = Some("usr_1".into());
    p.chat(&req, within(5000)).await.unwrap();
    let sent = sim.last_request("claude-sim").unwrap();
    assert_eq!(sent["path"], "/v1/messages");
    assert_eq!(sent["headers"]["anthropic-version"], "2023-06-01");
    let body = &sent["body"];
    assert_eq!(body["model"], "claude-sim");
    assert_eq!(body["system"], "be brief\n\nand kind");
    assert_eq!(body["max_tokens"], 1024);
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "hello"}]}])
    );
    assert_eq!(body["metadata"], json!({"user_id": "usr_1"}));
}

fn weather_tool() -> Tool {
    Tool {
        kind: "function".into(),
        function: FunctionDef {
            name: "get_weather".into(),
            description: Some("Weather by city".into()),
            parameters: Some(json!({"type": "object", "properties": {"city": {"type": "string"}}})),
            extra: Default::default(),
        },
    }
}

#[tokio::test]
async fn tool_calls_come_back_as_openai_tool_calls_from_every_adapter() {
    let sim = sim(&[]).await;
    for kind in KINDS {
        let p = provider(kind, &sim, "sim-small");
        let mut req = ask("use the weather tool");
        req.tools = Some(vec![weather_tool()]);
        let out = p.chat(&req, within(5000)).await.unwrap();
        let choice = &out.choices[0];
        assert_eq!(
            choice.finish_reason.as_deref(),
            Some("tool_calls"),
            "{kind:?}"
        );
        let call = &choice.message.tool_calls.as_ref().unwrap()[0];
        assert_eq!(call.function.name, "get_weather");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&call.function.arguments).unwrap(),
            json!({"city": "sim"})
        );

        let (chunks, error) = drain(p.chat_stream(&req, within(5000)).await.unwrap()).await;
        assert_eq!(error, None);
        let deltas: Vec<_> = chunks
            .iter()
            .flat_map(|c| c.choices.iter())
            .flat_map(|c| c.delta.tool_calls.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            deltas[0].function.as_ref().unwrap().name.as_deref(),
            Some("get_weather")
        );
        let arguments: String = deltas
            .iter()
            .filter_map(|d| d.function.as_ref()?.arguments.clone())
            .collect();
        assert_eq!(
            arguments,
            call.function.arguments.replace(' ', ""),
            "{kind:?}"
        );
        let usage = chunks.iter().find_map(|c| c.usage).unwrap();
        assert_eq!(Some(usage), out.usage, "{kind:?}");
    }
}

#[tokio::test]
async fn an_anthropic_tool_round_trip_translates_results_back() {
    let sim = sim(&[]).await;
    let p = provider(ProviderKind::Anthropic, &sim, "claude-sim");
    let mut req = ask("use the weather tool");
    req.tools = Some(vec![weather_tool()]);
    let first = p.chat(&req, within(5000)).await.unwrap();
    let call = first.choices[0]
        .message
        .tool_calls
        .clone()
        .unwrap()
        .remove(0);
    req.messages.push(first.choices[0].message.clone());
    req.messages.push(ChatMessage {
        tool_call_id: Some(call.id.clone()),
        ..ChatMessage::text("tool", "18C and sunny")
    });
    let second = p.chat(&req, within(5000)).await.unwrap();
    assert_eq!(second.choices[0].finish_reason.as_deref(), Some("stop"));
    let sent = sim.last_request("claude-sim").unwrap();
    let messages = sent["body"]["messages"].as_array().unwrap();
    assert_eq!(messages[1]["content"][0]["type"], "tool_use");
    assert_eq!(
        messages[2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": call.id, "content": "18C and sunny"})
    );
}

#[tokio::test]
async fn a_request_anthropic_cannot_express_is_rejected_before_any_call() {
    let sim = sim(&[]).await;
    let p = provider(ProviderKind::Anthropic, &sim, "claude-sim");
    let mut req = ask("hi");
    req.n = Some(3);
    let error = p.chat(&req, within(5000)).await.unwrap_err();
    assert_eq!(error.kind, UpstreamErrorKind::Rejected);
    assert_eq!(sim.stats().total, 0);
}

#[test]
fn deployments_resolve_keys_through_env_and_fail_clearly() {
    let deployment = |provider, base: Option<&str>, env: Option<&str>| Deployment {
        provider,
        model: "m".into(),
        weight: 1,
        base_url: base.map(str::to_owned),
        api_key_env: env.map(str::to_owned),
        pricing: None,
    };
    let env = |name: &str| (name == "SET").then(|| "sk-secret-value".to_owned());
    let config =
        ProviderConfig::from_deployment(&deployment(ProviderKind::OpenAi, None, Some("SET")), &env)
            .unwrap();
    assert!(!format!("{config:?}").contains("sk-secret-value"));
    let built = build(
        config,
        &UpstreamClient::new(ClientSettings::default()).unwrap(),
    )
    .unwrap();
    assert!(!format!("{built:?}").contains("sk-secret-value"));

    let missing = ProviderConfig::from_deployment(
        &deployment(ProviderKind::OpenAi, None, Some("UNSET")),
        &env,
    );
    match missing {
        Err(BuildError::Key {
            source: KeyError::Missing(name),
            ..
        }) => assert_eq!(name, "UNSET"),
        other => panic!("{other:?}"),
    }
    let client = UpstreamClient::new(ClientSettings::default()).unwrap();
    let no_key =
        ProviderConfig::from_deployment(&deployment(ProviderKind::Anthropic, None, None), &env)
            .unwrap();
    assert!(matches!(
        build(no_key, &client),
        Err(BuildError::NoKey { .. })
    ));
    let no_base = ProviderConfig::from_deployment(
        &deployment(ProviderKind::OpenAiCompatible, None, None),
        &env,
    )
    .unwrap();
    assert!(matches!(
        build(no_base, &client),
        Err(BuildError::NoBaseUrl { .. })
    ));
}
