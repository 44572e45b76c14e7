//! The simulator's settings and the fault set that headers, model modes and settings share.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// Settings of one simulator.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Where to listen; port 0 picks a free one.
    pub addr: SocketAddr,
    /// Faults applied to every request (headers and model modes override them).
    pub faults: Faults,
    /// Fraction of requests answered `500` (0.0 to 1.0), drawn from the seeded generator.
    pub error_rate: f64,
    /// Fraction of requests answered `429` with `Retry-After: 1`.
    pub rate_limit_rate: f64,
    /// Seed of the generator behind jitter and the rates above.
    pub seed: u64,
    /// Reply length in tokens when neither the request nor a header says otherwise.
    pub reply_tokens: u32,
    /// When set, requests must carry this key (`Authorization: Bearer` or `x-api-key`).
    pub api_key: Option<String>,
    /// Models listed by `GET /v1/models` (any model name is served).
    pub models: Vec<String>,
    /// Faults for requests naming a given model.
    pub model_modes: HashMap<String, Faults>,
    /// Keep the last request of each model (for requests without `x-sim-key`), for tests
    /// that cannot send headers. Off by default: it costs a parse per request.
    pub record_by_model: bool,
}

impl SimConfig {
    /// The faults of requests for `model`: its mode when it has one, else the global faults.
    pub fn faults_for_model(&self, model: &str) -> &Faults {
        self.model_modes.get(model).unwrap_or(&self.faults)
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            faults: Faults::default(),
            error_rate: 0.0,
            rate_limit_rate: 0.0,
            seed: 0,
            reply_tokens: 16,
            api_key: None,
            models: vec!["sim-small".to_owned(), "sim-large".to_owned()],
            model_modes: HashMap::new(),
            record_by_model: false,
        }
    }
}

/// How a request misbehaves. Each field has a header `x-sim-<name>`; see the README.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Delay before the response headers.
    pub latency: Duration,
    /// Extra uniform random delay in `[0, jitter]` before the headers.
    pub jitter: Duration,
    /// Streams: delay between the headers and the first event.
    pub ttft: Duration,
    /// Streams: delay between events.
    pub chunk_delay: Duration,
    /// Answer with this status (an error in the provider's shape).
    pub status: Option<u16>,
    /// `Retry-After` value sent with an error status, verbatim.
    pub retry_after: Option<String>,
    /// Fail the first N requests of an `x-sim-key` (without one: of the model), then succeed.
    pub fail_times: Option<u64>,
    /// Status of those failures (default 500).
    pub fail_status: Option<u16>,
    /// Never answer.
    pub hang: bool,
    /// Cut the connection after N events (non-streamed: halfway through the body).
    pub disconnect_after: Option<usize>,
    /// Stop sending (connection left open) after N events.
    pub stall_after: Option<usize>,
    /// Insert a malformed event after N events.
    pub malformed_after: Option<usize>,
    /// Send an in-stream error event after N events, then end the stream.
    pub stream_error_after: Option<usize>,
    /// Non-streamed: a 200 whose body is not JSON.
    pub garbage: bool,
    /// Reply length in tokens (still capped by the request's max tokens).
    pub reply_tokens: Option<u32>,
    /// Force (`Some(true)` or a tool name) or forbid (`Some(false)`) a tool call.
    pub tool_call: Option<ToolCallMode>,
}

/// Forced tool-call behaviour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolCallMode {
    /// Call a tool (the named one, or the first).
    Force(Option<String>),
    /// Never call a tool.
    Forbid,
}

impl Faults {
    /// Sets the fault named `name` (a header name without `x-sim-`) from its text value.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let value = value.trim();
        let bad = || format!("x-sim-{name}: invalid value `{value}`");
        let ms = || {
            value
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| bad())
        };
        let count = || value.parse::<usize>().map_err(|_| bad());
        let flag = || match value {
            "1" | "true" | "yes" => Ok(true),
            "0" | "false" | "no" => Ok(false),
            _ => Err(bad()),
        };
        match name {
            "latency-ms" => self.latency = ms()?,
            "jitter-ms" => self.jitter = ms()?,
            "ttft-ms" => self.ttft = ms()?,
            "chunk-delay-ms" => self.chunk_delay = ms()?,
            "status" => self.status = Some(status(value).ok_or_else(bad)?),
            "retry-after" => self.retry_after = Some(value.to_owned()),
            "fail-times" => self.fail_times = Some(value.parse().map_err(|_| bad())?),
            "fail-status" => self.fail_status = Some(status(value).ok_or_else(bad)?),
            "hang" => self.hang = flag()?,
            "disconnect-after" => self.disconnect_after = Some(count()?),
            "stall-after" => self.stall_after = Some(count()?),
            "malformed-after" => self.malformed_after = Some(count()?),
            "stream-error-after" => self.stream_error_after = Some(count()?),
            "garbage" => self.garbage = flag()?,
            "reply-tokens" => self.reply_tokens = Some(value.parse().map_err(|_| bad())?),
            "tool-call" => {
                self.tool_call = Some(match value {
                    "0" | "false" | "no" => ToolCallMode::Forbid,
                    "1" | "true" | "yes" => ToolCallMode::Force(None),
                    tool => ToolCallMode::Force(Some(tool.to_owned())),
                })
            }
            // Not faults: read elsewhere.
            "key" => {}
            _ => return Err(format!("unknown header x-sim-{name}")),
        }
        Ok(())
    }
}

fn status(value: &str) -> Option<u16> {
    value.parse().ok().filter(|s| (100..=599).contains(s))
}

/// `MODEL:NAME=VALUE[,NAME=VALUE...]`, e.g. `flaky:status=503,retry-after=2`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelMode {
    /// The model.
    pub model: String,
    /// Its faults.
    pub faults: Faults,
}

impl FromStr for ModelMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (model, spec) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}`: expected MODEL:NAME=VALUE[,NAME=VALUE...]"))?;
        let mut faults = Faults::default();
        for pair in spec.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, "1"));
            faults.set(name.trim(), value)?;
        }
        Ok(Self {
            model: model.to_owned(),
            faults,
        })
    }
}

/// Parses `250`, `250ms` or `2s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let bad = || format!("`{s}`: expected a duration such as 250ms or 2s");
    if let Some(ms) = s.strip_suffix("ms") {
        return ms
            .trim()
            .parse()
            .map(Duration::from_millis)
            .map_err(|_| bad());
    }
    if let Some(secs) = s.strip_suffix('s') {
        return secs
            .trim()
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| bad());
    }
    s.parse().map(Duration::from_millis).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn model_modes_parse_with_the_header_vocabulary() {
        let mode: ModelMode = "flaky:status=503, retry-after=2,hang".parse().unwrap();
        assert_eq!(mode.model, "flaky");
        assert_eq!(mode.faults.status, Some(503));
        assert_eq!(mode.faults.retry_after.as_deref(), Some("2"));
        assert!(mode.faults.hang);
        assert!("nocolon".parse::<ModelMode>().is_err());
        assert!("m:status=999".parse::<ModelMode>().is_err());
        assert!("m:colour=red".parse::<ModelMode>().is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_millis(7)));
        assert!(parse_duration("fast").is_err());
    }
}
