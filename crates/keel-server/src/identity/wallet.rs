//! Wallet sign-in: a single-use challenge message with a 5-minute expiry, signed with the
//! wallet's Ed25519 key.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, VerifyingKey};
use keel_core::ids::{ChallengeId, TenantId, UserId};
use keel_store::{ChallengeRecord, NewUser, StoreError};
use serde_json::json;

use super::service::{ClientMeta, TokenPairOut};
use super::Identity;
use crate::ApiError;

/// How long a challenge may be answered.
pub const CHALLENGE_TTL_SECS: i64 = 300;

fn invalid_wallet(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message.to_string())
}

/// Parses a 32-byte Ed25519 public key written as 64 hex digits.
pub fn parse_address(address: &str) -> Result<(String, VerifyingKey), ApiError> {
    let bad = || {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_wallet_address",
            "expected a 32-byte Ed25519 public key as 64 hex digits",
        )
        .with_details(json!({"field": "address"}))
    };
    let normalised = address.trim().trim_start_matches("0x").to_ascii_lowercase();
    let bytes: [u8; 32] = hex::decode(&normalised)
        .map_err(|_| bad())?
        .try_into()
        .map_err(|_| bad())?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| bad())?;
    Ok((normalised, key))
}

impl Identity {
    /// Issues a challenge for `address`.
    pub async fn wallet_challenge(
        &self,
        address: &str,
        product: &str,
    ) -> Result<ChallengeRecord, ApiError> {
        let (address, _) = parse_address(address)?;
        let now = Utc::now();
        let expires_at = now + chrono::Duration::seconds(CHALLENGE_TTL_SECS);
        let id = ChallengeId::new();
        let nonce = keel_core::identity::random_token("n");
        let message = format!(
            "Sign in to {product}\nWallet: {address}\nChallenge: {id}\nNonce: {nonce}\nIssued: {}\nExpires: {}",
            now.to_rfc3339(),
            expires_at.to_rfc3339()
        );
        let record = ChallengeRecord {
            id,
            address,
            message,
            expires_at,
            used_at: None,
        };
        self.store.create_challenge(record.clone()).await?;
        Ok(record)
    }

    /// Verifies a signed challenge and signs in, creating the user on first sign-in.
    pub async fn wallet_verify(
        &self,
        challenge: &str,
        address: &str,
        signature: &str,
        meta: ClientMeta,
        default_plan: &str,
    ) -> Result<TokenPairOut, ApiError> {
        let (address, key) = parse_address(address)?;
        let signature = decode_signature(signature)?;
        let id: ChallengeId = challenge.parse().map_err(|_| {
            invalid_wallet("invalid_challenge", "unknown, used or expired challenge")
        })?;
        let now: DateTime<Utc> = Utc::now();
        let record = self
            .store
            .consume_challenge(id, now)
            .await?
            .ok_or_else(|| {
                invalid_wallet("invalid_challenge", "unknown, used or expired challenge")
            })?;
        if record.address != address {
            return Err(invalid_wallet(
                "invalid_challenge",
                "the challenge was issued to another wallet",
            ));
        }
        key.verify_strict(record.message.as_bytes(), &signature)
            .map_err(|_| {
                invalid_wallet(
                    "invalid_signature",
                    "the signature does not match the challenge",
                )
            })?;
        let user = match self.store.find_user_by_wallet(&address).await? {
            Some(u) => u,
            None => self.create_wallet_user(&address).await?,
        };
        self.open_session(&user, meta, default_plan, "auth.wallet_login")
            .await
    }

    async fn create_wallet_user(&self, address: &str) -> Result<keel_store::UserRecord, ApiError> {
        let created = self
            .store
            .create_user(NewUser {
                id: UserId::new(),
                tenant_id: TenantId::new(),
                tenant_name: format!("wallet {}", &address[..12.min(address.len())]),
                email: None,
                password_hash: None,
                wallet_address: Some(address.to_string()),
                role: "user".into(),
            })
            .await;
        match created {
            Ok(u) => {
                self.audit(
                    u.tenant_id,
                    &u.id.to_string(),
                    "auth.register",
                    None,
                    json!({"method": "wallet"}),
                )
                .await;
                Ok(u)
            }
            // A concurrent first sign-in of the same wallet made it first.
            Err(StoreError::Conflict(_)) => self
                .store
                .find_user_by_wallet(address)
                .await?
                .ok_or_else(|| ApiError::internal("wallet user vanished")),
            Err(e) => Err(e.into()),
        }
    }
}

fn decode_signature(text: &str) -> Result<Signature, ApiError> {
    let bad = || {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_signature_format",
            "expected a 64-byte Ed25519 signature as hex",
        )
        .with_details(json!({"field": "signature"}))
    };
    let bytes: [u8; 64] = hex::decode(text.trim().trim_start_matches("0x"))
        .map_err(|_| bad())?
        .try_into()
        .map_err(|_| bad())?;
    Ok(Signature::from_bytes(&bytes))
}
