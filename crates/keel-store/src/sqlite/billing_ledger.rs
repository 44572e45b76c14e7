//! The append-only usage ledger: appending (by commit or directly, on the billing writer),
//! replays, and usage reports (on the pool).

use chrono::{DateTime, Utc};
use keel_core::ids::{ReservationId, UserId};
use rusqlite::{params, Connection, OptionalExtension};

use super::billing_settle::apply;
use super::lite::{self, map_lite, Lite};
use super::writer::Step;
use super::SqliteStore;
use crate::billing_calc::{self, Settlement};
use crate::billing_rows::{self, ledger_columns};
use crate::error::map_sqlx;
use crate::rows::Columns;
use crate::{
    LedgerEntry, NewLedgerEntry, StoreError, StoreResult, TenantScope, UsageGroup, UsageRow,
};

/// Appends the entry unless its idempotency key is taken; returns it with its id.
pub(super) fn append(
    conn: &Connection,
    entry: LedgerEntry,
    paid: i64,
) -> StoreResult<Option<LedgerEntry>> {
    let (source, counters) = (lite::json(&entry.source)?, lite::json(&entry.counters)?);
    let id: Option<i64> = conn
        .prepare_cached(
            "INSERT INTO usage_ledger (tenant_id, user_id, meter, amount, overage, cost_micros,
                                       balance_micros, idempotency_key, source, reservation_id,
                                       counters, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
             RETURNING id",
        )
        .and_then(|mut s| {
            s.query_row(
                params![
                    entry.tenant_id,
                    entry.user_id.to_string(),
                    entry.meter,
                    entry.amount,
                    entry.overage,
                    entry.cost_micros,
                    paid,
                    entry.idempotency_key,
                    source,
                    entry.reservation_id.map(|r| r.to_string()),
                    counters,
                    lite::time(entry.created_at),
                ],
                |row| row.get(0),
            )
            .optional()
        })
        .map_err(map_lite)?;
    Ok(id.map(|id| LedgerEntry { id, ..entry }))
}

/// The entry that settled a committed reservation.
pub(super) fn settling(
    conn: &Connection,
    tenant: &str,
    reservation: ReservationId,
) -> StoreResult<LedgerEntry> {
    one_entry(
        conn,
        concat!(
            "SELECT ",
            ledger_columns!(),
            " FROM usage_ledger WHERE tenant_id = ? AND reservation_id = ?"
        ),
        tenant,
        &reservation.to_string(),
    )
}

pub(super) fn by_key(conn: &Connection, tenant: &str, key: &str) -> StoreResult<LedgerEntry> {
    one_entry(
        conn,
        concat!(
            "SELECT ",
            ledger_columns!(),
            " FROM usage_ledger WHERE tenant_id = ? AND idempotency_key = ?"
        ),
        tenant,
        key,
    )
}

fn one_entry(conn: &Connection, sql: &str, tenant: &str, by: &str) -> StoreResult<LedgerEntry> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_lite)?;
    let row = stmt
        .query_row(params![tenant, by], |row| {
            Ok(billing_rows::ledger_entry(&Lite(row)))
        })
        .optional()
        .map_err(map_lite)?;
    row.unwrap_or(Err(StoreError::NotFound))
}

/// All entries in one savepoint; a replayed key changes nothing.
pub(super) fn record_usage(
    conn: &Connection,
    tenant: &str,
    entries: Vec<NewLedgerEntry>,
    watch: &[(keel_core::ids::UserId, Vec<crate::Gate>)],
) -> StoreResult<Step<Vec<(LedgerEntry, bool)>>> {
    let now = crate::now();
    let mut changes = Settlement::default();
    let mut recorded = Vec::with_capacity(entries.len());
    for (i, new) in billing_calc::in_key_order(entries) {
        let (entry, paid) = billing_calc::ledger_entry(tenant, new, now);
        let key = entry.idempotency_key.clone();
        let outcome = match append(conn, entry, paid)? {
            Some(entry) => {
                changes.usage(&entry, paid);
                (entry, false)
            }
            None => (by_key(conn, tenant, &key)?, true),
        };
        recorded.push((i, outcome));
    }
    apply(conn, &changes)?;
    for (user, gates) in watch {
        super::webhook_outbox::thresholds_of(conn, tenant, &user.to_string(), gates)?;
    }
    recorded.sort_by_key(|(i, _)| *i);
    Ok(Step::Keep(
        recorded.into_iter().map(|(_, outcome)| outcome).collect(),
    ))
}

/// Sums of a user's entries in `[from, to)`; times are UTC RFC 3339 text, so the first ten
/// characters are the day.
pub(super) async fn usage(
    store: &SqliteStore,
    scope: &TenantScope,
    user: UserId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    group: UsageGroup,
) -> StoreResult<Vec<UsageRow>> {
    let group_by = match group {
        UsageGroup::Meter => "meter",
        UsageGroup::Feature => {
            "COALESCE(CAST(json_extract(source, '$.feature') AS TEXT), 'unknown')"
        }
        UsageGroup::Day => "substr(created_at, 1, 10)",
    };
    let sql = format!(
        "SELECT {group_by} AS grp, meter, SUM(amount) AS amount,
                SUM(cost_micros) AS cost_micros, COUNT(*) AS entries
         FROM usage_ledger
         WHERE tenant_id = ? AND user_id = ? AND created_at >= ? AND created_at < ?
         GROUP BY 1, 2"
    );
    let mut rows = sqlx::query(&sql)
        .bind(scope.tenant().to_string())
        .bind(user.to_string())
        .bind(from)
        .bind(to)
        .fetch_all(store.pool())
        .await
        .map_err(map_sqlx)?
        .iter()
        .map(|row| {
            Ok(UsageRow {
                group: row.text("grp")?,
                meter: row.text("meter")?,
                amount: row.int("amount")?,
                cost_micros: row.int("cost_micros")?,
                entries: row.int("entries")?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    // Sorted here so both backends order by bytes, whatever the database collation.
    rows.sort_by(|a, b| (&a.group, &a.meter).cmp(&(&b.group, &b.meter)));
    Ok(rows)
}
