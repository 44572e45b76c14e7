//! The terms of a reservation: which counters it adds to and their limits (the meter's
//! plan limit with add-ons, the credit allowance, the monthly spend limit), its cost and
//! the money held from a prepaid balance. Computed once, stored as a snapshot, so a plan
//! change later never alters a reservation already made.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::json;

use super::window::span;
use crate::manifest::{LimitScope, Manifest, Plan, Window};

/// One counter check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GateSpec {
    /// Whose counter: the user's own, or the one all users of the tenant share
    /// (`scope = "tenant"` limits).
    pub scope: LimitScope,
    /// Counter meter (`$spend` for money).
    pub meter: String,
    /// Counter window id.
    pub window: String,
    /// Limit in the counter's unit.
    pub limit: i64,
    /// What this reservation adds.
    pub amount: i64,
    /// Error code when refused.
    pub code: &'static str,
    /// When the window resets.
    pub resets_at: DateTime<Utc>,
}

/// The state of one gate's counter, for errors and entitlements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateStatus {
    /// Limit.
    pub limit: i64,
    /// Committed + reserved.
    pub used: i64,
}

/// Everything a reservation needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReserveTerms {
    /// Plan name.
    pub plan: String,
    /// Gates, in a deterministic order.
    pub gates: Vec<GateSpec>,
    /// Cost of the reserved amount at the plan's unit price, in micros.
    pub cost_micros: i64,
    /// Money to hold from the prepaid balance (the cost, on prepaid plans).
    pub balance_micros: i64,
    /// The terms as stored with the reservation.
    pub snapshot: serde_json::Value,
}

/// Why terms could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TermsError {
    /// The meter is not in the manifest.
    #[error("unknown meter `{0}`")]
    UnknownMeter(String),
    /// The plan is not in the manifest.
    #[error("unknown plan `{0}`")]
    UnknownPlan(String),
    /// Zero, negative or overflowing amount.
    #[error("amount must be a positive whole number")]
    InvalidAmount,
}

/// The error code of a window's limit.
pub fn limit_code(window: &Window) -> &'static str {
    match window {
        Window::Day => "daily_limit_reached",
        Window::Week => "weekly_limit_reached",
        Window::Month => "monthly_limit_reached",
        Window::BillingCycle => "cycle_limit_reached",
        Window::Rolling(_) => "period_limit_reached",
    }
}

/// HTTP status of a gate code: time fixes a limit (429), money fixes the rest (402).
pub fn status_of(code: &str) -> u16 {
    match code {
        "insufficient_credits" | "monthly_spend_limit" | "insufficient_balance" => 402,
        _ => 429,
    }
}

/// Whose terms: a plan, its add-ons, the subscription's cycle, and the user's own time zone.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// Plan name.
    pub plan: &'a str,
    /// Purchased add-ons.
    pub addons: &'a [&'a str],
    /// The subscription's current period, for billing-cycle windows.
    pub cycle: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// The user's own time zone; calendar windows use it before the plan's and product's.
    pub timezone: Option<Tz>,
}

/// The zone calendar windows use: the user's, else the plan's, else the product's.
pub fn window_zone(manifest: &Manifest, plan: &Plan, user: Option<Tz>) -> Tz {
    user.unwrap_or_else(|| plan.effective_timezone(&manifest.product).tz())
}

/// The terms of reserving `amount` of `meter` for a user on `plan_name` with `addons`,
/// at `now`, within an optional subscription `cycle`, in the plan's time zone.
pub fn plan_gates(
    manifest: &Manifest,
    plan_name: &str,
    addons: &[&str],
    meter: &str,
    amount: i64,
    now: DateTime<Utc>,
    cycle: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> Result<ReserveTerms, TermsError> {
    let subject = Subject {
        plan: plan_name,
        addons,
        cycle,
        timezone: None,
    };
    terms_for(manifest, &subject, meter, amount, now)
}

/// The terms of reserving `amount` of `meter` for `subject` at `now`.
pub fn terms_for(
    manifest: &Manifest,
    subject: &Subject<'_>,
    meter: &str,
    amount: i64,
    now: DateTime<Utc>,
) -> Result<ReserveTerms, TermsError> {
    let (plan_name, addons, cycle) = (subject.plan, subject.addons, subject.cycle);
    if amount <= 0 {
        return Err(TermsError::InvalidAmount);
    }
    let meter_def = manifest
        .meters
        .get(meter)
        .ok_or_else(|| TermsError::UnknownMeter(meter.to_string()))?;
    let plan = manifest
        .plans
        .get(plan_name)
        .ok_or_else(|| TermsError::UnknownPlan(plan_name.to_string()))?;
    let tz = window_zone(manifest, plan, subject.timezone);
    let mut gates = Vec::new();
    if let (Some(limit), Some(def)) = (plan.effective_limit(meter, addons), plan.limits.get(meter))
    {
        let s = span(&def.window, tz, now, cycle);
        gates.push(GateSpec {
            scope: def.scope,
            meter: meter.into(),
            window: s.id,
            limit,
            amount,
            code: limit_code(&def.window),
            resets_at: s.end,
        });
    }
    if meter_def.credits && plan.monthly_credits > 0 {
        let s = span(&Window::BillingCycle, tz, now, cycle);
        gates.push(GateSpec {
            scope: LimitScope::User,
            meter: meter.into(),
            window: format!("credits:{}", s.id),
            limit: plan.monthly_credits,
            amount,
            code: "insufficient_credits",
            resets_at: s.end,
        });
    }
    let cost = cost_of(plan, meter, amount).ok_or(TermsError::InvalidAmount)?;
    if let Some(limit) = plan.monthly_spend_limit_micros {
        let s = span(&Window::Month, tz, now, None);
        gates.push(GateSpec {
            scope: LimitScope::User,
            meter: "$spend".into(),
            window: s.id,
            limit: limit.0,
            amount: cost,
            code: "monthly_spend_limit",
            resets_at: s.end,
        });
    }
    gates.sort_by(|a, b| (&a.meter, &a.window).cmp(&(&b.meter, &b.window)));
    let balance_micros = if plan.prepaid { cost } else { 0 };
    let snapshot = json!({
        "plan": plan_name,
        "addons": addons,
        "meter": meter,
        "unit_price_micros": plan.unit_prices_micros.get(meter).map_or(0, |m| m.0),
        "prepaid": plan.prepaid,
        "overage": meter_def.overage,
        "gates": gates,
        "at": now,
    });
    Ok(ReserveTerms {
        plan: plan_name.to_string(),
        gates,
        cost_micros: cost,
        balance_micros,
        snapshot,
    })
}

/// `amount` units at the plan's unit price, in micros; `None` on overflow.
pub fn cost_of(plan: &Plan, meter: &str, amount: i64) -> Option<i64> {
    let price = plan.unit_prices_micros.get(meter).map_or(0, |m| m.0);
    price.checked_mul(amount)
}

/// The cost of `amount` units under a stored snapshot's price (settlement uses this, never
/// the current plan).
pub fn snapshot_cost(snapshot: &serde_json::Value, amount: i64) -> Option<i64> {
    snapshot["unit_price_micros"]
        .as_i64()
        .unwrap_or(0)
        .checked_mul(amount)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::manifest::parse_str;

    const SRC: &str = r#"
[product]
name = "t"
default_plan = "free"
[meters.jobs]
unit = "job"
aggregation = "count"
[meters.credits]
unit = "credit"
credits = true
[meters.calls]
unit = "call"
[plans.free.limits.jobs]
limit = 10
window = "day"
[plans.pro]
monthly_credits = 100
[plans.pro.limits.jobs]
limit = 20
window = "day"
[plans.pro.addons.more]
meter = "jobs"
percent = 25
[plans.team.limits.jobs]
limit = 50
window = "month"
scope = "tenant"
[plans.paygo]
prepaid = true
monthly_spend_limit_micros = 5000000
unit_prices_micros = { calls = 1500 }
"#;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_daily_limit_becomes_one_gate_on_todays_counter() {
        let m = parse_str(SRC, "t.toml").unwrap().manifest;
        let t = plan_gates(&m, "free", &[], "jobs", 2, now(), None).unwrap();
        assert_eq!(t.gates.len(), 1);
        let g = &t.gates[0];
        assert_eq!(
            (g.window.as_str(), g.limit, g.amount, g.code),
            ("day:2026-11-21", 10, 2, "daily_limit_reached")
        );
        assert_eq!((t.cost_micros, t.balance_micros), (0, 0));
    }

    #[test]
    fn add_ons_scale_limits_and_credits_add_a_cycle_gate() {
        let m = parse_str(SRC, "t.toml").unwrap().manifest;
        let t = plan_gates(&m, "pro", &["more"], "jobs", 1, now(), None).unwrap();
        assert_eq!(t.gates[0].limit, 25);
        let c = plan_gates(&m, "pro", &[], "credits", 30, now(), None).unwrap();
        assert_eq!(c.gates.len(), 1);
        assert_eq!(
            (
                c.gates[0].window.as_str(),
                c.gates[0].limit,
                c.gates[0].code
            ),
            ("credits:cycle:2026-11", 100, "insufficient_credits")
        );
    }

    #[test]
    fn prepaid_plans_hold_the_cost_and_gate_monthly_spend() {
        let m = parse_str(SRC, "t.toml").unwrap().manifest;
        let t = plan_gates(&m, "paygo", &[], "calls", 4, now(), None).unwrap();
        assert_eq!((t.cost_micros, t.balance_micros), (6000, 6000));
        assert_eq!(t.gates.len(), 1);
        assert_eq!(
            (
                t.gates[0].meter.as_str(),
                t.gates[0].limit,
                t.gates[0].amount
            ),
            ("$spend", 5_000_000, 6000)
        );
        assert_eq!(snapshot_cost(&t.snapshot, 3), Some(4500));
    }

    #[test]
    fn a_tenant_scoped_limit_gates_the_tenant_counter() {
        let m = parse_str(SRC, "t.toml").unwrap().manifest;
        let t = plan_gates(&m, "team", &[], "jobs", 3, now(), None).unwrap();
        assert_eq!(t.gates.len(), 1);
        let g = &t.gates[0];
        assert_eq!(
            (g.scope, g.window.as_str(), g.limit, g.code),
            (
                LimitScope::Tenant,
                "month:2026-11",
                50,
                "monthly_limit_reached"
            )
        );
        assert_eq!(t.snapshot["gates"][0]["scope"], "tenant");
        let own = plan_gates(&m, "free", &[], "jobs", 3, now(), None).unwrap();
        assert_eq!(own.gates[0].scope, LimitScope::User);
    }

    #[test]
    fn bad_terms_are_refused() {
        let m = parse_str(SRC, "t.toml").unwrap().manifest;
        assert_eq!(
            plan_gates(&m, "free", &[], "jobs", 0, now(), None),
            Err(TermsError::InvalidAmount)
        );
        assert_eq!(
            plan_gates(&m, "free", &[], "jobs", -3, now(), None),
            Err(TermsError::InvalidAmount)
        );
        assert_eq!(
            plan_gates(&m, "free", &[], "nope", 1, now(), None),
            Err(TermsError::UnknownMeter("nope".into()))
        );
        assert_eq!(
            plan_gates(&m, "gold", &[], "jobs", 1, now(), None),
            Err(TermsError::UnknownPlan("gold".into()))
        );
        assert_eq!(
            plan_gates(&m, "paygo", &[], "calls", i64::MAX, now(), None),
            Err(TermsError::InvalidAmount)
        );
        assert_eq!(status_of("insufficient_balance"), 402);
        assert_eq!(status_of("daily_limit_reached"), 429);
    }
}
