use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use uuid::Uuid;

use super::SqliteStore;
use crate::error::map_sqlx;
use crate::idempotency::{decide, Existing};
use crate::{
    ClaimOutcome, IdempotencyRecord, IdempotencyStore, KeptRecord, NewIdempotencyClaim, StoreError,
    StoreResult, TenantScope,
};

const COLUMNS: &str = "id, principal, method, path, fingerprint, lock_token, locked_until, \
                       status, response, created_at, expires_at";

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn claim_idempotency(
        &self,
        scope: &TenantScope,
        claim: &NewIdempotencyClaim,
        now: DateTime<Utc>,
    ) -> StoreResult<ClaimOutcome> {
        let now = crate::micros(now);
        let tenant = scope.tenant().to_string();
        // The write lock taken at BEGIN serialises claims: read, decide, write.
        let mut tx = self.begin_write().await?;
        let row = find(&mut tx, &tenant, &claim.id).await?;
        let outcome = match row.map(|r| decide(&r, claim, now)) {
            None => {
                insert(&mut tx, &tenant, claim, now).await?;
                ClaimOutcome::Claimed { taken_over: false }
            }
            Some(Existing::Replace) => {
                sqlx::query("DELETE FROM idempotency_keys WHERE tenant_id = ? AND id = ?")
                    .bind(&tenant)
                    .bind(&claim.id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_sqlx)?;
                insert(&mut tx, &tenant, claim, now).await?;
                ClaimOutcome::Claimed { taken_over: false }
            }
            Some(Existing::TakeOver) => {
                sqlx::query(
                    "UPDATE idempotency_keys SET lock_token = ?, locked_until = ?
                     WHERE tenant_id = ? AND id = ?",
                )
                .bind(claim.lock.to_string())
                .bind(crate::micros(claim.locked_until))
                .bind(&tenant)
                .bind(&claim.id)
                .execute(&mut *tx)
                .await
                .map_err(map_sqlx)?;
                ClaimOutcome::Claimed { taken_over: true }
            }
            Some(Existing::Answer(answer)) => answer,
        };
        tx.commit().await.map_err(map_sqlx)?;
        Ok(outcome)
    }

    async fn complete_idempotency(
        &self,
        scope: &TenantScope,
        id: &str,
        lock: Uuid,
        kept: KeptRecord,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE idempotency_keys
             SET lock_token = NULL, locked_until = NULL, status = ?, response = ?, expires_at = ?
             WHERE tenant_id = ? AND id = ? AND lock_token = ?",
        )
        .bind(i64::from(kept.status))
        .bind(kept.response)
        .bind(crate::micros(expires_at))
        .bind(scope.tenant().to_string())
        .bind(id)
        .bind(lock.to_string())
        .execute(self.pool())
        .await
        .map_err(map_sqlx)?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_idempotency(
        &self,
        scope: &TenantScope,
        id: &str,
        lock: Uuid,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "DELETE FROM idempotency_keys WHERE tenant_id = ? AND id = ? AND lock_token = ?",
        )
        .bind(scope.tenant().to_string())
        .bind(id)
        .bind(lock.to_string())
        .execute(self.pool())
        .await
        .map_err(map_sqlx)?;
        Ok(done.rows_affected() == 1)
    }

    async fn find_idempotency(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        let mut conn = self.pool().acquire().await.map_err(map_sqlx)?;
        find(&mut conn, &scope.tenant().to_string(), id).await
    }

    async fn sweep_idempotency(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<u64> {
        if limit <= 0 {
            return Ok(0);
        }
        let done = sqlx::query(
            "DELETE FROM idempotency_keys WHERE rowid IN (
                 SELECT rowid FROM idempotency_keys WHERE expires_at <= ?
                 ORDER BY expires_at LIMIT ?)",
        )
        .bind(crate::micros(now))
        .bind(limit)
        .execute(self.pool())
        .await
        .map_err(map_sqlx)?;
        Ok(done.rows_affected())
    }
}

async fn find(
    conn: &mut SqliteConnection,
    tenant: &str,
    id: &str,
) -> StoreResult<Option<IdempotencyRecord>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM idempotency_keys WHERE tenant_id = ? AND id = ?"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    row.as_ref().map(decode).transpose()
}

async fn insert(
    conn: &mut SqliteConnection,
    tenant: &str,
    claim: &NewIdempotencyClaim,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO idempotency_keys (tenant_id, {COLUMNS})
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?)"
    ))
    .bind(tenant)
    .bind(&claim.id)
    .bind(&claim.principal)
    .bind(&claim.method)
    .bind(&claim.path)
    .bind(&claim.fingerprint)
    .bind(claim.lock.to_string())
    .bind(crate::micros(claim.locked_until))
    .bind(now)
    .bind(crate::micros(claim.expires_at))
    .execute(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    Ok(())
}

fn decode(row: &SqliteRow) -> StoreResult<IdempotencyRecord> {
    let bad = |e: String| StoreError::Other(sqlx::Error::Decode(e.into()));
    let lock: Option<String> = row.try_get("lock_token")?;
    let lock = lock
        .map(|l| Uuid::parse_str(&l).map_err(|e| bad(e.to_string())))
        .transpose()?;
    let status: Option<i64> = row.try_get("status")?;
    let response: Option<Vec<u8>> = row.try_get("response")?;
    let kept = match (status, response) {
        (Some(status), Some(response)) => Some(KeptRecord {
            status: u16::try_from(status).map_err(|e| bad(e.to_string()))?,
            response,
        }),
        _ => None,
    };
    Ok(IdempotencyRecord {
        id: row.try_get("id")?,
        principal: row.try_get("principal")?,
        method: row.try_get("method")?,
        path: row.try_get("path")?,
        fingerprint: row.try_get("fingerprint")?,
        lock,
        locked_until: row.try_get("locked_until")?,
        kept,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}
