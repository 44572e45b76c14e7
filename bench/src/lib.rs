//! Shared helpers of the benchmark binaries: percentiles, resident memory, a server on
//! ephemeral ports.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use keel_server::config::Layers;
use keel_server::{AppState, Application, Settings};

/// A server running in this process.
pub struct Server {
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// Its state.
    pub state: AppState,
    _dir: tempfile::TempDir,
    _db: Option<keel_store::testing::ThrowawayDb>,
}

/// Starts a server on SQLite, or on a throwaway PostgreSQL database when `postgres`.
pub async fn start(postgres: bool) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let db = if postgres {
        Some(keel_store::testing::ThrowawayDb::create().await?)
    } else {
        None
    };
    let mut settings = Settings::resolve(&Layers::default())?;
    settings.addr = "127.0.0.1:0".parse()?;
    settings.metrics_addr = "127.0.0.1:0".parse()?;
    settings.data_dir = dir.path().join("data");
    settings.database_url = db.as_ref().map(|d| d.url.clone());
    let mut demo = keel_core::manifest::demo()?;
    // Benchmarks measure Keel's own cost: the demo's rate limits would only cap the load.
    demo.manifest.rate_limits = Default::default();
    for plan in demo.manifest.plans.values_mut() {
        plan.rate_limits = Default::default();
    }
    let app = Application::build(settings, demo).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    Ok(Server {
        base,
        state,
        _dir: dir,
        _db: db,
    })
}

/// The `q`-quantile (0..=1) of sorted samples.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Resident set size of this process in MiB (Linux).
pub fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Whether `--postgres` was passed.
pub fn want_postgres() -> bool {
    std::env::args().any(|a| a == "--postgres")
}
