//! Ending reservations: commit into the ledger, release by the caller, expiry by the
//! sweeper; and applying the counter and balance changes each makes.

use chrono::{DateTime, Utc};
use keel_core::ids::ReservationId;
use sqlx::PgConnection;

use super::{billing_ledger, billing_reserve, webhook_outbox, PostgresStore};
use crate::billing_calc::{self, Settlement};
use crate::billing_rows::{self, reservation_columns};
use crate::error::map_sqlx;
use crate::{
    CommitOutcome, NewLedgerEntry, ReservationRecord, ReservationStatus, StoreError, StoreResult,
    TenantScope,
};

/// The reservation's row lock (`FOR UPDATE`) serialises this with every other change to
/// it; counters and balances are then locked in the same order as by `reserve`.
pub(super) async fn commit(
    store: &PostgresStore,
    scope: &TenantScope,
    id: ReservationId,
    entry: NewLedgerEntry,
    allow_overage: bool,
    now: DateTime<Utc>,
) -> StoreResult<CommitOutcome> {
    let tenant = scope.tenant().to_string();
    let mut tx = store.pool().begin().await.map_err(map_sqlx)?;
    let outcome = commit_in(&mut tx, &tenant, id, entry, allow_overage, now).await?;
    tx.commit().await.map_err(map_sqlx)?;
    Ok(outcome)
}

/// [`commit`] inside the caller's transaction (an outcome that writes nothing leaves it
/// untouched).
pub(super) async fn commit_in(
    tx: &mut PgConnection,
    tenant: &str,
    id: ReservationId,
    entry: NewLedgerEntry,
    allow_overage: bool,
    now: DateTime<Utc>,
) -> StoreResult<CommitOutcome> {
    let mut changes = Settlement::default();
    let (outcome, settled) =
        commit_deferred(tx, tenant, id, entry, allow_overage, now, &mut changes).await?;
    // Counters last: their row locks, the most contended, are held only until `COMMIT`.
    apply(tx, &changes).await?;
    if let Some(r) = settled {
        webhook_outbox::thresholds(tx, &r).await?;
    }
    Ok(outcome)
}

/// Everything of a commit but the counter and balance changes, which are added to
/// `changes` for the caller to apply (after every other write of its transaction, so the
/// hottest rows are locked last). Returns the reservation when it was committed now.
pub(super) async fn commit_deferred(
    tx: &mut PgConnection,
    tenant: &str,
    id: ReservationId,
    entry: NewLedgerEntry,
    allow_overage: bool,
    now: DateTime<Utc>,
    changes: &mut Settlement,
) -> StoreResult<(CommitOutcome, Option<ReservationRecord>)> {
    let r = billing_reserve::get(&mut *tx, tenant, id, true).await?;
    match r.status {
        ReservationStatus::Active if r.expires_at > now => {}
        ReservationStatus::Active => {
            changes.release(&r);
            mark(tx, &r, ReservationStatus::Expired, now).await?;
            webhook_outbox::expired(tx, &[r], now).await?;
            let outcome = CommitOutcome::NotActive(ReservationStatus::Expired);
            return Ok((outcome, None));
        }
        ReservationStatus::Committed if r.committed_amount == Some(entry.amount) => {
            let original = billing_ledger::settling(&mut *tx, tenant, id).await?;
            return Ok((CommitOutcome::Replayed(original), None));
        }
        status => return Ok((CommitOutcome::NotActive(status), None)),
    }
    if entry.amount > r.amount && !allow_overage {
        return Ok((CommitOutcome::OverReservation { reserved: r.amount }, None));
    }
    let (entry, paid) = billing_calc::settled_entry(&r, entry, now);
    let Some(entry) = billing_ledger::append(tx, entry, paid).await? else {
        return Err(StoreError::Conflict(
            "the ledger already has an entry with this idempotency key".into(),
        ));
    };
    sqlx::query(
        "UPDATE reservations SET status = 'committed', committed_amount = $1, settled_at = $2
         WHERE id = $3 AND tenant_id = $4",
    )
    .bind(entry.amount)
    .bind(now)
    .bind(id.to_string())
    .bind(tenant)
    .execute(&mut *tx)
    .await
    .map_err(map_sqlx)?;
    changes.commit(&r, &entry, paid);
    Ok((CommitOutcome::Committed(entry), Some(r)))
}

/// An active reservation past its expiry is expired here, as the sweeper would.
pub(super) async fn release(
    store: &PostgresStore,
    scope: &TenantScope,
    id: ReservationId,
    now: DateTime<Utc>,
) -> StoreResult<ReservationStatus> {
    let tenant = scope.tenant().to_string();
    let mut tx = store.pool().begin().await.map_err(map_sqlx)?;
    let before = release_in(&mut tx, &tenant, id, now).await?;
    tx.commit().await.map_err(map_sqlx)?;
    Ok(before)
}

/// [`release`] inside the caller's transaction.
pub(super) async fn release_in(
    tx: &mut PgConnection,
    tenant: &str,
    id: ReservationId,
    now: DateTime<Utc>,
) -> StoreResult<ReservationStatus> {
    let mut changes = Settlement::default();
    let before = release_deferred(tx, tenant, id, now, &mut changes).await?;
    apply(tx, &changes).await?;
    Ok(before)
}

/// [`release_in`] with the counter and balance changes left in `changes`.
pub(super) async fn release_deferred(
    tx: &mut PgConnection,
    tenant: &str,
    id: ReservationId,
    now: DateTime<Utc>,
    changes: &mut Settlement,
) -> StoreResult<ReservationStatus> {
    let r = billing_reserve::get(&mut *tx, tenant, id, true).await?;
    let (before, to) = match r.status {
        ReservationStatus::Active if r.expires_at <= now => {
            (ReservationStatus::Expired, ReservationStatus::Expired)
        }
        ReservationStatus::Active => (ReservationStatus::Active, ReservationStatus::Released),
        status => return Ok(status),
    };
    changes.release(&r);
    mark(tx, &r, to, now).await?;
    if to == ReservationStatus::Expired {
        webhook_outbox::expired(tx, &[r], now).await?;
    }
    Ok(before)
}

/// Gives an active reservation its final status.
async fn mark(
    tx: &mut PgConnection,
    r: &ReservationRecord,
    status: ReservationStatus,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE reservations SET status = $1, settled_at = $2
         WHERE id = $3 AND tenant_id = $4 AND status = 'active'",
    )
    .bind(status.as_str())
    .bind(now)
    .bind(r.id.to_string())
    .bind(&r.tenant_id)
    .execute(&mut *tx)
    .await
    .map_err(map_sqlx)?;
    Ok(())
}

/// `SKIP LOCKED` gives each concurrent sweeper different rows, and a row another sweeper
/// expired meanwhile no longer matches `status = 'active'` once locked: nothing expires
/// twice.
pub(super) async fn expire(
    store: &PostgresStore,
    now: DateTime<Utc>,
    limit: i64,
) -> StoreResult<Vec<ReservationRecord>> {
    if limit <= 0 {
        return Ok(Vec::new());
    }
    let mut tx = store.pool().begin().await.map_err(map_sqlx)?;
    let due = sqlx::query(concat!(
        "SELECT ",
        reservation_columns!(),
        " FROM reservations WHERE status = 'active' AND expires_at <= $1
          ORDER BY expires_at, id LIMIT $2 FOR UPDATE SKIP LOCKED"
    ))
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .map_err(map_sqlx)?
    .iter()
    .map(|row| Ok(billing_rows::reservation(row)?.0))
    .collect::<StoreResult<Vec<_>>>()?;
    end(&mut tx, &due, ReservationStatus::Expired, now).await?;
    webhook_outbox::expired(&mut tx, &due, now).await?;
    tx.commit().await.map_err(map_sqlx)?;
    Ok(due
        .into_iter()
        .map(|r| ReservationRecord {
            status: ReservationStatus::Expired,
            settled_at: Some(now),
            ..r
        })
        .collect())
}

/// Returns the holds of active reservations and gives them their final status.
async fn end(
    conn: &mut PgConnection,
    reservations: &[ReservationRecord],
    status: ReservationStatus,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let mut changes = Settlement::default();
    for r in reservations {
        changes.release(r);
    }
    apply(conn, &changes).await?;
    for r in reservations {
        mark(conn, r, status, now).await?;
    }
    Ok(())
}

/// Adds the changes to counters, then to balances, creating missing rows.
pub(super) async fn apply(conn: &mut PgConnection, changes: &Settlement) -> StoreResult<()> {
    for (at, committed, reserved) in changes.counters() {
        sqlx::query(
            r#"INSERT INTO quota_counters (tenant_id, owner, meter, "window", committed, reserved)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (tenant_id, owner, meter, "window") DO UPDATE
               SET committed = quota_counters.committed + excluded.committed,
                   reserved = quota_counters.reserved + excluded.reserved"#,
        )
        .bind(&at.tenant_id)
        .bind(&at.owner)
        .bind(&at.key.meter)
        .bind(&at.key.window)
        .bind(committed)
        .bind(reserved)
        .execute(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    }
    for (tenant, user, balance, held) in changes.balances() {
        sqlx::query(
            "INSERT INTO balances (tenant_id, user_id, balance_micros, held_micros)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, user_id) DO UPDATE
             SET balance_micros = balances.balance_micros + excluded.balance_micros,
                 held_micros = balances.held_micros + excluded.held_micros",
        )
        .bind(tenant)
        .bind(user)
        .bind(balance)
        .bind(held)
        .execute(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    }
    Ok(())
}
