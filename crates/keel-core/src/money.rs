//! Money as integer micro-units: no floats ever touch a price, a balance or a cost.

use std::fmt;
use std::ops::{Add, Sub};

use serde::{Deserialize, Serialize};

/// An amount of money in millionths of the currency unit (1 USD = 1_000_000 micros).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Micros(pub i64);

impl Micros {
    /// Zero.
    pub const ZERO: Micros = Micros(0);

    /// Adds, or `None` on overflow (an amount that large is a bug or an attack).
    pub fn checked_add(self, other: Micros) -> Option<Micros> {
        self.0.checked_add(other.0).map(Micros)
    }

    /// Subtracts, or `None` on overflow.
    pub fn checked_sub(self, other: Micros) -> Option<Micros> {
        self.0.checked_sub(other.0).map(Micros)
    }
}

impl Add for Micros {
    type Output = Micros;
    fn add(self, rhs: Micros) -> Micros {
        Micros(self.0.saturating_add(rhs.0))
    }
}

impl Sub for Micros {
    type Output = Micros;
    fn sub(self, rhs: Micros) -> Micros {
        Micros(self.0.saturating_sub(rhs.0))
    }
}

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:06}", abs / 1_000_000, abs % 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn micros_display_as_exact_decimal_units() {
        assert_eq!(Micros(1_500_000).to_string(), "1.500000");
        assert_eq!(Micros(-42).to_string(), "-0.000042");
        assert_eq!(Micros(0).to_string(), "0.000000");
    }

    #[test]
    fn overflow_is_detected_not_wrapped() {
        assert_eq!(Micros(i64::MAX).checked_add(Micros(1)), None);
        assert_eq!(Micros(i64::MAX) + Micros(1), Micros(i64::MAX));
        assert_eq!(Micros(5).checked_sub(Micros(7)), Some(Micros(-2)));
    }
}
