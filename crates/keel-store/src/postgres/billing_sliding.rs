//! Sliding-window gates on PostgreSQL. A gate sums several bucket rows, which no single
//! row lock covers, so reservations on one window (tenant, owner, meter, length) are
//! serialised by a transaction-scoped advisory lock, taken at the gate's place in the
//! key order. Under READ COMMITTED the sum, read after the lock, sees every earlier
//! holder's committed buckets; commits, releases and expiry only move amounts within a
//! bucket and never wait for this lock.

use sqlx::{PgConnection, PgExecutor};

use crate::billing_calc::SlidingGate;
use crate::error::map_sqlx;
use crate::{Gate, StoreResult};

/// Takes the window's lock, then adds the gate's amount to the current bucket if every
/// counted bucket plus it stays within the limit (the `SELECT … WHERE` inserts nothing
/// otherwise).
pub(super) async fn take(
    conn: &mut PgConnection,
    tenant: &str,
    owner: &str,
    gate: &Gate,
    sliding: &SlidingGate,
) -> StoreResult<bool> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(&sliding.lock_key)
        .execute(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    let done = sqlx::query(
        r#"INSERT INTO quota_counters (tenant_id, owner, meter, "window", committed, reserved)
           SELECT $1, $2, $3, $4, 0, $5
           WHERE (SELECT COALESCE(SUM(committed + reserved), 0) FROM quota_counters
                  WHERE tenant_id = $1 AND owner = $2 AND meter = $3
                    AND "window" = ANY($7)) + $5 <= $6
           ON CONFLICT (tenant_id, owner, meter, "window") DO UPDATE
           SET reserved = quota_counters.reserved + EXCLUDED.reserved"#,
    )
    .bind(tenant)
    .bind(owner)
    .bind(&gate.key.meter)
    .bind(&gate.key.window)
    .bind(gate.amount)
    .bind(gate.limit)
    .bind(&sliding.members)
    .execute(conn)
    .await
    .map_err(map_sqlx)?;
    Ok(done.rows_affected() == 1)
}

/// Committed + reserved over every counted bucket.
pub(super) async fn used(
    db: impl PgExecutor<'_>,
    tenant: &str,
    owner: &str,
    gate: &Gate,
    sliding: &SlidingGate,
) -> StoreResult<i64> {
    let (sum,): (i64,) = sqlx::query_as(
        r#"SELECT COALESCE(SUM(committed + reserved), 0)::BIGINT FROM quota_counters
           WHERE tenant_id = $1 AND owner = $2 AND meter = $3 AND "window" = ANY($4)"#,
    )
    .bind(tenant)
    .bind(owner)
    .bind(&gate.key.meter)
    .bind(&sliding.members)
    .fetch_one(db)
    .await
    .map_err(map_sqlx)?;
    Ok(sum)
}
