//! IAMA's refactor job from examples/iama.toml: the walk to DELIVERED, the intervention
//! timeout, and the billing checkpoint at GENERATING_TESTS.

use std::time::Duration;

use keel_core::ids::ReservationId;
use keel_store::{ReservationStatus, ReverseOutcome, TenantScope};
use serde_json::{json, Value};

use crate::helpers::{error_of, TestApp};
use crate::jobs_helpers::spawn_manifest;

const IAMA: &str = include_str!("../../../../examples/iama.toml");

async fn started(app: &TestApp, token: &str) -> Value {
    let res = app
        .create_job(token, json!({"type": "refactor", "input": {"repo": "r"}}))
        .await;
    assert_eq!(res.status(), 201);
    let job: Value = res.json().await.unwrap();
    assert_eq!(
        (job["state"].as_str(), job["reservation_id"].as_str()),
        (Some("PENDING"), None)
    );
    let res = app.action(token, &job, "start").await;
    assert_eq!(res.status(), 200);
    let job: Value = res.json().await.unwrap();
    assert_eq!(job["state"], "ANALYZING");
    assert!(job["reservation_id"].is_string(), "reserved on start");
    job
}

/// From ANALYZING through the user's strategy and spec approval to GENERATING_TESTS.
async fn to_checkpoint(app: &TestApp, token: &str, job: &Value) -> Value {
    let strategy = app.moved(job, "WAITING_STRATEGY").await;
    let res = app.action(token, &strategy, "choose_strategy").await;
    assert_eq!(res.status(), 200);
    let spec: Value = res.json().await.unwrap();
    let res = app.action(token, &spec, "approve_spec").await;
    assert_eq!(res.status(), 200);
    let tests: Value = res.json().await.unwrap();
    assert_eq!(tests["state"], "GENERATING_TESTS");
    tests
}

/// The job's reservation status once it is `want` (billing settles right after the move
/// is durable, so a poller can see the state first), or the last status after 10 s.
async fn settled(app: &TestApp, job: &Value, want: ReservationStatus) -> ReservationStatus {
    let mut status = reservation_status(app, job).await;
    for _ in 0..500 {
        if status == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        status = reservation_status(app, job).await;
    }
    status
}

async fn reservation_status(app: &TestApp, job: &Value) -> ReservationStatus {
    let id: ReservationId = job["reservation_id"].as_str().unwrap().parse().unwrap();
    let job_id: keel_core::ids::JobId = job["id"].as_str().unwrap().parse().unwrap();
    let tenant = app
        .state
        .store()
        .locate_job(job_id)
        .await
        .unwrap()
        .unwrap()
        .tenant_id;
    let r = app
        .state
        .store()
        .get_reservation(&TenantScope::new(tenant), id)
        .await
        .unwrap();
    r.status
}

/// Committed units of `refactor_jobs` in the caller's usage.
async fn refactor_jobs_used(app: &TestApp, token: &str) -> i64 {
    let usage: Value = app.get_auth("/v1/usage", token).await.json().await.unwrap();
    let rows = usage["data"].as_array().unwrap();
    rows.iter()
        .filter(|r| r["meter"] == "refactor_jobs")
        .map(|r| r["amount"].as_i64().unwrap())
        .sum()
}

#[tokio::test]
async fn iama_walks_from_pending_to_delivered_and_is_billed() {
    let app = spawn_manifest(IAMA).await;
    let (token, _) = app.user().await;
    let job = started(&app, &token).await;
    let tests = to_checkpoint(&app, &token, &job).await;
    assert_eq!(
        reservation_status(&app, &tests).await,
        ReservationStatus::Committed
    );
    let mut job = tests;
    for to in ["BASELINE_VALIDATION", "REFACTORING", "DELIVERED"] {
        job = app.moved(&job, to).await;
    }
    assert_eq!(
        (job["state"].as_str(), job["finished"].as_bool()),
        (Some("DELIVERED"), Some(true))
    );
    assert_eq!(refactor_jobs_used(&app, &token).await, 1);
    let res = app.action(&token, &job, "cancel").await;
    assert_eq!(res.status(), 409);
    assert_eq!(error_of(res).await["code"], "terminal_state");
}

#[tokio::test]
async fn waiting_intervention_times_out_after_30_minutes_and_stays_billed() {
    let app = spawn_manifest(IAMA).await;
    let (token, _) = app.user().await;
    let job = started(&app, &token).await;
    let mut job = to_checkpoint(&app, &token, &job).await;
    for to in [
        "BASELINE_VALIDATION",
        "REFACTORING",
        "SELF_HEALING",
        "WAITING_INTERVENTION",
    ] {
        job = app.moved(&job, to).await;
    }
    let id = job["id"].as_str().unwrap();
    app.state.job_clock().advance(Duration::from_secs(31 * 60));
    let failed = app.wait_for_state(&token, id, "FAILED").await;
    assert_eq!(failed["reason"], "intervention_timeout");
    assert_eq!(
        reservation_status(&app, &failed).await,
        ReservationStatus::Committed
    );
}

#[tokio::test]
async fn a_job_failing_before_the_checkpoint_is_not_billed() {
    let app = spawn_manifest(IAMA).await;
    let (token, _) = app.user().await;
    let job = started(&app, &token).await;
    let id = job["id"].as_str().unwrap();
    // No heartbeat: lost after 90 s, failed after 300 s more of grace.
    app.state.job_clock().advance(Duration::from_secs(91));
    app.wait_for_state(&token, id, "CLIENT_HEARTBEAT_LOST")
        .await;
    app.state.job_clock().advance(Duration::from_secs(301));
    let failed = app.wait_for_state(&token, id, "FAILED").await;
    assert_eq!(failed["reason"], "client_disconnected");
    assert_eq!(
        settled(&app, &failed, ReservationStatus::Released).await,
        ReservationStatus::Released
    );
    assert_eq!(refactor_jobs_used(&app, &token).await, 0);
}

#[tokio::test]
async fn starting_without_quota_fails_with_the_billing_error_and_does_not_move() {
    let app = spawn_manifest(IAMA).await;
    let (token, _) = app.user().await;
    // Free: three refactor jobs a day, reserved on start.
    for _ in 0..3 {
        started(&app, &token).await;
    }
    let res = app.create_job(&token, json!({"type": "refactor"})).await;
    assert_eq!(res.status(), 201);
    let job: Value = res.json().await.unwrap();
    let res = app.action(&token, &job, "start").await;
    assert_eq!(res.status(), 429);
    assert_eq!(error_of(res).await["code"], "daily_limit_reached");
    let after = app.job(&token, job["id"].as_str().unwrap()).await;
    assert_eq!(
        (after["state"].as_str(), after["version"].as_i64()),
        (Some("PENDING"), Some(1))
    );
    assert!(after["reservation_id"].is_null());
}

#[tokio::test]
async fn a_repeated_create_holds_one_reservation() {
    let app = spawn_manifest(keel_core::manifest::DEMO_MANIFEST).await;
    let (token, user) = app.user().await;
    let now = chrono::Utc::now();
    let sub = json!({"plan": "pro", "status": "active", "period_start": now - chrono::TimeDelta::days(1),
                     "period_end": now + chrono::TimeDelta::days(29)});
    let res = app
        .service(
            reqwest::Method::PUT,
            &format!("/v1/service/users/{user}/subscription"),
            Some(sub),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body = json!({"type": "task", "idempotency_key": "k1"});
    let first: Value = app
        .create_job(&token, body.clone())
        .await
        .json()
        .await
        .unwrap();
    let again = app.create_job(&token, body).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(
        (&again["id"], &again["reservation_id"]),
        (&first["id"], &first["reservation_id"])
    );
    assert_eq!(
        reservation_status(&app, &first).await,
        ReservationStatus::Active
    );
    let ent: Value = app
        .get_auth("/v1/entitlements", &token)
        .await
        .json()
        .await
        .unwrap();
    let jobs = ent["meters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["meter"] == "jobs")
        .unwrap();
    assert_eq!(jobs["reserved"], 1, "{ent}");
}

/// Past the checkpoint, then `to` by the service with `reason`; the failed job.
async fn failed_after_checkpoint(app: &TestApp, token: &str, reason: &str) -> Value {
    let job = started(app, token).await;
    let tests = to_checkpoint(app, token, &job).await;
    assert_eq!(
        settled(app, &tests, ReservationStatus::Committed).await,
        ReservationStatus::Committed
    );
    assert_eq!(refactor_jobs_used(app, token).await, 1);
    let refactoring = app.moved(&tests, "BASELINE_VALIDATION").await;
    let id = refactoring["id"].as_str().unwrap();
    let path = format!("/v1/service/jobs/{id}/transition");
    let body =
        json!({"to": "FAILED", "expected_version": refactoring["version"], "reason": reason});
    let res = app.service(reqwest::Method::POST, &path, Some(body)).await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let failed: Value = res.json().await.unwrap();
    assert_eq!(
        (failed["state"].as_str(), failed["reason"].as_str()),
        (Some("FAILED"), Some(reason))
    );
    failed
}

/// The user's refactor_jobs usage row: (amount, entries).
async fn refactor_usage_row(app: &TestApp, token: &str) -> (i64, i64) {
    let usage: Value = app.get_auth("/v1/usage", token).await.json().await.unwrap();
    let rows: Vec<&Value> = usage["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["meter"] == "refactor_jobs")
        .collect();
    assert_eq!(rows.len(), 1, "{usage}");
    (
        rows[0]["amount"].as_i64().unwrap(),
        rows[0]["entries"].as_i64().unwrap(),
    )
}

async fn scope_of(app: &TestApp, job: &Value) -> TenantScope {
    let job_id: keel_core::ids::JobId = job["id"].as_str().unwrap().parse().unwrap();
    let located = app.state.store().locate_job(job_id).await.unwrap().unwrap();
    TenantScope::new(located.tenant_id)
}

#[tokio::test]
async fn an_infra_failure_after_the_checkpoint_reverses_the_commit() {
    let app = spawn_manifest(IAMA).await;
    let (token, _) = app.user().await;
    let failed = failed_after_checkpoint(&app, &token, "infra_failure").await;
    let mut usage = refactor_usage_row(&app, &token).await;
    for _ in 0..500 {
        if usage.0 == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        usage = refactor_usage_row(&app, &token).await;
    }
    // The commit and its reversal: two entries that sum to nothing.
    assert_eq!(usage, (0, 2));
    let ent: Value = app
        .get_auth("/v1/entitlements", &token)
        .await
        .json()
        .await
        .unwrap();
    let meter = ent["meters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["meter"] == "refactor_jobs")
        .unwrap();
    assert_eq!(
        (&meter["used"], &meter["reserved"]),
        (&json!(0), &json!(0)),
        "{ent}"
    );
    // The reservation stays committed; reversing it again answers the existing entry.
    assert_eq!(
        reservation_status(&app, &failed).await,
        ReservationStatus::Committed
    );
    let scope = scope_of(&app, &failed).await;
    let id: ReservationId = failed["reservation_id"].as_str().unwrap().parse().unwrap();
    let again = app
        .state
        .store()
        .reverse_commit(&scope, id, "retry", chrono::Utc::now())
        .await
        .unwrap();
    let ReverseOutcome::Replayed(entry) = again else {
        panic!("no reversal entry: {again:?}");
    };
    assert_eq!((entry.amount, entry.meter.as_str()), (-1, "refactor_jobs"));
    assert_eq!(entry.source["reason"], "infra_failure");
    assert_eq!(entry.source["reservation_id"], id.to_string());
    assert_eq!(refactor_usage_row(&app, &token).await, (0, 2));
    assert_eq!(
        app.state.store().verify_counters(false).await.unwrap(),
        vec![]
    );
}

#[tokio::test]
async fn a_billable_failure_after_the_checkpoint_stays_billed() {
    let app = spawn_manifest(IAMA).await;
    let (token, _) = app.user().await;
    let failed = failed_after_checkpoint(&app, &token, "tests_failed").await;
    assert_eq!(refactor_usage_row(&app, &token).await, (1, 1));
    let scope = scope_of(&app, &failed).await;
    let id: ReservationId = failed["reservation_id"].as_str().unwrap().parse().unwrap();
    let r = app.state.store().get_reservation(&scope, id).await.unwrap();
    assert_eq!(r.status, ReservationStatus::Committed);
}
