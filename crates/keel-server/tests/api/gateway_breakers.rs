//! Circuit breakers in the resilience engine, against keel-sim over HTTP, on a clock the
//! tests move by hand: opening, skipping, half-open probes (also under parallel calls).

use std::sync::Arc;
use std::time::Duration;

use keel_core::gateway::{BreakerConfig, BreakerState, Policy};
use keel_core::manifest::ProviderKind;
use keel_server::gateway::providers::UpstreamErrorKind;
use keel_server::gateway::resilience::Engine;

use crate::gateway_resilience::{calls, manual_clock, policy, soon, targets, MODES};
use crate::gateway_sim::{ask, sim};

fn breaker_policy() -> Policy {
    Policy {
        attempts: 1,
        breaker: BreakerConfig {
            failure_rate_percent: 50,
            window: Duration::from_secs(60),
            min_calls: 2,
            open_for: Duration::from_secs(30),
            probes: 1,
        },
        ..policy()
    }
}

#[tokio::test]
async fn an_open_breaker_skips_its_deployment() {
    let sim = sim(&MODES).await;
    let (clock, _) = manual_clock();
    let engine = Engine::with_clock(clock);
    let t = targets(&sim, ProviderKind::OpenAi, &["broken", "sim-small"]);
    for _ in 0..2 {
        let (_, trace) = engine
            .chat(&t, &ask("hello"), &breaker_policy(), soon())
            .await
            .unwrap();
        assert_eq!(trace.served_by.as_deref(), Some("r/1-sim-small"));
    }
    assert_eq!(
        engine.breakers().state("r/0-broken"),
        Some(BreakerState::Open)
    );
    sim.reset();
    let (_, trace) = engine
        .chat(&t, &ask("hello"), &breaker_policy(), soon())
        .await
        .unwrap();
    assert_eq!(trace.skipped, ["r/0-broken"]);
    assert_eq!(trace.attempts.len(), 1);
    assert_eq!((calls(&sim, "broken"), calls(&sim, "sim-small")), (0, 1));
}

#[tokio::test]
async fn every_breaker_open_is_unavailable_without_any_call() {
    let sim = sim(&MODES).await;
    let (clock, _) = manual_clock();
    let engine = Engine::with_clock(clock);
    let t = targets(&sim, ProviderKind::OpenAi, &["broken"]);
    for _ in 0..2 {
        let failure = engine
            .chat(&t, &ask("hello"), &breaker_policy(), soon())
            .await
            .unwrap_err();
        assert_eq!(failure.error.status, Some(500));
    }
    sim.reset();
    let failure = engine
        .chat(&t, &ask("hello"), &breaker_policy(), soon())
        .await
        .unwrap_err();
    assert!(failure.trace.all_open);
    assert_eq!(failure.error.kind, UpstreamErrorKind::Unavailable);
    assert_eq!(failure.error.kind.code(), "upstream_unavailable");
    assert_eq!(failure.error.status, None);
    assert_eq!(calls(&sim, "broken"), 0);
}

#[tokio::test]
async fn a_half_open_probe_that_succeeds_closes_the_breaker() {
    let sim = sim(&["recovering:fail-times=2,fail-status=503"]).await;
    let (clock, now) = manual_clock();
    let engine = Engine::with_clock(clock);
    let t = targets(&sim, ProviderKind::OpenAi, &["recovering"]);
    let policy = breaker_policy();
    for _ in 0..2 {
        engine
            .chat(&t, &ask("hi"), &policy, soon())
            .await
            .unwrap_err();
    }
    assert_eq!(
        engine.breakers().state("r/0-recovering"),
        Some(BreakerState::Open)
    );
    // Still open just before open_for: refused without a call.
    *now.lock().unwrap() += Duration::from_secs(29);
    let failure = engine
        .chat(&t, &ask("hi"), &policy, soon())
        .await
        .unwrap_err();
    assert!(failure.trace.all_open);
    assert_eq!(calls(&sim, "recovering"), 2);
    *now.lock().unwrap() += Duration::from_secs(1);
    assert_eq!(
        engine.breakers().state("r/0-recovering"),
        Some(BreakerState::HalfOpen)
    );
    let (_, trace) = engine.chat(&t, &ask("hi"), &policy, soon()).await.unwrap();
    assert_eq!(trace.served_by.as_deref(), Some("r/0-recovering"));
    assert_eq!(
        engine.breakers().state("r/0-recovering"),
        Some(BreakerState::Closed)
    );
    assert_eq!(calls(&sim, "recovering"), 3);
}

#[tokio::test]
async fn a_failed_half_open_probe_opens_the_breaker_again() {
    let sim = sim(&MODES).await;
    let (clock, now) = manual_clock();
    let engine = Engine::with_clock(clock);
    let t = targets(&sim, ProviderKind::OpenAi, &["broken"]);
    let policy = breaker_policy();
    for _ in 0..2 {
        engine
            .chat(&t, &ask("hi"), &policy, soon())
            .await
            .unwrap_err();
    }
    *now.lock().unwrap() += Duration::from_secs(30);
    let failure = engine
        .chat(&t, &ask("hi"), &policy, soon())
        .await
        .unwrap_err();
    assert!(!failure.trace.all_open, "the probe was sent");
    assert_eq!(calls(&sim, "broken"), 3);
    assert_eq!(
        engine.breakers().state("r/0-broken"),
        Some(BreakerState::Open)
    );
}

#[tokio::test]
async fn parallel_calls_through_a_half_open_breaker_send_only_its_probes() {
    let sim = sim(&MODES).await;
    let (clock, now) = manual_clock();
    let engine = Engine::with_clock(clock);
    let t = Arc::new(targets(&sim, ProviderKind::OpenAi, &["hang", "sim-small"]));
    let policy = Policy {
        attempt_timeout: Duration::from_secs(1),
        breaker: BreakerConfig {
            probes: 2,
            ..breaker_policy().breaker
        },
        ..breaker_policy()
    };
    let parallel = |n: usize| {
        let calls: Vec<_> = (0..n)
            .map(|_| {
                let (engine, t) = (engine.clone(), Arc::clone(&t));
                tokio::spawn(async move { engine.chat(&t, &ask("hi"), &policy, soon()).await })
            })
            .collect();
        futures::future::join_all(calls)
    };
    for call in parallel(2).await {
        assert_eq!(call.unwrap().unwrap().1.fallbacks, 1);
    }
    assert_eq!(
        engine.breakers().state("r/0-hang"),
        Some(BreakerState::Open)
    );
    *now.lock().unwrap() += Duration::from_secs(30);
    sim.reset();
    let traces: Vec<_> = parallel(8)
        .await
        .into_iter()
        .map(|call| call.unwrap().unwrap().1)
        .collect();
    // Every call was served by the fallback; exactly the two probes reached the hanging
    // deployment, and their timeouts opened the breaker again.
    assert!(traces
        .iter()
        .all(|t| t.served_by.as_deref() == Some("r/1-sim-small")));
    let probed = traces.iter().filter(|t| t.skipped.is_empty()).count();
    assert_eq!(probed, 2);
    assert_eq!((calls(&sim, "hang"), calls(&sim, "sim-small")), (2, 8));
    assert_eq!(
        engine.breakers().state("r/0-hang"),
        Some(BreakerState::Open)
    );
}

#[tokio::test]
async fn a_probe_stream_dropped_early_gives_its_slot_back() {
    let sim = sim(&["recovering:fail-times=2,fail-status=503"]).await;
    let (clock, now) = manual_clock();
    let engine = Engine::with_clock(clock);
    let t = targets(&sim, ProviderKind::OpenAi, &["recovering"]);
    let policy = breaker_policy();
    for _ in 0..2 {
        engine
            .chat(&t, &ask("hi"), &policy, soon())
            .await
            .unwrap_err();
    }
    *now.lock().unwrap() += Duration::from_secs(30);
    let (stream, _) = engine
        .chat_stream(&t, &ask("hi"), &policy, soon())
        .await
        .unwrap();
    // The probe is in flight: no other call gets through.
    let refused = engine
        .chat(&t, &ask("hi"), &policy, soon())
        .await
        .unwrap_err();
    assert!(refused.trace.all_open);
    // The client leaves: that says nothing about the deployment, so the slot is free again.
    drop(stream);
    let id = "r/0-recovering";
    assert_eq!(engine.breakers().state(id), Some(BreakerState::HalfOpen));
    let (stream, _) = engine
        .chat_stream(&t, &ask("hi"), &policy, soon())
        .await
        .unwrap();
    let (chunks, error) = crate::gateway_sim::drain(stream).await;
    assert!(error.is_none() && !chunks.is_empty());
    // A probe stream that ran to its end closes the breaker.
    assert_eq!(engine.breakers().state(id), Some(BreakerState::Closed));
    assert_eq!(calls(&sim, "recovering"), 4);
}
