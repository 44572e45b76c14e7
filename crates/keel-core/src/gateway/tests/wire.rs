//! The wire types keep what they do not name and accept what real servers send.

use serde_json::{json, Value};

use super::OPENAI_REQUEST;
use crate::gateway::openai::{ChatChunk, ChatCompletion, ChatRequest, MessageContent};

#[test]
fn a_request_round_trips_without_losing_unknown_fields() {
    let original: Value = serde_json::from_str(OPENAI_REQUEST).unwrap();
    let request: ChatRequest = serde_json::from_value(original.clone()).unwrap();
    assert_eq!(request.extra.get("seed"), Some(&json!(7)));
    assert_eq!(request.requested_max_tokens(), Some(300));
    assert!(request.is_stream());
    // The one difference: an explicit `"content": null` is left out.
    let mut expected = original;
    expected["messages"][3]
        .as_object_mut()
        .unwrap()
        .remove("content");
    assert_eq!(serde_json::to_value(&request).unwrap(), expected);
}

#[test]
fn message_content_is_a_string_or_parts() {
    let request: ChatRequest = serde_json::from_str(OPENAI_REQUEST).unwrap();
    assert!(matches!(
        request.messages[0].content,
        Some(MessageContent::Text(_))
    ));
    assert_eq!(request.messages[1].text_content(), "Answer in English.");
    assert_eq!(request.messages[3].content, None);
    assert_eq!(request.messages[3].tool_calls.as_ref().unwrap().len(), 2);
}

#[test]
fn a_negative_max_tokens_is_rejected_by_the_type() {
    let bad = json!({"model": "m", "messages": [], "max_tokens": -1});
    assert!(serde_json::from_value::<ChatRequest>(bad).is_err());
}

#[test]
fn a_completion_keeps_fingerprint_and_logprobs() {
    let body = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4.1",
        "system_fingerprint": "fp_1",
        "choices": [{"index": 0, "logprobs": null, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "hi", "refusal": null}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4,
            "prompt_tokens_details": {"cached_tokens": 2, "audio_tokens": 0}}
    });
    let completion: ChatCompletion = serde_json::from_value(body).unwrap();
    assert_eq!(
        completion.extra.get("system_fingerprint"),
        Some(&json!("fp_1"))
    );
    assert!(completion.choices[0].extra.contains_key("logprobs"));
    assert!(completion.choices[0].message.extra.contains_key("refusal"));
    assert_eq!(completion.usage.unwrap().cached_tokens(), 2);
}

#[test]
fn chunks_accept_null_or_missing_choices_and_usage_on_a_content_chunk() {
    let usage_only = json!({"id": "c", "object": "chat.completion.chunk", "created": 1,
        "model": "m", "choices": null,
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}});
    let chunk: ChatChunk = serde_json::from_value(usage_only).unwrap();
    assert!(chunk.choices.is_empty());
    assert_eq!(chunk.usage.unwrap().total_tokens, 7);

    let missing = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"});
    assert!(serde_json::from_value::<ChatChunk>(missing)
        .unwrap()
        .choices
        .is_empty());

    // Some servers put the usage on the last content chunk instead of a separate one.
    let combined = json!({"id": "c", "object": "chat.completion.chunk", "created": 1,
        "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}});
    let chunk: ChatChunk = serde_json::from_value(combined).unwrap();
    assert_eq!(chunk.choices[0].finish_reason.as_deref(), Some("stop"));
    assert_eq!(chunk.usage.unwrap().completion_tokens, 2);
}

#[test]
fn a_tool_call_delta_serializes_like_openai() {
    let chunk: ChatChunk = serde_json::from_value(json!({
        "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "finish_reason": null, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": "{\"a\""}}]}}]
    }))
    .unwrap();
    let out = serde_json::to_value(&chunk).unwrap();
    assert_eq!(
        out["choices"][0]["delta"],
        json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\""}}]})
    );
}
