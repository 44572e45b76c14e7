//! Timing harness: variants of one section run in interleaved rounds (so drift in the
//! machine's load hits every variant alike), one at a time and 32 at a time, each
//! operation prepared (request built, signed) before its timer starts.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use keel_bench::quantile;
use tower::ServiceExt;

/// One prepared operation; awaiting it is what is timed.
pub type Op = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// Prepares the `i`-th operation of a variant (`i` is unique within the variant).
pub type Prepare = Arc<dyn Fn(usize) -> Op + Send + Sync>;

/// Tasks in the concurrent runs.
pub const CONCURRENCY: usize = 32;

/// How much to run.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Measured operations per variant and mode, split over `rounds`.
    pub iterations: usize,
    /// Rounds the iterations are interleaved in.
    pub rounds: usize,
    /// Unmeasured operations per variant and mode first.
    pub warmup: usize,
}

/// A measured variant.
pub struct Variant {
    /// What it is.
    pub name: String,
    /// A reference figure: printed, but no delta to the section's baseline.
    pub reference: bool,
    prepare: Prepare,
    next: usize,
    serial: Vec<Duration>,
    concurrent: Vec<Duration>,
    wall: Duration,
}

impl Variant {
    /// A variant whose delta is taken against the section's first variant.
    pub fn new(name: impl Into<String>, prepare: Prepare) -> Self {
        Variant {
            name: name.into(),
            reference: false,
            prepare,
            next: 0,
            serial: Vec::new(),
            concurrent: Vec::new(),
            wall: Duration::ZERO,
        }
    }

    /// A variant shown for comparison only (no delta).
    pub fn reference(name: impl Into<String>, prepare: Prepare) -> Self {
        Variant {
            reference: true,
            ..Variant::new(name, prepare)
        }
    }

    /// This variant, shown for comparison only.
    pub fn into_reference(self) -> Self {
        Variant {
            reference: true,
            ..self
        }
    }

    fn ops(&mut self, n: usize) -> Vec<Op> {
        let ops = (self.next..self.next + n)
            .map(|i| (self.prepare)(i))
            .collect();
        self.next += n;
        ops
    }

    async fn serial(&mut self, n: usize, keep: bool) -> anyhow::Result<()> {
        for op in self.ops(n) {
            let started = Instant::now();
            op.await?;
            if keep {
                self.serial.push(started.elapsed());
            }
        }
        Ok(())
    }

    async fn concurrent(&mut self, n: usize, keep: bool) -> anyhow::Result<()> {
        let mut lanes: Vec<Vec<Op>> = (0..CONCURRENCY).map(|_| Vec::new()).collect();
        for (i, op) in self.ops(n).into_iter().enumerate() {
            lanes[i % CONCURRENCY].push(op);
        }
        let started = Instant::now();
        let tasks: Vec<_> = lanes
            .into_iter()
            .map(|lane| {
                tokio::spawn(async move {
                    let mut samples = Vec::with_capacity(lane.len());
                    for op in lane {
                        let t = Instant::now();
                        op.await?;
                        samples.push(t.elapsed());
                    }
                    anyhow::Ok(samples)
                })
            })
            .collect();
        let mut samples = Vec::with_capacity(n);
        for task in tasks {
            samples.extend(task.await??);
        }
        if keep {
            self.wall += started.elapsed();
            self.concurrent.extend(samples);
        }
        Ok(())
    }
}

/// Runs every variant: warm-up, then `rounds` interleaved rounds of serial runs and of
/// concurrent runs.
pub async fn run(variants: &mut [Variant], plan: Plan) -> anyhow::Result<()> {
    for v in variants.iter_mut() {
        v.serial(plan.warmup, false).await?;
        v.concurrent(plan.warmup, false).await?;
    }
    let chunk = plan.iterations.div_ceil(plan.rounds.max(1));
    for _ in 0..plan.rounds.max(1) {
        for v in variants.iter_mut() {
            v.serial(chunk, true).await?;
        }
        for v in variants.iter_mut() {
            v.concurrent(chunk, true).await?;
        }
    }
    for v in variants.iter_mut() {
        v.serial.sort();
        v.concurrent.sort();
    }
    Ok(())
}

/// What each variant's figures are, for the table.
struct Figures {
    p50: f64,
    p99: f64,
    c_p50: f64,
    c_p99: f64,
    per_sec: f64,
}

fn figures(v: &Variant) -> Figures {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let count = v.concurrent.len() as f64;
    Figures {
        p50: us(quantile(&v.serial, 0.5)),
        p99: us(quantile(&v.serial, 0.99)),
        c_p50: us(quantile(&v.concurrent, 0.5)),
        c_p99: us(quantile(&v.concurrent, 0.99)),
        per_sec: count / v.wall.as_secs_f64().max(f64::MIN_POSITIVE),
    }
}

/// The header of the Markdown table [`rows`] fills.
pub fn table_header() -> String {
    [
        "| section | variant | c=1 p50 | c=1 p99 | Δ p50 (c=1) | c=32 p50 | c=32 p99 | c=32 req/s | Δ µs/req (c=32) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    .join("\n")
}

/// One Markdown row per variant, deltas against the section's first variant.
pub fn rows(section: &str, variants: &[Variant]) -> String {
    let Some(base) = variants.first().map(figures) else {
        return String::new();
    };
    let mut out = Vec::new();
    for (i, v) in variants.iter().enumerate() {
        let f = figures(v);
        let (delta, delta_c) = if i == 0 {
            ("baseline".to_string(), "baseline".to_string())
        } else if v.reference {
            ("—".to_string(), "—".to_string())
        } else {
            (
                format!("{:+.1}", f.p50 - base.p50),
                format!("{:+.1}", 1e6 / f.per_sec - 1e6 / base.per_sec),
            )
        };
        out.push(format!(
            "| {section} | {} | {:.1} | {:.1} | {delta} | {:.1} | {:.1} | {:.0} | {delta_c} |",
            v.name, f.p50, f.p99, f.c_p50, f.c_p99, f.per_sec
        ));
    }
    out.join("\n")
}

/// Sends `req` through `router` in process, reads the whole answer, and checks its status
/// and, when given, that a header is present.
pub async fn call(
    router: Router,
    req: Request<Body>,
    expect: StatusCode,
    header: Option<&'static str>,
) -> anyhow::Result<()> {
    let res = router.oneshot(req).await?;
    let status = res.status();
    let has_header = header.is_none_or(|h| res.headers().contains_key(h));
    let body = res.into_body().collect().await?.to_bytes();
    anyhow::ensure!(
        status == expect && has_header,
        "expected {expect} with {header:?}, got {status}: {}",
        String::from_utf8_lossy(&body)
    );
    Ok(())
}
