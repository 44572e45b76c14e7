//! `Idempotency-Key` at the edges: a request still running, service callers, anonymous
//! callers, the sweeper, and what the OpenAPI document and metrics say.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::post;
use keel_core::integrity::idempotency::MAX_KEPT_BODY;
use keel_server::AppState;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::Notify;
use utoipa_axum::router::OpenApiRouter;

use crate::helpers::{error_of, spawn_app, spawn_routes, spawn_with, unique_email};

fn replayed(res: &reqwest::Response) -> Option<&str> {
    res.headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap())
}

/// A route that signals `entered` and then waits for `release`, counting its runs.
fn hold_route(entered: Arc<Notify>, release: Arc<Notify>) -> OpenApiRouter<AppState> {
    let runs = Arc::new(AtomicU32::new(0));
    OpenApiRouter::new().route(
        "/v1/test/hold",
        post(move || {
            let (entered, release, runs) = (entered.clone(), release.clone(), runs.clone());
            async move {
                let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
                entered.notify_one();
                release.notified().await;
                axum::Json(json!({"run": n}))
            }
        }),
    )
}

#[tokio::test]
async fn a_retry_while_the_first_runs_gets_409_then_the_kept_answer() {
    let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let routes = hold_route(entered.clone(), release.clone());
    let app = spawn_routes(keel_core::manifest::DEMO_MANIFEST, routes, |_| {}).await;
    let s = app.register(&unique_email()).await;
    let send = || {
        app.client
            .post(app.url("/v1/test/hold"))
            .bearer_auth(&s.access)
            .header("Idempotency-Key", "build-7")
            .send()
    };
    let first = tokio::spawn(send());
    entered.notified().await;
    let busy = send().await.unwrap();
    assert_eq!(busy.status(), 409);
    assert_eq!(busy.headers()["retry-after"], "1");
    assert_eq!(error_of(busy).await["code"], "idempotency_in_progress");
    release.notify_one();
    let first = first.await.unwrap().unwrap();
    assert_eq!((first.status().as_u16(), replayed(&first)), (200, None));
    let first_body = first.bytes().await.unwrap();
    let again = send().await.unwrap();
    assert_eq!(
        (again.status().as_u16(), replayed(&again)),
        (200, Some("true"))
    );
    assert_eq!(again.bytes().await.unwrap(), first_body);
    assert_eq!(
        serde_json::from_slice::<Value>(&first_body).unwrap()["run"],
        1
    );
}

#[tokio::test]
async fn a_service_call_replays_but_never_to_a_wrong_secret() {
    let app = spawn_app().await;
    let (_, user) = app.user().await;
    let path = format!("/v1/service/users/{user}/balance");
    let body = json!({"delta_micros": 250, "idempotency_key": "topup-1"});
    let call = |token: &'static str| {
        app.client
            .request(Method::POST, app.url(&path))
            .bearer_auth(token)
            .header("Idempotency-Key", "svc-1")
            .json(&body)
            .send()
    };
    let first = call(crate::helpers::SERVICE_TOKEN).await.unwrap();
    assert_eq!((first.status().as_u16(), replayed(&first)), (200, None));
    let first_body = first.bytes().await.unwrap();
    let again = call(crate::helpers::SERVICE_TOKEN).await.unwrap();
    assert_eq!(replayed(&again), Some("true"));
    assert_eq!(again.bytes().await.unwrap(), first_body);
    // Same claimed key id, wrong secret: refused by the route, nothing replayed.
    let forged = call("worker.not-the-secret-not-the-secret-00")
        .await
        .unwrap();
    assert_eq!((forged.status().as_u16(), replayed(&forged)), (401, None));
    assert_eq!(
        error_of(forged).await["code"],
        "invalid_service_credentials"
    );
}

#[tokio::test]
async fn anonymous_calls_ignore_the_key() {
    let app = spawn_app().await;
    for _ in 0..2 {
        let res = app
            .client
            .post(app.url("/v1/auth/register"))
            .header("Idempotency-Key", "signup-1")
            .json(&json!({"email": unique_email(), "password": crate::helpers::PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!((res.status().as_u16(), replayed(&res)), (201, None));
    }
}

#[tokio::test]
async fn expired_records_are_swept() {
    let app = spawn_with(|s| {
        s.idempotency_ttl = Duration::from_secs(1);
        s.request_timeout = Duration::from_secs(1);
        s.sweep_interval = Duration::from_millis(100);
    })
    .await;
    let s = app.register(&unique_email()).await;
    assert_eq!(
        app.create_key(&s.access, Some("short"), "ci")
            .await
            .status(),
        201
    );
    let kept = app
        .record_of(&s.access, "POST", "/v1/api-keys", "short")
        .await;
    assert!(kept.is_some_and(|r| r.kept.is_some()));
    let mut gone = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if app
            .record_of(&s.access, "POST", "/v1/api-keys", "short")
            .await
            .is_none()
        {
            gone = true;
            break;
        }
    }
    assert!(gone, "the sweeper deleted the expired record");
    // After expiry the key is fresh: the request executes again.
    let res = app.create_key(&s.access, Some("short"), "ci").await;
    assert_eq!((res.status().as_u16(), replayed(&res)), (201, None));
    assert_eq!(app.key_count(&s.access).await, 2);
}

#[tokio::test]
async fn the_header_is_documented_and_outcomes_are_counted() {
    let app = spawn_app().await;
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    let params = &doc["paths"]["/v1/api-keys"]["post"]["parameters"];
    let header = params
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Idempotency-Key")
        .unwrap();
    assert_eq!(
        (header["in"].as_str(), header["required"].as_bool()),
        (Some("header"), Some(false))
    );
    assert!(doc["paths"]["/v1/api-keys"]["get"]["parameters"].is_null());
    let s = app.register(&unique_email()).await;
    for _ in 0..2 {
        app.create_key(&s.access, Some("metric-1"), "ci").await;
    }
    let text = app
        .client
        .get(&app.metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for outcome in ["executed", "replayed"] {
        let line = format!("keel_idempotency_total{{outcome=\"{outcome}\"}}");
        assert!(text.contains(&line), "{line} in\n{text}");
    }
}

/// `/v1/test/flaky` panics on its first run, answers 503 on its second and 200 after;
/// `/v1/test/big` answers a body one byte over what is kept. Both count their runs.
fn failing_routes() -> OpenApiRouter<AppState> {
    let flaky = Arc::new(AtomicU32::new(0));
    let big = Arc::new(AtomicU32::new(0));
    OpenApiRouter::new()
        .route(
            "/v1/test/flaky",
            post(move || {
                let n = flaky.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    match n {
                        1 => panic!("first run fails"),
                        2 => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            axum::Json(json!({"run": n})),
                        ),
                        _ => (StatusCode::OK, axum::Json(json!({"run": n}))),
                    }
                }
            }),
        )
        .route(
            "/v1/test/big",
            post(move || {
                let n = big.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    let mut body = vec![b'x'; MAX_KEPT_BODY + 1];
                    body[0] = b'0' + n as u8;
                    body
                }
            }),
        )
}

#[tokio::test]
async fn failures_and_oversized_responses_are_not_kept() {
    let app = spawn_routes(keel_core::manifest::DEMO_MANIFEST, failing_routes(), |_| {}).await;
    let s = app.register(&unique_email()).await;
    let call = |path: &'static str| {
        app.client
            .post(app.url(path))
            .bearer_auth(&s.access)
            .header("Idempotency-Key", "retry-me")
            .send()
    };
    let panicked = call("/v1/test/flaky").await.unwrap();
    assert_eq!(panicked.status(), 500);
    assert_eq!(error_of(panicked).await["code"], "internal");
    let unavailable = call("/v1/test/flaky").await.unwrap();
    assert_eq!(
        (unavailable.status().as_u16(), replayed(&unavailable)),
        (503, None)
    );
    let ok = call("/v1/test/flaky").await.unwrap();
    assert_eq!((ok.status().as_u16(), replayed(&ok)), (200, None));
    assert_eq!(ok.json::<Value>().await.unwrap()["run"], 3);
    let again = call("/v1/test/flaky").await.unwrap();
    assert_eq!(replayed(&again), Some("true"));
    assert_eq!(again.json::<Value>().await.unwrap()["run"], 3);
    for run in [b'1', b'2'] {
        let res = call("/v1/test/big").await.unwrap();
        assert_eq!((res.status().as_u16(), replayed(&res)), (200, None));
        let body = res.bytes().await.unwrap();
        assert_eq!(
            (body.len(), body[0]),
            (MAX_KEPT_BODY + 1, run),
            "whole, and run again"
        );
    }
}
