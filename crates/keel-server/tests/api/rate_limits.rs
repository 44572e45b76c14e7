//! Rate limits on one node (in-process state): headers, 429s, scopes, plans, IPs, keys.

use base64::Engine;
use reqwest::{Method, Response};
use serde_json::{json, Value};

use crate::helpers::{error_of, spawn_full, unique_email, TestApp};

/// A product with two plans and the given rate limits.
pub fn manifest(limits: &str) -> String {
    format!(
        "[product]\nname = \"rl\"\ndefault_plan = \"free\"\n[plans.free]\n[plans.pro]\n{limits}"
    )
}

/// The user id (`sub`) of an access token.
pub fn user_of(access: &str) -> String {
    let payload = access.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    let claims: Value = serde_json::from_slice(&bytes).unwrap();
    claims["sub"].as_str().unwrap().to_string()
}

fn header(res: &Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

fn number(res: &Response, name: &str) -> u64 {
    header(res, name).unwrap().parse().unwrap()
}

/// Sends `GET /v1/me` and returns the response.
async fn me(app: &TestApp, access: &str) -> Response {
    app.get_auth("/v1/me", access).await
}

/// Asserts a 429 `rate_limited` refusal for `scope` and returns its details.
async fn refused(res: Response, scope: &str) -> Value {
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    let retry = number(&res, "retry-after");
    let err = error_of(res).await;
    assert_eq!(err["code"], "rate_limited");
    assert_eq!(err["type"], "rate_limit_error");
    assert_eq!(err["details"]["scope"], scope, "{err}");
    assert_eq!(err["details"]["retry_after"], retry);
    err["details"].clone()
}

#[tokio::test]
async fn responses_carry_the_most_restrictive_limit_and_a_429_says_when_to_retry() {
    let limits = "[rate_limits.api]
user = { requests = 10, per = \"10h\", burst = 3 }
ip = { requests = 1000, per = \"1h\" }
";
    let app = spawn_full(&manifest(limits), |_| {}).await;
    let s = app.register(&unique_email()).await;
    let first = me(&app, &s.access).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "ratelimit-limit").as_deref(), Some("3"));
    assert_eq!(number(&first, "ratelimit-remaining"), 2);
    // One emission interval (10 h / 10) until the one request is earned back.
    assert_eq!(number(&first, "ratelimit-reset"), 3_600);
    let second = me(&app, &s.access).await;
    assert_eq!(number(&second, "ratelimit-remaining"), 1);
    assert!((7_190..=7_200).contains(&number(&second, "ratelimit-reset")));
    assert_eq!(number(&me(&app, &s.access).await, "ratelimit-remaining"), 0);
    let res = me(&app, &s.access).await;
    assert_eq!(header(&res, "ratelimit-limit").as_deref(), Some("3"));
    assert_eq!(number(&res, "ratelimit-remaining"), 0);
    assert!((3_590..=3_600).contains(&number(&res, "retry-after")));
    let details = refused(res, "user").await;
    assert_eq!(details["class"], "api");
    assert_eq!(
        (&details["limit"], &details["burst"], &details["period"]),
        (&json!(10), &json!(3), &json!("10h"))
    );
    // Unlimited routes and classes carry no rate-limit headers.
    for path in ["/healthz", "/openapi.json"] {
        assert!(
            header(&app.get(path).await, "ratelimit-limit").is_none(),
            "{path}"
        );
    }
    let login = app.post_json("/v1/auth/login", None, json!({})).await;
    assert!(header(&login, "ratelimit-limit").is_none());
    let metrics = app.client.get(&app.metrics).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("keel_rate_limited_total{")
                && l.contains("class=\"api\"")
                && l.contains("scope=\"user\"")),
        "{text}"
    );
}

#[tokio::test]
async fn a_request_refused_by_a_later_limit_consumes_nothing_from_earlier_ones() {
    // Checked in order ip, then user: five requests per IP, two per user.
    let limits = "[rate_limits.api]
ip = { requests = 5, per = \"1h\" }
user = { requests = 2, per = \"1h\" }
";
    let app = spawn_full(&manifest(limits), |_| {}).await;
    let [a, b, c] = [0; 3].map(|_| unique_email());
    let (a, b, c) = (
        app.register(&a).await,
        app.register(&b).await,
        app.register(&c).await,
    );
    for _ in 0..2 {
        assert_eq!(me(&app, &a.access).await.status(), 200);
    }
    for _ in 0..3 {
        refused(me(&app, &a.access).await, "user").await;
    }
    // Had A's refusals counted against the IP, its five would be gone already.
    for _ in 0..2 {
        assert_eq!(me(&app, &b.access).await.status(), 200);
    }
    assert_eq!(me(&app, &c.access).await.status(), 200);
    refused(me(&app, &c.access).await, "ip").await;
}

async fn subscribe(app: &TestApp, user: &str, plan: &str) {
    let now = chrono::Utc::now();
    let body = json!({"plan": plan, "status": "active", "period_start": now - chrono::Duration::days(1), "period_end": now + chrono::Duration::days(29)});
    let path = format!("/v1/service/users/{user}/subscription");
    let res = app.service(Method::PUT, &path, Some(body)).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
}

#[tokio::test]
async fn each_plan_gets_its_own_limits() {
    let limits = "[rate_limits.api]
user = { requests = 2, per = \"1h\" }
[plans.pro.rate_limits.api]
user = { requests = 5, per = \"1h\" }
";
    let app = spawn_full(&manifest(limits), |_| {}).await;
    let free = app.register(&unique_email()).await;
    let pro = app.register(&unique_email()).await;
    subscribe(&app, &user_of(&pro.access), "pro").await;
    let admitted = |access: String| {
        let app = &app;
        async move {
            let mut n = 0;
            loop {
                let res = me(app, &access).await;
                if res.status() == 429 {
                    return (n, refused(res, "user").await);
                }
                assert_eq!(res.status(), 200);
                n += 1;
            }
        }
    };
    let (n, details) = admitted(free.access).await;
    assert_eq!((n, &details["limit"]), (2, &json!(2)));
    let (n, details) = admitted(pro.access).await;
    assert_eq!((n, &details["limit"]), (5, &json!(5)));
}

#[tokio::test]
async fn auth_routes_are_limited_per_ip_and_forwarded_for_counts_only_from_trusted_proxies() {
    let limits = "[rate_limits.auth]\nip = { requests = 3, per = \"1h\" }\n";
    let login = |app: &TestApp, forwarded: &'static str| {
        let req = app
            .client
            .post(app.url("/v1/auth/login"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({}));
        async move { req.send().await.unwrap() }
    };
    // Without trusted proxies the header is ignored: every attempt is the peer's.
    let direct = spawn_full(&manifest(limits), |_| {}).await;
    for spoof in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        assert_ne!(login(&direct, spoof).await.status(), 429);
    }
    refused(login(&direct, "203.0.113.4").await, "ip").await;
    // Behind a trusted proxy each forwarded client has its own allowance.
    let proxied = spawn_full(&manifest(limits), |s| {
        s.trusted_proxies = keel_server::integrity::TrustedProxies::parse("127.0.0.1").unwrap();
    })
    .await;
    for _ in 0..3 {
        assert_ne!(login(&proxied, "203.0.113.7").await.status(), 429);
    }
    refused(login(&proxied, "203.0.113.7").await, "ip").await;
    let other = login(&proxied, "203.0.113.8").await;
    assert_ne!(other.status(), 429);
    assert_eq!(number(&other, "ratelimit-remaining"), 2);
}

#[tokio::test]
async fn service_calls_are_limited_per_proven_key_only() {
    let limits = "[rate_limits.service]\nkey = { requests = 3, per = \"1h\" }\n";
    let app = spawn_full(&manifest(limits), |_| {}).await;
    let user = user_of(&app.register(&unique_email()).await.access);
    let path = format!("/v1/service/users/{user}/entitlements");
    // Calls that claim the key without its secret cannot spend its allowance.
    for _ in 0..5 {
        let res = app
            .client
            .get(app.url(&path))
            .bearer_auth("worker.not-the-secret-not-the-secret-not-the")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    for _ in 0..3 {
        assert_eq!(app.service(Method::GET, &path, None).await.status(), 200);
    }
    refused(app.service(Method::GET, &path, None).await, "key").await;
}

#[tokio::test]
async fn a_thousand_requests_on_one_node_admit_exactly_the_limit() {
    let app = spawn_full(&manifest(crate::rate_limits_cluster::HUNDRED), |_| {}).await;
    let s = app.register(&unique_email()).await;
    let statuses = crate::rate_limits_cluster::hammer(&[&app], &s.access, 1_000).await;
    assert_eq!(statuses.get(&200), Some(&100), "{statuses:?}");
    assert_eq!(statuses.get(&429), Some(&900), "{statuses:?}");
}
