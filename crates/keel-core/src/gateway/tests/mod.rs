//! Unit tests of the gateway model, against fixtures in `../fixtures`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod breaker;
mod policy;
mod sse;
mod stream;
mod translate;
mod wire;

const OPENAI_REQUEST: &str = include_str!("../fixtures/openai_request.json");
const ANTHROPIC_REQUEST: &str = include_str!("../fixtures/anthropic_request.json");
const ANTHROPIC_RESPONSE: &str = include_str!("../fixtures/anthropic_response.json");
const ANTHROPIC_STREAM: &str = include_str!("../fixtures/anthropic_stream.sse");
