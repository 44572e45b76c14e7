//! Gateway benchmark: what Keel adds to a chat completion, against calling keel-sim directly.
//!
//! Runs keel-sim and `keel serve` as separate processes (the release binaries), then drives
//! both with the same closed-loop client at 1 and 32 connections. Keel runs with
//! authentication, rate limits, budgets and durable metering on (see [`manifest`]).
//!
//! `cargo build --release -p keel -p keel-sim -p keel-bench && ./target/release/gateway [--postgres]`
#![allow(clippy::print_stdout)]

#[path = "gateway/load.rs"]
mod load;
#[path = "gateway/procs.rs"]
mod procs;

use std::time::Duration;

use keel_bench::want_postgres;
use load::{run, Report, Target};
use serde_json::json;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let postgres = want_postgres();
    let secs: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(10);
    let stream = std::env::args().any(|a| a == "--stream");
    let run_for = Duration::from_secs(secs);
    let bins = procs::Binaries::locate()?;
    let sim = procs::Sim::start(&bins).await?;
    let keel = procs::Keel::start(&bins, &sim, postgres).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let token = keel.user_token(&client).await?;
    let via_keel_token = token.clone();
    println!(
        "backend: {}, {} s per run, {}",
        if postgres { "postgres" } else { "sqlite" },
        secs,
        if stream { "streamed" } else { "not streamed" }
    );
    let body = json!({
        "model": "bench",
        "messages": [{"role": "user", "content": "Say something short about benchmarks."}],
        "max_tokens": 64,
        "stream": stream,
    });
    let direct = Target {
        url: format!("{}/v1/chat/completions", sim.base),
        bearer: None,
        body: {
            let mut b = body.clone();
            b["model"] = json!("sim-bench");
            b
        },
    };
    let via_keel = Target {
        url: format!("{}/v1/chat/completions", keel.base),
        bearer: Some(token.clone()),
        body,
    };
    // Warm both paths (connections, caches, the first ledger rows).
    run(&client, &direct, 8, Duration::from_secs(1)).await?;
    let warm = run(&client, &via_keel, 8, Duration::from_secs(1)).await?;
    let mut served = warm.ok;
    let rest = keel.rss_mib();
    println!("keel memory at rest: {rest:.1} MiB RSS");
    println!();
    println!("{}", Report::header());
    for conns in [1usize, 32] {
        let d = run(&client, &direct, conns, run_for).await?;
        let k = run(&client, &via_keel, conns, run_for).await?;
        println!("{}", d.row("keel-sim direct", conns, None));
        println!("{}", k.row("through keel", conns, Some(&d)));
        served += k.ok;
    }
    let peak = keel.peak_mib();
    println!();
    println!("keel memory: {rest:.1} MiB at rest, peak {peak:.1} MiB under load");
    let metered = keel.requests_used(&client, &via_keel_token).await?;
    println!("metering: {served} calls answered 200, {metered} counted in the requests meter");
    Ok(())
}
