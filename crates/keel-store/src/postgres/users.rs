use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keel_core::ids::{RefreshTokenId, SessionId, UserId};

use super::{sessions, PostgresStore};
use crate::error::map_sqlx;
use crate::rows::{self, user_columns};
use crate::{
    NewRefreshToken, NewSession, NewUser, RefreshTokenRecord, Rotation, SessionRecord, StoreError,
    StoreResult, TenantScope, UserRecord, UserStore,
};

#[async_trait]
impl UserStore for PostgresStore {
    async fn create_user(&self, user: NewUser) -> StoreResult<UserRecord> {
        let record = UserRecord {
            id: user.id,
            tenant_id: user.tenant_id,
            email: user.email,
            password_hash: user.password_hash,
            wallet_address: user.wallet_address,
            role: user.role,
            timezone: None,
            created_at: crate::now(),
        };
        let mut tx = self.pool().begin().await.map_err(map_sqlx)?;
        sqlx::query(
            "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(record.tenant_id.to_string())
        .bind(&user.tenant_name)
        .bind(record.created_at)
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx)?;
        sqlx::query(
            "INSERT INTO users (id, tenant_id, email, password_hash, wallet_address, role, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(record.id.to_string())
        .bind(record.tenant_id.to_string())
        .bind(&record.email)
        .bind(&record.password_hash)
        .bind(&record.wallet_address)
        .bind(&record.role)
        .bind(record.created_at)
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx)?;
        tx.commit().await.map_err(map_sqlx)?;
        Ok(record)
    }

    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE email = $1"
        ))
        .bind(email)
        .fetch_optional(self.pool())
        .await
        .map_err(map_sqlx)?
        .as_ref()
        .map(rows::user)
        .transpose()
    }

    async fn locate_user(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await
        .map_err(map_sqlx)?
        .as_ref()
        .map(rows::user)
        .transpose()
    }

    async fn find_user_by_wallet(&self, address: &str) -> StoreResult<Option<UserRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE wallet_address = $1"
        ))
        .bind(address)
        .fetch_optional(self.pool())
        .await
        .map_err(map_sqlx)?
        .as_ref()
        .map(rows::user)
        .transpose()
    }

    async fn get_user(&self, scope: &TenantScope, id: UserId) -> StoreResult<UserRecord> {
        sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1 AND tenant_id = $2"
        ))
        .bind(id.to_string())
        .bind(scope.tenant().to_string())
        .fetch_optional(self.pool())
        .await
        .map_err(map_sqlx)?
        .as_ref()
        .map_or(Err(StoreError::NotFound), rows::user)
    }

    async fn set_timezone(
        &self,
        scope: &TenantScope,
        id: UserId,
        timezone: Option<&str>,
        now: chrono::DateTime<chrono::Utc>,
        not_changed_since: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE users SET timezone = $1, timezone_changed_at = $2
             WHERE id = $3 AND tenant_id = $4
               AND (timezone_changed_at IS NULL OR timezone_changed_at <= $5)",
        )
        .bind(timezone)
        .bind(crate::micros(now))
        .bind(id.to_string())
        .bind(scope.tenant().to_string())
        .bind(crate::micros(not_changed_since))
        .execute(self.pool())
        .await
        .map_err(map_sqlx)?;
        if done.rows_affected() > 0 {
            return Ok(true);
        }
        self.get_user(scope, id).await.map(|_| false)
    }

    async fn set_password_hash(
        &self,
        scope: &TenantScope,
        id: UserId,
        hash: &str,
    ) -> StoreResult<()> {
        let done =
            sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2 AND tenant_id = $3")
                .bind(hash)
                .bind(id.to_string())
                .bind(scope.tenant().to_string())
                .execute(self.pool())
                .await
                .map_err(map_sqlx)?;
        match done.rows_affected() {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
    }

    async fn create_session(
        &self,
        scope: &TenantScope,
        session: NewSession,
        token: NewRefreshToken,
    ) -> StoreResult<SessionRecord> {
        sessions::create(self, scope, session, token).await
    }

    async fn get_session(&self, scope: &TenantScope, id: SessionId) -> StoreResult<SessionRecord> {
        sessions::get(self, scope, id).await
    }

    async fn list_sessions(
        &self,
        scope: &TenantScope,
        user: UserId,
    ) -> StoreResult<Vec<SessionRecord>> {
        sessions::list_live(self, scope, user, crate::now()).await
    }

    async fn revoke_session(
        &self,
        scope: &TenantScope,
        user: UserId,
        id: SessionId,
        reason: &str,
    ) -> StoreResult<()> {
        sessions::revoke(self, scope, user, id, reason).await
    }

    async fn revoke_user_sessions(
        &self,
        scope: &TenantScope,
        user: UserId,
        keep: Option<SessionId>,
        reason: &str,
    ) -> StoreResult<u64> {
        sessions::revoke_all_but(self, scope, user, keep, reason).await
    }

    async fn find_refresh_token(&self, hash: &[u8]) -> StoreResult<Option<RefreshTokenRecord>> {
        sessions::find_token(self, hash).await
    }

    async fn rotate_refresh_token(
        &self,
        scope: &TenantScope,
        parent: RefreshTokenId,
        child: NewRefreshToken,
        now: DateTime<Utc>,
    ) -> StoreResult<Rotation> {
        sessions::rotate(self, scope, parent, child, crate::micros(now)).await
    }
}
