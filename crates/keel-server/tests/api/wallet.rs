use ed25519_dalek::{Signer, SigningKey};
use rand::rngs::OsRng;

use crate::helpers::{error_of, spawn_app, TestApp};

async fn challenge(app: &TestApp, address: &str) -> serde_json::Value {
    let res = app
        .post_json(
            "/v1/auth/wallet/challenge",
            None,
            serde_json::json!({"address": address}),
        )
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn signed_body(key: &SigningKey, c: &serde_json::Value, address: &str) -> serde_json::Value {
    let sig = key.sign(c["message"].as_str().unwrap().as_bytes());
    serde_json::json!({"challenge_id": c["challenge_id"], "address": address, "signature": hex::encode(sig.to_bytes())})
}

#[tokio::test]
async fn a_signed_challenge_signs_in_and_the_same_wallet_gets_the_same_user() {
    let app = spawn_app().await;
    let key = SigningKey::generate(&mut OsRng);
    let address = hex::encode(key.verifying_key().to_bytes());
    let c = challenge(&app, &address).await;
    assert!(c["message"].as_str().unwrap().contains(&address));
    let res = app
        .post_json(
            "/v1/auth/wallet/verify",
            None,
            signed_body(&key, &c, &address),
        )
        .await;
    assert_eq!(res.status(), 200);
    let first: serde_json::Value = res.json().await.unwrap();
    let me: serde_json::Value = app
        .get_auth("/v1/me", first["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["wallet_address"], address.as_str());
    let c2 = challenge(&app, &address.to_uppercase()).await;
    let second: serde_json::Value = app
        .post_json(
            "/v1/auth/wallet/verify",
            None,
            signed_body(&key, &c2, &address),
        )
        .await
        .json()
        .await
        .unwrap();
    let me2: serde_json::Value = app
        .get_auth("/v1/me", second["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], me2["id"]);
}

#[tokio::test]
async fn replayed_foreign_forged_and_expired_challenges_are_refused() {
    let app = spawn_app().await;
    let key = SigningKey::generate(&mut OsRng);
    let address = hex::encode(key.verifying_key().to_bytes());
    let c = challenge(&app, &address).await;
    let body = signed_body(&key, &c, &address);
    assert_eq!(
        app.post_json("/v1/auth/wallet/verify", None, body.clone())
            .await
            .status(),
        200
    );
    let replay = app.post_json("/v1/auth/wallet/verify", None, body).await;
    assert_eq!(error_of(replay).await["code"], "invalid_challenge");
    // Another wallet answering this wallet's challenge.
    let thief = SigningKey::generate(&mut OsRng);
    let thief_address = hex::encode(thief.verifying_key().to_bytes());
    let c = challenge(&app, &address).await;
    let res = app
        .post_json(
            "/v1/auth/wallet/verify",
            None,
            signed_body(&thief, &c, &thief_address),
        )
        .await;
    assert_eq!(error_of(res).await["code"], "invalid_challenge");
    // A signature by the wrong key for the right address.
    let c = challenge(&app, &address).await;
    let res = app
        .post_json(
            "/v1/auth/wallet/verify",
            None,
            signed_body(&thief, &c, &address),
        )
        .await;
    assert_eq!(error_of(res).await["code"], "invalid_signature");
    // An expired challenge.
    let expired = keel_store::ChallengeRecord {
        id: keel_core::ids::ChallengeId::new(),
        address: address.clone(),
        message: "old".into(),
        expires_at: chrono::Utc::now() - chrono::Duration::seconds(1),
        used_at: None,
    };
    app.state
        .store()
        .create_challenge(expired.clone())
        .await
        .unwrap();
    let sig = key.sign(b"old");
    let body = serde_json::json!({"challenge_id": expired.id.to_string(), "address": address, "signature": hex::encode(sig.to_bytes())});
    let res = app.post_json("/v1/auth/wallet/verify", None, body).await;
    assert_eq!(error_of(res).await["code"], "invalid_challenge");
    // Malformed input.
    let res = app
        .post_json(
            "/v1/auth/wallet/challenge",
            None,
            serde_json::json!({"address": "zz"}),
        )
        .await;
    assert_eq!(error_of(res).await["code"], "invalid_wallet_address");
}
