//! The HTTP plumbing every adapter shares: one pooled client, sending with a deadline,
//! reading error responses, and turning a response body into server-sent events.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use keel_core::gateway::retry::{parse_retry_after, parse_retry_after_ms};
use keel_core::gateway::{SseDecoder, SseEvent};
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use serde::de::DeserializeOwned;
use tokio::time::{timeout_at, Instant};

use super::error::{UpstreamError, UpstreamErrorKind};

/// Connection settings of the shared upstream client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientSettings {
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per upstream host.
    pub pool_max_idle_per_host: usize,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            pool_idle_timeout: Duration::from_secs(90),
            // Enough for every in-flight call of a busy node to reuse its connection.
            pool_max_idle_per_host: 512,
        }
    }
}

/// The HTTP client all adapters share (cheap to clone; one connection pool).
#[derive(Clone, Debug)]
pub struct UpstreamClient {
    pub(crate) http: reqwest::Client,
}

impl UpstreamClient {
    /// A client with `settings` (rustls, keep-alive, no Nagle delay).
    pub fn new(settings: ClientSettings) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .pool_idle_timeout(settings.pool_idle_timeout)
            .pool_max_idle_per_host(settings.pool_max_idle_per_host)
            .tcp_nodelay(true)
            .tcp_keepalive(Duration::from_secs(30))
            .user_agent(concat!("keel/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http })
    }
}

/// Sends `request`; any status other than 2xx becomes a classified error.
pub(crate) async fn send(
    provider: &'static str,
    request: reqwest::RequestBuilder,
    deadline: Instant,
) -> Result<reqwest::Response, UpstreamError> {
    let response = match timeout_at(deadline, request.send()).await {
        Err(_) => return Err(timeout(provider)),
        Ok(Err(e)) => return Err(transport_error(provider, e)),
        Ok(Ok(response)) => response,
    };
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status().as_u16();
    let retry_after = retry_after(response.headers());
    // The error body is best effort: its message is only for logs.
    let body = match timeout_at(deadline, response.bytes()).await {
        Ok(Ok(body)) => body,
        _ => Bytes::new(),
    };
    Err(
        UpstreamError::from_status(provider, status, error_message(&body))
            .with_retry_after(retry_after),
    )
}

/// Reads and parses a whole JSON body.
pub(crate) async fn read_json<T: DeserializeOwned>(
    provider: &'static str,
    response: reqwest::Response,
    deadline: Instant,
) -> Result<T, UpstreamError> {
    let body = match timeout_at(deadline, response.bytes()).await {
        Err(_) => return Err(timeout(provider)),
        Ok(Err(e)) => {
            let message = format!("body cut: {}", e.without_url());
            return Err(UpstreamError::new(
                provider,
                UpstreamErrorKind::StreamCut,
                message,
            ));
        }
        Ok(Ok(body)) => body,
    };
    serde_json::from_slice(&body)
        .map_err(|e| invalid(provider, format!("body is not the expected JSON: {e}")))
}

/// The `Retry-After` of a response: `retry-after-ms` (OpenAI) first, then `retry-after`.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    text("retry-after-ms")
        .and_then(parse_retry_after_ms)
        .or_else(|| parse_retry_after(text("retry-after")?, SystemTime::now()))
}

/// The `error.message` of an OpenAI or Anthropic error body, or the start of the body.
fn error_message(body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    if let Some(message) = parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(|e| e.get("message"))
        .and_then(|m| m.as_str())
    {
        return message.chars().take(500).collect();
    }
    String::from_utf8_lossy(body).chars().take(200).collect()
}

fn transport_error(provider: &'static str, e: reqwest::Error) -> UpstreamError {
    let kind = if e.is_timeout() {
        UpstreamErrorKind::Timeout
    } else if e.is_body() || e.is_decode() {
        UpstreamErrorKind::StreamCut
    } else {
        // Connect errors, and connections dropped before a response.
        UpstreamErrorKind::Connect
    };
    UpstreamError::new(provider, kind, e.without_url().to_string())
}

pub(crate) fn timeout(provider: &'static str) -> UpstreamError {
    UpstreamError::new(provider, UpstreamErrorKind::Timeout, "deadline passed")
}

pub(crate) fn invalid(provider: &'static str, message: impl Into<String>) -> UpstreamError {
    UpstreamError::new(provider, UpstreamErrorKind::InvalidResponse, message)
}

pub(crate) fn cut(provider: &'static str, message: &str) -> UpstreamError {
    UpstreamError::new(provider, UpstreamErrorKind::StreamCut, message)
}

struct SseState {
    provider: &'static str,
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    decoder: Option<SseDecoder>,
    queue: VecDeque<SseEvent>,
    deadline: Instant,
}

/// The events of an event-stream response, each read before `deadline`. A body that is not
/// an event stream is an invalid response; a broken body ends with `StreamCut`.
pub(crate) fn sse_events(
    provider: &'static str,
    response: reqwest::Response,
    deadline: Instant,
) -> Result<BoxStream<'static, Result<SseEvent, UpstreamError>>, UpstreamError> {
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("text/event-stream") {
        return Err(invalid(
            provider,
            format!("expected an event stream, got `{content_type}`"),
        ));
    }
    let state = SseState {
        provider,
        body: response.bytes_stream().boxed(),
        decoder: Some(SseDecoder::default()),
        queue: VecDeque::new(),
        deadline,
    };
    Ok(stream::unfold(state, next_event).boxed())
}

async fn next_event(mut st: SseState) -> Option<(Result<SseEvent, UpstreamError>, SseState)> {
    loop {
        if let Some(event) = st.queue.pop_front() {
            return Some((Ok(event), st));
        }
        let decoder = st.decoder.as_mut()?;
        match timeout_at(st.deadline, st.body.next()).await {
            Err(_) => {
                st.decoder = None;
                return Some((Err(timeout(st.provider)), st));
            }
            Ok(Some(Ok(bytes))) => match decoder.push(&bytes) {
                Ok(events) => st.queue.extend(events),
                Err(e) => {
                    st.decoder = None;
                    return Some((Err(invalid(st.provider, e.to_string())), st));
                }
            },
            Ok(Some(Err(e))) => {
                st.decoder = None;
                let message = format!("stream cut: {}", e.without_url());
                return Some((Err(cut(st.provider, &message)), st));
            }
            Ok(None) => {
                let last = st.decoder.take().and_then(SseDecoder::finish);
                st.queue.extend(last);
            }
        }
    }
}
