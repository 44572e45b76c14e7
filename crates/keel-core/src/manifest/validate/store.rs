//! `[store_products]`: every product names a plan of the manifest, and only add-ons of it.

use std::collections::BTreeMap;

use super::{Checker, Kind};
use crate::manifest::error::{Issue, Path};
use crate::manifest::plan::Plan;
use crate::manifest::store::{StoreProducts, STORE_PROVIDERS};

impl Checker<'_> {
    pub(crate) fn store_products(
        &mut self,
        products: &StoreProducts,
        plans: &BTreeMap<String, Plan>,
    ) {
        for provider in STORE_PROVIDERS {
            let Some(entries) = products.of(provider) else {
                continue;
            };
            for (id, product) in entries {
                let path = Path::of(&["store_products", provider, id]);
                if id.trim().is_empty() || id.len() > 255 {
                    let message = "a product id must be 1 to 255 characters";
                    self.issues.push(Issue::key(path.clone(), message));
                }
                self.refer(path.key("plan"), Kind::Plan, &product.plan);
                let Some(plan) = plans.get(&product.plan) else {
                    continue;
                };
                for (i, addon) in product.addons.iter().enumerate() {
                    if !plan.addons.contains_key(addon) {
                        let message = format!("plan `{}` has no add-on `{addon}`", product.plan);
                        self.issues
                            .push(Issue::value(path.key("addons").index(i), message));
                    }
                }
                if product.grace.is_some_and(|g| g.as_secs() > 90 * 86_400) {
                    let message = "a grace period longer than 90 days is not allowed";
                    self.issues.push(Issue::value(path.key("grace"), message));
                }
            }
        }
    }
}
