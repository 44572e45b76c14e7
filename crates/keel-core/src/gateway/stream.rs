//! Streaming translation: Anthropic stream events in, OpenAI chunks out, usage at the end.

use serde_json::Map;

use super::anthropic::{self as an, BlockDelta, ContentBlock, StreamEvent};
use super::from_anthropic::{finish_reason, usage as openai_usage};
use super::openai::{ChatChunk, ChunkChoice, Delta, FunctionCallDelta, ToolCallDelta, Usage};

/// Why a stream cannot go on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The upstream sent an `error` event.
    #[error("upstream error event `{}`: {}", .0.kind, .0.message)]
    Upstream(an::ErrorDetail),
    /// Events out of order (content before `message_start`, a delta for an unknown block).
    #[error("malformed event stream: {0}")]
    Protocol(&'static str),
}

/// The state of one translated stream.
#[derive(Debug)]
pub struct AnthropicToOpenAi {
    id: String,
    model: String,
    created: i64,
    include_usage: bool,
    started: bool,
    done: bool,
    /// (content block index, OpenAI tool call index) of each `tool_use` block.
    tool_blocks: Vec<(u32, u32)>,
    input: an::Usage,
    output_tokens: u64,
    finish: Option<&'static str>,
}

impl AnthropicToOpenAi {
    /// A translator stamping chunks `created`; with `include_usage`, a final chunk with
    /// empty `choices` carries the usage, as OpenAI's `stream_options.include_usage` does.
    pub fn new(created: i64, include_usage: bool) -> Self {
        Self {
            id: String::new(),
            model: String::new(),
            created,
            include_usage,
            started: false,
            done: false,
            tool_blocks: Vec::new(),
            input: an::Usage::default(),
            output_tokens: 0,
            finish: None,
        }
    }

    /// Whether `message_stop` was seen.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Usage so far (the final usage once done); what to bill if the stream is cut.
    pub fn usage(&self) -> Usage {
        let mut usage = self.input;
        usage.output_tokens = self.output_tokens;
        openai_usage(&usage)
    }

    /// The chunks (possibly none) an event translates to.
    pub fn on_event(&mut self, event: StreamEvent) -> Result<Vec<ChatChunk>, StreamError> {
        match event {
            StreamEvent::MessageStart { message } => {
                self.started = true;
                self.id = message.id;
                self.model = message.model;
                self.input = message.usage;
                self.output_tokens = message.usage.output_tokens;
                let delta = Delta {
                    role: Some("assistant".to_owned()),
                    content: Some(String::new()),
                    ..Delta::default()
                };
                Ok(vec![self.chunk(delta, None)])
            }
            StreamEvent::Ping | StreamEvent::Unknown => Ok(Vec::new()),
            StreamEvent::Error { error } => Err(StreamError::Upstream(error)),
            _ if !self.started => Err(StreamError::Protocol("content before message_start")),
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => Ok(self.block_start(index, content_block)),
            StreamEvent::ContentBlockDelta { index, delta } => self.block_delta(index, delta),
            StreamEvent::ContentBlockStop { .. } => Ok(Vec::new()),
            StreamEvent::MessageDelta { delta, usage } => {
                // `output_tokens` here is cumulative, not an increment.
                self.output_tokens = usage.output_tokens;
                if usage.input_tokens > 0 {
                    self.input.input_tokens = usage.input_tokens;
                }
                let finish = finish_reason(delta.stop_reason.as_deref());
                self.finish = Some(finish);
                Ok(vec![self.chunk(Delta::default(), Some(finish))])
            }
            StreamEvent::MessageStop => {
                self.done = true;
                let mut chunks = Vec::new();
                if self.finish.is_none() {
                    self.finish = Some("stop");
                    chunks.push(self.chunk(Delta::default(), Some("stop")));
                }
                if self.include_usage {
                    let mut last = self.chunk(Delta::default(), None);
                    last.choices.clear();
                    last.usage = Some(self.usage());
                    chunks.push(last);
                }
                Ok(chunks)
            }
        }
    }

    fn block_start(&mut self, index: u32, block: ContentBlock) -> Vec<ChatChunk> {
        match block {
            ContentBlock::Text { text } if !text.is_empty() => vec![self.text_chunk(text)],
            ContentBlock::ToolUse { id, name, .. } => {
                let call = u32::try_from(self.tool_blocks.len()).unwrap_or(u32::MAX);
                self.tool_blocks.push((index, call));
                let delta = ToolCallDelta {
                    index: call,
                    id: Some(id),
                    kind: Some("function".to_owned()),
                    function: Some(FunctionCallDelta {
                        name: Some(name),
                        arguments: Some(String::new()),
                    }),
                };
                vec![self.tool_chunk(delta)]
            }
            _ => Vec::new(),
        }
    }

    fn block_delta(
        &mut self,
        index: u32,
        delta: BlockDelta,
    ) -> Result<Vec<ChatChunk>, StreamError> {
        match delta {
            BlockDelta::TextDelta { text } => Ok(vec![self.text_chunk(text)]),
            BlockDelta::InputJsonDelta { partial_json } => {
                let call = self
                    .tool_blocks
                    .iter()
                    .find(|(block, _)| *block == index)
                    .map(|(_, call)| *call)
                    .ok_or(StreamError::Protocol(
                        "input_json_delta for a non-tool block",
                    ))?;
                let delta = ToolCallDelta {
                    index: call,
                    function: Some(FunctionCallDelta {
                        name: None,
                        arguments: Some(partial_json),
                    }),
                    ..ToolCallDelta::default()
                };
                Ok(vec![self.tool_chunk(delta)])
            }
            BlockDelta::ThinkingDelta { .. } | BlockDelta::Unknown => Ok(Vec::new()),
        }
    }

    fn text_chunk(&self, text: String) -> ChatChunk {
        let delta = Delta {
            content: Some(text),
            ..Delta::default()
        };
        self.chunk(delta, None)
    }

    fn tool_chunk(&self, call: ToolCallDelta) -> ChatChunk {
        let delta = Delta {
            tool_calls: Some(vec![call]),
            ..Delta::default()
        };
        self.chunk(delta, None)
    }

    fn chunk(&self, delta: Delta, finish: Option<&str>) -> ChatChunk {
        ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish.map(str::to_owned),
                extra: Map::new(),
            }],
            usage: None,
            extra: Map::new(),
        }
    }
}
