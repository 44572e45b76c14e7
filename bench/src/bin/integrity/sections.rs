//! The variants of each section. The first variant of a section is its baseline: the
//! same request with the layer skipped (or not configured).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use keel_core::ids::{ApiKeyId, TenantId, UserId};
use keel_core::integrity::idempotency::{IdempotencyKey, KeptResponse, RecordKeys, KEY_HEADER};
use keel_core::integrity::rate::Rate;
use keel_core::integrity::signing::{new_nonce, sign_v2};
use keel_core::integrity::{
    CanonicalRequest, KEY_ID_HEADER, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use keel_server::integrity::limiter::{KeyedRate, Limiter};
use keel_server::integrity::limiter_memory::MemoryLimiter;
use keel_server::{AppState, Settings};
use keel_store::{ClaimOutcome, KeptRecord, NewIdempotencyClaim, TenantScope};

use crate::harness::{call, Op, Variant};
use crate::setup::{post_bytes, post_json, request, Node, ECHO, PING, SERVICE, SERVICE_SECRET};

/// A limit nothing in the benchmark reaches: a million requests a second.
const LOOSE: &str = "{ requests = 1000000, per = \"1s\" }";

/// `[rate_limits.api]` with a limit on each of `scopes`.
pub fn api_limits(scopes: &[&str]) -> String {
    let lines: Vec<String> = scopes.iter().map(|s| format!("{s} = {LOOSE}\n")).collect();
    format!("[rate_limits.api]\n{}", lines.concat())
}

/// Awaits `call` on a request built up front (outside the timer).
fn op(
    router: &Router,
    req: anyhow::Result<Request<axum::body::Body>>,
    expect: StatusCode,
    header: Option<&'static str>,
) -> Op {
    let router = router.clone();
    Box::pin(async move { call(router, req?, expect, header).await })
}

/// `GET` [`PING`] with `credential` on `node`, expecting `header` in the answer.
pub fn ping(name: &str, node: &Node, credential: &str, header: Option<&'static str>) -> Variant {
    let (router, credential) = (node.router.clone(), credential.to_string());
    Variant::new(
        name,
        Arc::new(move |_| {
            let req = request(Method::GET, PING, Some(&credential));
            op(&router, Ok(req), StatusCode::OK, header)
        }),
    )
}

/// Security headers and CORS, measured alone: a bare route, then the same route wrapped
/// by the layer as the app assembles it; and the whole app stack for context.
pub fn headers(node: &Node) -> Vec<Variant> {
    let state = node.state.clone();
    let bare = || Router::<AppState>::new().route(PING, get(|| async { "ok" }));
    let plain = state.settings().clone();
    let browser = Settings {
        cors_origins: vec!["https://app.example.com".into()],
        hsts: Some("max-age=63072000; includeSubDomains".into()),
        ..plain.clone()
    };
    let routers = [
        bare().with_state(state.clone()),
        keel_server::integrity::headers::wrap(bare(), &plain).with_state(state.clone()),
        keel_server::integrity::headers::wrap(bare(), &browser).with_state(state),
    ];
    let names = [
        "bare route, no layer",
        "security headers",
        "security headers + HSTS + CORS, allowed Origin",
    ];
    let mut variants: Vec<Variant> = routers
        .into_iter()
        .zip(names)
        .enumerate()
        .map(|(i, (router, name))| {
            let cors = i == 2;
            let prepare = move |_| {
                let mut req = request(Method::GET, PING, None);
                if cors {
                    let origin = HeaderValue::from_static("https://app.example.com");
                    req.headers_mut().insert(header::ORIGIN, origin);
                }
                let expect = if cors {
                    "access-control-allow-origin"
                } else {
                    "content-length"
                };
                op(&router, Ok(req), StatusCode::OK, Some(expect))
            };
            Variant::new(name, Arc::new(prepare))
        })
        .collect();
    let full = ping(
        "whole app, GET with an access token (every layer passed through, auth, routing)",
        node,
        &node.access,
        Some("content-security-policy"),
    );
    variants.push(full.into_reference());
    variants
}

/// A JSON body of about `size` bytes.
pub fn body_of(size: usize) -> Bytes {
    let pad = "x".repeat(size.saturating_sub(12));
    Bytes::from(format!("{{\"pad\":\"{pad}\"}}"))
}

/// A service call with a bearer service key.
pub fn service_bearer(name: &str, node: &Node, body: Bytes) -> Variant {
    let router = node.router.clone();
    let token = format!("worker.{SERVICE_SECRET}");
    Variant::new(
        name,
        Arc::new(move |_| {
            let req = post_bytes(SERVICE, Some(&token), body.clone());
            op(&router, Ok(req), StatusCode::OK, None)
        }),
    )
}

/// A service call signed with HMAC v2, a fresh nonce and the current time.
pub fn service_signed(name: &str, node: &Node, body: Bytes) -> Variant {
    let router = node.router.clone();
    Variant::new(
        name,
        Arc::new(move |_| op(&router, signed(&body), StatusCode::OK, None)),
    )
}

fn signed(body: &Bytes) -> anyhow::Result<Request<axum::body::Body>> {
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let nonce = new_nonce();
    let signature = sign_v2(
        SERVICE_SECRET.as_bytes(),
        &CanonicalRequest {
            method: "POST",
            path: SERVICE,
            query: "",
            body,
            nonce: &nonce,
            timestamp: &timestamp,
        },
    );
    let mut req = post_bytes(SERVICE, None, body.clone());
    for (name, value) in [
        (KEY_ID_HEADER, "worker"),
        (TIMESTAMP_HEADER, &timestamp),
        (NONCE_HEADER, &nonce),
        (SIGNATURE_HEADER, &signature),
    ] {
        let name = HeaderName::from_bytes(name.as_bytes())?;
        req.headers_mut()
            .insert(name, HeaderValue::from_str(value)?);
    }
    Ok(req)
}

/// Idempotency on a small JSON `POST` by a signed-in user: no key, a fresh key, a replay;
/// and the store's claim + complete alone for comparison.
pub async fn idempotency(node: &Node) -> anyhow::Result<Vec<Variant>> {
    let body = serde_json::json!({"name": "bench", "count": 1});
    let post = move |access: &str, key: Option<String>| {
        let mut req = post_json(ECHO, Some(access), &body);
        if let Some(key) = key {
            let value = HeaderValue::from_str(&key)?;
            req.headers_mut()
                .insert(HeaderName::from_static(KEY_HEADER), value);
        }
        Ok(req)
    };
    let post = Arc::new(post);
    let variant = |name: &str, key: fn(usize) -> Option<String>, header| {
        let (router, access, post) = (node.router.clone(), node.access.clone(), post.clone());
        let prepare = move |i| op(&router, post(&access, key(i)), StatusCode::OK, header);
        Variant::new(name, Arc::new(prepare))
    };
    // The replayed key's first request executes here, so every timed one is a replay.
    call(
        node.router.clone(),
        post(&node.access, Some("bench-replayed".into()))?,
        StatusCode::OK,
        None,
    )
    .await?;
    Ok(vec![
        variant("POST without Idempotency-Key", |_| None, None),
        variant(
            "POST, fresh key: claim + handler + complete",
            |i| Some(format!("bench-fresh-{i}")),
            None,
        ),
        variant(
            "POST, replay of a completed key",
            |_| Some("bench-replayed".into()),
            Some("idempotent-replayed"),
        ),
        store_claim_complete(node),
        idempotency_crypto(),
    ])
}

/// `claim_idempotency` then `complete_idempotency` straight on the store: the writes a
/// fresh key costs, without HTTP.
fn store_claim_complete(node: &Node) -> Variant {
    let store = node.state.store().clone();
    let scope = TenantScope::new(node.tenant);
    let prepare = move |i: usize| -> Op {
        let store = store.clone();
        let now = chrono::Utc::now();
        let claim = NewIdempotencyClaim {
            id: format!("bench-store-{i}-{}", uuid::Uuid::now_v7().simple()),
            principal: "user:bench".into(),
            method: "POST".into(),
            path: ECHO.into(),
            fingerprint: vec![7; 32],
            lock: uuid::Uuid::now_v7(),
            locked_until: now + chrono::Duration::seconds(40),
            expires_at: now + chrono::Duration::hours(24),
        };
        let kept = KeptRecord {
            status: 200,
            response: vec![1; 200],
        };
        Box::pin(async move {
            let outcome = store.claim_idempotency(&scope, &claim, now).await?;
            anyhow::ensure!(matches!(outcome, ClaimOutcome::Claimed { .. }));
            let done = store
                .complete_idempotency(&scope, &claim.id, claim.lock, kept, claim.expires_at)
                .await?;
            anyhow::ensure!(done, "claim lost");
            Ok(())
        })
    };
    Variant::reference(
        "store alone: claim_idempotency + complete_idempotency",
        Arc::new(prepare),
    )
}

/// The in-process limiter's decision alone (no HTTP, no authentication): 0, 1, 2 and 4
/// counters of one request, keyed as the layer keys them.
pub fn limiter_alone() -> anyhow::Result<Vec<Variant>> {
    let limiter: Arc<dyn Limiter> = Arc::new(MemoryLimiter::new());
    let rate = Rate::new(1_000_000, Duration::from_secs(1), 1_000_000)
        .ok_or_else(|| anyhow::anyhow!("a zero rate"))?;
    let ids = [
        "ip:127.0.0.1".to_string(),
        format!("key:{}", ApiKeyId::new()),
        format!("user:{}", UserId::new()),
        format!("tenant:{}", TenantId::new()),
    ];
    let variants = [0, 1, 2, 4].map(|n| {
        let keys: Vec<KeyedRate> = ids[..n]
            .iter()
            .map(|id| KeyedRate {
                key: format!("api:{id}"),
                rate,
            })
            .collect();
        let limiter = limiter.clone();
        let prepare = move |_| -> Op {
            let (limiter, keys) = (limiter.clone(), keys.clone());
            Box::pin(async move {
                let outcome = limiter.decide(&keys).await?;
                anyhow::ensure!(outcome.allowed, "refused");
                Ok(())
            })
        };
        let plural = if n == 1 { "" } else { "s" };
        Variant::new(format!("decide {n} counter{plural}"), Arc::new(prepare))
    });
    Ok(variants.into())
}

/// The CPU work of a fresh key without I/O: record id and keys, the request's fingerprint,
/// sealing the response (and opening it, as a replay does).
pub fn idempotency_crypto() -> Variant {
    let body = br#"{"name":"bench","count":1}"#.to_vec();
    let prepare = move |i: usize| -> Op {
        let body = body.clone();
        Box::pin(async move {
            let key = IdempotencyKey::parse(format!("bench-crypto-{i}").as_bytes())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let keys = RecordKeys::derive("user:usr_bench", "POST", ECHO, &key);
            let fingerprint = keys.fingerprint("POST", ECHO, "", "application/json", &body);
            let kept = KeptResponse {
                status: 200,
                headers: vec![("content-type".into(), b"application/json".to_vec())],
                body: br#"{"ok":true}"#.to_vec(),
            };
            let sealed = keys
                .seal(&kept)
                .ok_or_else(|| anyhow::anyhow!("not sealed"))?;
            let opened = keys
                .open(&sealed)
                .ok_or_else(|| anyhow::anyhow!("not opened"))?;
            anyhow::ensure!(opened.body == kept.body && fingerprint.len() == 32);
            Ok(())
        })
    };
    Variant::reference(
        "CPU alone: record keys, fingerprint, seal + open",
        Arc::new(prepare),
    )
}
