#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::manifest::{parse_str, Manifest};

const MANIFEST: &str = r#"
[product]
name = "t"
default_plan = "free"
default_feature = "refactor"

[features.refactor]
[features.review]
[features.extra]

[plans.free]
features = ["refactor", "review"]
model_classes = ["L1"]

[plans.max]
features = ["refactor", "review", "extra"]
model_classes = ["L1", "L2", "L3"]

[routes.l1]
feature = "refactor"
model_class = "L1"
[[routes.l1.deployments]]
provider = "sim"
model = "a"

[routes.l2]
feature = "refactor"
plans = ["max"]
model_class = "L2"
[[routes.l2.deployments]]
provider = "sim"
model = "b"

[routes.review-l1]
feature = "review"
model_class = "L1"
[[routes.review-l1.deployments]]
provider = "sim"
model = "c"

[routes.extra]
feature = "extra"
[[routes.extra.deployments]]
provider = "sim"
model = "d"
"#;

fn manifest() -> Manifest {
    parse_str(MANIFEST, "t.toml").unwrap().manifest
}

#[test]
fn a_route_name_resolves_to_that_route_and_its_feature() {
    let m = manifest();
    let r = resolve(&m, "review-l1", None, "free").unwrap();
    assert_eq!((r.name, r.feature), ("review-l1", "review"));
    let r = resolve(&m, "review-l1", Some("review"), "free").unwrap();
    assert_eq!(r.name, "review-l1");
}

#[test]
fn a_model_class_resolves_among_the_routes_of_the_feature() {
    let m = manifest();
    assert_eq!(resolve(&m, "L1", None, "free").unwrap().name, "l1");
    assert_eq!(
        resolve(&m, "L1", Some("review"), "free").unwrap().name,
        "review-l1"
    );
    assert_eq!(resolve(&m, "L2", None, "max").unwrap().name, "l2");
}

#[test]
fn a_plan_without_the_model_class_is_refused_by_class() {
    let m = manifest();
    assert_eq!(
        resolve(&m, "L2", None, "free").unwrap_err(),
        RouteError::ModelClassNotEntitled("L2".into())
    );
    assert_eq!(
        resolve(&m, "l2", None, "free").unwrap_err(),
        RouteError::ModelClassNotEntitled("L2".into())
    );
}

#[test]
fn a_plan_without_the_feature_is_refused_by_feature() {
    let m = manifest();
    assert_eq!(
        resolve(&m, "extra", None, "free").unwrap_err(),
        RouteError::FeatureNotEntitled("extra".into())
    );
}

#[test]
fn unknown_models_features_and_mismatches_are_errors() {
    let m = manifest();
    assert_eq!(
        resolve(&m, "gpt-5", None, "max").unwrap_err(),
        RouteError::ModelNotFound("gpt-5".into())
    );
    // A class that exists, but not for this feature.
    assert_eq!(
        resolve(&m, "L2", Some("review"), "max").unwrap_err(),
        RouteError::ModelNotFound("L2".into())
    );
    assert_eq!(
        resolve(&m, "L1", Some("nope"), "max").unwrap_err(),
        RouteError::UnknownFeature("nope".into())
    );
    assert!(matches!(
        resolve(&m, "l1", Some("review"), "max").unwrap_err(),
        RouteError::FeatureMismatch { .. }
    ));
}

#[test]
fn visible_routes_are_those_the_plan_may_call() {
    let m = manifest();
    assert_eq!(visible_routes(&m, "free"), ["l1", "review-l1"]);
    assert_eq!(
        visible_routes(&m, "max"),
        ["extra", "l1", "l2", "review-l1"]
    );
    assert!(visible_routes(&m, "no-such-plan").is_empty());
}

#[test]
fn the_first_deployment_is_drawn_by_weight_and_the_rest_follow_in_order() {
    // Weights 3 and 1: points 0..3 pick the first, 3 picks the second.
    assert_eq!(weighted_order(&[3, 1], 0), [0, 1]);
    assert_eq!(weighted_order(&[3, 1], 2), [0, 1]);
    assert_eq!(weighted_order(&[3, 1], 3), [1, 0]);
    assert_eq!(weighted_order(&[3, 1], 7), [1, 0]);
    assert_eq!(weighted_order(&[1, 1, 1], 4), [1, 0, 2]);
    assert_eq!(weighted_order(&[5], u64::MAX), [0]);
    assert!(weighted_order(&[], 9).is_empty());
    assert_eq!(weighted_order(&[0, 0], 9), [0, 1]);
}

#[test]
fn draws_follow_the_weights_over_every_point() {
    let weights = [3, 1, 6];
    let mut firsts = [0u32; 3];
    for random in 0..10_000u64 {
        firsts[weighted_order(&weights, random)[0]] += 1;
    }
    assert_eq!(firsts, [3000, 1000, 6000]);
}
