//! What a route does when an upstream call fails: the resolved resilience policy (retries,
//! timeouts, breaker settings) and the pure decision after each failed attempt.
//!
//! The rules, in order:
//! - a failure caused by the request (400/404/422, or anything after output reached the
//!   caller) ends the call at once: no retry, no fallback;
//! - a refused key (401/403) falls back to the next deployment without retrying;
//! - a rate limit (429) **falls back first**: the next deployment has its own quota, so the
//!   caller does not wait. On the last deployment it is retried after exactly its
//!   `Retry-After` (or a backoff delay when there is none);
//! - any other transient failure (5xx, timeout, connection, broken body) is retried on the
//!   same deployment up to `attempts`, then falls back; one whose `Retry-After` is longer
//!   than the backoff's `max` falls back at once when another deployment can take the call;
//! - a wait (backoff or `Retry-After`, never multiplied) that would not end before the total
//!   deadline is not taken: the call falls back, or fails, at once.

use std::time::Duration;

use super::breaker::BreakerConfig;
use super::retry::Backoff;

/// A route's resolved resilience policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Attempts per deployment, the first included (1 = no retry).
    pub attempts: u32,
    /// Backoff between attempts on one deployment.
    pub backoff: Backoff,
    /// Limit on one non-streamed attempt, and on a stream's wait for its first output.
    pub attempt_timeout: Duration,
    /// Limit on the whole call: every attempt and wait, and a stream to its end.
    pub total_timeout: Duration,
    /// Streams: limit on the wait for the first output chunk of an attempt.
    pub ttft_timeout: Duration,
    /// Streams: limit on the silence between two chunks once output has started.
    pub idle_timeout: Duration,
    /// Circuit breaker settings for each deployment of the route.
    pub breaker: BreakerConfig,
}

/// Default attempts per deployment.
pub const DEFAULT_ATTEMPTS: u32 = 2;
/// Default first backoff ceiling.
pub const DEFAULT_BASE: Duration = Duration::from_millis(200);
/// Default largest backoff ceiling.
pub const DEFAULT_MAX: Duration = Duration::from_secs(5);
/// Default per-attempt timeout.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default total timeout.
pub const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_secs(300);
/// Default inter-chunk idle timeout.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for Policy {
    fn default() -> Self {
        Self {
            attempts: DEFAULT_ATTEMPTS,
            backoff: Backoff {
                base: DEFAULT_BASE,
                max: DEFAULT_MAX,
            },
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            total_timeout: DEFAULT_TOTAL_TIMEOUT,
            ttft_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            breaker: BreakerConfig::default(),
        }
    }
}

/// The kind of a failed attempt, as far as retrying is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureClass {
    /// 429.
    RateLimited,
    /// 5xx, timeouts, connection errors, broken or unparsable bodies.
    Transient,
    /// The deployment's own fault that retrying will not fix (its key is refused).
    Deployment,
    /// The request's fault, or output already reached the caller: final.
    Final,
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Try the same deployment again after this wait.
    Retry {
        /// How long to wait first.
        after: Duration,
    },
    /// Move to the next deployment now.
    FallBack,
    /// Give up with this failure.
    Fail,
}

/// The situation after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failed {
    /// What kind of failure.
    pub class: FailureClass,
    /// The upstream's `Retry-After`, if any.
    pub retry_after: Option<Duration>,
    /// Attempts made on this deployment so far, this one included (1 after the first).
    pub attempt: u32,
    /// Whether a later deployment is available (its breaker would admit a call).
    pub has_next: bool,
    /// Time left before the total deadline.
    pub remaining: Duration,
}

impl Policy {
    /// The decision after `failed`; `random` is any uniformly random `u64` (for jitter).
    pub fn decide(&self, failed: &Failed, random: u64) -> Decision {
        let next = if failed.has_next {
            Decision::FallBack
        } else {
            Decision::Fail
        };
        match failed.class {
            FailureClass::Final => Decision::Fail,
            FailureClass::Deployment => next,
            FailureClass::RateLimited if failed.has_next => Decision::FallBack,
            FailureClass::Transient
                if failed.has_next
                    && failed.retry_after.is_some_and(|ra| ra > self.backoff.max) =>
            {
                Decision::FallBack
            }
            FailureClass::RateLimited | FailureClass::Transient => {
                if failed.attempt >= self.attempts {
                    return next;
                }
                let retry = failed.attempt.saturating_sub(1);
                let after = self.backoff.delay(retry, failed.retry_after, random);
                if after < failed.remaining {
                    Decision::Retry { after }
                } else {
                    next
                }
            }
        }
    }
}
