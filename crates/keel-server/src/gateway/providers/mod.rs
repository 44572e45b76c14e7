//! Provider adapters: one upstream API each, all behind [`Provider`], all speaking OpenAI's
//! chat types to the rest of Keel. Adding a provider is one file and one arm in [`build`].
//!
//! Every call takes a deadline (a `tokio::time::Instant`): a non-streamed call must finish
//! before it, a streamed one ends with a `Timeout` error when it passes. Dropping a stream
//! drops its connection, which cancels the upstream request.

mod anthropic;
mod error;
mod http;
mod keys;
mod openai;
mod openai_compatible;
mod sim;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use keel_core::gateway::{ChatChunk, ChatCompletion, ChatRequest};
use keel_core::manifest::{Deployment, ProviderKind};
use tokio::time::Instant;

pub use anthropic::Anthropic;
pub use error::{UpstreamError, UpstreamErrorKind};
pub use http::{ClientSettings, UpstreamClient};
pub use keys::{process_env, ApiKey, KeyError, KeySource};
pub use openai::OpenAi;
pub use openai_compatible::OpenAiCompatible;
pub use sim::InProcessSim;

/// Streamed chunks of one call. After an error the stream ends; the error says whether
/// chunks had already been yielded (`output_produced`).
pub type ChunkStream = BoxStream<'static, Result<ChatChunk, UpstreamError>>;

/// One upstream deployment.
#[async_trait]
pub trait Provider: Send + Sync + fmt::Debug {
    /// The provider kind.
    fn kind(&self) -> ProviderKind;

    /// The upstream model this deployment calls (the request's `model` is replaced by it).
    fn model(&self) -> &str;

    /// A non-streamed completion.
    async fn chat(
        &self,
        request: &ChatRequest,
        deadline: Instant,
    ) -> Result<ChatCompletion, UpstreamError>;

    /// A streamed completion. The upstream is always asked for usage, so the stream ends
    /// with a usage-bearing chunk whether or not the client asked for one (the caller
    /// strips it if the client did not).
    async fn chat_stream(
        &self,
        request: &ChatRequest,
        deadline: Instant,
    ) -> Result<ChunkStream, UpstreamError>;
}

/// What an adapter needs: the deployment from the manifest, with its key resolved.
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    /// The provider kind.
    pub kind: ProviderKind,
    /// Upstream model name.
    pub model: String,
    /// Base URL as the provider's SDK takes it (`…/v1` for OpenAI kinds, the host for
    /// Anthropic); `None` for the provider's public API.
    pub base_url: Option<String>,
    /// The key, if any.
    pub api_key: Option<ApiKey>,
    /// Generated-token cap sent when the request has none (Anthropic requires one).
    pub default_max_tokens: u32,
}

/// Why a deployment cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Its key is missing or unreadable.
    #[error("{model}: {source}")]
    Key {
        /// The deployment's model.
        model: String,
        /// The cause.
        source: KeyError,
    },
    /// The provider needs a key and the deployment names none.
    #[error("{model}: provider `{kind}` needs api_key_env")]
    NoKey {
        /// The deployment's model.
        model: String,
        /// The provider.
        kind: &'static str,
    },
    /// The provider needs a base URL.
    #[error("{model}: provider `{kind}` needs base_url")]
    NoBaseUrl {
        /// The deployment's model.
        model: String,
        /// The provider.
        kind: &'static str,
    },
}

impl ProviderConfig {
    /// The config of a manifest deployment, reading its key through `env`.
    pub fn from_deployment(
        deployment: &Deployment,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, BuildError> {
        let api_key =
            match &deployment.api_key_env {
                Some(name) => Some(KeySource::Env(name.clone()).resolve(env).map_err(
                    |source| BuildError::Key {
                        model: deployment.model.clone(),
                        source,
                    },
                )?),
                None => None,
            };
        Ok(Self {
            kind: deployment.provider,
            model: deployment.model.clone(),
            base_url: deployment.base_url.clone(),
            api_key,
            default_max_tokens: 4096,
        })
    }
}

/// The adapter for a deployment.
pub fn build(
    config: ProviderConfig,
    client: &UpstreamClient,
) -> Result<Arc<dyn Provider>, BuildError> {
    let need_key = |config: &ProviderConfig| {
        config.api_key.clone().ok_or_else(|| BuildError::NoKey {
            model: config.model.clone(),
            kind: config.kind.as_str(),
        })
    };
    let need_base = |config: &ProviderConfig| {
        config
            .base_url
            .clone()
            .ok_or_else(|| BuildError::NoBaseUrl {
                model: config.model.clone(),
                kind: config.kind.as_str(),
            })
    };
    Ok(match config.kind {
        ProviderKind::OpenAi => Arc::new(OpenAi::new(client, &config, need_key(&config)?)),
        ProviderKind::Anthropic => Arc::new(Anthropic::new(client, &config, need_key(&config)?)),
        ProviderKind::OpenAiCompatible => {
            Arc::new(OpenAiCompatible::new(client, &config, &need_base(&config)?))
        }
        // With a base URL, a keel-sim process (an OpenAI-compatible server); without, the
        // simulator runs in this process.
        ProviderKind::Sim => match &config.base_url {
            Some(base) => Arc::new(OpenAiCompatible::new(client, &config, base)),
            None => Arc::new(InProcessSim::new(&config.model)),
        },
    })
}

/// Marks errors that follow yielded chunks as `output_produced`, and ends the stream at the
/// first error.
pub(crate) fn track_output(inner: ChunkStream) -> ChunkStream {
    stream::unfold(
        (inner, false, false),
        |(mut inner, produced, failed)| async move {
            if failed {
                return None;
            }
            match inner.next().await? {
                Ok(chunk) => Some((Ok(chunk), (inner, true, false))),
                Err(mut e) => {
                    e.output_produced = produced;
                    Some((Err(e), (inner, produced, true)))
                }
            }
        },
    )
    .boxed()
}
