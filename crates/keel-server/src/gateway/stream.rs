//! The SSE body of a streamed call, in OpenAI's format: `data: {chunk}\n\n` per chunk, a
//! comment `: keel-cost-micros=N` with the call's final cost, then `data: [DONE]\n\n`.
//!
//! Every chunk is tallied (usage from any chunk that carries it; otherwise an estimate
//! from the text). The usage chunk the upstream always sends is stripped unless the client
//! asked for it. A chunk that would take the running cost past the call's budget is not
//! sent: the stream ends with `data: {"error": {"code": "budget_exceeded", ...}}`. An
//! upstream failure mid-stream ends it with the upstream's error event. If the client goes
//! away, the body is dropped: the upstream stream with it (its connection closed, which
//! cancels the request) and the guard settles what was produced.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use futures::stream::{self, StreamExt};
use keel_core::gateway::metering::{usage_cost, StreamTally};
use keel_core::gateway::ChatChunk;
use keel_core::manifest::Pricing;
use keel_core::money::Micros;
use serde_json::json;

use super::dispatch::Served;
use super::providers::ChunkStream;
use super::settle::{Call, End};

/// What the body needs.
pub struct Setup {
    /// The call, for settlement.
    pub call: Arc<Call>,
    /// The upstream's chunks.
    pub upstream: ChunkStream,
    /// Who serves it.
    pub served: Served,
    /// Its prices.
    pub pricing: Option<Pricing>,
    /// Whether the client asked for the usage chunk.
    pub include_usage: bool,
    /// The most the call may cost (its cost reservation), if budgeted.
    pub budget: Option<i64>,
    /// Prompt tokens to bill if the upstream never reports usage.
    pub prompt_estimate: u64,
}

/// Settles once: at the end of the stream, or when the body is dropped before it.
struct Guard {
    call: Arc<Call>,
    served: Served,
    pricing: Option<Pricing>,
    prompt_estimate: u64,
    tally: StreamTally,
    settled: bool,
}

impl Guard {
    fn end(&self, outcome: &'static str) -> End {
        let produced = self.tally.deltas > 0 || self.tally.usage.is_some();
        End {
            served: Some(self.served.clone()),
            pricing: self.pricing,
            usage: produced.then(|| self.tally.billable(self.prompt_estimate)),
            outcome,
        }
    }

    async fn settle(&mut self, outcome: &'static str) -> Micros {
        self.settled = true;
        let end = self.end(outcome);
        // Detached: the body may be dropped while this runs; the settlement still completes.
        self.call.settle_detached(end).await
    }

    fn cost(&self, tally: &StreamTally) -> i64 {
        let Some(pricing) = &self.pricing else {
            return 0;
        };
        match &tally.usage {
            Some(usage) => usage_cost(pricing, usage).0,
            None => {
                pricing
                    .cost(self.prompt_estimate, 0, tally.completion_tokens())
                    .0
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        self.settled = true;
        let end = self.end("client_closed");
        let call = self.call.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                call.settle(&end).await;
            });
        } else {
            tracing::error!(request_id = %call.request_id, "no runtime to settle an abandoned stream");
        }
    }
}

struct Run {
    upstream: ChunkStream,
    guard: Guard,
    include_usage: bool,
    budget: Option<i64>,
    finished: bool,
}

/// The response body.
pub fn body(setup: Setup) -> Body {
    let run = Run {
        upstream: setup.upstream,
        guard: Guard {
            call: setup.call,
            served: setup.served,
            pricing: setup.pricing,
            prompt_estimate: setup.prompt_estimate,
            tally: StreamTally::default(),
            settled: false,
        },
        include_usage: setup.include_usage,
        budget: setup.budget,
        finished: false,
    };
    Body::from_stream(stream::unfold(run, step).map(Ok::<Bytes, Infallible>))
}

async fn step(mut run: Run) -> Option<(Bytes, Run)> {
    if run.finished {
        return None;
    }
    loop {
        match run.upstream.next().await {
            Some(Ok(chunk)) => {
                if let Some(out) = deliver(&mut run, chunk).await {
                    return Some((out, run));
                }
            }
            Some(Err(e)) => {
                run.finished = true;
                run.upstream = stream::empty().boxed();
                let cost = run.guard.settle("upstream_cut").await;
                let kind = e.kind.code();
                let message = "the upstream stream failed before it was complete";
                let out = format!(
                    "{}{}",
                    error_event(&run.guard.call.request_id, kind, message, "api_error"),
                    cost_comment(cost)
                );
                return Some((Bytes::from(out), run));
            }
            None => {
                run.finished = true;
                let cost = run.guard.settle("ok").await;
                let out = format!("{}data: [DONE]\n\n", cost_comment(cost));
                return Some((Bytes::from(out), run));
            }
        }
    }
}

/// The bytes to send for one upstream chunk; `None` to send nothing (a stripped usage chunk).
async fn deliver(run: &mut Run, mut chunk: ChatChunk) -> Option<Bytes> {
    let mut next = run.guard.tally.clone();
    next.observe(&chunk);
    let produced = next.deltas > run.guard.tally.deltas;
    if let Some(budget) = run.budget {
        if produced && run.guard.cost(&next) > budget {
            run.finished = true;
            // Close the upstream connection first: nothing more is wanted from it.
            run.upstream = stream::empty().boxed();
            let cost = run.guard.settle("budget_exceeded").await;
            let message = "the budget for this request is spent; the response was cut";
            let out = format!(
                "{}{}",
                error_event(
                    &run.guard.call.request_id,
                    "budget_exceeded",
                    message,
                    "billing_error"
                ),
                cost_comment(cost)
            );
            return Some(Bytes::from(out));
        }
    }
    run.guard.tally = next;
    if !run.include_usage && chunk.usage.is_some() {
        chunk.usage = None;
        if chunk.choices.is_empty() {
            return None;
        }
    }
    match serde_json::to_string(&chunk) {
        Ok(json) => Some(Bytes::from(format!("data: {json}\n\n"))),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialise a chunk");
            None
        }
    }
}

fn error_event(request_id: &str, code: &str, message: &str, kind: &str) -> String {
    let body = json!({"error": {
        "code": code, "message": message, "type": kind, "param": null, "request_id": request_id,
    }});
    format!("data: {body}\n\n")
}

fn cost_comment(cost: Micros) -> String {
    format!(": keel-cost-micros={}\n\n", cost.0)
}
