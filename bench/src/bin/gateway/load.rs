//! A closed-loop load generator: `conns` tasks, each sending its next request when the last
//! answer has been read in full.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_bench::quantile;

/// Where and what to send.
pub struct Target {
    pub url: String,
    pub bearer: Option<String>,
    pub body: serde_json::Value,
}

/// What one run measured.
pub struct Report {
    /// End-to-end latencies of successful calls, sorted.
    pub latencies: Vec<Duration>,
    /// Keel's own `x-keel-overhead-ms` per call, sorted (empty for the simulator).
    pub overheads: Vec<Duration>,
    pub ok: u64,
    pub failed: u64,
    pub elapsed: Duration,
    /// The first failure's status and body, for the operator.
    pub first_failure: Option<String>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Report {
    /// The Markdown table header matching [`Report::row`].
    pub fn header() -> String {
        "| path | conns | req/s | p50 ms | p99 ms | added p50 ms | added p99 ms | keel-reported overhead p50 / p99 ms | errors |\n|---|---|---|---|---|---|---|---|---|".to_owned()
    }

    /// Requests per second.
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// One Markdown row; `baseline` gives the added-latency columns.
    pub fn row(&self, name: &str, conns: usize, baseline: Option<&Report>) -> String {
        let p50 = quantile(&self.latencies, 0.5);
        let p99 = quantile(&self.latencies, 0.99);
        let added = baseline.map_or_else(
            || "| – | –".to_owned(),
            |b| {
                format!(
                    "| {:.3} | {:.3}",
                    ms(p50) - ms(quantile(&b.latencies, 0.5)),
                    ms(p99) - ms(quantile(&b.latencies, 0.99))
                )
            },
        );
        let own = if self.overheads.is_empty() {
            "–".to_owned()
        } else {
            format!(
                "{:.3} / {:.3}",
                ms(quantile(&self.overheads, 0.5)),
                ms(quantile(&self.overheads, 0.99))
            )
        };
        let mut row = format!(
            "| {name} | {conns} | {:.0} | {:.3} | {:.3} {added} | {own} | {} |",
            self.rps(),
            ms(p50),
            ms(p99),
            self.failed
        );
        if let Some(f) = &self.first_failure {
            row.push_str(&format!("\n<!-- first failure: {f} -->"));
        }
        row
    }
}

struct Sample {
    latency: Duration,
    overhead: Option<Duration>,
}

async fn one(client: &reqwest::Client, target: &Target) -> Result<Sample, String> {
    let started = Instant::now();
    let mut req = client.post(&target.url).json(&target.body);
    if let Some(token) = &target.bearer {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.map_err(|e| e.to_string())?;
    let status = res.status();
    let overhead = res
        .headers()
        .get("x-keel-overhead-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| Duration::from_secs_f64(v / 1e3));
    let body = res.bytes().await.map_err(|e| e.to_string())?;
    let latency = started.elapsed();
    if !status.is_success() {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
    }
    Ok(Sample { latency, overhead })
}

/// Runs `conns` closed loops for `duration`.
pub async fn run(
    client: &reqwest::Client,
    target: &Target,
    conns: usize,
    duration: Duration,
) -> anyhow::Result<Report> {
    let target = Arc::new(Target {
        url: target.url.clone(),
        bearer: target.bearer.clone(),
        body: target.body.clone(),
    });
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(conns);
    for _ in 0..conns {
        let client = client.clone();
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut failed = 0u64;
            let mut first_failure = None;
            while Instant::now() < deadline {
                match one(&client, &target).await {
                    Ok(s) => samples.push(s),
                    Err(e) => {
                        failed += 1;
                        first_failure.get_or_insert(e);
                    }
                }
            }
            (samples, failed, first_failure)
        }));
    }
    let mut report = Report {
        latencies: Vec::new(),
        overheads: Vec::new(),
        ok: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        first_failure: None,
    };
    for task in tasks {
        let (samples, failed, first_failure) = task.await?;
        report.failed += failed;
        if report.first_failure.is_none() {
            report.first_failure = first_failure;
        }
        for s in samples {
            report.ok += 1;
            report.latencies.push(s.latency);
            if let Some(o) = s.overhead {
                report.overheads.push(o);
            }
        }
    }
    report.elapsed = started.elapsed();
    report.latencies.sort();
    report.overheads.sort();
    Ok(report)
}
