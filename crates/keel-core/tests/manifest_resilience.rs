//! Route resilience settings: `retry`, `total_timeout`, `ttft_timeout`, `idle_timeout` and
//! `breaker`, resolved with defaults, and every bad value reported where it is written.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use keel_core::gateway::Policy;
use keel_core::manifest::{self, ManifestError};

/// Lines 1-10 of every test manifest; route bodies start on line 11.
const HEAD: &str = "[product]\nname = \"p\"\ndefault_plan = \"free\"\n\n[plans.free]\n\
[features.chat]\n\n[routes.r]\nfeature = \"chat\"\ndeployments = [{ provider = \"sim\", model = \"m\" }]\n";

fn parse(body: &str) -> Result<manifest::Manifest, Vec<ManifestError>> {
    manifest::parse_str(&format!("{HEAD}{body}"), "keel.toml")
        .map(|loaded| loaded.manifest)
        .map_err(|e| e.0)
}

/// Asserts exactly these errors, in order: (line, key, message fragment).
fn assert_errors(body: &str, expected: &[(usize, &str, &str)]) {
    let found = parse(body)
        .err()
        .unwrap_or_else(|| panic!("no errors in {body}"));
    let shown: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(found.len(), expected.len(), "{shown:#?}");
    for (error, (line, key, fragment)) in found.iter().zip(expected) {
        assert_eq!(
            (error.line, error.key.as_str()),
            (*line, *key),
            "{shown:#?}"
        );
        assert!(
            error.message.contains(fragment),
            "{shown:#?} lacks {fragment:?}"
        );
    }
}

#[test]
fn a_route_without_settings_gets_the_default_policy() {
    let m = parse("").unwrap();
    assert_eq!(m.routes["r"].policy(), Policy::default());
}

#[test]
fn every_setting_is_read() {
    let body = "timeout = \"10s\"
total_timeout = \"45s\"
ttft_timeout = \"3s\"
idle_timeout = \"5s\"
retry = { attempts = 4, base = \"50ms\", max = \"2s\" }
breaker = { failure_rate = 25, window = \"1m\", min_calls = 20, open_for = \"15s\", probes = 3 }
";
    let p = parse(body).unwrap().routes["r"].policy();
    assert_eq!(p.attempts, 4);
    assert_eq!(p.backoff.base, Duration::from_millis(50));
    assert_eq!(p.backoff.max, Duration::from_secs(2));
    assert_eq!(p.attempt_timeout, Duration::from_secs(10));
    assert_eq!(p.total_timeout, Duration::from_secs(45));
    assert_eq!(p.ttft_timeout, Duration::from_secs(3));
    assert_eq!(p.idle_timeout, Duration::from_secs(5));
    assert_eq!(p.breaker.failure_rate_percent, 25);
    assert_eq!(p.breaker.window, Duration::from_secs(60));
    assert_eq!(p.breaker.min_calls, 20);
    assert_eq!(p.breaker.open_for, Duration::from_secs(15));
    assert_eq!(p.breaker.probes, 3);
}

#[test]
fn partial_settings_keep_the_other_defaults_and_ttft_follows_the_timeout() {
    let body = "timeout = \"20s\"\nretry = { attempts = 1 }\nbreaker = { probes = 2 }\n";
    let p = parse(body).unwrap().routes["r"].policy();
    let d = Policy::default();
    assert_eq!((p.attempts, p.backoff), (1, d.backoff));
    assert_eq!(p.ttft_timeout, Duration::from_secs(20));
    assert_eq!(p.breaker.probes, 2);
    assert_eq!(p.breaker.min_calls, d.breaker.min_calls);
}

#[test]
fn out_of_range_values_are_reported_at_the_value() {
    let body = "retry = { attempts = 0, base = \"2s\", max = \"1s\" }
breaker = { failure_rate = 101, min_calls = 0, probes = 0 }
";
    assert_errors(
        body,
        &[
            (
                11,
                "routes.r.retry.attempts",
                "must be between 1 and 10, found 0",
            ),
            (
                11,
                "routes.r.retry.max",
                "must be at least `base` (2s), found 1s",
            ),
            (
                12,
                "routes.r.breaker.failure_rate",
                "between 1 and 100, found 101",
            ),
            (
                12,
                "routes.r.breaker.min_calls",
                "must be at least 1, found 0",
            ),
            (12, "routes.r.breaker.probes", "between 1 and 100, found 0"),
        ],
    );
}

#[test]
fn timeouts_must_fit_in_the_total() {
    let body = "timeout = \"2m\"\ntotal_timeout = \"1m\"\nttft_timeout = \"90s\"\n";
    assert_errors(
        body,
        &[
            (
                11,
                "routes.r.timeout",
                "must not exceed total_timeout (1m), found 2m",
            ),
            (
                13,
                "routes.r.ttft_timeout",
                "must not exceed total_timeout (1m)",
            ),
        ],
    );
    assert_errors(
        "timeout = \"10s\"\nttft_timeout = \"20s\"\n",
        &[(
            12,
            "routes.r.ttft_timeout",
            "must not exceed timeout (10s), found 20s",
        )],
    );
    assert_errors(
        "ttft_timeout = \"2m\"\n",
        &[(
            11,
            "routes.r.ttft_timeout",
            "must not exceed timeout (the default 1m)",
        )],
    );
    assert_errors(
        "idle_timeout = \"1h\"\n",
        &[(
            11,
            "routes.r.idle_timeout",
            "total_timeout (the default 5m)",
        )],
    );
}

#[test]
fn unknown_keys_and_bad_durations_are_reported() {
    assert_errors(
        "retry = { attempts = 2, jitter = true }\n",
        &[(11, "routes.r.retry.jitter", "unknown field `jitter`")],
    );
    assert_errors(
        "breaker = { window = \"soon\" }\n",
        &[(11, "routes.r.breaker.window", "invalid duration \"soon\"")],
    );
    assert_errors(
        "total_timeout = \"0s\"\n",
        &[(11, "routes.r.total_timeout", "must be greater than zero")],
    );
    assert_errors(
        "retry = { attempts = -1 }\n",
        &[(11, "routes.r.retry.attempts", "")],
    );
}
