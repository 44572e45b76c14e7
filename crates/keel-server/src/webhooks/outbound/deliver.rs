//! One attempt: the Standard Webhooks body and headers, signed with every current secret,
//! POSTed with a timeout; redirects are not followed (an endpoint cannot bounce Keel to
//! another address).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use keel_core::outbound::{signature_header, EndpointSecret};
use keel_store::{AttemptResult, DueDelivery, MessageRecord};
use serde_json::json;

/// The delivered body: `{"type", "timestamp", "data"}`, as the spec recommends.
pub fn body_of(message: &MessageRecord) -> Vec<u8> {
    let body = json!({
        "type": message.event_type.as_str(),
        "timestamp": message.created_at,
        "data": message.payload,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The HTTP client attempts are made with.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Keel-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// Makes the attempt at `now` and says what happened; never fails.
pub async fn attempt(
    client: &reqwest::Client,
    d: &DueDelivery,
    now: DateTime<Utc>,
    max_body: usize,
) -> AttemptResult {
    let secrets: Vec<EndpointSecret> = d
        .secrets
        .iter()
        .filter_map(|s| EndpointSecret::parse(s).ok())
        .collect();
    let refs: Vec<&EndpointSecret> = secrets.iter().collect();
    let body = body_of(&d.message);
    let id = d.message.id.to_string();
    let timestamp = now.timestamp();
    let signature = signature_header(&refs, &id, timestamp, &body);
    let started = Instant::now();
    let sent = client
        .post(&d.url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    let mut result = AttemptResult {
        attempted_at: now,
        status_code: None,
        latency_ms: 0,
        error: None,
        response_body: None,
        succeeded: false,
    };
    match sent {
        Ok(res) => {
            let status = res.status();
            result.status_code = Some(status.as_u16());
            result.succeeded = status.is_success();
            result.response_body = read_truncated(res, max_body).await;
            if !status.is_success() {
                result.error = Some(format!("endpoint answered {}", status.as_u16()));
            }
        }
        Err(e) => result.error = Some(describe(&e)),
    }
    result.latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    result
}

/// Reads at most `max` bytes of the body (the rest is not downloaded), as lossy UTF-8.
async fn read_truncated(mut res: reqwest::Response, max: usize) -> Option<String> {
    let mut kept: Vec<u8> = Vec::new();
    while kept.len() < max {
        match res.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            _ => break,
        }
    }
    kept.truncate(max);
    (!kept.is_empty()).then(|| String::from_utf8_lossy(&kept).into_owned())
}

/// Why no response came, without the URL (which may carry a token in its query).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else if e.is_redirect() {
        "redirect refused".into()
    } else {
        "request failed".into()
    }
}
