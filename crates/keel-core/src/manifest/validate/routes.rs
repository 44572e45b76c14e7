//! Route checks: feature and plan references, model classes, deployments, pricing.

use std::collections::BTreeMap;

use super::{Checker, Kind};
use crate::manifest::error::{Issue, Path};
use crate::manifest::plan::Plan;
use crate::manifest::route::{Deployment, PlanSelector, Pricing, ProviderKind, Route};

impl Checker<'_> {
    pub(super) fn route(&mut self, name: &str, route: &Route, plans: &BTreeMap<String, Plan>) {
        let path = Path::of(&["routes", name]);
        self.refer(path.key("feature"), Kind::Feature, &route.feature);
        if let PlanSelector::Only(listed) = &route.plans {
            self.route_plans(&path, route, listed, plans);
        }
        if let Some(max_tokens) = route.max_tokens {
            self.positive(path.key("max_tokens"), i64::from(max_tokens));
        }
        if let Some(meter) = &route.request_meter {
            self.refer(path.key("request_meter"), Kind::Meter, meter);
        }
        if let Some(meter) = &route.token_meter {
            self.refer(path.key("token_meter"), Kind::Meter, meter);
        }
        if let Some(meter) = &route.cost_meter {
            self.refer(path.key("cost_meter"), Kind::Meter, meter);
        }
        if let Some(pricing) = &route.pricing {
            self.pricing(&path.key("pricing"), pricing);
        }
        if route.deployments.is_empty() && self.complete(&path) {
            let message = format!("a route needs at least one [[routes.{name}.deployments]] entry");
            self.issues
                .push(Issue::value(path.key("deployments"), message));
        }
        for (i, deployment) in route.deployments.iter().enumerate() {
            self.deployment(&path.key("deployments").index(i), deployment);
        }
        self.resilience(&path, route);
    }

    fn route_plans(
        &mut self,
        path: &Path,
        route: &Route,
        listed: &[String],
        plans: &BTreeMap<String, Plan>,
    ) {
        if listed.is_empty() {
            let message = "lists no plan: omit `plans` or use \"*\" to allow every plan";
            self.issues.push(Issue::value(path.key("plans"), message));
        }
        for (i, plan_name) in listed.iter().enumerate() {
            let plan_path = path.key("plans").index(i);
            if !self.names.plans.contains(plan_name) {
                self.refer(plan_path, Kind::Plan, plan_name);
                continue;
            }
            let (Some(class), Some(plan)) = (&route.model_class, plans.get(plan_name)) else {
                continue;
            };
            if !plan.allows_model_class(class) {
                let message = format!(
                    "plan `{plan_name}` does not allow model class `{class}` (its model_classes: {})",
                    list_or_none(&plan.model_classes)
                );
                self.issues.push(Issue::value(plan_path, message));
            }
        }
    }

    fn deployment(&mut self, path: &Path, deployment: &Deployment) {
        if deployment.model.trim().is_empty() {
            self.issues
                .push(Issue::value(path.key("model"), "must not be empty"));
        }
        self.positive(path.key("weight"), i64::from(deployment.weight));
        match &deployment.base_url {
            None if deployment.provider == ProviderKind::OpenAiCompatible => {
                let message = "provider `openai_compatible` needs a `base_url`";
                self.issues
                    .push(Issue::value(path.key("base_url"), message));
            }
            Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                let message = "must start with http:// or https://";
                self.issues
                    .push(Issue::value(path.key("base_url"), message));
            }
            _ => {}
        }
        if let Some(env) = &deployment.api_key_env {
            if !is_env_name(env) {
                // Never echo the value: it may be a key pasted by mistake.
                let message = "must be the NAME of an environment variable (e.g. OPENAI_API_KEY), \
                     never the key itself";
                self.issues
                    .push(Issue::value(path.key("api_key_env"), message));
            }
        }
        if let Some(pricing) = &deployment.pricing {
            self.pricing(&path.key("pricing"), pricing);
        }
    }

    fn pricing(&mut self, path: &Path, pricing: &Pricing) {
        self.not_negative(
            path.key("input_per_mtok_micros"),
            pricing.input_per_mtok_micros,
        );
        self.not_negative(
            path.key("output_per_mtok_micros"),
            pricing.output_per_mtok_micros,
        );
        if let Some(cached) = pricing.cached_input_per_mtok_micros {
            self.not_negative(path.key("cached_input_per_mtok_micros"), cached);
        }
    }
}

/// Whether `name` looks like an environment variable name: `[A-Z_][A-Z0-9_]*`.
fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn env_names_are_upper_snake_case() {
        assert!(is_env_name("OPENAI_API_KEY"));
        assert!(is_env_name("_X1"));
        assert!(!is_env_name("sk-proj-abc123"));
        assert!(!is_env_name("openai_api_key"));
        assert!(!is_env_name("1KEY"));
        assert!(!is_env_name(""));
    }
}
