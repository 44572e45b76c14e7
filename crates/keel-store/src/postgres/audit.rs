use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keel_core::ids::AuditId;
use sqlx::Row;

use super::PostgresStore;
use crate::error::map_sqlx;
use crate::{
    AuditEvent, AuditQuery, AuditStore, NewAuditEvent, StoreError, StoreResult, TenantScope,
};

#[async_trait]
impl AuditStore for PostgresStore {
    async fn append_audit(
        &self,
        scope: &TenantScope,
        event: NewAuditEvent,
    ) -> StoreResult<AuditEvent> {
        let row = AuditEvent {
            id: AuditId::new(),
            tenant_id: scope.tenant().to_string(),
            actor: event.actor,
            action: event.action,
            target: event.target,
            request_id: event.request_id,
            data: event.data,
            created_at: crate::now(),
        };
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
        .execute(self.pool())
        .await
        .map_err(map_sqlx)?;
        Ok(row)
    }

    async fn list_audit(
        &self,
        scope: &TenantScope,
        query: &AuditQuery,
    ) -> StoreResult<Vec<AuditEvent>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, actor, action, target, request_id, data, created_at
             FROM audit_events
             WHERE tenant_id = $1 AND ($2::text IS NULL OR action = $2) AND ($3::text IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4",
        )
        .bind(scope.tenant().to_string())
        .bind(&query.action)
        .bind(query.before.map(|b| b.to_string()))
        .bind(query.page_size())
        .fetch_all(self.pool())
        .await
        .map_err(map_sqlx)?;
        rows.iter().map(decode).collect()
    }
}

fn decode(row: &sqlx::postgres::PgRow) -> StoreResult<AuditEvent> {
    let id: String = row.try_get("id")?;
    let created_at: DateTime<Utc> = row.try_get("created_at")?;
    Ok(AuditEvent {
        id: id
            .parse()
            .map_err(|e| StoreError::Other(sqlx::Error::Decode(Box::new(e))))?,
        tenant_id: row.try_get("tenant_id")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        request_id: row.try_get("request_id")?,
        data: row.try_get("data")?,
        created_at,
    })
}
