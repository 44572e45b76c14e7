//! OpenAPI documentation of the chat types: the handlers read and write OpenAI's own
//! types (`keel_core::gateway::openai`), whose every field is passed through.

use utoipa::ToSchema;

/// An OpenAI Chat Completions request (documentation only: the body is read as OpenAI's
/// full request, every other field passed through).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ChatCompletionIn {
    /// A route name (`GET /v1/models`) or a model class such as `L1`.
    model: String,
    /// The conversation: `{role, content, tool_calls?, tool_call_id?}`.
    #[schema(value_type = Vec<Object>)]
    messages: Vec<serde_json::Value>,
    /// Stream server-sent events.
    stream: Option<bool>,
    /// `{"include_usage": true}` adds the usage chunk to a stream.
    #[schema(value_type = Option<Object>)]
    stream_options: Option<serde_json::Value>,
    /// Cap on generated tokens (clamped to the route's cap).
    max_tokens: Option<u32>,
    /// Cap on generated tokens (clamped to the route's cap).
    max_completion_tokens: Option<u32>,
    /// Function tools.
    #[schema(value_type = Option<Vec<Object>>)]
    tools: Option<Vec<serde_json::Value>>,
    /// `{"type": "json_object"}` or `json_schema`.
    #[schema(value_type = Option<Object>)]
    response_format: Option<serde_json::Value>,
    /// The end user, passed upstream.
    user: Option<String>,
}

/// An OpenAI chat completion (documentation only).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ChatCompletionOut {
    /// Completion id.
    id: String,
    /// `chat.completion`.
    object: String,
    /// The upstream model that answered.
    model: String,
    /// One choice: `{index, message, finish_reason}`.
    #[schema(value_type = Vec<Object>)]
    choices: Vec<serde_json::Value>,
    /// `{prompt_tokens, completion_tokens, total_tokens}`.
    #[schema(value_type = Object)]
    usage: serde_json::Value,
}
