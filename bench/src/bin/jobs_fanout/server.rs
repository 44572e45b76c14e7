//! The `keel serve` process under test: the release binary next to this one, on free
//! loopback ports, with its open-file limit raised to the hard limit (each SSE subscriber
//! is a socket), a job type without billing, and one service key; killed on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use serde_json::json;

/// The service key's secret (`worker.<secret>` as a bearer token).
const SERVICE_SECRET: &str = "0123456789abcdef0123456789abcdef-bench";

const MANIFEST: &str = r#"
[product]
name = "fanout"
default_plan = "bench"

[plans.bench]

[jobs.fan]
states = ["queued", "running", "done"]
initial = "queued"
terminal = ["done"]

[[jobs.fan.transitions]]
from = "queued"
to = "running"

[[jobs.fan.transitions]]
from = "running"
to = "done"
"#;

/// A `keel serve` process.
pub struct Keel {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    child: Child,
    _dir: tempfile::TempDir,
    _db: Option<keel_store::testing::ThrowawayDb>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Keel {
    /// Starts Keel on SQLite in a temp dir, or on a throwaway PostgreSQL database.
    pub async fn start(postgres: bool) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let keel: PathBuf = exe.parent().ok_or_else(|| anyhow!("no dir"))?.join("keel");
        if !keel.exists() {
            return Err(anyhow!(
                "{} is missing: cargo build --release -p keel -p keel-bench",
                keel.display()
            ));
        }
        let dir = tempfile::tempdir()?;
        let manifest = dir.path().join("keel.toml");
        std::fs::write(&manifest, MANIFEST)?;
        let db = if postgres {
            Some(keel_store::testing::ThrowawayDb::create().await?)
        } else {
            None
        };
        let port = free_port()?;
        let metrics = free_port()?;
        // The shell raises the soft open-file limit to the hard one, then becomes keel.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "ulimit -n \"$(ulimit -Hn)\" && exec \"$0\" serve"])
            .arg(&keel)
            .env("KEEL_ADDR", format!("127.0.0.1:{port}"))
            .env("KEEL_METRICS_ADDR", format!("127.0.0.1:{metrics}"))
            .env("KEEL_DATA_DIR", dir.path().join("data"))
            .env("KEEL_MANIFEST", &manifest)
            .env("KEEL_SERVICE_KEYS", format!("worker:{SERVICE_SECRET}"))
            .env("KEEL_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        if let Some(db) = &db {
            cmd.env("KEEL_DATABASE_URL", &db.url);
        }
        let child = cmd.spawn().context("starting keel")?;
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(res) = client.get(format!("{base}/readyz")).send().await {
                if res.status().is_success() {
                    break;
                }
            }
            if Instant::now() > until {
                return Err(anyhow!("keel never became ready"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self {
            base,
            child,
            _dir: dir,
            _db: db,
        })
    }

    /// The bearer token of the service key.
    pub fn service_token(&self) -> String {
        format!("worker.{SERVICE_SECRET}")
    }

    /// Registers a user and returns its access token.
    pub async fn user_token(&self, client: &reqwest::Client) -> anyhow::Result<String> {
        let res = client
            .post(format!("{}/v1/auth/register", self.base))
            .json(&json!({"email": "fanout@example.com", "password": "tangerine-orbit-42"}))
            .send()
            .await?;
        let body: serde_json::Value = res.json().await?;
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("register failed: {body}"))
    }

    /// Resident memory now, KiB (`VmRSS` of the process; `sh` exec'd into keel).
    pub fn rss_kib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|kb| kb.parse::<f64>().ok())
                })
            })
            .unwrap_or(0.0)
    }
}

impl Drop for Keel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
