//! Forged, expired, not-yet-valid and tampered access tokens are all 401 invalid_token.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::helpers::{error_of, spawn_app, unique_email, TestApp};

async fn claims_of(app: &TestApp, access: &str) -> serde_json::Value {
    let payload = access.split('.').nth(1).unwrap();
    let _ = app;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn sign(app: &TestApp, claims: &serde_json::Value, kid: &str) -> String {
    let keys = app.state.store().list_signing_keys().await.unwrap();
    let key = keys.last().unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&key.private_der)).unwrap()
}

async fn assert_refused(app: &TestApp, token: &str) {
    let res = app.get_auth("/v1/me", token).await;
    assert_eq!(res.status(), 401, "{token}");
    assert_eq!(error_of(res).await["code"], "invalid_token");
}

#[tokio::test]
async fn an_unsigned_alg_none_token_is_refused() {
    let app = spawn_app().await;
    let s = app.register(&unique_email()).await;
    let claims = claims_of(&app, &s.access).await;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    assert_refused(&app, &format!("{header}.{body}.")).await;
    assert_refused(&app, &format!("{header}.{body}")).await;
}

#[tokio::test]
async fn a_tampered_token_is_refused() {
    let app = spawn_app().await;
    let s = app.register(&unique_email()).await;
    let mut claims = claims_of(&app, &s.access).await;
    claims["role"] = "admin".into();
    let parts: Vec<&str> = s.access.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    assert_refused(&app, &forged).await;
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[0] ^= 1;
    assert_refused(
        &app,
        &format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig)),
    )
    .await;
    assert_refused(&app, "not.a.jwt").await;
    assert_refused(&app, "").await;
}

#[tokio::test]
async fn expired_not_yet_valid_and_unknown_kid_tokens_are_refused() {
    let app = spawn_app().await;
    let s = app.register(&unique_email()).await;
    let claims = claims_of(&app, &s.access).await;
    let kid = jsonwebtoken::decode_header(&s.access).unwrap().kid.unwrap();
    let now = chrono::Utc::now().timestamp();
    // Sanity: a token signed the same way with good claims is accepted.
    let good = sign(&app, &claims, &kid).await;
    assert_eq!(app.get_auth("/v1/me", &good).await.status(), 200);
    let mut expired = claims.clone();
    expired["exp"] = (now - 60).into();
    expired["iat"] = (now - 960).into();
    expired["nbf"] = (now - 960).into();
    assert_refused(&app, &sign(&app, &expired, &kid).await).await;
    let mut early = claims.clone();
    early["nbf"] = (now + 600).into();
    assert_refused(&app, &sign(&app, &early, &kid).await).await;
    assert_refused(&app, &sign(&app, &claims, "k-unknown").await).await;
}

#[tokio::test]
async fn a_rotated_key_keeps_verifying_and_the_new_one_signs() {
    let app = spawn_app().await;
    let before = app.register(&unique_email()).await;
    let old_kid = jsonwebtoken::decode_header(&before.access)
        .unwrap()
        .kid
        .unwrap();
    let new_kid = keel_server::identity::keys::KeyRing::rotate(app.state.store())
        .await
        .unwrap();
    assert_ne!(old_kid, new_kid);
    // A token from the old key still works after rotation.
    assert_eq!(app.get_auth("/v1/me", &before.access).await.status(), 200);
    // The ring picks the new key up on an unknown kid (at most every 5 s), then signs with it.
    tokio::time::sleep(std::time::Duration::from_millis(5100)).await;
    let claims = claims_of(&app, &before.access).await;
    let with_new = sign(&app, &claims, &new_kid).await;
    assert_eq!(app.get_auth("/v1/me", &with_new).await.status(), 200);
    let after = app.register(&unique_email()).await;
    assert_eq!(
        jsonwebtoken::decode_header(&after.access)
            .unwrap()
            .kid
            .unwrap(),
        new_kid
    );
    let jwks: serde_json::Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
}
