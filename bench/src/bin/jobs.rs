//! Jobs benchmarks through the store: batch append fill throughput (32 tasks, batches of
//! 1,000 events via `append_job_events`), then
//! event page fetch latency (`job_events`, 100 events after a random cursor) with N events
//! in the store (default 1,000,000, spread over 1,000 jobs).
//!
//! `cargo run --release -p keel-bench --bin jobs [-- --postgres] [--events N]`
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_bench::{quantile, start, want_postgres};
use keel_core::ids::{JobId, TenantId, UserId};
use keel_store::jobs::{BatchLimits, BatchOutcome, CreateOutcome, JobRecord, NewJob, NewJobEvent};
use keel_store::{DynStore, TenantScope};
use serde_json::json;

const TASKS: usize = 32;
const JOBS: usize = 1_000;
const BATCH: usize = 1_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let postgres = want_postgres();
    let events: usize = std::env::args()
        .skip_while(|a| a != "--events")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let server = start(postgres).await?;
    let store = server.state.store().clone();
    println!("backend: {}", if postgres { "postgres" } else { "sqlite" });
    let scope = TenantScope::new(TenantId::new());
    let mut jobs = Vec::with_capacity(JOBS);
    for _ in 0..JOBS {
        jobs.push(job(&store, &scope).await?);
    }
    let jobs = Arc::new(jobs);
    let started = Instant::now();
    let per_job = events.div_ceil(JOBS);
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (store, jobs) = (store.clone(), jobs.clone());
        tasks.push(tokio::spawn(async move {
            for job in jobs.iter().skip(t).step_by(TASKS) {
                let mut left = per_job;
                while left > 0 {
                    let n = left.min(BATCH);
                    left -= n;
                    let batch = (0..n)
                        .map(|i| NewJobEvent {
                            event_type: "log".into(),
                            data: json!({"line": i, "text": "compiling module 42 of 97"}),
                            user_visible: true,
                            at: chrono::Utc::now(),
                        })
                        .collect();
                    match store
                        .append_job_events(&scope, job.id, batch, BatchLimits::UNCHECKED)
                        .await?
                    {
                        BatchOutcome::Appended(_) => {}
                        other => anyhow::bail!("batch not appended: {other:?}"),
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    let total = per_job * JOBS;
    println!(
        "batch fill: {total} events in batches of {BATCH}, {TASKS} tasks over {JOBS} jobs: {:.0} events/s",
        total as f64 / secs
    );
    page_latency(&store, &scope, &jobs, total / JOBS).await?;
    Ok(())
}

async fn job(store: &DynStore, scope: &TenantScope) -> anyhow::Result<JobRecord> {
    let new = NewJob {
        id: JobId::new(),
        user_id: UserId::new(),
        job_type: "build".into(),
        state: "building".into(),
        input: json!({}),
        idempotency_key: None,
        concurrency_key: None,
        cap: None,
        reservation_id: None,
        timers: Vec::new(),
        event_data: json!({}),
        at: chrono::Utc::now(),
    };
    match store.create_job(scope, new).await? {
        CreateOutcome::Created(j) => Ok(j),
        other => anyhow::bail!("unexpected {other:?}"),
    }
}

async fn page_latency(
    store: &DynStore,
    scope: &TenantScope,
    jobs: &[JobRecord],
    per_job: usize,
) -> anyhow::Result<()> {
    let mut samples = Vec::with_capacity(2_000);
    for i in 0..2_000usize {
        let job = &jobs[(i * 7919) % jobs.len()];
        let after = ((i * 104_729) % per_job.max(1)) as i64;
        let t = Instant::now();
        let page = store.job_events(scope, job.id, after, 100, true).await?;
        samples.push(t.elapsed());
        if page.is_empty() && per_job > 1 {
            anyhow::bail!("empty page");
        }
    }
    samples.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "event page (100 after a random cursor), {} events stored: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
        per_job * jobs.len(),
        ms(quantile(&samples, 0.50)),
        ms(quantile(&samples, 0.95)),
        ms(quantile(&samples, 0.99)),
    );
    Ok(())
}
