//! JWT signing keys: Ed25519, generated on first start and kept in the store so every node
//! signs and verifies with the same set; the newest unretired key signs, every kept key
//! verifies, and an unknown `kid` triggers one reload so a rotation on another node is
//! picked up.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::SigningKey;
use hmac::{Hmac, Mac};
use jsonwebtoken::{DecodingKey, EncodingKey};
use keel_store::{DynStore, SigningKeyRecord, StoreError};
use rand::rngs::OsRng;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// One usable key.
#[derive(Clone)]
pub struct Key {
    /// Its id.
    pub kid: String,
    /// Signs (present for every stored key).
    pub encoding: EncodingKey,
    /// Verifies.
    pub decoding: DecodingKey,
    /// Public key bytes for the JWKS.
    public_raw: Vec<u8>,
    /// Retired keys verify but never sign.
    retired: bool,
}

/// The keys of this deployment.
#[derive(Clone)]
pub struct KeyRing {
    store: DynStore,
    inner: Arc<RwLock<Inner>>,
}

struct Inner {
    keys: Vec<Key>,
    refresh_secret: [u8; 32],
    last_reload: Instant,
}

impl KeyRing {
    /// Loads the stored keys, creating the first one when there is none.
    pub async fn load(store: DynStore) -> anyhow::Result<Self> {
        let mut records = store.list_signing_keys().await?;
        if !records.iter().any(|r| r.retired_at.is_none()) {
            match store.insert_signing_key(generate()?).await {
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
            records = store.list_signing_keys().await?;
        }
        let inner = build(&records)?;
        Ok(Self {
            store,
            inner: Arc::new(RwLock::new(inner)),
        })
    }

    /// Adds a new signing key and retires the previous ones (they keep verifying).
    pub async fn rotate(store: &DynStore) -> anyhow::Result<String> {
        let key = generate()?;
        let kid = key.kid.clone();
        let now = chrono::Utc::now();
        for old in store.list_signing_keys().await? {
            if old.retired_at.is_none() {
                store.retire_signing_key(&old.kid, now).await?;
            }
        }
        store.insert_signing_key(key).await?;
        Ok(kid)
    }

    /// The key that signs new tokens.
    pub fn signing_key(&self) -> Option<Key> {
        let inner = self.inner.read().ok()?;
        inner.keys.iter().rev().find(|k| !k.retired).cloned()
    }

    /// The key with this `kid`, reloading once (at most every 5 s) when it is unknown.
    pub async fn verifying_key(&self, kid: &str) -> Option<Key> {
        if let Some(k) = self.find(kid) {
            return Some(k);
        }
        let due = self
            .inner
            .read()
            .map(|i| i.last_reload.elapsed() > Duration::from_secs(5))
            .unwrap_or(false);
        if due {
            if let Ok(records) = self.store.list_signing_keys().await {
                if let (Ok(fresh), Ok(mut inner)) = (build(&records), self.inner.write()) {
                    *inner = fresh;
                }
            }
        }
        self.find(kid)
    }

    fn find(&self, kid: &str) -> Option<Key> {
        let inner = self.inner.read().ok()?;
        inner.keys.iter().find(|k| k.kid == kid).cloned()
    }

    /// The JWKS document.
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .inner
            .read()
            .map(|i| {
                i.keys
                    .iter()
                    .map(|k| {
                        json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
                               "kid": k.kid, "x": URL_SAFE_NO_PAD.encode(&k.public_raw)})
                    })
                    .collect()
            })
            .unwrap_or_default();
        json!({ "keys": keys })
    }

    /// The successor of a refresh token: HMAC of the spent token under a server secret, so
    /// a concurrent refresh inside the grace window can be answered with the same successor
    /// without storing any token in clear.
    pub fn successor_of(&self, refresh_token: &str) -> Option<String> {
        let secret = self.inner.read().ok()?.refresh_secret;
        let mut mac = Hmac::<Sha256>::new_from_slice(&secret).ok()?;
        mac.update(refresh_token.as_bytes());
        Some(format!(
            "rt_{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        ))
    }
}

fn generate() -> anyhow::Result<SigningKeyRecord> {
    let signing = SigningKey::generate(&mut OsRng);
    let der = signing
        .to_pkcs8_der()
        .map_err(|e| anyhow::anyhow!("PKCS#8 encoding: {e}"))?;
    let public_raw = signing.verifying_key().to_bytes().to_vec();
    let kid = format!("k{}", &hex::encode(Sha256::digest(&public_raw))[..16]);
    Ok(SigningKeyRecord {
        kid,
        alg: "EdDSA".into(),
        private_der: der.as_bytes().to_vec(),
        public_raw,
        created_at: chrono::Utc::now(),
        retired_at: None,
    })
}

fn build(records: &[SigningKeyRecord]) -> anyhow::Result<Inner> {
    let mut keys = Vec::with_capacity(records.len());
    for r in records.iter().filter(|r| r.alg == "EdDSA") {
        keys.push(Key {
            kid: r.kid.clone(),
            encoding: EncodingKey::from_ed_der(&r.private_der),
            decoding: DecodingKey::from_ed_der(&r.public_raw),
            public_raw: r.public_raw.clone(),
            retired: r.retired_at.is_some(),
        });
    }
    // Derived from the oldest key, which is never deleted, so every node and every
    // rotation agrees on it.
    let oldest = records
        .first()
        .ok_or_else(|| anyhow::anyhow!("no signing key"))?;
    let mut h = Sha256::new();
    h.update(b"keel-refresh-successor-v1");
    h.update(&oldest.private_der);
    Ok(Inner {
        keys,
        refresh_secret: h.finalize().into(),
        last_reload: Instant::now(),
    })
}
