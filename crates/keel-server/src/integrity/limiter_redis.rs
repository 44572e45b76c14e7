//! The Redis rate-limit backend, shared by every node: one Lua script per decision reads
//! all of a request's TATs, decides on Redis server time (`TIME`, so node clocks do not
//! matter), and writes every new TAT only if all limits admit the request. Keys expire once
//! their TAT has passed, so idle callers cost nothing.
//!
//! The script returns the server time and the TATs it read; the verdicts (remaining, reset,
//! retry-after) are then computed by the same pure GCRA the in-process backend uses.

use std::time::Duration;

use async_trait::async_trait;
use keel_core::integrity::rate::{check_all, Outcome};
use redis::aio::ConnectionManager;
use redis::Script;

use super::limiter::{KeyedRate, Limiter, LimiterError};

/// Longest a decision may take before it counts as a Redis failure.
pub const DECISION_TIMEOUT: Duration = Duration::from_millis(500);

/// KEYS: one per limit. ARGV: emission interval and tolerance (µs) per limit, in KEYS order.
/// Returns `{admitted (0|1), now (µs), stored TAT or -1 per key}`. Mirrors
/// `keel_core::integrity::rate::check`: a TAT beyond now + tolerance is discarded.
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local stored = {}
local nexts = {}
local admitted = 1
for i = 1, #KEYS do
  local emission = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local raw = redis.call('GET', KEYS[i])
  local tat = now
  stored[i] = -1
  if raw then
    stored[i] = tonumber(raw)
    if stored[i] > now and stored[i] <= now + tolerance then
      tat = stored[i]
    end
  end
  nexts[i] = tat + emission
  if nexts[i] > now + tolerance then
    admitted = 0
  end
end
if admitted == 1 then
  for i = 1, #KEYS do
    local ttl = math.ceil((nexts[i] - now) / 1000) + 1
    redis.call('SET', KEYS[i], string.format('%.0f', nexts[i]), 'PX', ttl)
  end
end
local out = {admitted, now}
for i = 1, #KEYS do
  out[#out + 1] = stored[i]
end
return out
";

/// KEYS: the limit. ARGV: the correction and the tolerance (µs). Mirrors
/// `keel_core::integrity::rate::adjust`: the TAT moves by the correction, kept within
/// `[now, now + tolerance]`.
const ADJUST: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local delta = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local raw = redis.call('GET', KEYS[1])
local tat = now
if raw then
  local stored = tonumber(raw)
  if stored > now and stored <= now + tolerance then
    tat = stored
  end
end
tat = math.min(math.max(tat + delta, now), now + tolerance)
if tat > now then
  local ttl = math.ceil((tat - now) / 1000) + 1
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', ttl)
else
  redis.call('DEL', KEYS[1])
end
return 1
";

/// Rate-limit state in Redis, under `<prefix>rl:`.
pub struct RedisLimiter {
    conn: ConnectionManager,
    prefix: String,
    script: Script,
    adjust: Script,
}

impl RedisLimiter {
    /// A limiter on this connection whose keys start with `prefix` (e.g. `keel:`).
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            prefix: format!("{prefix}rl:"),
            script: Script::new(SCRIPT),
            adjust: Script::new(ADJUST),
        }
    }

    async fn run(&self, limits: &[KeyedRate]) -> Result<Vec<i64>, redis::RedisError> {
        let mut invocation = self.script.prepare_invoke();
        for limit in limits {
            invocation
                .key(format!("{}{}", self.prefix, limit.key))
                .arg(limit.rate.emission_micros())
                .arg(limit.rate.tolerance_micros());
        }
        let mut conn = self.conn.clone();
        invocation.invoke_async(&mut conn).await
    }
}

#[async_trait]
impl Limiter for RedisLimiter {
    async fn decide(&self, limits: &[KeyedRate]) -> Result<Outcome, LimiterError> {
        if limits.is_empty() {
            return Ok(check_all(&[], 0));
        }
        let reply = tokio::time::timeout(DECISION_TIMEOUT, self.run(limits))
            .await
            .map_err(|_| LimiterError(format!("no answer within {DECISION_TIMEOUT:?}")))?
            .map_err(|e| {
                LimiterError(format!("{:?}: {}", e.kind(), e.detail().unwrap_or("error")))
            })?;
        let (admitted, now, stored) = match reply.as_slice() {
            [admitted, now, stored @ ..] if stored.len() == limits.len() => {
                (*admitted == 1, *now, stored)
            }
            _ => return Err(LimiterError("unexpected script reply".into())),
        };
        let now = u64::try_from(now).map_err(|_| LimiterError("negative server time".into()))?;
        let state: Vec<_> = limits
            .iter()
            .zip(stored)
            .map(|(l, &tat)| (u64::try_from(tat).ok(), l.rate))
            .collect();
        let outcome = check_all(&state, now);
        if outcome.allowed != admitted {
            // The script and the pure GCRA are the same algorithm; a mismatch is a bug.
            tracing::error!(admitted, "rate-limit script and GCRA disagree");
            return Err(LimiterError("script and GCRA disagree".into()));
        }
        Ok(outcome)
    }

    async fn adjust(&self, limit: &KeyedRate, delta_micros: i64) -> Result<(), LimiterError> {
        let mut invocation = self.adjust.prepare_invoke();
        invocation
            .key(format!("{}{}", self.prefix, limit.key))
            .arg(delta_micros)
            .arg(limit.rate.tolerance_micros());
        let mut conn = self.conn.clone();
        let run = invocation.invoke_async::<i64>(&mut conn);
        tokio::time::timeout(DECISION_TIMEOUT, run)
            .await
            .map_err(|_| LimiterError(format!("no answer within {DECISION_TIMEOUT:?}")))?
            .map(|_| ())
            .map_err(|e| LimiterError(format!("{:?}: {}", e.kind(), e.detail().unwrap_or("error"))))
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use keel_core::integrity::rate::Rate;

    use super::*;

    /// The test Redis: `KEEL_TEST_REDIS_URL`, or the local default CI runs.
    async fn limiter() -> (RedisLimiter, ConnectionManager, String) {
        let url = std::env::var("KEEL_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let conn = crate::integrity::redis::connect(&url, Duration::from_secs(5))
            .await
            .expect("Redis for tests");
        let prefix = format!("keel-test-{}:", uuid::Uuid::now_v7().simple());
        (RedisLimiter::new(conn.clone(), &prefix), conn, prefix)
    }

    fn limit(key: &str, requests: u32, burst: u32) -> KeyedRate {
        KeyedRate {
            key: key.into(),
            rate: Rate::new(requests, Duration::from_secs(3_600), burst).unwrap(),
        }
    }

    #[tokio::test]
    async fn the_script_admits_the_burst_and_a_later_refusal_consumes_nothing() {
        let (limiter, _, _) = limiter().await;
        let (wide, narrow) = (limit("api:ip:1", 100, 5), limit("api:user:u", 10, 2));
        let both = [wide.clone(), narrow.clone()];
        let admitted = [
            limiter.decide(&both).await.unwrap(),
            limiter.decide(&both).await.unwrap(),
        ];
        assert!(admitted.iter().all(|o| o.allowed));
        assert_eq!(admitted[1].verdicts[0].remaining, 3);
        for _ in 0..5 {
            let refused = limiter.decide(&both).await.unwrap();
            assert!(!refused.allowed);
            assert_eq!(refused.blocking(), Some(1));
            assert_eq!(
                refused.verdicts[0].remaining, 3,
                "the wide limit is untouched"
            );
        }
        let alone = limiter.decide(&[wide]).await.unwrap();
        assert_eq!((alone.allowed, alone.verdicts[0].remaining), (true, 2));
    }

    #[tokio::test]
    async fn keys_carry_the_prefix_and_expire_when_their_tat_passes() {
        let (limiter, mut conn, prefix) = limiter().await;
        let one = limit("api:user:x", 3_600, 10);
        limiter.decide(&[one]).await.unwrap();
        let key = format!("{prefix}rl:api:user:x");
        let pttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        // Set to expire, within one emission interval (1 s) plus the rounding millisecond.
        assert!((1..=1_001).contains(&pttl), "{pttl}");
    }
}
