//! keel-sim: an upstream LLM simulator speaking the OpenAI Chat Completions and Anthropic
//! Messages wire formats (streaming included), with deterministic replies and token counts
//! and fault injection per request (headers), per model and globally. See the README for
//! every header.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let sim = keel_sim::spawn(keel_sim::SimConfig::default()).await?;
//! let openai_base = sim.openai_base(); // http://127.0.0.1:PORT/v1
//! # Ok(()) }
//! ```

mod anthropic;
pub mod chat;
pub mod config;
mod openai;
pub mod reply;
mod stats;
mod stream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

pub use chat::{OpenAiChat, Reply};
pub use config::{parse_duration, Faults, ModelMode, SimConfig, ToolCallMode};
pub use reply::count_tokens;
pub use stats::StatsSnapshot;
use stats::{Rng, Stats};

/// The shared state of one simulator.
pub(crate) struct Sim {
    pub config: SimConfig,
    pub stats: Arc<Stats>,
    rng: Rng,
}

/// Builds a provider-shaped error response.
pub(crate) type ErrorFn = fn(u16, &str) -> Response;

/// A request check: `Err((status, message))` rejects it.
pub(crate) type Check = Result<(), (u16, &'static str)>;

impl Sim {
    /// What every chat request goes through before its answer: it is counted (and kept when
    /// keyed), its faults are resolved and applied. `Ok` means "answer normally, with these
    /// stream faults"; `Err` is the response to send instead.
    pub(crate) async fn admit(
        &self,
        path: &'static str,
        model: &str,
        headers: &HeaderMap,
        body: &[u8],
        checks: Check,
        error: ErrorFn,
    ) -> Result<Faults, Response> {
        let key = headers.get("x-sim-key").and_then(|v| v.to_str().ok());
        let key_count = self.stats.record(path, model, key);
        match key {
            Some(key) => self.stats.remember(key, recorded(path, headers, body)),
            None if self.config.record_by_model => {
                self.stats.remember(model, recorded(path, headers, body));
            }
            None => {}
        }
        checks.map_err(|(status, message)| error(status, message))?;
        let faults = self
            .faults_for(model, headers)
            .map_err(|m| error(400, &m))?;
        let jitter = faults.jitter.as_nanos() as u64;
        let jitter = match jitter {
            0 => 0,
            j => self.rng.next_u64() % (j + 1),
        };
        stream::sleep(faults.latency + Duration::from_nanos(jitter)).await;
        if faults.hang {
            std::future::pending::<()>().await;
        }
        let failing = faults.status.or_else(|| {
            let n = faults.fail_times?;
            (key_count <= n).then(|| faults.fail_status.unwrap_or(500))
        });
        if let Some(status) = failing {
            return Err(with_retry_after(
                error(status, "sim: injected failure"),
                &faults,
            ));
        }
        if self.rng.chance(self.config.rate_limit_rate) {
            let mut response = error(429, "sim: random rate limit");
            let one = axum::http::HeaderValue::from_static("1");
            response.headers_mut().insert("retry-after", one);
            return Err(response);
        }
        if self.rng.chance(self.config.error_rate) {
            return Err(error(500, "sim: random server error"));
        }
        Ok(faults)
    }

    fn faults_for(&self, model: &str, headers: &HeaderMap) -> Result<Faults, String> {
        // A model mode replaces the global faults; headers then override field by field.
        let mut faults = self.config.faults_for_model(model).clone();
        for (name, value) in headers {
            if let Some(fault) = name.as_str().strip_prefix("x-sim-") {
                let value = value
                    .to_str()
                    .map_err(|_| format!("x-sim-{fault}: not text"))?;
                faults.set(fault, value)?;
            }
        }
        Ok(faults)
    }

    /// Whether a presented key is acceptable.
    pub(crate) fn key_ok(&self, presented: Option<&str>) -> bool {
        match &self.config.api_key {
            None => true,
            Some(expected) => presented == Some(expected.as_str()),
        }
    }

    /// A fresh id suffix.
    pub(crate) fn next_id(&self) -> u64 {
        self.rng.next_u64()
    }

    pub(crate) fn reply_tokens(&self, faults: &Faults) -> u32 {
        faults.reply_tokens.unwrap_or(self.config.reply_tokens)
    }
}

fn with_retry_after(mut response: Response, faults: &Faults) -> Response {
    if let Some(value) = faults.retry_after.as_deref().and_then(|v| v.parse().ok()) {
        response.headers_mut().insert("retry-after", value);
    }
    response
}

fn recorded(path: &str, headers: &HeaderMap, body: &[u8]) -> Value {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "authorization" | "x-api-key"))
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), Value::String(value))
        })
        .collect();
    let body = serde_json::from_slice(body).unwrap_or(Value::Null);
    json!({"path": path, "headers": headers, "body": body})
}

/// The simulator's routes.
fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai::chat))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/models", get(models))
        .route("/_sim/stats", get(stats).delete(reset))
        .route("/_sim/reset", post(reset))
        .route("/_sim/requests/{key}", get(last_request))
        .with_state(sim)
}

async fn models(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Json<Value> {
    let mut names: Vec<&str> = sim.config.models.iter().map(String::as_str).collect();
    names.extend(sim.config.model_modes.keys().map(String::as_str));
    if headers.contains_key("anthropic-version") {
        let data: Vec<Value> = names
            .iter()
            .map(|id| {
                json!({"type": "model", "id": id, "display_name": id,
                "created_at": "2025-01-01T00:00:00Z"})
            })
            .collect();
        let (first, last) = (names.first(), names.last());
        return Json(json!({"data": data, "has_more": false, "first_id": first, "last_id": last}));
    }
    let data: Vec<Value> = names
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "keel-sim"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

async fn stats(State(sim): State<Arc<Sim>>) -> Json<StatsSnapshot> {
    Json(sim.stats.snapshot())
}

async fn reset(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.stats.reset();
    StatusCode::NO_CONTENT
}

async fn last_request(State(sim): State<Arc<Sim>>, Path(key): Path<String>) -> Response {
    match sim.stats.last(&key) {
        Some(request) => Json(request).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A running simulator; dropping it stops the server.
pub struct SimHandle {
    addr: SocketAddr,
    sim: Arc<Sim>,
    task: tokio::task::JoinHandle<()>,
}

impl SimHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`: the base URL an Anthropic client expects.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://ADDR/v1`: the base URL an OpenAI client expects.
    pub fn openai_base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.sim.stats.snapshot()
    }

    /// Zeroes the counters and forgets keys.
    pub fn reset(&self) {
        self.sim.stats.reset();
    }

    /// The last request made with `x-sim-key: key` (or, with `record_by_model`, without a
    /// key for model `key`): `{"path", "headers", "body"}`, credentials left out.
    pub fn last_request(&self, key: &str) -> Option<Value> {
        self.sim.stats.last(key)
    }

    /// When each request of `key` (`x-sim-key`; requests without one count under their
    /// model) arrived, oldest first (the first 64).
    pub fn arrivals(&self, key: &str) -> Vec<std::time::Instant> {
        self.sim.stats.arrivals(key)
    }

    /// Serves until the process ends (for the binary).
    pub async fn wait(self) {
        let mut this = self;
        let _ = (&mut this.task).await;
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `config.addr` and serves in a background task.
pub async fn spawn(config: SimConfig) -> std::io::Result<SimHandle> {
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    let addr = listener.local_addr()?;
    let sim = Arc::new(Sim {
        rng: Rng::new(config.seed),
        config,
        stats: Arc::new(Stats::default()),
    });
    let app = router(sim.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(SimHandle { addr, sim, task })
}

/// Seconds since the Unix epoch, for `created` fields.
pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A JSON response with a status.
pub(crate) fn json_response(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(body)).into_response()
}
