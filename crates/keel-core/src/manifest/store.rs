//! `[store_products.<provider>."<product id>"]`: which plan a product bought through an app
//! store or a payment provider grants.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::duration::DurationSpec;

/// The providers whose products a manifest can map, as named in `[store_products]`.
pub const STORE_PROVIDERS: [&str; 4] = ["appstore", "googleplay", "stripe", "lemonsqueezy"];

/// `[store_products]`: products of each provider, keyed by the provider's product id
/// (App Store product id, Play subscription id, Stripe price or product id, Lemon Squeezy
/// variant or product id).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreProducts {
    /// App Store product ids.
    #[serde(default)]
    pub appstore: BTreeMap<String, StoreProduct>,
    /// Google Play subscription (or base plan) ids.
    #[serde(default)]
    pub googleplay: BTreeMap<String, StoreProduct>,
    /// Stripe price ids (or product ids).
    #[serde(default)]
    pub stripe: BTreeMap<String, StoreProduct>,
    /// Lemon Squeezy variant ids (or product ids).
    #[serde(default)]
    pub lemonsqueezy: BTreeMap<String, StoreProduct>,
}

impl StoreProducts {
    /// The products of one provider (`None` for an unknown provider).
    pub fn of(&self, provider: &str) -> Option<&BTreeMap<String, StoreProduct>> {
        match provider {
            "appstore" => Some(&self.appstore),
            "googleplay" => Some(&self.googleplay),
            "stripe" => Some(&self.stripe),
            "lemonsqueezy" => Some(&self.lemonsqueezy),
            _ => None,
        }
    }

    /// The first of `ids` (a provider may name a product by several ids, e.g. a Stripe
    /// price and its product) that is mapped, with its mapping.
    pub fn find<'a>(
        &'a self,
        provider: &str,
        ids: &[&'a str],
    ) -> Option<(&'a str, &'a StoreProduct)> {
        let products = self.of(provider)?;
        ids.iter()
            .find_map(|id| products.get(*id).map(|p| (*id, p)))
    }
}

/// One product: the plan it grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreProduct {
    /// The plan a live subscription to this product grants; must name a plan.
    pub plan: String,
    /// Add-ons of that plan the product also grants; each must be an add-on of the plan.
    #[serde(default)]
    pub addons: Vec<String>,
    /// How long the plan is kept after a failed renewal when the provider names no grace
    /// period of its own (App Store grace periods carry their end); default none: a
    /// failed payment locks the plan at once.
    pub grace: Option<DurationSpec>,
}
