//! [`MeteringStore`] on PostgreSQL: one transaction per batch; in a settlement each item
//! (and the audit row) runs in its own savepoint, so one failing undoes only itself.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Acquire, PgConnection};

use super::{billing_reserve, billing_settle, PostgresStore};
use crate::audit::audit_row;
use crate::billing_batch::{Settle, SettleReport, Settled};
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
        let mut tx = self.pool().begin().await.map_err(map_sqlx)?;
        let mut results = Vec::with_capacity(items.len());
        for item in items {
            let mut sp = tx.begin().await.map_err(map_sqlx)?;
            let result = settle_one(&mut sp, &tenant, item, now).await;
            if result.is_ok() {
                sp.commit().await.map_err(map_sqlx)?;
            } else {
                sp.rollback().await.map_err(map_sqlx)?;
            }
            results.push(result);
        }
        let audit = match audit {
            Some(event) => {
                let row = audit_row(&tenant, event, now);
                let mut sp = tx.begin().await.map_err(map_sqlx)?;
                let result = insert_audit(&mut sp, &row).await;
                if result.is_ok() {
                    sp.commit().await.map_err(map_sqlx)?;
                } else {
                    sp.rollback().await.map_err(map_sqlx)?;
                }
                Some(result)
            }
            None => None,
        };
        tx.commit().await.map_err(map_sqlx)?;
        Ok(SettleReport {
            items: results,
            audit,
        })
    }
}

async fn settle_one(
    tx: &mut PgConnection,
    tenant: &str,
    item: Settle,
    now: DateTime<Utc>,
) -> StoreResult<Settled> {
    Ok(match item {
        Settle::Commit {
            id,
            entry,
            allow_overage,
        } => Settled::Commit(
            billing_settle::commit_in(tx, tenant, id, entry, allow_overage, now).await?,
        ),
        Settle::Release { id } => {
            Settled::Release(billing_settle::release_in(tx, tenant, id, now).await?)
        }
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
