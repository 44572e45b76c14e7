//! Durations (`"300s"`, `"1h30m"`) and quota windows (`"day"`, `"rolling:24h"`) as typed values.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Units accepted in a duration, largest first, with their length in milliseconds.
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// A positive duration written as number-unit pairs, largest unit first: `"300s"`, `"1h30m"`, `"7d"`, `"250ms"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DurationSpec(Duration);

impl DurationSpec {
    /// Parses a duration string; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<DurationSpec, String> {
        if text.is_empty() {
            return Err("empty duration: expected e.g. \"30s\", \"5m\", \"1h30m\", \"7d\"".into());
        }
        let mut rest = text;
        let mut total: u64 = 0;
        let mut last_unit: Option<usize> = None;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad_duration(text, "expected a number"));
            }
            let amount: u64 = rest[..digits]
                .parse()
                .map_err(|_| bad_duration(text, "number too large"))?;
            rest = &rest[digits..];
            if rest.starts_with('.') {
                return Err(bad_duration(
                    text,
                    "no fractions, use a smaller unit (\"90m\", not \"1.5h\")",
                ));
            }
            let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[..letters];
            let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
                let what = if unit.is_empty() {
                    "missing unit"
                } else {
                    "unknown unit"
                };
                return Err(bad_duration(text, what));
            };
            if last_unit.is_some_and(|last| index <= last) {
                return Err(bad_duration(
                    text,
                    "units must go from largest to smallest, once each",
                ));
            }
            last_unit = Some(index);
            rest = &rest[letters..];
            total = amount
                .checked_mul(UNITS[index].1)
                .and_then(|ms| total.checked_add(ms))
                .ok_or_else(|| bad_duration(text, "too large"))?;
        }
        if total == 0 {
            return Err(bad_duration(text, "must be greater than zero"));
        }
        Ok(DurationSpec(Duration::from_millis(total)))
    }

    /// The duration.
    pub fn as_duration(&self) -> Duration {
        self.0
    }

    /// Whole seconds (rounded down).
    pub fn as_secs(&self) -> u64 {
        self.0.as_secs()
    }

    /// Wraps a duration, `None` for zero.
    pub fn new(duration: Duration) -> Option<DurationSpec> {
        (!duration.is_zero()).then_some(DurationSpec(duration))
    }

    /// Builds a duration from whole seconds, `None` for zero.
    pub fn from_secs(secs: u64) -> Option<DurationSpec> {
        DurationSpec::new(Duration::from_secs(secs))
    }
}

fn bad_duration(text: &str, why: &str) -> String {
    format!("invalid duration \"{text}\": {why} (units: d, h, m, s, ms; e.g. \"1h30m\")")
}

impl FromStr for DurationSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DurationSpec::parse(s)
    }
}

impl fmt::Display for DurationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Canonical form: the same units as accepted, largest first.
        let mut ms = self.0.as_millis();
        for (name, size) in UNITS {
            let size = u128::from(size);
            if ms >= size {
                write!(f, "{}{name}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for DurationSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        DurationSpec::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The period over which a limit counts usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Window {
    /// A calendar day in the plan's time zone.
    Day,
    /// A calendar week (Monday to Sunday) in the plan's time zone.
    Week,
    /// A calendar month in the plan's time zone.
    Month,
    /// The subscription's billing cycle (falls back to the calendar month without one).
    BillingCycle,
    /// A sliding window of the given length ending now.
    Rolling(DurationSpec),
}

impl Window {
    /// Parses `day`, `week`, `month`, `billing_cycle` or `rolling:<duration>`.
    pub fn parse(text: &str) -> Result<Window, String> {
        match text {
            "day" => Ok(Window::Day),
            "week" => Ok(Window::Week),
            "month" => Ok(Window::Month),
            "billing_cycle" => Ok(Window::BillingCycle),
            _ => match text.strip_prefix("rolling:") {
                Some(length) => DurationSpec::parse(length).map(Window::Rolling),
                None => Err(format!(
                    "invalid window \"{text}\": expected day, week, month, billing_cycle or rolling:<duration> (e.g. rolling:24h)"
                )),
            },
        }
    }
}

impl FromStr for Window {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Window::parse(s)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::Day => f.write_str("day"),
            Window::Week => f.write_str("week"),
            Window::Month => f.write_str("month"),
            Window::BillingCycle => f.write_str("billing_cycle"),
            Window::Rolling(length) => write!(f, "rolling:{length}"),
        }
    }
}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Window::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn secs(text: &str) -> u64 {
        DurationSpec::parse(text).unwrap().as_secs()
    }

    #[test]
    fn durations_parse_every_unit_and_combinations() {
        assert_eq!(secs("300s"), 300);
        assert_eq!(secs("30m"), 1_800);
        assert_eq!(secs("1h"), 3_600);
        assert_eq!(secs("7d"), 604_800);
        assert_eq!(secs("1h30m"), 5_400);
        assert_eq!(secs("1d2h3m4s"), 93_784);
        let ms = DurationSpec::parse("1s250ms").unwrap().as_duration();
        assert_eq!(ms, Duration::from_millis(1_250));
    }

    #[test]
    fn durations_display_in_canonical_form() {
        assert_eq!(DurationSpec::parse("90m").unwrap().to_string(), "1h30m");
        assert_eq!(DurationSpec::parse("300s").unwrap().to_string(), "5m");
        assert_eq!(
            DurationSpec::parse("1s250ms").unwrap().to_string(),
            "1s250ms"
        );
        assert_eq!(DurationSpec::from_secs(86_400).unwrap().to_string(), "1d");
        assert_eq!(DurationSpec::from_secs(0), None);
    }

    #[test]
    fn invalid_durations_say_why() {
        let cases = [
            ("", "empty duration"),
            ("30", "missing unit"),
            ("30x", "unknown unit"),
            ("h", "expected a number"),
            ("1.5h", "no fractions"),
            ("30m1h", "largest to smallest"),
            ("1m1m", "largest to smallest"),
            ("0s", "greater than zero"),
            (" 5s", "expected a number"),
            ("-5s", "expected a number"),
            ("99999999999999999999d", "number too large"),
            ("999999999999999d", "too large"),
        ];
        for (text, fragment) in cases {
            let err = DurationSpec::parse(text).unwrap_err();
            assert!(err.contains(fragment), "{text:?}: {err}");
        }
    }

    #[test]
    fn windows_parse_calendar_names_and_rolling_durations() {
        assert_eq!(Window::parse("day").unwrap(), Window::Day);
        assert_eq!(Window::parse("week").unwrap(), Window::Week);
        assert_eq!(Window::parse("month").unwrap(), Window::Month);
        assert_eq!(
            Window::parse("billing_cycle").unwrap(),
            Window::BillingCycle
        );
        let rolling = Window::parse("rolling:24h").unwrap();
        assert_eq!(
            rolling,
            Window::Rolling(DurationSpec::from_secs(86_400).unwrap())
        );
        assert_eq!(rolling.to_string(), "rolling:1d");
    }

    #[test]
    fn invalid_windows_say_why() {
        let err = Window::parse("daily").unwrap_err();
        assert!(err.contains("expected day, week, month, billing_cycle or rolling:<duration>"));
        let err = Window::parse("rolling:").unwrap_err();
        assert!(err.contains("empty duration"), "{err}");
        let err = Window::parse("rolling:5").unwrap_err();
        assert!(
            err.contains("invalid duration \"5\": missing unit"),
            "{err}"
        );
        assert!(Window::parse("Day").is_err());
    }
}
