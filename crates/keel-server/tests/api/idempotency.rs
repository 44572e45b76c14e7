//! `Idempotency-Key` on mutating requests: one execution, byte-for-byte replays,
//! refusals that change nothing, and per-caller scope.

use futures::future::join_all;
use keel_core::integrity::idempotency::{IdempotencyKey, RecordKeys};
use keel_store::{IdempotencyRecord, TenantScope};
use serde_json::{json, Value};

use crate::helpers::{error_of, spawn_app, unique_email, TestApp, PASSWORD};

impl TestApp {
    /// `POST /v1/api-keys` as `access`, with an optional idempotency key.
    pub async fn create_key(
        &self,
        access: &str,
        key: Option<&str>,
        name: &str,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url("/v1/api-keys"))
            .bearer_auth(access)
            .json(&json!({"name": name, "scopes": ["profile:read"]}));
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        req.send().await.unwrap()
    }

    /// The stored idempotency record of a session user's request.
    pub async fn record_of(
        &self,
        access: &str,
        method: &str,
        path: &str,
        key: &str,
    ) -> Option<IdempotencyRecord> {
        let me: Value = self.get_auth("/v1/me", access).await.json().await.unwrap();
        let scope = TenantScope::new(me["tenant_id"].as_str().unwrap().parse().unwrap());
        let principal = format!("user:{}", me["id"].as_str().unwrap());
        let key = IdempotencyKey::parse(key.as_bytes()).unwrap();
        let keys = RecordKeys::derive(&principal, method, path, &key);
        self.state
            .store()
            .find_idempotency(&scope, keys.id())
            .await
            .unwrap()
    }

    /// How many API keys the user holds.
    pub async fn key_count(&self, access: &str) -> usize {
        let list: Value = self
            .get_auth("/v1/api-keys", access)
            .await
            .json()
            .await
            .unwrap();
        list["data"].as_array().unwrap().len()
    }
}

fn replayed(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn fifty_concurrent_identical_posts_create_one_api_key() {
    let app = spawn_app().await;
    let s = app.register(&unique_email()).await;
    let calls = (0..50).map(|_| app.create_key(&s.access, Some("double-click-1"), "ci"));
    let mut executed = Vec::new();
    let mut bodies = Vec::new();
    let mut in_progress = 0;
    for res in join_all(calls).await {
        match res.status().as_u16() {
            201 => {
                if replayed(&res).is_none() {
                    executed.push(());
                }
                bodies.push(res.bytes().await.unwrap());
            }
            409 => {
                assert_eq!(res.headers()["retry-after"], "1");
                assert_eq!(error_of(res).await["code"], "idempotency_in_progress");
                in_progress += 1;
            }
            other => panic!("unexpected {other}: {:?}", res.text().await),
        }
    }
    assert_eq!(executed.len(), 1, "exactly one request executed");
    assert_eq!(bodies.len() + in_progress, 50);
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "every 201 is the same response"
    );
    // Once it is done, a retry always gets the kept response.
    let late = app
        .create_key(&s.access, Some("double-click-1"), "ci")
        .await;
    assert_eq!(
        (late.status().as_u16(), replayed(&late)),
        (201, Some("true".into()))
    );
    assert_eq!(late.bytes().await.unwrap(), bodies[0]);
    assert_eq!(app.key_count(&s.access).await, 1);
}

#[tokio::test]
async fn a_replay_returns_the_first_response_byte_for_byte() {
    let app = spawn_app().await;
    let s = app.register(&unique_email()).await;
    let first = app.create_key(&s.access, Some("k-1"), "ci").await;
    assert_eq!((first.status().as_u16(), replayed(&first)), (201, None));
    let first_id = first.headers()["x-request-id"].clone();
    let first_type = first.headers()["content-type"].clone();
    let first_body = first.bytes().await.unwrap();
    let again = app.create_key(&s.access, Some("k-1"), "ci").await;
    assert_eq!(
        (again.status().as_u16(), replayed(&again)),
        (201, Some("true".into()))
    );
    assert_eq!(again.headers()["content-type"], first_type);
    assert_ne!(
        again.headers()["x-request-id"],
        first_id,
        "each request has its own id"
    );
    assert!(again.headers().get("set-cookie").is_none());
    assert_eq!(again.bytes().await.unwrap(), first_body);
    // The replayed secret is the one key that exists, and it works.
    let created: Value = serde_json::from_slice(&first_body).unwrap();
    let me = app
        .get_auth("/v1/me", created["key"].as_str().unwrap())
        .await;
    assert_eq!(me.status(), 200);
    assert_eq!(app.key_count(&s.access).await, 1);
    // The stored record holds the response sealed: the secret is not readable in it.
    let record = app
        .record_of(&s.access, "POST", "/v1/api-keys", "k-1")
        .await
        .unwrap();
    let sealed = record.kept.unwrap().response;
    let secret = created["key"].as_str().unwrap().as_bytes();
    assert!(!sealed.windows(secret.len()).any(|w| w == secret));
    assert!(!record.id.contains("k-1"));
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let s = app.register(&unique_email()).await;
    assert_eq!(
        app.create_key(&s.access, Some("k-2"), "ci").await.status(),
        201
    );
    let other = app.create_key(&s.access, Some("k-2"), "deploy").await;
    assert_eq!(other.status(), 422);
    assert!(replayed(&other).is_none());
    assert_eq!(error_of(other).await["code"], "idempotency_key_reused");
    // Another route with the same key is another request.
    let list: Value = app
        .get_auth("/v1/api-keys", &s.access)
        .await
        .json()
        .await
        .unwrap();
    let id = list["data"][0]["id"].as_str().unwrap();
    let res = app
        .client
        .delete(app.url(&format!("/v1/api-keys/{id}")))
        .bearer_auth(&s.access)
        .header("Idempotency-Key", "k-2")
        .send()
        .await
        .unwrap();
    assert_eq!((res.status().as_u16(), replayed(&res)), (204, None));
}

#[tokio::test]
async fn an_invalid_key_is_refused_before_anything_executes() {
    let app = spawn_app().await;
    let s = app.register(&unique_email()).await;
    let long = "k".repeat(256);
    let res = app.create_key(&s.access, Some(&long), "ci").await;
    assert_eq!(res.status(), 400);
    let err = error_of(res).await;
    assert_eq!(err["code"], "idempotency_key_invalid");
    assert_eq!(err["details"]["max_length"], 255);
    let res = app.create_key(&s.access, Some(""), "ci").await;
    assert_eq!(error_of(res).await["code"], "idempotency_key_invalid");
    assert_eq!(app.key_count(&s.access).await, 0);
    // 255 is fine.
    let res = app
        .create_key(&s.access, Some(&"k".repeat(255)), "ci")
        .await;
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn one_key_used_by_two_users_is_two_requests() {
    let app = spawn_app().await;
    let a = app.register(&unique_email()).await;
    let b = app.register(&unique_email()).await;
    let ra = app.create_key(&a.access, Some("shared"), "ci").await;
    let rb = app.create_key(&b.access, Some("shared"), "ci").await;
    assert_eq!((ra.status().as_u16(), replayed(&ra)), (201, None));
    assert_eq!((rb.status().as_u16(), replayed(&rb)), (201, None));
    assert_ne!(ra.bytes().await.unwrap(), rb.bytes().await.unwrap());
    assert_eq!(app.key_count(&a.access).await, 1);
    assert_eq!(app.key_count(&b.access).await, 1);
}

#[tokio::test]
async fn a_401_is_not_kept_so_the_corrected_retry_executes() {
    let app = spawn_app().await;
    let s = app.register(&unique_email()).await;
    let change = |current: &str| {
        app.client
            .post(app.url("/v1/auth/password"))
            .bearer_auth(&s.access)
            .header("Idempotency-Key", "pw-1")
            .json(&json!({"current_password": current, "new_password": "a-brand-new-passphrase-7"}))
            .send()
    };
    for _ in 0..2 {
        let res = change("wrong-password-123").await.unwrap();
        assert_eq!((res.status().as_u16(), replayed(&res)), (401, None));
    }
    let res = change(PASSWORD).await.unwrap();
    assert_eq!((res.status().as_u16(), replayed(&res)), (204, None));
    let res = change(PASSWORD).await.unwrap();
    assert_eq!(
        (res.status().as_u16(), replayed(&res)),
        (204, Some("true".into()))
    );
}

#[tokio::test]
async fn requests_without_a_key_are_untouched() {
    let app = spawn_app().await;
    let s = app.register(&unique_email()).await;
    for _ in 0..2 {
        let res = app.create_key(&s.access, None, "ci").await;
        assert_eq!((res.status().as_u16(), replayed(&res)), (201, None));
    }
    assert_eq!(app.key_count(&s.access).await, 2);
}
