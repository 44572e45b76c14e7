//! Claiming due deliveries and recording attempts on PostgreSQL.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::PostgresStore;
use crate::error::map_sqlx;
use crate::webhook_calc::{self, endpoint_columns};
use crate::{AttemptOutcome, AttemptResult, DueDelivery, StoreResult};

/// `SKIP LOCKED` hands each concurrent claimer different rows; the lease keeps a claimed
/// row from being claimed again until its attempt is recorded or the lease runs out.
pub(super) async fn claim(
    store: &PostgresStore,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> StoreResult<Vec<DueDelivery>> {
    if limit <= 0 {
        return Ok(Vec::new());
    }
    let token = uuid::Uuid::now_v7().to_string();
    let mut tx = store.pool().begin().await.map_err(map_sqlx)?;
    sqlx::query(
        "UPDATE webhook_deliveries d SET locked_until = $2, claim_token = $3
         FROM (SELECT d.message_id, d.endpoint_id FROM webhook_deliveries d
               JOIN webhook_endpoints e ON e.id = d.endpoint_id
               WHERE d.status = 'pending' AND d.next_attempt_at <= $1
                 AND (d.locked_until IS NULL OR d.locked_until <= $1) AND e.enabled
               ORDER BY d.next_attempt_at LIMIT $4
               FOR UPDATE OF d SKIP LOCKED) due
         WHERE d.message_id = due.message_id AND d.endpoint_id = due.endpoint_id",
    )
    .bind(now)
    .bind(lease_until)
    .bind(&token)
    .bind(limit)
    .execute(&mut *tx)
    .await
    .map_err(map_sqlx)?;
    let rows = sqlx::query(
        "SELECT d.attempts AS d_attempts, d.failures AS d_failures, d.endpoint_id AS e_id,
                m.id, m.tenant_id, m.event_type, m.payload, m.created_at
         FROM webhook_deliveries d JOIN webhook_messages m ON m.id = d.message_id
         WHERE d.claim_token = $1 ORDER BY d.next_attempt_at",
    )
    .bind(&token)
    .fetch_all(&mut *tx)
    .await
    .map_err(map_sqlx)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let endpoint_id: String = row.try_get("e_id").map_err(map_sqlx)?;
        let e = sqlx::query(concat!(
            "SELECT ",
            endpoint_columns!(),
            " FROM webhook_endpoints WHERE id = $1"
        ))
        .bind(&endpoint_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_sqlx)?;
        let e = webhook_calc::endpoint(&e)?;
        let attempts: i64 = row.try_get("d_attempts").map_err(map_sqlx)?;
        out.push(DueDelivery {
            message: webhook_calc::message(row)?,
            endpoint_id: e.id,
            secrets: webhook_calc::signing_secrets(&e, now),
            url: e.url,
            attempt: attempts + 1,
            failures: row.try_get("d_failures").map_err(map_sqlx)?,
        });
    }
    tx.commit().await.map_err(map_sqlx)?;
    Ok(out)
}

/// The attempt row's unique `(message, endpoint, attempt)` refuses a second record of the
/// same attempt; the delivery only moves on from the attempt count the claim saw.
pub(super) async fn record(
    store: &PostgresStore,
    d: &DueDelivery,
    r: AttemptResult,
) -> StoreResult<AttemptOutcome> {
    let at = crate::micros(r.attempted_at);
    let mut tx = store.pool().begin().await.map_err(map_sqlx)?;
    let e = sqlx::query(concat!(
        "SELECT ",
        endpoint_columns!(),
        " FROM webhook_endpoints WHERE id = $1 FOR UPDATE"
    ))
    .bind(d.endpoint_id.to_string())
    .fetch_optional(&mut *tx)
    .await
    .map_err(map_sqlx)?;
    let Some(e) = e.as_ref().map(webhook_calc::endpoint).transpose()? else {
        // Deleted meanwhile: its deliveries went with it.
        return Ok(webhook_calc::not_recorded());
    };
    let inserted = sqlx::query(
        "INSERT INTO webhook_attempts (id, tenant_id, message_id, endpoint_id, attempt,
             attempted_at, status_code, latency_ms, error, response_body, succeeded)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (message_id, endpoint_id, attempt) DO NOTHING",
    )
    .bind(crate::webhook_out::attempt_id().to_string())
    .bind(e.tenant_id.to_string())
    .bind(d.message.id.to_string())
    .bind(d.endpoint_id.to_string())
    .bind(d.attempt)
    .bind(at)
    .bind(r.status_code.map(i64::from))
    .bind(r.latency_ms)
    .bind(&r.error)
    .bind(&r.response_body)
    .bind(r.succeeded)
    .execute(&mut *tx)
    .await
    .map_err(map_sqlx)?
    .rows_affected();
    if inserted == 0 {
        return Ok(webhook_calc::not_recorded());
    }
    let v = webhook_calc::verdict(d.failures, &r, e.failing_since, e.enabled);
    sqlx::query(
        "UPDATE webhook_deliveries SET status = $3, attempts = $4, failures = $5,
             next_attempt_at = COALESCE($6, next_attempt_at), locked_until = NULL,
             claim_token = NULL, last_attempt_at = $7, updated_at = $7
         WHERE message_id = $1 AND endpoint_id = $2",
    )
    .bind(d.message.id.to_string())
    .bind(d.endpoint_id.to_string())
    .bind(v.status.as_str())
    .bind(d.attempt)
    .bind(v.failures)
    .bind(v.next_attempt_at.map(crate::micros))
    .bind(at)
    .execute(&mut *tx)
    .await
    .map_err(map_sqlx)?;
    sqlx::query(
        "UPDATE webhook_endpoints SET failing_since = $2,
             enabled = enabled AND NOT $3,
             disabled_reason = CASE WHEN $3 THEN 'failing' ELSE disabled_reason END,
             updated_at = CASE WHEN $3 THEN $4 ELSE updated_at END
         WHERE id = $1",
    )
    .bind(d.endpoint_id.to_string())
    .bind(v.failing_since.map(crate::micros))
    .bind(v.disable)
    .bind(at)
    .execute(&mut *tx)
    .await
    .map_err(map_sqlx)?;
    tx.commit().await.map_err(map_sqlx)?;
    Ok(AttemptOutcome {
        recorded: true,
        status: v.status,
        next_attempt_at: v.next_attempt_at,
        endpoint_disabled: v.disable,
    })
}
