//! Streams: wait for the first output within the time-to-first-token timeout (so a stream
//! that never starts can still be retried), then pass chunks through with an idle timeout,
//! reporting the outcome to the deployment's breaker when the stream ends.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use keel_core::gateway::{CallResult, ChatChunk, ChatRequest, Policy};
use tokio::time::{timeout, timeout_at, Instant};

use super::breakers::Guard;
use super::engine::breaker_result;
use crate::gateway::providers::{ChunkStream, Provider, UpstreamError, UpstreamErrorKind};

/// Chunks held back at most while waiting for output (role-only chunks and the like).
const MAX_HELD: usize = 16;

/// A stream that has produced output: the chunks so far, and the rest.
pub(super) struct Started {
    provider: &'static str,
    held: Vec<ChatChunk>,
    rest: ChunkStream,
}

/// Whether a chunk carries output the caller must see (so nothing may be retried after it).
fn has_output(chunk: &ChatChunk) -> bool {
    chunk.usage.is_some()
        || chunk.choices.iter().any(|c| {
            c.finish_reason.is_some()
                || c.delta.content.as_deref().is_some_and(|t| !t.is_empty())
                || c.delta.tool_calls.is_some()
                // Refusals, reasoning text and other extensions; `"refusal": null` is not.
                || c.delta.extra.values().any(|v| !(v.is_null() || v == ""))
        })
}

/// One streamed attempt, up to its first output.
pub(super) async fn start(
    provider: Arc<dyn Provider>,
    request: &ChatRequest,
    policy: &Policy,
    attempt_deadline: Instant,
    total: Instant,
) -> Result<Started, UpstreamError> {
    let name = provider.kind().as_str();
    let first_by = attempt_deadline.min(Instant::now() + policy.ttft_timeout);
    let no_output = || {
        UpstreamError::new(
            name,
            UpstreamErrorKind::Timeout,
            "no output before the time-to-first-token timeout",
        )
    };
    let mut rest = timeout_at(first_by, provider.chat_stream(request, total))
        .await
        .map_err(|_| no_output())??;
    let mut held = Vec::new();
    loop {
        match timeout_at(first_by, rest.next()).await {
            Err(_) => return Err(no_output()),
            Ok(None) => {
                let message = "stream ended before any output";
                return Err(UpstreamError::new(
                    name,
                    UpstreamErrorKind::StreamCut,
                    message,
                ));
            }
            Ok(Some(Err(mut error))) => {
                // Held chunks never reached the caller: the attempt may still be retried.
                error.output_produced = false;
                return Err(error);
            }
            Ok(Some(Ok(chunk))) => {
                let output = has_output(&chunk);
                held.push(chunk);
                if output || held.len() >= MAX_HELD {
                    return Ok(Started {
                        provider: name,
                        held,
                        rest,
                    });
                }
            }
        }
    }
}

struct Flow {
    rest: ChunkStream,
    guard: Option<Guard>,
    idle: Duration,
    provider: &'static str,
}

/// The stream handed to the caller: the held chunks, then the rest with an idle timeout.
/// Its end is the breaker's outcome; dropping it early (the client left) counts as nothing.
pub(super) fn finish(started: Started, guard: Guard, idle: Duration) -> ChunkStream {
    let held = stream::iter(started.held.into_iter().map(Ok));
    let flow = Flow {
        rest: started.rest,
        guard: Some(guard),
        idle,
        provider: started.provider,
    };
    let rest = stream::unfold(flow, |mut flow| async move {
        // No guard left: the stream already ended.
        flow.guard.as_ref()?;
        let item = match timeout(flow.idle, flow.rest.next()).await {
            Err(_) => Some(Err(UpstreamError::new(
                flow.provider,
                UpstreamErrorKind::Timeout,
                "no chunk within the idle timeout",
            ))),
            Ok(item) => item,
        };
        match item {
            None => {
                if let Some(guard) = flow.guard.take() {
                    guard.record(CallResult::Success);
                }
                None
            }
            Some(Ok(chunk)) => Some((Ok(chunk), flow)),
            Some(Err(mut error)) => {
                error.output_produced = true;
                if let Some(guard) = flow.guard.take() {
                    guard.record(breaker_result(&error));
                }
                Some((Err(error), flow))
            }
        }
    });
    held.chain(rest).boxed()
}
