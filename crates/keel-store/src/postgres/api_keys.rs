use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keel_core::ids::{ApiKeyId, UserId};
use sqlx::types::Json;

use super::PostgresStore;
use crate::error::map_sqlx;
use crate::rows::{self, api_key_columns};
use crate::{ApiKeyRecord, ApiKeyStore, NewApiKey, StoreError, StoreResult, TenantScope};

#[async_trait]
impl ApiKeyStore for PostgresStore {
    async fn create_api_key(
        &self,
        scope: &TenantScope,
        key: NewApiKey,
    ) -> StoreResult<ApiKeyRecord> {
        let record = ApiKeyRecord {
            id: key.id,
            tenant_id: scope.tenant(),
            user_id: key.user_id,
            name: key.name,
            prefix: key.prefix,
            scopes: key.scopes,
            expires_at: key.expires_at.map(crate::micros),
            last_used_at: None,
            revoked_at: None,
            created_at: crate::now(),
        };
        // Selecting through the owner's row refuses a user of another tenant.
        let done = sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, user_id, name, prefix, key_hash, scopes,
                                   expires_at, created_at)
             SELECT $1, tenant_id, id, $2, $3, $4, $5, $6, $7 FROM users WHERE id = $8 AND tenant_id = $9",
        )
        .bind(record.id.to_string())
        .bind(&record.name)
        .bind(&record.prefix)
        .bind(&key.key_hash)
        .bind(Json(&record.scopes))
        .bind(record.expires_at)
        .bind(record.created_at)
        .bind(record.user_id.to_string())
        .bind(scope.tenant().to_string())
        .execute(self.pool())
        .await
        .map_err(map_sqlx)?;
        match done.rows_affected() {
            0 => Err(StoreError::NotFound),
            _ => Ok(record),
        }
    }

    async fn list_api_keys(
        &self,
        scope: &TenantScope,
        user: UserId,
    ) -> StoreResult<Vec<ApiKeyRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            api_key_columns!(),
            " FROM api_keys WHERE tenant_id = $1 AND user_id = $2
              ORDER BY created_at DESC, id DESC"
        ))
        .bind(scope.tenant().to_string())
        .bind(user.to_string())
        .fetch_all(self.pool())
        .await
        .map_err(map_sqlx)?
        .iter()
        .map(rows::api_key)
        .collect()
    }

    async fn revoke_api_key(
        &self,
        scope: &TenantScope,
        user: UserId,
        id: ApiKeyId,
    ) -> StoreResult<()> {
        // COALESCE keeps the first revocation time, so repeating is harmless.
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1)
             WHERE id = $2 AND tenant_id = $3 AND user_id = $4",
        )
        .bind(crate::now())
        .bind(id.to_string())
        .bind(scope.tenant().to_string())
        .bind(user.to_string())
        .execute(self.pool())
        .await
        .map_err(map_sqlx)?;
        match done.rows_affected() {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
    }

    async fn find_api_key(&self, hash: &[u8]) -> StoreResult<Option<ApiKeyRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            api_key_columns!(),
            " FROM api_keys WHERE key_hash = $1"
        ))
        .bind(hash)
        .fetch_optional(self.pool())
        .await
        .map_err(map_sqlx)?
        .as_ref()
        .map(rows::api_key)
        .transpose()
    }

    async fn touch_api_key(
        &self,
        scope: &TenantScope,
        id: ApiKeyId,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        // Never moves backwards when touches from several nodes arrive out of order.
        let done = sqlx::query(
            "UPDATE api_keys
             SET last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < $1
                                     THEN $1 ELSE last_used_at END
             WHERE id = $2 AND tenant_id = $3",
        )
        .bind(crate::micros(at))
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
}
