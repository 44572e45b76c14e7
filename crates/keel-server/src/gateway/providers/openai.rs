//! OpenAI's Chat Completions API, and the wire code OpenAI-compatible servers share.

use async_trait::async_trait;
use futures::stream::{self, Stream, StreamExt};
use keel_core::gateway::openai::{ErrorBody, StreamOptions};
use keel_core::gateway::{ChatChunk, ChatCompletion, ChatRequest, SseEvent};
use keel_core::manifest::ProviderKind;
use tokio::time::Instant;

use super::error::UpstreamErrorKind;
use super::http::{cut, invalid, read_json, send, sse_events};
use super::{
    track_output, ApiKey, ChunkStream, Provider, ProviderConfig, UpstreamClient, UpstreamError,
};

const DEFAULT_BASE: &str = "https://api.openai.com/v1";

/// The HTTP side of an OpenAI-style `POST {base}/chat/completions`.
#[derive(Debug)]
pub(crate) struct OpenAiWire {
    pub(crate) kind: ProviderKind,
    client: reqwest::Client,
    url: String,
    pub(crate) model: String,
    key: Option<ApiKey>,
}

impl OpenAiWire {
    pub(crate) fn new(client: &UpstreamClient, config: &ProviderConfig, base: &str) -> Self {
        Self {
            kind: config.kind,
            client: client.http.clone(),
            url: format!("{}/chat/completions", base.trim_end_matches('/')),
            model: config.model.clone(),
            key: config.api_key.clone(),
        }
    }

    fn name(&self) -> &'static str {
        self.kind.as_str()
    }

    fn post(&self, body: &ChatRequest) -> reqwest::RequestBuilder {
        let request = self.client.post(&self.url).json(body);
        match &self.key {
            Some(key) => request.bearer_auth(key.expose()),
            None => request,
        }
    }

    /// The request as sent upstream: this deployment's model, streaming or not.
    pub(crate) fn outgoing(&self, request: &ChatRequest, stream: bool) -> ChatRequest {
        let mut out = request.clone();
        out.model.clone_from(&self.model);
        if stream {
            out.stream = Some(true);
            // Always ask for usage: metering depends on the provider's own numbers.
            let options = out
                .stream_options
                .get_or_insert_with(StreamOptions::default);
            options.include_usage = Some(true);
        } else {
            // OpenAI refuses stream_options on a non-streamed call.
            out.stream = None;
            out.stream_options = None;
        }
        out
    }

    pub(crate) async fn chat(
        &self,
        body: &ChatRequest,
        deadline: Instant,
    ) -> Result<ChatCompletion, UpstreamError> {
        let response = send(self.name(), self.post(body), deadline).await?;
        read_json(self.name(), response, deadline).await
    }

    pub(crate) async fn chat_stream(
        &self,
        body: &ChatRequest,
        deadline: Instant,
    ) -> Result<ChunkStream, UpstreamError> {
        let response = send(self.name(), self.post(body), deadline).await?;
        let events = sse_events(self.name(), response, deadline)?;
        Ok(track_output(chunks(self.name(), events).boxed()))
    }
}

struct ChunkState<S> {
    events: S,
    provider: &'static str,
    /// `[DONE]` or a usage chunk seen: the stream may end.
    complete: bool,
}

/// The chunks of an OpenAI event stream. The stream must end with `[DONE]` (or at least a
/// usage chunk, for servers that omit `[DONE]`); ending earlier is a cut.
fn chunks<S>(
    provider: &'static str,
    events: S,
) -> impl Stream<Item = Result<ChatChunk, UpstreamError>>
where
    S: Stream<Item = Result<SseEvent, UpstreamError>> + Send + Unpin + 'static,
{
    let state = ChunkState {
        events,
        provider,
        complete: false,
    };
    stream::unfold(state, |mut st| async move {
        loop {
            let Some(event) = st.events.next().await else {
                if st.complete {
                    return None;
                }
                let error = cut(st.provider, "stream ended before [DONE]");
                st.complete = true;
                return Some((Err(error), st));
            };
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    st.complete = true;
                    return Some((Err(e), st));
                }
            };
            if event.data == "[DONE]" {
                // Keep reading to the end of the body so the connection can be reused.
                st.complete = true;
                continue;
            }
            let item = parse_chunk(st.provider, &event.data);
            if let Ok(chunk) = &item {
                st.complete |= chunk.usage.is_some();
            }
            return Some((item, st));
        }
    })
}

fn parse_chunk(provider: &'static str, data: &str) -> Result<ChatChunk, UpstreamError> {
    if let Ok(chunk) = serde_json::from_str::<ChatChunk>(data) {
        return Ok(chunk);
    }
    // An error sent in the middle of a stream.
    match serde_json::from_str::<ErrorBody>(data) {
        Ok(body) => {
            let kind = match body.error.kind.as_deref() {
                Some("rate_limit_exceeded") | Some("requests") | Some("tokens") => {
                    UpstreamErrorKind::RateLimited
                }
                Some("invalid_request_error") => UpstreamErrorKind::Rejected,
                _ => UpstreamErrorKind::Unavailable,
            };
            Err(UpstreamError::new(provider, kind, body.error.message))
        }
        Err(_) => Err(invalid(provider, "malformed stream chunk")),
    }
}

/// OpenAI's public API.
#[derive(Debug)]
pub struct OpenAi {
    wire: OpenAiWire,
}

impl OpenAi {
    /// An adapter for `config`, authenticating with `key`.
    pub fn new(client: &UpstreamClient, config: &ProviderConfig, key: ApiKey) -> Self {
        let config = ProviderConfig {
            api_key: Some(key),
            ..config.clone()
        };
        let base = config.base_url.as_deref().unwrap_or(DEFAULT_BASE);
        Self {
            wire: OpenAiWire::new(client, &config, base),
        }
    }
}

#[async_trait]
impl Provider for OpenAi {
    fn kind(&self) -> ProviderKind {
        ProviderKind::OpenAi
    }

    fn model(&self) -> &str {
        &self.wire.model
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        deadline: Instant,
    ) -> Result<ChatCompletion, UpstreamError> {
        self.wire
            .chat(&self.wire.outgoing(request, false), deadline)
            .await
    }

    async fn chat_stream(
        &self,
        request: &ChatRequest,
        deadline: Instant,
    ) -> Result<ChunkStream, UpstreamError> {
        self.wire
            .chat_stream(&self.wire.outgoing(request, true), deadline)
            .await
    }
}
