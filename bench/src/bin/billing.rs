//! Billing benchmarks: reserve + commit throughput (contended: every task on one user;
//! uncontended: a user per task) through the store, and `GET /v1/entitlements` latency
//! with 1,000,000 ledger rows in the user's tenant.
//!
//! `cargo run --release -p keel-bench --bin billing [-- --postgres] [--rows N]`
#![allow(clippy::print_stdout)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_bench::{quantile, start, want_postgres};
use keel_core::ids::{ReservationId, UserId};
use keel_store::{
    CommitOutcome, CounterKey, Gate, NewLedgerEntry, NewReservation, ReserveOutcome, TenantScope,
};
use serde_json::json;

const TASKS: usize = 32;
const SECONDS: u64 = 10;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let postgres = want_postgres();
    let rows: i64 = std::env::args()
        .skip_while(|a| a != "--rows")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let server = start(postgres).await?;
    println!("backend: {}", if postgres { "postgres" } else { "sqlite" });
    let scope = TenantScope::new(keel_core::ids::TenantId::new());
    let pairs = throughput(&server, scope, true).await?;
    println!("reserve+commit, {TASKS} tasks on ONE user (contended): {pairs:.0} pairs/s");
    let pairs = throughput(&server, scope, false).await?;
    println!("reserve+commit, {TASKS} tasks on {TASKS} users (uncontended): {pairs:.0} pairs/s");
    entitlements_latency(&server, rows).await?;
    Ok(())
}

fn reservation(user: UserId) -> NewReservation {
    NewReservation {
        id: ReservationId::new(),
        user_id: user,
        meter: "requests".into(),
        amount: 1,
        balance_micros: 0,
        idempotency_key: format!("bench-{}", ReservationId::new()),
        request_hash: vec![1],
        expires_at: chrono::Utc::now() + chrono::Duration::minutes(10),
        reason: String::new(),
        snapshot: json!({"unit_price_micros": 0}),
        gates: vec![Gate {
            key: CounterKey::user("requests", "day:bench"),
            limit: i64::MAX / 2,
            amount: 1,
            code: "daily_limit_reached".into(),
            resets_at: None,
        }],
    }
}

async fn throughput(
    server: &keel_bench::Server,
    scope: TenantScope,
    contended: bool,
) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let shared = UserId::new();
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (store, done) = (server.state.store().clone(), done.clone());
        let user = if contended { shared } else { UserId::new() };
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let r = reservation(user);
                let id = r.id;
                let ReserveOutcome::Reserved(_) = store.reserve(&scope, r).await? else {
                    anyhow::bail!("reservation refused");
                };
                let entry = NewLedgerEntry {
                    user_id: user,
                    meter: "requests".into(),
                    amount: 1,
                    overage: 0,
                    cost_micros: 0,
                    idempotency_key: format!("reservation:{id}"),
                    source: json!({}),
                    reservation_id: Some(id),
                    counters: Vec::new(),
                    balance_micros: 0,
                };
                let CommitOutcome::Committed(_) = store
                    .commit(&scope, id, entry, false, chrono::Utc::now())
                    .await?
                else {
                    anyhow::bail!("commit refused");
                };
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / SECONDS as f64)
}

async fn entitlements_latency(server: &keel_bench::Server, rows: i64) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let body: serde_json::Value = client
        .post(format!("{}/v1/auth/register", server.base))
        .json(&json!({"email": "ledger@example.com", "password": "tangerine-orbit-42"}))
        .send()
        .await?
        .json()
        .await?;
    let access = body["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let me: serde_json::Value = client
        .get(format!("{}/v1/me", server.base))
        .bearer_auth(&access)
        .send()
        .await?
        .json()
        .await?;
    let user: UserId = me["id"].as_str().unwrap_or_default().parse()?;
    let scope = TenantScope::new(me["tenant_id"].as_str().unwrap_or_default().parse()?);
    let started = Instant::now();
    let store = server.state.store();
    let mut written = 0i64;
    while written < rows {
        let batch: Vec<NewLedgerEntry> = (0..1000.min(rows - written))
            .map(|i| NewLedgerEntry {
                user_id: user,
                meter: "tokens".into(),
                amount: 1,
                overage: 0,
                cost_micros: 1,
                idempotency_key: format!("fill-{}", written + i),
                source: json!({"feature": "chat"}),
                reservation_id: None,
                counters: vec![CounterKey::user("tokens", "month:fill")],
                balance_micros: 0,
            })
            .collect();
        written += batch.len() as i64;
        store.record_usage(&scope, batch).await?;
    }
    println!(
        "ledger filled with {written} rows in {:.1} s ({:.0} rows/s)",
        started.elapsed().as_secs_f64(),
        written as f64 / started.elapsed().as_secs_f64()
    );
    let url = format!("{}/v1/entitlements", server.base);
    for _ in 0..100 {
        client.get(&url).bearer_auth(&access).send().await?;
    }
    let mut samples = Vec::new();
    for _ in 0..2000 {
        let t = Instant::now();
        let res = client.get(&url).bearer_auth(&access).send().await?;
        anyhow::ensure!(
            res.status().is_success(),
            "entitlements failed: {}",
            res.status()
        );
        let _ = res.bytes().await?;
        samples.push(t.elapsed());
    }
    samples.sort();
    println!(
        "GET /v1/entitlements with {written} ledger rows in the tenant: p50 {:.2} ms, p99 {:.2} ms (2000 sequential requests over HTTP)",
        quantile(&samples, 0.5).as_secs_f64() * 1e3,
        quantile(&samples, 0.99).as_secs_f64() * 1e3
    );
    Ok(())
}
