//! The integrity layers together: a signed service call with an `Idempotency-Key`.

use reqwest::Method;

use crate::signing::{reservation, reserved, spawn_signed, Signed, DEFAULT};

async fn signed_with_key(
    app: &crate::helpers::TestApp,
    body: &serde_json::Value,
    key: &str,
) -> reqwest::Response {
    let signed = Signed::new(
        Method::POST,
        "/v1/service/reservations",
        Some(body),
        "worker",
        DEFAULT,
    );
    let mut req = app.client.request(Method::POST, app.url(&signed.target));
    for (name, value) in [
        ("x-keel-key-id", &signed.key_id),
        ("x-keel-timestamp", &signed.timestamp),
        ("x-keel-nonce", &signed.nonce),
        ("x-keel-signature", &signed.signature),
    ] {
        req = req.header(name, value.clone().unwrap());
    }
    req.header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(signed.body.clone())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_signed_call_retried_with_a_fresh_nonce_replays_its_stored_response() {
    let app = spawn_signed().await;
    let (_, user) = app.user().await;
    let body = reservation(&user, "combined-1");
    let first = signed_with_key(&app, &body, "retry-1").await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body = first.bytes().await.unwrap();

    // The client retries: a new nonce and timestamp (the old ones would be refused), the
    // same Idempotency-Key. The transport layer answers with the stored response.
    let again = signed_with_key(&app, &body, "retry-1").await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.bytes().await.unwrap(), first_body);
    assert_eq!(reserved(&app, &user).await, 5);

    // The same key with another body is refused, and nothing more is reserved.
    let other = reservation(&user, "combined-2");
    let reused = signed_with_key(&app, &other, "retry-1").await;
    assert_eq!(reused.status(), 422);
    assert_eq!(reserved(&app, &user).await, 5);
}
