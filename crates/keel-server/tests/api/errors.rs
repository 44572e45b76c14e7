use std::time::Duration;

use crate::helpers::{error_of, spawn_app, spawn_with};

#[tokio::test]
async fn an_unknown_route_is_404_not_found_in_the_envelope() {
    let app = spawn_app().await;
    let res = app.get("/v1/definitely-not-here").await;
    assert_eq!(res.status(), 404);
    let err = error_of(res).await;
    assert_eq!(err["code"], "not_found");
    assert_eq!(err["type"], "not_found_error");
}

#[tokio::test]
async fn a_wrong_method_is_405_in_the_envelope() {
    let app = spawn_app().await;
    let res = app.client.delete(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(error_of(res).await["code"], "method_not_allowed");
}

#[tokio::test]
async fn malformed_json_is_400_invalid_json_with_the_position() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/test/echo"))
        .header("content-type", "application/json")
        .body("{\n  \"name\": \"x\",\n  \"count\": ,\n}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let err = error_of(res).await;
    assert_eq!(err["code"], "invalid_json");
    assert_eq!(err["details"]["line"], 3);
    assert_eq!(err["details"]["column"], 12);
}

#[tokio::test]
async fn a_wrong_field_type_is_422_naming_the_field() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/test/echo"))
        .json(&serde_json::json!({"name": "x", "count": "three"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let err = error_of(res).await;
    assert_eq!(err["code"], "validation_failed");
    assert_eq!(err["details"]["field"], "count");
    let res = app
        .client
        .post(app.url("/test/echo"))
        .json(&serde_json::json!({"count": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    assert!(error_of(res).await["message"]
        .as_str()
        .unwrap()
        .contains("name"));
}

#[tokio::test]
async fn a_good_body_reaches_the_handler() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/test/echo"))
        .json(&serde_json::json!({"name": "x", "count": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"name": "x", "count": 3}));
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = spawn_with(|s| s.body_limit = 1024).await;
    let big = format!(r#"{{"name":"{}","count":1}}"#, "a".repeat(4096));
    let res = app
        .client
        .post(app.url("/test/echo"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(error_of(res).await["code"], "payload_too_large");
}

#[tokio::test]
async fn a_body_without_a_json_content_type_is_415() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/test/echo"))
        .body(r#"{"name":"x","count":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    assert_eq!(error_of(res).await["code"], "unsupported_media_type");
}

#[tokio::test]
async fn a_handler_panic_is_500_internal_leaking_nothing() {
    let app = spawn_app().await;
    let res = app.get("/test/panic").await;
    assert_eq!(res.status(), 500);
    let err = error_of(res).await;
    assert_eq!(err["code"], "internal");
    assert!(!err.to_string().contains("secret internal detail"));
    // The server keeps serving after a panic.
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn a_handler_slower_than_the_request_timeout_is_504() {
    let app = spawn_with(|s| s.request_timeout = Duration::from_millis(200)).await;
    let res = app.get("/test/slow?ms=2000").await;
    assert_eq!(res.status(), 504);
    assert_eq!(error_of(res).await["code"], "request_timeout");
    assert_eq!(app.get("/test/slow?ms=10").await.status(), 200);
}
