//! The circuit breakers of this node, one per deployment id, and their metrics.
//!
//! Breakers are per node: each node learns a deployment's health from its own calls (no
//! shared state, no extra round trip on the hot path). N nodes each send a failing
//! deployment at most `min_calls` calls per window before opening.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use keel_core::gateway::{Breaker, BreakerConfig, BreakerState, CallResult, Permit};

/// A source of monotonic time (the real clock, or one driven by a test).
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The clock of the tokio runtime, so paused-time tests drive breakers too.
pub fn tokio_clock() -> Clock {
    Arc::new(|| tokio::time::Instant::now().into_std())
}

/// Every deployment's breaker on this node.
#[derive(Clone)]
pub struct Breakers {
    map: Arc<RwLock<HashMap<String, Arc<Entry>>>>,
    clock: Clock,
}

impl fmt::Debug for Breakers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breakers").finish_non_exhaustive()
    }
}

impl Default for Breakers {
    fn default() -> Self {
        Self::with_clock(tokio_clock())
    }
}

struct Entry {
    id: String,
    breaker: Mutex<Breaker>,
    /// The gauge value last published, to skip unchanged updates.
    published: AtomicU8,
}

impl Entry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, state: BreakerState) {
        let value = state.gauge() as u8;
        let before = self.published.swap(value, Ordering::Relaxed);
        if before != value {
            metrics::gauge!("keel_gateway_breaker_state", "deployment" => self.id.clone())
                .set(state.gauge());
            // A new breaker starts closed: only changes are worth a log line.
            if before != u8::MAX {
                tracing::info!(deployment = %self.id, state = state.as_str(), "circuit breaker");
            }
        }
    }
}

/// Leave to call one deployment; records how it went, or "ignored" when dropped unrecorded
/// (a caller that gave up says nothing about the deployment).
pub struct Guard {
    entry: Arc<Entry>,
    permit: Option<Permit>,
    clock: Clock,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("deployment", &self.entry.id)
            .finish()
    }
}

impl Guard {
    /// Records the outcome of the call.
    pub fn record(mut self, result: CallResult) {
        self.finish(result);
    }

    fn finish(&mut self, result: CallResult) {
        if let Some(permit) = self.permit.take() {
            let now = (self.clock)();
            let mut breaker = self.entry.lock();
            breaker.record(permit, result, now);
            let state = breaker.state(now);
            drop(breaker);
            self.entry.publish(state);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.finish(CallResult::Ignored);
    }
}

impl Breakers {
    /// Breakers reading time from `clock`.
    pub fn with_clock(clock: Clock) -> Self {
        Self {
            map: Arc::new(RwLock::new(HashMap::new())),
            clock,
        }
    }

    fn entry(&self, id: &str, config: &BreakerConfig) -> Arc<Entry> {
        let found = self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned();
        // A manifest reload that changes the settings starts the breaker afresh.
        if let Some(entry) = found.filter(|e| e.lock().config() == config) {
            return entry;
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        let entry = map
            .entry(id.to_owned())
            .or_insert_with(|| self.fresh(id, config));
        if entry.lock().config() != config {
            *entry = self.fresh(id, config);
        }
        Arc::clone(entry)
    }

    fn fresh(&self, id: &str, config: &BreakerConfig) -> Arc<Entry> {
        let entry = Entry {
            id: id.to_owned(),
            breaker: Mutex::new(Breaker::new(*config, (self.clock)())),
            published: AtomicU8::new(u8::MAX),
        };
        entry.publish(BreakerState::Closed);
        Arc::new(entry)
    }

    /// Leave to call deployment `id`, or `None` while its breaker refuses calls.
    pub fn acquire(&self, id: &str, config: &BreakerConfig) -> Option<Guard> {
        let entry = self.entry(id, config);
        let now = (self.clock)();
        let mut breaker = entry.lock();
        let permit = breaker.try_acquire(now);
        let state = breaker.state(now);
        drop(breaker);
        entry.publish(state);
        Some(Guard {
            entry,
            permit: Some(permit?),
            clock: Arc::clone(&self.clock),
        })
    }

    /// Whether deployment `id` would be called now (without taking a probe slot).
    pub fn would_admit(&self, id: &str, config: &BreakerConfig) -> bool {
        let entry = self.entry(id, config);
        let now = (self.clock)();
        let admit = entry.lock().would_admit(now);
        admit
    }

    /// The state of deployment `id`'s breaker (`None` before its first call).
    pub fn state(&self, id: &str) -> Option<BreakerState> {
        let entry = self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()?;
        let now = (self.clock)();
        let state = entry.lock().state(now);
        Some(state)
    }
}
