//! `POST /v1/chat/completions` in OpenAI's wire format.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use serde_json::{json, Value};

use crate::chat::OpenAiChat;
use crate::stream::{cut_body, data_frame, sse_body, FaultFrames};
use crate::{json_response, now_secs, Check, Sim};

const PATH: &str = "/v1/chat/completions";

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
    let request = match OpenAiChat::from_slice(&body) {
        Ok(request) => request,
        Err(message) => {
            let key = headers.get("x-sim-key").and_then(|v| v.to_str().ok());
            sim.stats.record(PATH, "", key);
            return error(400, &message);
        }
    };
    let checks = authenticate(&sim, &headers).and_then(|()| request.validate());
    let faults = match sim
        .admit(PATH, request.model(), &headers, &body, checks, error)
        .await
    {
        Ok(faults) => faults,
        Err(response) => return response,
    };
    if faults.garbage {
        return garbage();
    }
    let reply = request.reply(sim.reply_tokens(&faults), faults.tool_call.as_ref());
    let id = format!("chatcmpl-sim{:016x}", sim.next_id());
    let created = now_secs();
    if request.is_stream() {
        let chunks = reply.chunks(&id, created, request.model(), request.include_usage());
        let mut frames: Vec<Bytes> = chunks.iter().map(|c| data_frame(&c.to_string())).collect();
        frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
        let extra = FaultFrames {
            malformed: Bytes::from_static(b"data: {\"id\": \"chatcmpl-broken\", \"choi\n\n"),
            error: data_frame(
                r#"{"error":{"message":"sim: stream error","type":"server_error","param":null,"code":null}}"#,
            ),
        };
        return event_stream(sse_body(frames, &faults, extra, sim.stats.clone()));
    }
    let body = reply.completion(&id, created, request.model());
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
