//! Job event fan-out: many idle SSE subscribers on one node, then events at a fixed rate.
//!
//! Starts `keel serve` (release) as a separate process on SQLite (`--postgres`: a throwaway
//! PostgreSQL database), creates `--jobs` jobs (default 10,000) and opens `--per-job`
//! subscribers on each (default 1: 10,000 SSE connections to `GET /v1/jobs/{id}/events`),
//! and reads the server's `VmRSS` before and after they connect: memory per subscriber.
//! Then appends events through the service API at `--rate` events/s (default 1,000) for
//! `--seconds` (default 10), round-robin over the jobs, each carrying its send time;
//! subscribers measure append-to-delivery latency, and count missing and duplicate
//! deliveries.
//!
//! `cargo build --release -p keel -p keel-bench && ./target/release/jobs_fanout [--postgres]`
#![allow(clippy::print_stdout)]

#[path = "jobs_fanout/server.rs"]
mod server;
#[path = "jobs_fanout/subscriber.rs"]
mod subscriber;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use keel_bench::{quantile, want_postgres};
use serde_json::{json, Value};
use subscriber::{now_us, Tally};

fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let postgres = want_postgres();
    let jobs_n: usize = arg("--jobs", 10_000);
    let per_job: usize = arg("--per-job", 1);
    let rate: u64 = arg("--rate", 1_000);
    let secs: u64 = arg("--seconds", 10);
    let keel = server::Keel::start(postgres).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let token = keel.user_token(&client).await?;
    println!(
        "backend: {}; {jobs_n} jobs x {per_job} subscribers; {rate} events/s for {secs} s",
        if postgres { "postgres" } else { "sqlite" }
    );
    let ids = create_jobs(&client, &keel.base, &token, jobs_n).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = keel.rss_kib();

    let tally = Arc::new(Tally::new(ids.len() * per_job));
    let subs = ids.len() * per_job;
    let stream_client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let opened = Instant::now();
    let mut tasks = Vec::with_capacity(subs);
    for (j, id) in ids.iter().enumerate() {
        for k in 0..per_job {
            let url = format!("{}/v1/jobs/{id}/events", keel.base);
            let task = subscriber::spawn(
                stream_client.clone(),
                url,
                token.clone(),
                j * per_job + k,
                tally.clone(),
            );
            tasks.push(task);
        }
    }
    while tally.connected() + tally.failed() < subs as u64 {
        if opened.elapsed() > Duration::from_secs(300) {
            return Err(anyhow!("only {} subscribers connected", tally.connected()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "{} subscribers connected in {:.1} s ({} failed)",
        tally.connected(),
        opened.elapsed().as_secs_f64(),
        tally.failed()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = keel.rss_kib();
    let per_sub = (after - before) * 1024.0 / tally.connected().max(1) as f64;
    println!(
        "server RSS: {:.1} MiB with jobs, {:.1} MiB with subscribers: {:.0} bytes ({:.1} KiB) per subscriber",
        before / 1024.0,
        after / 1024.0,
        per_sub,
        per_sub / 1024.0
    );

    let appended = append_events(&client, &keel, &ids, rate, secs).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let peak = keel.rss_kib();
    let expected = appended.iter().sum::<u64>() * per_job as u64;
    let mut lat = tally.latencies();
    lat.sort();
    let delivered = lat.len() as u64;
    let missing: u64 = (0..subs)
        .map(|s| appended[s / per_job].saturating_sub(tally.received(s)))
        .sum();
    println!(
        "appended {} events ({:.0}/s); deliveries {delivered} of {expected} expected ({:.0}/s), missing {missing}, duplicates {}",
        appended.iter().sum::<u64>(),
        appended.iter().sum::<u64>() as f64 / secs as f64,
        delivered as f64 / secs as f64,
        tally.duplicates()
    );
    println!(
        "append-to-delivery latency: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(quantile(&lat, 0.50)),
        ms(quantile(&lat, 0.95)),
        ms(quantile(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default())
    );
    println!("server RSS after the run: {:.1} MiB", peak / 1024.0);
    for t in tasks {
        t.abort();
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn create_jobs(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let url = format!("{base}/v1/jobs");
    let bodies = futures::stream::iter(0..n).map(|_| {
        let req = client
            .post(&url)
            .bearer_auth(token)
            .json(&json!({"type": "fan"}));
        async move {
            let body: Value = req.send().await?.json().await?;
            body["id"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("job not created: {body}"))
        }
    });
    use futures::StreamExt;
    bodies
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Appends at `rate` events/s for `secs`, round-robin over the jobs (one request each,
/// at most 256 in flight); returns how many were appended to each job.
async fn append_events(
    client: &reqwest::Client,
    keel: &server::Keel,
    ids: &[String],
    rate: u64,
    secs: u64,
) -> anyhow::Result<Vec<u64>> {
    let counts: Arc<Vec<AtomicU64>> = Arc::new(ids.iter().map(|_| AtomicU64::new(0)).collect());
    let failed = Arc::new(AtomicU64::new(0));
    let inflight = Arc::new(tokio::sync::Semaphore::new(256));
    let service = keel.service_token();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let total = rate * secs;
    let mut handles = Vec::with_capacity(total as usize);
    for i in 0..total {
        tick.tick().await;
        let j = (i as usize) % ids.len();
        let permit = inflight.clone().acquire_owned().await?;
        let req = client
            .post(format!("{}/v1/service/jobs/{}/events", keel.base, ids[j]))
            .bearer_auth(&service)
            .json(&json!({"type": "log", "data": {"sent_us": now_us()}}));
        let (counts, failed) = (counts.clone(), failed.clone());
        handles.push(tokio::spawn(async move {
            match req.send().await {
                Ok(r) if r.status().is_success() => {
                    counts[j].fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            drop(permit);
        }));
    }
    for h in handles {
        h.await?;
    }
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        println!("{failed} appends failed");
    }
    Ok(counts.iter().map(|c| c.load(Ordering::Relaxed)).collect())
}
