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
    first_verification(&server, &client).await?;
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
    // Every call after the first hits the per-node verified-token cache; the first call of
    // each token pays the signature check, measured separately below.
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

/// In-process: the first verification of fresh tokens (signature + claims + session).
async fn first_verification(
    server: &keel_bench::Server,
    client: &reqwest::Client,
) -> anyhow::Result<()> {
    let mut tokens = Vec::new();
    let res = client
        .post(format!("{}/v1/auth/register", server.base))
        .json(&json!({"email": "fresh@example.com", "password": PASSWORD}))
        .send()
        .await?;
    let body: serde_json::Value = res.json().await?;
    let mut refresh = body["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    tokens.push(
        body["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    );
    for _ in 0..199 {
        let body: serde_json::Value = client
            .post(format!("{}/v1/auth/refresh", server.base))
            .json(&json!({"refresh_token": refresh}))
            .send()
            .await?
            .json()
            .await?;
        refresh = body["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        tokens.push(
            body["access_token"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    let identity = server.state.identity();
    let mut samples = Vec::new();
    for t in &tokens {
        let started = Instant::now();
        identity
            .authenticate(t)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        samples.push(started.elapsed());
    }
    samples.sort();
    println!(
        "first verification of a token (signature, claims, cached session check): p50 {:.1} µs, p99 {:.1} µs over {}",
        quantile(&samples, 0.5).as_secs_f64() * 1e6,
        quantile(&samples, 0.99).as_secs_f64() * 1e6,
        samples.len()
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

/// Wrong password vs unknown email: the same work, so the same time. Over HTTP (few
/// enough attempts that the per-IP throttle stays out of it) and in-process.
async fn enumeration_timing(
    server: &keel_bench::Server,
    client: &reqwest::Client,
    email: &str,
) -> anyhow::Result<()> {
    let login = |email: String| {
        let client = client.clone();
        let url = format!("{}/v1/auth/login", server.base);
        async move {
            let t = Instant::now();
            let res = client
                .post(url)
                .json(&json!({"email": email, "password": "wrong-password-99"}))
                .send()
                .await;
            (t.elapsed(), res.map(|r| r.status().as_u16()).unwrap_or(0))
        }
    };
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..8 {
        let (t, status) = login(email.to_string()).await;
        if status == 401 {
            known.push(t);
        }
        let (t, status) = login(format!("nobody{i}@example.com")).await;
        if status == 401 {
            unknown.push(t);
        }
        if i == 3 {
            // Stay under the per-account throttle for the known email.
            let _ = client
                .post(format!("{}/v1/auth/login", server.base))
                .json(&json!({"email": email, "password": PASSWORD}))
                .send()
                .await;
        }
    }
    known.sort();
    unknown.sort();
    println!(
        "failed login over HTTP, median of {}/{}: wrong password {:.1} ms, unknown email {:.1} ms",
        known.len(),
        unknown.len(),
        quantile(&known, 0.5).as_secs_f64() * 1e3,
        quantile(&unknown, 0.5).as_secs_f64() * 1e3
    );
    let pw = keel_server::identity::passwords::Passwords::new(1);
    let stored = pw.hash(PASSWORD).await?;
    let (mut with_account, mut without) = (Vec::new(), Vec::new());
    for _ in 0..30 {
        let t = Instant::now();
        pw.verify("wrong-password-99", Some(&stored)).await?;
        with_account.push(t.elapsed());
        let t = Instant::now();
        pw.verify("wrong-password-99", None).await?;
        without.push(t.elapsed());
    }
    with_account.sort();
    without.sort();
    println!(
        "password check in-process, median of 30: existing account {:.1} ms, no account {:.1} ms",
        quantile(&with_account, 0.5).as_secs_f64() * 1e3,
        quantile(&without, 0.5).as_secs_f64() * 1e3
    );
    Ok(())
}
