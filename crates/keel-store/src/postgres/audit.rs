use async_trait::async_trait;
use chrono::{DateTime, Utc};
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
        let row = crate::audit::audit_row(&scope.tenant().to_string(), event, crate::now());
        let mut conn = self.pool().acquire().await.map_err(map_sqlx)?;
        super::billing_batch::insert_audit(&mut conn, &row).await?;
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
