//! [`MeteringStore`] on PostgreSQL: one transaction per batch, its hottest row locks (the
//! counters) taken last. A settlement whose transaction fails is redone item by item, so
//! one bad item costs only itself.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{billing_reserve, billing_settle, webhook_outbox, PostgresStore};
use crate::audit::audit_row;
use crate::billing_batch::{Settle, SettleReport, Settled};
use crate::billing_calc::Settlement;
use crate::error::map_sqlx;
use crate::{
    AuditEvent, MeteringStore, NewAuditEvent, NewReservation, ReserveOutcome, StoreResult,
    TenantScope,
};

#[async_trait]
impl MeteringStore for PostgresStore {
    async fn reserve_all(
        &self,
        scope: &TenantScope,
        requests: Vec<NewReservation>,
    ) -> StoreResult<Vec<ReserveOutcome>> {
        billing_reserve::reserve_all(self, scope, requests).await
    }

    async fn settle_all(
        &self,
        scope: &TenantScope,
        items: Vec<Settle>,
        audit: Option<NewAuditEvent>,
        now: DateTime<Utc>,
    ) -> StoreResult<SettleReport> {
        let (tenant, now) = (scope.tenant().to_string(), crate::micros(now));
        let row = audit.map(|event| audit_row(&tenant, event, now));
        match settle_together(self, &tenant, items.clone(), row.as_ref(), now).await {
            Ok(report) => Ok(report),
            // Something failed and took the transaction with it: each item on its own.
            Err(e) => {
                tracing::warn!(error = %e, "a settlement batch failed; settling its items one by one");
                settle_apart(self, scope, items, row, now).await
            }
        }
    }
}

/// One transaction: every reservation's own writes first, then the audit row, then all
/// counter and balance changes at once in lock order (the hottest rows, locked last).
async fn settle_together(
    store: &PostgresStore,
    tenant: &str,
    items: Vec<Settle>,
    audit: Option<&AuditEvent>,
    now: DateTime<Utc>,
) -> StoreResult<SettleReport> {
    let mut tx = store.pool().begin().await.map_err(map_sqlx)?;
    let mut changes = Settlement::default();
    let mut committed = Vec::new();
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        let settled = match item {
            Settle::Commit {
                id,
                entry,
                allow_overage,
            } => {
                let (outcome, now_committed) = billing_settle::commit_deferred(
                    &mut tx,
                    tenant,
                    id,
                    entry,
                    allow_overage,
                    now,
                    &mut changes,
                )
                .await?;
                committed.extend(now_committed);
                Settled::Commit(outcome)
            }
            Settle::Release { id } => Settled::Release(
                billing_settle::release_deferred(&mut tx, tenant, id, now, &mut changes).await?,
            ),
        };
        results.push(Ok(settled));
    }
    if let Some(row) = audit {
        insert_audit(&mut tx, row).await?;
    }
    billing_settle::apply(&mut tx, &changes).await?;
    for r in &committed {
        webhook_outbox::thresholds(&mut tx, r).await?;
    }
    tx.commit().await.map_err(map_sqlx)?;
    Ok(SettleReport {
        items: results,
        audit: audit.map(|_| Ok(())),
    })
}

/// Each item in its own transaction (the path after a failed batch).
async fn settle_apart(
    store: &PostgresStore,
    scope: &TenantScope,
    items: Vec<Settle>,
    audit: Option<AuditEvent>,
    now: DateTime<Utc>,
) -> StoreResult<SettleReport> {
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        results.push(match item {
            Settle::Commit {
                id,
                entry,
                allow_overage,
            } => billing_settle::commit(store, scope, id, entry, allow_overage, now)
                .await
                .map(Settled::Commit),
            Settle::Release { id } => billing_settle::release(store, scope, id, now)
                .await
                .map(Settled::Release),
        });
    }
    let audit = match audit {
        Some(row) => Some(match store.pool().acquire().await {
            Ok(mut conn) => insert_audit(&mut conn, &row).await,
            Err(e) => Err(map_sqlx(e)),
        }),
        None => None,
    };
    Ok(SettleReport {
        items: results,
        audit,
    })
}

/// The audit row, as [`crate::AuditStore::append_audit`] writes it.
pub(super) async fn insert_audit(conn: &mut PgConnection, row: &AuditEvent) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_events (id, tenant_id, actor, action, target, request_id, data, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(row.id.to_string())
    .bind(&row.tenant_id)
    .bind(&row.actor)
    .bind(&row.action)
    .bind(&row.target)
    .bind(&row.request_id)
    .bind(&row.data)
    .bind(row.created_at)
    .execute(conn)
    .await
    .map(|_| ())
    .map_err(map_sqlx)
}
