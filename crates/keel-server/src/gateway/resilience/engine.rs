//! The attempt loop shared by `chat` and `chat_stream`.

use std::future::Future;
use std::sync::Arc;

use keel_core::gateway::{
    CallResult, ChatCompletion, ChatRequest, Decision, Failed, FailureClass, Policy,
};
use tokio::time::{sleep, Instant};

use super::breakers::{Breakers, Clock, Guard};
use super::stream::{self as streams};
use super::{Attempt, Failure, Target, Trace};
use crate::gateway::providers::{ChunkStream, Provider, UpstreamError, UpstreamErrorKind};

/// The engine: this node's breakers, shared by every call (cheap to clone).
#[derive(Clone, Debug, Default)]
pub struct Engine {
    breakers: Breakers,
}

impl Engine {
    /// An engine whose breakers read `clock` (tests drive it by hand).
    pub fn with_clock(clock: Clock) -> Self {
        Self {
            breakers: Breakers::with_clock(clock),
        }
    }

    /// The breakers, to read their state.
    pub fn breakers(&self) -> &Breakers {
        &self.breakers
    }

    /// A non-streamed completion from the first deployment that gives one. Each attempt
    /// ends by `policy.attempt_timeout`, the whole call by `deadline` or
    /// `policy.total_timeout`, whichever is first.
    pub async fn chat(
        &self,
        targets: &[Target],
        request: &ChatRequest,
        policy: &Policy,
        deadline: Instant,
    ) -> Result<(ChatCompletion, Trace), Failure> {
        let call = |provider: Arc<dyn Provider>, attempt_deadline: Instant, _total: Instant| async move {
            provider.chat(request, attempt_deadline).await
        };
        let (completion, guard, trace) = self.run(targets, policy, deadline, call).await?;
        guard.record(CallResult::Success);
        Ok((completion, trace))
    }

    /// A stream from the first deployment whose stream starts producing output in time; see
    /// the module docs for what happens after it started.
    pub async fn chat_stream(
        &self,
        targets: &[Target],
        request: &ChatRequest,
        policy: &Policy,
        deadline: Instant,
    ) -> Result<(ChunkStream, Trace), Failure> {
        let call = |provider: Arc<dyn Provider>, attempt_deadline: Instant, total: Instant| {
            streams::start(provider, request, policy, attempt_deadline, total)
        };
        let (started, guard, trace) = self.run(targets, policy, deadline, call).await?;
        Ok((streams::finish(started, guard, policy.idle_timeout), trace))
    }

    async fn run<T, F, Fut>(
        &self,
        targets: &[Target],
        policy: &Policy,
        deadline: Instant,
        mut call: F,
    ) -> Result<(T, Guard, Trace), Failure>
    where
        F: FnMut(Arc<dyn Provider>, Instant, Instant) -> Fut,
        Fut: Future<Output = Result<T, UpstreamError>>,
    {
        let deadline = deadline.min(Instant::now() + policy.total_timeout);
        let mut trace = Trace::default();
        let mut last: Option<UpstreamError> = None;
        for (i, target) in targets.iter().enumerate() {
            let mut attempt = 0;
            loop {
                let Some(guard) = self.breakers.acquire(&target.id, &policy.breaker) else {
                    // Opened before this call reached it, or by this call's own failures.
                    if attempt == 0 {
                        trace.skipped.push(target.id.clone());
                    }
                    if i + 1 < targets.len() {
                        fallback(&mut trace, &target.id, "circuit_open");
                    }
                    break;
                };
                attempt += 1;
                let started = Instant::now();
                if started >= deadline {
                    drop(guard);
                    let error = last.unwrap_or_else(|| timeout_before_start(target));
                    return Err(Failure { error, trace });
                }
                let attempt_deadline = (started + policy.attempt_timeout).min(deadline);
                let result = call(Arc::clone(&target.provider), attempt_deadline, deadline).await;
                let elapsed = started.elapsed();
                let error = match result {
                    Ok(value) => {
                        trace.attempts.push(Attempt {
                            deployment: target.id.clone(),
                            elapsed,
                            error: None,
                        });
                        trace.served_by = Some(target.id.clone());
                        return Ok((value, guard, trace));
                    }
                    Err(error) => error,
                };
                guard.record(breaker_result(&error));
                trace.attempts.push(Attempt {
                    deployment: target.id.clone(),
                    elapsed,
                    error: Some(error.clone()),
                });
                let failed = Failed {
                    class: classify(&error),
                    retry_after: error.retry_after,
                    attempt,
                    has_next: targets[i + 1..]
                        .iter()
                        .any(|t| self.breakers.would_admit(&t.id, &policy.breaker)),
                    remaining: deadline.saturating_duration_since(Instant::now()),
                };
                let reason = error.kind.code();
                let decision = policy.decide(&failed, rand::random());
                tracing::debug!(deployment = %target.id, attempt, error = %error, ?decision, "upstream attempt failed");
                last = Some(error);
                match decision {
                    Decision::Retry { after } => {
                        metrics::counter!("keel_gateway_retries_total",
                            "deployment" => target.id.clone(), "reason" => reason)
                        .increment(1);
                        trace.retries += 1;
                        trace.waited += after;
                        sleep(after).await;
                    }
                    Decision::FallBack => {
                        fallback(&mut trace, &target.id, reason);
                        break;
                    }
                    Decision::Fail => {
                        let error = last.unwrap_or_else(|| timeout_before_start(target));
                        return Err(Failure { error, trace });
                    }
                }
            }
        }
        let error = match last {
            Some(error) => error,
            None => {
                trace.all_open = true;
                all_open(targets.is_empty())
            }
        };
        Err(Failure { error, trace })
    }
}

fn fallback(trace: &mut Trace, from: &str, reason: &'static str) {
    metrics::counter!("keel_gateway_fallbacks_total", "from" => from.to_owned(), "reason" => reason)
        .increment(1);
    trace.fallbacks += 1;
}

/// How a failed attempt counts for retrying.
pub(crate) fn classify(error: &UpstreamError) -> FailureClass {
    if error.output_produced || error.caused_by_request() {
        return FailureClass::Final;
    }
    match error.kind {
        UpstreamErrorKind::RateLimited => FailureClass::RateLimited,
        UpstreamErrorKind::Auth => FailureClass::Deployment,
        _ if error.is_retryable() => FailureClass::Transient,
        _ => FailureClass::Final,
    }
}

/// How a failed attempt counts for the deployment's breaker: every failure but a request
/// the upstream rejected (its fault is the request's). Rate limits count: a deployment
/// that keeps refusing is shed until it recovers.
pub(crate) fn breaker_result(error: &UpstreamError) -> CallResult {
    if error.caused_by_request() {
        CallResult::Ignored
    } else {
        CallResult::Failure
    }
}

fn all_open(none_given: bool) -> UpstreamError {
    let message = if none_given {
        "no deployment to call"
    } else {
        "no deployment available: every circuit breaker is open"
    };
    UpstreamError::new("keel", UpstreamErrorKind::Unavailable, message)
}

fn timeout_before_start(target: &Target) -> UpstreamError {
    UpstreamError::new(
        target.provider.kind().as_str(),
        UpstreamErrorKind::Timeout,
        "total timeout passed",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_classified_for_retries_and_the_breaker() {
        use UpstreamErrorKind::*;
        let cases = [
            (RateLimited, FailureClass::RateLimited, CallResult::Failure),
            (Unavailable, FailureClass::Transient, CallResult::Failure),
            (Timeout, FailureClass::Transient, CallResult::Failure),
            (Connect, FailureClass::Transient, CallResult::Failure),
            (StreamCut, FailureClass::Transient, CallResult::Failure),
            (
                InvalidResponse,
                FailureClass::Transient,
                CallResult::Failure,
            ),
            (Auth, FailureClass::Deployment, CallResult::Failure),
            (Rejected, FailureClass::Final, CallResult::Ignored),
        ];
        for (kind, class, result) in cases {
            let mut e = UpstreamError::new("openai", kind, "x");
            assert_eq!(
                (classify(&e), breaker_result(&e)),
                (class, result),
                "{kind:?}"
            );
            // After output reached the caller nothing is retried, whatever the kind.
            e.output_produced = true;
            assert_eq!(classify(&e), FailureClass::Final, "{kind:?}");
        }
    }
}
