//! Where rate-limit state lives: one trait, an in-process backend for a single node and a
//! Redis backend for many. Either decides all limits of a request at once (check all, then
//! commit all) with the pure GCRA of `keel_core::integrity::rate`.

use std::fmt;

use async_trait::async_trait;
use keel_core::integrity::rate::{Outcome, Rate};

/// One limit a request is held to: its state key (`<class>:<scope>:<id>`) and its rate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyedRate {
    /// Identifies the counter, e.g. `api:user:usr_…`.
    pub key: String,
    /// The rate.
    pub rate: Rate,
}

/// A backend could not decide (Redis unreachable, timed out, answered garbage).
#[derive(Debug, thiserror::Error)]
#[error("rate limiter unavailable: {0}")]
pub struct LimiterError(pub String);

/// A rate-limit store.
#[async_trait]
pub trait Limiter: Send + Sync {
    /// Decides one request against `limits` atomically: every limit is evaluated, and the
    /// new states are stored only if all of them admit it.
    async fn decide(&self, limits: &[KeyedRate]) -> Result<Outcome, LimiterError>;

    /// Corrects an earlier charge on one limit by `delta_micros` of its TAT (negative: a
    /// refund), e.g. a token budget charged a request's maximum tokens at admission and
    /// corrected to its actual usage after (see `keel_core::integrity::rate::adjust`).
    async fn adjust(&self, limit: &KeyedRate, delta_micros: i64) -> Result<(), LimiterError>;

    /// A short name for logs and metrics (`memory`, `redis`).
    fn name(&self) -> &'static str;
}

/// What to do with a request when the backend cannot decide.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailMode {
    /// Admit it (the limits are a safeguard; an outage of Redis must not take the API down).
    #[default]
    Open,
    /// Refuse it with 503 `rate_limiter_unavailable`.
    Closed,
}

impl FailMode {
    /// Parses `open` or `closed`.
    pub fn parse(text: &str) -> Result<FailMode, &'static str> {
        match text.trim() {
            "open" => Ok(FailMode::Open),
            "closed" => Ok(FailMode::Closed),
            _ => Err("open or closed"),
        }
    }
}

impl fmt::Display for FailMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailMode::Open => "open",
            FailMode::Closed => "closed",
        })
    }
}
