//! A circuit breaker per upstream deployment: a pure state machine over an injected clock.
//!
//! - **Closed**: calls pass; outcomes are counted in a rolling window of ten buckets. Once
//!   the window holds at least `min_calls` outcomes and the failure share reaches
//!   `failure_rate_percent`, the breaker opens.
//! - **Open**: calls are refused for `open_for`, then the breaker is half-open.
//! - **Half-open**: up to `probes` calls pass (one at a time or together); when that many
//!   succeed the breaker closes with an empty window, and the first failure opens it again.
//!
//! Every permit remembers the state it was given in: an outcome reported after the state
//! changed (a slow call admitted while closed that ends after the breaker opened) is
//! ignored rather than counted against the new state.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Buckets in the rolling window.
const BUCKETS: u64 = 10;

/// Breaker settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Share of failed calls, in percent (1–100), that opens the breaker.
    pub failure_rate_percent: u32,
    /// Length of the rolling window outcomes are counted over.
    pub window: Duration,
    /// Outcomes the window must hold before the rate can open the breaker.
    pub min_calls: u32,
    /// How long an open breaker refuses calls before letting probes through.
    pub open_for: Duration,
    /// Probe calls let through when half-open; that many successes close the breaker.
    pub probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_rate_percent: 50,
            window: Duration::from_secs(30),
            min_calls: 10,
            open_for: Duration::from_secs(30),
            probes: 1,
        }
    }
}

/// What the breaker lets through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Every call.
    Closed,
    /// A limited number of probe calls.
    HalfOpen,
    /// No call.
    Open,
}

impl BreakerState {
    /// The value of the `keel_gateway_breaker_state` gauge: 0 closed, 1 half-open, 2 open.
    pub fn gauge(&self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::HalfOpen => 1.0,
            Self::Open => 2.0,
        }
    }

    /// `closed`, `half_open` or `open`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half_open",
            Self::Open => "open",
        }
    }
}

/// How a call admitted by the breaker went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallResult {
    /// The deployment answered.
    Success,
    /// The deployment failed (5xx, timeout, connection, rate limit, broken body, bad key).
    Failure,
    /// Says nothing about the deployment (the request was at fault, or the caller gave up).
    Ignored,
}

/// Leave to make one call; hand it back to [`Breaker::record`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a permit must be recorded, or a half-open breaker keeps its probe slot"]
pub struct Permit {
    generation: u64,
    probe: bool,
}

impl Permit {
    /// Whether this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Inner {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32, successes: u32 },
}

/// One deployment's breaker.
#[derive(Clone, Debug)]
pub struct Breaker {
    config: BreakerConfig,
    inner: Inner,
    /// Bumped on every state change; stale permits are ignored.
    generation: u64,
    origin: Instant,
    /// `(slot, successes, failures)`, oldest first, at most [`BUCKETS`] slots.
    buckets: VecDeque<(u64, u32, u32)>,
}

impl Breaker {
    /// A closed breaker; `now` anchors its window.
    pub fn new(config: BreakerConfig, now: Instant) -> Self {
        Self {
            config,
            inner: Inner::Closed,
            generation: 0,
            origin: now,
            buckets: VecDeque::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The state at `now` (an open breaker whose time is up is half-open).
    pub fn state(&mut self, now: Instant) -> BreakerState {
        self.advance(now);
        match self.inner {
            Inner::Closed => BreakerState::Closed,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Whether [`Breaker::try_acquire`] would admit a call now, without taking a slot.
    pub fn would_admit(&self, now: Instant) -> bool {
        match self.inner {
            Inner::Closed => true,
            Inner::Open { until } => now >= until && self.config.probes > 0,
            Inner::HalfOpen {
                in_flight,
                successes,
            } => in_flight + successes < self.config.probes,
        }
    }

    /// Leave to call the deployment, or `None` while it is open (or half-open with every
    /// probe slot taken).
    pub fn try_acquire(&mut self, now: Instant) -> Option<Permit> {
        self.advance(now);
        let generation = self.generation;
        match &mut self.inner {
            Inner::Closed => Some(Permit {
                generation,
                probe: false,
            }),
            Inner::Open { .. } => None,
            Inner::HalfOpen {
                in_flight,
                successes,
            } => {
                if *in_flight + *successes >= self.config.probes {
                    return None;
                }
                *in_flight += 1;
                Some(Permit {
                    generation,
                    probe: true,
                })
            }
        }
    }

    /// Records how a call went. Returns the new state when it changed.
    pub fn record(
        &mut self,
        permit: Permit,
        result: CallResult,
        now: Instant,
    ) -> Option<BreakerState> {
        self.advance(now);
        if permit.generation != self.generation {
            return None;
        }
        match (&mut self.inner, permit.probe) {
            (Inner::Closed, false) => self.count(result, now),
            (
                Inner::HalfOpen {
                    in_flight,
                    successes,
                },
                true,
            ) => {
                *in_flight = in_flight.saturating_sub(1);
                match result {
                    CallResult::Ignored => None,
                    CallResult::Failure => Some(self.open(now)),
                    CallResult::Success => {
                        *successes += 1;
                        (*successes >= self.config.probes).then(|| self.close())
                    }
                }
            }
            _ => None,
        }
    }

    /// The failure count and total of the current window.
    pub fn window_counts(&self, now: Instant) -> (u32, u32) {
        let oldest = self.slot(now).saturating_sub(BUCKETS - 1);
        self.buckets
            .iter()
            .filter(|(slot, _, _)| *slot >= oldest)
            .fold((0, 0), |(f, t), (_, s, fl)| (f + fl, t + s + fl))
    }

    fn count(&mut self, result: CallResult, now: Instant) -> Option<BreakerState> {
        let (success, failure) = match result {
            CallResult::Success => (1, 0),
            CallResult::Failure => (0, 1),
            CallResult::Ignored => return None,
        };
        let slot = self.slot(now);
        while self
            .buckets
            .front()
            .is_some_and(|(s, _, _)| *s + BUCKETS <= slot)
        {
            self.buckets.pop_front();
        }
        match self.buckets.back_mut() {
            Some((s, ok, bad)) if *s == slot => {
                *ok += success;
                *bad += failure;
            }
            _ => self.buckets.push_back((slot, success, failure)),
        }
        let (failures, total) = self.window_counts(now);
        let tripped = total >= self.config.min_calls.max(1)
            && u64::from(failures) * 100
                >= u64::from(self.config.failure_rate_percent) * u64::from(total);
        (failure == 1 && tripped).then(|| self.open(now))
    }

    fn open(&mut self, now: Instant) -> BreakerState {
        self.generation += 1;
        self.inner = Inner::Open {
            until: now + self.config.open_for,
        };
        BreakerState::Open
    }

    fn close(&mut self) -> BreakerState {
        self.generation += 1;
        self.inner = Inner::Closed;
        self.buckets.clear();
        BreakerState::Closed
    }

    /// Applies the time-based transition: open → half-open once `open_for` has passed.
    fn advance(&mut self, now: Instant) {
        if let Inner::Open { until } = self.inner {
            if now >= until {
                self.generation += 1;
                self.inner = Inner::HalfOpen {
                    in_flight: 0,
                    successes: 0,
                };
            }
        }
    }

    fn slot(&self, now: Instant) -> u64 {
        let width = (self.config.window.as_nanos() / u128::from(BUCKETS)).max(1);
        let elapsed = now.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(elapsed / width).unwrap_or(u64::MAX)
    }
}
