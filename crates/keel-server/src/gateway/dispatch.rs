//! The one seam between the gateway's request path and its upstreams. Everything before
//! (admission) and after (settlement) is the caller's; this decides which deployment
//! answers. For now: each deployment once, in the order given, moving on after an error
//! that allows fallback. The resilience engine (retries, backoff, circuit breakers,
//! per-attempt and first-token timeouts) replaces these bodies, not their signatures.

use std::sync::Arc;

use keel_core::gateway::{ChatCompletion, ChatRequest};
use keel_core::manifest::ProviderKind;
use tokio::time::Instant;

use super::providers::{ChunkStream, Provider, UpstreamError, UpstreamErrorKind};

/// What a dispatch knows about the call beyond the request.
#[derive(Clone, Debug)]
pub struct DispatchCtx {
    /// The route (client-facing model), for logs and metrics.
    pub route: String,
    /// The request id, for logs.
    pub request_id: String,
}

/// Which deployment served a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// Its position in the `deployments` slice given to the dispatch.
    pub position: usize,
    /// Its provider kind.
    pub kind: ProviderKind,
    /// Its upstream model.
    pub model: String,
}

impl Served {
    fn of(position: usize, provider: &dyn Provider) -> Self {
        Self {
            position,
            kind: provider.kind(),
            model: provider.model().to_owned(),
        }
    }
}

/// Whether the next deployment may be tried after `error`.
fn falls_back(error: &UpstreamError) -> bool {
    !error.output_produced && error.kind != UpstreamErrorKind::Rejected
}

fn none_left() -> UpstreamError {
    UpstreamError::new(
        "gateway",
        UpstreamErrorKind::Unavailable,
        "no deployment of this route is available",
    )
}

/// Calls the route's deployments for one request (ordered by weighted choice), returning
/// the completion and which deployment served it.
pub async fn chat(
    ctx: &DispatchCtx,
    deployments: &[Arc<dyn Provider>],
    request: &ChatRequest,
    deadline: Instant,
) -> Result<(ChatCompletion, Served), UpstreamError> {
    let mut last = none_left();
    for (position, provider) in deployments.iter().enumerate() {
        match provider.chat(request, deadline).await {
            Ok(completion) => return Ok((completion, Served::of(position, provider.as_ref()))),
            Err(e) => {
                tracing::warn!(route = %ctx.route, request_id = %ctx.request_id, error = %e, "upstream call failed");
                let next = falls_back(&e);
                last = e;
                if !next {
                    break;
                }
            }
        }
    }
    Err(last)
}

/// As [`chat`], streamed: a deployment that fails before its first chunk is left for the
/// next; once the stream is returned, nothing is retried.
pub async fn chat_stream(
    ctx: &DispatchCtx,
    deployments: &[Arc<dyn Provider>],
    request: &ChatRequest,
    deadline: Instant,
) -> Result<(ChunkStream, Served), UpstreamError> {
    let mut last = none_left();
    for (position, provider) in deployments.iter().enumerate() {
        match provider.chat_stream(request, deadline).await {
            Ok(stream) => return Ok((stream, Served::of(position, provider.as_ref()))),
            Err(e) => {
                tracing::warn!(route = %ctx.route, request_id = %ctx.request_id, error = %e, "upstream stream failed to open");
                let next = falls_back(&e);
                last = e;
                if !next {
                    break;
                }
            }
        }
    }
    Err(last)
}
