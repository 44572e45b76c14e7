//! Reserving quota: the idempotency key, every gate and the prepaid hold, all or nothing.

use keel_core::ids::{ReservationId, UserId};
use sqlx::types::Json;
use sqlx::{SqliteConnection, SqliteExecutor};

use super::{billing_accounts, SqliteStore};
use crate::billing_calc::{self, in_lock_order, owner_of};
use crate::billing_rows::{self, reservation_columns};
use crate::error::map_sqlx;
use crate::rows::Columns;
use crate::{
    CounterKey, Gate, NewReservation, ReservationRecord, ReserveOutcome, StoreError, StoreResult,
    TenantScope,
};

/// `BEGIN IMMEDIATE` serialises reservations, so every conditional update below sees all
/// earlier ones and a key's first use is seen by the next.
pub(super) async fn reserve(
    store: &SqliteStore,
    scope: &TenantScope,
    r: NewReservation,
) -> StoreResult<ReserveOutcome> {
    let tenant = scope.tenant().to_string();
    let mut tx = store.begin_write().await?;
    if let Some(found) = find_by_key(&mut *tx, &tenant, &r.idempotency_key).await? {
        return Ok(billing_calc::replay(found, &r.request_hash));
    }
    for gate in in_lock_order(&r.gates) {
        if !take_gate(&mut tx, &tenant, r.user_id, gate).await? {
            tx.rollback().await.map_err(map_sqlx)?;
            let (committed, reserved) =
                counter(store.pool(), &tenant, r.user_id, &gate.key).await?;
            let used = committed + reserved;
            return Ok(ReserveOutcome::Refused {
                gate: gate.clone(),
                used,
            });
        }
    }
    if r.balance_micros > 0 && !hold(&mut tx, &tenant, r.user_id, r.balance_micros).await? {
        tx.rollback().await.map_err(map_sqlx)?;
        let (balance, held) = billing_accounts::balance(store.pool(), &tenant, r.user_id).await?;
        let available = balance - held;
        return Ok(ReserveOutcome::InsufficientBalance { available });
    }
    let (record, request_hash) = billing_calc::new_reservation(&tenant, r, crate::now());
    insert(&mut tx, &record, &request_hash).await?;
    tx.commit().await.map_err(map_sqlx)?;
    Ok(ReserveOutcome::Reserved(record))
}

/// Adds the gate's amount to its counter if that keeps it within the limit.
async fn take_gate(
    conn: &mut SqliteConnection,
    tenant: &str,
    user: UserId,
    gate: &Gate,
) -> StoreResult<bool> {
    let user = user.to_string();
    let owner = owner_of(&gate.key, &user);
    sqlx::query(
        r#"INSERT INTO quota_counters (tenant_id, owner, meter, "window", committed, reserved)
           VALUES (?, ?, ?, ?, 0, 0) ON CONFLICT DO NOTHING"#,
    )
    .bind(tenant)
    .bind(owner)
    .bind(&gate.key.meter)
    .bind(&gate.key.window)
    .execute(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    let done = sqlx::query(
        r#"UPDATE quota_counters SET reserved = reserved + ?1
           WHERE tenant_id = ?2 AND owner = ?3 AND meter = ?4 AND "window" = ?5
             AND committed + reserved + ?1 <= ?6"#,
    )
    .bind(gate.amount)
    .bind(tenant)
    .bind(owner)
    .bind(&gate.key.meter)
    .bind(&gate.key.window)
    .bind(gate.limit)
    .execute(conn)
    .await
    .map_err(map_sqlx)?;
    Ok(done.rows_affected() == 1)
}

/// Holds `micros` of the balance if that much is not already held.
async fn hold(
    conn: &mut SqliteConnection,
    tenant: &str,
    user: UserId,
    micros: i64,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE balances SET held_micros = held_micros + ?1
         WHERE tenant_id = ?2 AND user_id = ?3 AND balance_micros - held_micros >= ?1",
    )
    .bind(micros)
    .bind(tenant)
    .bind(user.to_string())
    .execute(conn)
    .await
    .map_err(map_sqlx)?;
    Ok(done.rows_affected() == 1)
}

async fn insert(
    conn: &mut SqliteConnection,
    r: &ReservationRecord,
    request_hash: &[u8],
) -> StoreResult<()> {
    sqlx::query(concat!(
        "INSERT INTO reservations (",
        reservation_columns!(),
        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(r.id.to_string())
    .bind(&r.tenant_id)
    .bind(r.user_id.to_string())
    .bind(&r.meter)
    .bind(r.amount)
    .bind(r.balance_micros)
    .bind(&r.idempotency_key)
    .bind(request_hash)
    .bind(r.status.as_str())
    .bind(r.expires_at)
    .bind(&r.reason)
    .bind(Json(&r.snapshot))
    .bind(Json(&r.gates))
    .bind(r.committed_amount)
    .bind(r.created_at)
    .bind(r.settled_at)
    .execute(conn)
    .await
    .map_err(map_sqlx)?;
    Ok(())
}

/// The reservation under a tenant's idempotency key, with its request hash.
async fn find_by_key(
    db: impl SqliteExecutor<'_>,
    tenant: &str,
    key: &str,
) -> StoreResult<Option<(ReservationRecord, Vec<u8>)>> {
    sqlx::query(concat!(
        "SELECT ",
        reservation_columns!(),
        " FROM reservations WHERE tenant_id = ? AND idempotency_key = ?"
    ))
    .bind(tenant)
    .bind(key)
    .fetch_optional(db)
    .await
    .map_err(map_sqlx)?
    .as_ref()
    .map(billing_rows::reservation)
    .transpose()
}

/// A reservation of the tenant.
pub(super) async fn get(
    db: impl SqliteExecutor<'_>,
    tenant: &str,
    id: ReservationId,
) -> StoreResult<ReservationRecord> {
    let row = sqlx::query(concat!(
        "SELECT ",
        reservation_columns!(),
        " FROM reservations WHERE id = ? AND tenant_id = ?"
    ))
    .bind(id.to_string())
    .bind(tenant)
    .fetch_optional(db)
    .await
    .map_err(map_sqlx)?
    .ok_or(StoreError::NotFound)?;
    Ok(billing_rows::reservation(&row)?.0)
}

/// A counter's (committed, reserved), the user's or their tenant's as `key` says; (0, 0)
/// when it has no row yet.
pub(super) async fn counter(
    db: impl SqliteExecutor<'_>,
    tenant: &str,
    user: UserId,
    key: &CounterKey,
) -> StoreResult<(i64, i64)> {
    let row = sqlx::query(
        r#"SELECT committed, reserved FROM quota_counters
           WHERE tenant_id = ? AND owner = ? AND meter = ? AND "window" = ?"#,
    )
    .bind(tenant)
    .bind(owner_of(key, &user.to_string()))
    .bind(&key.meter)
    .bind(&key.window)
    .fetch_optional(db)
    .await
    .map_err(map_sqlx)?;
    match row {
        Some(row) => Ok((row.int("committed")?, row.int("reserved")?)),
        None => Ok((0, 0)),
    }
}
