use std::collections::BTreeSet;

use crate::helpers::{error_of, spawn_app};

#[tokio::test]
async fn healthz_answers_while_the_process_is_up() {
    let app = spawn_app().await;
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn readyz_reports_the_backend_and_a_current_schema() {
    let app = spawn_app().await;
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    let expected = match std::env::var("KEEL_TEST_BACKEND").as_deref() {
        Ok("postgres") => "postgres",
        _ => "sqlite",
    };
    assert_eq!(body["backend"], expected);
    assert!(body["schema_version"].as_i64().unwrap() >= 1);
}

#[tokio::test]
async fn readyz_is_503_with_the_reason_when_the_store_is_gone() {
    let app = spawn_app().await;
    app.state.store().close().await;
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 503);
    let err = error_of(res).await;
    assert_eq!(err["code"], "not_ready");
    assert!(
        err["details"]["reason"].as_str().unwrap().contains("store"),
        "{err}"
    );
    // Liveness is unaffected: the process is still up.
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn a_valid_incoming_request_id_is_kept() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-abc_123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-abc_123");
}

#[tokio::test]
async fn a_missing_or_invalid_request_id_is_replaced_by_a_uuid_v7() {
    let app = spawn_app().await;
    for incoming in [None, Some("bad id with spaces"), Some("<script>")] {
        let mut req = app.client.get(app.url("/healthz"));
        if let Some(id) = incoming {
            req = req.header("x-request-id", id);
        }
        let res = req.send().await.unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
        let uuid = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(uuid.get_version_num(), 7, "{id}");
    }
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_lists_every_route() {
    let app = spawn_app().await;
    let res = app.get("/openapi.json").await;
    assert_eq!(res.status(), 200);
    let doc: serde_json::Value = res.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths: BTreeSet<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for p in [
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/.well-known/jwks.json",
    ] {
        assert!(paths.contains(p), "{p} missing from {paths:?}");
    }
    let mut ids = BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            let id = op["operationId"]
                .as_str()
                .expect("every operation has an id");
            assert!(ids.insert(id.to_string()), "duplicate operationId {id}");
        }
    }
}

#[tokio::test]
async fn jwks_is_served_as_a_key_set() {
    let app = spawn_app().await;
    let body: serde_json::Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    assert!(body["keys"].is_array());
}

#[tokio::test]
async fn metrics_are_labelled_by_route_template_never_by_raw_path() {
    let app = spawn_app().await;
    app.get("/healthz").await;
    app.get("/v1/jobs/job_secretvalue123").await;
    app.get("/v1/no-such-thing/secretvalue456").await;
    let text = app
        .client
        .get(&app.metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"keel_http_requests_total{route="/healthz",method="GET",status="2xx"}"#),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched",method="GET",status="4xx""#));
    assert!(text.contains(r#"route="/v1/jobs/{id}",method="GET",status="4xx""#));
    assert!(!text.contains("secretvalue"));
    assert!(text.contains("keel_http_request_duration_seconds_bucket"));
    assert!(
        text.contains("process_resident_memory_bytes")
            || text.contains("process_cpu_seconds_total")
    );
}
