//! Signed service calls (docs/signing.md): success, replay, each refusal code, body limit.
use keel_core::integrity::{new_nonce, sign_v2, CanonicalRequest, ServiceKeys};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{error_of, spawn_with, TestApp};

/// The default test key (bearer helpers use it), and keys for rotation and legacy tests.
pub const DEFAULT: &str = "0123456789abcdef0123456789abcdef-test";
pub const NEW: &str = "new-secret-0000000000000000000000000000";
pub const OLD: &str = "old-secret-1111111111111111111111111111";
pub const GONE: &str = "gone-secret-222222222222222222222222222";

pub fn keys() -> ServiceKeys {
    ServiceKeys::parse(&format!(
        "worker:{DEFAULT}, worker@k2:{NEW}, worker@old:{OLD}:legacy_v1, worker@gone:{GONE}:revoked"
    ))
    .unwrap()
}

pub async fn spawn_signed() -> TestApp {
    spawn_with(|s| s.service_keys = keys()).await
}

pub fn now() -> String {
    chrono::Utc::now().timestamp().to_string()
}

/// A signed request's parts; fields are public so tests can spoil one at a time.
#[derive(Clone)]
pub struct Signed {
    pub method: Method,
    pub target: String,
    pub body: Vec<u8>,
    pub key_id: Option<String>,
    pub timestamp: Option<String>,
    pub nonce: Option<String>,
    pub signature: Option<String>,
}

impl Signed {
    /// Signs `target` (path and query) and `body` with v2 and a fresh nonce.
    pub fn new(
        method: Method,
        target: &str,
        body: Option<&Value>,
        key_id: &str,
        secret: &str,
    ) -> Self {
        let body = body
            .map(|b| serde_json::to_vec(b).unwrap())
            .unwrap_or_default();
        let (timestamp, nonce) = (now(), new_nonce());
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let signature = sign_v2(
            secret.as_bytes(),
            &CanonicalRequest {
                method: method.as_str(),
                path,
                query,
                body: &body,
                nonce: &nonce,
                timestamp: &timestamp,
            },
        );
        Signed {
            method,
            target: target.to_string(),
            body,
            key_id: Some(key_id.to_string()),
            timestamp: Some(timestamp),
            nonce: Some(nonce),
            signature: Some(signature),
        }
    }

    pub async fn send(&self, app: &TestApp) -> reqwest::Response {
        let mut req = app
            .client
            .request(self.method.clone(), app.url(&self.target));
        for (name, value) in [
            ("x-keel-key-id", &self.key_id),
            ("x-keel-timestamp", &self.timestamp),
            ("x-keel-nonce", &self.nonce),
            ("x-keel-signature", &self.signature),
        ] {
            if let Some(v) = value {
                req = req.header(name, v);
            }
        }
        if !self.body.is_empty() {
            req = req
                .header("content-type", "application/json")
                .body(self.body.clone());
        }
        req.send().await.unwrap()
    }
}

pub fn reservation(user: &str, key: &str) -> Value {
    json!({"user_id": user, "meter": "requests", "amount": 5, "idempotency_key": key})
}

pub async fn reserved(app: &TestApp, user: &str) -> i64 {
    let res = Signed::new(
        Method::GET,
        &format!("/v1/service/users/{user}/entitlements"),
        None,
        "worker",
        DEFAULT,
    )
    .send(app)
    .await;
    assert_eq!(res.status(), 200);
    let e: Value = res.json().await.unwrap();
    e["meters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["meter"] == "requests")
        .unwrap()["reserved"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn a_signed_request_succeeds_with_its_body_and_query() {
    let app = spawn_signed().await;
    let (_, user) = app.user().await;
    let body = reservation(&user, "signed-1");
    let res = Signed::new(
        Method::POST,
        "/v1/service/reservations",
        Some(&body),
        "worker",
        DEFAULT,
    )
    .send(&app)
    .await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    assert_eq!(reserved(&app, &user).await, 5);
    // A query with repeated keys, spaces and reserved characters, unsorted on the wire.
    let target = format!(
        "/v1/service/users/{user}/usage?group_by=meter&to=2025-03-01T00%3A00%3A00Z&from=2025-01-01T00:00:00Z&x=a+b&x=a%2Bb&x=%C3%A9"
    );
    let res = Signed::new(Method::GET, &target, None, "worker", DEFAULT)
        .send(&app)
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
}

#[tokio::test]
async fn a_replayed_nonce_is_refused_and_nothing_executes() {
    let app = spawn_signed().await;
    let (_, user) = app.user().await;
    let first = Signed::new(
        Method::POST,
        "/v1/service/reservations",
        Some(&reservation(&user, "replay-a")),
        "worker",
        DEFAULT,
    );
    assert_eq!(first.send(&app).await.status(), 201);
    // The very same request again.
    let res = first.send(&app).await;
    assert_eq!(res.status(), 401);
    assert_eq!(error_of(res).await["code"], "nonce_replayed");
    // A different, correctly signed request reusing the nonce: not executed either.
    let mut other = Signed::new(
        Method::POST,
        "/v1/service/reservations",
        Some(&reservation(&user, "replay-b")),
        "worker",
        DEFAULT,
    );
    other.nonce = first.nonce.clone();
    let (path, body) = (other.target.clone(), other.body.clone());
    other.signature = Some(sign_v2(
        DEFAULT.as_bytes(),
        &CanonicalRequest {
            method: "POST",
            path: &path,
            query: "",
            body: &body,
            nonce: other.nonce.as_deref().unwrap(),
            timestamp: other.timestamp.as_deref().unwrap(),
        },
    ));
    let res = other.send(&app).await;
    assert_eq!(error_of(res).await["code"], "nonce_replayed");
    assert_eq!(
        reserved(&app, &user).await,
        5,
        "only the first reservation exists"
    );
}

async fn refused(app: &TestApp, call: &Signed, status: u16, code: &str) -> Value {
    let res = call.send(app).await;
    assert_eq!(res.status(), status, "{code}");
    let err = error_of(res).await;
    assert_eq!(err["code"], code, "{err}");
    err
}

#[tokio::test]
async fn each_bad_input_has_its_own_code_and_changes_nothing() {
    let app = spawn_signed().await;
    let (_, user) = app.user().await;
    let body = reservation(&user, "bad-input");
    let good = || {
        Signed::new(
            Method::POST,
            "/v1/service/reservations",
            Some(&body),
            "worker",
            DEFAULT,
        )
    };

    let mut c = good();
    (c.nonce, c.timestamp) = (None, None);
    let err = refused(&app, &c, 401, "signature_missing").await;
    assert_eq!(
        err["details"]["missing"],
        json!(["x-keel-timestamp", "x-keel-nonce"])
    );
    let none = Signed {
        key_id: None,
        signature: None,
        ..c
    };
    refused(&app, &none, 401, "signature_missing").await;

    let mut c = good();
    c.nonce = Some("short".into());
    let err = refused(&app, &c, 400, "signature_malformed").await;
    assert_eq!(err["details"]["header"], "x-keel-nonce");
    let mut c = good();
    c.timestamp = Some("yesterday".into());
    refused(&app, &c, 400, "signature_malformed").await;
    let mut c = good();
    c.signature = Some("sha256=abc".into());
    refused(&app, &c, 400, "signature_malformed").await;

    let mut c = good();
    c.timestamp = Some((chrono::Utc::now().timestamp() - 600).to_string());
    let err = refused(&app, &c, 401, "signature_expired").await;
    assert_eq!(err["details"]["tolerance_seconds"], 120);
    assert!(err["details"]["server_time"].as_i64().unwrap() >= chrono::Utc::now().timestamp() - 5);

    let c = Signed::new(
        Method::POST,
        "/v1/service/reservations",
        Some(&body),
        "nobody",
        DEFAULT,
    );
    refused(&app, &c, 401, "unknown_key").await;
    let c = Signed::new(
        Method::POST,
        "/v1/service/reservations",
        Some(&body),
        "worker@gone",
        GONE,
    );
    refused(&app, &c, 401, "key_revoked").await;

    let mut c = good();
    c.body = serde_json::to_vec(&reservation(&user, "bad-input-altered")).unwrap();
    let err = refused(&app, &c, 401, "signature_invalid").await;
    assert!(err["details"]["canonical"]
        .as_str()
        .unwrap()
        .starts_with("POST\n/v1/service/reservations\n\n"));
    let c = Signed::new(
        Method::POST,
        "/v1/service/reservations",
        Some(&body),
        "worker",
        &"x".repeat(40),
    );
    refused(&app, &c, 401, "signature_invalid").await;

    let mut c = good();
    c.signature = Some(keel_core::integrity::sign_v1(DEFAULT.as_bytes(), &c.body));
    c.key_id = Some("worker@key1".into());
    refused(&app, &c, 401, "signature_version_not_allowed").await;

    assert_eq!(
        reserved(&app, &user).await,
        0,
        "no refused request reserved anything"
    );
}

#[tokio::test]
async fn a_signed_body_over_the_limit_is_refused_before_verification() {
    let app = spawn_with(|s| {
        s.service_keys = keys();
        s.body_limit = 256;
    })
    .await;
    let body = json!({"user_id": "x".repeat(400), "meter": "requests", "amount": 1, "idempotency_key": "k"});
    let c = Signed::new(
        Method::POST,
        "/v1/service/reservations",
        Some(&body),
        "worker",
        DEFAULT,
    );
    refused(&app, &c, 413, "payload_too_large").await;
}
