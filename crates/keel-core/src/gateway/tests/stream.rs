//! Anthropic stream events → OpenAI chunks.

use serde_json::json;

use super::ANTHROPIC_STREAM;
use crate::gateway::anthropic::StreamEvent;
use crate::gateway::openai::ChatChunk;
use crate::gateway::{AnthropicToOpenAi, SseDecoder, StreamError};

fn events(text: &str) -> Vec<StreamEvent> {
    let mut decoder = SseDecoder::default();
    let sse = decoder.push(text.as_bytes()).unwrap();
    sse.into_iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect()
}

fn translate(include_usage: bool) -> (Vec<ChatChunk>, AnthropicToOpenAi) {
    let mut translator = AnthropicToOpenAi::new(1_700_000_000, include_usage);
    let mut chunks = Vec::new();
    for event in events(ANTHROPIC_STREAM) {
        chunks.extend(translator.on_event(event).unwrap());
    }
    (chunks, translator)
}

#[test]
fn the_fixture_stream_becomes_openai_chunks_with_text_tool_call_and_usage() {
    let (chunks, translator) = translate(true);
    assert!(translator.is_done());
    assert!(chunks.iter().all(|c| c.id == "msg_014p7gG3wDgGV9EUtLvnow3U"
        && c.model == "claude-sonnet-4-0"
        && c.object == "chat.completion.chunk"
        && c.created == 1_700_000_000));

    let first = &chunks[0].choices[0].delta;
    assert_eq!(
        (first.role.as_deref(), first.content.as_deref()),
        (Some("assistant"), Some(""))
    );

    let text: String = chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .filter_map(|c| c.delta.content.clone())
        .collect();
    assert_eq!(text, "Okay, let's check the weather été.");

    let calls: Vec<_> = chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .flat_map(|c| c.delta.tool_calls.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        calls[0].id.as_deref(),
        Some("toolu_01T1x1fJ34qAmk2tNTrN7Up6")
    );
    assert_eq!(calls[0].kind.as_deref(), Some("function"));
    assert!(calls.iter().all(|c| c.index == 0));
    let arguments: String = calls
        .iter()
        .filter_map(|c| c.function.as_ref()?.arguments.clone())
        .collect();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&arguments).unwrap(),
        json!({"location": "San Francisco, CA"})
    );

    let finish: Vec<_> = chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .filter_map(|c| c.finish_reason.clone())
        .collect();
    assert_eq!(finish, ["tool_calls"]);

    // Output tokens are the cumulative figure of message_delta (89), not 2 + 89.
    let last = chunks.last().unwrap();
    assert!(last.choices.is_empty());
    let usage = last.usage.unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (500, 89, 589)
    );
    assert_eq!(usage.cached_tokens(), 28);
    assert_eq!(translator.usage(), usage);
    assert_eq!(chunks.iter().filter(|c| c.usage.is_some()).count(), 1);
}

#[test]
fn without_include_usage_there_is_no_usage_chunk_but_usage_is_known() {
    let (chunks, translator) = translate(false);
    assert!(chunks
        .iter()
        .all(|c| c.usage.is_none() && !c.choices.is_empty()));
    assert_eq!(translator.usage().completion_tokens, 89);
}

#[test]
fn usage_so_far_is_available_when_a_stream_is_cut() {
    let mut translator = AnthropicToOpenAi::new(0, true);
    let all = events(ANTHROPIC_STREAM);
    for event in all.into_iter().take(4) {
        translator.on_event(event).unwrap();
    }
    assert!(!translator.is_done());
    let usage = translator.usage();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (500, 2));
}

#[test]
fn an_error_event_fails_the_stream_with_its_type() {
    let mut translator = AnthropicToOpenAi::new(0, true);
    let event: StreamEvent = serde_json::from_value(json!({"type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"}}))
    .unwrap();
    match translator.on_event(event) {
        Err(StreamError::Upstream(e)) => assert_eq!(e.kind, "overloaded_error"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn content_before_message_start_is_a_protocol_error() {
    let mut translator = AnthropicToOpenAi::new(0, true);
    let event: StreamEvent = serde_json::from_value(json!({"type": "content_block_delta",
        "index": 0, "delta": {"type": "text_delta", "text": "x"}}))
    .unwrap();
    assert!(matches!(
        translator.on_event(event),
        Err(StreamError::Protocol(_))
    ));
}

#[test]
fn message_stop_without_message_delta_still_finishes_the_choice() {
    let mut translator = AnthropicToOpenAi::new(0, false);
    let start: StreamEvent = serde_json::from_value(json!({"type": "message_start", "message":
        {"id": "m", "role": "assistant", "model": "x", "content": [],
         "usage": {"input_tokens": 1, "output_tokens": 1}}}))
    .unwrap();
    translator.on_event(start).unwrap();
    let out = translator.on_event(StreamEvent::MessageStop).unwrap();
    assert_eq!(out[0].choices[0].finish_reason.as_deref(), Some("stop"));
}
