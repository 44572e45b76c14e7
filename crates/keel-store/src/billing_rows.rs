//! Decoding billing rows, written once for both backends (see [`crate::rows`]). Gates,
//! counter keys, snapshots, sources and add-ons are JSON columns.

use crate::rows::Columns;
use crate::{
    LedgerEntry, ReservationRecord, ReservationStatus, StoreError, StoreResult, Subscription,
};

/// The columns each `SELECT … FROM <table>` reads, in one place for both backends.
macro_rules! reservation_columns {
    () => {
        "id, tenant_id, user_id, meter, amount, balance_micros, idempotency_key, request_hash, \
         status, expires_at, reason, snapshot, gates, committed_amount, created_at, settled_at"
    };
}
macro_rules! ledger_columns {
    () => {
        "id, tenant_id, user_id, meter, amount, overage, cost_micros, idempotency_key, source, \
         reservation_id, counters, created_at"
    };
}
macro_rules! subscription_columns {
    () => {
        "user_id, plan, status, period_start, period_end, source, addons, updated_at"
    };
}
pub(crate) use {ledger_columns, reservation_columns, subscription_columns};

/// A reservation and the request hash stored with it (to tell a replay from a reuse).
pub(crate) fn reservation(row: &impl Columns) -> StoreResult<(ReservationRecord, Vec<u8>)> {
    let record = ReservationRecord {
        id: row.id("id")?,
        tenant_id: row.text("tenant_id")?,
        user_id: row.id("user_id")?,
        meter: row.text("meter")?,
        amount: row.int("amount")?,
        balance_micros: row.int("balance_micros")?,
        idempotency_key: row.text("idempotency_key")?,
        status: status(&row.text("status")?)?,
        expires_at: row.time("expires_at")?,
        reason: row.text("reason")?,
        snapshot: row.json_value("snapshot")?,
        gates: row.json("gates")?,
        committed_amount: row.opt_int("committed_amount")?,
        created_at: row.time("created_at")?,
        settled_at: row.opt_time("settled_at")?,
    };
    Ok((record, row.bytes("request_hash")?))
}

pub(crate) fn ledger_entry(row: &impl Columns) -> StoreResult<LedgerEntry> {
    Ok(LedgerEntry {
        id: row.int("id")?,
        tenant_id: row.text("tenant_id")?,
        user_id: row.id("user_id")?,
        meter: row.text("meter")?,
        amount: row.int("amount")?,
        overage: row.int("overage")?,
        cost_micros: row.int("cost_micros")?,
        idempotency_key: row.text("idempotency_key")?,
        source: row.json_value("source")?,
        reservation_id: row.opt_id("reservation_id")?,
        counters: row.json("counters")?,
        created_at: row.time("created_at")?,
    })
}

pub(crate) fn subscription(row: &impl Columns) -> StoreResult<Subscription> {
    Ok(Subscription {
        user_id: row.id("user_id")?,
        plan: row.text("plan")?,
        status: row.text("status")?,
        period_start: row.time("period_start")?,
        period_end: row.time("period_end")?,
        source: row.text("source")?,
        addons: row.strings("addons")?,
        updated_at: row.time("updated_at")?,
    })
}

/// A stored reservation status.
pub(crate) fn status(text: &str) -> StoreResult<ReservationStatus> {
    match text {
        "active" => Ok(ReservationStatus::Active),
        "committed" => Ok(ReservationStatus::Committed),
        "released" => Ok(ReservationStatus::Released),
        "expired" => Ok(ReservationStatus::Expired),
        other => Err(StoreError::Other(sqlx::Error::Decode(
            format!("unknown reservation status `{other}`").into(),
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_status_reads_back_from_its_stored_text() {
        for s in [
            ReservationStatus::Active,
            ReservationStatus::Committed,
            ReservationStatus::Released,
            ReservationStatus::Expired,
        ] {
            assert_eq!(status(s.as_str()).unwrap(), s);
        }
        assert!(status("pending").is_err());
    }
}
