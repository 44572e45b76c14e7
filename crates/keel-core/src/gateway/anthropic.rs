//! Anthropic Messages API wire types: request, response, streamed events and errors.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The `anthropic-version` header value Keel speaks.
pub const API_VERSION: &str = "2023-06-01";

/// `POST /v1/messages` request body.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MessagesRequest {
    /// Upstream model.
    pub model: String,
    /// Cap on generated tokens (required by the API).
    pub max_tokens: u32,
    /// Alternating user and assistant turns.
    pub messages: Vec<Message>,
    /// System prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Custom stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    /// Stream server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Sampling temperature, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Tools the model may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// How the model should use the tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// `{"user_id": ...}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// Everything else (`top_k`, `thinking`...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Request metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// An opaque id of the end user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// One turn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `user` or `assistant`.
    pub role: String,
    /// The turn's blocks.
    pub content: Vec<ContentBlock>,
}

/// A content block, in requests and responses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image.
    Image {
        /// `{"type":"base64","media_type","data"}` or `{"type":"url","url"}`.
        source: Value,
    },
    /// A tool call by the assistant.
    ToolUse {
        /// Call id (`toolu_...`).
        id: String,
        /// Tool name.
        name: String,
        /// Arguments as a JSON object.
        input: Value,
    },
    /// The result of a tool call, sent by the user.
    ToolResult {
        /// The call answered.
        tool_use_id: String,
        /// A string or a list of blocks.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<Value>,
        /// Whether the tool failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_error: Option<bool>,
    },
    /// Extended thinking (dropped when translating to OpenAI).
    Thinking {
        /// The reasoning text.
        thinking: String,
        /// Integrity signature.
        #[serde(default)]
        signature: Option<String>,
    },
    /// A block type Keel does not know; ignored.
    #[serde(other)]
    Unknown,
}

/// A tool definition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the input.
    pub input_schema: Value,
}

/// `tool_choice`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolChoice {
    /// `auto`, `any`, `tool` or `none`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The tool, when `type` is `tool`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// At most one tool call per turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_parallel_tool_use: Option<bool>,
}

/// Token counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Uncached input tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Generated tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Input tokens written to the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Input tokens read from the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
}

/// A non-streamed response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessagesResponse {
    /// Message id (`msg_...`).
    pub id: String,
    /// Always `assistant`.
    pub role: String,
    /// The model that answered.
    pub model: String,
    /// The answer's blocks.
    pub content: Vec<ContentBlock>,
    /// `end_turn`, `max_tokens`, `stop_sequence`, `tool_use`, `pause_turn`, `refusal`.
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// The stop sequence hit, if any.
    #[serde(default)]
    pub stop_sequence: Option<String>,
    /// Token counts.
    pub usage: Usage,
}

/// One server-sent event of a streamed response (the `data` of each event).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// First event: the message with empty content and the input usage.
    MessageStart {
        /// The message so far.
        message: MessagesResponse,
    },
    /// A block begins (`text` with empty text, or `tool_use` with empty input).
    ContentBlockStart {
        /// Block position.
        index: u32,
        /// The block's start.
        content_block: ContentBlock,
    },
    /// Keep-alive.
    Ping,
    /// More of a block.
    ContentBlockDelta {
        /// Block position.
        index: u32,
        /// What is new.
        delta: BlockDelta,
    },
    /// A block ends.
    ContentBlockStop {
        /// Block position.
        index: u32,
    },
    /// Top-level changes: the stop reason and the cumulative output usage.
    MessageDelta {
        /// Stop reason and sequence.
        delta: MessageDeltaBody,
        /// Cumulative usage so far.
        #[serde(default)]
        usage: Usage,
    },
    /// Last event.
    MessageStop,
    /// An error in the middle of the stream (e.g. `overloaded_error`).
    Error {
        /// The error.
        error: ErrorDetail,
    },
    /// An event type Keel does not know; ignored as the API asks.
    #[serde(other)]
    Unknown,
}

/// The delta of a `content_block_delta` event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockDelta {
    /// More text.
    TextDelta {
        /// The text.
        text: String,
    },
    /// More of a tool call's input JSON.
    InputJsonDelta {
        /// A piece of JSON text.
        partial_json: String,
    },
    /// More extended thinking.
    ThinkingDelta {
        /// The text.
        thinking: String,
    },
    /// Any other delta (signatures, citations); ignored.
    #[serde(other)]
    Unknown,
}

/// The delta of a `message_delta` event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageDeltaBody {
    /// Why generation stopped.
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// The stop sequence hit, if any.
    #[serde(default)]
    pub stop_sequence: Option<String>,
}

/// Anthropic's error body: `{"type":"error","error":{"type","message"},"request_id"}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The inner error object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// `invalid_request_error`, `rate_limit_error`, `overloaded_error`...
    #[serde(rename = "type", default)]
    pub kind: String,
    /// For humans.
    #[serde(default)]
    pub message: String,
}
