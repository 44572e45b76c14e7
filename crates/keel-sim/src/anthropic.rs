//! `POST /v1/messages` in Anthropic's wire format, with its streaming event sequence.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::chat::pieces;
use crate::openai::{event_stream, garbage};
use crate::reply::{self, count_tokens, Generation, Input, Output, ToolChoice, ToolSpec};
use crate::stream::{cut_body, event_frame, sse_body, FaultFrames};
use crate::{json_response, Check, Sim};

const PATH: &str = "/v1/messages";

#[derive(Deserialize)]
struct MessagesIn {
    model: String,
    max_tokens: Option<i64>,
    messages: Vec<MessageIn>,
    system: Option<Value>,
    stream: Option<bool>,
    tools: Option<Vec<ToolIn>>,
    tool_choice: Option<Value>,
}

#[derive(Deserialize)]
struct MessageIn {
    role: String,
    content: Value,
}

#[derive(Deserialize)]
struct ToolIn {
    name: String,
    input_schema: Option<Value>,
}

/// Anthropic's error shape for a status.
pub(crate) fn error(status: u16, message: &str) -> Response {
    let kind = match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 | 503 => "overloaded_error",
        504 => "timeout_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    };
    let body = json!({"type": "error", "error": {"type": kind, "message": message},
        "request_id": "req_sim"});
    json_response(status, &body)
}

pub(crate) async fn messages(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: MessagesIn = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            let key = headers.get("x-sim-key").and_then(|v| v.to_str().ok());
            sim.stats.record(PATH, "", key);
            return error(400, &format!("invalid request body: {e}"));
        }
    };
    let checks = authenticate(&sim, &headers).and_then(|()| validate(&request));
    let faults = match sim
        .admit(PATH, &request.model, &headers, &body, checks, error)
        .await
    {
        Ok(faults) => faults,
        Err(response) => return response,
    };
    if faults.garbage {
        return garbage();
    }
    let g = reply::generate(
        &input(&request),
        sim.reply_tokens(&faults),
        faults.tool_call.as_ref(),
    );
    let id = format!("msg_sim{:016x}", sim.next_id());
    if request.stream == Some(true) {
        let extra = FaultFrames {
            malformed: event_frame(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_del"#,
            ),
            error: event_frame(
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ),
        };
        let frames = frames(&id, &request.model, &g);
        return event_stream(sse_body(frames, &faults, extra, sim.stats.clone()));
    }
    let body = message(&id, &request.model, &g);
    if faults.disconnect_after.is_some() {
        return Response::new(cut_body(body.to_string().into_bytes()));
    }
    json_response(200, &body)
}

fn authenticate(sim: &Sim, headers: &HeaderMap) -> Check {
    let Some(key) = headers.get("x-api-key") else {
        return Err((401, "x-api-key header is required"));
    };
    if !sim.key_ok(key.to_str().ok()) {
        return Err((401, "invalid x-api-key"));
    }
    if !headers.contains_key("anthropic-version") {
        return Err((400, "anthropic-version: header is required"));
    }
    Ok(())
}

fn validate(request: &MessagesIn) -> Check {
    match request.max_tokens {
        None => return Err((400, "max_tokens: Field required")),
        Some(n) if n < 1 => return Err((400, "max_tokens: must be greater than 0")),
        Some(_) => {}
    }
    if request.messages.is_empty() {
        return Err((400, "messages: at least one message is required"));
    }
    Ok(())
}

/// The text of content (a string or blocks), and whether it holds a tool result.
fn text_of(content: &Value) -> (String, bool) {
    let blocks = match content {
        Value::String(s) => return (s.clone(), false),
        Value::Array(blocks) => blocks,
        _ => return (String::new(), false),
    };
    let mut texts = Vec::new();
    let mut has_result = false;
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                texts.extend(block.get("text").and_then(Value::as_str).map(str::to_owned))
            }
            Some("tool_use") => {
                let name = block
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let input = block.get("input").map(Value::to_string).unwrap_or_default();
                texts.push(format!("{name} {input}"));
            }
            Some("tool_result") => {
                has_result = true;
                texts.push(text_of(block.get("content").unwrap_or(&Value::Null)).0);
            }
            _ => {}
        }
    }
    (texts.join("\n"), has_result)
}

fn input(request: &MessagesIn) -> Input {
    let system = request
        .system
        .as_ref()
        .map(|s| text_of(s).0)
        .unwrap_or_default();
    let mut prompt_tokens = count_tokens(&system);
    for message in &request.messages {
        prompt_tokens += count_tokens(&text_of(&message.content).0);
    }
    let last_user_text = request.messages.last().and_then(|m| {
        let (text, has_result) = text_of(&m.content);
        (m.role == "user" && !has_result).then_some(text)
    });
    let tool_choice = match request
        .tool_choice
        .as_ref()
        .and_then(|c| c.get("type"))
        .and_then(Value::as_str)
    {
        Some("none") => ToolChoice::None,
        Some("any") => ToolChoice::Required,
        Some("tool") => request
            .tool_choice
            .as_ref()
            .and_then(|c| c.get("name"))
            .and_then(Value::as_str)
            .map_or(ToolChoice::Required, |n| ToolChoice::Named(n.to_owned())),
        _ => ToolChoice::Auto,
    };
    Input {
        prompt_tokens,
        last_user_text,
        tools: request
            .tools
            .iter()
            .flatten()
            .map(|t| ToolSpec {
                name: t.name.clone(),
                schema: t.input_schema.clone(),
            })
            .collect(),
        tool_choice,
        max_tokens: request
            .max_tokens
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        json: false,
    }
}

fn stop_reason(g: &Generation) -> &'static str {
    match (&g.output, g.truncated) {
        (Output::Tool { .. }, _) => "tool_use",
        (_, true) => "max_tokens",
        _ => "end_turn",
    }
}

fn tool_id(id: &str) -> String {
    format!("toolu_{}", &id[id.len().saturating_sub(12)..])
}

fn message(id: &str, model: &str, g: &Generation) -> Value {
    let content = match &g.output {
        Output::Text(text) => json!([{"type": "text", "text": text}]),
        Output::Tool { name, arguments } => {
            let input: Value = serde_json::from_str(arguments).unwrap_or_else(|_| json!({}));
            json!([{"type": "tool_use", "id": tool_id(id), "name": name, "input": input}])
        }
    };
    json!({
        "id": id, "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": stop_reason(g), "stop_sequence": null,
        "usage": {"input_tokens": g.prompt_tokens, "output_tokens": g.completion_tokens,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
            "service_tier": "standard"},
    })
}

fn frames(id: &str, model: &str, g: &Generation) -> Vec<Bytes> {
    let event = |name: &str, data: Value| event_frame(name, &data.to_string());
    let start = json!({"type": "message_start", "message": {
        "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": null, "stop_sequence": null,
        // Anthropic reports a provisional output count here; message_delta has the total.
        "usage": {"input_tokens": g.prompt_tokens, "output_tokens": 1,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}});
    let mut frames = vec![event("message_start", start)];
    let (block, deltas): (Value, Vec<Value>) = match &g.output {
        Output::Text(text) => (
            json!({"type": "text", "text": ""}),
            text.split(' ')
                .enumerate()
                .map(|(i, w)| {
                    let piece = if i == 0 {
                        w.to_owned()
                    } else {
                        format!(" {w}")
                    };
                    json!({"type": "text_delta", "text": piece})
                })
                .collect(),
        ),
        Output::Tool { name, arguments } => (
            json!({"type": "tool_use", "id": tool_id(id), "name": name, "input": {}}),
            pieces(arguments, 8)
                .into_iter()
                .map(|p| json!({"type": "input_json_delta", "partial_json": p}))
                .collect(),
        ),
    };
    frames.push(event(
        "content_block_start",
        json!({"type": "content_block_start", "index": 0, "content_block": block}),
    ));
    frames.push(event("ping", json!({"type": "ping"})));
    for delta in deltas {
        frames.push(event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        ));
    }
    frames.push(event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    frames.push(event(
        "message_delta",
        json!({"type": "message_delta",
            "delta": {"stop_reason": stop_reason(g), "stop_sequence": null},
            "usage": {"output_tokens": g.completion_tokens}}),
    ));
    frames.push(event("message_stop", json!({"type": "message_stop"})));
    frames
}
