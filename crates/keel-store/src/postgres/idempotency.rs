use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::PostgresStore;
use crate::error::map_sqlx;
use crate::idempotency::{decide, Existing};
use crate::{
    ClaimOutcome, IdempotencyRecord, IdempotencyStore, KeptRecord, NewIdempotencyClaim, StoreError,
    StoreResult, TenantScope,
};

const COLUMNS: &str = "id, principal, method, path, fingerprint, lock_token, locked_until, \
                       status, response, created_at, expires_at";

/// A row can vanish between a refused insert and the locking read (released by its
/// holder); the claim is then tried again, a bounded number of times.
const ATTEMPTS: usize = 5;

#[async_trait]
impl IdempotencyStore for PostgresStore {
    async fn claim_idempotency(
        &self,
        scope: &TenantScope,
        claim: &NewIdempotencyClaim,
        now: DateTime<Utc>,
    ) -> StoreResult<ClaimOutcome> {
        let now = crate::micros(now);
        let tenant = scope.tenant().to_string();
        for _ in 0..ATTEMPTS {
            let mut tx = self.pool().begin().await.map_err(map_sqlx)?;
            // Concurrent inserts of one id wait for each other here: one wins.
            if insert(&mut tx, &tenant, claim, now).await? {
                tx.commit().await.map_err(map_sqlx)?;
                return Ok(ClaimOutcome::Claimed { taken_over: false });
            }
            let row = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM idempotency_keys WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
            ))
            .bind(&tenant)
            .bind(&claim.id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_sqlx)?;
            let Some(row) = row.as_ref().map(decode).transpose()? else {
                continue;
            };
            let outcome = match decide(&row, claim, now) {
                Existing::Replace => {
                    sqlx::query("DELETE FROM idempotency_keys WHERE tenant_id = $1 AND id = $2")
                        .bind(&tenant)
                        .bind(&claim.id)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_sqlx)?;
                    insert(&mut tx, &tenant, claim, now).await?;
                    ClaimOutcome::Claimed { taken_over: false }
                }
                Existing::TakeOver => {
                    sqlx::query(
                        "UPDATE idempotency_keys SET lock_token = $1, locked_until = $2
                         WHERE tenant_id = $3 AND id = $4",
                    )
                    .bind(claim.lock)
                    .bind(crate::micros(claim.locked_until))
                    .bind(&tenant)
                    .bind(&claim.id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_sqlx)?;
                    ClaimOutcome::Claimed { taken_over: true }
                }
                Existing::Answer(answer) => answer,
            };
            tx.commit().await.map_err(map_sqlx)?;
            return Ok(outcome);
        }
        Err(StoreError::Conflict(
            "the idempotency record kept changing under the claim".into(),
        ))
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
             SET lock_token = NULL, locked_until = NULL, status = $1, response = $2, expires_at = $3
             WHERE tenant_id = $4 AND id = $5 AND lock_token = $6",
        )
        .bind(i32::from(kept.status))
        .bind(kept.response)
        .bind(crate::micros(expires_at))
        .bind(scope.tenant().to_string())
        .bind(id)
        .bind(lock)
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
            "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND id = $2 AND lock_token = $3",
        )
        .bind(scope.tenant().to_string())
        .bind(id)
        .bind(lock)
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
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM idempotency_keys WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(scope.tenant().to_string())
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .map_err(map_sqlx)?;
        row.as_ref().map(decode).transpose()
    }

    async fn sweep_idempotency(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<u64> {
        if limit <= 0 {
            return Ok(0);
        }
        // SKIP LOCKED: nodes sweeping together take different batches and never wait
        // on a row a claim is deciding about.
        let done = sqlx::query(
            "DELETE FROM idempotency_keys WHERE (tenant_id, id) IN (
                 SELECT tenant_id, id FROM idempotency_keys WHERE expires_at <= $1
                 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(crate::micros(now))
        .bind(limit)
        .execute(self.pool())
        .await
        .map_err(map_sqlx)?;
        Ok(done.rows_affected())
    }
}

/// Inserts the claim unless a row with its id exists; true when inserted.
async fn insert(
    conn: &mut PgConnection,
    tenant: &str,
    claim: &NewIdempotencyClaim,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let done = sqlx::query(&format!(
        "INSERT INTO idempotency_keys (tenant_id, {COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, $9, $10)
         ON CONFLICT (tenant_id, id) DO NOTHING"
    ))
    .bind(tenant)
    .bind(&claim.id)
    .bind(&claim.principal)
    .bind(&claim.method)
    .bind(&claim.path)
    .bind(&claim.fingerprint)
    .bind(claim.lock)
    .bind(crate::micros(claim.locked_until))
    .bind(now)
    .bind(crate::micros(claim.expires_at))
    .execute(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    Ok(done.rows_affected() == 1)
}

fn decode(row: &PgRow) -> StoreResult<IdempotencyRecord> {
    let status: Option<i32> = row.try_get("status")?;
    let response: Option<Vec<u8>> = row.try_get("response")?;
    let kept = match (status, response) {
        (Some(status), Some(response)) => Some(KeptRecord {
            status: u16::try_from(status)
                .map_err(|e| StoreError::Other(sqlx::Error::Decode(Box::new(e))))?,
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
        lock: row.try_get("lock_token")?,
        locked_until: row.try_get("locked_until")?,
        kept,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}
