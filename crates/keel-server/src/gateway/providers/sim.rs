//! The in-process simulator (`provider = "sim"` without `base_url`): keel-sim's
//! deterministic OpenAI completions and streams, generated in this process with no network,
//! so a bare `keel serve` answers chat completions offline. The simulator's per-model modes
//! apply (latency, jitter, time to first token, chunk delay, error status with
//! `Retry-After`, fail-times, hang, disconnect, stall, malformed chunk, in-stream error,
//! garbage), as errors of the same kinds the HTTP adapters report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use keel_core::gateway::retry::parse_retry_after;
use keel_core::gateway::{ChatChunk, ChatCompletion, ChatRequest};
use keel_core::manifest::ProviderKind;
use keel_sim::{Faults, OpenAiChat, SimConfig};
use serde_json::Value;
use tokio::time::{timeout_at, Instant};

use super::error::UpstreamErrorKind;
use super::http::{cut, invalid, timeout};
use super::{track_output, ChunkStream, Provider, UpstreamError};

const NAME: &str = "sim";

/// An in-process simulated deployment.
#[derive(Debug)]
pub struct InProcessSim {
    model: String,
    config: Arc<SimConfig>,
    /// Calls so far, for `fail-times`.
    calls: AtomicU64,
    ids: AtomicU64,
}

/// A request ready to answer, with the faults that apply to it.
struct Prepared {
    chat: OpenAiChat,
    faults: Faults,
    id: String,
    created: i64,
}

impl InProcessSim {
    /// A simulated `model` with the simulator's defaults (16-token replies, no faults).
    pub fn new(model: &str) -> Self {
        Self::with_config(model, SimConfig::default())
    }

    /// A simulated `model` with `config`'s reply length, global faults and model modes.
    pub fn with_config(model: &str, config: SimConfig) -> Self {
        Self {
            model: model.to_owned(),
            config: Arc::new(config),
            calls: AtomicU64::new(0),
            ids: AtomicU64::new(0),
        }
    }

    /// Reads the request as the simulator does and applies the faults that come before an
    /// answer (delays, hang, error statuses).
    async fn prepare(
        &self,
        request: &ChatRequest,
        stream: bool,
        deadline: Instant,
    ) -> Result<Prepared, UpstreamError> {
        let mut value = serde_json::to_value(request)
            .map_err(|e| UpstreamError::new(NAME, UpstreamErrorKind::Rejected, e.to_string()))?;
        value["model"] = Value::String(self.model.clone());
        if stream {
            value["stream"] = Value::Bool(true);
            // Always ask for usage, as every adapter does.
            value["stream_options"] = serde_json::json!({"include_usage": true});
        } else if let Some(object) = value.as_object_mut() {
            object.remove("stream");
            object.remove("stream_options");
        }
        let chat =
            OpenAiChat::from_value(value).map_err(|m| UpstreamError::from_status(NAME, 400, m))?;
        chat.validate()
            .map_err(|(status, m)| UpstreamError::from_status(NAME, status, m))?;
        let faults = self.config.faults_for_model(&self.model).clone();
        let call = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        let wait = async {
            let jitter = faults.jitter.as_millis() as u64;
            let jitter = if jitter == 0 {
                0
            } else {
                rand::random::<u64>() % (jitter + 1)
            };
            sleep(faults.latency + Duration::from_millis(jitter)).await;
            if faults.hang {
                std::future::pending::<()>().await;
            }
        };
        timeout_at(deadline, wait)
            .await
            .map_err(|_| timeout(NAME))?;
        let failing = faults.status.or_else(|| {
            let n = faults.fail_times?;
            (call <= n).then(|| faults.fail_status.unwrap_or(500))
        });
        if let Some(status) = failing {
            let retry_after = faults
                .retry_after
                .as_deref()
                .and_then(|v| parse_retry_after(v, SystemTime::now()));
            return Err(
                UpstreamError::from_status(NAME, status, "sim: injected failure")
                    .with_retry_after(retry_after),
            );
        }
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        Ok(Prepared {
            chat,
            faults,
            id: format!("chatcmpl-keelsim{n:016x}"),
            created: chrono::Utc::now().timestamp(),
        })
    }

    fn reply_tokens(&self, faults: &Faults) -> u32 {
        faults.reply_tokens.unwrap_or(self.config.reply_tokens)
    }
}

#[async_trait]
impl Provider for InProcessSim {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Sim
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        deadline: Instant,
    ) -> Result<ChatCompletion, UpstreamError> {
        let p = self.prepare(request, false, deadline).await?;
        if p.faults.garbage {
            return Err(invalid(NAME, "body is not the expected JSON"));
        }
        if p.faults.disconnect_after.is_some() {
            return Err(cut(NAME, "body cut"));
        }
        let reply = p
            .chat
            .reply(self.reply_tokens(&p.faults), p.faults.tool_call.as_ref());
        let completion = reply.completion(&p.id, p.created, &self.model);
        serde_json::from_value(completion).map_err(|e| invalid(NAME, e.to_string()))
    }

    async fn chat_stream(
        &self,
        request: &ChatRequest,
        deadline: Instant,
    ) -> Result<ChunkStream, UpstreamError> {
        let p = self.prepare(request, true, deadline).await?;
        if p.faults.garbage {
            return Err(invalid(NAME, "expected an event stream"));
        }
        let reply = p
            .chat
            .reply(self.reply_tokens(&p.faults), p.faults.tool_call.as_ref());
        let chunks = reply.chunks(&p.id, p.created, &self.model, true);
        let state = StreamState {
            chunks: chunks.into_iter(),
            sent: 0,
            faults: p.faults,
            deadline,
            done: false,
        };
        Ok(track_output(stream::unfold(state, next_chunk).boxed()))
    }
}

/// Sleeps `delay`, returning at once for zero (a zero tokio sleep still waits for the next
/// timer tick, about a millisecond).
async fn sleep(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

struct StreamState {
    chunks: std::vec::IntoIter<Value>,
    sent: usize,
    faults: Faults,
    deadline: Instant,
    done: bool,
}

/// The next chunk, after its delay, or the fault due at this point of the stream.
async fn next_chunk(
    mut st: StreamState,
) -> Option<(Result<ChatChunk, UpstreamError>, StreamState)> {
    if st.done {
        return None;
    }
    let delay = if st.sent == 0 {
        st.faults.ttft
    } else {
        st.faults.chunk_delay
    };
    let at = Some(st.sent);
    let stall = at == st.faults.stall_after;
    let wait = async {
        sleep(delay).await;
        if stall {
            std::future::pending::<()>().await;
        }
    };
    let fault = if timeout_at(st.deadline, wait).await.is_err() {
        Some(timeout(NAME))
    } else if at == st.faults.disconnect_after {
        Some(cut(NAME, "stream cut: sim: disconnect"))
    } else if at == st.faults.malformed_after {
        Some(invalid(NAME, "malformed stream chunk"))
    } else if at == st.faults.stream_error_after {
        Some(UpstreamError::new(
            NAME,
            UpstreamErrorKind::Unavailable,
            "sim: stream error",
        ))
    } else {
        None
    };
    if let Some(error) = fault {
        st.done = true;
        return Some((Err(error), st));
    }
    let chunk = st.chunks.next()?;
    st.sent += 1;
    let item = serde_json::from_value(chunk).map_err(|e| invalid(NAME, e.to_string()));
    Some((item, st))
}
