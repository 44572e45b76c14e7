//! `scope = "tenant"` limits over HTTP: every user of a tenant draws from one allowance,
//! exactly, and entitlements show the tenant's use.
use keel_core::ids::{TenantId, UserId};
use keel_store::NewUser;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{error_of, spawn_full, TestApp};

const TEAM: &str = r#"
[product]
name = "team"
default_plan = "team"
[meters.tokens]
unit = "token"
[meters.requests]
unit = "request"
[plans.team.limits.tokens]
limit = 50
window = "month"
scope = "tenant"
[plans.team.limits.requests]
limit = 1000
window = "day"
"#;

/// Another user in `tenant` (no sign-up route joins a tenant yet: made in the store).
async fn join(app: &TestApp, tenant: &str) -> String {
    let tenant: TenantId = tenant.parse().unwrap();
    let new = NewUser {
        id: UserId::new(),
        tenant_id: tenant,
        tenant_name: String::new(),
        email: Some(format!("{}@example.com", UserId::new())),
        password_hash: None,
        wallet_address: None,
        role: "user".into(),
    };
    let user = app.state.store().create_user(new).await.unwrap();
    user.id.to_string()
}

async fn service_entitlements(app: &TestApp, user: &str) -> Value {
    let path = format!("/v1/service/users/{user}/entitlements");
    let res = app.service(Method::GET, &path, None).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn meter<'a>(e: &'a Value, name: &str) -> &'a Value {
    e["meters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["meter"] == name)
        .unwrap()
}

fn standing(m: &Value) -> (&str, i64, i64, i64) {
    (
        m["scope"].as_str().unwrap(),
        m["used"].as_i64().unwrap(),
        m["reserved"].as_i64().unwrap(),
        m["remaining"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn users_of_a_tenant_racing_for_a_tenant_limit_get_exactly_it_in_total() {
    let app = std::sync::Arc::new(spawn_full(TEAM, |_| {}).await);
    let (access, first) = app.user().await;
    let me: Value = app.get_auth("/v1/me", &access).await.json().await.unwrap();
    let tenant = me["tenant_id"].as_str().unwrap();
    let users = vec![first, join(&app, tenant).await, join(&app, tenant).await];
    // 3 users x 6 callers x 2 tries of 5 tokens = 180 asked for, 50 allowed.
    let mut tasks = Vec::new();
    for i in 0..18 {
        let (app, user) = (app.clone(), users[i % 3].clone());
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for n in 0..2 {
                let res = app.reserve(&user, "tokens", 5, &format!("k{i}-{n}")).await;
                let status = res.status().as_u16();
                let body: Value = res.json().await.unwrap();
                outcomes.push((status, body));
            }
            outcomes
        }));
    }
    let mut granted = Vec::new();
    for task in tasks {
        for (status, body) in task.await.unwrap() {
            match status {
                201 => granted.push(body),
                429 => {
                    let err = &body["error"];
                    assert_eq!(err["code"], "monthly_limit_reached", "{body}");
                    assert_eq!(err["details"]["limit"], 50);
                    assert_eq!(err["details"]["used"], 50);
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
    }
    assert_eq!(granted.len(), 10, "50 tokens in reservations of 5");
    assert_eq!(granted[0]["gates"][0]["key"]["owner"], "tenant");

    // Every user of the tenant sees the tenant's use; their own limits stay their own.
    for user in &users {
        let e = service_entitlements(&app, user).await;
        assert_eq!(standing(meter(&e, "tokens")), ("tenant", 50, 50, 0));
        assert_eq!(standing(meter(&e, "requests")), ("user", 0, 0, 1000));
    }
    let e: Value = app
        .get_auth("/v1/entitlements", &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(standing(meter(&e, "tokens")), ("tenant", 50, 50, 0));

    // Settling one user's reservation below its hold frees room for everyone.
    let id = granted[0]["id"].as_str().unwrap();
    let path = format!("/v1/service/reservations/{id}/commit");
    let res = app
        .service(Method::POST, &path, Some(json!({"amount": 2})))
        .await;
    assert_eq!(res.status(), 200);
    let owner = granted[0]["user_id"].as_str().unwrap();
    let someone_else = users.iter().find(|u| u.as_str() != owner).unwrap();
    let e = service_entitlements(&app, someone_else).await;
    assert_eq!(standing(meter(&e, "tokens")), ("tenant", 47, 45, 3));
    assert_eq!(
        app.reserve(someone_else, "tokens", 3, "after")
            .await
            .status(),
        201
    );
    let res = app.reserve(someone_else, "tokens", 1, "over").await;
    assert_eq!(res.status(), 429);
    assert_eq!(error_of(res).await["details"]["remaining"], 0);

    // A user of another tenant has the whole allowance.
    let (_, stranger) = app.user().await;
    let e = service_entitlements(&app, &stranger).await;
    assert_eq!(standing(meter(&e, "tokens")), ("tenant", 0, 0, 50));
    assert_eq!(
        app.reserve(&stranger, "tokens", 50, "all").await.status(),
        201
    );
}

#[tokio::test]
async fn usage_recorded_for_one_user_counts_against_the_tenant_limit() {
    let app = spawn_full(TEAM, |_| {}).await;
    let (access, first) = app.user().await;
    let me: Value = app.get_auth("/v1/me", &access).await.json().await.unwrap();
    let other = join(&app, me["tenant_id"].as_str().unwrap()).await;
    let batch = json!({"entries": [
        {"user_id": other, "meter": "tokens", "amount": 30, "idempotency_key": "u1"},
        {"user_id": first, "meter": "tokens", "amount": 15, "idempotency_key": "u2"},
    ]});
    let res = app
        .service(Method::POST, "/v1/service/usage", Some(batch))
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let e = service_entitlements(&app, &first).await;
    assert_eq!(standing(meter(&e, "tokens")), ("tenant", 45, 0, 5));
    let res = app.reserve(&first, "tokens", 6, "too-much").await;
    assert_eq!(res.status(), 429);
    assert_eq!(error_of(res).await["details"]["used"], 45);
    // Each user's usage report stays their own.
    let path = format!("/v1/service/users/{other}/usage?group_by=meter");
    let usage: Value = app
        .service(Method::GET, &path, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(usage["data"][0]["amount"], 30, "{usage}");
}
