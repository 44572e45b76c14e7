//! Which route serves a request: the client's `model` is a route name or a model class
//! (`L1`) resolved among the routes of the request's feature that the caller's plan may
//! use; then which deployment goes first, by weight, from a caller-supplied random number.

use crate::manifest::{Manifest, Route};

/// A resolved route.
#[derive(Clone, Copy, Debug)]
pub struct Resolved<'a> {
    /// The route's name (the client-facing model).
    pub name: &'a str,
    /// The route.
    pub route: &'a Route,
    /// The feature the request is for (the route's).
    pub feature: &'a str,
}

/// Why a request cannot be routed. Each maps to a stable API error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Neither a route nor a model class of the request's feature.
    #[error("the model `{0}` does not exist")]
    ModelNotFound(String),
    /// The requested feature is not in the manifest.
    #[error("unknown feature `{0}`")]
    UnknownFeature(String),
    /// No feature named by the request and no default in the manifest.
    #[error("no feature: send the x-keel-feature header")]
    NoFeature,
    /// The plan does not grant the feature.
    #[error("your plan does not include the feature `{0}`")]
    FeatureNotEntitled(String),
    /// The plan may not use the route's model class (or the route).
    #[error("your plan does not include the model class `{0}`")]
    ModelClassNotEntitled(String),
    /// The route named by `model` belongs to another feature than the one requested.
    #[error("the model `{model}` serves the feature `{route_feature}`, not `{requested}`")]
    FeatureMismatch {
        /// The route.
        model: String,
        /// Its feature.
        route_feature: String,
        /// The feature the request named.
        requested: String,
    },
}

/// Resolves `model` for a caller on `plan`; `feature` is what the request named (header),
/// falling back to the product's default feature.
pub fn resolve<'a>(
    manifest: &'a Manifest,
    model: &str,
    feature: Option<&str>,
    plan: &str,
) -> Result<Resolved<'a>, RouteError> {
    if let Some(f) = feature {
        if !manifest.features.contains_key(f) {
            return Err(RouteError::UnknownFeature(f.to_owned()));
        }
    }
    let plan_def = manifest.plans.get(plan);
    let has_feature = |f: &str| plan_def.is_some_and(|p| p.has_feature(f));
    let may_use = |route: &Route| {
        route.allows_plan(plan)
            && route
                .model_class
                .as_deref()
                .is_none_or(|c| plan_def.is_some_and(|p| p.allows_model_class(c)))
    };
    if let Some((name, route)) = manifest.routes.get_key_value(model) {
        if let Some(requested) = feature.filter(|f| *f != route.feature) {
            return Err(RouteError::FeatureMismatch {
                model: model.to_owned(),
                route_feature: route.feature.clone(),
                requested: requested.to_owned(),
            });
        }
        if !has_feature(&route.feature) {
            return Err(RouteError::FeatureNotEntitled(route.feature.clone()));
        }
        if !may_use(route) {
            let class = route.model_class.clone().unwrap_or_else(|| name.clone());
            return Err(RouteError::ModelClassNotEntitled(class));
        }
        return Ok(Resolved {
            name,
            route,
            feature: &route.feature,
        });
    }
    let feature = feature
        .or(manifest.product.default_feature.as_deref())
        .ok_or(RouteError::NoFeature)?;
    let mut candidates = manifest
        .routes
        .iter()
        .filter(|(_, r)| r.feature == feature && r.model_class.as_deref() == Some(model))
        .peekable();
    if candidates.peek().is_none() {
        return Err(RouteError::ModelNotFound(model.to_owned()));
    }
    if !has_feature(feature) {
        return Err(RouteError::FeatureNotEntitled(feature.to_owned()));
    }
    candidates
        .find(|(_, r)| may_use(r))
        .map(|(name, route)| Resolved {
            name,
            route,
            feature: &route.feature,
        })
        .ok_or_else(|| RouteError::ModelClassNotEntitled(model.to_owned()))
}

/// The routes a caller on `plan` may call, by name: those whose feature the plan grants
/// and whose model class (and plan list) admit it.
pub fn visible_routes<'a>(manifest: &'a Manifest, plan: &str) -> Vec<&'a str> {
    manifest
        .routes
        .keys()
        .filter(|name| resolve(manifest, name, None, plan).is_ok())
        .map(String::as_str)
        .collect()
}

/// The order in which to try deployments with these `weights`: the first is drawn with
/// probability proportional to its weight from `random` (any `u64`, uniformly drawn);
/// the others follow in declaration order (the fallback order). Zero weights are never
/// drawn first but still serve as fallbacks.
pub fn weighted_order(weights: &[u32], random: u64) -> Vec<usize> {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    let first = if total == 0 {
        0
    } else {
        let mut point = random % total;
        weights
            .iter()
            .position(|w| {
                let w = u64::from(*w);
                if point < w {
                    true
                } else {
                    point -= w;
                    false
                }
            })
            .unwrap_or(0)
    };
    let mut order = Vec::with_capacity(weights.len());
    if !weights.is_empty() {
        order.push(first);
    }
    order.extend((0..weights.len()).filter(|i| *i != first));
    order
}

#[cfg(test)]
#[path = "tests/routing.rs"]
mod tests;
