//! Rate limits across nodes: several Application nodes sharing one database and one Redis
//! behave as one, and a Redis outage follows `rate_limit_fail_mode`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use keel_server::integrity::FailMode;
use keel_server::Settings;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::{error_of, spawn_full, unique_email, TestApp};
use crate::rate_limits::manifest;

/// 100 requests per user, with a period long enough that nothing refills during a test.
pub const HUNDRED: &str = "[rate_limits.api]\nuser = { requests = 100, per = \"24h\" }\n";

/// The Redis tests use: `KEEL_TEST_REDIS_URL`, or the local default CI runs.
fn redis_url() -> String {
    std::env::var("KEEL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A key prefix of this test alone, so parallel tests never share counters.
fn unique_prefix() -> String {
    format!("keel-test-{}:", uuid::Uuid::now_v7().simple())
}

/// `n` nodes on one database (the first node's) with the same settings tweak.
async fn spawn_cluster(n: usize, src: &str, tweak: impl Fn(&mut Settings)) -> Vec<TestApp> {
    let first = spawn_full(src, &tweak).await;
    let shared = first.state.settings().clone();
    let mut nodes = vec![first];
    for _ in 1..n {
        let node = spawn_full(src, |s| {
            tweak(s);
            s.data_dir = shared.data_dir.clone();
            s.database_url = shared.database_url.clone();
        })
        .await;
        nodes.push(node);
    }
    nodes
}

/// Sends `total` `GET /v1/me`, 32 at a time, round robin over `nodes`; counts statuses.
pub async fn hammer(nodes: &[&TestApp], access: &str, total: usize) -> BTreeMap<u16, usize> {
    let urls: Vec<(reqwest::Client, String)> = nodes
        .iter()
        .map(|n| (n.client.clone(), n.url("/v1/me")))
        .collect();
    let statuses: Vec<u16> = futures::stream::iter(0..total)
        .map(|i| {
            let (client, url) = urls[i % urls.len()].clone();
            let access = access.to_string();
            async move {
                let res = client.get(url).bearer_auth(access).send().await.unwrap();
                res.status().as_u16()
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let mut counts = BTreeMap::new();
    for s in statuses {
        *counts.entry(s).or_insert(0) += 1;
    }
    counts
}

#[tokio::test]
async fn a_thousand_requests_over_three_nodes_sharing_redis_admit_exactly_the_limit() {
    let prefix = unique_prefix();
    let nodes = spawn_cluster(3, &manifest(HUNDRED), |s| {
        s.redis_url = Some(redis_url());
        s.redis_prefix = prefix.clone();
    })
    .await;
    let s = nodes[0].register(&unique_email()).await;
    let refs: Vec<&TestApp> = nodes.iter().collect();
    let statuses = hammer(&refs, &s.access, 1_000).await;
    assert_eq!(statuses.get(&200), Some(&100), "{statuses:?}");
    assert_eq!(statuses.get(&429), Some(&900), "{statuses:?}");
    // Every node refuses now: the counter is shared, not per node.
    for node in &nodes {
        assert_eq!(node.get_auth("/v1/me", &s.access).await.status(), 429);
    }
}

/// A TCP relay to Redis that can be cut, to simulate Redis going away mid-flight.
struct Relay {
    url: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Relay {
    async fn start() -> Relay {
        let upstream = redis_url()
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let registry = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                registry.lock().unwrap().push(task);
            }
        });
        Relay { url, tasks, accept }
    }

    /// Stops listening and closes every relayed connection (awaiting the tasks means their
    /// sockets are dropped by the time this returns).
    async fn cut(self) {
        self.accept.abort();
        let _ = self.accept.await;
        let tasks: Vec<JoinHandle<()>> = self.tasks.lock().unwrap().drain(..).collect();
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
    }
}

async fn after_redis_goes_away(mode: FailMode) -> (reqwest::Response, TestApp) {
    let relay = Relay::start().await;
    let app = spawn_full(&manifest(HUNDRED), |s| {
        s.redis_url = Some(relay.url.clone());
        s.redis_prefix = unique_prefix();
        s.rate_limit_fail_mode = mode;
    })
    .await;
    let s = app.register(&unique_email()).await;
    assert_eq!(app.get_auth("/v1/me", &s.access).await.status(), 200);
    relay.cut().await;
    let res = app.get_auth("/v1/me", &s.access).await;
    (res, app)
}

#[tokio::test]
async fn when_redis_fails_open_requests_pass_and_the_failure_is_counted() {
    let (res, app) = after_redis_goes_away(FailMode::Open).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("ratelimit-limit").is_none());
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
        text.lines()
            .any(|l| l.starts_with("keel_rate_limit_errors_total{") && l.contains("redis")),
        "{text}"
    );
}

#[tokio::test]
async fn when_redis_fails_closed_requests_get_503() {
    let (res, _app) = after_redis_goes_away(FailMode::Closed).await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(error_of(res).await["code"], "rate_limiter_unavailable");
}
