//! Semantic validation on the typed model: cross-references and value ranges, with no TOML in sight.

mod jobs;
mod rates;
mod resilience;
mod routes;
mod store;

use std::collections::{BTreeMap, BTreeSet};

use super::error::{Issue, Path};
use super::jobs::JobType;
use super::model::{Feature, Meter, Product};
use super::plan::Plan;
use super::rate::RateLimits;
use super::route::Route;
use super::safety::{SafetyAction, SafetyRule};
use crate::money::Micros;

/// Entry names present in the document, parsed or not, so one broken entry causes no cascade.
#[derive(Debug, Default)]
pub(crate) struct Names {
    pub(crate) plans: BTreeSet<String>,
    pub(crate) meters: BTreeSet<String>,
    pub(crate) features: BTreeSet<String>,
    pub(crate) routes: BTreeSet<String>,
    pub(crate) safety: BTreeSet<String>,
    pub(crate) jobs: BTreeSet<String>,
}

/// The entries that deserialized, before semantic validation.
#[derive(Debug, Default)]
pub(crate) struct Draft {
    pub(crate) product: Option<Product>,
    pub(crate) plans: BTreeMap<String, Plan>,
    pub(crate) meters: BTreeMap<String, Meter>,
    pub(crate) features: BTreeMap<String, Feature>,
    pub(crate) routes: BTreeMap<String, Route>,
    pub(crate) safety: BTreeMap<String, SafetyRule>,
    pub(crate) jobs: BTreeMap<String, JobType>,
    pub(crate) rate_limits: Option<RateLimits>,
    pub(crate) store_products: Option<super::store::StoreProducts>,
    pub(crate) names: Names,
    /// Keys dropped after deserialization errors: entries under them are incomplete.
    pub(crate) removed: Vec<Path>,
}

/// The kinds of named entries a value can refer to.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    Plan,
    Meter,
    Feature,
}

/// Checks every entry of `draft` and returns all problems found.
pub(crate) fn validate(draft: &Draft) -> Vec<Issue> {
    let mut c = Checker {
        names: &draft.names,
        removed: &draft.removed,
        issues: Vec::new(),
    };
    c.entry_names();
    if let Some(product) = &draft.product {
        c.product(product);
    }
    for (name, meter) in &draft.meters {
        c.meter(name, meter);
    }
    let has_credit_meter = draft.meters.values().any(|m| m.credits);
    for (name, plan) in &draft.plans {
        c.plan(name, plan, has_credit_meter);
    }
    if let Some(limits) = &draft.rate_limits {
        c.rate_limits(&Path::of(&["rate_limits"]), limits, None);
    }
    for (name, route) in &draft.routes {
        c.route(name, route, &draft.plans);
    }
    for (name, rule) in &draft.safety {
        c.safety(name, rule);
    }
    for (name, job) in &draft.jobs {
        c.job(name, job);
    }
    if let Some(products) = &draft.store_products {
        c.store_products(products, &draft.plans);
    }
    c.issues
}

/// Accumulates issues while walking the model.
pub(crate) struct Checker<'a> {
    pub(crate) names: &'a Names,
    pub(crate) removed: &'a [Path],
    pub(crate) issues: Vec<Issue>,
}

impl Checker<'_> {
    /// Whether the entry at `path` deserialized whole; "nothing declared" checks only make sense then.
    pub(crate) fn complete(&self, path: &Path) -> bool {
        !self.removed.iter().any(|r| r.starts_with(path))
    }

    /// Reports `name` at `path` unless an entry of `kind` has that name.
    pub(crate) fn refer(&mut self, path: Path, kind: Kind, name: &str) {
        let (singular, plural, known) = match kind {
            Kind::Plan => ("plan", "plans", &self.names.plans),
            Kind::Meter => ("meter", "meters", &self.names.meters),
            Kind::Feature => ("feature", "features", &self.names.features),
        };
        if !known.contains(name) {
            let message = format!("undefined {singular} `{name}` ({})", defined(plural, known));
            self.issues.push(Issue::value(path, message));
        }
    }

    /// Like [`Checker::refer`], pointing at the key rather than the value.
    fn refer_key(&mut self, path: Path, kind: Kind, name: &str) {
        let before = self.issues.len();
        self.refer(path, kind, name);
        if let Some(issue) = self.issues.get_mut(before) {
            issue.target = super::error::Target::Key;
        }
    }

    /// Reports a value that must be > 0.
    pub(crate) fn positive(&mut self, path: Path, value: i64) {
        if value <= 0 {
            let message = format!("must be greater than 0, found {value}");
            self.issues.push(Issue::value(path, message));
        }
    }

    /// Reports an amount of money that must be >= 0.
    pub(crate) fn not_negative(&mut self, path: Path, value: Micros) {
        if value.0 < 0 {
            let message = format!("must not be negative, found {}", value.0);
            self.issues.push(Issue::value(path, message));
        }
    }

    fn entry_names(&mut self) {
        let sections = [
            ("plans", &self.names.plans),
            ("meters", &self.names.meters),
            ("features", &self.names.features),
            ("routes", &self.names.routes),
            ("safety", &self.names.safety),
            ("jobs", &self.names.jobs),
        ];
        let mut found = Vec::new();
        for (section, names) in sections {
            for name in names.iter().filter(|n| !is_slug(n)) {
                let message = format!("invalid name `{name}`: {SLUG_RULE}");
                found.push(Issue::key(Path::of(&[section, name]), message));
            }
        }
        self.issues.extend(found);
    }

    fn product(&mut self, product: &Product) {
        let path = Path::of(&["product"]);
        if !is_slug(&product.name) {
            let message = format!("invalid product name `{}`: {SLUG_RULE}", product.name);
            self.issues.push(Issue::value(path.key("name"), message));
        }
        self.refer(path.key("default_plan"), Kind::Plan, &product.default_plan);
        if let Some(feature) = &product.default_feature {
            self.refer(path.key("default_feature"), Kind::Feature, feature);
        }
    }

    fn meter(&mut self, name: &str, meter: &Meter) {
        let path = Path::of(&["meters", name]);
        if meter.unit.trim().is_empty() {
            self.issues
                .push(Issue::value(path.key("unit"), "must not be empty"));
        }
        if let Some(typical) = &meter.typical {
            let path = path.key("typical");
            self.positive(path.key("amount"), typical.amount);
            if typical.label.trim().is_empty() {
                self.issues
                    .push(Issue::value(path.key("label"), "must not be empty"));
            }
        }
    }

    fn plan(&mut self, name: &str, plan: &Plan, has_credit_meter: bool) {
        let path = Path::of(&["plans", name]);
        for (i, feature) in plan.features.iter().enumerate() {
            self.refer(path.key("features").index(i), Kind::Feature, feature);
        }
        if plan.monthly_credits < 0 {
            let message = format!("must not be negative, found {}", plan.monthly_credits);
            self.issues
                .push(Issue::value(path.key("monthly_credits"), message));
        } else if plan.monthly_credits > 0 && !has_credit_meter {
            let message =
                "credits are granted but no meter spends them: set `credits = true` on a meter";
            self.issues
                .push(Issue::value(path.key("monthly_credits"), message));
        }
        if let Some(limit) = plan.monthly_spend_limit_micros {
            self.not_negative(path.key("monthly_spend_limit_micros"), limit);
        }
        self.not_negative(path.key("price_micros"), plan.price_micros);
        for (meter, price) in &plan.unit_prices_micros {
            let price_path = path.key("unit_prices_micros").key(meter);
            self.refer_key(price_path.clone(), Kind::Meter, meter);
            self.not_negative(price_path, *price);
        }
        for (meter, limit) in &plan.limits {
            let limit_path = path.key("limits").key(meter);
            self.refer_key(limit_path.clone(), Kind::Meter, meter);
            self.positive(limit_path.key("limit"), limit.limit);
        }
        self.addons(name, plan, &path);
        self.rate_limits(&path.key("rate_limits"), &plan.rate_limits, Some(name));
        if let Some(stripe) = plan.stripe.as_ref() {
            if !super::plan::StripePlan::price_is_valid(&stripe.price) {
                let message = format!(
                    "invalid Stripe price `{}`: expected `price_` followed by letters, digits or _",
                    stripe.price
                );
                self.issues
                    .push(Issue::value(path.key("stripe").key("price"), message));
            }
        }
    }

    fn addons(&mut self, plan_name: &str, plan: &Plan, path: &Path) {
        for (name, addon) in &plan.addons {
            let addon_path = path.key("addons").key(name);
            let meter_path = addon_path.key("meter");
            if !self.names.meters.contains(&addon.meter) {
                self.refer(meter_path, Kind::Meter, &addon.meter);
            } else if !plan.limits.contains_key(&addon.meter) {
                let message = format!(
                    "plan `{plan_name}` has no limit on meter `{}` for this add-on to raise",
                    addon.meter
                );
                self.issues.push(Issue::value(meter_path, message));
            }
            self.positive(addon_path.key("percent"), i64::from(addon.percent));
            self.not_negative(addon_path.key("price_micros"), addon.price_micros);
        }
    }

    fn safety(&mut self, name: &str, rule: &SafetyRule) {
        let path = Path::of(&["safety", name]);
        for (i, feature) in rule.features.iter().enumerate() {
            self.refer(path.key("features").index(i), Kind::Feature, feature);
        }
        if rule.keywords.is_empty() && rule.patterns.is_empty() && self.complete(&path) {
            let message = "a safety rule needs at least one keyword or pattern";
            self.issues
                .push(Issue::value(path.key("keywords"), message));
        }
        for (i, keyword) in rule.keywords.iter().enumerate() {
            if keyword.trim().is_empty() {
                let message = "a keyword must not be empty";
                self.issues
                    .push(Issue::value(path.key("keywords").index(i), message));
            }
        }
        match &rule.status {
            None if rule.action == SafetyAction::Block => {
                let message = "a blocking rule needs a `status` code that clients can act on";
                self.issues.push(Issue::value(path.key("status"), message));
            }
            Some(status) if !is_slug(status) => {
                let message = format!("invalid status `{status}`: {SLUG_RULE}");
                self.issues.push(Issue::value(path.key("status"), message));
            }
            _ => {}
        }
    }
}

/// "defined plans: a, b" or "no plans are defined", for undefined-reference messages.
pub(crate) fn defined(plural: &str, known: &BTreeSet<String>) -> String {
    if known.is_empty() {
        format!("no {plural} are defined")
    } else {
        let names: Vec<&str> = known.iter().map(String::as_str).collect();
        format!("defined {plural}: {}", names.join(", "))
    }
}

/// What a slug may contain, for error messages.
pub(crate) const SLUG_RULE: &str =
    "use lowercase letters, digits, `_` and `-`, starting with a letter (at most 64)";

/// Whether `name` is a slug: `[a-z][a-z0-9_-]{0,63}`.
pub(crate) fn is_slug(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn slugs_are_lowercase_names_starting_with_a_letter() {
        for good in ["free", "prism_plus", "chat-l1", "a", "l2"] {
            assert!(is_slug(good), "{good}");
        }
        for bad in [
            "",
            "Free",
            "1free",
            "_x",
            "with space",
            "é",
            &"a".repeat(65),
        ] {
            assert!(!is_slug(bad), "{bad}");
        }
    }

    #[test]
    fn undefined_references_list_what_is_defined() {
        let mut known = BTreeSet::new();
        assert_eq!(defined("plans", &known), "no plans are defined");
        known.insert("pro".to_owned());
        known.insert("free".to_owned());
        assert_eq!(defined("plans", &known), "defined plans: free, pro");
    }
}
