//! Durable timers: timeouts, heartbeat loss and expiry, restart, two nodes on one store.

use std::time::Duration;

use keel_server::{AppState, Application};
use keel_store::TenantScope;
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use utoipa_axum::router::OpenApiRouter;

use crate::jobs_helpers::{quick_manifest, spawn_jobs};

/// Another node on the same store as `state`'s (same data dir or database).
async fn second_node(
    state: &AppState,
) -> (
    AppState,
    oneshot::Sender<()>,
    JoinHandle<std::io::Result<()>>,
) {
    let settings = state.settings().clone();
    let manifest = keel_core::manifest::parse_str(&quick_manifest(), "test.toml").unwrap();
    let app = Application::build_with(settings, manifest, OpenApiRouter::new())
        .await
        .unwrap();
    let node = app.state().clone();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    (node, tx, handle)
}

#[tokio::test]
async fn a_waiting_job_times_out_with_its_reason() {
    let app = spawn_jobs().await;
    let (token, _) = app.user().await;
    let job = app.quick_job(&token, "p").await;
    let waiting = app
        .moved(&app.moved(&job, "running").await, "waiting")
        .await;
    let id = waiting["id"].as_str().unwrap();
    app.state.job_clock().advance(Duration::from_secs(59 * 60));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        app.job(&token, id).await["state"],
        "waiting",
        "not due before the hour"
    );
    app.state.job_clock().advance(Duration::from_secs(2 * 60));
    let failed = app.wait_for_state(&token, id, "failed").await;
    assert_eq!(failed["reason"], "wait_timeout");
    let events = app.events(&token, id, 0).await;
    let last = events["data"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (
            last["data"]["by"].as_str(),
            last["data"]["data"]["timer"].as_str()
        ),
        (Some("system"), Some("timeout"))
    );
}

#[tokio::test]
async fn a_lost_heartbeat_waits_its_grace_then_fails_and_a_heartbeat_brings_it_back() {
    let app = spawn_jobs().await;
    let (token, _) = app.user().await;
    let job = app
        .moved(&app.quick_job(&token, "p").await, "running")
        .await;
    let id = job["id"].as_str().unwrap();
    let beat = format!("/v1/jobs/{id}/heartbeat");
    let res = app.post_json(&beat, Some(&token), json!({})).await;
    assert_eq!(res.status(), 200);
    app.state.job_clock().advance(Duration::from_secs(61));
    let lost = app.wait_for_state(&token, id, "lost").await;
    assert_eq!(lost["reason"], "heartbeat_lost");
    let res = app.post_json(&beat, Some(&token), json!({})).await;
    assert_eq!(res.status(), 200);
    let back: serde_json::Value = res.json().await.unwrap();
    assert_eq!(back["state"], "running");
    app.state.job_clock().advance(Duration::from_secs(61));
    app.wait_for_state(&token, id, "lost").await;
    app.state.job_clock().advance(Duration::from_secs(61));
    let failed = app.wait_for_state(&token, id, "failed").await;
    assert_eq!(failed["reason"], "client_disconnected");
    let events = app.events(&token, id, 0).await;
    let path: Vec<_> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["to"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        path,
        vec!["queued", "running", "lost", "running", "lost", "failed"]
    );
}

#[tokio::test]
async fn an_overdue_timer_fires_on_a_restarted_server() {
    let mut app = spawn_jobs().await;
    let (token, _) = app.user().await;
    let job = app.quick_job(&token, "p").await;
    let waiting = app
        .moved(&app.moved(&job, "running").await, "waiting")
        .await;
    let id: keel_core::ids::JobId = waiting["id"].as_str().unwrap().parse().unwrap();
    app.signal_shutdown();
    app.server.take().unwrap().await.unwrap().unwrap();
    // The same store, a new process: its clock is two hours on, so the timer is overdue.
    let (node, stop, handle) = second_node(&app.state).await;
    node.job_clock().advance(Duration::from_secs(2 * 3600));
    let scope = TenantScope::new(
        node.store()
            .locate_job(id)
            .await
            .unwrap()
            .unwrap()
            .tenant_id,
    );
    let mut state = String::new();
    for _ in 0..500 {
        state = node
            .store()
            .find_job(&scope, id)
            .await
            .unwrap()
            .unwrap()
            .state;
        if state == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(state, "failed");
    let _ = stop.send(());
    handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn two_nodes_fire_each_timer_exactly_once() {
    let app = spawn_jobs().await;
    let (node, stop, handle) = second_node(&app.state).await;
    let (token, _) = app.user().await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let job = app.quick_job(&token, &format!("p{i}")).await;
        let waiting = app
            .moved(&app.moved(&job, "running").await, "waiting")
            .await;
        ids.push(waiting["id"].as_str().unwrap().to_string());
    }
    app.state.job_clock().advance(Duration::from_secs(2 * 3600));
    node.job_clock().advance(Duration::from_secs(2 * 3600));
    for id in &ids {
        app.wait_for_state(&token, id, "failed").await;
    }
    // Let both loops run a few more rounds: a double fire would add a second event.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for id in &ids {
        let events = app.events(&token, id, 0).await;
        let fails = events["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["data"]["to"] == "failed")
            .count();
        assert_eq!(fails, 1, "job {id}");
        assert_eq!(events["data"].as_array().unwrap().len(), 4);
    }
    let _ = stop.send(());
    handle.await.unwrap().unwrap();
}
