//! OpenAI chat request → Anthropic Messages request.
//!
//! System and developer messages become `system`; tool definitions, tool calls and tool
//! results become `tools`, `tool_use` and `tool_result` blocks; consecutive turns of one role
//! are merged, since Anthropic wants user and assistant to alternate.

use serde_json::{json, Value};

use super::anthropic::{self as an, ContentBlock, MessagesRequest, Metadata, ToolChoice};
use super::openai::{ChatMessage, ChatRequest, ContentPart, MessageContent};

/// Why a request cannot be expressed for Anthropic.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// A parameter Anthropic has no equivalent for.
    #[error("`{0}` is not supported by this model")]
    Unsupported(&'static str),
    /// A message or parameter that makes no sense.
    #[error("{0}")]
    Invalid(String),
}

/// Translates `request` for `model`, generating at most `max_tokens` when the client gave no cap.
pub fn to_messages_request(
    request: &ChatRequest,
    model: &str,
    default_max_tokens: u32,
) -> Result<MessagesRequest, TranslateError> {
    if request.n.is_some_and(|n| n > 1) {
        return Err(TranslateError::Unsupported("n"));
    }
    let mut system = Vec::new();
    let mut messages: Vec<an::Message> = Vec::new();
    for message in &request.messages {
        match message.role.as_str() {
            "system" | "developer" => system.push(message.text_content()),
            "user" => push_turn(&mut messages, "user", user_blocks(message)?),
            "assistant" => push_turn(&mut messages, "assistant", assistant_blocks(message)?),
            "tool" => push_turn(&mut messages, "user", vec![tool_result(message)?]),
            other => {
                return Err(TranslateError::Invalid(format!(
                    "unknown message role `{other}`"
                )))
            }
        }
    }
    if let Some(instruction) = json_instruction(request.response_format.as_ref()) {
        system.push(instruction);
    }
    let tools = request.tools.as_ref().map(|tools| {
        tools
            .iter()
            .map(|t| an::Tool {
                name: t.function.name.clone(),
                description: t.function.description.clone(),
                input_schema: t
                    .function
                    .parameters
                    .clone()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            })
            .collect()
    });
    Ok(MessagesRequest {
        model: model.to_owned(),
        max_tokens: request.requested_max_tokens().unwrap_or(default_max_tokens),
        messages,
        system: (!system.is_empty()).then(|| system.join("\n\n")),
        stop_sequences: request.stop.clone().map(|s| s.into_vec()),
        stream: request.stream,
        // OpenAI's range is 0..2, Anthropic's 0..1.
        temperature: request.temperature.map(|t| t.clamp(0.0, 1.0)),
        top_p: request.top_p,
        tools,
        tool_choice: tool_choice(request)?,
        metadata: request.user.as_ref().map(|u| Metadata {
            user_id: Some(u.clone()),
        }),
        extra: Default::default(),
    })
}

fn push_turn(messages: &mut Vec<an::Message>, role: &str, blocks: Vec<ContentBlock>) {
    match messages.last_mut() {
        Some(last) if last.role == role => last.content.extend(blocks),
        _ => messages.push(an::Message {
            role: role.to_owned(),
            content: blocks,
        }),
    }
}

fn user_blocks(message: &ChatMessage) -> Result<Vec<ContentBlock>, TranslateError> {
    match &message.content {
        None => Ok(Vec::new()),
        Some(MessageContent::Text(text)) => Ok(vec![ContentBlock::Text { text: text.clone() }]),
        Some(MessageContent::Parts(parts)) => parts.iter().map(part_block).collect(),
    }
}

fn part_block(part: &ContentPart) -> Result<ContentBlock, TranslateError> {
    match (part.kind.as_str(), &part.text, &part.image_url) {
        ("text", Some(text), _) => Ok(ContentBlock::Text { text: text.clone() }),
        ("image_url", _, Some(image)) => Ok(ContentBlock::Image {
            source: image_source(&image.url)?,
        }),
        (kind, _, _) => Err(TranslateError::Invalid(format!(
            "content part `{kind}` is not supported by this model"
        ))),
    }
}

/// `data:image/png;base64,AAAA` → a base64 source; any other URL → a URL source.
fn image_source(url: &str) -> Result<Value, TranslateError> {
    let Some(rest) = url.strip_prefix("data:") else {
        return Ok(json!({"type": "url", "url": url}));
    };
    let (media_type, data) = rest
        .split_once(";base64,")
        .ok_or_else(|| TranslateError::Invalid("image data URLs must be base64".to_owned()))?;
    Ok(json!({"type": "base64", "media_type": media_type, "data": data}))
}

fn assistant_blocks(message: &ChatMessage) -> Result<Vec<ContentBlock>, TranslateError> {
    let mut blocks = Vec::new();
    let text = message.text_content();
    if !text.is_empty() {
        blocks.push(ContentBlock::Text { text });
    }
    for call in message.tool_calls.iter().flatten() {
        let arguments = if call.function.arguments.trim().is_empty() {
            "{}"
        } else {
            call.function.arguments.as_str()
        };
        let input: Value = serde_json::from_str(arguments).map_err(|_| {
            TranslateError::Invalid(format!(
                "tool call `{}` has arguments that are not JSON",
                call.id
            ))
        })?;
        blocks.push(ContentBlock::ToolUse {
            id: call.id.clone(),
            name: call.function.name.clone(),
            input,
        });
    }
    Ok(blocks)
}

fn tool_result(message: &ChatMessage) -> Result<ContentBlock, TranslateError> {
    let id = message
        .tool_call_id
        .clone()
        .ok_or_else(|| TranslateError::Invalid("a tool message needs tool_call_id".to_owned()))?;
    Ok(ContentBlock::ToolResult {
        tool_use_id: id,
        content: Some(Value::String(message.text_content())),
        is_error: None,
    })
}

fn tool_choice(request: &ChatRequest) -> Result<Option<ToolChoice>, TranslateError> {
    let choice = |kind: &str, name: Option<String>| ToolChoice {
        kind: kind.to_owned(),
        name,
        disable_parallel_tool_use: (request.parallel_tool_calls == Some(false) && kind != "none")
            .then_some(true),
    };
    let Some(value) = &request.tool_choice else {
        return Ok(
            (request.parallel_tool_calls == Some(false) && request.tools.is_some())
                .then(|| choice("auto", None)),
        );
    };
    match value {
        Value::String(s) if s == "auto" => Ok(Some(choice("auto", None))),
        Value::String(s) if s == "required" => Ok(Some(choice("any", None))),
        Value::String(s) if s == "none" => Ok(Some(choice("none", None))),
        Value::Object(o) => o
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(|name| Some(choice("tool", Some(name.to_owned()))))
            .ok_or_else(|| TranslateError::Invalid("tool_choice names no function".to_owned())),
        _ => Err(TranslateError::Invalid(
            "tool_choice is not valid".to_owned(),
        )),
    }
}

/// Anthropic has no JSON mode: asking for it in the system prompt is the documented way.
fn json_instruction(format: Option<&Value>) -> Option<String> {
    let format = format?;
    match format.get("type").and_then(Value::as_str) {
        Some("json_object") => Some("Respond with a single JSON object and nothing else.".into()),
        Some("json_schema") => {
            let schema = format
                .get("json_schema")
                .and_then(|s| s.get("schema"))
                .cloned()
                .unwrap_or(Value::Null);
            Some(format!(
                "Respond with a single JSON object that matches this JSON Schema and nothing \
                 else: {schema}"
            ))
        }
        _ => None,
    }
}
