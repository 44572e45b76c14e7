use std::time::Duration;

use crate::helpers::{error_of, signed, spawn_app, spawn_with, unique_email, PASSWORD};

#[tokio::test]
async fn register_answers_with_an_oauth_token_pair_that_opens_me() {
    let app = spawn_app().await;
    let email = unique_email();
    let res = app
        .post_json(
            "/v1/auth/register",
            None,
            serde_json::json!({"email": format!("  {email} "), "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["session_id"].as_str().unwrap().starts_with("ses_"));
    assert!(body["refresh_token"].as_str().unwrap().starts_with("rt_"));
    let access = body["access_token"].as_str().unwrap();
    let me: serde_json::Value = app.get_auth("/v1/me", access).await.json().await.unwrap();
    assert_eq!(me["email"], email.replace("Example.COM", "example.com"));
    assert_eq!(me["role"], "user");
    assert!(me["tenant_id"].as_str().unwrap().starts_with("ten_"));
    assert_eq!(
        me["plan"],
        app.state.manifest().product.default_plan.as_str()
    );
    // The token is an EdDSA JWT whose kid is published.
    let header = jsonwebtoken::decode_header(access).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    let jwks: serde_json::Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(kids.contains(&header.kid.as_deref().unwrap()));
    assert!(jwks.to_string().contains("\"crv\":\"Ed25519\""));
    assert!(
        !jwks.to_string().contains("\"d\""),
        "no private key material"
    );
}

#[tokio::test]
async fn bad_registrations_get_their_own_code_and_create_nothing() {
    let app = spawn_app().await;
    let cases = [
        (
            serde_json::json!({"email": "not-an-email", "password": PASSWORD}),
            422,
            "invalid_email",
        ),
        (
            serde_json::json!({"email": unique_email(), "password": "short"}),
            422,
            "password_too_short",
        ),
        (
            serde_json::json!({"email": unique_email(), "password": "password1234"}),
            422,
            "password_too_common",
        ),
        (
            serde_json::json!({"email": unique_email()}),
            422,
            "validation_failed",
        ),
    ];
    for (body, status, code) in cases {
        let email = body["email"].as_str().unwrap_or("").to_string();
        let res = app.post_json("/v1/auth/register", None, body).await;
        assert_eq!(res.status(), status);
        assert_eq!(error_of(res).await["code"], code);
        if email.contains('@') {
            assert_eq!(app.login(&email, PASSWORD).await.status(), 401);
        }
    }
    let email = unique_email();
    app.register(&email).await;
    let again = app
        .post_json(
            "/v1/auth/register",
            None,
            serde_json::json!({"email": email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(again.status(), 409);
    assert_eq!(error_of(again).await["code"], "email_taken");
}

#[tokio::test]
async fn wrong_email_and_wrong_password_give_the_same_error() {
    let app = spawn_app().await;
    let email = unique_email();
    app.register(&email).await;
    let wrong_password = error_of(app.login(&email, "orange-planet-77").await).await;
    let unknown_email = error_of(app.login(&unique_email(), PASSWORD).await).await;
    assert_eq!(wrong_password["code"], "invalid_credentials");
    assert_eq!(wrong_password["code"], unknown_email["code"]);
    assert_eq!(wrong_password["message"], unknown_email["message"]);
    assert_eq!(app.login(&email, PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn a_refresh_token_used_twice_revokes_the_session() {
    let app = spawn_with(|s| s.refresh_grace = Duration::ZERO).await;
    let first = app.register(&unique_email()).await;
    let res = app.refresh(&first.refresh).await;
    assert_eq!(res.status(), 200);
    let second = signed(res).await;
    assert_ne!(second.refresh, first.refresh);
    assert_eq!(second.session, first.session);
    let reuse = app.refresh(&first.refresh).await;
    assert_eq!(reuse.status(), 401);
    assert_eq!(error_of(reuse).await["code"], "refresh_token_reused");
    // The whole session is gone: its newest refresh token and its access tokens too.
    assert_eq!(
        error_of(app.refresh(&second.refresh).await).await["code"],
        "session_revoked"
    );
    assert_eq!(app.get_auth("/v1/me", &second.access).await.status(), 401);
}

#[tokio::test]
async fn concurrent_refreshes_inside_the_grace_window_share_one_successor() {
    let app = spawn_app().await;
    let first = app.register(&unique_email()).await;
    let (a, b) = tokio::join!(app.refresh(&first.refresh), app.refresh(&first.refresh));
    assert_eq!(a.status(), 200);
    assert_eq!(b.status(), 200);
    let (a, b) = (signed(a).await, signed(b).await);
    assert_eq!(a.refresh, b.refresh, "both tabs hold the same successor");
    assert_eq!(app.get_auth("/v1/me", &a.access).await.status(), 200);
    assert_eq!(app.get_auth("/v1/me", &b.access).await.status(), 200);
    // The successor works once more, so neither tab is logged out.
    assert_eq!(app.refresh(&a.refresh).await.status(), 200);
}

#[tokio::test]
async fn garbage_refresh_tokens_are_refused() {
    let app = spawn_app().await;
    for token in ["", "rt_nope", "x"] {
        let res = app.refresh(token).await;
        assert_eq!(res.status(), 401);
        assert_eq!(error_of(res).await["code"], "invalid_refresh_token");
    }
}

#[tokio::test]
async fn logout_ends_the_session_and_its_tokens() {
    let app = spawn_app().await;
    let s = app.register(&unique_email()).await;
    let res = app
        .post_json("/v1/auth/logout", Some(&s.access), serde_json::json!({}))
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(app.get_auth("/v1/me", &s.access).await.status(), 401);
    assert_eq!(app.refresh(&s.refresh).await.status(), 401);
}

#[tokio::test]
async fn logout_all_ends_every_session_of_the_user() {
    let app = spawn_app().await;
    let email = unique_email();
    let a = app.register(&email).await;
    let b = signed(app.login(&email, PASSWORD).await).await;
    let res = app
        .post_json(
            "/v1/auth/logout-all",
            Some(&a.access),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["ended"], 2);
    assert_eq!(app.get_auth("/v1/me", &a.access).await.status(), 401);
    assert_eq!(app.get_auth("/v1/me", &b.access).await.status(), 401);
    assert_eq!(app.refresh(&b.refresh).await.status(), 401);
}

#[tokio::test]
async fn sessions_are_listed_for_their_owner_and_hidden_from_others() {
    let app = spawn_app().await;
    let email = unique_email();
    let a = app.register(&email).await;
    let other = app.register(&unique_email()).await;
    let list: serde_json::Value = app
        .client
        .get(app.url("/v1/auth/sessions"))
        .bearer_auth(&a.access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["id"], a.session.as_str());
    assert_eq!(data[0]["device_name"], "laptop");
    assert_eq!(data[0]["current"], true);
    assert_eq!(data[0]["ip"], "127.0.0.1");
    // User B cannot end user A's session: 404, and A's session lives on.
    let res = app
        .client
        .delete(app.url(&format!("/v1/auth/sessions/{}", a.session)))
        .bearer_auth(&other.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(app.get_auth("/v1/me", &a.access).await.status(), 200);
    let res = app
        .client
        .delete(app.url(&format!("/v1/auth/sessions/{}", a.session)))
        .bearer_auth(&a.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(app.get_auth("/v1/me", &a.access).await.status(), 401);
}

#[tokio::test]
async fn a_password_change_ends_every_other_session() {
    let app = spawn_app().await;
    let email = unique_email();
    let here = app.register(&email).await;
    let elsewhere = signed(app.login(&email, PASSWORD).await).await;
    let body = serde_json::json!({"current_password": "wrong-password-99", "new_password": "lemon-galaxy-58"});
    let res = app
        .post_json("/v1/auth/password", Some(&here.access), body)
        .await;
    assert_eq!(error_of(res).await["code"], "invalid_credentials");
    let body = serde_json::json!({"current_password": PASSWORD, "new_password": "short"});
    let res = app
        .post_json("/v1/auth/password", Some(&here.access), body)
        .await;
    assert_eq!(error_of(res).await["code"], "password_too_short");
    let body = serde_json::json!({"current_password": PASSWORD, "new_password": "lemon-galaxy-58"});
    assert_eq!(
        app.post_json("/v1/auth/password", Some(&here.access), body)
            .await
            .status(),
        204
    );
    assert_eq!(app.get_auth("/v1/me", &here.access).await.status(), 200);
    assert_eq!(
        app.get_auth("/v1/me", &elsewhere.access).await.status(),
        401
    );
    assert_eq!(app.refresh(&elsewhere.refresh).await.status(), 401);
    assert_eq!(app.login(&email, PASSWORD).await.status(), 401);
    assert_eq!(app.login(&email, "lemon-galaxy-58").await.status(), 200);
}

#[tokio::test]
async fn brute_force_is_throttled_with_retry_after() {
    let app = spawn_app().await;
    let email = unique_email();
    app.register(&email).await;
    for _ in 0..5 {
        assert_eq!(app.login(&email, "wrong-password-99").await.status(), 401);
    }
    let res = app.login(&email, "wrong-password-99").await;
    assert_eq!(res.status(), 429);
    let retry: i64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert_eq!(error_of(res).await["code"], "too_many_attempts");
    // Even the right password waits while the account is throttled.
    assert_eq!(app.login(&email, PASSWORD).await.status(), 429);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // After the wait, the right password gets in and resets the counter.
    assert_eq!(app.login(&email, PASSWORD).await.status(), 200);
    assert_eq!(app.login(&email, "wrong-password-99").await.status(), 401);
}

#[tokio::test]
async fn sign_ins_and_failures_are_audited_without_secrets() {
    let app = spawn_app().await;
    let email = unique_email();
    let s = app.register(&email).await;
    app.login(&email, "wrong-password-99").await;
    let me: serde_json::Value = app
        .get_auth("/v1/me", &s.access)
        .await
        .json()
        .await
        .unwrap();
    let tenant: keel_core::ids::TenantId = me["tenant_id"].as_str().unwrap().parse().unwrap();
    let q = keel_store::AuditQuery {
        limit: 50,
        ..Default::default()
    };
    let events = app
        .state
        .store()
        .list_audit(&keel_store::TenantScope::new(tenant), &q)
        .await
        .unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    for a in ["auth.register", "auth.login", "auth.login_failed"] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    let dump = format!("{events:?}");
    assert!(
        !dump.contains(PASSWORD)
            && !dump.contains("wrong-password-99")
            && !dump.contains(&s.refresh)
    );
    assert!(events.iter().all(|e| e.request_id.is_some()));
}
