//! The gateway's response headers: `x-keel-provider` (the provider kind that served),
//! `x-keel-cost-micros` (the call's cost; for a stream, the most it may cost, as the final
//! cost is only known at its end and is sent in the stream's last comment) and
//! `x-keel-overhead-ms` (time spent in Keel, upstream time excluded).

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use keel_core::manifest::ProviderKind;
use tokio::time::Instant;

/// `x-keel-provider`.
pub const X_KEEL_PROVIDER: HeaderName = HeaderName::from_static("x-keel-provider");
/// `x-keel-cost-micros`.
pub const X_KEEL_COST_MICROS: HeaderName = HeaderName::from_static("x-keel-cost-micros");
/// `x-keel-overhead-ms`.
pub const X_KEEL_OVERHEAD_MS: HeaderName = HeaderName::from_static("x-keel-overhead-ms");

/// Time spent in Keel for one call.
#[derive(Clone, Copy, Debug)]
pub struct Overhead(Duration);

impl Overhead {
    /// Everything since `started` except `upstream`.
    pub fn new(started: Instant, upstream: Duration) -> Self {
        Self(started.elapsed().saturating_sub(upstream))
    }

    fn record(self, stream: bool) -> HeaderValue {
        let stream = if stream { "true" } else { "false" };
        metrics::histogram!("keel_gateway_overhead_seconds", "stream" => stream)
            .record(self.0.as_secs_f64());
        let ms = format!("{:.3}", self.0.as_secs_f64() * 1000.0);
        HeaderValue::from_str(&ms).unwrap_or(HeaderValue::from_static("0"))
    }
}

fn set(res: &mut Response, kind: ProviderKind, cost: i64, overhead: HeaderValue) {
    let h = res.headers_mut();
    h.insert(X_KEEL_PROVIDER, HeaderValue::from_static(kind.as_str()));
    h.insert(X_KEEL_COST_MICROS, HeaderValue::from(cost));
    h.insert(X_KEEL_OVERHEAD_MS, overhead);
}

/// A non-streamed answer with the gateway headers.
pub fn json(mut res: Response, kind: ProviderKind, cost: i64, overhead: Overhead) -> Response {
    set(&mut res, kind, cost, overhead.record(false));
    res
}

/// A server-sent event stream with the gateway headers.
pub fn sse(body: Body, kind: ProviderKind, reserved: i64, overhead: Overhead) -> Response {
    let mut res = (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response();
    res.headers_mut().insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    set(&mut res, kind, reserved, overhead.record(true));
    res
}
