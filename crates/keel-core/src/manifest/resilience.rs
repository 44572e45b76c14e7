//! A route's resilience settings as written in the manifest: `retry`, the timeouts and
//! `breaker`, each optional, resolved to a [`Policy`] with defaults.

use serde::{Deserialize, Serialize};

use super::duration::DurationSpec;
use super::route::Route;
use crate::gateway::breaker::BreakerConfig;
use crate::gateway::policy::Policy;
use crate::gateway::retry::Backoff;

/// `retry = { attempts = 3, base = "200ms", max = "5s" }`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts per deployment, the first included: 1–10, default 2.
    pub attempts: Option<u32>,
    /// Ceiling of the first backoff delay (full jitter below it); default 200ms.
    pub base: Option<DurationSpec>,
    /// Largest backoff ceiling; >= `base`, default 5s.
    pub max: Option<DurationSpec>,
}

/// `breaker = { failure_rate = 50, window = "30s", min_calls = 10, open_for = "30s",
/// probes = 1 }`: the circuit breaker of each deployment of the route.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerSpec {
    /// Percentage of failed calls (1–100) in the window that opens the breaker; default 50.
    pub failure_rate: Option<u32>,
    /// Rolling window the rate is measured over; default 30s.
    pub window: Option<DurationSpec>,
    /// Calls the window must hold before it can open; >= 1, default 10.
    pub min_calls: Option<u32>,
    /// How long it stays open before probing; default 30s.
    pub open_for: Option<DurationSpec>,
    /// Probe calls when half-open (that many successes close it): 1–100, default 1.
    pub probes: Option<u32>,
}

impl Route {
    /// The resolved resilience policy: the route's settings over the defaults.
    /// `ttft_timeout` defaults to the per-attempt `timeout`.
    pub fn policy(&self) -> Policy {
        let d = Policy::default();
        let dur = |spec: Option<DurationSpec>, default| spec.map_or(default, |s| s.as_duration());
        let retry = self.retry.unwrap_or_default();
        let breaker = self.breaker.unwrap_or_default();
        let db = d.breaker;
        let attempt_timeout = dur(self.timeout, d.attempt_timeout);
        Policy {
            attempts: retry.attempts.unwrap_or(d.attempts),
            backoff: Backoff {
                base: dur(retry.base, d.backoff.base),
                max: dur(retry.max, d.backoff.max),
            },
            attempt_timeout,
            total_timeout: dur(self.total_timeout, d.total_timeout),
            ttft_timeout: dur(self.ttft_timeout, attempt_timeout),
            idle_timeout: dur(self.idle_timeout, d.idle_timeout),
            breaker: BreakerConfig {
                failure_rate_percent: breaker.failure_rate.unwrap_or(db.failure_rate_percent),
                window: dur(breaker.window, db.window),
                min_calls: breaker.min_calls.unwrap_or(db.min_calls),
                open_for: dur(breaker.open_for, db.open_for),
                probes: breaker.probes.unwrap_or(db.probes),
            },
        }
    }
}
