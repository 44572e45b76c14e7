use crate::helpers::{error_of, spawn_app, unique_email, TestApp};

const ADMIN_PW: &str = "granite-harbor-81";

async fn admin_login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/admin/v1/auth/login",
        None,
        serde_json::json!({"email": email, "password": password}),
    )
    .await
}

async fn bootstrap(app: &TestApp) -> (String, String) {
    let email = "root@ops.example.com".to_string();
    keel_server::admin::bootstrap(app.state.store(), &email, ADMIN_PW)
        .await
        .unwrap();
    let res = admin_login(app, &email, ADMIN_PW).await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["admin"]["role"], "SUPER_ADMIN");
    (email, body["access_token"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn bootstrap_makes_only_the_first_super_admin() {
    let app = spawn_app().await;
    bootstrap(&app).await;
    let again =
        keel_server::admin::bootstrap(app.state.store(), "second@ops.example.com", ADMIN_PW).await;
    assert!(matches!(
        again,
        Err(keel_server::admin::service::BootstrapError::AlreadyBootstrapped)
    ));
}

#[tokio::test]
async fn product_and_admin_tokens_never_open_each_others_routes() {
    let app = spawn_app().await;
    let (_, admin_token) = bootstrap(&app).await;
    let user = app.register(&unique_email()).await;
    assert_eq!(
        app.get_auth("/admin/v1/auth/me", &user.access)
            .await
            .status(),
        401
    );
    assert_eq!(
        app.get_auth("/admin/v1/accounts", &user.access)
            .await
            .status(),
        401
    );
    assert_eq!(app.get_auth("/v1/me", &admin_token).await.status(), 401);
    assert_eq!(
        app.get_auth("/admin/v1/auth/me", &admin_token)
            .await
            .status(),
        200
    );
    // Product sign-in does not know admin accounts.
    assert_eq!(
        app.login("root@ops.example.com", ADMIN_PW).await.status(),
        401
    );
}

#[tokio::test]
async fn a_super_admin_manages_accounts_and_others_cannot() {
    let app = spawn_app().await;
    let (_, root) = bootstrap(&app).await;
    let res = app
        .post_json(
            "/admin/v1/accounts",
            Some(&root),
            serde_json::json!({"email": "eng@ops.example.com", "role": "ENGINEER"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let created: serde_json::Value = res.json().await.unwrap();
    let temp = created["temporary_password"].as_str().unwrap().to_string();
    let eng_id = created["account"]["id"].as_str().unwrap().to_string();
    assert_eq!(created["account"]["must_change_password"], true);
    let bad = app
        .post_json(
            "/admin/v1/accounts",
            Some(&root),
            serde_json::json!({"email": "x@ops.example.com", "role": "SUPER_ADMIN"}),
        )
        .await;
    assert_eq!(error_of(bad).await["code"], "invalid_role");
    // The engineer must change the temporary password before anything else.
    let eng: serde_json::Value = admin_login(&app, "eng@ops.example.com", &temp)
        .await
        .json()
        .await
        .unwrap();
    let eng_token = eng["access_token"].as_str().unwrap().to_string();
    let res = app.get_auth("/admin/v1/accounts", &eng_token).await;
    assert_eq!(error_of(res).await["code"], "password_change_required");
    let body = serde_json::json!({"current_password": temp, "new_password": "copper-meadow-64"});
    assert_eq!(
        app.post_json("/admin/v1/auth/password", Some(&eng_token), body)
            .await
            .status(),
        204
    );
    // An ENGINEER is not a SUPER_ADMIN.
    let res = app.get_auth("/admin/v1/accounts", &eng_token).await;
    assert_eq!(res.status(), 403);
    assert_eq!(error_of(res).await["code"], "forbidden");
    let list: serde_json::Value = app
        .get_auth("/admin/v1/accounts", &root)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    // Change role, then disable: the engineer's session stops working.
    let res = app
        .client
        .patch(app.url(&format!("/admin/v1/accounts/{eng_id}")))
        .bearer_auth(&root)
        .json(&serde_json::json!({"role": "SUPPORT"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["role"],
        "SUPPORT"
    );
    let res = app
        .client
        .patch(app.url(&format!("/admin/v1/accounts/{eng_id}")))
        .bearer_auth(&root)
        .json(&serde_json::json!({"status": "disabled"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.get_auth("/admin/v1/auth/me", &eng_token).await.status(),
        401
    );
    assert_eq!(
        admin_login(&app, "eng@ops.example.com", "copper-meadow-64")
            .await
            .status(),
        401
    );
    // Force a reset: a new temporary password is issued.
    let res = app
        .post_json(
            &format!("/admin/v1/accounts/{eng_id}/reset-password"),
            Some(&root),
            serde_json::json!({}),
        )
        .await;
    assert!(res.json::<serde_json::Value>().await.unwrap()["temporary_password"].is_string());
    // Audit has the trail.
    let q = keel_store::AuditQuery {
        limit: 50,
        ..Default::default()
    };
    let scope = keel_store::TenantScope::new(keel_server::identity::system_tenant());
    let actions: Vec<String> = app
        .state
        .store()
        .list_audit(&scope, &q)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    for a in [
        "admin.bootstrap",
        "admin.login",
        "admin.account_created",
        "admin.account_updated",
        "admin.password_reset_forced",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} missing: {actions:?}");
    }
}

#[tokio::test]
async fn admin_logout_ends_the_admin_session() {
    let app = spawn_app().await;
    let (_, root) = bootstrap(&app).await;
    assert_eq!(
        app.post_json("/admin/v1/auth/logout", Some(&root), serde_json::json!({}))
            .await
            .status(),
        204
    );
    assert_eq!(app.get_auth("/admin/v1/auth/me", &root).await.status(), 401);
}
