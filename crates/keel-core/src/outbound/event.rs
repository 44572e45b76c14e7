//! The event types products can subscribe to, and quota threshold crossings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A Keel event an endpoint can subscribe to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    /// A user's subscription changed plan, status, period or add-ons.
    #[serde(rename = "subscription.changed")]
    SubscriptionChanged,
    /// A quota counter reached 80 % or 100 % of its limit in a window.
    #[serde(rename = "quota.threshold_reached")]
    QuotaThresholdReached,
    /// A job moved to another state.
    #[serde(rename = "job.state_changed")]
    JobStateChanged,
    /// The safety precheck flagged a request.
    #[serde(rename = "safety.flagged")]
    SafetyFlagged,
    /// A reservation passed its expiry unsettled and its hold was returned.
    #[serde(rename = "reservation.expired")]
    ReservationExpired,
}

impl EventType {
    /// Every event type, in a stable order.
    pub const ALL: [EventType; 5] = [
        Self::SubscriptionChanged,
        Self::QuotaThresholdReached,
        Self::JobStateChanged,
        Self::SafetyFlagged,
        Self::ReservationExpired,
    ];

    /// The wire name, e.g. `subscription.changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SubscriptionChanged => "subscription.changed",
            Self::QuotaThresholdReached => "quota.threshold_reached",
            Self::JobStateChanged => "job.state_changed",
            Self::SafetyFlagged => "safety.flagged",
            Self::ReservationExpired => "reservation.expired",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of [`EventType::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {0:?}")]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownEventType(s.to_string()))
    }
}

/// The percentages of a limit at which `quota.threshold_reached` fires.
pub const THRESHOLDS: [u8; 2] = [80, 100];

/// The thresholds (of [`THRESHOLDS`]) that `used` has reached on a limit of `limit`:
/// `used * 100 >= limit * percent`. A limit of zero or less reaches none (nothing to warn
/// about on a meter that grants nothing).
pub fn threshold_crossings(used: i64, limit: i64) -> Vec<u8> {
    if limit <= 0 {
        return Vec::new();
    }
    let used = i128::from(used) * 100;
    THRESHOLDS
        .into_iter()
        .filter(|pct| used >= i128::from(limit) * i128::from(*pct))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn event_types_round_trip_through_their_wire_names() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>().unwrap(), t);
            assert_eq!(
                serde_json::to_value(t).unwrap(),
                serde_json::json!(t.as_str())
            );
        }
        assert!("subscription.Changed".parse::<EventType>().is_err());
        assert!("".parse::<EventType>().is_err());
    }

    #[test]
    fn thresholds_are_reached_at_exactly_80_and_100_percent() {
        assert_eq!(threshold_crossings(7, 10), Vec::<u8>::new());
        assert_eq!(threshold_crossings(8, 10), vec![80]);
        assert_eq!(threshold_crossings(9, 10), vec![80]);
        assert_eq!(threshold_crossings(10, 10), vec![80, 100]);
        assert_eq!(threshold_crossings(11, 10), vec![80, 100]);
        // 80 % of 3 is 2.4: 2 is below it, 3 reaches both.
        assert_eq!(threshold_crossings(2, 3), Vec::<u8>::new());
        assert_eq!(threshold_crossings(3, 3), vec![80, 100]);
        assert_eq!(threshold_crossings(5, 0), Vec::<u8>::new());
        assert_eq!(threshold_crossings(i64::MAX, i64::MAX), vec![80, 100]);
    }
}
