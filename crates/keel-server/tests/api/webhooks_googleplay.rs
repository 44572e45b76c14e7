//! Google Play RTDN via Pub/Sub push: the OIDC token is verified (key, issuer, audience,
//! email); a purchase token the app linked carries the user through each notification.

use chrono::{Duration, Utc};
use serde_json::json;

use crate::webhooks_support::{google_token, rtdn, spawn_webhooks, GOOGLE_AUDIENCE, KALEI};

#[tokio::test]
async fn a_linked_purchase_token_follows_purchase_grace_hold_and_recovery() {
    let app = spawn_webhooks(KALEI).await;
    let (access, _) = app.user().await;
    let token = google_token(GOOGLE_AUDIENCE, "google.key", "test-kid");
    let purchase = "opaque-token-up.to.1.2.3";
    let res = app
        .post_json(
            "/v1/store-links",
            Some(&access),
            json!({"provider": "googleplay", "provider_ref": purchase}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let t0 = Utc::now() - Duration::minutes(10);
    let steps = [
        (4, "prism", 0),
        (6, "prism", 1),
        (5, "free", 2),
        (1, "prism", 3),
        (13, "free", 4),
    ];
    for (kind, plan, minutes) in steps {
        let (status, ack) = app
            .googleplay(
                &token,
                &rtdn(
                    kind,
                    purchase,
                    "prism_monthly",
                    t0 + Duration::minutes(minutes),
                ),
            )
            .await;
        assert_eq!(status, 200, "{ack}");
        let e = app.settled(ack["id"].as_str().unwrap()).await;
        assert_eq!(
            e.status,
            keel_store::InboxStatus::Applied,
            "{:?}",
            e.last_error
        );
        assert_eq!(
            app.plan_of(&access).await.0,
            plan,
            "after notification type {kind}"
        );
    }
    // Another user cannot take the purchase over.
    let (other, _) = app.user().await;
    let res = app
        .post_json(
            "/v1/store-links",
            Some(&other),
            json!({"provider": "googleplay", "provider_ref": purchase}),
        )
        .await;
    assert_eq!(res.status(), 409);
}

#[tokio::test]
async fn push_tokens_that_do_not_verify_are_refused_and_stored_nowhere() {
    let app = spawn_webhooks(KALEI).await;
    let envelope = rtdn(4, "tok", "prism_monthly", Utc::now());
    let wrong_audience = google_token("https://elsewhere.example.com", "google.key", "test-kid");
    let unknown_kid = google_token(GOOGLE_AUDIENCE, "google.key", "other-kid");
    let good = google_token(GOOGLE_AUDIENCE, "google.key", "test-kid");
    let mut parts: Vec<String> = good.split('.').map(String::from).collect();
    parts[2] = crate::webhooks_support::b64url(&[7u8; 256]);
    let forged = parts.join(".");
    for token in [wrong_audience, unknown_kid, forged, "not-a-jwt".to_string()] {
        let (status, err) = app.googleplay(&token, &envelope).await;
        assert_eq!(
            (status, err["error"]["code"].as_str()),
            (401, Some("invalid_token")),
            "{err}"
        );
    }
    let (status, err) = app
        .deliver(
            "/v1/webhooks/googleplay",
            &[],
            serde_json::to_vec(&envelope).unwrap(),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (401, Some("missing_signature"))
    );
    let bad = json!({"message": {"data": "!!!", "messageId": "1"}});
    let (status, err) = app.googleplay(&good, &bad).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("malformed_payload"))
    );
    assert!(app.inbox().await.is_empty());
}

/// Serves the test JWKS like Google's certs endpoint; returns its URL.
async fn jwks_server() -> String {
    let jwks = String::from_utf8(crate::webhooks_support::fixture("google_jwks.json")).unwrap();
    let app = axum::Router::new().route(
        "/oauth2/v3/certs",
        axum::routing::get(move || async move { jwks }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/oauth2/v3/certs", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn push_keys_can_come_from_a_jwks_url_and_an_unreachable_one_is_a_503() {
    let url = jwks_server().await;
    let app = crate::helpers::spawn_full(KALEI, |s| {
        crate::webhooks_support::configure(s);
        s.webhooks.google_jwks = None;
        s.webhooks.google_jwks_url = Some(url);
    })
    .await;
    let token = google_token(GOOGLE_AUDIENCE, "google.key", "test-kid");
    let (status, ack) = app
        .googleplay(&token, &rtdn(4, "tok-url", "prism_monthly", Utc::now()))
        .await;
    assert_eq!(status, 200, "{ack}");
    let (status, err) = app
        .googleplay(
            &google_token(GOOGLE_AUDIENCE, "google.key", "rotated-kid"),
            &rtdn(4, "tok-url", "prism_monthly", Utc::now()),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (401, Some("invalid_token"))
    );

    let down = crate::helpers::spawn_full(KALEI, |s| {
        crate::webhooks_support::configure(s);
        s.webhooks.google_jwks = None;
        s.webhooks.google_jwks_url = Some("http://127.0.0.1:9/certs".into());
    })
    .await;
    let (status, err) = down
        .googleplay(&token, &rtdn(4, "tok-down", "prism_monthly", Utc::now()))
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (503, Some("jwks_unavailable"))
    );
    assert!(down.inbox().await.is_empty());
}
