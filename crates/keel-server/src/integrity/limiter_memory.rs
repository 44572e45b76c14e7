//! The in-process rate-limit backend of the embedded default: TATs in sharded maps on a
//! monotonic clock. A request's shards are locked in index order, so deciding several keys
//! at once is atomic and cannot deadlock. Memory is bounded by sweeping entries whose TAT
//! has passed (an absent key and a past TAT mean the same: a full burst).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use keel_core::integrity::rate::{adjust, check_all, Outcome};

use super::limiter::{KeyedRate, Limiter, LimiterError};

const SHARDS: usize = 32;
/// A shard is swept once it grows past this many entries (then past twice its live size).
const SWEEP_FLOOR: usize = 1024;

/// Rate-limit state of one process.
pub struct MemoryLimiter {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
    epoch: Instant,
}

#[derive(Default)]
struct Shard {
    tats: HashMap<String, u64>,
    sweep_at: usize,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryLimiter {
    /// An empty limiter.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            epoch: Instant::now(),
        }
    }

    fn shard_of(&self, key: &str) -> usize {
        // The modulo keeps the value below SHARDS, so the cast cannot truncate meaningfully.
        (self.hasher.hash_one(key) % SHARDS as u64) as usize
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Entries held across all shards (for tests of the memory bound).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).tats.len()).sum()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decides at an explicit time (microseconds on this limiter's clock).
    pub fn decide_at(&self, limits: &[KeyedRate], now: u64) -> Outcome {
        let indices: Vec<usize> = limits.iter().map(|l| self.shard_of(&l.key)).collect();
        let mut order = indices.clone();
        order.sort_unstable();
        order.dedup();
        let mut guards: Vec<(usize, MutexGuard<'_, Shard>)> = order
            .iter()
            .filter_map(|&i| self.shards.get(i).map(|s| (i, lock(s))))
            .collect();
        let guard_of = |i: usize| guards.iter().position(|(idx, _)| *idx == i);
        let positions: Vec<Option<usize>> = indices.iter().map(|&i| guard_of(i)).collect();
        let stored: Vec<_> = limits
            .iter()
            .zip(&positions)
            .map(|(l, pos)| {
                let tat = pos.and_then(|p| guards[p].1.tats.get(&l.key).copied());
                (tat, l.rate)
            })
            .collect();
        let outcome = check_all(&stored, now);
        if outcome.allowed {
            for ((limit, pos), verdict) in limits.iter().zip(&positions).zip(&outcome.verdicts) {
                if let Some(p) = pos {
                    guards[*p].1.tats.insert(limit.key.clone(), verdict.tat);
                }
            }
            for (_, shard) in &mut guards {
                shard.sweep(now);
            }
        }
        outcome
    }
}

impl MemoryLimiter {
    /// Corrects a charge at an explicit time (microseconds on this limiter's clock).
    pub fn adjust_at(&self, limit: &KeyedRate, delta_micros: i64, now: u64) {
        let Some(shard) = self.shards.get(self.shard_of(&limit.key)) else {
            return;
        };
        let mut shard = lock(shard);
        let stored = shard.tats.get(&limit.key).copied();
        let tat = adjust(stored, now, &limit.rate, delta_micros);
        shard.tats.insert(limit.key.clone(), tat);
    }
}

impl Shard {
    fn sweep(&mut self, now: u64) {
        if self.tats.len() <= self.sweep_at.max(SWEEP_FLOOR) {
            return;
        }
        self.tats.retain(|_, tat| *tat > now);
        self.sweep_at = self.tats.len().saturating_mul(2);
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding the lock cannot leave a TAT half-written: the map stays usable.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl Limiter for MemoryLimiter {
    async fn decide(&self, limits: &[KeyedRate]) -> Result<Outcome, LimiterError> {
        Ok(self.decide_at(limits, self.now()))
    }

    async fn adjust(&self, limit: &KeyedRate, delta_micros: i64) -> Result<(), LimiterError> {
        self.adjust_at(limit, delta_micros, self.now());
        Ok(())
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;
    use std::time::Duration;

    use keel_core::integrity::rate::Rate;

    use super::*;

    fn limit(key: &str, requests: u32, burst: u32) -> KeyedRate {
        KeyedRate {
            key: key.into(),
            rate: Rate::new(requests, Duration::from_secs(3_600), burst).unwrap(),
        }
    }

    #[test]
    fn a_refusal_by_a_later_key_leaves_earlier_keys_untouched() {
        let limiter = MemoryLimiter::new();
        let (wide, narrow) = (limit("a:ip:1", 100, 100), limit("a:user:u", 1, 1));
        assert!(
            limiter
                .decide_at(&[wide.clone(), narrow.clone()], 0)
                .allowed
        );
        for _ in 0..10 {
            assert!(
                !limiter
                    .decide_at(&[wide.clone(), narrow.clone()], 0)
                    .allowed
            );
        }
        let alone = limiter.decide_at(std::slice::from_ref(&wide), 0);
        assert_eq!(
            alone.verdicts[0].remaining, 98,
            "only the admitted request counted"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_decisions_admit_exactly_the_burst() {
        let limiter = Arc::new(MemoryLimiter::new());
        let mut tasks = Vec::new();
        for t in 0..8 {
            let limiter = limiter.clone();
            tasks.push(tokio::spawn(async move {
                let mut admitted = 0;
                for i in 0..200 {
                    // Every request also carries a key of its own, on some other shard.
                    let own = limit(&format!("x:key:{t}-{i}"), 1_000, 1_000);
                    let shared = limit("x:tenant:t", 100, 100);
                    if limiter.decide(&[own, shared]).await.unwrap().allowed {
                        admitted += 1;
                    }
                }
                admitted
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        assert_eq!(total, 100);
    }

    #[test]
    fn entries_whose_time_has_passed_are_swept() {
        let limiter = MemoryLimiter::new();
        let hour = 3_600_000_000;
        let old = SHARDS * SWEEP_FLOOR / 2;
        for i in 0..old {
            limiter.decide_at(&[limit(&format!("old:{i}"), 1, 1)], 0);
        }
        assert_eq!(limiter.len(), old);
        // An hour later every old entry is stale; new traffic sweeps each shard it fills.
        let new = SHARDS * SWEEP_FLOOR * 2;
        for i in 0..new {
            limiter.decide_at(&[limit(&format!("new:{i}"), 1, 1)], hour + 1);
        }
        assert_eq!(limiter.len(), new, "every stale entry was swept");
    }
}
