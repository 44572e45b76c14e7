//! API keys: shown once, stored as a hash, verified by hash lookup through a short-lived
//! per-node cache (a revocation elsewhere takes effect within [`KEY_CACHE_TTL`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use keel_core::identity::{api_key, hash_secret};
use keel_core::ids::ApiKeyId;
use keel_store::{ApiKeyRecord, NewApiKey, TenantScope};
use serde_json::json;

use super::extract::{invalid_token, AuthUser, Via};
use super::tokens::AccessToken;
use super::Identity;
use crate::ApiError;

/// How long a looked-up key is trusted on this node.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(10);

/// Scopes a key may carry.
pub const SCOPES: &[&str] = &["all", "gateway", "jobs", "billing:read", "profile:read"];

/// A lookup result (a miss is cached too) and when it was made.
type Cached = (Option<ApiKeyRecord>, Instant);

/// Per-node cache of key lookups by hash.
#[derive(Clone, Default)]
pub struct KeyCache {
    inner: Arc<RwLock<HashMap<Vec<u8>, Cached>>>,
}

impl KeyCache {
    fn get(&self, hash: &[u8]) -> Option<Option<ApiKeyRecord>> {
        let map = self.inner.read().ok()?;
        map.get(hash)
            .filter(|(_, at)| at.elapsed() < KEY_CACHE_TTL)
            .map(|(r, _)| r.clone())
    }

    fn put(&self, hash: Vec<u8>, record: Option<ApiKeyRecord>) {
        if let Ok(mut map) = self.inner.write() {
            if map.len() > 100_000 {
                map.retain(|_, (_, at)| at.elapsed() < KEY_CACHE_TTL);
            }
            map.insert(hash, (record, Instant::now()));
        }
    }

    fn forget(&self, id: ApiKeyId) {
        if let Ok(mut map) = self.inner.write() {
            map.retain(|_, (r, _)| r.as_ref().is_none_or(|r| r.id != id));
        }
    }
}

impl Identity {
    pub(crate) async fn authenticate_api_key(&self, key: &str) -> Result<AuthUser, ApiError> {
        let hash = hash_secret(key);
        let record = match self.api_keys.get(&hash) {
            Some(r) => r,
            None => {
                let r = self.store.find_api_key(&hash).await?;
                self.api_keys.put(hash, r.clone());
                r
            }
        };
        let now = Utc::now();
        let record = record
            .filter(|r| r.revoked_at.is_none() && r.expires_at.is_none_or(|e| e > now))
            .ok_or_else(invalid_token)?;
        let scope = TenantScope::new(record.tenant_id);
        if record
            .last_used_at
            .is_none_or(|t| now - t > chrono::Duration::seconds(60))
        {
            // Best effort: a lost last-used update must not fail the call.
            if let Err(e) = self.store.touch_api_key(&scope, record.id, now).await {
                tracing::warn!(error = %e, "could not record API key use");
            }
        }
        let user = self
            .store
            .get_user(&scope, record.user_id)
            .await
            .map_err(|_| invalid_token())?;
        Ok(AuthUser {
            token: AccessToken {
                user: user.id,
                tenant: user.tenant_id,
                session: keel_core::ids::SessionId::from_uuid(record.id.as_uuid()),
                role: user.role,
                plan: String::new(),
            },
            via: Via::ApiKey {
                id: record.id,
                scopes: record.scopes,
            },
        })
    }

    /// Creates a key for the caller; the secret is in the answer and nowhere else.
    pub async fn create_api_key(
        &self,
        who: &AuthUser,
        name: &str,
        scopes: Vec<String>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(ApiKeyRecord, String), ApiError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_name",
                "name must be 1 to 100 characters",
            )
            .with_details(json!({"field": "name"})));
        }
        if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_scope",
                format!("unknown scope `{bad}`"),
            )
            .with_details(json!({"field": "scopes", "allowed": SCOPES})));
        }
        if scopes.is_empty() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_scope",
                "give at least one scope",
            )
            .with_details(json!({"field": "scopes", "allowed": SCOPES})));
        }
        if expires_at.is_some_and(|e| e <= Utc::now()) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_expiry",
                "expires_at must be in the future",
            )
            .with_details(json!({"field": "expires_at"})));
        }
        let secret = api_key(&self.config.api_key_env);
        let record = self
            .store
            .create_api_key(
                &who.scope(),
                NewApiKey {
                    id: ApiKeyId::new(),
                    user_id: who.token.user,
                    name: name.to_string(),
                    prefix: secret.prefix.clone(),
                    key_hash: secret.hash.clone(),
                    scopes,
                    expires_at,
                },
            )
            .await?;
        self.audit(
            who.token.tenant,
            &who.token.user.to_string(),
            "api_key.created",
            Some(record.id.to_string()),
            json!({"name": record.name, "scopes": record.scopes}),
        )
        .await;
        Ok((record, secret.key))
    }

    /// Revokes one of the caller's keys.
    pub async fn revoke_api_key(&self, who: &AuthUser, id: ApiKeyId) -> Result<(), ApiError> {
        self.store
            .revoke_api_key(&who.scope(), who.token.user, id)
            .await?;
        self.api_keys.forget(id);
        self.audit(
            who.token.tenant,
            &who.token.user.to_string(),
            "api_key.revoked",
            Some(id.to_string()),
            json!({}),
        )
        .await;
        Ok(())
    }
}
