//! Ending sessions and changing passwords.

use axum::http::StatusCode;
use keel_core::ids::SessionId;
use keel_store::TenantScope;
use serde_json::json;

use super::tokens::AccessToken;
use super::{throttle, Identity};
use crate::ApiError;

impl Identity {
    /// Ends one of the user's sessions.
    pub async fn end_session(
        &self,
        who: &AccessToken,
        id: SessionId,
        reason: &str,
    ) -> Result<(), ApiError> {
        let scope = TenantScope::new(who.tenant);
        self.store
            .revoke_session(&scope, who.user, id, reason)
            .await?;
        self.sessions.put(id, false);
        self.audit(
            who.tenant,
            &who.user.to_string(),
            "auth.session_ended",
            Some(id.to_string()),
            json!({"reason": reason}),
        )
        .await;
        Ok(())
    }

    /// Ends every session of the user (but `keep`).
    pub async fn end_all_sessions(
        &self,
        who: &AccessToken,
        keep: Option<SessionId>,
        reason: &str,
    ) -> Result<u64, ApiError> {
        let scope = TenantScope::new(who.tenant);
        let ended = self.store.list_sessions(&scope, who.user).await?;
        let n = self
            .store
            .revoke_user_sessions(&scope, who.user, keep, reason)
            .await?;
        for s in ended.iter().filter(|s| Some(s.id) != keep) {
            self.sessions.put(s.id, false);
        }
        self.audit(
            who.tenant,
            &who.user.to_string(),
            "auth.sessions_ended",
            None,
            json!({"reason": reason, "count": n}),
        )
        .await;
        Ok(n)
    }

    /// Changes the password (checking the current one) and ends every other session.
    pub async fn change_password(
        &self,
        who: &AccessToken,
        current: &str,
        new: &str,
    ) -> Result<(), ApiError> {
        let scope = TenantScope::new(who.tenant);
        let user = self.store.get_user(&scope, who.user).await?;
        let keys = throttle::keys(user.email.as_deref().unwrap_or(""), None);
        self.check_throttle(&keys).await?;
        let verified = self
            .passwords
            .verify(current, user.password_hash.as_deref())
            .await
            .map_err(ApiError::internal)?;
        if !verified.ok {
            self.record_failure(&keys).await?;
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "the current password is wrong",
            ));
        }
        let local = user
            .email
            .as_deref()
            .and_then(|e| e.rsplit_once('@'))
            .map_or("", |(l, _)| l);
        self.config.policy.check(new, local).map_err(|v| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, v.code, v.message)
                .with_details(json!({"field": "new_password"}))
        })?;
        let hash = self.passwords.hash(new).await.map_err(ApiError::internal)?;
        self.store.set_password_hash(&scope, user.id, &hash).await?;
        self.audit(
            who.tenant,
            &who.user.to_string(),
            "auth.password_changed",
            None,
            json!({}),
        )
        .await;
        self.end_all_sessions(who, Some(who.session), "password_change")
            .await?;
        Ok(())
    }
}
