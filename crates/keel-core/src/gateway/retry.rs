//! Retry timing: `Retry-After` parsing and exponential backoff with full jitter. Pure: the
//! clock and the random value are inputs.

use std::time::{Duration, SystemTime};

/// Parses a `Retry-After` value: delta-seconds (`"120"`; fractions tolerated) or an HTTP-date
/// (`"Wed, 21 Oct 2015 07:28:00 GMT"`, and the obsolete RFC 850 and asctime forms). A date in
/// the past means "now" (zero). `None` for anything else.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long values saturate rather than fail.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    if value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = value.parse().ok()?;
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses a `retry-after-ms` value (OpenAI's millisecond variant).
pub fn parse_retry_after_ms(value: &str) -> Option<Duration> {
    let ms: f64 = value.trim().parse().ok()?;
    Duration::try_from_secs_f64(ms / 1000.0).ok()
}

/// Backoff settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first retry's delay.
    pub base: Duration,
    /// The largest ceiling, however many attempts.
    pub max: Duration,
}

impl Backoff {
    /// The ceiling for retry number `attempt` (0 for the first retry): `base * 2^attempt`,
    /// at most `max`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
        self.base
            .checked_mul(factor)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// Full jitter: uniform in `[0, ceiling(attempt)]`, drawn from `random` (any `u64`,
    /// uniformly distributed).
    pub fn full_jitter(&self, attempt: u32, random: u64) -> Duration {
        let ceiling = self.ceiling(attempt).as_nanos();
        let nanos = ceiling * u128::from(random) / u128::from(u64::MAX);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The wait before retry number `attempt`: the upstream's `Retry-After` exactly when it
    /// gave one (honoured as is, never multiplied or jittered), full jitter otherwise.
    /// Callers compare it with what is left of their deadline.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, random: u64) -> Duration {
        retry_after.unwrap_or_else(|| self.full_jitter(attempt, random))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(unix: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(unix)
    }

    // 2015-10-21T07:28:00Z
    const OCT_21_2015: u64 = 1_445_412_480;

    #[test]
    fn delta_seconds_are_parsed() {
        let now = at(0);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn http_dates_in_all_three_forms_are_parsed_relative_to_now() {
        let now = at(OCT_21_2015 - 30);
        let want = Some(Duration::from_secs(30));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            want
        );
        assert_eq!(
            parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", now),
            want
        );
        assert_eq!(parse_retry_after("Wed Oct 21 07:28:00 2015", now), want);
    }

    #[test]
    fn a_date_in_the_past_means_now() {
        let now = at(OCT_21_2015 + 3600);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn garbage_is_not_a_retry_after() {
        for bad in [
            "",
            "soon",
            "-5",
            "1.2.3",
            "Wed, 32 Oct 2015 07:28:00 GMT",
            "12s",
        ] {
            assert_eq!(parse_retry_after(bad, at(0)), None, "{bad}");
        }
    }

    #[test]
    fn retry_after_ms_is_parsed() {
        assert_eq!(
            parse_retry_after_ms("250"),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_retry_after_ms("x"), None);
        assert_eq!(parse_retry_after_ms("-1"), None);
    }

    const POLICY: Backoff = Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_secs(2),
    };

    #[test]
    fn the_ceiling_doubles_up_to_the_max() {
        let ceilings: Vec<_> = (0..7).map(|a| POLICY.ceiling(a).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(POLICY.ceiling(200), Duration::from_secs(2));
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        assert_eq!(POLICY.full_jitter(2, 0), Duration::ZERO);
        assert_eq!(POLICY.full_jitter(2, u64::MAX), Duration::from_millis(400));
        assert_eq!(
            POLICY.full_jitter(2, u64::MAX / 2),
            Duration::from_nanos(199_999_999)
        );
        assert_eq!(POLICY.full_jitter(40, u64::MAX), Duration::from_secs(2));
    }

    #[test]
    fn retry_after_is_honoured_exactly_and_not_multiplied() {
        let ra = Some(Duration::from_secs(7));
        for attempt in 0..5 {
            assert_eq!(POLICY.delay(attempt, ra, u64::MAX), Duration::from_secs(7));
        }
        assert_eq!(POLICY.delay(1, None, u64::MAX), Duration::from_millis(200));
    }
}
