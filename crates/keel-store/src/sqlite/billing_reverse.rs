//! Reversing a committed reservation, on the billing writer: one operation at a time, so
//! a second reversal always sees the first one's entry and answers it.

use chrono::{DateTime, Utc};
use keel_core::ids::ReservationId;
use rusqlite::{params, Connection};

use super::billing_ledger;
use super::billing_reserve::get_in;
use super::billing_settle::apply;
use super::lite::map_lite;
use super::writer::Step;
use crate::billing_calc::reversal::{reversal_entry, reversal_key};
use crate::billing_calc::Settlement;
use crate::{ReservationStatus, ReverseOutcome, StoreError, StoreResult};

pub(super) fn reverse(
    conn: &Connection,
    tenant: &str,
    id: ReservationId,
    reason: &str,
    now: DateTime<Utc>,
) -> StoreResult<Step<ReverseOutcome>> {
    let r = get_in(conn, tenant, id)?;
    if r.status != ReservationStatus::Committed {
        return Ok(Step::Keep(ReverseOutcome::NotCommitted(r.status)));
    }
    match billing_ledger::by_key(conn, tenant, &reversal_key(id)) {
        Ok(first) => return Ok(Step::Keep(ReverseOutcome::Replayed(first))),
        Err(StoreError::NotFound) => {}
        Err(e) => return Err(e),
    }
    let original = billing_ledger::settling(conn, tenant, id)?;
    let paid: i64 = conn
        .prepare_cached("SELECT balance_micros FROM usage_ledger WHERE id = ?")
        .and_then(|mut s| s.query_row(params![original.id], |row| row.get(0)))
        .map_err(map_lite)?;
    let (entry, paid) = reversal_entry(&original, paid, id, reason, now);
    let Some(entry) = billing_ledger::append(conn, entry, paid)? else {
        return Err(StoreError::Conflict(
            "the ledger already has an entry with this reversal's idempotency key".into(),
        ));
    };
    let mut changes = Settlement::default();
    changes.usage(&entry, paid);
    apply(conn, &changes)?;
    Ok(Step::Keep(ReverseOutcome::Reversed(entry)))
}
