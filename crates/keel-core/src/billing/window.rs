//! Windows: the calendar day, week (Monday first) or month a moment falls in, in a time
//! zone; a subscription's billing cycle; or the current bucket of a sliding window.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use super::sliding::Sliding;
use crate::manifest::Window;

/// The window `now` falls in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// Stable id, part of the counter key: `day:2026-11-21`, `week:2026-11-16`,
    /// `month:2026-11`, `cycle:<start>`, or for `rolling:<d>` the current bucket
    /// `slide:<length>:<width>:<bucket>`.
    pub id: String,
    /// First instant (`now - length` for a sliding window).
    pub start: DateTime<Utc>,
    /// First instant of the next window; for a sliding window, when its oldest counted
    /// bucket leaves (the end of the current bucket).
    pub end: DateTime<Utc>,
}

/// Local midnight of `date` in `tz`, as UTC (the earliest instant when DST makes it ambiguous,
/// the next valid instant when a DST gap swallows it).
fn midnight(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let naive = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    match tz.from_local_datetime(&naive).earliest() {
        Some(t) => t.with_timezone(&Utc),
        None => {
            let one = naive + Duration::hours(1);
            tz.from_local_datetime(&one)
                .earliest()
                .map_or_else(|| Utc.from_utc_datetime(&naive), |t| t.with_timezone(&Utc))
        }
    }
}

fn first_of_next_month(date: NaiveDate) -> NaiveDate {
    let (y, m) = if date.month() == 12 {
        (date.year() + 1, 1)
    } else {
        (date.year(), date.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(date)
}

/// The window of `kind` containing `now`. `cycle` is the subscription's current period,
/// used by `billing_cycle` (which falls back to the calendar month without one).
pub fn span(
    kind: &Window,
    tz: Tz,
    now: DateTime<Utc>,
    cycle: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> Span {
    let today = now.with_timezone(&tz).date_naive();
    match kind {
        Window::Day => {
            let next = today.succ_opt().unwrap_or(today);
            Span {
                id: format!("day:{today}"),
                start: midnight(tz, today),
                end: midnight(tz, next),
            }
        }
        Window::Week => {
            let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
            let next = monday + Duration::days(7);
            Span {
                id: format!("week:{monday}"),
                start: midnight(tz, monday),
                end: midnight(tz, next),
            }
        }
        Window::Month => month(tz, today, "month"),
        Window::BillingCycle => match cycle {
            Some((start, end)) if start <= now && now < end => Span {
                id: format!("cycle:{}", start.format("%Y-%m-%dT%H:%M:%SZ")),
                start,
                end,
            },
            _ => month(tz, today, "cycle"),
        },
        Window::Rolling(length) => {
            let secs = i64::try_from(length.as_secs().max(1)).unwrap_or(i64::MAX);
            rolling(secs, now)
        }
    }
}

/// A sliding window: the id of the bucket `now` falls in, `start` = `now - length`, and
/// `end` = the end of the current bucket, which is exactly when the oldest counted bucket
/// leaves the window — the earliest moment usage can free room (see [`Sliding`]).
fn rolling(length: i64, now: DateTime<Utc>) -> Span {
    let bucket = Sliding::at(length, now);
    let oldest = bucket.bucket - bucket.span_buckets();
    Span {
        id: bucket.id(),
        start: now - Duration::seconds(bucket.length),
        end: bucket.leaves_at(oldest),
    }
}

fn month(tz: Tz, today: NaiveDate, prefix: &str) -> Span {
    let first = today.with_day(1).unwrap_or(today);
    let next = first_of_next_month(first);
    Span {
        id: format!("{prefix}:{}", first.format("%Y-%m")),
        start: midnight(tz, first),
        end: midnight(tz, next),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::manifest::DurationSpec;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_day_is_local_midnight_to_midnight() {
        let s = span(
            &Window::Day,
            chrono_tz::Europe::Paris,
            at("2026-11-21T23:30:00Z"),
            None,
        );
        // 23:30 UTC is 00:30 on the 22nd in Paris.
        assert_eq!(s.id, "day:2026-11-22");
        assert_eq!(s.start, at("2026-11-21T23:00:00Z"));
        assert_eq!(s.end, at("2026-11-22T23:00:00Z"));
    }

    #[test]
    fn a_dst_day_is_23_or_25_hours_long() {
        let spring = span(
            &Window::Day,
            chrono_tz::Europe::Paris,
            at("2026-03-29T12:00:00Z"),
            None,
        );
        assert_eq!(spring.end - spring.start, Duration::hours(23));
        let autumn = span(
            &Window::Day,
            chrono_tz::Europe::Paris,
            at("2026-10-25T12:00:00Z"),
            None,
        );
        assert_eq!(autumn.end - autumn.start, Duration::hours(25));
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        let w = span(
            &Window::Week,
            chrono_tz::UTC,
            at("2026-11-21T10:00:00Z"),
            None,
        );
        assert_eq!(w.id, "week:2026-11-16");
        assert_eq!(w.end, at("2026-11-23T00:00:00Z"));
        let m = span(
            &Window::Month,
            chrono_tz::UTC,
            at("2026-12-31T23:59:59Z"),
            None,
        );
        assert_eq!(m.id, "month:2026-12");
        assert_eq!(m.end, at("2027-01-01T00:00:00Z"));
    }

    #[test]
    fn the_billing_cycle_follows_the_subscription_period() {
        let period = Some((at("2026-11-05T08:00:00Z"), at("2026-12-05T08:00:00Z")));
        let c = span(
            &Window::BillingCycle,
            chrono_tz::UTC,
            at("2026-11-21T00:00:00Z"),
            period,
        );
        assert_eq!(c.id, "cycle:2026-11-05T08:00:00Z");
        assert_eq!(c.end, at("2026-12-05T08:00:00Z"));
        let outside = span(
            &Window::BillingCycle,
            chrono_tz::UTC,
            at("2026-12-21T00:00:00Z"),
            period,
        );
        assert_eq!(outside.id, "cycle:2026-12");
    }

    #[test]
    fn a_rolling_window_is_the_current_bucket_and_reopens_when_the_oldest_leaves() {
        let len = Window::Rolling(DurationSpec::from_secs(3600).unwrap());
        let now = at("2026-11-21T10:59:59Z");
        let s = span(&len, chrono_tz::UTC, now, None);
        let bucket = Sliding::at(3600, now);
        assert_eq!(s.id, bucket.id());
        assert_eq!(bucket.width, 60);
        assert_eq!(s.start, now - Duration::hours(1));
        // The oldest counted bucket (09:59) leaves when the current one (10:59) ends.
        assert_eq!(s.end, at("2026-11-21T11:00:00Z"));
        let oldest = Sliding::parse(&bucket.member_ids()[0]).unwrap();
        assert_eq!(oldest.start(), at("2026-11-21T09:59:00Z"));
        let next = span(&len, chrono_tz::UTC, s.end, None);
        assert_ne!(next.id, s.id);
        assert!(!Sliding::at(3600, s.end).counts(&oldest));
    }

    #[test]
    fn rolling_ids_are_time_zone_independent_and_never_fixed_periods() {
        let len = Window::Rolling(DurationSpec::from_secs(86_400).unwrap());
        let now = at("2026-11-21T10:00:00Z");
        let utc = span(&len, chrono_tz::UTC, now, None);
        let paris = span(&len, chrono_tz::Europe::Paris, now, None);
        assert_eq!(utc, paris);
        assert!(utc.id.starts_with("slide:86400:1440:"), "{}", utc.id);
        assert!(Sliding::parse(&utc.id).is_some());
    }
}
