use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keel_core::ids::{AdminId, ChallengeId, SessionId};

use super::{admins, PostgresStore};
use crate::error::map_sqlx;
use crate::rows::{self, challenge_columns, failure_columns, signing_key_columns};
use crate::{
    AdminRecord, AdminSessionRecord, AdminUpdate, AuthStore, ChallengeRecord, FailureCount,
    NewAdmin, SigningKeyRecord, StoreError, StoreResult,
};

#[async_trait]
impl AuthStore for PostgresStore {
    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            signing_key_columns!(),
            " FROM signing_keys ORDER BY created_at, kid"
        ))
        .fetch_all(self.pool())
        .await
        .map_err(map_sqlx)?
        .iter()
        .map(rows::signing_key)
        .collect()
    }

    async fn insert_signing_key(&self, key: SigningKeyRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_der, public_raw, created_at, retired_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.kid)
        .bind(&key.alg)
        .bind(&key.private_der)
        .bind(&key.public_raw)
        .bind(crate::micros(key.created_at))
        .bind(key.retired_at.map(crate::micros))
        .execute(self.pool())
        .await
        .map_err(map_sqlx)?;
        Ok(())
    }

    async fn retire_signing_key(&self, kid: &str, at: DateTime<Utc>) -> StoreResult<()> {
        // COALESCE keeps the first retirement time, so repeating is harmless.
        let done = sqlx::query(
            "UPDATE signing_keys SET retired_at = COALESCE(retired_at, $1) WHERE kid = $2",
        )
        .bind(crate::micros(at))
        .bind(kid)
        .execute(self.pool())
        .await
        .map_err(map_sqlx)?;
        match done.rows_affected() {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
    }

    async fn create_challenge(&self, challenge: ChallengeRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO wallet_challenges (id, address, message, expires_at, used_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(challenge.id.to_string())
        .bind(&challenge.address)
        .bind(&challenge.message)
        .bind(crate::micros(challenge.expires_at))
        .bind(challenge.used_at.map(crate::micros))
        .execute(self.pool())
        .await
        .map_err(map_sqlx)?;
        Ok(())
    }

    async fn consume_challenge(
        &self,
        id: ChallengeId,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ChallengeRecord>> {
        // One conditional update: of concurrent consumers only one sees a row.
        sqlx::query(concat!(
            "UPDATE wallet_challenges SET used_at = $1
             WHERE id = $2 AND used_at IS NULL AND expires_at > $1
             RETURNING ",
            challenge_columns!()
        ))
        .bind(crate::micros(now))
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await
        .map_err(map_sqlx)?
        .as_ref()
        .map(rows::challenge)
        .transpose()
    }

    async fn record_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window_secs: i64,
    ) -> StoreResult<FailureCount> {
        let now = crate::micros(now);
        // One upsert, so concurrent failures are each counted exactly once.
        let row = sqlx::query(concat!(
            "INSERT INTO auth_failures (key, failures, window_start, last_failure)
             VALUES ($1, 1, $2, $2)
             ON CONFLICT (key) DO UPDATE SET
                 failures = CASE WHEN auth_failures.window_start < $3 THEN 1
                                 ELSE auth_failures.failures + 1 END,
                 window_start = CASE WHEN auth_failures.window_start < $3
                                     THEN excluded.window_start
                                     ELSE auth_failures.window_start END,
                 last_failure = excluded.last_failure
             RETURNING ",
            failure_columns!()
        ))
        .bind(key)
        .bind(now)
        .bind(crate::window_cutoff(now, window_secs))
        .fetch_one(self.pool())
        .await
        .map_err(map_sqlx)?;
        rows::failure_count(&row)
    }

    async fn failure_count(&self, key: &str) -> StoreResult<Option<FailureCount>> {
        sqlx::query(concat!(
            "SELECT ",
            failure_columns!(),
            " FROM auth_failures WHERE key = $1"
        ))
        .bind(key)
        .fetch_optional(self.pool())
        .await
        .map_err(map_sqlx)?
        .as_ref()
        .map(rows::failure_count)
        .transpose()
    }

    async fn clear_failures(&self, key: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM auth_failures WHERE key = $1")
            .bind(key)
            .execute(self.pool())
            .await
            .map_err(map_sqlx)?;
        Ok(())
    }

    async fn create_admin(&self, admin: NewAdmin) -> StoreResult<AdminRecord> {
        admins::create(self, admin).await
    }

    async fn find_admin_by_email(&self, email: &str) -> StoreResult<Option<AdminRecord>> {
        admins::find_by_email(self, email).await
    }

    async fn get_admin(&self, id: AdminId) -> StoreResult<AdminRecord> {
        admins::get(self, id).await
    }

    async fn list_admins(&self) -> StoreResult<Vec<AdminRecord>> {
        admins::list(self).await
    }

    async fn update_admin(&self, id: AdminId, update: AdminUpdate) -> StoreResult<AdminRecord> {
        admins::update(self, id, update).await
    }

    async fn count_admins(&self) -> StoreResult<i64> {
        admins::count(self).await
    }

    async fn create_admin_session(
        &self,
        session: AdminSessionRecord,
        token_hash: Vec<u8>,
    ) -> StoreResult<()> {
        admins::create_session(self, session, token_hash).await
    }

    async fn find_admin_session(
        &self,
        token_hash: &[u8],
    ) -> StoreResult<Option<AdminSessionRecord>> {
        admins::find_session(self, token_hash).await
    }

    async fn revoke_admin_session(&self, id: SessionId, at: DateTime<Utc>) -> StoreResult<()> {
        admins::revoke_session(self, id, crate::micros(at)).await
    }

    async fn revoke_admin_sessions(
        &self,
        admin: AdminId,
        keep: Option<SessionId>,
        at: DateTime<Utc>,
    ) -> StoreResult<u64> {
        admins::revoke_sessions(self, admin, keep, crate::micros(at)).await
    }
}
