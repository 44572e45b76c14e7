//! Anthropic's Messages API, translated to and from OpenAI's chat types.

use std::collections::VecDeque;

use async_trait::async_trait;
use futures::stream::{self, Stream, StreamExt};
use keel_core::gateway::anthropic::{MessagesRequest, MessagesResponse, StreamEvent, API_VERSION};
use keel_core::gateway::{
    to_chat_completion, to_messages_request, AnthropicToOpenAi, ChatChunk, ChatCompletion,
    ChatRequest, SseEvent, StreamError,
};
use keel_core::manifest::ProviderKind;
use tokio::time::Instant;

use super::error::UpstreamErrorKind;
use super::http::{cut, invalid, read_json, send, sse_events};
use super::{
    track_output, ApiKey, ChunkStream, Provider, ProviderConfig, UpstreamClient, UpstreamError,
};

const NAME: &str = "anthropic";
const DEFAULT_BASE: &str = "https://api.anthropic.com";

/// Anthropic's Messages API.
#[derive(Debug)]
pub struct Anthropic {
    client: reqwest::Client,
    url: String,
    model: String,
    key: ApiKey,
    default_max_tokens: u32,
}

impl Anthropic {
    /// An adapter for `config`, authenticating with `key`. The base URL is the host, as in
    /// Anthropic's SDKs; one ending in `/v1` is accepted too.
    pub fn new(client: &UpstreamClient, config: &ProviderConfig, key: ApiKey) -> Self {
        let base = config
            .base_url
            .as_deref()
            .unwrap_or(DEFAULT_BASE)
            .trim_end_matches('/');
        let url = match base.strip_suffix("/v1") {
            Some(host) => format!("{host}/v1/messages"),
            None => format!("{base}/v1/messages"),
        };
        Self {
            client: client.http.clone(),
            url,
            model: config.model.clone(),
            key,
            default_max_tokens: config.default_max_tokens,
        }
    }

    fn translate(
        &self,
        request: &ChatRequest,
        stream: bool,
    ) -> Result<MessagesRequest, UpstreamError> {
        let mut out = to_messages_request(request, &self.model, self.default_max_tokens)
            .map_err(|e| UpstreamError::new(NAME, UpstreamErrorKind::Rejected, e.to_string()))?;
        out.stream = stream.then_some(true);
        Ok(out)
    }

    fn post(&self, body: &MessagesRequest) -> reqwest::RequestBuilder {
        self.client
            .post(&self.url)
            .header("x-api-key", self.key.expose())
            .header("anthropic-version", API_VERSION)
            .json(body)
    }
}

#[async_trait]
impl Provider for Anthropic {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Anthropic
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        deadline: Instant,
    ) -> Result<ChatCompletion, UpstreamError> {
        let body = self.translate(request, false)?;
        let response = send(NAME, self.post(&body), deadline).await?;
        let message: MessagesResponse = read_json(NAME, response, deadline).await?;
        Ok(to_chat_completion(&message, unix_now()))
    }

    async fn chat_stream(
        &self,
        request: &ChatRequest,
        deadline: Instant,
    ) -> Result<ChunkStream, UpstreamError> {
        let body = self.translate(request, true)?;
        let response = send(NAME, self.post(&body), deadline).await?;
        let events = sse_events(NAME, response, deadline)?;
        Ok(track_output(chunks(events).boxed()))
    }
}

struct State<S> {
    events: S,
    translator: AnthropicToOpenAi,
    queue: VecDeque<ChatChunk>,
    ended: bool,
}

/// OpenAI chunks from Anthropic events; the stream must reach `message_stop`.
fn chunks<S>(events: S) -> impl Stream<Item = Result<ChatChunk, UpstreamError>>
where
    S: Stream<Item = Result<SseEvent, UpstreamError>> + Send + Unpin + 'static,
{
    let state = State {
        events,
        // Usage always comes at the end: metering needs it.
        translator: AnthropicToOpenAi::new(unix_now(), true),
        queue: VecDeque::new(),
        ended: false,
    };
    stream::unfold(state, |mut st| async move {
        loop {
            if let Some(chunk) = st.queue.pop_front() {
                return Some((Ok(chunk), st));
            }
            if st.ended {
                return None;
            }
            let Some(event) = st.events.next().await else {
                st.ended = true;
                if st.translator.is_done() {
                    return None;
                }
                return Some((Err(cut(NAME, "stream ended before message_stop")), st));
            };
            let translated = event.and_then(|event| {
                let parsed: StreamEvent = serde_json::from_str(&event.data)
                    .map_err(|_| invalid(NAME, "malformed stream event"))?;
                st.translator.on_event(parsed).map_err(stream_error)
            });
            match translated {
                Ok(chunks) => st.queue.extend(chunks),
                Err(e) => {
                    st.ended = true;
                    return Some((Err(e), st));
                }
            }
        }
    })
}

fn stream_error(e: StreamError) -> UpstreamError {
    match e {
        StreamError::Upstream(detail) => {
            let kind = match detail.kind.as_str() {
                "rate_limit_error" => UpstreamErrorKind::RateLimited,
                "overloaded_error" | "api_error" => UpstreamErrorKind::Unavailable,
                "timeout_error" => UpstreamErrorKind::Timeout,
                "authentication_error" | "permission_error" => UpstreamErrorKind::Auth,
                _ => UpstreamErrorKind::Rejected,
            };
            UpstreamError::new(NAME, kind, format!("{}: {}", detail.kind, detail.message))
        }
        StreamError::Protocol(what) => invalid(NAME, what),
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
