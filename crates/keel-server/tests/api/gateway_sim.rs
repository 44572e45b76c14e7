//! Helpers for provider-adapter tests against an in-process keel-sim.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use keel_core::gateway::openai::{ChatChunk, ChatMessage};
use keel_core::gateway::ChatRequest;
use keel_core::manifest::ProviderKind;
use keel_server::gateway::providers::{
    build, ApiKey, ChunkStream, ClientSettings, Provider, ProviderConfig, UpstreamClient,
    UpstreamError,
};
use keel_sim::{ModelMode, SimConfig, SimHandle};
use tokio::time::Instant;

pub const KEY: &str = "sk-test-key";

/// A simulator requiring [`KEY`], recording requests per model, with `modes`
/// (`MODEL:NAME=VALUE,...`).
pub async fn sim(modes: &[&str]) -> SimHandle {
    let model_modes = modes
        .iter()
        .map(|m| {
            let mode: ModelMode = m.parse().unwrap();
            (mode.model, mode.faults)
        })
        .collect();
    let config = SimConfig {
        api_key: Some(KEY.to_owned()),
        record_by_model: true,
        model_modes,
        ..SimConfig::default()
    };
    keel_sim::spawn(config).await.unwrap()
}

pub fn config(kind: ProviderKind, sim: &SimHandle, model: &str) -> ProviderConfig {
    let base_url = match kind {
        ProviderKind::Anthropic => sim.base_url(),
        _ => sim.openai_base(),
    };
    ProviderConfig {
        kind,
        model: model.to_owned(),
        base_url: Some(base_url),
        api_key: Some(ApiKey::new(KEY)),
        default_max_tokens: 1024,
    }
}

pub fn provider(kind: ProviderKind, sim: &SimHandle, model: &str) -> Arc<dyn Provider> {
    let client = UpstreamClient::new(ClientSettings::default()).unwrap();
    build(config(kind, sim, model), &client).unwrap()
}

/// Every kind that goes over HTTP.
pub const KINDS: [ProviderKind; 3] = [
    ProviderKind::OpenAi,
    ProviderKind::Anthropic,
    ProviderKind::OpenAiCompatible,
];

pub fn request(messages: Vec<ChatMessage>) -> ChatRequest {
    ChatRequest {
        model: "route-name".to_owned(),
        messages,
        ..ChatRequest::default()
    }
}

pub fn ask(question: &str) -> ChatRequest {
    request(vec![
        ChatMessage::text("system", "be brief"),
        ChatMessage::text("user", question),
    ])
}

pub fn within(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms)
}

/// Drains a stream: the chunks, and the error that ended it, if any.
pub async fn drain(mut stream: ChunkStream) -> (Vec<ChatChunk>, Option<UpstreamError>) {
    let mut chunks = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => chunks.push(chunk),
            Err(e) => {
                assert!(
                    stream.next().await.is_none(),
                    "a stream ends at its first error"
                );
                return (chunks, Some(e));
            }
        }
    }
    (chunks, None)
}

/// The concatenated text of chunks.
pub fn text(chunks: &[ChatChunk]) -> String {
    chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .filter_map(|c| c.delta.content.clone())
        .collect()
}
