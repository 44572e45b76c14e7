//! Ending reservations: commit into the ledger, release by the caller, expiry by the
//! sweeper; and applying the counter and balance changes each makes. All run on the
//! billing writer, one at a time, so each sees every earlier change to the reservation.

use chrono::{DateTime, Utc};
use keel_core::ids::ReservationId;
use rusqlite::{params, Connection};

use super::billing_reserve::get_in;
use super::lite::{self, map_lite, Lite};
use super::writer::Step;
use super::{billing_ledger, webhook_outbox};
use crate::billing_calc::{self, Settlement};
use crate::billing_rows::{self, reservation_columns};
use crate::{
    CommitOutcome, NewLedgerEntry, ReservationRecord, ReservationStatus, StoreError, StoreResult,
};

pub(super) fn commit(
    conn: &Connection,
    tenant: &str,
    id: ReservationId,
    entry: NewLedgerEntry,
    allow_overage: bool,
    now: DateTime<Utc>,
) -> StoreResult<Step<CommitOutcome>> {
    let r = get_in(conn, tenant, id)?;
    match r.status {
        ReservationStatus::Active if r.expires_at > now => {}
        ReservationStatus::Active => {
            end(
                conn,
                std::slice::from_ref(&r),
                ReservationStatus::Expired,
                now,
            )?;
            webhook_outbox::expired(conn, &[r], now)?;
            return Ok(Step::Keep(CommitOutcome::NotActive(
                ReservationStatus::Expired,
            )));
        }
        ReservationStatus::Committed if r.committed_amount == Some(entry.amount) => {
            let original = billing_ledger::settling(conn, tenant, id)?;
            return Ok(Step::Keep(CommitOutcome::Replayed(original)));
        }
        status => return Ok(Step::Keep(CommitOutcome::NotActive(status))),
    }
    if entry.amount > r.amount && !allow_overage {
        let reserved = r.amount;
        return Ok(Step::Keep(CommitOutcome::OverReservation { reserved }));
    }
    let (entry, paid) = billing_calc::settled_entry(&r, entry, now);
    let Some(entry) = billing_ledger::append(conn, entry, paid)? else {
        return Err(StoreError::Conflict(
            "the ledger already has an entry with this idempotency key".into(),
        ));
    };
    let mut changes = Settlement::default();
    changes.commit(&r, &entry, paid);
    apply(conn, &changes)?;
    webhook_outbox::thresholds(conn, &r)?;
    conn.prepare_cached(
        "UPDATE reservations SET status = 'committed', committed_amount = ?, settled_at = ?
         WHERE id = ? AND tenant_id = ?",
    )
    .and_then(|mut s| {
        s.execute(params![
            entry.amount,
            lite::time(now),
            id.to_string(),
            tenant
        ])
    })
    .map_err(map_lite)?;
    Ok(Step::Keep(CommitOutcome::Committed(entry)))
}

/// An active reservation past its expiry is expired here, as the sweeper would.
pub(super) fn release(
    conn: &Connection,
    tenant: &str,
    id: ReservationId,
    now: DateTime<Utc>,
) -> StoreResult<Step<ReservationStatus>> {
    let r = get_in(conn, tenant, id)?;
    let (before, to) = match r.status {
        ReservationStatus::Active if r.expires_at <= now => {
            (ReservationStatus::Expired, ReservationStatus::Expired)
        }
        ReservationStatus::Active => (ReservationStatus::Active, ReservationStatus::Released),
        status => return Ok(Step::Keep(status)),
    };
    end(conn, std::slice::from_ref(&r), to, now)?;
    if to == ReservationStatus::Expired {
        webhook_outbox::expired(conn, &[r], now)?;
    }
    Ok(Step::Keep(before))
}

/// One writer, one sweep at a time: each sees the previous one's work, so nothing
/// expires twice.
pub(super) fn expire(
    conn: &Connection,
    now: DateTime<Utc>,
    limit: i64,
) -> StoreResult<Step<Vec<ReservationRecord>>> {
    let mut stmt = conn
        .prepare_cached(concat!(
            "SELECT ",
            reservation_columns!(),
            " FROM reservations WHERE status = 'active' AND expires_at <= ?
              ORDER BY expires_at, id LIMIT ?"
        ))
        .map_err(map_lite)?;
    let due = stmt
        .query_map(params![lite::time(now), limit], |row| {
            Ok(billing_rows::reservation(&Lite(row)).map(|(r, _)| r))
        })
        .map_err(map_lite)?
        .map(|row| row.map_err(map_lite).and_then(std::convert::identity))
        .collect::<StoreResult<Vec<_>>>()?;
    end(conn, &due, ReservationStatus::Expired, now)?;
    webhook_outbox::expired(conn, &due, now)?;
    Ok(Step::Keep(
        due.into_iter()
            .map(|r| ReservationRecord {
                status: ReservationStatus::Expired,
                settled_at: Some(now),
                ..r
            })
            .collect(),
    ))
}

/// Returns the holds of active reservations and gives them their final status.
fn end(
    conn: &Connection,
    reservations: &[ReservationRecord],
    status: ReservationStatus,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let mut changes = Settlement::default();
    for r in reservations {
        changes.release(r);
    }
    apply(conn, &changes)?;
    let mut stmt = conn
        .prepare_cached(
            "UPDATE reservations SET status = ?, settled_at = ?
             WHERE id = ? AND tenant_id = ? AND status = 'active'",
        )
        .map_err(map_lite)?;
    for r in reservations {
        stmt.execute(params![
            status.as_str(),
            lite::time(now),
            r.id.to_string(),
            r.tenant_id
        ])
        .map_err(map_lite)?;
    }
    Ok(())
}

/// Adds the changes to counters, then to balances, creating missing rows.
pub(super) fn apply(conn: &Connection, changes: &Settlement) -> StoreResult<()> {
    let mut counters = conn
        .prepare_cached(
            r#"INSERT INTO quota_counters (tenant_id, owner, meter, "window", committed, reserved)
               VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT (tenant_id, owner, meter, "window") DO UPDATE
               SET committed = quota_counters.committed + excluded.committed,
                   reserved = quota_counters.reserved + excluded.reserved"#,
        )
        .map_err(map_lite)?;
    for (at, committed, reserved) in changes.counters() {
        let key = &at.key;
        counters
            .execute(params![
                at.tenant_id,
                at.owner,
                key.meter,
                key.window,
                committed,
                reserved
            ])
            .map_err(map_lite)?;
    }
    let mut balances = conn
        .prepare_cached(
            "INSERT INTO balances (tenant_id, user_id, balance_micros, held_micros)
             VALUES (?, ?, ?, ?)
             ON CONFLICT (tenant_id, user_id) DO UPDATE
             SET balance_micros = balances.balance_micros + excluded.balance_micros,
                 held_micros = balances.held_micros + excluded.held_micros",
        )
        .map_err(map_lite)?;
    for (tenant, user, balance, held) in changes.balances() {
        balances
            .execute(params![tenant, user, balance, held])
            .map_err(map_lite)?;
    }
    Ok(())
}
