//! Upstream faults, as keel-sim injects them, classified by every adapter.

use std::time::Duration;

use futures::StreamExt;
use keel_core::manifest::ProviderKind;
use keel_server::gateway::providers::{build, ClientSettings, UpstreamClient, UpstreamErrorKind};

use crate::gateway_sim::{ask, config, drain, provider, sim, text, within, KINDS};

const MODES: [&str; 12] = [
    "limited:status=429,retry-after=2",
    // The asctime form of an HTTP-date: model-mode specs are comma-separated.
    "limited-date:status=429,retry-after=Wed Oct 21 07:28:00 2099",
    "broken:status=500",
    "overloaded:status=529",
    "bad-request:status=400",
    "hang:hang=1",
    "garbage:garbage=1",
    "cut-early:disconnect-after=0",
    "cut-late:disconnect-after=5",
    "stall:stall-after=3",
    "malformed:malformed-after=2",
    "stream-error:stream-error-after=3",
];

#[tokio::test]
async fn error_statuses_are_classified_with_retry_after() {
    let sim = sim(&MODES).await;
    for kind in KINDS {
        let call = |model: &'static str| {
            let p = provider(kind, &sim, model);
            async move { p.chat(&ask("hi"), within(5000)).await.unwrap_err() }
        };
        let limited = call("limited").await;
        assert_eq!(
            (limited.kind, limited.status),
            (UpstreamErrorKind::RateLimited, Some(429)),
            "{kind:?}"
        );
        assert_eq!(limited.retry_after, Some(Duration::from_secs(2)));
        assert!(limited.is_retryable() && !limited.output_produced);

        let dated = call("limited-date").await;
        assert!(
            dated.retry_after.unwrap() > Duration::from_secs(3600),
            "{kind:?}"
        );

        for model in ["broken", "overloaded"] {
            let e = call(model).await;
            assert_eq!(e.kind, UpstreamErrorKind::Unavailable, "{kind:?} {model}");
            assert!(e.is_retryable() && e.may_fall_back());
        }
        let bad = call("bad-request").await;
        assert_eq!(bad.kind, UpstreamErrorKind::Rejected);
        assert!(!bad.is_retryable() && !bad.may_fall_back() && bad.caused_by_request());
        assert!(!bad.message.contains("sk-test-key"));
    }
    // Exactly one upstream call per attempt: adapters never retry on their own.
    assert_eq!(sim.stats().by_model["limited"], 3);
}

#[tokio::test]
async fn a_refused_key_is_an_auth_error() {
    let sim = sim(&[]).await;
    let client = UpstreamClient::new(ClientSettings::default()).unwrap();
    for kind in KINDS {
        let mut cfg = config(kind, &sim, "sim-small");
        cfg.api_key = Some(keel_server::gateway::providers::ApiKey::new("sk-wrong"));
        let e = build(cfg, &client)
            .unwrap()
            .chat(&ask("hi"), within(5000))
            .await
            .unwrap_err();
        assert_eq!(e.kind, UpstreamErrorKind::Auth, "{kind:?}");
        assert!(!e.is_retryable() && e.may_fall_back());
    }
}

#[tokio::test]
async fn a_hanging_upstream_hits_the_deadline() {
    let sim = sim(&MODES).await;
    for kind in KINDS {
        let p = provider(kind, &sim, "hang");
        let e = p.chat(&ask("hi"), within(200)).await.unwrap_err();
        assert_eq!(e.kind, UpstreamErrorKind::Timeout, "{kind:?}");
        assert!(e.is_retryable());
        let e = p.chat_stream(&ask("hi"), within(200)).await.err().unwrap();
        assert_eq!(e.kind, UpstreamErrorKind::Timeout, "{kind:?}");
    }
}

#[tokio::test]
async fn a_stream_that_stalls_mid_way_times_out_after_output() {
    let sim = sim(&MODES).await;
    for kind in KINDS {
        let p = provider(kind, &sim, "stall");
        let (chunks, error) = drain(p.chat_stream(&ask("hi"), within(300)).await.unwrap()).await;
        let error = error.unwrap();
        assert!(!chunks.is_empty(), "{kind:?}");
        assert_eq!(error.kind, UpstreamErrorKind::Timeout, "{kind:?}");
        assert!(error.output_produced && !error.is_retryable());
    }
}

#[tokio::test]
async fn a_disconnect_before_output_is_retryable_and_after_output_is_not() {
    let sim = sim(&MODES).await;
    for kind in KINDS {
        let early = provider(kind, &sim, "cut-early");
        let (chunks, error) =
            drain(early.chat_stream(&ask("hi"), within(5000)).await.unwrap()).await;
        let error = error.unwrap();
        assert!(chunks.is_empty(), "{kind:?}");
        assert_eq!(error.kind, UpstreamErrorKind::StreamCut, "{kind:?}");
        assert!(!error.output_produced && error.is_retryable());

        let late = provider(kind, &sim, "cut-late");
        let (chunks, error) =
            drain(late.chat_stream(&ask("hi"), within(5000)).await.unwrap()).await;
        let error = error.unwrap();
        assert!(!text(&chunks).is_empty(), "{kind:?}");
        assert_eq!(error.kind, UpstreamErrorKind::StreamCut, "{kind:?}");
        assert!(error.output_produced && !error.is_retryable() && !error.may_fall_back());

        // Non-streamed: the body is cut halfway.
        let e = late.chat(&ask("hi"), within(5000)).await.unwrap_err();
        assert_eq!(e.kind, UpstreamErrorKind::StreamCut, "{kind:?}");
        assert!(e.is_retryable());
    }
    assert_eq!(sim.stats().streams_cut, 6);
}

#[tokio::test]
async fn garbage_and_malformed_chunks_are_invalid_responses() {
    let sim = sim(&MODES).await;
    for kind in KINDS {
        let garbage = provider(kind, &sim, "garbage");
        let e = garbage.chat(&ask("hi"), within(5000)).await.unwrap_err();
        assert_eq!(e.kind, UpstreamErrorKind::InvalidResponse, "{kind:?}");
        assert!(e.is_retryable());
        let e = garbage
            .chat_stream(&ask("hi"), within(5000))
            .await
            .err()
            .unwrap();
        assert_eq!(e.kind, UpstreamErrorKind::InvalidResponse, "{kind:?}");

        let malformed = provider(kind, &sim, "malformed");
        let (chunks, error) = drain(
            malformed
                .chat_stream(&ask("hi"), within(5000))
                .await
                .unwrap(),
        )
        .await;
        let error = error.unwrap();
        assert!(!chunks.is_empty());
        assert_eq!(error.kind, UpstreamErrorKind::InvalidResponse, "{kind:?}");
        assert!(error.output_produced);
    }
}

#[tokio::test]
async fn an_error_event_mid_stream_is_an_unavailable_upstream() {
    let sim = sim(&MODES).await;
    for kind in KINDS {
        let p = provider(kind, &sim, "stream-error");
        let (_, error) = drain(p.chat_stream(&ask("hi"), within(5000)).await.unwrap()).await;
        let error = error.unwrap();
        assert_eq!(error.kind, UpstreamErrorKind::Unavailable, "{kind:?}");
        assert!(error.output_produced);
    }
}

#[tokio::test]
async fn n_failures_then_success_reach_the_upstream_each_time() {
    let sim = sim(&["flaky:fail-times=2,fail-status=503"]).await;
    let p = provider(ProviderKind::Anthropic, &sim, "flaky");
    let mut kinds = Vec::new();
    for _ in 0..3 {
        kinds.push(
            p.chat(&ask("hi"), within(5000))
                .await
                .map_err(|e| e.kind)
                .map(|_| ()),
        );
    }
    assert_eq!(
        kinds,
        [
            Err(UpstreamErrorKind::Unavailable),
            Err(UpstreamErrorKind::Unavailable),
            Ok(())
        ]
    );
    assert_eq!(sim.stats().by_model["flaky"], 3);
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let sim = sim(&[]).await;
    let client = UpstreamClient::new(ClientSettings::default()).unwrap();
    for kind in KINDS {
        let mut cfg = config(kind, &sim, "m");
        cfg.base_url = Some(format!("http://{addr}/v1"));
        let e = build(cfg, &client)
            .unwrap()
            .chat(&ask("hi"), within(5000))
            .await
            .unwrap_err();
        assert_eq!(e.kind, UpstreamErrorKind::Connect, "{kind:?}");
        assert!(e.is_retryable());
    }
}

#[tokio::test]
async fn dropping_a_stream_cancels_the_upstream_request() {
    let sim = sim(&["slow:chunk-delay-ms=20,reply-tokens=200"]).await;
    for kind in KINDS {
        let p = provider(kind, &sim, "slow");
        let mut stream = p.chat_stream(&ask("hi"), within(10_000)).await.unwrap();
        for _ in 0..3 {
            stream.next().await.unwrap().unwrap();
        }
        drop(stream);
    }
    // The sim sees each connection go away when it next writes; wait for all three.
    let mut cancelled = 0;
    for _ in 0..200 {
        cancelled = sim.stats().streams_cancelled;
        if cancelled == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(cancelled, 3);
    assert_eq!(sim.stats().streams_completed, 0);
}
