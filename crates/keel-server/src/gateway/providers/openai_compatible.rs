//! Any OpenAI-compatible server (vLLM, Ollama, LM Studio, a keel-sim process): OpenAI's
//! wire format at a configured base URL, with an optional key.

use async_trait::async_trait;
use keel_core::gateway::{ChatCompletion, ChatRequest};
use keel_core::manifest::ProviderKind;
use tokio::time::Instant;

use super::openai::OpenAiWire;
use super::{ChunkStream, Provider, ProviderConfig, UpstreamClient, UpstreamError};

/// An OpenAI-compatible upstream.
#[derive(Debug)]
pub struct OpenAiCompatible {
    wire: OpenAiWire,
}

impl OpenAiCompatible {
    /// An adapter for `config` at `base` (e.g. `http://vllm:8000/v1`).
    pub fn new(client: &UpstreamClient, config: &ProviderConfig, base: &str) -> Self {
        Self {
            wire: OpenAiWire::new(client, config, base),
        }
    }

    /// Many compatible servers know only the older `max_tokens`.
    fn adapt(&self, mut request: ChatRequest) -> ChatRequest {
        if let Some(cap) = request.max_completion_tokens.take() {
            request.max_tokens = Some(cap);
        }
        request
    }
}

#[async_trait]
impl Provider for OpenAiCompatible {
    fn kind(&self) -> ProviderKind {
        self.wire.kind
    }

    fn model(&self) -> &str {
        &self.wire.model
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        deadline: Instant,
    ) -> Result<ChatCompletion, UpstreamError> {
        let body = self.adapt(self.wire.outgoing(request, false));
        self.wire.chat(&body, deadline).await
    }

    async fn chat_stream(
        &self,
        request: &ChatRequest,
        deadline: Instant,
    ) -> Result<ChunkStream, UpstreamError> {
        let body = self.adapt(self.wire.outgoing(request, true));
        self.wire.chat_stream(&body, deadline).await
    }
}
