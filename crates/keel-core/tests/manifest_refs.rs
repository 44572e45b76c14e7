//! Cross-references and value ranges: each semantic error is reported at the referring value.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keel_core::manifest::{self, ManifestError};

/// Lines 1-5 of most test manifests; test bodies start on line 6.
const HEAD: &str = "[product]\nname = \"p\"\ndefault_plan = \"free\"\n\n[plans.free]\n";

fn errors(src: &str) -> Vec<ManifestError> {
    match manifest::parse_str(src, "keel.toml") {
        Ok(_) => panic!("expected errors in:\n{src}"),
        Err(errors) => errors.0,
    }
}

/// Asserts exactly these errors, in order: (line, column, key, message fragment).
fn assert_errors(src: &str, expected: &[(usize, usize, &str, &str)]) {
    let found = errors(src);
    let shown: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(found.len(), expected.len(), "{shown:#?}");
    for (error, (line, column, key, fragment)) in found.iter().zip(expected) {
        assert_eq!(
            (error.line, error.column, error.key.as_str()),
            (*line, *column, *key),
            "{shown:#?}"
        );
        assert!(
            error.message.contains(fragment),
            "{:?} lacks {fragment:?}",
            error.message
        );
        assert_eq!(error.file, "keel.toml");
    }
}

#[test]
fn out_of_range_values_are_reported() {
    let body = "monthly_credits = -5
price_micros = -1
[plans.free.limits.requests]
limit = 0
window = \"day\"
[meters.requests]
unit = \"request\"
typical = { amount = 0, label = \"x\" }
[plans.free.addons.boost]
meter = \"requests\"
percent = 0
";
    assert_errors(
        &format!("{HEAD}{body}"),
        &[
            (
                6,
                19,
                "plans.free.monthly_credits",
                "must not be negative, found -5",
            ),
            (
                7,
                16,
                "plans.free.price_micros",
                "must not be negative, found -1",
            ),
            (
                9,
                9,
                "plans.free.limits.requests.limit",
                "must be greater than 0, found 0",
            ),
            (
                13,
                22,
                "meters.requests.typical.amount",
                "must be greater than 0, found 0",
            ),
            (
                16,
                11,
                "plans.free.addons.boost.percent",
                "must be greater than 0, found 0",
            ),
        ],
    );
}

#[test]
fn product_references_must_name_a_plan_and_a_feature() {
    let src = "[product]\nname = \"p\"\ndefault_plan = \"gold\"\ndefault_feature = \"chat\"\n\n[plans.free]\n";
    assert_errors(
        src,
        &[
            (
                3,
                16,
                "product.default_plan",
                "undefined plan `gold` (defined plans: free)",
            ),
            (
                4,
                19,
                "product.default_feature",
                "undefined feature `chat` (no features are defined)",
            ),
        ],
    );
}

#[test]
fn plan_features_and_limits_must_name_features_and_meters() {
    let body = "features = [\"chat\", \"video\"]
[plans.free.limits.gpu_minutes]
limit = 5
window = \"day\"
[features.chat]
";
    assert_errors(
        &format!("{HEAD}{body}"),
        &[
            (
                6,
                21,
                "plans.free.features[1]",
                "undefined feature `video` (defined features: chat)",
            ),
            (
                7,
                20,
                "plans.free.limits.gpu_minutes",
                "undefined meter `gpu_minutes` (no meters are defined)",
            ),
        ],
    );
}

#[test]
fn addons_and_credits_need_something_to_act_on() {
    let body = "monthly_credits = 100
[plans.free.addons.more_tokens]
meter = \"tokens\"
percent = 25
[plans.free.addons.more_gpu]
meter = \"gpu\"
percent = 25
[meters.tokens]
unit = \"token\"
";
    assert_errors(
        &format!("{HEAD}{body}"),
        &[
            (
                6,
                19,
                "plans.free.monthly_credits",
                "no meter spends them: set `credits = true`",
            ),
            (
                8,
                9,
                "plans.free.addons.more_tokens.meter",
                "plan `free` has no limit on meter `tokens`",
            ),
            (
                11,
                9,
                "plans.free.addons.more_gpu.meter",
                "undefined meter `gpu` (defined meters: tokens)",
            ),
        ],
    );
}

#[test]
fn route_references_deployments_and_weights_are_checked() {
    let body = "[features.chat]
[routes.r]
feature = \"video\"
plans = [\"free\", \"gold\"]
[[routes.r.deployments]]
provider = \"sim\"
model = \"sim-small\"
weight = 0
[routes.empty]
feature = \"chat\"
deployments = []
[routes.none]
feature = \"chat\"
";
    assert_errors(
        &format!("{HEAD}{body}"),
        &[
            (
                8,
                11,
                "routes.r.feature",
                "undefined feature `video` (defined features: chat)",
            ),
            (
                9,
                18,
                "routes.r.plans[1]",
                "undefined plan `gold` (defined plans: free)",
            ),
            (
                13,
                10,
                "routes.r.deployments[0].weight",
                "must be greater than 0, found 0",
            ),
            (
                16,
                15,
                "routes.empty.deployments",
                "needs at least one [[routes.empty.deployments]]",
            ),
            (
                17,
                1,
                "routes.none.deployments",
                "needs at least one [[routes.none.deployments]]",
            ),
        ],
    );
}

#[test]
fn provider_settings_and_secrets_are_checked_without_echoing_keys() {
    let body = "model_classes = [\"L1\"]
[features.chat]
[routes.big]
feature = \"chat\"
plans = [\"free\"]
model_class = \"L2\"
[[routes.big.deployments]]
provider = \"openai_compatible\"
model = \"llama\"
api_key = \"sk-live-123\"
api_key_env = \"sk-live-123\"
";
    let src = format!("{HEAD}{body}");
    assert_errors(
        &src,
        &[
            (
                10,
                10,
                "routes.big.plans[0]",
                "plan `free` does not allow model class `L2` (its model_classes: L1)",
            ),
            (
                12,
                1,
                "routes.big.deployments[0].base_url",
                "provider `openai_compatible` needs a `base_url`",
            ),
            (
                15,
                1,
                "routes.big.deployments[0].api_key",
                "secrets must not be written in the manifest",
            ),
            (
                16,
                15,
                "routes.big.deployments[0].api_key_env",
                "NAME of an environment variable",
            ),
        ],
    );
    assert!(errors(&src).iter().all(|e| !e.message.contains("sk-live")));
}

#[test]
fn bad_regexes_and_safety_references_are_reported() {
    let body = "[features.chat]
[safety.crisis]
features = [\"chat\", \"mirror\"]
keywords = [\"kill myself\"]
patterns = [\"(?i)ok\", \"(unclosed\"]
action = \"block\"
";
    assert_errors(
        &format!("{HEAD}{body}"),
        &[
            (
                7,
                1,
                "safety.crisis.status",
                "a blocking rule needs a `status` code",
            ),
            (
                8,
                21,
                "safety.crisis.features[1]",
                "undefined feature `mirror` (defined features: chat)",
            ),
            (
                10,
                23,
                "safety.crisis.patterns[1]",
                "invalid regex: unclosed group",
            ),
        ],
    );
}

#[test]
fn time_zones_durations_and_windows_are_validated() {
    let src = "[product]
name = \"p\"
default_plan = \"free\"
timezone = \"Mars/Olympus\"

[plans.free]
timezone = \"europe/paris\"
rate_limits.api.user = { requests = 5, per = \"1sec\" }
[plans.free.limits.requests]
limit = 5
window = \"daily\"
[plans.free.limits.tokens]
limit = 5
window = \"rolling:1h30\"
[meters.requests]
unit = \"r\"
[meters.tokens]
unit = \"t\"
";
    assert_errors(
        src,
        &[
            (
                4,
                12,
                "product.timezone",
                "unknown time zone \"Mars/Olympus\"",
            ),
            (
                7,
                12,
                "plans.free.timezone",
                "unknown time zone \"europe/paris\"",
            ),
            (
                8,
                46,
                "plans.free.rate_limits.api.user.per",
                "invalid duration \"1sec\": unknown unit",
            ),
            (
                11,
                10,
                "plans.free.limits.requests.window",
                "invalid window \"daily\"",
            ),
            (
                14,
                10,
                "plans.free.limits.tokens.window",
                "invalid duration \"1h30\": missing unit",
            ),
        ],
    );
}
