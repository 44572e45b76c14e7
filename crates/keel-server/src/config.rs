//! Server settings, layered: built-in defaults → `[server]` in `keel.toml` → `KEEL_*`
//! environment → command-line flags. Every value is validated here, once, at start.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use keel_core::manifest::DurationSpec;

/// A setting that could not be used: names the key, the value and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {key} = {value:?}: expected {expected}")]
pub struct ConfigError {
    /// Where the value came from: a flag, an env var or a `[server]` key.
    pub key: String,
    /// The value as given.
    pub value: String,
    /// What would have been accepted.
    pub expected: String,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Pretty when stderr is a terminal, JSON otherwise.
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable.
    Pretty,
}

/// The validated settings the server runs with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Client, service, webhook and admin API listener.
    pub addr: SocketAddr,
    /// Prometheus `/metrics` listener.
    pub metrics_addr: SocketAddr,
    /// Holds `keel.db` and generated keys on the embedded default.
    pub data_dir: PathBuf,
    /// `postgres://…` for PostgreSQL; `None` for the embedded SQLite file.
    pub database_url: Option<String>,
    /// Redis, for shared rate limits and nonces across nodes.
    pub redis_url: Option<String>,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Longest a handler may take to produce response headers.
    pub request_timeout: Duration,
    /// Longest shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// Bound on waiting for the database at start.
    pub connect_timeout: Duration,
    /// Log output format.
    pub log_format: LogFormat,
    /// OTLP/HTTP endpoint for traces; tracing export is off when unset.
    pub otlp_endpoint: Option<String>,
    /// Access token lifetime.
    pub access_token_ttl: Duration,
    /// Refresh token and session lifetime.
    pub refresh_token_ttl: Duration,
    /// Window in which a concurrent refresh with a just-spent token gets the same successor.
    pub refresh_grace: Duration,
    /// Fewest characters in a password.
    pub password_min_length: usize,
    /// Keys of the product's own services (from `KEEL_SERVICE_KEYS` and
    /// `KEEL_SERVICE_KEYS_FILE` only).
    pub service_keys: crate::integrity::ServiceKeys,
    /// Which service credentials are accepted.
    pub service_auth: crate::integrity::ServiceAuthMode,
    /// How far a signed call's timestamp may be from the server's clock.
    pub signature_tolerance: Duration,
    /// How often expired reservations are released and expired idempotency records deleted.
    pub sweep_interval: Duration,
    /// How long a completed request's response is kept for `Idempotency-Key` replays.
    pub idempotency_ttl: Duration,
    /// Proxies whose `X-Forwarded-For` names the client IP that per-IP limits count.
    pub trusted_proxies: crate::integrity::TrustedProxies,
    /// Prefix of every Redis key Keel writes (several deployments may share one Redis).
    pub redis_prefix: String,
    /// Whether requests pass (`open`) or get 503 (`closed`) when Redis cannot decide a limit.
    pub rate_limit_fail_mode: crate::integrity::FailMode,
    /// Browser origins allowed by CORS, exact; empty sends no CORS headers at all.
    pub cors_origins: Vec<String>,
    /// `Strict-Transport-Security` value; the header is not sent when unset.
    pub hsts: Option<String>,
    /// Inbound webhooks: provider secrets, trust anchors, the inbox worker.
    pub webhooks: crate::webhooks::WebhookSettings,
    /// Outbound webhook delivery (`webhook_*`).
    pub outbound: crate::webhooks::outbound::WebhookSettings,
    /// Stripe Checkout and Billing Portal (`stripe_*`, the key from the environment).
    pub stripe: crate::billing::checkout::StripeSettings,
    /// Largest job event `data` (serialised JSON bytes) a worker may append.
    pub job_event_max_bytes: usize,
    /// Most events in one batch append (`{"events": [...]}`).
    pub job_event_batch_max: usize,
    /// How often each node looks for due job timers.
    pub jobs_timer_poll: Duration,
    /// Interval of `:` keep-alive comments on job event streams.
    pub jobs_sse_keepalive: Duration,
    /// How often each node runs job event retention (one node at a time on PostgreSQL).
    pub jobs_retention_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 9090)),
            data_dir: PathBuf::from("./keel-data"),
            database_url: None,
            redis_url: None,
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            log_format: LogFormat::Auto,
            otlp_endpoint: None,
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            refresh_grace: Duration::from_secs(10),
            password_min_length: 12,
            service_keys: Default::default(),
            service_auth: Default::default(),
            signature_tolerance: Duration::from_secs(120),
            sweep_interval: Duration::from_secs(5),
            trusted_proxies: Default::default(),
            redis_prefix: "keel:".to_string(),
            rate_limit_fail_mode: Default::default(),
            cors_origins: Vec::new(),
            hsts: None,
            idempotency_ttl: Duration::from_secs(24 * 3600),
            webhooks: Default::default(),
            outbound: Default::default(),
            stripe: Default::default(),
            job_event_max_bytes: 64 * 1024,
            job_event_batch_max: 1_000,
            jobs_timer_poll: Duration::from_secs(1),
            jobs_sse_keepalive: Duration::from_secs(15),
            jobs_retention_interval: Duration::from_secs(6 * 3600),
        }
    }
}

/// Every setting: its `[server]` key, env var and flag.
pub const KEYS: &[(&str, &str, &str)] = &[
    ("addr", "KEEL_ADDR", "--addr"),
    ("metrics_addr", "KEEL_METRICS_ADDR", "--metrics-addr"),
    ("data_dir", "KEEL_DATA_DIR", "--data-dir"),
    ("database_url", "KEEL_DATABASE_URL", "--database-url"),
    ("redis_url", "KEEL_REDIS_URL", "--redis-url"),
    ("body_limit", "KEEL_BODY_LIMIT", "--body-limit"),
    (
        "request_timeout",
        "KEEL_REQUEST_TIMEOUT",
        "--request-timeout",
    ),
    ("shutdown_grace", "KEEL_SHUTDOWN_GRACE", "--shutdown-grace"),
    (
        "connect_timeout",
        "KEEL_CONNECT_TIMEOUT",
        "--connect-timeout",
    ),
    ("log_format", "KEEL_LOG_FORMAT", "--log-format"),
    ("otlp_endpoint", "KEEL_OTLP_ENDPOINT", "--otlp-endpoint"),
    (
        "access_token_ttl",
        "KEEL_ACCESS_TOKEN_TTL",
        "--access-token-ttl",
    ),
    (
        "refresh_token_ttl",
        "KEEL_REFRESH_TOKEN_TTL",
        "--refresh-token-ttl",
    ),
    ("refresh_grace", "KEEL_REFRESH_GRACE", "--refresh-grace"),
    (
        "password_min_length",
        "KEEL_PASSWORD_MIN_LENGTH",
        "--password-min-length",
    ),
    ("service_auth", "KEEL_SERVICE_AUTH", "--service-auth"),
    (
        "signature_tolerance",
        "KEEL_SIGNATURE_TOLERANCE",
        "--signature-tolerance",
    ),
    (
        "trusted_proxies",
        "KEEL_TRUSTED_PROXIES",
        "--trusted-proxies",
    ),
    ("redis_prefix", "KEEL_REDIS_PREFIX", "--redis-prefix"),
    (
        "rate_limit_fail_mode",
        "KEEL_RATE_LIMIT_FAIL_MODE",
        "--rate-limit-fail-mode",
    ),
    ("cors_origins", "KEEL_CORS_ORIGINS", "--cors-origins"),
    ("hsts", "KEEL_HSTS", "--hsts"),
    ("sweep_interval", "KEEL_SWEEP_INTERVAL", "--sweep-interval"),
    (
        "idempotency_ttl",
        "KEEL_IDEMPOTENCY_TTL",
        "--idempotency-ttl",
    ),
    ("webhook_worker", "KEEL_WEBHOOK_WORKER", "--webhook-worker"),
    (
        "webhook_poll_interval",
        "KEEL_WEBHOOK_POLL_INTERVAL",
        "--webhook-poll-interval",
    ),
    (
        "webhook_timeout",
        "KEEL_WEBHOOK_TIMEOUT",
        "--webhook-timeout",
    ),
    (
        "webhook_allow_private_urls",
        "KEEL_WEBHOOK_ALLOW_PRIVATE_URLS",
        "--webhook-allow-private-urls",
    ),
    (
        "stripe_api_base",
        "KEEL_STRIPE_API_BASE",
        "--stripe-api-base",
    ),
    (
        "stripe_success_url",
        "KEEL_STRIPE_SUCCESS_URL",
        "--stripe-success-url",
    ),
    (
        "stripe_cancel_url",
        "KEEL_STRIPE_CANCEL_URL",
        "--stripe-cancel-url",
    ),
    (
        "stripe_portal_return_url",
        "KEEL_STRIPE_PORTAL_RETURN_URL",
        "--stripe-portal-return-url",
    ),
    (
        "job_event_max_bytes",
        "KEEL_JOB_EVENT_MAX_BYTES",
        "--job-event-max-bytes",
    ),
    (
        "job_event_batch_max",
        "KEEL_JOB_EVENT_BATCH_MAX",
        "--job-event-batch-max",
    ),
    (
        "jobs_timer_poll_ms",
        "KEEL_JOBS_TIMER_POLL_MS",
        "--jobs-timer-poll-ms",
    ),
    (
        "jobs_sse_keepalive_ms",
        "KEEL_JOBS_SSE_KEEPALIVE_MS",
        "--jobs-sse-keepalive-ms",
    ),
    (
        "jobs_retention_interval",
        "KEEL_JOBS_RETENTION_INTERVAL",
        "--jobs-retention-interval",
    ),
];

/// The raw layers, each a map from `[server]` key to (where it came from, value).
#[derive(Clone, Debug, Default)]
pub struct Layers {
    /// `[server]` of `keel.toml`.
    pub file: toml::Table,
    /// The process environment (only `KEEL_*` names are read).
    pub env: BTreeMap<String, String>,
    /// Flags given on the command line, keyed by `[server]` key.
    pub flags: BTreeMap<&'static str, String>,
}

impl Settings {
    /// Resolves the layers into settings, failing on the first unusable value.
    pub fn resolve(layers: &Layers) -> Result<Settings, ConfigError> {
        let mut raw: BTreeMap<&'static str, (String, String)> = BTreeMap::new();
        for (key, value) in &layers.file {
            let Some(&(k, _, _)) = KEYS.iter().find(|(k, _, _)| k == key) else {
                return Err(ConfigError {
                    key: format!("server.{key}"),
                    value: value.to_string(),
                    expected: format!("one of: {}", key_names()),
                });
            };
            let text = match value {
                toml::Value::String(s) => s.clone(),
                // Lists (cors_origins, trusted_proxies) may be written as TOML arrays.
                toml::Value::Array(items) if items.iter().all(toml::Value::is_str) => items
                    .iter()
                    .filter_map(toml::Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            raw.insert(k, (format!("server.{k} in keel.toml"), text));
        }
        for &(k, env, flag) in KEYS {
            if let Some(v) = layers.env.get(env) {
                raw.insert(k, (env.to_string(), v.clone()));
            }
            if let Some(v) = layers.flags.get(k) {
                raw.insert(k, (flag.to_string(), v.clone()));
            }
        }
        let mut s = Settings {
            service_keys: service_keys(&layers.env)?,
            webhooks: crate::webhooks::WebhookSettings::from_env(&layers.env)?,
            ..Settings::default()
        };
        s.stripe.secret_key = crate::billing::checkout::secret_key(&layers.env)?;
        for (k, (source, value)) in raw {
            apply(&mut s, k, &value).map_err(|expected| ConfigError {
                key: source,
                value,
                expected: expected.to_string(),
            })?;
        }
        Ok(s)
    }
}

/// Service keys from `KEEL_SERVICE_KEYS`, then the file `KEEL_SERVICE_KEYS_FILE` names.
/// Secrets come from the environment (or that file) only, never from `keel.toml` or a flag.
fn service_keys(
    env: &BTreeMap<String, String>,
) -> Result<crate::integrity::ServiceKeys, ConfigError> {
    let bad = |key: &str, value: &str, expected: String| ConfigError {
        key: key.into(),
        value: value.into(),
        expected,
    };
    let mut keys = crate::integrity::ServiceKeys::default();
    if let Some(text) = env.get("KEEL_SERVICE_KEYS") {
        keys.extend_from(text)
            .map_err(|e| bad("KEEL_SERVICE_KEYS", "<redacted>", e))?;
    }
    if let Some(path) = env.get("KEEL_SERVICE_KEYS_FILE").filter(|p| !p.is_empty()) {
        let text = std::fs::read_to_string(path).map_err(|e| {
            bad(
                "KEEL_SERVICE_KEYS_FILE",
                path,
                format!("a readable keys file ({e})"),
            )
        })?;
        keys.extend_from(&text)
            .map_err(|e| bad("KEEL_SERVICE_KEYS_FILE", path, e))?;
    }
    Ok(keys)
}

fn key_names() -> String {
    KEYS.iter()
        .map(|(k, _, _)| *k)
        .collect::<Vec<_>>()
        .join(", ")
}

fn apply(s: &mut Settings, key: &str, v: &str) -> Result<(), &'static str> {
    let addr = |v: &str| {
        v.parse::<SocketAddr>()
            .map_err(|_| "a socket address like 127.0.0.1:8080")
    };
    let duration = |v: &str| {
        v.parse::<DurationSpec>()
            .map(|d| d.as_duration())
            .map_err(|_| "a duration like 30s, 5m or 1h")
    };
    let optional = |v: &str| (!v.trim().is_empty()).then(|| v.to_string());
    match key {
        "addr" => s.addr = addr(v)?,
        "metrics_addr" => s.metrics_addr = addr(v)?,
        "data_dir" if v.trim().is_empty() => return Err("a directory path"),
        "data_dir" => s.data_dir = PathBuf::from(v),
        "database_url" => {
            s.database_url = optional(v);
            if let Some(url) = &s.database_url {
                keel_store::Target::resolve(Some(url), &s.data_dir)
                    .map_err(|_| "a postgres://, postgresql:// or sqlite:// URL")?;
            }
        }
        "redis_url" => {
            s.redis_url = optional(v);
            if s.redis_url
                .as_deref()
                .is_some_and(|u| !(u.starts_with("redis://") || u.starts_with("rediss://")))
            {
                return Err("a redis:// or rediss:// URL");
            }
        }
        "body_limit" => {
            s.body_limit = parse_size(v).ok_or("a size in bytes like 1048576, 512KiB or 1MiB")?
        }
        "request_timeout" => s.request_timeout = duration(v)?,
        "shutdown_grace" => s.shutdown_grace = duration(v)?,
        "connect_timeout" => s.connect_timeout = duration(v)?,
        "log_format" => {
            s.log_format = match v {
                "auto" => LogFormat::Auto,
                "json" => LogFormat::Json,
                "pretty" => LogFormat::Pretty,
                _ => return Err("one of auto, json, pretty"),
            }
        }
        "otlp_endpoint" => s.otlp_endpoint = optional(v),
        "access_token_ttl" => s.access_token_ttl = duration(v)?,
        "refresh_token_ttl" => s.refresh_token_ttl = duration(v)?,
        "refresh_grace" => s.refresh_grace = duration(v)?,
        "sweep_interval" => s.sweep_interval = duration(v)?,
        "service_auth" => s.service_auth = v.parse()?,
        "signature_tolerance" => {
            s.signature_tolerance = duration(v)
                .ok()
                .filter(|d| (1..=3600).contains(&d.as_secs()))
                .ok_or("a duration from 1s to 1h, like 120s or 5m")?
        }
        "idempotency_ttl" => {
            s.idempotency_ttl = duration(v)
                .ok()
                .filter(|d| (Duration::from_secs(1)..=Duration::from_secs(30 * 86_400)).contains(d))
                .ok_or("a duration from 1s to 30d, like 24h")?
        }
        "password_min_length" => {
            s.password_min_length = v
                .parse()
                .ok()
                .filter(|n| (8..=128).contains(n))
                .ok_or("a whole number from 8 to 128")?
        }
        "trusted_proxies" => s.trusted_proxies = crate::integrity::TrustedProxies::parse(v)?,
        "redis_prefix" => s.redis_prefix = parse_prefix(v)?,
        "rate_limit_fail_mode" => s.rate_limit_fail_mode = crate::integrity::FailMode::parse(v)?,
        "cors_origins" => s.cors_origins = crate::integrity::headers::parse_origins(v)?,
        "hsts" => s.hsts = crate::integrity::headers::parse_hsts(v)?,
        k if k.starts_with("webhook_") => {
            crate::webhooks::outbound::settings::apply(&mut s.outbound, k, v)?
        }
        k if k.starts_with("stripe_") => crate::billing::checkout::apply(&mut s.stripe, k, v)?,
        "job_event_max_bytes" => {
            s.job_event_max_bytes = parse_size(v)
                .filter(|n| *n <= 16 * 1024 * 1024)
                .ok_or("a size from 1 byte to 16MiB, like 65536 or 64KiB")?
        }
        "job_event_batch_max" => {
            s.job_event_batch_max = v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=10_000).contains(n))
                .ok_or("a number of events from 1 to 10000")?
        }
        "jobs_timer_poll_ms" => {
            s.jobs_timer_poll = v
                .parse::<u64>()
                .ok()
                .filter(|n| (10..=60_000).contains(n))
                .map(Duration::from_millis)
                .ok_or("milliseconds from 10 to 60000")?
        }
        "jobs_sse_keepalive_ms" => {
            s.jobs_sse_keepalive = v
                .parse::<u64>()
                .ok()
                .filter(|n| (10..=300_000).contains(n))
                .map(Duration::from_millis)
                .ok_or("milliseconds from 10 to 300000")?
        }
        "jobs_retention_interval" => {
            s.jobs_retention_interval = duration(v)
                .ok()
                .filter(|d| (1..=7 * 24 * 3600).contains(&d.as_secs()))
                .ok_or("a duration from 1s to 7d, like 6h")?
        }
        _ => return Err("a known setting"),
    }
    Ok(())
}

impl Settings {
    /// The identity context's settings.
    pub fn identity_config(&self) -> crate::identity::IdentityConfig {
        let mut c = crate::identity::IdentityConfig {
            access_ttl: self.access_token_ttl,
            refresh_ttl: self.refresh_token_ttl,
            refresh_grace: self.refresh_grace,
            ..Default::default()
        };
        c.policy.min_length = self.password_min_length;
        c
    }
}

/// A Redis key prefix: 1 to 64 printable characters without spaces.
fn parse_prefix(v: &str) -> Result<String, &'static str> {
    let ok = (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| v.to_string())
        .ok_or("1 to 64 printable characters without spaces, e.g. keel:")
}

/// Parses `1048576`, `512KiB`, `1MiB` (binary units) into bytes; zero is refused.
pub fn parse_size(v: &str) -> Option<usize> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let n: usize = digits.parse().ok()?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" => 1024,
        "MiB" | "M" | "MB" => 1024 * 1024,
        "GiB" | "G" | "GB" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mult).filter(|b| *b > 0)
}

#[cfg(test)]
mod tests;
