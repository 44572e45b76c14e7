//! Security headers on every response, HSTS when configured, CORS for listed origins only.

use reqwest::{Method, Response};

use crate::helpers::{spawn_app, spawn_with, TestApp};

const STRICT: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-resource-policy", "same-origin"),
];

const APP_ORIGIN: &str = "https://app.example.com";

fn cors_headers(res: &Response) -> Vec<String> {
    res.headers()
        .keys()
        .map(|k| k.as_str().to_string())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

async fn preflight(app: &TestApp, origin: &str) -> Response {
    app.client
        .request(Method::OPTIONS, app.url("/v1/me"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,idempotency-key,x-keel-feature",
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_response_carries_the_strict_set_and_no_hsts_by_default() {
    let app = spawn_app().await;
    let me = app.get_auth("/v1/me", "not-a-token").await;
    for res in [app.get("/healthz").await, app.get("/nope").await, me] {
        for (name, value) in STRICT {
            assert_eq!(res.headers()[name], value, "{name} on {}", res.url());
        }
        assert!(res.headers().get("strict-transport-security").is_none());
        assert!(cors_headers(&res).is_empty(), "no CORS unless configured");
    }
    // Without an allow-list a preflight from anywhere gets no CORS headers either.
    assert!(cors_headers(&preflight(&app, APP_ORIGIN).await).is_empty());
}

#[tokio::test]
async fn hsts_is_sent_when_configured() {
    let app = spawn_with(|s| s.hsts = Some("max-age=63072000; includeSubDomains".into())).await;
    let res = app.get("/healthz").await;
    assert_eq!(
        res.headers()["strict-transport-security"],
        "max-age=63072000; includeSubDomains"
    );
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_gets_cors_headers_and_others_none() {
    let app = spawn_with(|s| {
        s.cors_origins = vec![APP_ORIGIN.into(), "http://localhost:3000".into()];
    })
    .await;
    let res = preflight(&app, APP_ORIGIN).await;
    assert!(res.status().is_success(), "{}", res.status());
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], APP_ORIGIN);
    let methods = h["access-control-allow-methods"].to_str().unwrap();
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );
    let allowed = h["access-control-allow-headers"].to_str().unwrap();
    for name in ["authorization", "idempotency-key", "x-keel-feature"] {
        assert!(allowed.contains(name), "{allowed}");
    }
    assert_eq!(h["access-control-max-age"], "3600");
    assert!(h.get("access-control-allow-credentials").is_none());
    for other in [
        "https://evil.example.com",
        "https://app.example.com.evil.net",
    ] {
        let res = preflight(&app, other).await;
        assert!(
            cors_headers(&res).is_empty(),
            "{other}: {:?}",
            res.headers()
        );
    }
}

#[tokio::test]
async fn a_cross_origin_request_may_read_the_rate_limit_and_request_id_headers() {
    let app = spawn_with(|s| s.cors_origins = vec![APP_ORIGIN.into()]).await;
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("origin", APP_ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], APP_ORIGIN);
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_string();
    for name in [
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "retry-after",
        "idempotent-replayed",
        "x-request-id",
    ] {
        assert!(exposed.contains(name), "{exposed}");
    }
    for (name, value) in STRICT {
        assert_eq!(res.headers()[name], value);
    }
    let foreign = app
        .client
        .get(app.url("/healthz"))
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert!(cors_headers(&foreign).is_empty());
}
