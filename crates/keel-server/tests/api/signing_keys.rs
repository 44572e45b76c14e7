//! Signed calls across keys and nodes: rotation, revocation, legacy v1, the signed-only
//! mode, metrics, and the nonce cache shared through Redis.
use keel_core::integrity::{sign_v1, ServiceKeys};
use keel_server::integrity::ServiceAuthMode;
use reqwest::Method;

use crate::helpers::{error_of, spawn_with, TestApp};
use crate::signing::{keys, reservation, reserved, spawn_signed, Signed, DEFAULT, GONE, NEW, OLD};

async fn code(res: reqwest::Response) -> String {
    error_of(res).await["code"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn rotation_two_keys_of_a_service_work_and_a_revoked_one_is_refused() {
    let app = spawn_signed().await;
    let (_, user) = app.user().await;
    let path = "/v1/service/reservations";
    for (i, (key_id, secret)) in [("worker", DEFAULT), ("worker", NEW), ("worker@k2", NEW)]
        .into_iter()
        .enumerate()
    {
        let body = reservation(&user, &format!("rotate-{i}"));
        let res = Signed::new(Method::POST, path, Some(&body), key_id, secret)
            .send(&app)
            .await;
        assert_eq!(res.status(), 201, "{key_id}: {:?}", res.text().await);
    }
    // Both old and new signatures in one header while clients roll over: any one passes.
    let body = reservation(&user, "rotate-both");
    let mut both = Signed::new(Method::POST, path, Some(&body), "worker", NEW);
    let stale = format!("v2={}", "0".repeat(64));
    both.signature = Some(format!("{stale},{}", both.signature.unwrap()));
    assert_eq!(both.send(&app).await.status(), 201);
    // The revoked key, named or not.
    let body = reservation(&user, "rotate-revoked");
    for key_id in ["worker@gone", "worker"] {
        let res = Signed::new(Method::POST, path, Some(&body), key_id, GONE)
            .send(&app)
            .await;
        assert_eq!(res.status(), 401);
        assert_eq!(code(res).await, "key_revoked");
    }
    // A revoked key's secret as a bearer credential is refused too.
    let res = app
        .client
        .post(app.url(path))
        .bearer_auth(format!("worker.{GONE}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(code(res).await, "key_revoked");
    assert_eq!(reserved(&app, &user).await, 4 * 5);
}

fn v1_call(user: &str, key_id: &str, secret: &str, idem: &str) -> Signed {
    let body = reservation(user, idem);
    let mut call = Signed::new(
        Method::POST,
        "/v1/service/reservations",
        Some(&body),
        key_id,
        secret,
    );
    call.signature = Some(sign_v1(secret.as_bytes(), &call.body));
    call
}

#[tokio::test]
async fn v1_is_accepted_only_for_a_key_in_legacy_mode() {
    let app = spawn_signed().await;
    let (_, user) = app.user().await;
    let res = v1_call(&user, "worker@old", OLD, "v1-legacy")
        .send(&app)
        .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let res = v1_call(&user, "worker@old", OLD, "v1-legacy-2")
        .send(&app)
        .await;
    assert_eq!(res.status(), 201, "a fresh nonce, another v1 call");
    for (key_id, secret) in [("worker@key1", DEFAULT), ("worker@k2", NEW)] {
        let res = v1_call(&user, key_id, secret, "v1-refused")
            .send(&app)
            .await;
        assert_eq!(res.status(), 401);
        assert_eq!(code(res).await, "signature_version_not_allowed");
    }
    assert_eq!(reserved(&app, &user).await, 2 * 5);
}

#[tokio::test]
async fn the_signed_only_mode_refuses_bearer_service_keys() {
    let app = spawn_with(|s| {
        s.service_keys = keys();
        s.service_auth = ServiceAuthMode::Signed;
    })
    .await;
    let (_, user) = app.user().await;
    let res = app.reserve(&user, "requests", 1, "bearer").await;
    assert_eq!(res.status(), 401);
    assert_eq!(code(res).await, "bearer_not_allowed");
    let res = Signed::new(
        Method::POST,
        "/v1/service/reservations",
        Some(&reservation(&user, "signed")),
        "worker",
        DEFAULT,
    )
    .send(&app)
    .await;
    assert_eq!(res.status(), 201);
    assert_eq!(reserved(&app, &user).await, 5);
}

async fn counter(app: &TestApp, scheme: &str, outcome: &str) -> u64 {
    let text = app
        .client
        .get(&app.metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let want = |l: &&str| {
        l.starts_with("keel_service_auth_total{")
            && l.contains(&format!("scheme=\"{scheme}\""))
            && l.contains(&format!("outcome=\"{outcome}\""))
    };
    text.lines()
        .find(want)
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn outcomes_are_counted_by_scheme() {
    let app = spawn_signed().await;
    let (_, user) = app.user().await;
    let before = (
        counter(&app, "v1", "ok").await,
        counter(&app, "bearer", "ok").await,
        counter(&app, "v2", "signature_invalid").await,
    );
    assert_eq!(
        v1_call(&user, "worker@old", OLD, "m1")
            .send(&app)
            .await
            .status(),
        201
    );
    assert_eq!(app.reserve(&user, "requests", 1, "m2").await.status(), 201);
    let bad = Signed::new(
        Method::GET,
        "/v1/service/users/x/entitlements",
        None,
        "worker",
        &"y".repeat(32),
    );
    assert_eq!(bad.send(&app).await.status(), 401);
    assert!(counter(&app, "v1", "ok").await > before.0);
    assert!(counter(&app, "bearer", "ok").await > before.1);
    assert!(counter(&app, "v2", "signature_invalid").await > before.2);
}

#[tokio::test]
async fn nonces_are_shared_through_redis_across_instances() {
    let redis = |s: &mut keel_server::Settings| {
        s.service_keys = ServiceKeys::parse(&format!("worker:{DEFAULT}")).unwrap();
        s.redis_url = Some("redis://127.0.0.1:6379".into());
    };
    let (a, b) = (spawn_with(redis).await, spawn_with(redis).await);
    let target = "/v1/service/users/usr_00000000000000000000000000000000/entitlements";
    let call = Signed::new(Method::GET, target, None, "worker", DEFAULT);
    // Authenticated on A (the user does not exist, so 404 after authentication).
    let res = call.send(&a).await;
    assert_eq!(res.status(), 404);
    assert_eq!(code(res).await, "unknown_user");
    // The same nonce on B, another node sharing Redis.
    let res = call.send(&b).await;
    assert_eq!(res.status(), 401);
    assert_eq!(code(res).await, "nonce_replayed");
    // Without Redis, nodes do not share nonces (each has its own window).
    let solo = |s: &mut keel_server::Settings| s.service_keys = keys();
    let (c, d) = (spawn_with(solo).await, spawn_with(solo).await);
    let call = Signed::new(Method::GET, target, None, "worker", DEFAULT);
    assert_eq!(call.send(&c).await.status(), 404);
    assert_eq!(call.send(&d).await.status(), 404);
    assert_eq!(code(call.send(&c).await).await, "nonce_replayed");
}
