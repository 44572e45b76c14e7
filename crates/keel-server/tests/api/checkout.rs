//! `POST /v1/billing/checkout` and `/v1/billing/portal` against a local fake Stripe that
//! checks the form fields Stripe documents and answers Stripe-shaped JSON.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Form, Json, Router};
use serde_json::{json, Value};

use crate::helpers::{error_of, spawn_full, TestApp};

const KEY: &str = "sk_test_51KeelFakeStripeKey0123456789";

/// What the fake received: (which API, the form).
type Received = Vec<(String, HashMap<String, String>)>;

#[derive(Clone, Default)]
struct Fake {
    forms: Arc<Mutex<Received>>,
}

fn stripe_error(
    status: StatusCode,
    kind: &str,
    code: &str,
    param: &str,
) -> (StatusCode, Json<Value>) {
    let message = format!("Missing or invalid param: {param}");
    (
        status,
        Json(json!({"error": {"type": kind, "code": code, "param": param, "message": message}})),
    )
}

/// Checks what Stripe checks: the key, an idempotency key, the required fields.
fn check(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    required: &[&str],
) -> Result<(), (StatusCode, Json<Value>)> {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {KEY}")) {
        return Err(stripe_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "api_key_invalid",
            "key",
        ));
    }
    let form_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        form_type.starts_with("application/x-www-form-urlencoded"),
        "{form_type}"
    );
    assert!(headers
        .get("idempotency-key")
        .is_some_and(|k| !k.is_empty()));
    for field in required {
        if form.get(*field).is_none_or(|v| v.is_empty()) {
            return Err(stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "parameter_missing",
                field,
            ));
        }
    }
    Ok(())
}

async fn checkout(
    State(f): State<Fake>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    let required = [
        "mode",
        "line_items[0][price]",
        "line_items[0][quantity]",
        "success_url",
        "cancel_url",
    ];
    if let Err(e) = check(&headers, &form, &required) {
        return e;
    }
    if form["line_items[0][price]"] == "price_declined" {
        return stripe_error(
            StatusCode::PAYMENT_REQUIRED,
            "card_error",
            "card_declined",
            "price",
        );
    }
    f.forms
        .lock()
        .unwrap()
        .push(("checkout".into(), form.clone()));
    let body = json!({"id": "cs_test_a1b2c3", "object": "checkout.session", "mode": form["mode"],
        "url": "https://checkout.stripe.com/c/pay/cs_test_a1b2c3", "client_reference_id": form.get("client_reference_id")});
    (StatusCode::OK, Json(body))
}

async fn portal(
    State(f): State<Fake>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    if let Err(e) = check(&headers, &form, &["customer"]) {
        return e;
    }
    f.forms
        .lock()
        .unwrap()
        .push(("portal".into(), form.clone()));
    let body = json!({"id": "bps_test_123", "object": "billing_portal.session", "customer": form["customer"],
        "url": "https://billing.stripe.com/p/session/test_123"});
    (StatusCode::OK, Json(body))
}

async fn fake_stripe() -> (String, Fake) {
    let fake = Fake::default();
    let app = Router::new()
        .route("/v1/checkout/sessions", post(checkout))
        .route("/v1/billing_portal/sessions", post(portal))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, fake)
}

fn manifest() -> String {
    format!(
        "{}\n[plans.pro.stripe]\nprice = \"price_1PkeelPro\"\n",
        keel_core::manifest::DEMO_MANIFEST
    )
}

async fn app_with(base: &str, key: Option<&str>) -> TestApp {
    let base = base.to_string();
    let key = key.map(|k| keel_server::billing::checkout::StripeKey::parse(k).unwrap());
    spawn_full(&manifest(), move |s| {
        s.outbound.worker = false;
        s.stripe.api_base = base;
        s.stripe.secret_key = key;
        s.stripe.success_url = Some("https://app.example.com/paid?s={CHECKOUT_SESSION_ID}".into());
        s.stripe.cancel_url = Some("https://app.example.com/pricing".into());
        s.stripe.portal_return_url = Some("https://app.example.com/account".into());
    })
    .await
}

#[tokio::test]
async fn checkout_creates_a_subscription_session_for_the_plans_stripe_price() {
    let (base, fake) = fake_stripe().await;
    let app = app_with(&base, Some(KEY)).await;
    let (access, user) = app.user().await;
    let res = app
        .post_json(
            "/v1/billing/checkout",
            Some(&access),
            json!({"plan": "pro"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["id"], "cs_test_a1b2c3");
    assert_eq!(
        body["url"],
        "https://checkout.stripe.com/c/pay/cs_test_a1b2c3"
    );
    let (kind, form) = fake.forms.lock().unwrap()[0].clone();
    assert_eq!(kind, "checkout");
    assert_eq!(form["mode"], "subscription");
    assert_eq!(form["line_items[0][price]"], "price_1PkeelPro");
    assert_eq!(form["line_items[0][quantity]"], "1");
    assert_eq!(form["client_reference_id"], user);
    assert_eq!(form["metadata[keel_user_id]"], user);
    assert_eq!(
        form["success_url"],
        "https://app.example.com/paid?s={CHECKOUT_SESSION_ID}"
    );
    assert_eq!(form["cancel_url"], "https://app.example.com/pricing");
    assert!(!form.contains_key("customer"), "no customer is known yet");

    // Once the user's Stripe customer is known, checkout reuses it.
    let me = app
        .state
        .store()
        .locate_user(user.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let scope = keel_store::TenantScope::new(me.tenant_id);
    app.state
        .store()
        .put_billing_customer(&scope, me.id, "stripe", "cus_Q1keel")
        .await
        .unwrap();
    let res = app
        .post_json(
            "/v1/billing/checkout",
            Some(&access),
            json!({"plan": "pro"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(fake.forms.lock().unwrap()[1].1["customer"], "cus_Q1keel");

    let res = app
        .post_json("/v1/billing/portal", Some(&access), json!({}))
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["url"], "https://billing.stripe.com/p/session/test_123");
    let (kind, form) = fake.forms.lock().unwrap()[2].clone();
    assert_eq!(kind, "portal");
    assert_eq!(form["customer"], "cus_Q1keel");
    assert_eq!(form["return_url"], "https://app.example.com/account");
}

#[tokio::test]
async fn bad_checkouts_and_stripe_errors_get_clear_codes_and_never_the_key() {
    let (base, fake) = fake_stripe().await;
    let app = app_with(&base, Some(KEY)).await;
    let (access, _) = app.user().await;
    let cases = [
        (json!({"plan": "enterprise"}), 422, "unknown_plan"),
        (json!({"plan": "free"}), 422, "plan_not_purchasable"),
    ];
    for (body, status, code) in cases {
        let res = app
            .post_json("/v1/billing/checkout", Some(&access), body.clone())
            .await;
        assert_eq!(res.status(), status, "{body}");
        assert_eq!(error_of(res).await["code"], code);
    }
    let res = app
        .post_json("/v1/billing/checkout", None, json!({"plan": "pro"}))
        .await;
    assert_eq!(res.status(), 401);
    let res = app
        .post_json("/v1/billing/portal", Some(&access), json!({}))
        .await;
    assert_eq!(res.status(), 409);
    assert_eq!(error_of(res).await["code"], "no_billing_customer");
    assert!(
        fake.forms.lock().unwrap().is_empty(),
        "nothing reached Stripe"
    );

    // Stripe refuses (a wrong key): a 502 with Stripe's code, without the key or its message.
    let wrong = app_with(&base, Some("sk_test_wrongKeyWrongKey123")).await;
    let (access, _) = wrong.user().await;
    let res = wrong
        .post_json(
            "/v1/billing/checkout",
            Some(&access),
            json!({"plan": "pro"}),
        )
        .await;
    assert_eq!(res.status(), 502);
    let text = res.text().await.unwrap();
    assert!(
        !text.contains("wrongKey") && !text.contains(KEY) && !text.contains("Missing"),
        "{text}"
    );
    let err: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(err["error"]["code"], "payment_provider_error");
    assert_eq!(err["error"]["details"]["provider_status"], 401);
    assert_eq!(
        err["error"]["details"]["provider_error_code"],
        "api_key_invalid"
    );

    // Stripe unreachable.
    let down = app_with("http://127.0.0.1:9", Some(KEY)).await;
    let (access, _) = down.user().await;
    let res = down
        .post_json(
            "/v1/billing/checkout",
            Some(&access),
            json!({"plan": "pro"}),
        )
        .await;
    assert_eq!(res.status(), 502);
    assert_eq!(error_of(res).await["code"], "payment_provider_error");

    // Not configured at all.
    let none = app_with(&base, None).await;
    let (access, _) = none.user().await;
    let res = none
        .post_json(
            "/v1/billing/checkout",
            Some(&access),
            json!({"plan": "pro"}),
        )
        .await;
    assert_eq!(res.status(), 503);
    assert_eq!(
        error_of(res).await["code"],
        "payment_provider_not_configured"
    );
}

#[tokio::test]
async fn a_declined_price_maps_to_payment_provider_error() {
    let (base, _fake) = fake_stripe().await;
    let src = manifest().replace("price_1PkeelPro", "price_declined");
    let base2 = base.clone();
    let app = spawn_full(&src, move |s| {
        s.outbound.worker = false;
        s.stripe.api_base = base2;
        s.stripe.secret_key = keel_server::billing::checkout::StripeKey::parse(KEY);
        s.stripe.success_url = Some("https://app.example.com/ok".into());
        s.stripe.cancel_url = Some("https://app.example.com/no".into());
    })
    .await;
    let (access, _) = app.user().await;
    let res = app
        .post_json(
            "/v1/billing/checkout",
            Some(&access),
            json!({"plan": "pro"}),
        )
        .await;
    assert_eq!(res.status(), 502);
    let err = error_of(res).await;
    assert_eq!(err["code"], "payment_provider_error");
    assert_eq!(err["details"]["provider_error_code"], "card_declined");
}
