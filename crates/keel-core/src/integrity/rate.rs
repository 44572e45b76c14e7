//! GCRA, the generic cell rate algorithm: a rate limit whose whole state is one number per
//! key, the theoretical arrival time (TAT) of the next request if requests came exactly at
//! the allowed rate. A request is admitted when admitting it keeps the TAT within the burst
//! tolerance of now; admitting moves the TAT one emission interval later.
//!
//! Time is an integer count of microseconds on whatever clock the caller uses (Redis `TIME`,
//! a monotonic process clock). Values are capped at [`MAX_MICROS`] so that the Redis script,
//! which computes in doubles, stays exact.
//!
//! Several limits on one request (per key, user, tenant, IP) are decided together by
//! [`check_all`]: all are evaluated, and the new TATs are to be stored only if every limit
//! admits the request, so a later limit's refusal never consumes an earlier one.

use std::time::Duration;

/// Largest time value handled, 2^52 µs (about 142 years): exact in an IEEE double.
pub const MAX_MICROS: u64 = 1 << 52;

/// A limit in GCRA terms: one request per emission interval, `burst` at once after idling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    emission: u64,
    tolerance: u64,
    burst: u32,
}

impl Rate {
    /// `requests` per `per`, at most `burst` at once; `None` when `requests` or `burst` is 0.
    ///
    /// The emission interval is `per / requests` rounded down to the microsecond (at least
    /// 1 µs), so a rate is never stricter than declared.
    pub fn new(requests: u32, per: Duration, burst: u32) -> Option<Rate> {
        if requests == 0 || burst == 0 {
            return None;
        }
        let per = u64::try_from(per.as_micros())
            .unwrap_or(u64::MAX)
            .min(MAX_MICROS);
        let emission = (per / u64::from(requests)).max(1);
        let tolerance = emission.saturating_mul(u64::from(burst)).min(MAX_MICROS);
        Some(Rate {
            emission,
            tolerance,
            burst,
        })
    }

    /// Microseconds between two requests at the sustained rate.
    pub fn emission_micros(&self) -> u64 {
        self.emission
    }

    /// How far ahead of now the TAT may run: `emission × burst`, in microseconds.
    pub fn tolerance_micros(&self) -> u64 {
        self.tolerance
    }

    /// Requests admitted at once after idling.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// This limit as seen by one request that costs `cost` cells (e.g. its tokens): the
    /// emission interval grows `cost` times, the tolerance stays. A cost above the burst is
    /// charged as the whole burst, so such a request waits for a full bucket instead of
    /// never being admitted.
    pub fn weighted(&self, cost: u64) -> Rate {
        let cells = cost.clamp(1, u64::from(self.burst));
        Rate {
            emission: self.emission.saturating_mul(cells).min(self.tolerance),
            tolerance: self.tolerance,
            burst: self.burst,
        }
    }
}

/// The TAT after correcting a past charge by `delta_micros` (negative: a refund): never
/// before `now` (a refund cannot earn more than a full burst), never beyond the tolerance.
pub fn adjust(stored: Option<u64>, now: u64, rate: &Rate, delta_micros: i64) -> u64 {
    let now = now.min(MAX_MICROS);
    let tat = current(stored, now, rate);
    let moved = if delta_micros >= 0 {
        tat.saturating_add(delta_micros.unsigned_abs())
    } else {
        tat.saturating_sub(delta_micros.unsigned_abs())
    };
    moved.clamp(now, now.saturating_add(rate.tolerance))
}

/// The decision for one limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Whether this limit admits the request.
    pub allowed: bool,
    /// The TAT to store if the request is admitted (when refused: the current TAT).
    pub tat: u64,
    /// Requests still admitted at once after this one (0 when refused).
    pub remaining: u32,
    /// Microseconds until the full burst is available again.
    pub reset_micros: u64,
    /// Microseconds until a request would be admitted (0 when admitted).
    pub retry_after_micros: u64,
}

/// The TAT to decide from: never in the past (idle time earns at most a full burst). A TAT
/// beyond anything an admission could have stored means the clock went backwards: it is
/// discarded (at most one extra burst) rather than locking the caller out for the jump.
fn current(stored: Option<u64>, now: u64, rate: &Rate) -> u64 {
    match stored {
        Some(tat) if tat > now.saturating_add(rate.tolerance) => now,
        Some(tat) => tat.max(now),
        None => now,
    }
}

fn remaining(slack: u64, rate: &Rate) -> u32 {
    u32::try_from(slack / rate.emission)
        .unwrap_or(u32::MAX)
        .min(rate.burst)
}

/// Decides one request against one limit whose stored TAT is `stored` (`None`: never used
/// or expired).
pub fn check(stored: Option<u64>, now: u64, rate: &Rate) -> Verdict {
    let now = now.min(MAX_MICROS);
    let tat = current(stored, now, rate);
    let next = tat.saturating_add(rate.emission);
    let horizon = now.saturating_add(rate.tolerance);
    if next <= horizon {
        Verdict {
            allowed: true,
            tat: next,
            remaining: remaining(horizon - next, rate),
            reset_micros: next - now,
            retry_after_micros: 0,
        }
    } else {
        Verdict {
            allowed: false,
            tat,
            remaining: 0,
            reset_micros: tat - now,
            retry_after_micros: next - horizon,
        }
    }
}

/// The state of a limit without consuming from it: what a request refused by another limit
/// leaves behind.
pub fn peek(stored: Option<u64>, now: u64, rate: &Rate) -> Verdict {
    let now = now.min(MAX_MICROS);
    let tat = current(stored, now, rate);
    let next = tat.saturating_add(rate.emission);
    let horizon = now.saturating_add(rate.tolerance);
    Verdict {
        allowed: next <= horizon,
        tat,
        remaining: remaining(horizon - tat, rate),
        reset_micros: tat - now,
        retry_after_micros: next.saturating_sub(horizon),
    }
}

/// The decision for every limit of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Whether every limit admits the request; only then are the new TATs stored.
    pub allowed: bool,
    /// One verdict per limit, in the order given. When the request is refused, limits
    /// that would have admitted it report their state unconsumed.
    pub verdicts: Vec<Verdict>,
}

impl Outcome {
    /// The limit to advertise in response headers: fewest remaining, then the longest reset.
    pub fn most_restrictive(&self) -> Option<usize> {
        let ranked = self.verdicts.iter().enumerate();
        ranked
            .min_by(|(_, a), (_, b)| {
                a.remaining
                    .cmp(&b.remaining)
                    .then(b.reset_micros.cmp(&a.reset_micros))
            })
            .map(|(i, _)| i)
    }

    /// The refusing limit the caller must wait longest for, if the request is refused.
    pub fn blocking(&self) -> Option<usize> {
        let refusing = self.verdicts.iter().enumerate().filter(|(_, v)| !v.allowed);
        refusing
            .max_by_key(|(_, v)| v.retry_after_micros)
            .map(|(i, _)| i)
    }
}

/// Decides one request against several limits at once (check all, then commit all): the
/// request is admitted only if every limit admits it; if any refuses, none is consumed.
pub fn check_all(limits: &[(Option<u64>, Rate)], now: u64) -> Outcome {
    let verdicts: Vec<Verdict> = limits
        .iter()
        .map(|(stored, rate)| check(*stored, now, rate))
        .collect();
    if verdicts.iter().all(|v| v.allowed) {
        return Outcome {
            allowed: true,
            verdicts,
        };
    }
    let verdicts = limits
        .iter()
        .zip(verdicts)
        .map(|((stored, rate), v)| {
            if v.allowed {
                peek(*stored, now, rate)
            } else {
                v
            }
        })
        .collect();
    Outcome {
        allowed: false,
        verdicts,
    }
}

/// Whole seconds, rounded up (for `Retry-After` and `RateLimit-Reset`).
pub fn ceil_secs(micros: u64) -> u64 {
    micros.div_ceil(1_000_000)
}

#[cfg(test)]
mod tests;
