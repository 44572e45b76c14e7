//! When a failed delivery is tried again, and when a failing endpoint is given up on.

use chrono::{DateTime, TimeDelta, Utc};

/// Delay before each retry, counted from the previous attempt: after the first failed
/// attempt wait 5 s, then 5 min, 30 min, 2 h, 5 h, 10 h, 10 h; a failure after the last
/// retry makes the delivery dead (eight attempts in all).
pub const RETRY_SCHEDULE: [TimeDelta; 7] = [
    TimeDelta::seconds(5),
    TimeDelta::minutes(5),
    TimeDelta::minutes(30),
    TimeDelta::hours(2),
    TimeDelta::hours(5),
    TimeDelta::hours(10),
    TimeDelta::hours(10),
];

/// An endpoint whose attempts have all failed for this long is disabled.
pub const DISABLE_AFTER: TimeDelta = TimeDelta::days(5);

/// When to try again after the `failed`-th consecutive failed attempt (1-based) made at
/// `at`; `None` when the schedule is exhausted and the delivery is dead.
pub fn next_attempt_after(failed: u32, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let index = usize::try_from(failed.checked_sub(1)?).ok()?;
    let delay = RETRY_SCHEDULE.get(index)?;
    at.checked_add_signed(*delay)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn retries_follow_the_published_schedule_then_stop() {
        let t0 = DateTime::parse_from_rfc3339("2026-11-22T00:00:00Z")
            .unwrap()
            .to_utc();
        let delays: Vec<i64> = (1..=7)
            .map(|n| (next_attempt_after(n, t0).unwrap() - t0).num_seconds())
            .collect();
        assert_eq!(delays, vec![5, 300, 1800, 7200, 18_000, 36_000, 36_000]);
        assert_eq!(next_attempt_after(8, t0), None);
        assert_eq!(next_attempt_after(0, t0), None);
    }
}
