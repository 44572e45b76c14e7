//! Identity benchmarks: access-token verification cost (signature, claims and the cached
//! revocation check), and login throughput with hashing bounded.
//!
//! `cargo run --release -p keel-bench --bin identity [-- --postgres]`
#![allow(clippy::print_stdout)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_bench::{quantile, rss_mib, start, want_postgres};
use serde_json::json;

const PASSWORD: &str = "tangerine-orbit-42";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let postgres = want_postgres();
    let server = start(postgres).await?;
    let client = reqwest::Client::new();
    println!("backend: {}", if postgres { "postgres" } else { "sqlite" });

    let email = "bench@example.com";
    let res = client
        .post(format!("{}/v1/auth/register", server.base))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await?;
    let body: serde_json::Value = res.json().await?;
    let access = body["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    verification(&server, &access).await?;
    logins(&server, &client, email).await?;
    enumeration_timing(&server, &client, email).await?;
    Ok(())
}

/// In-process: the cost of `authenticate` on a valid token, revocation check included.
async fn verification(server: &keel_bench::Server, access: &str) -> anyhow::Result<()> {
    let identity = server.state.identity();
    for _ in 0..1_000 {
        identity
            .authenticate(access)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let n = 100_000u32;
    let mut samples = Vec::with_capacity(n as usize);
    let started = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        identity
            .authenticate(access)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        samples.push(t.elapsed());
    }
    let total = started.elapsed();
    samples.sort();
    println!(
        "access-token verification: mean {:.1} µs, p50 {:.1} µs, p99 {:.1} µs over {n} calls",
        total.as_secs_f64() * 1e6 / f64::from(n),
        quantile(&samples, 0.5).as_secs_f64() * 1e6,
        quantile(&samples, 0.99).as_secs_f64() * 1e6,
    );
    Ok(())
}

/// Over HTTP: 64 clients logging in as fast as they can for 10 s.
async fn logins(
    server: &keel_bench::Server,
    client: &reqwest::Client,
    email: &str,
) -> anyhow::Result<()> {
    let done = Arc::new(AtomicU64::new(0));
    let before = rss_mib();
    let peak = Arc::new(std::sync::Mutex::new(before));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (client, base, done, email) = (
            client.clone(),
            server.base.clone(),
            done.clone(),
            email.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let res = client
                    .post(format!("{base}/v1/auth/login"))
                    .json(&json!({"email": email, "password": PASSWORD}))
                    .send()
                    .await;
                if res.map(|r| r.status().is_success()).unwrap_or(false) {
                    done.fetch_add(1, Ordering::Relaxed);
                    latencies.push(t.elapsed());
                }
            }
            latencies
        }));
    }
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            while Instant::now() < deadline {
                let now = rss_mib();
                if let Ok(mut p) = peak.lock() {
                    *p = p.max(now);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    sampler.await?;
    all.sort();
    let n = done.load(Ordering::Relaxed);
    let peak = peak.lock().map(|p| *p).unwrap_or(0.0);
    println!(
        "login throughput (64 clients, 10 s): {:.1} logins/s, p50 {:.0} ms, p99 {:.0} ms, RSS {:.0} MiB before, {:.0} MiB peak",
        n as f64 / 10.0,
        quantile(&all, 0.5).as_secs_f64() * 1e3,
        quantile(&all, 0.99).as_secs_f64() * 1e3,
        before,
        peak
    );
    Ok(())
}

/// Wrong password vs unknown email: the same work, so the same time.
async fn enumeration_timing(
    server: &keel_bench::Server,
    client: &reqwest::Client,
    email: &str,
) -> anyhow::Result<()> {
    let mut wrong_pw = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..40 {
        // Different accounts each time, so throttling does not kick in.
        let known = format!("timing{i}@example.com");
        client
            .post(format!("{}/v1/auth/register", server.base))
            .json(&json!({"email": known, "password": PASSWORD}))
            .send()
            .await?;
        let t = Instant::now();
        client
            .post(format!("{}/v1/auth/login", server.base))
            .json(&json!({"email": known, "password": "wrong-password-99"}))
            .send()
            .await?;
        wrong_pw.push(t.elapsed());
        let t = Instant::now();
        client
            .post(format!("{}/v1/auth/login", server.base))
            .json(&json!({"email": format!("nobody{i}@example.com"), "password": "wrong-password-99"}))
            .send()
            .await?;
        unknown.push(t.elapsed());
    }
    let _ = email;
    wrong_pw.sort();
    unknown.sort();
    println!(
        "failed login p50: wrong password {:.1} ms, unknown email {:.1} ms",
        quantile(&wrong_pw, 0.5).as_secs_f64() * 1e3,
        quantile(&unknown, 0.5).as_secs_f64() * 1e3
    );
    Ok(())
}
