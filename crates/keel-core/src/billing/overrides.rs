//! Operator overrides of a user's limits: a custom limit replacing the plan's and extra
//! units on top, each until it expires. Applied to the gates of a reservation and to the
//! rows of an entitlement answer the same way.

use chrono::{DateTime, Utc};

use super::gates::GateSpec;
use crate::manifest::LimitScope;

/// Which limit of a meter an override changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverrideTarget {
    /// The plan's period limit on the meter (daily, weekly, ... limit).
    Limit,
    /// The credit allowance of the billing cycle.
    Credits,
}

impl OverrideTarget {
    /// Parses `limit` or `credits`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "limit" => Some(Self::Limit),
            "credits" => Some(Self::Credits),
            _ => None,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Limit => "limit",
            Self::Credits => "credits",
        }
    }

    /// The target a gate's code belongs to; `None` for money gates (never overridden).
    pub fn of_gate_code(code: &str) -> Option<Self> {
        match code {
            "insufficient_credits" => Some(Self::Credits),
            "monthly_spend_limit" | "insufficient_balance" => None,
            _ => Some(Self::Limit),
        }
    }
}

/// An override's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitOverride {
    /// The meter.
    pub meter: String,
    /// Which of its limits.
    pub target: OverrideTarget,
    /// Units added on top.
    pub extra: i64,
    /// Replaces the plan's limit when set.
    pub custom_limit: Option<i64>,
    /// When it stops applying.
    pub expires_at: Option<DateTime<Utc>>,
}

impl LimitOverride {
    /// Whether it applies at `now`.
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|e| now < e)
    }

    /// The limit under this override: the custom limit or `base`, plus the extra, never
    /// below zero.
    pub fn apply(&self, base: i64) -> i64 {
        self.custom_limit
            .unwrap_or(base)
            .saturating_add(self.extra)
            .max(0)
    }
}

/// The override of `(meter, target)` active at `now`, if any.
pub fn active_override<'a>(
    overrides: &'a [LimitOverride],
    meter: &str,
    target: OverrideTarget,
    now: DateTime<Utc>,
) -> Option<&'a LimitOverride> {
    overrides
        .iter()
        .find(|o| o.meter == meter && o.target == target && o.active(now))
}

/// Rewrites the limits of `gates` under the active overrides; returns how many changed.
pub fn apply_to_gates(
    gates: &mut [GateSpec],
    overrides: &[LimitOverride],
    now: DateTime<Utc>,
) -> usize {
    let mut changed = 0;
    for gate in gates.iter_mut() {
        // A tenant-wide limit belongs to the tenant: one user's override never moves it.
        if gate.scope == LimitScope::Tenant {
            continue;
        }
        let Some(target) = OverrideTarget::of_gate_code(gate.code) else {
            continue;
        };
        if let Some(o) = active_override(overrides, &gate.meter, target, now) {
            gate.limit = o.apply(gate.limit);
            changed += 1;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::Duration;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn gate(meter: &str, code: &'static str, limit: i64) -> GateSpec {
        GateSpec {
            meter: meter.into(),
            window: "day:2026-11-22".into(),
            limit,
            amount: 1,
            code,
            resets_at: at("2026-11-23T00:00:00Z"),
            scope: LimitScope::User,
        }
    }

    fn over(target: OverrideTarget, extra: i64, custom: Option<i64>) -> LimitOverride {
        LimitOverride {
            meter: "jobs".into(),
            target,
            extra,
            custom_limit: custom,
            expires_at: Some(at("2026-11-30T00:00:00Z")),
        }
    }

    #[test]
    fn a_custom_limit_replaces_and_extra_adds_and_nothing_goes_negative() {
        assert_eq!(over(OverrideTarget::Limit, 5, None).apply(10), 15);
        assert_eq!(over(OverrideTarget::Limit, 0, Some(3)).apply(10), 3);
        assert_eq!(over(OverrideTarget::Limit, 2, Some(3)).apply(10), 5);
        assert_eq!(over(OverrideTarget::Limit, -20, None).apply(10), 0);
        assert_eq!(
            over(OverrideTarget::Limit, i64::MAX, None).apply(10),
            i64::MAX
        );
    }

    #[test]
    fn overrides_change_only_their_meter_and_target_while_active() {
        let now = at("2026-11-22T10:00:00Z");
        let mut gates = vec![
            gate("jobs", "daily_limit_reached", 10),
            gate("jobs", "insufficient_credits", 100),
            gate("$spend", "monthly_spend_limit", 5_000),
            gate("calls", "daily_limit_reached", 7),
        ];
        let overrides = vec![
            over(OverrideTarget::Limit, 5, None),
            over(OverrideTarget::Credits, 0, Some(40)),
        ];
        assert_eq!(apply_to_gates(&mut gates, &overrides, now), 2);
        let limits: Vec<i64> = gates.iter().map(|g| g.limit).collect();
        assert_eq!(limits, vec![15, 40, 5_000, 7]);

        let later = at("2026-11-30T00:00:00Z");
        let mut tenant_wide = vec![GateSpec {
            scope: LimitScope::Tenant,
            ..gate("jobs", "daily_limit_reached", 10)
        }];
        assert_eq!(apply_to_gates(&mut tenant_wide, &overrides, now), 0);
        let mut fresh = vec![gate("jobs", "daily_limit_reached", 10)];
        assert_eq!(apply_to_gates(&mut fresh, &overrides, later), 0);
        assert_eq!(fresh[0].limit, 10);
        assert!(over(OverrideTarget::Limit, 1, None).active(later - Duration::seconds(1)));
    }

    #[test]
    fn targets_parse_and_money_gates_are_never_overridden() {
        assert_eq!(
            OverrideTarget::parse("credits"),
            Some(OverrideTarget::Credits)
        );
        assert_eq!(
            OverrideTarget::parse("limit").map(OverrideTarget::as_str),
            Some("limit")
        );
        assert_eq!(OverrideTarget::parse("balance"), None);
        assert_eq!(OverrideTarget::of_gate_code("monthly_spend_limit"), None);
        assert_eq!(
            OverrideTarget::of_gate_code("weekly_limit_reached"),
            Some(OverrideTarget::Limit)
        );
    }
}
