//! Service keys: the product's own workers call `/v1/service/*` with
//! `Authorization: Bearer <key id>.<secret>`. Keys come only from the environment
//! (`KEEL_SERVICE_KEYS=worker:<secret>,billing:<secret>`), secrets of at least 32 bytes,
//! compared in constant time, never logged.

use std::fmt;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use keel_core::identity::equal_ct;
use sha2::{Digest, Sha256};

use crate::identity::extract::bearer;
use crate::{ApiError, AppState};

/// The configured service keys.
#[derive(Clone, Default)]
pub struct ServiceKeys {
    keys: Vec<(String, Vec<u8>)>,
}

impl fmt::Debug for ServiceKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        write!(f, "ServiceKeys({ids:?}, secrets redacted)")
    }
}

impl ServiceKeys {
    /// Parses `id:secret,id:secret`; ids are `[a-z0-9_-]{1,64}`, secrets ≥ 32 bytes.
    pub fn parse(text: &str) -> Result<ServiceKeys, &'static str> {
        let mut keys = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, secret) = part
                .split_once(':')
                .ok_or("comma-separated id:secret pairs")?;
            let id_ok = (1..=64).contains(&id.len())
                && id.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !id_ok {
                return Err("key ids of 1 to 64 characters a-z, 0-9, _ or -");
            }
            if secret.len() < 32 {
                return Err("secrets of at least 32 bytes");
            }
            keys.push((id.to_string(), Sha256::digest(secret.as_bytes()).to_vec()));
        }
        Ok(ServiceKeys { keys })
    }

    /// Whether any key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key id whose secret matches, if any.
    pub fn verify(&self, id: &str, secret: &str) -> Option<String> {
        let presented = Sha256::digest(secret.as_bytes());
        // Compare against every key so timing does not reveal which ids exist.
        let mut found = None;
        for (key_id, hash) in &self.keys {
            if equal_ct(hash, &presented) && key_id == id {
                found = Some(key_id.clone());
            }
        }
        found
    }
}

/// An authenticated product service.
#[derive(Clone, Debug)]
pub struct ServiceCaller {
    /// The key id it used.
    pub key_id: String,
}

impl FromRequestParts<AppState> for ServiceCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let refuse = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_service_credentials",
                "a valid service key is required",
            )
        };
        let token = bearer(parts).ok_or_else(refuse)?;
        let (id, secret) = token.split_once('.').ok_or_else(refuse)?;
        let key_id = state
            .settings()
            .service_keys
            .verify(id, secret)
            .ok_or_else(refuse)?;
        Ok(ServiceCaller { key_id })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_parse_and_verify_and_never_print_secrets() {
        let secret = "s".repeat(40);
        let keys =
            ServiceKeys::parse(&format!("worker:{secret}, billing:{}", "t".repeat(32))).unwrap();
        assert_eq!(keys.verify("worker", &secret).as_deref(), Some("worker"));
        assert_eq!(keys.verify("billing", &secret), None);
        assert_eq!(keys.verify("worker", "wrong"), None);
        assert!(!format!("{keys:?}").contains(&secret));
        assert!(ServiceKeys::parse("worker:short").is_err());
        assert!(ServiceKeys::parse("Bad Id:".to_string().as_str()).is_err());
        assert!(ServiceKeys::parse("").unwrap().is_empty());
    }
}
