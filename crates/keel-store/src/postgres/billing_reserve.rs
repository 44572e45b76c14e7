//! Reserving quota: the idempotency key, every gate and the prepaid hold, all or nothing.

use keel_core::ids::{ReservationId, UserId};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};

use super::{billing_accounts, billing_sliding, PostgresStore};
use crate::billing_calc::{self, in_lock_order, owner_of, SlidingGate};
use crate::billing_rows::{self, reservation_columns};
use crate::error::map_sqlx;
use crate::rows::Columns;
use crate::{
    CounterKey, Gate, NewReservation, ReservationRecord, ReserveOutcome, StoreError, StoreResult,
    TenantScope,
};

/// READ COMMITTED suffices. The reservation is inserted first: it claims the key, and a
/// concurrent first use of the same key waits on it, then finds it taken and answers as a
/// replay. Each gate is then one conditional upsert, which waits for the counter's row
/// lock and re-checks its condition on the newest committed row, so a limit of N admits
/// exactly N. Counters are locked in key order, then the balance, and the counter locks
/// are taken last, just before `COMMIT`, so the hottest rows are held for the shortest time.
/// A sliding-window gate first takes its window's advisory lock (see [`billing_sliding`]).
pub(super) async fn reserve(
    store: &PostgresStore,
    scope: &TenantScope,
    r: NewReservation,
) -> StoreResult<ReserveOutcome> {
    let mut outcomes = reserve_all(store, scope, vec![r]).await?;
    outcomes.pop().ok_or(StoreError::NotFound)
}

/// Every request in one transaction, all or nothing (see `MeteringStore::reserve_all`):
/// the reservation rows first (claiming their keys), then every gate of the batch in one
/// key order, then the balances, so concurrent batches lock the hot rows in the same
/// order and hold them only until `COMMIT`.
pub(super) async fn reserve_all(
    store: &PostgresStore,
    scope: &TenantScope,
    requests: Vec<NewReservation>,
) -> StoreResult<Vec<ReserveOutcome>> {
    let tenant = scope.tenant().to_string();
    let mut tx = store.pool().begin().await.map_err(map_sqlx)?;
    let mut outcomes = Vec::with_capacity(requests.len());
    let mut fresh: Vec<usize> = Vec::new();
    for r in requests {
        let (record, request_hash) = billing_calc::new_reservation(&tenant, r, crate::now());
        if insert(&mut tx, &record, &request_hash).await? {
            fresh.push(outcomes.len());
            outcomes.push(ReserveOutcome::Reserved(record));
            continue;
        }
        // The key's first use committed (the insert waited for it): a replay, or a
        // reuse with another request, which stops the batch.
        let found = find_by_key(&mut *tx, &tenant, &record.idempotency_key).await?;
        let outcome = billing_calc::replay(found.ok_or(StoreError::NotFound)?, &request_hash);
        let stop = !matches!(outcome, ReserveOutcome::Replayed(_));
        outcomes.push(outcome);
        if stop {
            tx.rollback().await.map_err(map_sqlx)?;
            return Ok(outcomes);
        }
    }
    let records: Vec<(usize, &ReservationRecord)> = fresh
        .iter()
        .filter_map(|&i| match outcomes.get(i) {
            Some(ReserveOutcome::Reserved(r)) => Some((i, r)),
            _ => None,
        })
        .collect();
    if let Some((i, refused)) = take_all(&mut tx, &tenant, &records).await? {
        tx.rollback().await.map_err(map_sqlx)?;
        let record = match outcomes.get(i) {
            Some(ReserveOutcome::Reserved(r)) => r.clone(),
            _ => return Err(StoreError::NotFound),
        };
        outcomes.truncate(i);
        outcomes.push(explain(store, &tenant, &record, refused).await?);
        return Ok(outcomes);
    }
    tx.commit().await.map_err(map_sqlx)?;
    Ok(outcomes)
}

/// What refused a batch.
enum Taken {
    Gate(Gate),
    Balance,
}

/// Takes every gate of `records` in key order, then their balances; the first refusal
/// with the index of its request.
async fn take_all(
    tx: &mut PgConnection,
    tenant: &str,
    records: &[(usize, &ReservationRecord)],
) -> StoreResult<Option<(usize, Taken)>> {
    let mut gates: Vec<(usize, &ReservationRecord, &Gate)> = records
        .iter()
        .flat_map(|&(i, r)| in_lock_order(&r.gates).into_iter().map(move |g| (i, r, g)))
        .collect();
    gates.sort_by(|a, b| a.2.key.cmp(&b.2.key));
    for (i, r, gate) in gates {
        let user = r.user_id.to_string();
        let owner = owner_of(&gate.key, &user);
        let taken = match &SlidingGate::of(tenant, owner, &gate.key) {
            Some(sliding) => billing_sliding::take(tx, tenant, owner, gate, sliding).await?,
            None => take_gate(tx, tenant, owner, gate).await?,
        };
        if !taken {
            return Ok(Some((i, Taken::Gate(gate.clone()))));
        }
    }
    for &(i, r) in records {
        if r.balance_micros > 0 && !hold(tx, tenant, r.user_id, r.balance_micros).await? {
            return Ok(Some((i, Taken::Balance)));
        }
    }
    Ok(None)
}

/// A refusal's facts, read after the rollback (no locks held).
async fn explain(
    store: &PostgresStore,
    tenant: &str,
    record: &ReservationRecord,
    refused: Taken,
) -> StoreResult<ReserveOutcome> {
    Ok(match refused {
        Taken::Gate(gate) => {
            let user = record.user_id.to_string();
            let owner = owner_of(&gate.key, &user);
            let used = match &SlidingGate::of(tenant, owner, &gate.key) {
                Some(sliding) => {
                    billing_sliding::used(store.pool(), tenant, owner, &gate, sliding).await?
                }
                None => {
                    let (committed, reserved) =
                        counter(store.pool(), tenant, record.user_id, &gate.key).await?;
                    committed + reserved
                }
            };
            ReserveOutcome::Refused { gate, used }
        }
        Taken::Balance => {
            let (balance, held) =
                billing_accounts::balance(store.pool(), tenant, record.user_id).await?;
            ReserveOutcome::InsufficientBalance {
                available: balance - held,
            }
        }
    })
}

/// Adds the gate's amount to its counter, creating it, if that keeps it within the limit:
/// one statement (the `SELECT … WHERE` inserts nothing above the limit, the `DO UPDATE
/// WHERE` adds nothing past it).
async fn take_gate(
    conn: &mut PgConnection,
    tenant: &str,
    owner: &str,
    gate: &Gate,
) -> StoreResult<bool> {
    let done = sqlx::query(
        r#"INSERT INTO quota_counters (tenant_id, owner, meter, "window", committed, reserved)
           SELECT $1, $2, $3, $4, 0, $5 WHERE $5 <= $6
           ON CONFLICT (tenant_id, owner, meter, "window") DO UPDATE
           SET reserved = quota_counters.reserved + EXCLUDED.reserved
           WHERE quota_counters.committed + quota_counters.reserved + EXCLUDED.reserved <= $6"#,
    )
    .bind(tenant)
    .bind(owner)
    .bind(&gate.key.meter)
    .bind(&gate.key.window)
    .bind(gate.amount)
    .bind(gate.limit)
    .execute(conn)
    .await
    .map_err(map_sqlx)?;
    Ok(done.rows_affected() == 1)
}

/// Holds `micros` of the balance if that much is not already held.
async fn hold(
    conn: &mut PgConnection,
    tenant: &str,
    user: UserId,
    micros: i64,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE balances SET held_micros = held_micros + $1
         WHERE tenant_id = $2 AND user_id = $3 AND balance_micros - held_micros >= $1",
    )
    .bind(micros)
    .bind(tenant)
    .bind(user.to_string())
    .execute(conn)
    .await
    .map_err(map_sqlx)?;
    Ok(done.rows_affected() == 1)
}

/// Inserts the reservation unless its key is taken (waiting for a concurrent first use
/// of the key to end).
async fn insert(
    conn: &mut PgConnection,
    r: &ReservationRecord,
    request_hash: &[u8],
) -> StoreResult<bool> {
    let done = sqlx::query(concat!(
        "INSERT INTO reservations (",
        reservation_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
         ON CONFLICT (tenant_id, idempotency_key) DO NOTHING"
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
    Ok(done.rows_affected() == 1)
}

/// The reservation under a tenant's idempotency key, with its request hash.
async fn find_by_key(
    db: impl PgExecutor<'_>,
    tenant: &str,
    key: &str,
) -> StoreResult<Option<(ReservationRecord, Vec<u8>)>> {
    sqlx::query(concat!(
        "SELECT ",
        reservation_columns!(),
        " FROM reservations WHERE tenant_id = $1 AND idempotency_key = $2"
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

/// A reservation of the tenant; `lock` takes its row lock until the transaction ends.
pub(super) async fn get(
    db: impl PgExecutor<'_>,
    tenant: &str,
    id: ReservationId,
    lock: bool,
) -> StoreResult<ReservationRecord> {
    let sql = if lock {
        concat!(
            "SELECT ",
            reservation_columns!(),
            " FROM reservations WHERE id = $1 AND tenant_id = $2 FOR UPDATE"
        )
    } else {
        concat!(
            "SELECT ",
            reservation_columns!(),
            " FROM reservations WHERE id = $1 AND tenant_id = $2"
        )
    };
    let row = sqlx::query(sql)
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
    db: impl PgExecutor<'_>,
    tenant: &str,
    user: UserId,
    key: &CounterKey,
) -> StoreResult<(i64, i64)> {
    let row = sqlx::query(
        r#"SELECT committed, reserved FROM quota_counters
           WHERE tenant_id = $1 AND owner = $2 AND meter = $3 AND "window" = $4"#,
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
