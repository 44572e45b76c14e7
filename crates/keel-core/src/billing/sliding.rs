//! Rolling (sliding) windows: `window = "rolling:24h"` counts usage over the last 24 hours
//! at every moment, not per fixed period. Usage is kept in buckets of 1/60 of the length
//! (at least one second); a gate sums the buckets that overlap the last `length` — the
//! current one and the [`Sliding::span_buckets`] before it — so the counted stretch is
//! between `length` and `length + width` long: a limit is never exceeded over any stretch
//! of `length`, and usage leaves the window at most one bucket width late.

use chrono::{DateTime, Duration, TimeZone, Utc};

/// Buckets per window length.
pub const BUCKETS_PER_WINDOW: i64 = 60;

/// The bucket a moment falls in, for a window of `length` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sliding {
    /// Window length, seconds.
    pub length: i64,
    /// Bucket width, seconds.
    pub width: i64,
    /// Bucket number since the Unix epoch.
    pub bucket: i64,
}

impl Sliding {
    /// The bucket holding `now` for a window of `length` seconds (at least 1).
    pub fn at(length: i64, now: DateTime<Utc>) -> Sliding {
        let length = length.max(1);
        let width = (length + BUCKETS_PER_WINDOW - 1) / BUCKETS_PER_WINDOW;
        Sliding {
            length,
            width,
            bucket: now.timestamp().div_euclid(width),
        }
    }

    /// The counter window id of the bucket: `slide:<length>:<width>:<bucket>`.
    pub fn id(&self) -> String {
        Self::id_of(self.length, self.width, self.bucket)
    }

    fn id_of(length: i64, width: i64, bucket: i64) -> String {
        format!("slide:{length}:{width}:{bucket}")
    }

    /// Parses a bucket id; `None` for anything else (fixed windows).
    pub fn parse(id: &str) -> Option<Sliding> {
        let mut parts = id.strip_prefix("slide:")?.split(':');
        let length: i64 = parts.next()?.parse().ok()?;
        let width: i64 = parts.next()?.parse().ok()?;
        let bucket: i64 = parts.next()?.parse().ok()?;
        if parts.next().is_some() || length < 1 || width < 1 {
            return None;
        }
        Some(Sliding {
            length,
            width,
            bucket,
        })
    }

    /// How many earlier buckets overlap the window besides the current one.
    pub fn span_buckets(&self) -> i64 {
        (self.length + self.width - 1) / self.width
    }

    /// The ids of every bucket counted at this bucket, oldest first (current last).
    pub fn member_ids(&self) -> Vec<String> {
        let first = self.bucket - self.span_buckets();
        (first..=self.bucket)
            .map(|b| Self::id_of(self.length, self.width, b))
            .collect()
    }

    /// Whether `other` is a bucket of the same window counted at this bucket.
    pub fn counts(&self, other: &Sliding) -> bool {
        other.length == self.length
            && other.width == self.width
            && (self.bucket - self.span_buckets()..=self.bucket).contains(&other.bucket)
    }

    /// When usage recorded in bucket `bucket` stops being counted.
    pub fn leaves_at(&self, bucket: i64) -> DateTime<Utc> {
        let secs = (bucket + self.span_buckets() + 1).saturating_mul(self.width);
        Utc.timestamp_opt(secs, 0)
            .single()
            .unwrap_or_else(|| Utc::now() + Duration::seconds(self.length))
    }

    /// When room next frees: [`Sliding::leaves_at`] of the oldest counted bucket holding
    /// usage, given each member's usage in [`Sliding::member_ids`] order (oldest first);
    /// `None` when none holds any.
    pub fn frees_at(&self, usage: &[i64]) -> Option<DateTime<Utc>> {
        let first = self.bucket - self.span_buckets();
        let oldest = usage.iter().position(|&used| used != 0)?;
        let offset = i64::try_from(oldest).ok()?;
        Some(self.leaves_at(first + offset))
    }

    /// The first instant of this bucket.
    pub fn start(&self) -> DateTime<Utc> {
        Utc.timestamp_opt(self.bucket.saturating_mul(self.width), 0)
            .single()
            .unwrap_or_else(Utc::now)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_day_has_sixty_buckets_of_24_minutes_and_counts_61() {
        let s = Sliding::at(86_400, at("2026-11-22T10:00:00Z"));
        assert_eq!((s.width, s.span_buckets()), (1_440, 60));
        let ids = s.member_ids();
        assert_eq!(ids.len(), 61);
        assert_eq!(ids.last().unwrap(), &s.id());
        assert_eq!(Sliding::parse(&ids[0]).unwrap().bucket, s.bucket - 60);
    }

    #[test]
    fn the_counted_stretch_covers_at_least_the_length_and_at_most_one_bucket_more() {
        let length = 3_600;
        for offset in [0, 1, 59, 60, 61, 3_599] {
            let now = at("2026-11-22T10:00:00Z") + Duration::seconds(offset);
            let s = Sliding::at(length, now);
            let oldest = Sliding::parse(&s.member_ids()[0]).unwrap().start();
            let covered = (now - oldest).num_seconds();
            assert!(covered >= length, "offset {offset}: {covered}");
            assert!(covered <= length + s.width, "offset {offset}: {covered}");
        }
    }

    #[test]
    fn usage_leaves_the_window_one_length_after_its_bucket_ends_at_most() {
        let now = at("2026-11-22T10:00:00Z");
        let s = Sliding::at(3_600, now);
        let leaves = s.leaves_at(s.bucket);
        // Still counted a full hour later, gone one bucket after that.
        let later = Sliding::at(3_600, now + Duration::seconds(3_600));
        assert!(later.counts(&s));
        let gone = Sliding::at(3_600, leaves);
        assert!(!gone.counts(&s));
        let just_before = Sliding::at(3_600, leaves - Duration::seconds(1));
        assert!(just_before.counts(&s));
    }

    #[test]
    fn room_frees_when_the_oldest_bucket_with_usage_leaves() {
        let s = Sliding::at(3_600, at("2026-11-22T10:00:30Z"));
        let mut usage = vec![0; s.member_ids().len()];
        assert_eq!(s.frees_at(&usage), None);
        usage[5] = 2;
        usage[60] = 1;
        // Bucket 5 of 61 started at 09:05 and leaves an hour and a bucket later.
        assert_eq!(s.frees_at(&usage), Some(at("2026-11-22T10:06:00Z")));
        usage[0] = 1;
        assert_eq!(s.frees_at(&usage), Some(at("2026-11-22T10:01:00Z")));
    }

    #[test]
    fn short_windows_use_one_second_buckets_and_ids_round_trip() {
        let s = Sliding::at(10, at("2026-11-22T10:00:05Z"));
        assert_eq!((s.width, s.span_buckets()), (1, 10));
        assert_eq!(Sliding::parse(&s.id()), Some(s));
        for bad in [
            "day:2026-11-22",
            "slide:1:2",
            "slide:0:1:5",
            "slide:1:1:x",
            "slide:1:1:1:1",
        ] {
            assert_eq!(Sliding::parse(bad), None, "{bad}");
        }
        let other_length = Sliding::at(20, at("2026-11-22T10:00:05Z"));
        assert!(!s.counts(&other_length));
    }
}
