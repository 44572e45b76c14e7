//! Viewer tokens: one job's events (JSON and SSE) without the owner's credentials.

use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{error_of, TestApp};
use crate::jobs_helpers::spawn_jobs;

async fn viewer_token(app: &TestApp, token: &str, id: &str) -> reqwest::Response {
    app.post_json(
        &format!("/v1/jobs/{id}/viewer-token"),
        Some(token),
        json!({}),
    )
    .await
}

async fn events_with(app: &TestApp, id: &str, vt: &str, sse: bool) -> reqwest::Response {
    let mut req = app
        .client
        .get(app.url(&format!("/v1/jobs/{id}/events")))
        .query(&[("viewer_token", vt)]);
    if sse {
        req = req.header("accept", "text/event-stream");
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn viewer_token_reads_one_jobs_events_only() {
    let app = spawn_jobs().await;
    let (token, user_id) = app.user().await;
    let job = app.quick_job(&token, "p1").await;
    let other_job = app.quick_job(&token, "p2").await;
    let id = job["id"].as_str().unwrap();
    let res = app
        .service(
            Method::POST,
            &format!("/v1/service/jobs/{id}/events"),
            Some(json!({"type": "progress"})),
        )
        .await;
    assert_eq!(res.status(), 201);

    let res = viewer_token(&app, &token, id).await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    let vt = body["token"].as_str().unwrap().to_owned();
    assert_eq!(body["expires_in"], 600);
    assert!(
        !vt.contains(&user_id),
        "the token never carries the user id in the clear"
    );

    // JSON page, no Authorization header.
    let res = events_with(&app, id, &vt, false).await;
    assert_eq!(res.status(), 200);
    let page: Value = res.json().await.unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 2);

    // SSE with the same token.
    let res = events_with(&app, id, &vt, true).await;
    assert_eq!(res.status(), 200);
    let mut body = res.bytes_stream();
    let mut text = String::new();
    while !text.contains("id: 2") && !text.contains("id:2") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), body.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(
        text.contains("event: progress") || text.contains("event:progress"),
        "{text}"
    );

    // Another job, a forged token, and the viewer token as a bearer token are all refused.
    let other = other_job["id"].as_str().unwrap();
    let res = events_with(&app, other, &vt, false).await;
    assert_eq!(res.status(), 401);
    assert_eq!(error_of(res).await["code"], "invalid_viewer_token");
    let mut forged = vt.clone();
    forged.pop();
    forged.push(if vt.ends_with('A') { 'B' } else { 'A' });
    let res = events_with(&app, id, &forged, true).await;
    assert_eq!(res.status(), 401);
    assert_eq!(error_of(res).await["code"], "invalid_viewer_token");
    let res = events_with(&app, id, &token, false).await;
    assert_eq!(res.status(), 401, "an access token is not a viewer token");
    let res = app.get_auth(&format!("/v1/jobs/{id}"), &vt).await;
    assert_eq!(res.status(), 401, "a viewer token is not an access token");
    let res = app.get_auth(&format!("/v1/jobs/{id}/events"), &vt).await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn an_expired_viewer_token_or_one_for_another_job_is_refused() {
    let app = spawn_jobs().await;
    let (token, _) = app.user().await;
    let job_a = app.quick_job(&token, "p1").await;
    let job_b = app.quick_job(&token, "p2").await;
    let (a, b) = (job_a["id"].as_str().unwrap(), job_b["id"].as_str().unwrap());
    let res = viewer_token(&app, &token, a).await;
    assert_eq!(res.status(), 201);
    let vt = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Job A's token never reads job B, as a page or as a stream.
    for sse in [false, true] {
        let res = events_with(&app, b, &vt, sse).await;
        assert_eq!(res.status(), 401);
        assert_eq!(error_of(res).await["code"], "invalid_viewer_token");
    }

    // Valid up to its 600 s lifetime (plus 5 s of leeway) on the job clock...
    app.state
        .job_clock()
        .advance(std::time::Duration::from_secs(600));
    assert_eq!(events_with(&app, a, &vt, false).await.status(), 200);
    // ...and refused once past it, as a page and as a stream.
    app.state
        .job_clock()
        .advance(std::time::Duration::from_secs(6));
    for sse in [false, true] {
        let res = events_with(&app, a, &vt, sse).await;
        assert_eq!(res.status(), 401);
        assert_eq!(error_of(res).await["code"], "invalid_viewer_token");
    }
    // A fresh token, issued at the clock's now, reads again.
    let res = viewer_token(&app, &token, a).await;
    let fresh = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(events_with(&app, a, &fresh, false).await.status(), 200);
}

#[tokio::test]
async fn only_the_owner_gets_a_viewer_token() {
    let app = spawn_jobs().await;
    let (token, _) = app.user().await;
    let job = app.quick_job(&token, "p1").await;
    let id = job["id"].as_str().unwrap();
    let (other, _) = app.user().await;
    let res = viewer_token(&app, &other, id).await;
    assert_eq!(res.status(), 404);
    assert_eq!(error_of(res).await["code"], "job_not_found");
    let res = app
        .client
        .post(app.url(&format!("/v1/jobs/{id}/viewer-token")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

/// Periodic retention runs on one node at a time: while another holder has the advisory
/// lock (PostgreSQL), a round skips; once it is free, the round runs.
#[tokio::test]
async fn periodic_retention_round_takes_turns() {
    let app = spawn_jobs().await;
    let Some(pool) = app.state.job_notifier().pg_pool() else {
        assert!(keel_server::jobs::retention::round(&app.state)
            .await
            .unwrap());
        return;
    };
    let mut conn = pool.acquire().await.unwrap();
    let key = "keel:jobs_retention";
    let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
        .bind(key)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert!(held);
    assert!(!keel_server::jobs::retention::round(&app.state)
        .await
        .unwrap());
    sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
        .bind(key)
        .execute(&mut *conn)
        .await
        .unwrap();
    assert!(keel_server::jobs::retention::round(&app.state)
        .await
        .unwrap());
}
