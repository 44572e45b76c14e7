//! Request counters (per endpoint, model and `x-sim-key`), stream outcomes and the last
//! request of each key, so tests can assert how the upstream was called.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

/// Shared counters.
#[derive(Default)]
pub(crate) struct Stats {
    inner: Mutex<Inner>,
    streams_started: AtomicU64,
    streams_completed: AtomicU64,
    streams_cancelled: AtomicU64,
    streams_cut: AtomicU64,
}

#[derive(Default)]
struct Inner {
    total: u64,
    by_path: HashMap<&'static str, u64>,
    by_model: HashMap<String, u64>,
    by_key: HashMap<String, u64>,
    last: HashMap<String, Value>,
    arrivals: HashMap<String, Vec<Instant>>,
}

/// Arrival times kept per key: enough for any test's retries, bounded for benchmarks.
const ARRIVALS_KEPT: usize = 64;

/// A copy of the counters (`GET /_sim/stats`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StatsSnapshot {
    /// Chat requests received (faulted ones included).
    pub total: u64,
    /// Per endpoint path.
    pub by_path: BTreeMap<String, u64>,
    /// Per requested model.
    pub by_model: BTreeMap<String, u64>,
    /// Per `x-sim-key`.
    pub by_key: BTreeMap<String, u64>,
    /// Streamed responses begun.
    pub streams_started: u64,
    /// Streamed responses sent to the end.
    pub streams_completed: u64,
    /// Streamed responses abandoned by the client before the end.
    pub streams_cancelled: u64,
    /// Streamed responses cut on purpose (`disconnect-after`).
    pub streams_cut: u64,
}

/// How a stream ended, for [`Stats::stream_ended`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamEnd {
    Completed,
    Cancelled,
    Cut,
}

impl Stats {
    /// Counts a request; returns how many requests its key (or, without a key, its model)
    /// has made, this one included.
    pub(crate) fn record(&self, path: &'static str, model: &str, key: Option<&str>) -> u64 {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.total += 1;
        *inner.by_path.entry(path).or_default() += 1;
        let by_model = bump(&mut inner.by_model, model);
        let name = key.unwrap_or(model);
        let now = Instant::now();
        // Look up before inserting so the hot path allocates nothing.
        match inner.arrivals.get_mut(name) {
            Some(times) if times.len() < ARRIVALS_KEPT => times.push(now),
            Some(_) => {}
            None => {
                inner.arrivals.insert(name.to_owned(), vec![now]);
            }
        }
        match key {
            Some(key) => bump(&mut inner.by_key, key),
            None => by_model,
        }
    }

    /// Keeps the last request of `key` (`GET /_sim/requests/{key}`).
    pub(crate) fn remember(&self, key: &str, request: Value) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.last.insert(key.to_owned(), request);
    }

    /// When the requests of `key` (without one: of the model) arrived.
    pub(crate) fn arrivals(&self, key: &str) -> Vec<Instant> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.arrivals.get(key).cloned().unwrap_or_default()
    }

    /// The last request of `key`.
    pub(crate) fn last(&self, key: &str) -> Option<Value> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.last.get(key).cloned()
    }

    pub(crate) fn stream_started(&self) {
        self.streams_started.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stream_ended(&self, end: StreamEnd) {
        let counter = match end {
            StreamEnd::Completed => &self.streams_completed,
            StreamEnd::Cancelled => &self.streams_cancelled,
            StreamEnd::Cut => &self.streams_cut,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let sorted = |m: &HashMap<String, u64>| m.iter().map(|(k, v)| (k.clone(), *v)).collect();
        StatsSnapshot {
            total: inner.total,
            by_path: inner
                .by_path
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            by_model: sorted(&inner.by_model),
            by_key: sorted(&inner.by_key),
            streams_started: self.streams_started.load(Ordering::Relaxed),
            streams_completed: self.streams_completed.load(Ordering::Relaxed),
            streams_cancelled: self.streams_cancelled.load(Ordering::Relaxed),
            streams_cut: self.streams_cut.load(Ordering::Relaxed),
        }
    }

    /// Zeroes every counter and forgets keys (and so their fail sequences).
    pub(crate) fn reset(&self) {
        *self.inner.lock().unwrap_or_else(|e| e.into_inner()) = Inner::default();
        for counter in [
            &self.streams_started,
            &self.streams_completed,
            &self.streams_cancelled,
            &self.streams_cut,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

fn bump(map: &mut HashMap<String, u64>, key: &str) -> u64 {
    // Look up before inserting so the hot path allocates nothing.
    if let Some(n) = map.get_mut(key) {
        *n += 1;
        return *n;
    }
    map.insert(key.to_owned(), 1);
    1
}

/// A seeded, lock-free generator (SplitMix64 over a counter).
pub(crate) struct Rng {
    seed: u64,
    counter: AtomicU64,
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            seed,
            counter: AtomicU64::new(0),
        }
    }

    pub(crate) fn next_u64(&self) -> u64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut z = self
            .seed
            .wrapping_add(n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `p`.
    pub(crate) fn chance(&self, p: f64) -> bool {
        // 53 random bits as a fraction in [0, 1).
        p > 0.0 && ((self.next_u64() >> 11) as f64) / ((1u64 << 53) as f64) < p
    }
}
