//! Google Play RTDN through a Pub/Sub push subscription: the push request carries
//! `Authorization: Bearer <OIDC JWT>` signed by Google; it is verified (RS256, key by
//! `kid` from the configured JWKS) against the configured issuer and audience (and
//! service account email), then the envelope's base64 `DeveloperNotification` is read.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;

/// Why a push was refused.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// No bearer token.
    #[error("missing bearer token")]
    MissingToken,
    /// The token does not verify (key, signature, issuer, audience, expiry or email).
    #[error("the push token does not verify: {0}")]
    BadToken(String),
    /// The token names a key the JWKS does not have (a fetched JWKS is refreshed once).
    #[error("the push token does not verify: no key with the token's kid")]
    UnknownKey,
    /// The JWKS URL cannot be read; the push is refused with 503 so Pub/Sub retries.
    #[error("the JWKS cannot be fetched: {0}")]
    JwksUnavailable(String),
    /// The envelope or notification cannot be read.
    #[error("malformed push: {0}")]
    Malformed(&'static str),
}

impl PushError {
    /// The stable API error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_signature",
            Self::BadToken(_) | Self::UnknownKey => "invalid_token",
            Self::JwksUnavailable(_) => "jwks_unavailable",
            Self::Malformed(_) => "malformed_payload",
        }
    }
}

/// Parses a JWKS, checking it has at least one key.
pub fn parse_jwks(text: &str) -> Result<JwkSet, String> {
    let set: JwkSet =
        serde_json::from_str(text).map_err(|e| format!("a JSON Web Key Set ({e})"))?;
    if set.keys.is_empty() {
        return Err("a JSON Web Key Set with at least one key".into());
    }
    Ok(set)
}

#[derive(Deserialize)]
struct Claims {
    email: Option<String>,
    email_verified: Option<bool>,
}

/// What the push token must be.
pub struct Expect<'a> {
    /// The JWKS.
    pub jwks: &'a str,
    /// `iss`.
    pub issuer: &'a str,
    /// `aud`.
    pub audience: &'a str,
    /// `email`, when set.
    pub email: Option<&'a str>,
}

/// Verifies the bearer token.
pub fn verify_token(authorization: Option<&str>, expect: &Expect<'_>) -> Result<(), PushError> {
    let token = authorization
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(PushError::MissingToken)?;
    let bad = |e: &dyn std::fmt::Display| PushError::BadToken(e.to_string());
    let header = decode_header(token).map_err(|e| bad(&e))?;
    if header.alg != Algorithm::RS256 {
        return Err(PushError::BadToken("alg must be RS256".into()));
    }
    let jwks = parse_jwks(expect.jwks).map_err(|e| bad(&e))?;
    let jwk = match &header.kid {
        Some(kid) => jwks.find(kid),
        None => None,
    }
    .ok_or(PushError::UnknownKey)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| bad(&e))?;
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[expect.audience]);
    v.set_issuer(&[expect.issuer]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    let claims = decode::<Claims>(token, &key, &v)
        .map_err(|e| bad(&e))?
        .claims;
    if let Some(email) = expect.email {
        if claims.email.as_deref() != Some(email) || claims.email_verified == Some(false) {
            return Err(PushError::BadToken("unexpected email".into()));
        }
    }
    Ok(())
}

/// How long a fetched JWKS is used before it is fetched again.
const JWKS_TTL: Duration = Duration::from_secs(3600);

/// The least time between two fetches forced by an unknown `kid`.
const JWKS_MIN_REFRESH: Duration = Duration::from_secs(30);

type JwksCache = Mutex<HashMap<String, (Instant, String)>>;

fn cache() -> &'static JwksCache {
    static CACHE: OnceLock<JwksCache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The JWKS at `url`, cached for an hour; `refresh` fetches again (an unknown `kid` after
/// Google rotated its keys), at most every 30 s.
pub async fn remote_jwks(url: &str, refresh: bool) -> Result<String, PushError> {
    let mut cached = cache().lock().await;
    if let Some((at, text)) = cached.get(url) {
        let age = at.elapsed();
        if age < JWKS_TTL && (!refresh || age < JWKS_MIN_REFRESH) {
            return Ok(text.clone());
        }
    }
    let unavailable = |e: &dyn std::fmt::Display| PushError::JwksUnavailable(e.to_string());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| unavailable(&e))?;
    let res = client.get(url).send().await.map_err(|e| unavailable(&e))?;
    if !res.status().is_success() {
        return Err(unavailable(&format!("status {}", res.status())));
    }
    let text = res.text().await.map_err(|e| unavailable(&e))?;
    parse_jwks(&text).map_err(|e| unavailable(&e))?;
    cached.insert(url.to_string(), (Instant::now(), text.clone()));
    Ok(text)
}

/// Reads the push envelope: `{"messageId", "notification": <DeveloperNotification>}`.
pub fn read_envelope(body: &[u8]) -> Result<Value, PushError> {
    let envelope: Value =
        serde_json::from_slice(body).map_err(|_| PushError::Malformed("body is not JSON"))?;
    let message = envelope
        .get("message")
        .ok_or(PushError::Malformed("missing message"))?;
    let id = message
        .get("messageId")
        .or_else(|| message.get("message_id"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(PushError::Malformed("missing message.messageId"))?;
    let data = message
        .get("data")
        .and_then(Value::as_str)
        .ok_or(PushError::Malformed("missing message.data"))?;
    let bytes = STANDARD
        .decode(data)
        .or_else(|_| URL_SAFE.decode(data))
        .map_err(|_| PushError::Malformed("message.data is not base64"))?;
    let notification: Value = serde_json::from_slice(&bytes)
        .map_err(|_| PushError::Malformed("message.data is not a JSON DeveloperNotification"))?;
    if !notification.is_object() {
        return Err(PushError::Malformed(
            "message.data is not a JSON DeveloperNotification",
        ));
    }
    Ok(
        json!({"messageId": id, "subscription": envelope.get("subscription"), "notification": notification}),
    )
}
