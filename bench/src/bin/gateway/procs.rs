//! The two processes under test: keel-sim and `keel serve`, started from the release
//! binaries next to this one, on free loopback ports, and killed on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use serde_json::json;

/// Paths of the `keel` and `keel-sim` binaries.
pub struct Binaries {
    keel: PathBuf,
    sim: PathBuf,
}

impl Binaries {
    /// Next to this executable (`target/release/`).
    pub fn locate() -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let dir = exe.parent().ok_or_else(|| anyhow!("no parent dir"))?;
        let keel = dir.join("keel");
        let sim = dir.join("keel-sim");
        for bin in [&keel, &sim] {
            if !bin.exists() {
                return Err(anyhow!(
                    "{} is missing: cargo build --release -p keel -p keel-sim -p keel-bench",
                    bin.display()
                ));
            }
        }
        Ok(Self { keel, sim })
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn wait_ready(url: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        if let Ok(res) = client.get(url).send().await {
            if res.status().is_success() || res.status().as_u16() == 404 {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(anyhow!("{url} never answered"))
}

/// A keel-sim process.
pub struct Sim {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    child: Child,
}

impl Sim {
    /// Starts keel-sim with no injected latency: the fastest possible upstream.
    pub async fn start(bins: &Binaries) -> anyhow::Result<Self> {
        let port = free_port()?;
        let child = Command::new(&bins.sim)
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .spawn()
            .context("starting keel-sim")?;
        let base = format!("http://127.0.0.1:{port}");
        wait_ready(&format!("{base}/_sim/stats")).await?;
        Ok(Self { base, child })
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The manifest under test: one route to the simulator, with every admission step on and
/// limits nobody reaches (so the run measures their cost, not their refusals).
pub fn manifest(sim_base: &str) -> String {
    format!(
        r#"
[product]
name = "bench"
default_plan = "bench"
default_feature = "chat"

[meters.requests]
unit = "request"
aggregation = "count"

[meters.tokens]
unit = "token"
aggregation = "sum"

[meters.cost]
unit = "micro"
aggregation = "sum"

[features.chat]

[plans.bench]
features = ["chat"]
model_classes = ["standard"]

[plans.bench.limits.requests]
limit = 1000000000
window = "day"

[plans.bench.limits.tokens]
limit = 1000000000000
window = "day"

[plans.bench.limits.cost]
limit = 1000000000000
window = "day"

[plans.bench.rate_limits.gateway]
user = {{ requests = 10000000, per = "1m", burst = 1000000, tokens = 4000000000 }}
tenant = {{ requests = 10000000, per = "1m", burst = 1000000, tokens = 4000000000 }}

[routes.bench]
feature = "chat"
model_class = "standard"
max_tokens = 4000
request_meter = "requests"
token_meter = "tokens"
cost_meter = "cost"
timeout = "30s"

[[routes.bench.deployments]]
provider = "openai_compatible"
model = "sim-bench"
base_url = "{sim_base}/v1"

[routes.bench.pricing]
input_per_mtok_micros = 150000
output_per_mtok_micros = 600000
"#
    )
}

/// A `keel serve` process.
pub struct Keel {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    child: Child,
    _dir: tempfile::TempDir,
    _db: Option<keel_store::testing::ThrowawayDb>,
}

impl Keel {
    /// Starts Keel on SQLite in a temp dir, or on a throwaway PostgreSQL database.
    pub async fn start(bins: &Binaries, sim: &Sim, postgres: bool) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let manifest = dir.path().join("keel.toml");
        std::fs::write(&manifest, manifest_text(sim))?;
        let db = if postgres {
            Some(keel_store::testing::ThrowawayDb::create().await?)
        } else {
            None
        };
        let port = free_port()?;
        let metrics = free_port()?;
        let mut cmd = Command::new(&bins.keel);
        cmd.arg("serve")
            .env("KEEL_ADDR", format!("127.0.0.1:{port}"))
            .env("KEEL_METRICS_ADDR", format!("127.0.0.1:{metrics}"))
            .env("KEEL_DATA_DIR", dir.path().join("data"))
            .env("KEEL_MANIFEST", &manifest)
            .env("KEEL_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        if let Some(db) = &db {
            cmd.env("KEEL_DATABASE_URL", &db.url);
        }
        let child = cmd.spawn().context("starting keel")?;
        let base = format!("http://127.0.0.1:{port}");
        wait_ready(&format!("{base}/readyz")).await?;
        Ok(Self {
            base,
            child,
            _dir: dir,
            _db: db,
        })
    }

    /// Registers a user and returns its access token.
    pub async fn user_token(&self, client: &reqwest::Client) -> anyhow::Result<String> {
        let res = client
            .post(format!("{}/v1/auth/register", self.base))
            .json(&json!({"email": "bench@example.com", "password": "tangerine-orbit-42"}))
            .send()
            .await?;
        let body: serde_json::Value = res.json().await?;
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("register failed: {body}"))
    }

    /// The `requests` meter's settled usage, as Keel's ledger counts it.
    pub async fn requests_used(
        &self,
        client: &reqwest::Client,
        token: &str,
    ) -> anyhow::Result<i64> {
        let body: serde_json::Value = client
            .get(format!("{}/v1/entitlements", self.base))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        body["meters"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["meter"] == "requests"))
            .and_then(|m| m["used"].as_i64())
            .ok_or_else(|| anyhow!("no requests meter: {body}"))
    }

    fn status_kib(&self, field: &str) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines().find(|l| l.starts_with(field)).and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|kb| kb.parse::<f64>().ok())
                })
            })
            .unwrap_or(0.0)
    }

    /// Resident memory now, MiB.
    pub fn rss_mib(&self) -> f64 {
        self.status_kib("VmRSS:") / 1024.0
    }

    /// Peak resident memory, MiB.
    pub fn peak_mib(&self) -> f64 {
        self.status_kib("VmHWM:") / 1024.0
    }
}

fn manifest_text(sim: &Sim) -> String {
    manifest(&sim.base)
}

impl Drop for Keel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
