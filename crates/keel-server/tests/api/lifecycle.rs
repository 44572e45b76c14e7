use std::time::{Duration, Instant};

use crate::helpers::{spawn_app, spawn_with};

#[tokio::test]
async fn shutdown_drains_an_in_flight_slow_request_before_exiting() {
    let mut app = spawn_app().await;
    let client = app.client.clone();
    let url = app.url("/test/slow?ms=1000");
    let in_flight = tokio::spawn(async move { client.get(url).send().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.signal_shutdown();
    let res = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "done");
    let server = app.server.take().unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // Nothing is accepted any more.
    assert!(reqwest::get(app.url("/healthz")).await.is_err());
}

#[tokio::test]
async fn shutdown_waits_no_longer_than_the_grace_period() {
    let mut app = spawn_with(|s| s.shutdown_grace = Duration::from_millis(300)).await;
    let client = app.client.clone();
    let url = app.url("/test/slow?ms=20000");
    let _stuck = tokio::spawn(async move { client.get(url).send().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    app.signal_shutdown();
    let server = app.server.take().unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
