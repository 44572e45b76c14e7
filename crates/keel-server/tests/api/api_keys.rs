use crate::helpers::{error_of, spawn_app, unique_email};

#[tokio::test]
async fn an_api_key_is_shown_once_and_authenticates_within_its_scopes() {
    let app = spawn_app().await;
    let s = app.register(&unique_email()).await;
    let res = app
        .post_json(
            "/v1/api-keys",
            Some(&s.access),
            serde_json::json!({"name": "ci", "scopes": ["profile:read"]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let created: serde_json::Value = res.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("keel_live_") && key.len() >= 42);
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));
    let list = app
        .get_auth("/v1/api-keys", &s.access)
        .await
        .text()
        .await
        .unwrap();
    assert!(list.contains(created["id"].as_str().unwrap()));
    assert!(!list.contains(&key), "the secret is never shown again");
    let me: serde_json::Value = app.get_auth("/v1/me", &key).await.json().await.unwrap();
    assert!(me["email"].is_string());
    // A key cannot manage sessions or keys.
    let res = app.get_auth("/v1/auth/sessions", &key).await;
    assert_eq!(res.status(), 403);
    assert_eq!(error_of(res).await["code"], "session_required");
}

#[tokio::test]
async fn a_key_without_the_scope_is_forbidden() {
    let app = spawn_app().await;
    let s = app.register(&unique_email()).await;
    let created: serde_json::Value = app
        .post_json(
            "/v1/api-keys",
            Some(&s.access),
            serde_json::json!({"name": "gw", "scopes": ["gateway"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let res = app
        .get_auth("/v1/me", created["key"].as_str().unwrap())
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(error_of(res).await["code"], "insufficient_scope");
}

#[tokio::test]
async fn a_revoked_key_stops_working_and_others_cannot_revoke_it() {
    let app = spawn_app().await;
    let a = app.register(&unique_email()).await;
    let b = app.register(&unique_email()).await;
    let created: serde_json::Value = app
        .post_json(
            "/v1/api-keys",
            Some(&a.access),
            serde_json::json!({"name": "k", "scopes": ["all"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let (id, key) = (
        created["id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    assert_eq!(app.get_auth("/v1/me", key).await.status(), 200);
    let res = app
        .client
        .delete(app.url(&format!("/v1/api-keys/{id}")))
        .bearer_auth(&b.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(app.get_auth("/v1/me", key).await.status(), 200);
    let res = app
        .client
        .delete(app.url(&format!("/v1/api-keys/{id}")))
        .bearer_auth(&a.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(app.get_auth("/v1/me", key).await.status(), 401);
    let list: serde_json::Value = app
        .get_auth("/v1/api-keys", &a.access)
        .await
        .json()
        .await
        .unwrap();
    assert!(list["data"][0]["revoked_at"].is_string());
}

#[tokio::test]
async fn bad_key_requests_get_clear_codes() {
    let app = spawn_app().await;
    let s = app.register(&unique_email()).await;
    let cases = [
        (
            serde_json::json!({"name": "", "scopes": ["all"]}),
            "invalid_name",
        ),
        (
            serde_json::json!({"name": "x", "scopes": ["root"]}),
            "invalid_scope",
        ),
        (
            serde_json::json!({"name": "x", "scopes": []}),
            "invalid_scope",
        ),
        (
            serde_json::json!({"name": "x", "scopes": ["all"], "expires_at": "2001-01-01T00:00:00Z"}),
            "invalid_expiry",
        ),
        (
            serde_json::json!({"name": "x", "scopes": ["all"], "expires_at": "soon"}),
            "validation_failed",
        ),
    ];
    for (body, code) in cases {
        let res = app.post_json("/v1/api-keys", Some(&s.access), body).await;
        assert_eq!(res.status(), 422);
        assert_eq!(error_of(res).await["code"], code);
    }
    let list: serde_json::Value = app
        .get_auth("/v1/api-keys", &s.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    assert_eq!(
        app.get_auth("/v1/me", "keel_live_000000000000000000000000000000000")
            .await
            .status(),
        401
    );
}
