use async_trait::async_trait;
use sqlx::Row;

use super::PostgresStore;
use crate::error::map_sqlx;
use crate::safety::stamp;
use crate::{
    NewSafetyEvent, SafetyEvent, SafetyQuery, SafetyStore, StoreError, StoreResult, TenantScope,
};

#[async_trait]
impl SafetyStore for PostgresStore {
    async fn record_safety_events(
        &self,
        scope: &TenantScope,
        events: Vec<NewSafetyEvent>,
    ) -> StoreResult<Vec<SafetyEvent>> {
        let rows = stamp(scope, events);
        if rows.is_empty() {
            return Ok(rows);
        }
        let mut tx = self.pool().begin().await.map_err(map_sqlx)?;
        for row in &rows {
            sqlx::query(
                "INSERT INTO safety_events (id, tenant_id, user_id, rule, feature, action, status,
                     request_id, text_hash, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(row.id.to_string())
            .bind(&row.tenant_id)
            .bind(row.user_id.to_string())
            .bind(&row.rule)
            .bind(&row.feature)
            .bind(&row.action)
            .bind(&row.status)
            .bind(&row.request_id)
            .bind(&row.text_hash)
            .bind(row.created_at)
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?;
            let message = crate::webhook_events::safety_flagged(row);
            super::webhook_outbox::enqueue(&mut tx, &row.tenant_id, &message).await?;
        }
        tx.commit().await.map_err(map_sqlx)?;
        Ok(rows)
    }

    async fn list_safety_events(
        &self,
        scope: &TenantScope,
        query: &SafetyQuery,
    ) -> StoreResult<Vec<SafetyEvent>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, user_id, rule, feature, action, status, request_id, text_hash,
                    created_at
             FROM safety_events
             WHERE tenant_id = $1 AND ($2::text IS NULL OR user_id = $2)
               AND ($3::text IS NULL OR request_id = $3) AND ($4::text IS NULL OR id < $4)
             ORDER BY id DESC LIMIT $5",
        )
        .bind(scope.tenant().to_string())
        .bind(query.user_id.map(|u| u.to_string()))
        .bind(&query.request_id)
        .bind(query.before.map(|b| b.to_string()))
        .bind(query.page_size())
        .fetch_all(self.pool())
        .await
        .map_err(map_sqlx)?;
        rows.iter().map(decode).collect()
    }
}

fn decode(row: &sqlx::postgres::PgRow) -> StoreResult<SafetyEvent> {
    let parse = |e: keel_core::ids::InvalidId| StoreError::Other(sqlx::Error::Decode(Box::new(e)));
    let id: String = row.try_get("id")?;
    let user: String = row.try_get("user_id")?;
    Ok(SafetyEvent {
        id: id.parse().map_err(parse)?,
        tenant_id: row.try_get("tenant_id")?,
        user_id: user.parse().map_err(parse)?,
        rule: row.try_get("rule")?,
        feature: row.try_get("feature")?,
        action: row.try_get("action")?,
        status: row.try_get("status")?,
        request_id: row.try_get("request_id")?,
        text_hash: row.try_get("text_hash")?,
        created_at: row.try_get("created_at")?,
    })
}
