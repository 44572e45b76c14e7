//! `POST /v1/chat/completions` in OpenAI's wire format.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::reply::{self, count_tokens, Generation, Input, Output, ToolChoice, ToolSpec};
use crate::stream::{cut_body, data_frame, sse_body, FaultFrames};
use crate::{json_response, now_secs, Check, Sim};

const PATH: &str = "/v1/chat/completions";

#[derive(Deserialize)]
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

#[derive(Deserialize)]
struct StreamOptionsIn {
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct MessageIn {
    role: String,
    #[serde(default)]
    content: Value,
    tool_calls: Option<Vec<ToolCallIn>>,
}

#[derive(Deserialize)]
struct ToolCallIn {
    function: FunctionIn,
}

#[derive(Deserialize)]
struct FunctionIn {
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(Deserialize)]
struct ToolIn {
    function: ToolFunctionIn,
}

#[derive(Deserialize)]
struct ToolFunctionIn {
    name: String,
    parameters: Option<Value>,
}

/// OpenAI's error shape for a status.
pub(crate) fn error(status: u16, message: &str) -> Response {
    let (kind, code) = match status {
        401 => ("invalid_request_error", json!("invalid_api_key")),
        404 => ("invalid_request_error", json!("model_not_found")),
        429 => ("requests", json!("rate_limit_exceeded")),
        500..=599 => ("server_error", Value::Null),
        _ => ("invalid_request_error", Value::Null),
    };
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    json_response(status, &body)
}

pub(crate) async fn chat(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: Bytes) -> Response {
    let request: ChatIn = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            let key = headers.get("x-sim-key").and_then(|v| v.to_str().ok());
            sim.stats.record(PATH, "", key);
            return error(
                400,
                &format!("We could not parse the JSON body of your request: {e}"),
            );
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
    let id = format!("chatcmpl-sim{:016x}", sim.next_id());
    let created = now_secs();
    if request.stream == Some(true) {
        let include_usage = request
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        let frames = frames(&id, created, &request.model, &g, include_usage);
        let extra = FaultFrames {
            malformed: Bytes::from_static(b"data: {\"id\": \"chatcmpl-broken\", \"choi\n\n"),
            error: data_frame(
                r#"{"error":{"message":"sim: stream error","type":"server_error","param":null,"code":null}}"#,
            ),
        };
        return event_stream(sse_body(frames, &faults, extra, sim.stats.clone()));
    }
    let body = completion(&id, created, &request.model, &g);
    if faults.disconnect_after.is_some() {
        return Response::new(cut_body(body.to_string().into_bytes()));
    }
    json_response(200, &body)
}

fn authenticate(sim: &Sim, headers: &HeaderMap) -> Check {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if sim.key_ok(presented) {
        return Ok(());
    }
    Err(match presented {
        None => (401, "You didn't provide an API key."),
        Some(_) => (401, "Incorrect API key provided."),
    })
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

fn frames(id: &str, created: i64, model: &str, g: &Generation, include_usage: bool) -> Vec<Bytes> {
    let chunk = |delta: Value, finish: Value| {
        let mut c = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": "fp_keel_sim",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if include_usage {
            c["usage"] = Value::Null;
        }
        data_frame(&c.to_string())
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
        frames.push(data_frame(&last.to_string()));
    }
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
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

pub(crate) fn event_stream(body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    response
}

pub(crate) fn garbage() -> Response {
    let mut response = Response::new(Body::from("<html>502 Bad Gateway</html> {not json"));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}
