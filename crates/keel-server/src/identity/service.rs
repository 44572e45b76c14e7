//! Sign-up, sign-in, refresh rotation with reuse detection, sign-out, password change.

use axum::http::StatusCode;
use chrono::Utc;
use keel_core::identity::{hash_secret, Email};
use keel_core::ids::{RefreshTokenId, SessionId, TenantId, UserId};
use keel_store::{
    NewRefreshToken, NewSession, NewUser, Rotation, StoreError, TenantScope, UserRecord,
};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::tokens::{self, AccessToken};
use super::{throttle, Identity};
use crate::ApiError;

/// Where a sign-in comes from.
#[derive(Clone, Debug, Default)]
pub struct ClientMeta {
    /// Device name the client gave.
    pub device_name: Option<String>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
    /// Peer IP.
    pub ip: Option<String>,
}

/// OAuth 2 style token answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPairOut {
    /// A short-lived JWT.
    pub access_token: String,
    /// Opaque, single-use; exchange at `/v1/auth/refresh`.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The session these tokens belong to.
    pub session_id: String,
}

pub(crate) fn invalid_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "wrong email or password",
    )
}

fn invalid_refresh(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message.to_string())
}

impl Identity {
    /// The plan claim of a user: the manifest's default until billing assigns plans.
    fn plan_of(&self, default_plan: &str) -> String {
        default_plan.to_string()
    }

    /// Creates a user with a personal tenant and signs them in.
    pub async fn register(
        &self,
        email: &str,
        password: &str,
        meta: ClientMeta,
        default_plan: &str,
    ) -> Result<TokenPairOut, ApiError> {
        let email = Email::parse(email).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_email",
                e.to_string(),
            )
            .with_details(json!({"field": "email"}))
        })?;
        self.config
            .policy
            .check(password, email.local_part())
            .map_err(|v| {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, v.code, v.message)
                    .with_details(json!({"field": "password"}))
            })?;
        let hash = self
            .passwords
            .hash(password)
            .await
            .map_err(ApiError::internal)?;
        let user = self
            .store
            .create_user(NewUser {
                id: UserId::new(),
                tenant_id: TenantId::new(),
                tenant_name: email.as_str().to_string(),
                email: Some(email.as_str().to_string()),
                password_hash: Some(hash),
                wallet_address: None,
                role: "user".into(),
            })
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => ApiError::new(
                    StatusCode::CONFLICT,
                    "email_taken",
                    "an account with this email exists",
                ),
                other => other.into(),
            })?;
        self.audit(
            user.tenant_id,
            &user.id.to_string(),
            "auth.register",
            None,
            json!({}),
        )
        .await;
        self.open_session(&user, meta, default_plan, "auth.login")
            .await
    }

    /// Email + password sign-in, throttled per account and IP.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        meta: ClientMeta,
        default_plan: &str,
    ) -> Result<TokenPairOut, ApiError> {
        let normalised = Email::parse(email).map(|e| e.as_str().to_string());
        let account = normalised
            .clone()
            .unwrap_or_else(|_| email.trim().to_string());
        let keys = throttle::keys(&account, meta.ip.as_deref());
        self.check_throttle(&keys).await?;
        let user = match &normalised {
            Ok(e) => self.store.find_user_by_email(e).await?,
            Err(_) => None,
        };
        let stored = user.as_ref().and_then(|u| u.password_hash.as_deref());
        let verified = self
            .passwords
            .verify(password, stored)
            .await
            .map_err(ApiError::internal)?;
        let tenant = user
            .as_ref()
            .map_or_else(super::system_tenant, |u| u.tenant_id);
        let Some(user) = user.filter(|_| verified.ok) else {
            self.record_failure(&keys).await?;
            self.audit(
                tenant,
                "anonymous",
                "auth.login_failed",
                None,
                json!({"ip": meta.ip}),
            )
            .await;
            return Err(invalid_credentials());
        };
        self.store.clear_failures(&keys[0].0).await?;
        if verified.needs_rehash {
            let fresh = self
                .passwords
                .hash(password)
                .await
                .map_err(ApiError::internal)?;
            self.store
                .set_password_hash(&TenantScope::new(user.tenant_id), user.id, &fresh)
                .await?;
        }
        self.open_session(&user, meta, default_plan, "auth.login")
            .await
    }

    /// Opens a session for a signed-in user and issues its first token pair.
    pub(crate) async fn open_session(
        &self,
        user: &UserRecord,
        meta: ClientMeta,
        default_plan: &str,
        audit_action: &str,
    ) -> Result<TokenPairOut, ApiError> {
        let scope = TenantScope::new(user.tenant_id);
        let now = Utc::now();
        let refresh_ttl =
            chrono::Duration::from_std(self.config.refresh_ttl).map_err(ApiError::internal)?;
        let refresh = keel_core::identity::random_token("rt");
        let session = self
            .store
            .create_session(
                &scope,
                NewSession {
                    id: SessionId::new(),
                    user_id: user.id,
                    device_name: meta.device_name.map(|d| d.chars().take(100).collect()),
                    user_agent: meta.user_agent.map(|d| d.chars().take(300).collect()),
                    ip: meta.ip.clone(),
                    expires_at: now + refresh_ttl,
                },
                NewRefreshToken {
                    id: RefreshTokenId::new(),
                    token_hash: hash_secret(&refresh),
                    expires_at: now + refresh_ttl,
                },
            )
            .await?;
        self.sessions.put(session.id, true);
        self.audit(
            user.tenant_id,
            &user.id.to_string(),
            audit_action,
            Some(session.id.to_string()),
            json!({"ip": meta.ip}),
        )
        .await;
        self.pair(user, session.id, refresh, default_plan)
    }

    fn pair(
        &self,
        user: &UserRecord,
        session: SessionId,
        refresh_token: String,
        default_plan: &str,
    ) -> Result<TokenPairOut, ApiError> {
        let access = AccessToken {
            user: user.id,
            tenant: user.tenant_id,
            session,
            role: user.role.clone(),
            plan: self.plan_of(default_plan),
        };
        let (access_token, expires_in) = tokens::issue(&self.keys, &access, self.config.access_ttl)
            .map_err(ApiError::internal)?;
        Ok(TokenPairOut {
            access_token,
            refresh_token,
            token_type: "Bearer",
            expires_in,
            session_id: session.to_string(),
        })
    }

    /// Spends a refresh token for a new pair. A spent token presented again revokes the
    /// session, unless it is within the grace window, where it gets the same successor.
    pub async fn refresh(&self, token: &str, default_plan: &str) -> Result<TokenPairOut, ApiError> {
        let invalid = || invalid_refresh("invalid_refresh_token", "the refresh token is not valid");
        let record = self
            .store
            .find_refresh_token(&hash_secret(token))
            .await?
            .ok_or_else(invalid)?;
        let scope = TenantScope::new(record.tenant_id);
        let now = Utc::now();
        let session = self.store.get_session(&scope, record.session_id).await?;
        if session.revoked_at.is_some() || session.expires_at <= now {
            return Err(invalid_refresh(
                "session_revoked",
                "the session has ended; sign in again",
            ));
        }
        if record.expires_at <= now {
            return Err(invalid_refresh(
                "refresh_token_expired",
                "the refresh token has expired",
            ));
        }
        let user = self.store.get_user(&scope, session.user_id).await?;
        let successor = self
            .keys
            .successor_of(token)
            .ok_or_else(|| ApiError::internal("no key ring"))?;
        let child = NewRefreshToken {
            id: RefreshTokenId::new(),
            token_hash: hash_secret(&successor),
            expires_at: session.expires_at,
        };
        match self
            .store
            .rotate_refresh_token(&scope, record.id, child, now)
            .await?
        {
            Rotation::Rotated => self.pair(&user, session.id, successor, default_plan),
            Rotation::AlreadyUsed {
                used_at,
                successor_id,
            } => {
                let grace = chrono::Duration::from_std(self.config.refresh_grace)
                    .map_err(ApiError::internal)?;
                let stored = self
                    .store
                    .find_refresh_token(&hash_secret(&successor))
                    .await?;
                let same = stored.is_some_and(|s| Some(s.id) == successor_id);
                if now - used_at <= grace && same {
                    return self.pair(&user, session.id, successor, default_plan);
                }
                self.store
                    .revoke_session(&scope, user.id, session.id, "refresh_reuse")
                    .await?;
                self.sessions.put(session.id, false);
                self.audit(
                    user.tenant_id,
                    "system",
                    "auth.refresh_reuse",
                    Some(session.id.to_string()),
                    json!({}),
                )
                .await;
                Err(invalid_refresh(
                    "refresh_token_reused",
                    "this refresh token was already used; the session has been ended",
                ))
            }
        }
    }
}
