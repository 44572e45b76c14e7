//! The resilience engine: calls an ordered list of deployments with retries, fallbacks,
//! timeouts and a circuit breaker per deployment, and reports what happened.
//!
//! # Public API (what `gateway/dispatch.rs` calls)
//!
//! ```ignore
//! let engine = Engine::default();            // one per node, shared (cheap to clone)
//! let targets = vec![Target::new("chat-small/0", provider0), Target::new("chat-small/1", provider1)];
//! let policy = route.policy();               // keel_core::gateway::Policy, from the manifest
//! let deadline = Instant::now() + policy.total_timeout; // or the caller's own, earlier one
//! match engine.chat(&targets, &request, &policy, deadline).await {
//!     Ok((completion, trace)) => { /* trace.served_by, trace.attempts, … */ }
//!     Err(Failure { error, trace }) => { /* error.kind.code(), error.status, … */ }
//! }
//! let (stream, trace) = engine.chat_stream(&targets, &request, &policy, deadline).await?;
//! ```
//!
//! - `targets` are tried in order; each has a stable id (`route/index`) naming its breaker
//!   and its metric labels. Weighted ordering is the caller's.
//! - The rules after a failed attempt are [`keel_core::gateway::policy`]'s: no retry or
//!   fallback for a request the upstream rejected (400/404/422 …); 429 falls back first and
//!   is retried after exactly its `Retry-After` only on the last deployment; 5xx, timeouts,
//!   connection errors and broken bodies are retried with full-jitter backoff (or the
//!   upstream's `Retry-After`) up to `attempts`, then fall back; no wait goes past the
//!   total deadline.
//! - A deployment whose breaker is open is skipped (a fallback with reason
//!   `circuit_open`). When none could be called, the error is `Unavailable`
//!   (`upstream_unavailable`, HTTP 503) with [`Trace::all_open`] set.
//! - `chat_stream` returns only once an attempt has produced output (the first chunk with
//!   content, a tool call, a finish reason or usage) within `ttft_timeout`; chunks before it
//!   (the role chunk) are held back and returned with it. A stream that never starts is
//!   retried or falls back like any failure. Once returned, nothing is retried: a later
//!   failure (including `idle_timeout` of silence between chunks, or the total deadline)
//!   ends the stream with an error whose `output_produced` is true.
//! - Metrics: `keel_gateway_breaker_state{deployment}` (0 closed, 1 half-open, 2 open),
//!   `keel_gateway_retries_total{deployment,reason}`,
//!   `keel_gateway_fallbacks_total{from,reason}`; `reason` is an error code
//!   (`upstream_rate_limited`, …) or `circuit_open`.

mod breakers;
mod engine;
mod stream;

use std::sync::Arc;
use std::time::Duration;

pub use breakers::{tokio_clock, Breakers, Clock, Guard};
pub use engine::Engine;

use super::providers::{Provider, UpstreamError};

/// Registers the help text of the engine's metrics (called once by the metrics setup).
pub fn describe_metrics() {
    metrics::describe_gauge!(
        "keel_gateway_breaker_state",
        "Circuit breaker state per deployment on this node: 0 closed, 1 half-open, 2 open"
    );
    metrics::describe_counter!(
        "keel_gateway_retries_total",
        "Upstream attempts repeated on the same deployment, by deployment and error code"
    );
    metrics::describe_counter!(
        "keel_gateway_fallbacks_total",
        "Moves to the next deployment, by deployment left and reason"
    );
}

/// One deployment to try: its stable id (`route/index`) and its adapter.
#[derive(Clone, Debug)]
pub struct Target {
    /// Names the deployment's breaker and its metric labels; stable across reloads.
    pub id: String,
    /// The adapter.
    pub provider: Arc<dyn Provider>,
}

impl Target {
    /// A target.
    pub fn new(id: impl Into<String>, provider: Arc<dyn Provider>) -> Self {
        Self {
            id: id.into(),
            provider,
        }
    }
}

/// One upstream attempt.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// The deployment id.
    pub deployment: String,
    /// How long the attempt took (streams: until output started or the attempt failed).
    pub elapsed: Duration,
    /// Its failure; `None` for the attempt that served.
    pub error: Option<UpstreamError>,
}

/// What happened during one call.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// The deployment that served the call.
    pub served_by: Option<String>,
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
    /// Attempts that repeated one on the same deployment.
    pub retries: u32,
    /// Moves to a later deployment (after failures, or past an open breaker).
    pub fallbacks: u32,
    /// Deployments not called at all because their breaker was open.
    pub skipped: Vec<String>,
    /// Time spent waiting between attempts (backoff and `Retry-After`).
    pub waited: Duration,
    /// No deployment could be called: every breaker was open (or the list was empty).
    pub all_open: bool,
}

/// A call that failed: the error to report, and what was tried.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{error}")]
pub struct Failure {
    /// The last attempt's error, or `Unavailable` when every breaker was open.
    pub error: UpstreamError,
    /// What was tried.
    pub trace: Trace,
}
