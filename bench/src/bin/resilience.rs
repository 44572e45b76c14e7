//! The resilience engine's own cost per call: the same in-process `sim` deployment called
//! directly and through `Engine::chat` / `Engine::chat_stream` (breaker check and record,
//! deadlines, the trace; streams: the first-output wait and the idle-timeout wrapper).
//! No network, so the difference is the engine alone.
//!
//! `cargo run --release -p keel-bench --bin resilience [-- --iterations N]`
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use keel_bench::quantile;
use keel_core::gateway::openai::ChatMessage;
use keel_core::gateway::{ChatRequest, Policy};
use keel_server::gateway::providers::{InProcessSim, Provider};
use keel_server::gateway::resilience::{Engine, Target};

#[derive(Clone, Copy, Debug)]
enum Mode {
    Direct,
    Engine,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Chat,
    Stream,
}

struct Rig {
    provider: Arc<dyn Provider>,
    targets: Arc<[Target]>,
    engine: Engine,
    request: ChatRequest,
    policy: Policy,
}

impl Rig {
    async fn once(&self, mode: Mode, kind: Kind) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        match (mode, kind) {
            (Mode::Direct, Kind::Chat) => {
                self.provider.chat(&self.request, deadline).await?;
            }
            (Mode::Engine, Kind::Chat) => {
                self.engine
                    .chat(&self.targets, &self.request, &self.policy, deadline)
                    .await?;
            }
            (Mode::Direct, Kind::Stream) => {
                let mut s = self.provider.chat_stream(&self.request, deadline).await?;
                while let Some(chunk) = s.next().await {
                    chunk?;
                }
            }
            (Mode::Engine, Kind::Stream) => {
                let (mut s, _) = self
                    .engine
                    .chat_stream(&self.targets, &self.request, &self.policy, deadline)
                    .await?;
                while let Some(chunk) = s.next().await {
                    chunk?;
                }
            }
        }
        Ok(())
    }
}

async fn measure(
    rig: &Arc<Rig>,
    mode: Mode,
    kind: Kind,
    n: usize,
    tasks: usize,
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let rig = Arc::clone(rig);
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(n / tasks);
                for _ in 0..n / tasks {
                    let t = Instant::now();
                    rig.once(mode, kind).await?;
                    samples.push(t.elapsed());
                }
                anyhow::Ok(samples)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(n);
    for handle in handles {
        all.extend(handle.await??);
    }
    let wall = started.elapsed();
    all.sort();
    Ok((all, wall))
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .iter()
        .position(|a| a == "--iterations")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let provider: Arc<dyn Provider> = Arc::new(InProcessSim::new("sim-small"));
    let rig = Arc::new(Rig {
        targets: vec![Target::new("bench/0", Arc::clone(&provider))].into(),
        provider,
        engine: Engine::default(),
        request: ChatRequest {
            model: "chat".into(),
            messages: vec![ChatMessage::text("user", "how fast is the engine")],
            ..ChatRequest::default()
        },
        policy: Policy::default(),
    });
    println!("{n} calls per row, 16-token replies from the in-process sim; times in µs");
    println!("| call | c | path | p50 | p99 | calls/s | Δ p50 | Δ µs/call (wall) |");
    println!("|---|---:|---|---:|---:|---:|---:|---:|");
    for kind in [Kind::Chat, Kind::Stream] {
        for tasks in [1, 32] {
            // Warm up, then interleave rounds so drift hits both paths alike.
            measure(&rig, Mode::Direct, kind, n / 10, tasks).await?;
            measure(&rig, Mode::Engine, kind, n / 10, tasks).await?;
            let mut rows = Vec::new();
            for mode in [Mode::Direct, Mode::Engine] {
                let (samples, wall) = measure(&rig, mode, kind, n, tasks).await?;
                rows.push((mode, samples, wall));
            }
            let base_p50 = quantile(&rows[0].1, 0.5);
            let base_per = rows[0].2.as_secs_f64() / rows[0].1.len() as f64;
            for (mode, samples, wall) in &rows {
                let per = wall.as_secs_f64() / samples.len() as f64;
                println!(
                    "| {kind:?} | {tasks} | {mode:?} | {:.1} | {:.1} | {:.0} | {:+.1} | {:+.2} |",
                    us(quantile(samples, 0.5)),
                    us(quantile(samples, 0.99)),
                    samples.len() as f64 / wall.as_secs_f64(),
                    us(quantile(samples, 0.5)) - us(base_p50),
                    (per - base_per) * 1e6,
                );
            }
        }
    }
    Ok(())
}
