//! Metering arithmetic for one gateway call: the most a request can consume (what
//! admission reserves), the tokens a stream produced when the upstream never reported
//! usage, and the running cost a mid-stream budget is checked against.

use super::openai::{ChatChunk, ChatMessage, ChatRequest, Usage};
use crate::manifest::Pricing;
use crate::money::Micros;

/// Tokens added per message for role and framing (OpenAI counts 3–4).
const PER_MESSAGE_TOKENS: u64 = 4;

/// An upper bound on the prompt's tokens: one per byte of everything the model reads
/// (message text, names, tool calls, tool definitions, response format) plus framing per
/// message. A BPE token covers at least one byte, so real usage never exceeds it.
pub fn prompt_upper_bound(request: &ChatRequest) -> u64 {
    let messages: u64 = request
        .messages
        .iter()
        .map(|m| message_bytes(m) + PER_MESSAGE_TOKENS)
        .sum();
    let tools = request.tools.as_ref().map_or(0, json_len);
    let format = request.response_format.as_ref().map_or(0, json_len);
    messages + tools + format
}

/// An estimate of the prompt's tokens (about four characters per token) for billing a
/// stream whose upstream never reported usage.
pub fn prompt_estimate(request: &ChatRequest) -> u64 {
    request
        .messages
        .iter()
        .map(|m| text_tokens(&message_text(m)) + PER_MESSAGE_TOKENS)
        .sum()
}

/// Estimated tokens of generated text: one per four characters, rounded up.
pub fn text_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

fn message_text(m: &ChatMessage) -> String {
    let mut text = m.text_content();
    for call in m.tool_calls.iter().flatten() {
        text.push_str(&call.function.name);
        text.push_str(&call.function.arguments);
    }
    text
}

fn message_bytes(m: &ChatMessage) -> u64 {
    let name = m.name.as_ref().map_or(0, String::len);
    (message_text(m).len() + name) as u64
}

fn json_len<T: serde::Serialize>(value: &T) -> u64 {
    serde_json::to_string(value).map_or(0, |s| s.len() as u64)
}

/// The most a call may cost: the prompt's upper bound as uncached input plus every
/// generated token allowed.
pub fn max_cost(pricing: &Pricing, prompt_bound: u64, max_completion: u64) -> Micros {
    pricing.cost(prompt_bound, 0, max_completion)
}

/// The cost of reported usage (`prompt_tokens` includes cached tokens).
pub fn usage_cost(pricing: &Pricing, usage: &Usage) -> Micros {
    let cached = usage.cached_tokens().min(usage.prompt_tokens);
    pricing.cost(
        usage.prompt_tokens - cached,
        cached,
        usage.completion_tokens,
    )
}

/// What a stream has produced so far, from the chunks that passed through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamTally {
    /// Characters of content and tool-call arguments/names.
    pub chars: u64,
    /// Chunks that carried any generated content.
    pub deltas: u64,
    /// The upstream's own usage, once a chunk reported it.
    pub usage: Option<Usage>,
}

impl StreamTally {
    /// Counts one chunk. Usage is taken from any chunk that carries it (a final chunk
    /// whose `choices` is not empty included); the latest report wins.
    pub fn observe(&mut self, chunk: &ChatChunk) {
        if let Some(usage) = &chunk.usage {
            self.usage = Some(*usage);
        }
        let mut produced = false;
        for choice in &chunk.choices {
            let delta = &choice.delta;
            if let Some(text) = &delta.content {
                self.chars += text.chars().count() as u64;
                produced |= !text.is_empty();
            }
            for call in delta.tool_calls.iter().flatten() {
                if let Some(f) = &call.function {
                    let name = f.name.as_deref().unwrap_or_default();
                    let args = f.arguments.as_deref().unwrap_or_default();
                    self.chars += (name.chars().count() + args.chars().count()) as u64;
                    produced |= !(name.is_empty() && args.is_empty());
                }
            }
        }
        if produced {
            self.deltas += 1;
        }
    }

    /// Completion tokens produced so far: the upstream's count when reported, else the
    /// larger of the content chunks seen (each carries at least one token) and one token
    /// per four characters.
    pub fn completion_tokens(&self) -> u64 {
        match &self.usage {
            Some(u) => u.completion_tokens,
            None => self.deltas.max(self.chars.div_ceil(4)),
        }
    }

    /// The usage to bill: the upstream's when reported, else the estimate with
    /// `prompt_estimate` prompt tokens.
    pub fn billable(&self, prompt_estimate: u64) -> Usage {
        match &self.usage {
            Some(u) => *u,
            None => Usage::new(prompt_estimate, self.completion_tokens(), 0),
        }
    }
}

#[cfg(test)]
#[path = "tests/metering.rs"]
mod tests;
