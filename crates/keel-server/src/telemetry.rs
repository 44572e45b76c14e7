//! Logs and metrics: JSON logs (pretty on a terminal), a Prometheus recorder served on
//! its own listener, and process metrics.

use std::io::IsTerminal;
use std::sync::OnceLock;

use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter};

use crate::LogFormat;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Latency buckets in seconds, fine at the low end where Keel's own overhead lives.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process-wide Prometheus handle, installing the recorder on first use.
pub fn metrics_handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            metrics_process::Collector::default().describe();
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    metrics::describe_counter!(
        "keel_http_requests_total",
        "HTTP requests by route template, method and status class"
    );
    metrics::describe_histogram!(
        "keel_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency by route template, method and status class"
    );
}

/// The router of the metrics listener: `GET /metrics`.
pub fn metrics_router() -> Router {
    let _ = metrics_handle();
    Router::new().route("/metrics", get(render))
}

async fn render() -> String {
    metrics_process::Collector::default().collect();
    match metrics_handle() {
        Some(h) => {
            h.run_upkeep();
            h.render()
        }
        None => String::new(),
    }
}

/// Installs the global log subscriber. `KEEL_LOG` (or `RUST_LOG`) sets the filter.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("KEEL_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let pretty = match format {
        LogFormat::Pretty => true,
        LogFormat::Json => false,
        LogFormat::Auto => std::io::stderr().is_terminal(),
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = if pretty {
        registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init()
    } else {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    };
    // A subscriber may already be installed (tests); keeping the first one is right.
    let _ = result;
}
