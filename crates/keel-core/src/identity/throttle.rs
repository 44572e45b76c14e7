//! Sign-in throttling: after a number of free failures, each further failure doubles the
//! wait before the next attempt, up to a cap.

/// How failures under one key (an account or an IP) are throttled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures allowed before any wait.
    pub free_failures: i64,
    /// The first wait, in seconds.
    pub base_delay_secs: i64,
    /// The longest wait, in seconds.
    pub max_delay_secs: i64,
    /// Failures older than this (since the first of the window) are forgotten.
    pub window_secs: i64,
}

impl ThrottlePolicy {
    /// Per account: 5 free failures, then 1 s, 2 s, 4 s … up to 15 minutes.
    pub const ACCOUNT: ThrottlePolicy = ThrottlePolicy {
        free_failures: 5,
        base_delay_secs: 1,
        max_delay_secs: 900,
        window_secs: 900,
    };
    /// Per IP: 20 free failures (shared offices, NAT), then the same growth.
    pub const IP: ThrottlePolicy = ThrottlePolicy {
        free_failures: 20,
        base_delay_secs: 1,
        max_delay_secs: 900,
        window_secs: 900,
    };

    /// Seconds until the next attempt is allowed, given `failures` so far and
    /// `since_last` seconds since the last one; `None` when an attempt is allowed now.
    pub fn retry_after(&self, failures: i64, since_last: i64) -> Option<i64> {
        let over = failures - self.free_failures;
        if over < 0 {
            return None;
        }
        let shift = u32::try_from(over.min(30)).unwrap_or(30);
        let delay = self
            .base_delay_secs
            .saturating_mul(1i64 << shift)
            .min(self.max_delay_secs);
        let wait = delay - since_last.max(0);
        (wait > 0).then_some(wait)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn waits_start_after_the_free_failures_and_double_up_to_the_cap() {
        let p = ThrottlePolicy::ACCOUNT;
        assert_eq!(p.retry_after(4, 0), None);
        assert_eq!(p.retry_after(5, 0), Some(1));
        assert_eq!(p.retry_after(6, 0), Some(2));
        assert_eq!(p.retry_after(8, 0), Some(8));
        assert_eq!(p.retry_after(8, 3), Some(5));
        assert_eq!(p.retry_after(8, 8), None);
        assert_eq!(p.retry_after(40, 0), Some(900));
        assert_eq!(p.retry_after(i64::MAX, 0), Some(900));
    }
}
