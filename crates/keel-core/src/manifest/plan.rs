//! Plans: feature access, model classes, limits per meter, credits, prepaid balances and add-ons.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::duration::Window;
use super::model::{Product, TimeZone};
use super::rate::RateLimits;
use crate::money::Micros;

/// `[plans.<name>]`: what a subscription tier grants.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Human name.
    pub display_name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Features this plan grants; each names a feature.
    #[serde(default)]
    pub features: Vec<String>,
    /// Model classes (e.g. `L1`, `L2`) this plan may use through routes that declare one.
    #[serde(default)]
    pub model_classes: Vec<String>,
    /// Overrides the product time zone for this plan's calendar windows.
    pub timezone: Option<TimeZone>,
    /// Credits added to the user's credit balance each billing month; >= 0, default 0.
    #[serde(default)]
    pub monthly_credits: i64,
    /// Whether usage is paid from a prepaid money balance; default false.
    #[serde(default)]
    pub prepaid: bool,
    /// Most money usage may cost per calendar month, in micros; >= 0.
    pub monthly_spend_limit_micros: Option<Micros>,
    /// List price per month, in micros; >= 0, default 0.
    #[serde(default)]
    pub price_micros: Micros,
    /// Price of one unit of a meter on this plan, in micros, keyed by meter; each >= 0.
    #[serde(default)]
    pub unit_prices_micros: BTreeMap<String, Micros>,
    /// Usage limits keyed by meter name.
    #[serde(default)]
    pub limits: BTreeMap<String, Limit>,
    /// Purchasable add-ons that raise a limit, keyed by add-on name.
    #[serde(default)]
    pub addons: BTreeMap<String, Addon>,
    /// Request rate limits (GCRA) for this plan's users, per route class; they override
    /// the product-wide `[rate_limits]` scope by scope.
    #[serde(default)]
    pub rate_limits: RateLimits,
    /// How the plan is sold through Stripe Checkout (`[plans.<name>.stripe]`).
    pub stripe: Option<StripePlan>,
}

/// `[plans.<name>.stripe]`: the Stripe price a checkout for this plan subscribes to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripePlan {
    /// A recurring Stripe price id, `price_…`.
    pub price: String,
}

impl StripePlan {
    /// Whether `price` looks like a Stripe price id: `price_` then 1 to 200 letters, digits
    /// or underscores.
    pub fn price_is_valid(price: &str) -> bool {
        price.strip_prefix("price_").is_some_and(|rest| {
            (1..=200).contains(&rest.len())
                && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
    }
}

impl Plan {
    /// Whether the plan grants `feature`.
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }

    /// Whether the plan may use `model_class`.
    pub fn allows_model_class(&self, model_class: &str) -> bool {
        self.model_classes.iter().any(|c| c == model_class)
    }

    /// The time zone of this plan's calendar windows.
    pub fn effective_timezone(&self, product: &Product) -> TimeZone {
        self.timezone.unwrap_or(product.timezone)
    }

    /// The limit on `meter` after the named add-ons, `None` when the plan does not limit it.
    ///
    /// Add-ons for other meters and unknown add-on names are ignored.
    pub fn effective_limit(&self, meter: &str, addons: &[&str]) -> Option<i64> {
        let limit = self.limits.get(meter)?;
        let percent: u64 = addons
            .iter()
            .filter_map(|name| self.addons.get(*name))
            .filter(|addon| addon.meter == meter)
            .map(|addon| u64::from(addon.percent))
            .sum();
        Some(limit.scaled(percent))
    }
}

/// Who a limit's usage is counted for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitScope {
    /// Each user has their own allowance.
    #[default]
    User,
    /// All users of a tenant share one allowance.
    Tenant,
}

/// `[plans.<name>.limits.<meter>]`: at most `limit` units of a meter per window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Units allowed per window; > 0.
    pub limit: i64,
    /// The counting period.
    pub window: Window,
    /// Per user (default) or per tenant.
    #[serde(default)]
    pub scope: LimitScope,
}

impl Limit {
    /// The limit raised by `percent` percent, rounded up, in integer arithmetic.
    pub fn scaled(&self, percent: u64) -> i64 {
        let base = i128::from(self.limit);
        let raised = (base * (100 + i128::from(percent)) + 99) / 100;
        i64::try_from(raised).unwrap_or(i64::MAX)
    }
}

/// `[plans.<name>.addons.<addon>]`: an add-on raising the plan's limit on one meter by a percentage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Addon {
    /// The meter whose limit grows; the plan must limit it.
    pub meter: String,
    /// Percentage added to the limit, rounded up; > 0.
    pub percent: u32,
    /// Human name.
    pub display_name: Option<String>,
    /// Price per month in micros; >= 0, default 0.
    #[serde(default)]
    pub price_micros: Micros,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn plan_with_addons() -> Plan {
        let mut plan = Plan::default();
        let limit = Limit {
            limit: 10,
            window: Window::Day,
            scope: LimitScope::User,
        };
        plan.limits.insert("jobs".into(), limit);
        for (name, meter, percent) in [
            ("extra", "jobs", 25),
            ("more", "jobs", 10),
            ("other", "tokens", 50),
        ] {
            let addon = Addon {
                meter: meter.into(),
                percent,
                display_name: None,
                price_micros: Micros::ZERO,
            };
            plan.addons.insert(name.into(), addon);
        }
        plan
    }

    #[test]
    fn addons_raise_limits_by_percent_rounded_up() {
        let plan = plan_with_addons();
        assert_eq!(plan.effective_limit("jobs", &[]), Some(10));
        // 10 * 1.25 = 12.5, rounded up.
        assert_eq!(plan.effective_limit("jobs", &["extra"]), Some(13));
        assert_eq!(plan.effective_limit("jobs", &["extra", "more"]), Some(14));
        assert_eq!(
            plan.effective_limit("jobs", &["other", "unknown"]),
            Some(10)
        );
        assert_eq!(plan.effective_limit("tokens", &["other"]), None);
    }

    #[test]
    fn scaling_a_huge_limit_saturates() {
        let limit = Limit {
            limit: i64::MAX,
            window: Window::Month,
            scope: LimitScope::Tenant,
        };
        assert_eq!(limit.scaled(0), i64::MAX);
        assert_eq!(limit.scaled(50), i64::MAX);
    }
}
