//! Reserving quota: the idempotency key, every gate and the prepaid hold, all or nothing.
//! The write runs on the billing writer (see [`super::writer`]); reads use the pool.

use keel_core::ids::ReservationId;
use rusqlite::{params, Connection, OptionalExtension};
use sqlx::SqliteExecutor;

use super::billing_sliding;
use super::lite::{self, map_lite, Lite};
use super::writer::Step;
use crate::billing_calc::{self, in_lock_order, owner_of, SlidingGate};
use crate::billing_rows::{self, reservation_columns};
use crate::error::map_sqlx;
use crate::{
    CounterKey, Gate, NewReservation, ReservationRecord, ReserveOutcome, StoreError, StoreResult,
};

/// The writer runs one operation at a time, so every conditional update below sees all
/// earlier ones (a sliding-window gate's sum over its buckets included), and a key's first
/// use is seen by the next. The reservation is inserted first (claiming its key); a
/// refusal undoes it with everything else.
pub(super) fn reserve(
    conn: &Connection,
    tenant: &str,
    r: NewReservation,
) -> StoreResult<Step<ReserveOutcome>> {
    let (record, request_hash) = billing_calc::new_reservation(tenant, r, crate::now());
    if !insert(conn, &record, &request_hash)? {
        let found = find_by_key(conn, tenant, &record.idempotency_key)?;
        let found = found.ok_or(StoreError::NotFound)?;
        return Ok(Step::Undo(billing_calc::replay(found, &request_hash)));
    }
    let user = record.user_id.to_string();
    for gate in in_lock_order(&record.gates) {
        let owner = owner_of(&gate.key, &user);
        let sliding = SlidingGate::of(tenant, owner, &gate.key);
        let taken = match &sliding {
            Some(sliding) => billing_sliding::take(conn, tenant, owner, gate, sliding)?,
            None => take_gate(conn, tenant, owner, gate)?,
        };
        if !taken {
            let used = match &sliding {
                Some(sliding) => billing_sliding::used(conn, tenant, owner, gate, sliding)?,
                None => {
                    let (committed, reserved) = counter_in(conn, tenant, owner, &gate.key)?;
                    committed + reserved
                }
            };
            let gate = gate.clone();
            return Ok(Step::Undo(ReserveOutcome::Refused { gate, used }));
        }
    }
    if record.balance_micros > 0 && !hold(conn, tenant, &user, record.balance_micros)? {
        let (balance, held) = balance_in(conn, tenant, &user)?;
        let available = balance - held;
        return Ok(Step::Undo(ReserveOutcome::InsufficientBalance {
            available,
        }));
    }
    Ok(Step::Keep(ReserveOutcome::Reserved(record)))
}

/// Adds the gate's amount to its counter, creating it, if that keeps it within the limit.
/// One statement: the `SELECT … WHERE` inserts nothing above the limit, the `DO UPDATE
/// WHERE` adds nothing past it.
fn take_gate(conn: &Connection, tenant: &str, owner: &str, gate: &Gate) -> StoreResult<bool> {
    let done = conn
        .prepare_cached(
            r#"INSERT INTO quota_counters (tenant_id, owner, meter, "window", committed, reserved)
               SELECT ?1, ?2, ?3, ?4, 0, ?5 WHERE ?5 <= ?6
               ON CONFLICT (tenant_id, owner, meter, "window") DO UPDATE
               SET reserved = reserved + excluded.reserved
               WHERE committed + reserved + excluded.reserved <= ?6"#,
        )
        .and_then(|mut s| {
            s.execute(params![
                tenant,
                owner,
                gate.key.meter,
                gate.key.window,
                gate.amount,
                gate.limit
            ])
        })
        .map_err(map_lite)?;
    Ok(done == 1)
}

/// Holds `micros` of the balance if that much is not already held.
fn hold(conn: &Connection, tenant: &str, user: &str, micros: i64) -> StoreResult<bool> {
    let done = conn
        .prepare_cached(
            "UPDATE balances SET held_micros = held_micros + ?1
             WHERE tenant_id = ?2 AND user_id = ?3 AND balance_micros - held_micros >= ?1",
        )
        .and_then(|mut s| s.execute(params![micros, tenant, user]))
        .map_err(map_lite)?;
    Ok(done == 1)
}

/// Inserts the reservation unless its key is taken.
fn insert(conn: &Connection, r: &ReservationRecord, request_hash: &[u8]) -> StoreResult<bool> {
    let (snapshot, gates) = (lite::json(&r.snapshot)?, lite::json(&r.gates)?);
    let done = conn
        .prepare_cached(concat!(
            "INSERT INTO reservations (",
            reservation_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (tenant_id, idempotency_key) DO NOTHING"
        ))
        .and_then(|mut s| {
            s.execute(params![
                r.id.to_string(),
                r.tenant_id,
                r.user_id.to_string(),
                r.meter,
                r.amount,
                r.balance_micros,
                r.idempotency_key,
                request_hash,
                r.status.as_str(),
                lite::time(r.expires_at),
                r.reason,
                snapshot,
                gates,
                r.committed_amount,
                lite::time(r.created_at),
                r.settled_at.map(lite::time),
            ])
        })
        .map_err(map_lite)?;
    Ok(done == 1)
}

/// The reservation under a tenant's idempotency key, with its request hash.
fn find_by_key(
    conn: &Connection,
    tenant: &str,
    key: &str,
) -> StoreResult<Option<(ReservationRecord, Vec<u8>)>> {
    let mut stmt = conn
        .prepare_cached(concat!(
            "SELECT ",
            reservation_columns!(),
            " FROM reservations WHERE tenant_id = ? AND idempotency_key = ?"
        ))
        .map_err(map_lite)?;
    let row = stmt
        .query_row(params![tenant, key], |row| {
            Ok(billing_rows::reservation(&Lite(row)))
        })
        .optional()
        .map_err(map_lite)?;
    row.transpose()
}

/// A reservation of the tenant, read by the writer.
pub(super) fn get_in(
    conn: &Connection,
    tenant: &str,
    id: ReservationId,
) -> StoreResult<ReservationRecord> {
    let mut stmt = conn
        .prepare_cached(concat!(
            "SELECT ",
            reservation_columns!(),
            " FROM reservations WHERE id = ? AND tenant_id = ?"
        ))
        .map_err(map_lite)?;
    let row = stmt
        .query_row(params![id.to_string(), tenant], |row| {
            Ok(billing_rows::reservation(&Lite(row)))
        })
        .map_err(map_lite)?;
    Ok(row?.0)
}

/// A counter's (committed, reserved), read by the writer; (0, 0) without a row.
fn counter_in(
    conn: &Connection,
    tenant: &str,
    owner: &str,
    key: &CounterKey,
) -> StoreResult<(i64, i64)> {
    let mut stmt = conn
        .prepare_cached(
            r#"SELECT committed, reserved FROM quota_counters
               WHERE tenant_id = ? AND owner = ? AND meter = ? AND "window" = ?"#,
        )
        .map_err(map_lite)?;
    let row = stmt
        .query_row(params![tenant, owner, key.meter, key.window], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()
        .map_err(map_lite)?;
    Ok(row.unwrap_or_default())
}

/// (balance, held) in micros, read by the writer; (0, 0) without a row.
pub(super) fn balance_in(conn: &Connection, tenant: &str, user: &str) -> StoreResult<(i64, i64)> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT balance_micros, held_micros FROM balances
             WHERE tenant_id = ? AND user_id = ?",
        )
        .map_err(map_lite)?;
    let row = stmt
        .query_row(params![tenant, user], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
        .map_err(map_lite)?;
    Ok(row.unwrap_or_default())
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
