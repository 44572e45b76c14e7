//! The append-only usage ledger: appending (by commit or directly), replays, and usage
//! reports.

use chrono::{DateTime, Utc};
use keel_core::ids::{ReservationId, UserId};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};

use super::billing_settle::apply;
use super::PostgresStore;
use crate::billing_calc::{self, Settlement};
use crate::billing_rows::{self, ledger_columns};
use crate::error::map_sqlx;
use crate::rows::Columns;
use crate::{
    LedgerEntry, NewLedgerEntry, StoreError, StoreResult, TenantScope, UsageGroup, UsageRow,
};

/// Appends the entry unless its idempotency key is taken; returns it with its id.
pub(super) async fn append(
    conn: &mut PgConnection,
    entry: LedgerEntry,
    paid: i64,
) -> StoreResult<Option<LedgerEntry>> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO usage_ledger (tenant_id, user_id, meter, amount, overage, cost_micros,
                                   balance_micros, idempotency_key, source, reservation_id,
                                   counters, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
         RETURNING id",
    )
    .bind(&entry.tenant_id)
    .bind(entry.user_id.to_string())
    .bind(&entry.meter)
    .bind(entry.amount)
    .bind(entry.overage)
    .bind(entry.cost_micros)
    .bind(paid)
    .bind(&entry.idempotency_key)
    .bind(Json(&entry.source))
    .bind(entry.reservation_id.map(|r| r.to_string()))
    .bind(Json(&entry.counters))
    .bind(entry.created_at)
    .fetch_optional(conn)
    .await
    .map_err(map_sqlx)?;
    Ok(id.map(|id| LedgerEntry { id, ..entry }))
}

/// The entry that settled a committed reservation.
pub(super) async fn settling(
    db: impl PgExecutor<'_>,
    tenant: &str,
    reservation: ReservationId,
) -> StoreResult<LedgerEntry> {
    sqlx::query(concat!(
        "SELECT ",
        ledger_columns!(),
        " FROM usage_ledger WHERE tenant_id = $1 AND reservation_id = $2"
    ))
    .bind(tenant)
    .bind(reservation.to_string())
    .fetch_optional(db)
    .await
    .map_err(map_sqlx)?
    .as_ref()
    .map_or(Err(StoreError::NotFound), billing_rows::ledger_entry)
}

pub(super) async fn by_key(
    db: impl PgExecutor<'_>,
    tenant: &str,
    key: &str,
) -> StoreResult<LedgerEntry> {
    sqlx::query(concat!(
        "SELECT ",
        ledger_columns!(),
        " FROM usage_ledger WHERE tenant_id = $1 AND idempotency_key = $2"
    ))
    .bind(tenant)
    .bind(key)
    .fetch_optional(db)
    .await
    .map_err(map_sqlx)?
    .as_ref()
    .map_or(Err(StoreError::NotFound), billing_rows::ledger_entry)
}

/// All entries in one transaction; a replayed key changes nothing. Keys are inserted in
/// sorted order, and `ON CONFLICT DO NOTHING` waits for a concurrent first use to end.
pub(super) async fn record_usage(
    store: &PostgresStore,
    scope: &TenantScope,
    entries: Vec<NewLedgerEntry>,
    watch: &[(UserId, Vec<crate::Gate>)],
) -> StoreResult<Vec<(LedgerEntry, bool)>> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let (tenant, now) = (scope.tenant().to_string(), crate::now());
    let mut tx = store.pool().begin().await.map_err(map_sqlx)?;
    let mut changes = Settlement::default();
    let mut recorded = Vec::with_capacity(entries.len());
    for (i, new) in billing_calc::in_key_order(entries) {
        let (entry, paid) = billing_calc::ledger_entry(&tenant, new, now);
        let key = entry.idempotency_key.clone();
        let outcome = match append(&mut tx, entry, paid).await? {
            Some(entry) => {
                changes.usage(&entry, paid);
                (entry, false)
            }
            None => (by_key(&mut *tx, &tenant, &key).await?, true),
        };
        recorded.push((i, outcome));
    }
    apply(&mut tx, &changes).await?;
    for (user, gates) in watch {
        super::webhook_outbox::thresholds_of(&mut tx, &tenant, &user.to_string(), gates).await?;
    }
    tx.commit().await.map_err(map_sqlx)?;
    recorded.sort_by_key(|(i, _)| *i);
    Ok(recorded.into_iter().map(|(_, outcome)| outcome).collect())
}

/// Sums of a user's entries in `[from, to)`.
pub(super) async fn usage(
    store: &PostgresStore,
    scope: &TenantScope,
    user: UserId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    group: UsageGroup,
) -> StoreResult<Vec<UsageRow>> {
    let group_by = match group {
        UsageGroup::Meter => "meter",
        UsageGroup::Feature => "COALESCE(source ->> 'feature', 'unknown')",
        UsageGroup::Day => "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    };
    let sql = format!(
        "SELECT {group_by} AS grp, meter, SUM(amount)::bigint AS amount,
                SUM(cost_micros)::bigint AS cost_micros, COUNT(*) AS entries
         FROM usage_ledger
         WHERE tenant_id = $1 AND user_id = $2 AND created_at >= $3 AND created_at < $4
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
