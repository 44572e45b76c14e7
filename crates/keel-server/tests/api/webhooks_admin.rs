//! `/admin/v1/webhooks/*`: registering endpoints, the secret shown once, validation,
//! rotation, deletion and the audit trail.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{error_of, spawn_with, TestApp};

const ADMIN_PW: &str = "granite-harbor-81";

pub async fn admin(app: &TestApp) -> String {
    let email = "hooks@ops.example.com";
    keel_server::admin::bootstrap(app.state.store(), email, ADMIN_PW)
        .await
        .unwrap();
    let res = app
        .post_json(
            "/admin/v1/auth/login",
            None,
            json!({"email": email, "password": ADMIN_PW}),
        )
        .await;
    let body: Value = res.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

pub async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

/// Registers an endpoint; returns (id, secret).
pub async fn register(app: &TestApp, token: &str, url: &str, types: &[&str]) -> (String, String) {
    let res = call(
        app,
        Method::POST,
        "/admin/v1/webhooks/endpoints",
        token,
        Some(json!({"url": url, "event_types": types, "description": "product backend"})),
    )
    .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    (
        body["id"].as_str().unwrap().to_string(),
        body["secret"].as_str().unwrap().to_string(),
    )
}

async fn audit_actions(app: &TestApp) -> Vec<String> {
    let q = keel_store::AuditQuery {
        limit: 100,
        ..Default::default()
    };
    let scope = keel_store::TenantScope::new(keel_store::all_tenants());
    app.state
        .store()
        .list_audit(&scope, &q)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect()
}

#[tokio::test]
async fn an_endpoint_is_registered_with_its_secret_shown_once_then_changed_rotated_and_deleted() {
    let app = spawn_with(|s| s.outbound.worker = false).await;
    let token = admin(&app).await;
    let (id, secret) = register(
        &app,
        &token,
        "https://hooks.example.com/keel",
        &["subscription.changed", "quota.threshold_reached"],
    )
    .await;
    assert!(id.starts_with("ep_"));
    assert!(secret.starts_with("whsec_"));
    let path = format!("/admin/v1/webhooks/endpoints/{id}");
    let listed = call(
        &app,
        Method::GET,
        "/admin/v1/webhooks/endpoints",
        &token,
        None,
    )
    .await;
    let listed = listed.text().await.unwrap();
    assert!(listed.contains(&id));
    assert!(
        !listed.contains(&secret[6..]) && !listed.contains("secret\""),
        "{listed}"
    );
    let one: Value = call(&app, Method::GET, &path, &token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["enabled"], true);
    assert_eq!(one["tenant_id"], Value::Null);
    assert_eq!(
        one["event_types"],
        json!(["subscription.changed", "quota.threshold_reached"])
    );
    assert!(one.get("secret").is_none());

    let patch = json!({"enabled": false, "event_types": ["job.state_changed"]});
    let off: Value = call(&app, Method::PATCH, &path, &token, Some(patch))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (off["enabled"].clone(), off["disabled_reason"].clone()),
        (json!(false), json!("operator"))
    );
    assert_eq!(off["event_types"], json!(["job.state_changed"]));

    let rotated = call(
        &app,
        Method::POST,
        &format!("{path}/rotate-secret"),
        &token,
        None,
    )
    .await;
    assert_eq!(rotated.status(), 200);
    let rotated: Value = rotated.json().await.unwrap();
    let fresh = rotated["secret"].as_str().unwrap();
    assert!(fresh.starts_with("whsec_") && fresh != secret);
    assert!(rotated["previous_secret_expires_at"].is_string());
    let stored = app
        .state
        .store()
        .get_endpoint(
            &keel_store::TenantScope::new(keel_store::all_tenants()),
            id.parse().unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        (stored.secret.as_str(), stored.previous_secret.as_deref()),
        (fresh, Some(secret.as_str()))
    );

    assert_eq!(
        call(&app, Method::DELETE, &path, &token, None)
            .await
            .status(),
        204
    );
    assert_eq!(
        call(&app, Method::GET, &path, &token, None).await.status(),
        404
    );
    assert_eq!(
        call(&app, Method::DELETE, &path, &token, None)
            .await
            .status(),
        404
    );
    let actions = audit_actions(&app).await;
    for action in [
        "webhook.endpoint_created",
        "webhook.endpoint_updated",
        "webhook.secret_rotated",
        "webhook.endpoint_deleted",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }
}

#[tokio::test]
async fn bad_endpoints_are_refused_with_a_code_and_change_nothing() {
    let app = spawn_with(|s| s.outbound.worker = false).await;
    let token = admin(&app).await;
    let cases = [
        (
            json!({"url": "ftp://example.com/x", "event_types": ["safety.flagged"]}),
            "invalid_url",
        ),
        (
            json!({"url": "http://127.0.0.1:9/x", "event_types": ["safety.flagged"]}),
            "invalid_url",
        ),
        (
            json!({"url": "http://169.254.169.254/", "event_types": ["safety.flagged"]}),
            "invalid_url",
        ),
        (
            json!({"url": "https://example.com/", "event_types": ["order.paid"]}),
            "invalid_event_type",
        ),
        (
            json!({"url": "https://example.com/", "event_types": []}),
            "invalid_event_type",
        ),
        (
            json!({"url": "https://example.com/", "event_types": ["safety.flagged"], "tenant_id": "nope"}),
            "invalid_tenant",
        ),
        (
            json!({"url": "https://example.com/", "event_types": ["safety.flagged"], "description": "x".repeat(501)}),
            "invalid_description",
        ),
    ];
    for (body, code) in cases {
        let res = call(
            &app,
            Method::POST,
            "/admin/v1/webhooks/endpoints",
            &token,
            Some(body.clone()),
        )
        .await;
        assert_eq!(res.status(), 422, "{body}");
        assert_eq!(error_of(res).await["code"], code, "{body}");
    }
    let unknown_field = json!({"url": "https://example.com/", "event_types": ["safety.flagged"], "secret": "whsec_x"});
    let res = call(
        &app,
        Method::POST,
        "/admin/v1/webhooks/endpoints",
        &token,
        Some(unknown_field),
    )
    .await;
    assert!(res.status().is_client_error());
    let listed: Value = call(
        &app,
        Method::GET,
        "/admin/v1/webhooks/endpoints",
        &token,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(listed["data"], json!([]));
    for path in [
        "/admin/v1/webhooks/endpoints/ep_nope",
        "/admin/v1/webhooks/endpoints/ep_0190f0f0f0f07000800000000000000a",
    ] {
        assert_eq!(
            call(&app, Method::GET, path, &token, None).await.status(),
            404
        );
    }
    let replay = "/admin/v1/webhooks/messages/msg_0190f0f0f0f07000800000000000000a/replay";
    assert_eq!(
        call(&app, Method::POST, replay, &token, None)
            .await
            .status(),
        404
    );
    // Product users never reach the admin API.
    let (access, _) = app.user().await;
    let res = call(
        &app,
        Method::GET,
        "/admin/v1/webhooks/endpoints",
        &access,
        None,
    )
    .await;
    assert_eq!(res.status(), 401);
}

/// An active admin of `role` (temporary password already changed); its token.
async fn colleague(app: &TestApp, root: &str, role: &str) -> String {
    let email = format!("{}@ops.example.com", role.to_lowercase());
    let res = app
        .post_json(
            "/admin/v1/accounts",
            Some(root),
            json!({"email": email, "role": role}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let temp = created["temporary_password"].as_str().unwrap().to_string();
    let login: Value = app
        .post_json(
            "/admin/v1/auth/login",
            None,
            json!({"email": email, "password": temp}),
        )
        .await
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_string();
    let body = json!({"current_password": temp, "new_password": "copper-meadow-64"});
    let res = app
        .post_json("/admin/v1/auth/password", Some(&token), body)
        .await;
    assert_eq!(res.status(), 204);
    token
}

#[tokio::test]
async fn engineers_change_endpoints_and_support_only_reads_them() {
    let app = spawn_with(|s| s.outbound.worker = false).await;
    let root = admin(&app).await;
    let engineer = colleague(&app, &root, "ENGINEER").await;
    let support = colleague(&app, &root, "SUPPORT").await;
    let (id, _) = register(
        &app,
        &engineer,
        "https://hooks.example.com/a",
        &["safety.flagged"],
    )
    .await;
    let path = format!("/admin/v1/webhooks/endpoints/{id}");
    assert_eq!(
        call(&app, Method::GET, &path, &support, None)
            .await
            .status(),
        200
    );
    let attempts = format!("{path}/attempts");
    assert_eq!(
        call(&app, Method::GET, &attempts, &support, None)
            .await
            .status(),
        200
    );
    let body = json!({"url": "https://hooks.example.com/b", "event_types": ["safety.flagged"]});
    let writes = [
        (
            Method::POST,
            "/admin/v1/webhooks/endpoints".to_string(),
            Some(body),
        ),
        (Method::PATCH, path.clone(), Some(json!({"enabled": false}))),
        (Method::POST, format!("{path}/rotate-secret"), None),
        (Method::DELETE, path.clone(), None),
    ];
    for (method, p, body) in writes {
        let res = call(&app, method.clone(), &p, &support, body).await;
        assert_eq!(res.status(), 403, "{method} {p}");
        assert_eq!(error_of(res).await["code"], "forbidden");
    }
    let still: Value = call(&app, Method::GET, &path, &support, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(still["enabled"], true, "support changed nothing");
}
