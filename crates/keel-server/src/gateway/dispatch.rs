//! The one seam between the gateway's request path and its upstreams. Everything before
//! (admission) and after (settlement) is the caller's; this hands the ordered deployments
//! to the node's resilience engine (retries with backoff and `Retry-After`, fallback,
//! per-attempt / first-token / idle / total timeouts, circuit breakers) and reports which
//! deployment answered.

use keel_core::gateway::{ChatCompletion, ChatRequest, Policy};
use keel_core::manifest::ProviderKind;
use tokio::time::Instant;

use super::providers::{ChunkStream, UpstreamError};
use super::resilience::{Engine, Failure, Target, Trace};

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
    /// Its position in the `targets` slice given to the dispatch.
    pub position: usize,
    /// Its provider kind.
    pub kind: ProviderKind,
    /// Its upstream model.
    pub model: String,
    /// Attempts repeated on one deployment.
    pub retries: u32,
    /// Moves to the next deployment.
    pub fallbacks: u32,
}

fn served(ctx: &DispatchCtx, targets: &[Target], trace: &Trace) -> Served {
    let position = trace
        .served_by
        .as_deref()
        .and_then(|id| targets.iter().position(|t| t.id == id))
        .unwrap_or(0);
    if trace.retries > 0 || trace.fallbacks > 0 {
        tracing::info!(route = %ctx.route, request_id = %ctx.request_id, retries = trace.retries, fallbacks = trace.fallbacks, served_by = ?trace.served_by, "upstream call recovered");
    }
    let (kind, model) = targets.get(position).map_or_else(
        || (ProviderKind::Sim, String::new()),
        |t| (t.provider.kind(), t.provider.model().to_owned()),
    );
    Served {
        position,
        kind,
        model,
        retries: trace.retries,
        fallbacks: trace.fallbacks,
    }
}

fn failed(ctx: &DispatchCtx, failure: Failure) -> UpstreamError {
    tracing::warn!(
        route = %ctx.route,
        request_id = %ctx.request_id,
        error = %failure.error,
        attempts = failure.trace.attempts.len(),
        all_open = failure.trace.all_open,
        "upstream call failed"
    );
    failure.error
}

/// Calls the route's deployments for one request (`targets` in the order to try),
/// returning the completion and which deployment served it.
pub async fn chat(
    ctx: &DispatchCtx,
    engine: &Engine,
    targets: &[Target],
    request: &ChatRequest,
    policy: &Policy,
    deadline: Instant,
) -> Result<(ChatCompletion, Served), UpstreamError> {
    match engine.chat(targets, request, policy, deadline).await {
        Ok((completion, trace)) => Ok((completion, served(ctx, targets, &trace))),
        Err(failure) => Err(failed(ctx, failure)),
    }
}

/// As [`chat`], streamed: returned once a deployment has produced output within the
/// first-token timeout; after that nothing is retried.
pub async fn chat_stream(
    ctx: &DispatchCtx,
    engine: &Engine,
    targets: &[Target],
    request: &ChatRequest,
    policy: &Policy,
    deadline: Instant,
) -> Result<(ChunkStream, Served), UpstreamError> {
    match engine.chat_stream(targets, request, policy, deadline).await {
        Ok((stream, trace)) => Ok((stream, served(ctx, targets, &trace))),
        Err(failure) => Err(failed(ctx, failure)),
    }
}
