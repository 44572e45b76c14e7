//! Operator levers: quota overrides and billing kill switches, each audited.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{error_of, spawn_app, TestApp};

const ADMIN_PW: &str = "granite-harbor-81";

async fn admin(app: &TestApp) -> String {
    let email = "levers@ops.example.com";
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

async fn call(
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

async fn requests_meter(app: &TestApp, access: &str) -> Value {
    let e: Value = app
        .get_auth("/v1/entitlements", access)
        .await
        .json()
        .await
        .unwrap();
    e["meters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["meter"] == "requests" && m["window"] == "day")
        .unwrap()
        .clone()
}

async fn audit_actions(app: &TestApp, tenant: keel_core::ids::TenantId) -> Vec<String> {
    let q = keel_store::AuditQuery {
        limit: 100,
        ..Default::default()
    };
    app.state
        .store()
        .list_audit(&keel_store::TenantScope::new(tenant), &q)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect()
}

#[tokio::test]
async fn an_override_raises_then_replaces_a_limit_and_removing_it_restores_the_plan() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let (access, user) = app.user().await;
    let path = format!("/admin/v1/quota/{user}");

    let body = json!({"meter": "requests", "extra": 5, "reason": "apology for outage"});
    let res = call(&app, Method::PUT, &path, &root, Some(body)).await;
    assert_eq!(res.status(), 200);
    let set: Value = res.json().await.unwrap();
    assert_eq!(
        (set["extra"].as_i64(), set["active"].as_bool()),
        (Some(5), Some(true))
    );
    let m = requests_meter(&app, &access).await;
    assert_eq!(
        (m["limit"].as_i64(), m["overridden"].as_bool()),
        (Some(105), Some(true))
    );

    // The raised limit is the one reservations meet, exactly.
    assert_eq!(
        app.reserve(&user, "requests", 105, "all").await.status(),
        201
    );
    let over = app.reserve(&user, "requests", 1, "one-more").await;
    assert_eq!(over.status(), 429);
    let err = error_of(over).await;
    assert_eq!(err["code"], "daily_limit_reached");
    assert_eq!(err["details"]["limit"], 105);

    // A custom limit replaces the plan's; expiry is kept.
    let until = (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339();
    let body =
        json!({"meter": "requests", "custom_limit": 200, "expires_at": until, "reason": "pilot"});
    assert_eq!(
        call(&app, Method::PUT, &path, &root, Some(body))
            .await
            .status(),
        200
    );
    assert_eq!(requests_meter(&app, &access).await["limit"], 200);
    let listed: Value = call(&app, Method::GET, &path, &root, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    assert_eq!(listed["data"][0]["custom_limit"], 200);
    assert_eq!(listed["data"][0]["reason"], "pilot");

    let res = call(
        &app,
        Method::DELETE,
        &format!("{path}/requests"),
        &root,
        None,
    )
    .await;
    assert_eq!(res.status(), 204);
    let m = requests_meter(&app, &access).await;
    assert_eq!(
        (m["limit"].as_i64(), m["overridden"].as_bool()),
        (Some(100), Some(false))
    );
    let again = call(
        &app,
        Method::DELETE,
        &format!("{path}/requests"),
        &root,
        None,
    )
    .await;
    assert_eq!(again.status(), 404);

    let tenant = app
        .state
        .store()
        .locate_user(user.parse().unwrap())
        .await
        .unwrap()
        .unwrap()
        .tenant_id;
    let actions = audit_actions(&app, tenant).await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "billing.quota_override_set")
            .count(),
        2
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "billing.quota_override_removed")
            .count(),
        1
    );
}

#[tokio::test]
async fn bad_overrides_are_refused_with_their_code_and_change_nothing() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let (access, user) = app.user().await;
    let path = format!("/admin/v1/quota/{user}");
    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    for (body, code) in [
        (
            json!({"meter": "nope", "extra": 1, "reason": "x"}),
            "unknown_meter",
        ),
        (
            json!({"meter": "requests", "reason": "x"}),
            "empty_override",
        ),
        (
            json!({"meter": "requests", "extra": 1, "reason": "  "}),
            "invalid_reason",
        ),
        (
            json!({"meter": "requests", "extra": 1, "target": "balance", "reason": "x"}),
            "invalid_target",
        ),
        (
            json!({"meter": "requests", "custom_limit": -1, "reason": "x"}),
            "invalid_limit",
        ),
        (
            json!({"meter": "requests", "extra": 1, "expires_at": past, "reason": "x"}),
            "invalid_expiry",
        ),
    ] {
        let res = call(&app, Method::PUT, &path, &root, Some(body.clone())).await;
        assert_eq!(res.status(), 422, "{body}");
        assert_eq!(error_of(res).await["code"], code, "{body}");
    }
    let unknown = format!("/admin/v1/quota/{}", keel_core::ids::UserId::new());
    let body = json!({"meter": "requests", "extra": 1, "reason": "x"});
    assert_eq!(
        call(&app, Method::PUT, &unknown, &root, Some(body.clone()))
            .await
            .status(),
        404
    );
    // Without an admin session: refused.
    assert_eq!(
        call(&app, Method::PUT, &path, &access, Some(body))
            .await
            .status(),
        401
    );
    let listed: Value = call(&app, Method::GET, &path, &root, None)
        .await
        .json()
        .await
        .unwrap();
    assert!(listed["data"].as_array().unwrap().is_empty());
    assert_eq!(requests_meter(&app, &access).await["limit"], 100);
}

#[tokio::test]
async fn kill_switches_stop_reservations_for_one_user_or_everyone_until_disengaged() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let (_, alice) = app.user().await;
    let (_, bob) = app.user().await;
    let alice_switch = format!("/admin/v1/kill-switches/users/{alice}");
    let body = json!({"reason": "chargeback investigation"});
    let res = call(&app, Method::PUT, &alice_switch, &root, Some(body)).await;
    assert_eq!(res.status(), 200);

    let refused = app.reserve(&alice, "requests", 1, "a1").await;
    assert_eq!(refused.status(), 403);
    let err = error_of(refused).await;
    assert_eq!(
        (err["code"].as_str(), err["details"]["scope"].as_str()),
        (Some("billing_kill_switch"), Some("user"))
    );
    assert_eq!(app.reserve(&bob, "requests", 1, "b1").await.status(), 201);

    let global = "/admin/v1/kill-switches/global";
    let body = json!({"reason": "runaway spend"});
    assert_eq!(
        call(&app, Method::PUT, global, &root, Some(body))
            .await
            .status(),
        200
    );
    let refused = app.reserve(&bob, "requests", 1, "b2").await;
    assert_eq!(error_of(refused).await["details"]["scope"], "global");
    let listed: Value = call(&app, Method::GET, "/admin/v1/kill-switches", &root, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);

    assert_eq!(
        call(&app, Method::DELETE, global, &root, None)
            .await
            .status(),
        204
    );
    assert_eq!(app.reserve(&bob, "requests", 1, "b3").await.status(), 201);
    assert_eq!(app.reserve(&alice, "requests", 1, "a2").await.status(), 403);
    assert_eq!(
        call(&app, Method::DELETE, &alice_switch, &root, None)
            .await
            .status(),
        204
    );
    assert_eq!(app.reserve(&alice, "requests", 1, "a3").await.status(), 201);
    assert_eq!(
        call(&app, Method::DELETE, &alice_switch, &root, None)
            .await
            .status(),
        404
    );
    let empty = call(
        &app,
        Method::PUT,
        global,
        &root,
        Some(json!({"reason": ""})),
    )
    .await;
    assert_eq!(error_of(empty).await["code"], "invalid_reason");

    let system = audit_actions(&app, keel_server::identity::system_tenant()).await;
    assert!(
        system.iter().any(|a| a == "billing.kill_switch_engaged"),
        "{system:?}"
    );
    assert!(
        system.iter().any(|a| a == "billing.kill_switch_disengaged"),
        "{system:?}"
    );
    let tenant = app
        .state
        .store()
        .locate_user(alice.parse().unwrap())
        .await
        .unwrap()
        .unwrap()
        .tenant_id;
    let actions = audit_actions(&app, tenant).await;
    assert!(
        actions.iter().any(|a| a == "billing.kill_switch_engaged"),
        "{actions:?}"
    );
}
