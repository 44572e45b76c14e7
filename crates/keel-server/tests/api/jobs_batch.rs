//! Batch appends over HTTP: consecutive sequences, all or nothing with clear codes, the
//! single-event body unchanged, and one wake-up that brings a live stream every event.

use serde_json::{json, Value};

use crate::helpers::{error_of, spawn_full, TestApp};
use crate::jobs_helpers::quick_manifest;
use crate::jobs_stream::{append, seq, Sse};

async fn spawn_small_batches() -> TestApp {
    spawn_full(&quick_manifest(), |s| {
        s.job_event_batch_max = 50;
        s.job_event_max_bytes = 1024;
    })
    .await
}

fn ticks(from: usize, n: usize) -> Value {
    let events: Vec<Value> = (from..from + n)
        .map(|i| json!({"type": "tick", "data": {"i": i}, "user_visible": i % 5 != 0}))
        .collect();
    json!({ "events": events })
}

async fn refused(app: &TestApp, id: &str, body: Value, status: u16) -> Value {
    let res = append(app, id, body).await;
    assert_eq!(res.status(), status);
    error_of(res).await
}

#[tokio::test]
async fn a_batch_appends_consecutive_sequences_and_one_event_still_works() {
    let app = spawn_small_batches().await;
    let (token, _) = app.user().await;
    let job = app.quick_job(&token, "p1").await;
    let id = job["id"].as_str().unwrap();
    let res = append(&app, id, ticks(0, 50)).await;
    assert_eq!(res.status(), 201);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out, json!({"first_seq": 2, "last_seq": 51, "count": 50}));
    let one = append(&app, id, json!({"type": "log", "data": {"x": 1}})).await;
    assert_eq!(one.status(), 201);
    let one: Value = one.json().await.unwrap();
    assert_eq!(
        (one["seq"].as_i64(), one["type"].as_str()),
        (Some(52), Some("log"))
    );
    assert_eq!(app.job(&token, id).await["last_seq"], 52);
    let page = app.events(&token, id, 1).await;
    let data = page["data"].as_array().unwrap();
    // Every fifth tick (i = 0, 5, ...) is hidden from the owner.
    assert_eq!(data.len(), 40 + 1);
    assert_eq!(
        (data[0]["seq"].as_i64(), data[0]["data"]["i"].as_i64()),
        (Some(3), Some(1))
    );
}

#[tokio::test]
async fn a_bad_batch_is_refused_with_its_code_and_appends_nothing() {
    let app = spawn_small_batches().await;
    let (token, _) = app.user().await;
    let job = app.quick_job(&token, "p1").await;
    let id = job["id"].as_str().unwrap();

    let mut big = ticks(0, 10);
    big["events"][7]["data"] = json!({"blob": "x".repeat(2_000)});
    let err = refused(&app, id, big, 413).await;
    assert_eq!(err["code"], "event_too_large");
    assert_eq!(
        (
            err["details"]["index"].as_u64(),
            err["details"]["limit"].as_u64()
        ),
        (Some(7), Some(1024))
    );

    let mut bad_type = ticks(0, 10);
    bad_type["events"][9]["type"] = json!("state_change");
    let err = refused(&app, id, bad_type, 422).await;
    assert_eq!(err["code"], "invalid_event_type");
    assert_eq!(err["details"]["field"], "events[9].type");

    let err = refused(&app, id, ticks(0, 51), 413).await;
    assert_eq!(err["code"], "batch_too_large");
    assert_eq!(
        (
            err["details"]["count"].as_u64(),
            err["details"]["limit"].as_u64()
        ),
        (Some(51), Some(50))
    );

    let err = refused(&app, id, json!({"events": []}), 422).await;
    assert_eq!(err["code"], "invalid_batch");
    let both = json!({"type": "log", "events": [{"type": "log"}]});
    assert_eq!(refused(&app, id, both, 422).await["code"], "invalid_batch");
    assert_eq!(
        refused(&app, id, json!({}), 422).await["code"],
        "invalid_batch"
    );
    let err = refused(&app, id, json!({"events": [{"data": 1}]}), 422).await;
    assert_eq!(err["code"], "validation_failed");

    assert_eq!(app.job(&token, id).await["last_seq"], 1, "nothing appended");
    let job = app.moved(&job, "running").await;
    app.moved(&job, "done").await;
    let err = refused(&app, id, ticks(0, 3), 409).await;
    assert_eq!(err["code"], "job_finished");
    assert_eq!(app.job(&token, id).await["last_seq"], 3);
}

#[tokio::test]
async fn a_live_stream_gets_every_event_of_a_batch() {
    let app = spawn_small_batches().await;
    let (token, _) = app.user().await;
    let job = app.quick_job(&token, "p1").await;
    let id = job["id"].as_str().unwrap();
    let mut sse = Sse::connect(&app, &token, id, None).await;
    assert_eq!(seq(&sse.event().await.unwrap()), 1);
    let events: Vec<Value> = (0..50)
        .map(|i| json!({"type": "tick", "data": {"i": i}}))
        .collect();
    assert_eq!(
        append(&app, id, json!({ "events": events })).await.status(),
        201
    );
    for expected in 2..=51 {
        let f = sse.event().await.unwrap();
        assert_eq!((seq(&f), f.event.as_deref()), (expected, Some("tick")));
    }
}
