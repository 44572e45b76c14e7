//! The resilience engine driving real adapters against keel-sim's fault modes over HTTP:
//! retries honouring `Retry-After`, fallbacks, timeouts and streams. Breakers:
//! `gateway_breakers.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_core::gateway::Policy;
use keel_core::manifest::ProviderKind;
use keel_server::gateway::providers::{
    build, ApiKey, ClientSettings, UpstreamClient, UpstreamErrorKind,
};
use keel_server::gateway::resilience::{Clock, Engine, Target};
use keel_sim::SimHandle;
use tokio::time::Instant;

use crate::gateway_sim::{ask, config, drain, provider, sim, text};

/// Every mode these tests use.
pub(crate) const MODES: [&str; 9] = [
    "limited:status=429,retry-after=30",
    "limited-once:fail-times=1,fail-status=429,retry-after=1",
    "flaky:fail-times=1,fail-status=500",
    "broken:status=500",
    "bad-request:status=400",
    "hang:hang=1",
    "slow-start:ttft-ms=5000",
    "role-then-stall:stall-after=1",
    "cut-late:disconnect-after=5",
];

pub(crate) fn targets(sim: &SimHandle, kind: ProviderKind, models: &[&str]) -> Vec<Target> {
    models
        .iter()
        .enumerate()
        .map(|(i, model)| Target::new(format!("r/{i}-{model}"), provider(kind, sim, model)))
        .collect()
}

pub(crate) fn policy() -> Policy {
    Policy {
        attempts: 3,
        attempt_timeout: Duration::from_secs(5),
        ttft_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(20),
        ..Policy::default()
    }
}

pub(crate) fn soon() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

/// A clock the test moves by hand, for the breakers.
pub(crate) fn manual_clock() -> (Clock, Arc<Mutex<std::time::Instant>>) {
    let now = Arc::new(Mutex::new(std::time::Instant::now()));
    let read = Arc::clone(&now);
    (Arc::new(move || *read.lock().unwrap()), now)
}

pub(crate) fn calls(sim: &SimHandle, model: &str) -> u64 {
    sim.stats().by_model.get(model).copied().unwrap_or(0)
}

#[tokio::test]
async fn a_429_on_the_last_deployment_is_retried_after_exactly_its_retry_after() {
    let sim = sim(&MODES).await;
    for kind in [ProviderKind::OpenAi, ProviderKind::Anthropic] {
        sim.reset();
        let t = targets(&sim, kind, &["limited-once"]);
        let (completion, trace) = Engine::default()
            .chat(&t, &ask("hello"), &policy(), soon())
            .await
            .unwrap();
        assert!(!completion.choices.is_empty());
        assert_eq!((trace.retries, trace.fallbacks), (1, 0), "{kind:?}");
        // Waited exactly the Retry-After: not multiplied, not jittered.
        assert_eq!(trace.waited, Duration::from_secs(1));
        let first = trace.attempts[0].error.as_ref().unwrap();
        assert_eq!(first.kind, UpstreamErrorKind::RateLimited);
        let arrivals = sim.arrivals("limited-once");
        assert_eq!(arrivals.len(), 2);
        assert!(arrivals[1] - arrivals[0] >= Duration::from_secs(1));
    }
}

#[tokio::test]
async fn an_http_date_retry_after_is_honoured() {
    // The asctime form (mode specs are comma-separated), two seconds ahead.
    let at = chrono::Utc::now() + chrono::Duration::seconds(2);
    let mode = format!(
        "dated:fail-times=1,fail-status=429,retry-after={}",
        at.format("%a %b %e %H:%M:%S %Y")
    );
    let sim = sim(&[&mode]).await;
    let t = targets(&sim, ProviderKind::OpenAiCompatible, &["dated"]);
    let (_, trace) = Engine::default()
        .chat(&t, &ask("hello"), &policy(), soon())
        .await
        .unwrap();
    assert_eq!(trace.retries, 1);
    // Whole-second dates: at least one second is left when the 429 is read.
    assert!(trace.waited >= Duration::from_secs(1), "{:?}", trace.waited);
    let arrivals = sim.arrivals("dated");
    assert!(arrivals[1] - arrivals[0] >= trace.waited);
}

#[tokio::test]
async fn a_429_falls_back_first_without_waiting() {
    let sim = sim(&MODES).await;
    let t = targets(&sim, ProviderKind::OpenAi, &["limited", "sim-small"]);
    let (_, trace) = Engine::default()
        .chat(&t, &ask("hello"), &policy(), soon())
        .await
        .unwrap();
    assert_eq!(trace.served_by.as_deref(), Some("r/1-sim-small"));
    assert_eq!((trace.retries, trace.fallbacks), (0, 1));
    assert_eq!(trace.waited, Duration::ZERO);
    assert_eq!((calls(&sim, "limited"), calls(&sim, "sim-small")), (1, 1));
}

#[tokio::test]
async fn a_retry_after_beyond_the_deadline_fails_at_once() {
    let sim = sim(&MODES).await;
    let t = targets(&sim, ProviderKind::OpenAi, &["limited"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let failure = Engine::default()
        .chat(&t, &ask("hello"), &policy(), deadline)
        .await
        .unwrap_err();
    assert_eq!(failure.error.kind, UpstreamErrorKind::RateLimited);
    assert_eq!(failure.error.retry_after, Some(Duration::from_secs(30)));
    assert_eq!(
        (failure.trace.retries, failure.trace.waited),
        (0, Duration::ZERO)
    );
    assert_eq!(calls(&sim, "limited"), 1);
    assert!(Instant::now() < deadline, "failed at once, no sleep");
}

#[tokio::test]
async fn a_500_then_success_is_retried_on_the_same_deployment() {
    let sim = sim(&MODES).await;
    let t = targets(&sim, ProviderKind::Anthropic, &["flaky", "sim-small"]);
    let (completion, trace) = Engine::default()
        .chat(&t, &ask("hello"), &policy(), soon())
        .await
        .unwrap();
    assert_eq!(trace.served_by.as_deref(), Some("r/0-flaky"));
    assert_eq!((trace.retries, trace.fallbacks), (1, 0));
    assert!(
        trace.waited <= Duration::from_millis(200),
        "full jitter below the base"
    );
    assert_eq!((calls(&sim, "flaky"), calls(&sim, "sim-small")), (2, 0));
    assert!(completion.usage.unwrap().completion_tokens > 0);
}

#[tokio::test]
async fn a_hang_times_out_per_attempt_then_falls_back() {
    let sim = sim(&MODES).await;
    let t = targets(&sim, ProviderKind::OpenAi, &["hang", "sim-small"]);
    let policy = Policy {
        attempts: 1,
        attempt_timeout: Duration::from_millis(300),
        ..policy()
    };
    let (_, trace) = Engine::default()
        .chat(&t, &ask("hello"), &policy, soon())
        .await
        .unwrap();
    assert_eq!(trace.served_by.as_deref(), Some("r/1-sim-small"));
    let first = trace.attempts[0].error.as_ref().unwrap();
    assert_eq!(first.kind, UpstreamErrorKind::Timeout);
    assert!(trace.attempts[0].elapsed >= Duration::from_millis(300));
    assert_eq!(trace.fallbacks, 1);
}

#[tokio::test]
async fn a_stream_that_does_not_start_in_time_falls_back() {
    let sim = sim(&MODES).await;
    let policy = Policy {
        attempts: 1,
        ttft_timeout: Duration::from_millis(300),
        ..policy()
    };
    // No first event at all, and a role chunk followed by silence: neither is output.
    for slow in ["slow-start", "role-then-stall"] {
        let t = targets(&sim, ProviderKind::OpenAi, &[slow, "sim-small"]);
        let (stream, trace) = Engine::default()
            .chat_stream(&t, &ask("hello there"), &policy, soon())
            .await
            .unwrap();
        assert_eq!(trace.served_by.as_deref(), Some("r/1-sim-small"), "{slow}");
        let first = trace.attempts[0].error.as_ref().unwrap();
        assert_eq!(first.kind, UpstreamErrorKind::Timeout, "{slow}");
        assert!(!first.output_produced);
        let (chunks, error) = drain(stream).await;
        assert!(error.is_none(), "{error:?}");
        assert!(text(&chunks).starts_with("sim reply to hello there"));
        // Exactly one role chunk reached the caller, from the deployment that served.
        let roles = chunks
            .iter()
            .filter(|c| c.choices.iter().any(|c| c.delta.role.is_some()))
            .count();
        assert_eq!(roles, 1, "{slow}");
    }
}

#[tokio::test]
async fn a_stream_cut_after_output_ends_with_an_error_and_is_not_retried() {
    let sim = sim(&MODES).await;
    for kind in [ProviderKind::OpenAi, ProviderKind::Anthropic] {
        sim.reset();
        let t = targets(&sim, kind, &["cut-late", "sim-small"]);
        let (stream, trace) = Engine::default()
            .chat_stream(&t, &ask("hello"), &policy(), soon())
            .await
            .unwrap();
        assert_eq!(trace.served_by.as_deref(), Some("r/0-cut-late"));
        let (chunks, error) = drain(stream).await;
        assert!(!text(&chunks).is_empty(), "{kind:?}");
        let error = error.expect("the cut ends the stream with an error");
        assert_eq!(error.kind, UpstreamErrorKind::StreamCut, "{kind:?}");
        assert!(error.output_produced && !error.is_retryable());
        assert_eq!((calls(&sim, "cut-late"), calls(&sim, "sim-small")), (1, 0));
    }
}

#[tokio::test]
async fn a_rejected_request_is_neither_retried_nor_falls_back() {
    let sim = sim(&MODES).await;
    let t = targets(&sim, ProviderKind::OpenAi, &["bad-request", "sim-small"]);
    let failure = Engine::default()
        .chat(&t, &ask("hello"), &policy(), soon())
        .await
        .unwrap_err();
    assert_eq!(
        (failure.error.kind, failure.error.status),
        (UpstreamErrorKind::Rejected, Some(400))
    );
    assert_eq!((failure.trace.retries, failure.trace.fallbacks), (0, 0));
    assert_eq!(
        (calls(&sim, "bad-request"), calls(&sim, "sim-small")),
        (1, 0)
    );
}

#[tokio::test]
async fn a_refused_key_falls_back_without_a_retry() {
    let sim = sim(&MODES).await;
    let client = UpstreamClient::new(ClientSettings::default()).unwrap();
    let mut wrong = config(ProviderKind::Anthropic, &sim, "sim-large");
    wrong.api_key = Some(ApiKey::new("sk-wrong"));
    let t = vec![
        Target::new("r/0", build(wrong, &client).unwrap()),
        Target::new("r/1", provider(ProviderKind::OpenAi, &sim, "sim-small")),
    ];
    let (_, trace) = Engine::default()
        .chat(&t, &ask("hello"), &policy(), soon())
        .await
        .unwrap();
    assert_eq!(trace.served_by.as_deref(), Some("r/1"));
    assert_eq!((trace.retries, trace.fallbacks), (0, 1));
    let first = trace.attempts[0].error.as_ref().unwrap();
    assert_eq!(first.kind, UpstreamErrorKind::Auth);
    assert_eq!((calls(&sim, "sim-large"), calls(&sim, "sim-small")), (1, 1));
}

#[tokio::test]
async fn retries_stop_before_the_total_deadline() {
    let sim = sim(&["down:status=503,retry-after=1"]).await;
    let t = targets(&sim, ProviderKind::OpenAi, &["down"]);
    let policy = Policy {
        attempts: 10,
        ..policy()
    };
    let deadline = Instant::now() + Duration::from_millis(2_500);
    let failure = Engine::default()
        .chat(&t, &ask("hello"), &policy, deadline)
        .await
        .unwrap_err();
    // Waits of exactly 1s each: a third wait would end past the deadline, so it is not taken.
    assert!(Instant::now() < deadline);
    assert_eq!(failure.error.status, Some(503));
    let made = calls(&sim, "down");
    assert!((1..=3).contains(&made), "{made}");
    assert_eq!(u64::from(failure.trace.retries), made - 1);
    assert_eq!(failure.trace.waited, Duration::from_secs(made - 1));
}
