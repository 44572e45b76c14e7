//! OpenAI Chat Completions without HTTP: the request as the simulator reads it, and the
//! deterministic completion or chunks it answers with. The HTTP server and Keel's
//! in-process `sim` provider both answer through this module.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::ToolCallMode;
use crate::reply::{self, count_tokens, Generation, Input, Output, ToolChoice, ToolSpec};

/// A request check: `Err((status, message))` rejects it.
type Check = Result<(), (u16, &'static str)>;

/// An OpenAI chat request, parsed.
#[derive(Debug)]
pub struct OpenAiChat {
    request: ChatIn,
}

impl OpenAiChat {
    /// Parses a JSON body; the error is OpenAI's message for a body it cannot read.
    pub fn from_slice(body: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(body)
            .map(|request| Self { request })
            .map_err(|e| format!("We could not parse the JSON body of your request: {e}"))
    }

    /// Reads a JSON value (for in-process callers holding typed requests).
    pub fn from_value(value: Value) -> Result<Self, String> {
        serde_json::from_value(value)
            .map(|request| Self { request })
            .map_err(|e| format!("We could not parse the JSON body of your request: {e}"))
    }

    /// The requested model.
    pub fn model(&self) -> &str {
        &self.request.model
    }

    /// Whether a stream was asked for.
    pub fn is_stream(&self) -> bool {
        self.request.stream == Some(true)
    }

    /// Whether a stream should end with a usage chunk (`stream_options.include_usage`).
    pub fn include_usage(&self) -> bool {
        self.request
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }

    /// What OpenAI rejects with a 400 (`Err((status, message))`).
    pub fn validate(&self) -> Result<(), (u16, &'static str)> {
        validate(&self.request)
    }

    /// The deterministic reply: `reply_tokens` words (capped by the request) or a tool call.
    pub fn reply(&self, reply_tokens: u32, tool_call: Option<&ToolCallMode>) -> Reply {
        Reply {
            generation: reply::generate(&input(&self.request), reply_tokens, tool_call),
        }
    }
}

/// A generated reply, renderable as a completion or as stream chunks.
#[derive(Debug)]
pub struct Reply {
    generation: Generation,
}

impl Reply {
    /// Prompt tokens (one per word of the messages).
    pub fn prompt_tokens(&self) -> u64 {
        self.generation.prompt_tokens
    }

    /// Completion tokens (one per word of the reply).
    pub fn completion_tokens(&self) -> u64 {
        self.generation.completion_tokens
    }

    /// The `chat.completion` object.
    pub fn completion(&self, id: &str, created: i64, model: &str) -> Value {
        completion(id, created, model, &self.generation)
    }

    /// The `chat.completion.chunk` objects of the stream, one word per content chunk, with a
    /// final usage chunk when `include_usage` (the `[DONE]` marker is the transport's).
    pub fn chunks(&self, id: &str, created: i64, model: &str, include_usage: bool) -> Vec<Value> {
        chunks(id, created, model, &self.generation, include_usage)
    }
}

#[derive(Debug, Deserialize)]
struct ChatIn {
    model: String,
    messages: Vec<MessageIn>,
    stream: Option<bool>,
    stream_options: Option<StreamOptionsIn>,
    max_tokens: Option<i64>,
    max_completion_tokens: Option<i64>,
    tools: Option<Vec<ToolIn>>,
    tool_choice: Option<Value>,
    response_format: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct StreamOptionsIn {
    include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct MessageIn {
    role: String,
    #[serde(default)]
    content: Value,
    tool_calls: Option<Vec<ToolCallIn>>,
}

#[derive(Debug, Deserialize)]
struct ToolCallIn {
    function: FunctionIn,
}

#[derive(Debug, Deserialize)]
struct FunctionIn {
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(Debug, Deserialize)]
struct ToolIn {
    function: ToolFunctionIn,
}

#[derive(Debug, Deserialize)]
struct ToolFunctionIn {
    name: String,
    parameters: Option<Value>,
}

fn validate(request: &ChatIn) -> Check {
    if request.messages.is_empty() {
        return Err((
            400,
            "Invalid 'messages': empty array. Expected at least 1 item.",
        ));
    }
    for value in [request.max_tokens, request.max_completion_tokens]
        .into_iter()
        .flatten()
    {
        if value < 1 {
            return Err((400, "Invalid 'max_tokens': must be at least 1."));
        }
    }
    Ok(())
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn input(request: &ChatIn) -> Input {
    let mut prompt_tokens = 0;
    for message in &request.messages {
        prompt_tokens += count_tokens(&text_of(&message.content));
        for call in message.tool_calls.iter().flatten() {
            prompt_tokens += count_tokens(&call.function.name);
            prompt_tokens += count_tokens(&call.function.arguments);
        }
    }
    let last_user_text = request
        .messages
        .last()
        .filter(|m| m.role == "user")
        .map(|m| text_of(&m.content));
    let tool_choice = match &request.tool_choice {
        Some(Value::String(s)) if s == "none" => ToolChoice::None,
        Some(Value::String(s)) if s == "required" => ToolChoice::Required,
        Some(Value::Object(o)) => o
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map_or(ToolChoice::Auto, |n| ToolChoice::Named(n.to_owned())),
        _ => ToolChoice::Auto,
    };
    let json = request
        .response_format
        .as_ref()
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t == "json_object" || t == "json_schema");
    Input {
        prompt_tokens,
        last_user_text,
        tools: request
            .tools
            .iter()
            .flatten()
            .map(|t| ToolSpec {
                name: t.function.name.clone(),
                schema: t.function.parameters.clone(),
            })
            .collect(),
        tool_choice,
        max_tokens: request
            .max_completion_tokens
            .or(request.max_tokens)
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        json,
    }
}

fn usage(g: &Generation) -> Value {
    json!({
        "prompt_tokens": g.prompt_tokens,
        "completion_tokens": g.completion_tokens,
        "total_tokens": g.prompt_tokens + g.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
    })
}

fn finish_reason(g: &Generation) -> &'static str {
    match (&g.output, g.truncated) {
        (Output::Tool { .. }, _) => "tool_calls",
        (_, true) => "length",
        _ => "stop",
    }
}

fn call_id(id: &str) -> String {
    format!("call_{}", &id[id.len().saturating_sub(12)..])
}

fn completion(id: &str, created: i64, model: &str, g: &Generation) -> Value {
    let message = match &g.output {
        Output::Text(text) => json!({"role": "assistant", "content": text, "refusal": null}),
        Output::Tool { name, arguments } => json!({
            "role": "assistant", "content": null, "refusal": null,
            "tool_calls": [{"id": call_id(id), "type": "function",
                "function": {"name": name, "arguments": arguments}}]
        }),
    };
    json!({
        "id": id, "object": "chat.completion", "created": created, "model": model,
        "system_fingerprint": "fp_keel_sim",
        "choices": [{"index": 0, "message": message, "logprobs": null,
            "finish_reason": finish_reason(g)}],
        "usage": usage(g),
    })
}

fn chunks(id: &str, created: i64, model: &str, g: &Generation, include_usage: bool) -> Vec<Value> {
    let chunk = |delta: Value, finish: Value| {
        let mut c = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": "fp_keel_sim",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if include_usage {
            c["usage"] = Value::Null;
        }
        c
    };
    let mut frames = vec![chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        Value::Null,
    )];
    match &g.output {
        Output::Text(text) => {
            for (i, word) in text.split(' ').enumerate() {
                let piece = if i == 0 {
                    word.to_owned()
                } else {
                    format!(" {word}")
                };
                frames.push(chunk(json!({"content": piece}), Value::Null));
            }
        }
        Output::Tool { name, arguments } => {
            let head = json!({"tool_calls": [{"index": 0, "id": call_id(id), "type": "function",
                "function": {"name": name, "arguments": ""}}]});
            frames.push(chunk(head, Value::Null));
            for piece in pieces(arguments, 8) {
                let delta = json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]});
                frames.push(chunk(delta, Value::Null));
            }
        }
    }
    frames.push(chunk(json!({}), json!(finish_reason(g))));
    if include_usage {
        let last = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": "fp_keel_sim", "choices": [], "usage": usage(g),
        });
        frames.push(last);
    }
    frames
}

/// `text` in pieces of at most `size` characters.
pub(crate) fn pieces(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(size.max(1))
        .map(|c| c.iter().collect())
        .collect()
}
