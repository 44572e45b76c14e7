#![allow(clippy::unwrap_used)]
use super::*;

fn layers() -> Layers {
    Layers::default()
}

#[test]
fn defaults_apply_when_nothing_is_set() {
    let s = Settings::resolve(&layers()).unwrap();
    assert_eq!(s.addr.to_string(), "127.0.0.1:8080");
    assert_eq!(s.metrics_addr.to_string(), "127.0.0.1:9090");
    assert_eq!(s.data_dir, PathBuf::from("./keel-data"));
    assert_eq!(s.database_url, None);
    assert_eq!(s.body_limit, 1024 * 1024);
}

#[test]
fn flags_beat_env_which_beats_the_file() {
    let mut l = layers();
    l.file
        .insert("addr".into(), toml::Value::String("0.0.0.0:1".into()));
    l.file.insert(
        "metrics_addr".into(),
        toml::Value::String("0.0.0.0:2".into()),
    );
    l.file
        .insert("data_dir".into(), toml::Value::String("/from-file".into()));
    l.env.insert("KEEL_ADDR".into(), "0.0.0.0:3".into());
    l.env.insert("KEEL_METRICS_ADDR".into(), "0.0.0.0:4".into());
    l.flags.insert("addr", "0.0.0.0:5".into());
    let s = Settings::resolve(&l).unwrap();
    assert_eq!(s.addr.to_string(), "0.0.0.0:5");
    assert_eq!(s.metrics_addr.to_string(), "0.0.0.0:4");
    assert_eq!(s.data_dir, PathBuf::from("/from-file"));
}

#[test]
fn a_bad_value_names_its_source_value_and_expectation() {
    let mut l = layers();
    l.env.insert("KEEL_ADDR".into(), "not-an-addr".into());
    let err = Settings::resolve(&l).unwrap_err();
    assert_eq!(err.key, "KEEL_ADDR");
    assert_eq!(err.value, "not-an-addr");
    assert!(err.expected.contains("socket address"));
    let line = err.to_string();
    assert!(!line.contains('\n'));
    assert!(
        line.contains("KEEL_ADDR") && line.contains("not-an-addr"),
        "{line}"
    );
}

#[test]
fn bad_values_in_each_layer_are_refused() {
    let mut l = layers();
    l.file
        .insert("request_timeout".into(), toml::Value::Integer(5));
    assert_eq!(
        Settings::resolve(&l).unwrap_err().key,
        "server.request_timeout in keel.toml"
    );
    let mut l = layers();
    l.flags.insert("database_url", "mysql://x".into());
    assert_eq!(Settings::resolve(&l).unwrap_err().key, "--database-url");
    let mut l = layers();
    l.env.insert("KEEL_REDIS_URL".into(), "http://x".into());
    assert_eq!(Settings::resolve(&l).unwrap_err().key, "KEEL_REDIS_URL");
    let mut l = layers();
    l.env.insert("KEEL_BODY_LIMIT".into(), "0".into());
    assert_eq!(Settings::resolve(&l).unwrap_err().key, "KEEL_BODY_LIMIT");
    let mut l = layers();
    l.env.insert("KEEL_LOG_FORMAT".into(), "xml".into());
    assert_eq!(Settings::resolve(&l).unwrap_err().key, "KEEL_LOG_FORMAT");
}

#[test]
fn unknown_server_keys_in_the_file_are_refused() {
    let mut l = layers();
    l.file.insert("adr".into(), toml::Value::String("x".into()));
    let err = Settings::resolve(&l).unwrap_err();
    assert_eq!(err.key, "server.adr");
    assert!(err.expected.contains("addr"));
}

#[test]
fn sizes_and_durations_parse_with_units() {
    assert_eq!(parse_size("1MiB"), Some(1024 * 1024));
    assert_eq!(parse_size("512KiB"), Some(512 * 1024));
    assert_eq!(parse_size("100"), Some(100));
    assert_eq!(parse_size("1 TB"), None);
    assert_eq!(parse_size("-1"), None);
    let mut l = layers();
    l.env.insert("KEEL_REQUEST_TIMEOUT".into(), "250ms".into());
    l.env.insert("KEEL_SHUTDOWN_GRACE".into(), "2m".into());
    let s = Settings::resolve(&l).unwrap();
    assert_eq!(s.request_timeout, Duration::from_millis(250));
    assert_eq!(s.shutdown_grace, Duration::from_secs(120));
}

#[test]
fn service_auth_and_signature_tolerance_parse_and_refuse_bad_values() {
    use crate::integrity::ServiceAuthMode;
    let s = Settings::resolve(&layers()).unwrap();
    assert_eq!(s.service_auth, ServiceAuthMode::SignedOrBearer);
    assert_eq!(s.signature_tolerance, Duration::from_secs(120));
    let mut l = layers();
    l.file
        .insert("service_auth".into(), toml::Value::String("signed".into()));
    l.env.insert("KEEL_SIGNATURE_TOLERANCE".into(), "5m".into());
    let s = Settings::resolve(&l).unwrap();
    assert_eq!(s.service_auth, ServiceAuthMode::Signed);
    assert_eq!(s.signature_tolerance, Duration::from_secs(300));
    for (key, value) in [
        ("KEEL_SERVICE_AUTH", "bearer"),
        ("KEEL_SIGNATURE_TOLERANCE", "2h"),
        ("KEEL_SIGNATURE_TOLERANCE", "500ms"),
    ] {
        let mut l = layers();
        l.env.insert(key.into(), value.into());
        let err = Settings::resolve(&l).unwrap_err();
        assert_eq!((err.key.as_str(), err.value.as_str()), (key, value));
    }
}

#[test]
fn service_keys_come_from_the_env_and_a_keys_file_and_errors_hide_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys");
    let secret = "f".repeat(32);
    std::fs::write(
        &file,
        format!("# rotated 2025-01\nworker@k2:{secret}:legacy_v1\n"),
    )
    .unwrap();
    let mut l = layers();
    l.env.insert(
        "KEEL_SERVICE_KEYS".into(),
        format!("worker:{}", "e".repeat(32)),
    );
    l.env
        .insert("KEEL_SERVICE_KEYS_FILE".into(), file.display().to_string());
    let s = Settings::resolve(&l).unwrap();
    let labels: Vec<String> = s.service_keys.iter().map(|k| k.label()).collect();
    assert_eq!(labels, ["worker@key1", "worker@k2"]);
    assert!(!format!("{s:?}").contains(&secret));
    let mut l = layers();
    l.env
        .insert("KEEL_SERVICE_KEYS".into(), "worker:too-short-secret".into());
    let err = Settings::resolve(&l).unwrap_err();
    assert_eq!(err.key, "KEEL_SERVICE_KEYS");
    assert!(!err.to_string().contains("too-short-secret"), "{err}");
    let mut l = layers();
    l.env.insert(
        "KEEL_SERVICE_KEYS_FILE".into(),
        dir.path().join("missing").display().to_string(),
    );
    assert_eq!(
        Settings::resolve(&l).unwrap_err().key,
        "KEEL_SERVICE_KEYS_FILE"
    );
}
#[test]
fn integrity_settings_parse_and_default_safely() {
    let s = Settings::resolve(&layers()).unwrap();
    assert!(s.trusted_proxies.is_empty() && s.cors_origins.is_empty() && s.hsts.is_none());
    assert_eq!(
        (s.redis_prefix.as_str(), s.rate_limit_fail_mode),
        ("keel:", crate::integrity::FailMode::Open)
    );
    let mut l = layers();
    let origins = ["https://app.example.com", "http://localhost:3000"]
        .map(|o| toml::Value::String(o.into()))
        .to_vec();
    l.file
        .insert("cors_origins".into(), toml::Value::Array(origins));
    l.env
        .insert("KEEL_TRUSTED_PROXIES".into(), "10.0.0.0/8, ::1".into());
    l.env
        .insert("KEEL_RATE_LIMIT_FAIL_MODE".into(), "closed".into());
    l.env.insert("KEEL_REDIS_PREFIX".into(), "prod:".into());
    l.env.insert(
        "KEEL_HSTS".into(),
        "max-age=63072000; includeSubDomains".into(),
    );
    let s = Settings::resolve(&l).unwrap();
    assert_eq!(
        s.cors_origins,
        ["https://app.example.com", "http://localhost:3000"]
    );
    assert!(!s.trusted_proxies.is_empty());
    assert_eq!(s.rate_limit_fail_mode, crate::integrity::FailMode::Closed);
    assert_eq!(s.redis_prefix, "prod:");
    assert_eq!(
        s.hsts.as_deref(),
        Some("max-age=63072000; includeSubDomains")
    );
}

#[test]
fn bad_integrity_settings_name_what_is_expected() {
    for (env, value, expected) in [
        ("KEEL_CORS_ORIGINS", "*", "no `*`"),
        ("KEEL_CORS_ORIGINS", "https://a.example/app", "no path"),
        ("KEEL_TRUSTED_PROXIES", "proxy.internal", "CIDR"),
        ("KEEL_RATE_LIMIT_FAIL_MODE", "maybe", "open or closed"),
        ("KEEL_REDIS_PREFIX", "has space", "printable"),
        ("KEEL_HSTS", "forever", "max-age="),
    ] {
        let mut l = layers();
        l.env.insert(env.into(), value.into());
        let err = Settings::resolve(&l).unwrap_err();
        assert_eq!((err.key.as_str(), err.value.as_str()), (env, value));
        assert!(err.expected.contains(expected), "{err}");
    }
}

#[test]
fn the_idempotency_ttl_defaults_to_a_day_and_is_bounded() {
    assert_eq!(
        Settings::resolve(&layers()).unwrap().idempotency_ttl,
        Duration::from_secs(24 * 3600)
    );
    let mut l = layers();
    l.env.insert("KEEL_IDEMPOTENCY_TTL".into(), "2h".into());
    l.env.insert("KEEL_SWEEP_INTERVAL".into(), "1m".into());
    let s = Settings::resolve(&l).unwrap();
    assert_eq!(s.idempotency_ttl, Duration::from_secs(7200));
    assert_eq!(s.sweep_interval, Duration::from_secs(60));
    for bad in ["0s", "500ms", "31d", "soon"] {
        let mut l = layers();
        l.flags.insert("idempotency_ttl", bad.into());
        let err = Settings::resolve(&l).unwrap_err();
        assert_eq!(err.key, "--idempotency-ttl", "{bad}");
        assert!(err.expected.contains("1s to 30d"), "{bad}");
    }
}
