//! The LLM gateway's pure model: OpenAI and Anthropic wire types, translation between them
//! (streaming included), token caps, retry timing, the resilience policy and circuit breaker and server-sent event decoding. No I/O:
//! the provider adapters in `keel-server` move the bytes.

pub mod anthropic;
pub mod breaker;
pub mod from_anthropic;
pub mod limits;
pub mod metering;
pub mod openai;
pub mod policy;
pub mod precheck;
pub mod retry;
pub mod routing;
pub mod sse;
pub mod stream;
pub mod to_anthropic;

#[cfg(test)]
mod tests;

pub use breaker::{Breaker, BreakerConfig, BreakerState, CallResult, Permit};
pub use from_anthropic::to_chat_completion;
pub use limits::{clamp_max_tokens, MaxTokensField};
pub use openai::{ChatChunk, ChatCompletion, ChatRequest};
pub use policy::{Decision, Failed, FailureClass, Policy};
pub use retry::{parse_retry_after, Backoff};
pub use routing::{resolve, visible_routes, weighted_order, Resolved, RouteError};
pub use sse::{SseDecoder, SseEvent};
pub use stream::{AnthropicToOpenAi, StreamError};
pub use to_anthropic::{to_messages_request, TranslateError};
