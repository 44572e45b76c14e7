//! `[rate_limits]` and `[plans.<p>.rate_limits]`: every error located, effective limits per plan.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keel_core::manifest::{self, ManifestError, RouteClass, Scope};

/// Lines 1-5 of every test manifest; test bodies start on line 6.
const HEAD: &str = "[product]\nname = \"p\"\ndefault_plan = \"free\"\n\n[plans.free]\n";

fn errors(src: &str) -> Vec<ManifestError> {
    match manifest::parse_str(src, "keel.toml") {
        Ok(_) => panic!("expected errors in:\n{src}"),
        Err(errors) => errors.0,
    }
}

/// Asserts exactly these errors, in order: (line, column, key, message fragment).
fn assert_errors(body: &str, expected: &[(usize, usize, &str, &str)]) {
    let found = errors(&format!("{HEAD}{body}"));
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
    }
}

#[test]
fn unknown_classes_and_scopes_are_reported() {
    let body = "[rate_limits.chat]
ip = { requests = 1, per = \"1m\" }
[rate_limits.auth]
everyone = { requests = 1, per = \"1m\" }
";
    assert_errors(
        body,
        &[
            (
                6,
                14,
                "rate_limits.chat",
                "unknown field `chat`, expected one of `auth`, `gateway`, `jobs`, `service`, `api`",
            ),
            (
                9,
                1,
                "rate_limits.auth.everyone",
                "unknown field `everyone`, expected one of `ip`, `key`, `user`, `tenant`",
            ),
        ],
    );
}

#[test]
fn zero_rates_and_bad_periods_are_reported_at_the_value() {
    let body = "[rate_limits.api]
user = { requests = 0, per = \"1m\" }
tenant = { requests = 5, per = \"1m\", burst = 0 }
key = { requests = 5, per = \"soon\" }
ip = { requests = -1, per = \"1m\" }
";
    assert_errors(
        body,
        &[
            (
                7,
                21,
                "rate_limits.api.user.requests",
                "must be greater than 0, found 0",
            ),
            (
                8,
                46,
                "rate_limits.api.tenant.burst",
                "must be greater than 0, found 0",
            ),
            (
                9,
                29,
                "rate_limits.api.key.per",
                "invalid duration \"soon\"",
            ),
            (
                10,
                19,
                "rate_limits.api.ip.requests",
                "invalid value: integer `-1`, expected u32",
            ),
        ],
    );
}

#[test]
fn a_rate_finer_than_a_microsecond_is_refused() {
    let body = "[rate_limits.gateway]\nuser = { requests = 5000, per = \"1ms\" }\n";
    assert_errors(
        body,
        &[(
            7,
            21,
            "rate_limits.gateway.user.requests",
            "5000 requests per 1ms is more than one per microsecond",
        )],
    );
}

#[test]
fn plans_may_not_limit_ips_or_service_calls() {
    let body = "[plans.free.rate_limits.auth]
ip = { requests = 5, per = \"1m\" }
user = { requests = 5, per = \"1m\" }
[plans.free.rate_limits.service]
key = { requests = 5, per = \"1m\" }
";
    assert_errors(
        body,
        &[
            (
                7,
                1,
                "plans.free.rate_limits.auth.ip",
                "an IP limit holds every caller whatever their plan: declare it under [rate_limits.auth]",
            ),
            (
                9,
                25,
                "plans.free.rate_limits.service",
                "service calls have no plan: limit them under [rate_limits.service]",
            ),
        ],
    );
}

#[test]
fn service_calls_are_limited_per_key_or_ip_only() {
    let body = "[rate_limits.service]
key = { requests = 5, per = \"1s\" }
user = { requests = 5, per = \"1s\" }
tenant = { requests = 0, per = \"1s\" }
";
    assert_errors(
        body,
        &[
            (
                8,
                1,
                "rate_limits.service.user",
                "service calls are limited per `key` (the service key) or `ip` only",
            ),
            (
                9,
                1,
                "rate_limits.service.tenant",
                "service calls are limited per `key`",
            ),
            (
                9,
                23,
                "rate_limits.service.tenant.requests",
                "must be greater than 0",
            ),
        ],
    );
}

#[test]
fn the_old_single_rate_limit_key_points_to_the_new_table() {
    assert_errors(
        "rate_limit = { requests = 5, per = \"1s\" }\n",
        &[(
            6,
            1,
            "plans.free.rate_limit",
            "unknown field `rate_limit`, expected one of",
        )],
    );
    let message = &errors(&format!("{HEAD}rate_limit = 1\n"))[0].message;
    assert!(message.contains("`rate_limits`"), "{message}");
}

#[test]
fn a_plan_overrides_the_product_limits_scope_by_scope() {
    let src = format!(
        "{HEAD}[plans.pro]
[plans.pro.rate_limits.gateway]
user = {{ requests = 600, per = \"1m\" }}
[rate_limits.gateway]
ip = {{ requests = 1000, per = \"1m\" }}
user = {{ requests = 60, per = \"1m\", burst = 10 }}
[rate_limits.auth]
ip = {{ requests = 20, per = \"1m\" }}
"
    );
    let m = manifest::parse_str(&src, "keel.toml").unwrap().manifest;
    let requests = |plan: Option<&str>| -> Vec<(Scope, u32, u32)> {
        m.rate_limits_for(RouteClass::Gateway, plan)
            .iter()
            .map(|(s, l)| (s, l.requests, l.burst()))
            .collect()
    };
    assert_eq!(
        requests(Some("pro")),
        [(Scope::Ip, 1000, 1000), (Scope::User, 600, 600)]
    );
    assert_eq!(
        requests(Some("free")),
        [(Scope::Ip, 1000, 1000), (Scope::User, 60, 10)]
    );
    assert_eq!(requests(None), requests(Some("no-such-plan")));
    assert!(m.rate_limits_for(RouteClass::Jobs, Some("pro")).is_empty());
    assert!(m.plans_limit(RouteClass::Gateway) && !m.plans_limit(RouteClass::Auth));
    assert!(m.limits_callers(RouteClass::Gateway));
    assert!(!m.limits_callers(RouteClass::Auth), "IP only");
}

fn example(name: &str) -> manifest::Manifest {
    let path = format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"));
    manifest::load_file(std::path::Path::new(&path))
        .unwrap()
        .manifest
}

#[test]
fn ameide_buckets_gateway_calls_per_tenant() {
    let m = example("ameide.toml");
    for plan in ["team", "enterprise"] {
        let limits = m.rate_limits_for(RouteClass::Gateway, Some(plan));
        let (tenant, user) = (limits.tenant.unwrap(), limits.user.unwrap());
        assert!(tenant.requests > user.requests, "{plan}");
    }
    assert!(m.rate_limits_for(RouteClass::Auth, None).ip.is_some());
}

#[test]
fn builder_pro_gets_more_gateway_calls_than_free() {
    let m = example("builder.toml");
    let user = |plan| {
        m.rate_limits_for(RouteClass::Gateway, Some(plan))
            .user
            .unwrap()
            .requests
    };
    assert!(user("pro") > user("free"));
    assert!(m.rate_limits_for(RouteClass::Service, None).key.is_some());
}

#[test]
fn the_demo_limits_are_generous_enough_for_tests() {
    let m = example("demo.toml");
    for class in RouteClass::ALL {
        for plan in [None, Some("free"), Some("pro")] {
            for (scope, limit) in m.rate_limits_for(class, plan).iter() {
                assert!(limit.burst() >= 300, "{class} {scope} {plan:?}");
                assert!(limit.per.as_secs() <= 60, "{class} {scope}");
            }
        }
    }
}
