//! Anthropic Messages response → OpenAI chat completion: text, tool calls, stop reason, usage.

use serde_json::Map;

use super::anthropic::{self as an, ContentBlock, MessagesResponse};
use super::openai::{
    ChatCompletion, ChatMessage, Choice, FunctionCall, MessageContent, ToolCall, Usage,
};

/// OpenAI `finish_reason` for an Anthropic `stop_reason`.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn and anything new end the turn normally.
        _ => "stop",
    }
}

/// OpenAI usage for Anthropic usage: OpenAI's prompt count includes cached tokens, Anthropic's
/// `input_tokens` does not.
pub fn usage(usage: &an::Usage) -> Usage {
    let cache_read = usage.cache_read_input_tokens.unwrap_or(0);
    let cache_write = usage.cache_creation_input_tokens.unwrap_or(0);
    let prompt = usage
        .input_tokens
        .saturating_add(cache_read)
        .saturating_add(cache_write);
    Usage::new(prompt, usage.output_tokens, cache_read)
}

/// The completion for a response, stamped `created` (Unix seconds).
pub fn to_chat_completion(response: &MessagesResponse, created: i64) -> ChatCompletion {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in &response.content {
        match block {
            ContentBlock::Text { text: t } => text.push_str(t),
            ContentBlock::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                id: id.clone(),
                kind: "function".to_owned(),
                function: FunctionCall {
                    name: name.clone(),
                    arguments: input.to_string(),
                },
            }),
            _ => {}
        }
    }
    let message = ChatMessage {
        role: "assistant".to_owned(),
        // OpenAI sends `null` content with tool calls and no text.
        content: (!text.is_empty() || tool_calls.is_empty()).then_some(MessageContent::Text(text)),
        tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
        ..ChatMessage::default()
    };
    ChatCompletion {
        id: response.id.clone(),
        object: "chat.completion".to_owned(),
        created,
        model: response.model.clone(),
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: Some(finish_reason(response.stop_reason.as_deref()).to_owned()),
            extra: Map::new(),
        }],
        usage: Some(usage(&response.usage)),
        extra: Map::new(),
    }
}
