//! `AuthUser`: the caller of a client API route, from `Authorization: Bearer <access
//! token | API key>`. Every failure is 401 `invalid_token` (the reason is only logged).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use keel_core::identity::looks_like_api_key;
use keel_core::ids::{ApiKeyId, SessionId};
use keel_store::TenantScope;

use super::tokens::{self, AccessToken};
use super::Identity;
use crate::{ApiError, AppState};

/// How the caller authenticated.
#[derive(Clone, Debug)]
pub enum Via {
    /// An access token of this session.
    Session(SessionId),
    /// An API key with these scopes.
    ApiKey {
        /// The key.
        id: ApiKeyId,
        /// Its scopes.
        scopes: Vec<String>,
    },
}

/// An authenticated product user.
#[derive(Clone, Debug)]
pub struct AuthUser {
    /// Who, in which tenant, with which role and plan.
    pub token: AccessToken,
    /// By what means.
    pub via: Via,
}

impl AuthUser {
    /// The caller's tenant scope.
    pub fn scope(&self) -> TenantScope {
        TenantScope::new(self.token.tenant)
    }

    /// Refuses API keys (routes that manage sessions and keys need a signed-in user).
    pub fn require_session(&self) -> Result<SessionId, ApiError> {
        match &self.via {
            Via::Session(id) => Ok(*id),
            Via::ApiKey { .. } => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "session_required",
                "this route needs a signed-in session, not an API key",
            )),
        }
    }

    /// Refuses API keys that lack `scope` (or `all`).
    pub fn require_scope(&self, scope: &str) -> Result<(), ApiError> {
        match &self.via {
            Via::Session(_) => Ok(()),
            Via::ApiKey { scopes, .. } if scopes.iter().any(|s| s == scope || s == "all") => Ok(()),
            Via::ApiKey { .. } => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("this API key lacks the `{scope}` scope"),
            )
            .with_details(serde_json::json!({ "required_scope": scope }))),
        }
    }
}

pub(crate) fn invalid_token() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "missing, malformed, expired or revoked credentials",
    )
    .with_header(
        header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Bearer"),
    )
}

/// The bearer credential of a request, if any.
pub(crate) fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl Identity {
    /// Authenticates a bearer credential.
    pub async fn authenticate(&self, credential: &str) -> Result<AuthUser, ApiError> {
        if looks_like_api_key(credential) {
            return self.authenticate_api_key(credential).await;
        }
        let token = match self.verified.get(credential) {
            Some(t) => t,
            None => {
                let (token, exp) = tokens::verify_signature(&self.keys, credential)
                    .await
                    .map_err(|why| {
                        tracing::debug!(reason = %why, "access token refused");
                        invalid_token()
                    })?;
                self.verified.put(credential, &token, exp);
                token
            }
        };
        if !self.session_live(&token).await? {
            return Err(invalid_token());
        }
        let via = Via::Session(token.session);
        Ok(AuthUser { token, via })
    }

    async fn session_live(&self, token: &AccessToken) -> Result<bool, ApiError> {
        if let Some(live) = self.sessions.get(token.session) {
            return Ok(live);
        }
        let scope = TenantScope::new(token.tenant);
        let live = match self.store.get_session(&scope, token.session).await {
            Ok(s) => {
                s.revoked_at.is_none()
                    && s.expires_at > chrono::Utc::now()
                    && s.user_id == token.user
            }
            Err(keel_store::StoreError::NotFound) => false,
            Err(e) => return Err(e.into()),
        };
        self.sessions.put(token.session, live);
        Ok(live)
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<AuthUser>() {
            return Ok(user.clone());
        }
        let credential = bearer(parts).ok_or_else(invalid_token)?;
        let user = state.identity().authenticate(credential).await?;
        parts.extensions.insert(user.clone());
        Ok(user)
    }
}
