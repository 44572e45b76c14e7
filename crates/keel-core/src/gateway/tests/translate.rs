//! OpenAI ↔ Anthropic translation of requests and responses.

use serde_json::{json, Value};

use super::{ANTHROPIC_REQUEST, ANTHROPIC_RESPONSE, OPENAI_REQUEST};
use crate::gateway::anthropic::{self as an, MessagesResponse};
use crate::gateway::from_anthropic::{finish_reason, usage};
use crate::gateway::openai::{ChatMessage, ChatRequest, MessageContent};
use crate::gateway::{to_chat_completion, to_messages_request, TranslateError};

fn request(value: Value) -> ChatRequest {
    serde_json::from_value(value).unwrap()
}

fn simple(messages: Value) -> ChatRequest {
    request(json!({"model": "route", "messages": messages}))
}

#[test]
fn a_full_request_translates_to_the_expected_anthropic_request() {
    let openai: ChatRequest = serde_json::from_str(OPENAI_REQUEST).unwrap();
    let translated = to_messages_request(&openai, "claude-sonnet-4-0", 1024).unwrap();
    let expected: Value = serde_json::from_str(ANTHROPIC_REQUEST).unwrap();
    assert_eq!(serde_json::to_value(&translated).unwrap(), expected);
}

#[test]
fn the_default_cap_applies_only_when_the_client_set_none() {
    let r = simple(json!([{"role": "user", "content": "hi"}]));
    assert_eq!(to_messages_request(&r, "m", 1024).unwrap().max_tokens, 1024);
    let mut r = r;
    r.max_tokens = Some(50);
    assert_eq!(to_messages_request(&r, "m", 1024).unwrap().max_tokens, 50);
    r.max_completion_tokens = Some(60);
    assert_eq!(to_messages_request(&r, "m", 1024).unwrap().max_tokens, 60);
}

#[test]
fn consecutive_turns_of_one_role_are_merged_and_no_system_means_none() {
    let r = simple(json!([
        {"role": "user", "content": "a"},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": "c"},
    ]));
    let out = to_messages_request(&r, "m", 10).unwrap();
    assert_eq!(out.system, None);
    assert_eq!(out.messages.len(), 2);
    assert_eq!(out.messages[0].content.len(), 2);
    assert_eq!(out.tools, None);
    assert_eq!(out.tool_choice, None);
}

#[test]
fn tool_choice_maps_to_anthropic_forms() {
    let cases = [
        (json!("auto"), json!({"type": "auto"})),
        (json!("required"), json!({"type": "any"})),
        (json!("none"), json!({"type": "none"})),
        (
            json!({"type": "function", "function": {"name": "f"}}),
            json!({"type": "tool", "name": "f"}),
        ),
    ];
    for (openai, anthropic) in cases {
        let mut r = simple(json!([{"role": "user", "content": "x"}]));
        r.tool_choice = Some(openai);
        let out = to_messages_request(&r, "m", 10).unwrap();
        assert_eq!(serde_json::to_value(out.tool_choice).unwrap(), anthropic);
    }
}

#[test]
fn untranslatable_requests_are_clear_errors() {
    let mut n = simple(json!([{"role": "user", "content": "x"}]));
    n.n = Some(2);
    assert_eq!(
        to_messages_request(&n, "m", 1),
        Err(TranslateError::Unsupported("n"))
    );

    let bad = [
        json!([{"role": "wizard", "content": "x"}]),
        json!([{"role": "tool", "content": "no id"}]),
        json!([{"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
            "function": {"name": "f", "arguments": "{not json"}}]}]),
        json!([{"role": "user", "content": [{"type": "image_url",
            "image_url": {"url": "data:image/png,raw"}}]}]),
        json!([{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]),
    ];
    for messages in bad {
        let r = simple(messages.clone());
        assert!(
            matches!(
                to_messages_request(&r, "m", 1),
                Err(TranslateError::Invalid(_))
            ),
            "{messages}"
        );
    }
    let mut r = simple(json!([{"role": "user", "content": "x"}]));
    r.tool_choice = Some(json!({"type": "function"}));
    assert!(to_messages_request(&r, "m", 1).is_err());
}

#[test]
fn empty_tool_arguments_become_an_empty_object() {
    let r = simple(
        json!([{"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
        "function": {"name": "now", "arguments": ""}}]}]),
    );
    let out = to_messages_request(&r, "m", 1).unwrap();
    assert_eq!(
        serde_json::to_value(&out.messages[0].content[0]).unwrap(),
        json!({"type": "tool_use", "id": "c", "name": "now", "input": {}})
    );
}

#[test]
fn a_response_translates_text_tool_calls_stop_reason_and_usage() {
    let response: MessagesResponse = serde_json::from_str(ANTHROPIC_RESPONSE).unwrap();
    let completion = to_chat_completion(&response, 1_700_000_000);
    let out = serde_json::to_value(&completion).unwrap();
    assert_eq!(
        out,
        json!({
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "claude-sonnet-4-0",
            "choices": [{
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": "Let me check both cities.",
                    "tool_calls": [{"id": "toolu_01A", "type": "function", "function":
                        {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"c\"}"}}]
                }
            }],
            "usage": {"prompt_tokens": 1010, "completion_tokens": 42, "total_tokens": 1052,
                "prompt_tokens_details": {"cached_tokens": 900}}
        })
    );
}

#[test]
fn a_tool_only_response_has_null_content_and_a_text_one_has_no_tool_calls() {
    let tool_only: MessagesResponse = serde_json::from_value(json!({
        "id": "msg", "type": "message", "role": "assistant", "model": "m",
        "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
        "stop_reason": "tool_use", "usage": {"input_tokens": 1, "output_tokens": 2}
    }))
    .unwrap();
    let message: &ChatMessage = &to_chat_completion(&tool_only, 0).choices[0].message;
    assert_eq!(message.content, None);
    assert_eq!(
        message.tool_calls.as_ref().unwrap()[0].function.arguments,
        "{}"
    );

    let empty: MessagesResponse = serde_json::from_value(json!({
        "id": "msg", "role": "assistant", "model": "m", "content": [],
        "stop_reason": "max_tokens", "usage": {"input_tokens": 1, "output_tokens": 0}
    }))
    .unwrap();
    let choice = &to_chat_completion(&empty, 0).choices[0];
    assert_eq!(
        choice.message.content,
        Some(MessageContent::Text(String::new()))
    );
    assert_eq!(choice.message.tool_calls, None);
    assert_eq!(choice.finish_reason.as_deref(), Some("length"));
}

#[test]
fn stop_reasons_map_to_finish_reasons() {
    let cases = [
        (Some("end_turn"), "stop"),
        (Some("stop_sequence"), "stop"),
        (Some("pause_turn"), "stop"),
        (Some("max_tokens"), "length"),
        (Some("model_context_window_exceeded"), "length"),
        (Some("tool_use"), "tool_calls"),
        (Some("refusal"), "content_filter"),
        (Some("something_new"), "stop"),
        (None, "stop"),
    ];
    for (stop, finish) in cases {
        assert_eq!(finish_reason(stop), finish, "{stop:?}");
    }
}

#[test]
fn usage_counts_cached_tokens_in_the_prompt() {
    let u = usage(&an::Usage {
        input_tokens: 10,
        output_tokens: 5,
        cache_creation_input_tokens: None,
        cache_read_input_tokens: None,
    });
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (10, 5, 15)
    );
    assert_eq!(u.prompt_tokens_details, None);
    assert_eq!(u.cached_tokens(), 0);
}
