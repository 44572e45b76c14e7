//! [`WebhookStore`] on SQLite: writes take the write lock at `BEGIN` (`begin_write`), so
//! claims and attempt records are serialised like every other write on the one file.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keel_core::ids::{EndpointId, MessageId, TenantId, UserId};
use keel_core::outbound::EventType;
use sqlx::types::Json;

use super::webhook_outbox;
use super::webhooks_claim;
use super::SqliteStore;
use crate::error::map_sqlx;
use crate::webhook_calc::{
    self, attempt_columns, endpoint_columns, event_types_json, message_columns,
};
use crate::{
    AttemptOutcome, AttemptRecord, AttemptResult, DeliveryStatus, DueDelivery, EndpointRecord,
    EndpointUpdate, MessageRecord, NewEndpoint, OutboxMessage, StoreError, StoreResult,
    TenantScope, WebhookStore,
};

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn create_endpoint(
        &self,
        scope: &TenantScope,
        e: NewEndpoint,
    ) -> StoreResult<EndpointRecord> {
        let now = crate::now();
        let row = sqlx::query(concat!(
            "INSERT INTO webhook_endpoints (id, tenant_id, url, description, event_types, secret,
                                            enabled, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?7) RETURNING ",
            endpoint_columns!()
        ))
        .bind(e.id.to_string())
        .bind(scope.tenant().to_string())
        .bind(&e.url)
        .bind(&e.description)
        .bind(Json(event_types_json(&e.event_types)))
        .bind(&e.secret)
        .bind(now)
        .fetch_one(self.pool())
        .await
        .map_err(map_sqlx)?;
        webhook_calc::endpoint(&row)
    }

    async fn endpoint_tenant(&self, id: EndpointId) -> StoreResult<Option<TenantId>> {
        let t: Option<String> =
            sqlx::query_scalar("SELECT tenant_id FROM webhook_endpoints WHERE id = ?1")
                .bind(id.to_string())
                .fetch_optional(self.pool())
                .await
                .map_err(map_sqlx)?;
        Ok(t.and_then(|t| t.parse().ok()))
    }

    async fn get_endpoint(
        &self,
        scope: &TenantScope,
        id: EndpointId,
    ) -> StoreResult<EndpointRecord> {
        let row = sqlx::query(concat!(
            "SELECT ",
            endpoint_columns!(),
            " FROM webhook_endpoints WHERE id = ?1 AND tenant_id = ?2"
        ))
        .bind(id.to_string())
        .bind(scope.tenant().to_string())
        .fetch_optional(self.pool())
        .await
        .map_err(map_sqlx)?
        .ok_or(StoreError::NotFound)?;
        webhook_calc::endpoint(&row)
    }

    async fn list_endpoints(&self, scope: &TenantScope) -> StoreResult<Vec<EndpointRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            endpoint_columns!(),
            " FROM webhook_endpoints WHERE tenant_id = ?1 ORDER BY created_at, id"
        ))
        .bind(scope.tenant().to_string())
        .fetch_all(self.pool())
        .await
        .map_err(map_sqlx)?
        .iter()
        .map(webhook_calc::endpoint)
        .collect()
    }

    async fn update_endpoint(
        &self,
        scope: &TenantScope,
        id: EndpointId,
        u: EndpointUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<EndpointRecord> {
        let row = sqlx::query(concat!(
            "UPDATE webhook_endpoints SET
                 enabled = COALESCE(?3, enabled),
                 disabled_reason = CASE WHEN ?3 IS NULL THEN disabled_reason
                                        WHEN ?3 THEN NULL ELSE 'operator' END,
                 failing_since = CASE WHEN ?3 THEN NULL ELSE failing_since END,
                 event_types = COALESCE(?4, event_types),
                 url = COALESCE(?5, url),
                 description = COALESCE(?6, description),
                 updated_at = ?7
             WHERE id = ?1 AND tenant_id = ?2 RETURNING ",
            endpoint_columns!()
        ))
        .bind(id.to_string())
        .bind(scope.tenant().to_string())
        .bind(u.enabled)
        .bind(u.event_types.as_deref().map(|t| Json(event_types_json(t))))
        .bind(u.url)
        .bind(u.description)
        .bind(crate::micros(now))
        .fetch_optional(self.pool())
        .await
        .map_err(map_sqlx)?
        .ok_or(StoreError::NotFound)?;
        webhook_calc::endpoint(&row)
    }

    async fn delete_endpoint(&self, scope: &TenantScope, id: EndpointId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM webhook_endpoints WHERE id = ?1 AND tenant_id = ?2")
            .bind(id.to_string())
            .bind(scope.tenant().to_string())
            .execute(self.pool())
            .await
            .map_err(map_sqlx)?;
        Ok(done.rows_affected() == 1)
    }

    async fn rotate_endpoint_secret(
        &self,
        scope: &TenantScope,
        id: EndpointId,
        secret: String,
        previous_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<EndpointRecord> {
        let row = sqlx::query(concat!(
            "UPDATE webhook_endpoints SET previous_secret = secret, previous_until = ?3,
                 secret = ?4, updated_at = ?5
             WHERE id = ?1 AND tenant_id = ?2 RETURNING ",
            endpoint_columns!()
        ))
        .bind(id.to_string())
        .bind(scope.tenant().to_string())
        .bind(crate::micros(previous_until))
        .bind(secret)
        .bind(crate::micros(now))
        .fetch_optional(self.pool())
        .await
        .map_err(map_sqlx)?
        .ok_or(StoreError::NotFound)?;
        webhook_calc::endpoint(&row)
    }

    async fn enqueue(
        &self,
        scope: &TenantScope,
        message: OutboxMessage,
    ) -> StoreResult<MessageRecord> {
        let mut tx = self.begin_write().await?;
        let m = webhook_outbox::enqueue(&mut tx, &scope.tenant().to_string(), &message).await?;
        tx.commit().await.map_err(map_sqlx)?;
        Ok(m)
    }

    async fn message_tenant(&self, id: MessageId) -> StoreResult<Option<TenantId>> {
        let t: Option<String> =
            sqlx::query_scalar("SELECT tenant_id FROM webhook_messages WHERE id = ?1")
                .bind(id.to_string())
                .fetch_optional(self.pool())
                .await
                .map_err(map_sqlx)?;
        Ok(t.and_then(|t| t.parse().ok()))
    }

    async fn get_message(&self, scope: &TenantScope, id: MessageId) -> StoreResult<MessageRecord> {
        let row = sqlx::query(concat!(
            "SELECT ",
            message_columns!(),
            " FROM webhook_messages WHERE id = ?1 AND tenant_id = ?2"
        ))
        .bind(id.to_string())
        .bind(scope.tenant().to_string())
        .fetch_optional(self.pool())
        .await
        .map_err(map_sqlx)?
        .ok_or(StoreError::NotFound)?;
        webhook_calc::message(&row)
    }

    async fn list_messages(
        &self,
        scope: &TenantScope,
        event_type: Option<EventType>,
        limit: i64,
    ) -> StoreResult<Vec<MessageRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            message_columns!(),
            " FROM webhook_messages WHERE tenant_id = ?1 AND (?2 IS NULL OR event_type = ?2)
              ORDER BY created_at DESC, id DESC LIMIT ?3"
        ))
        .bind(scope.tenant().to_string())
        .bind(event_type.map(|t| t.as_str()))
        .bind(limit.clamp(1, 500))
        .fetch_all(self.pool())
        .await
        .map_err(map_sqlx)?
        .iter()
        .map(webhook_calc::message)
        .collect()
    }

    async fn replay_message(
        &self,
        scope: &TenantScope,
        id: MessageId,
        now: DateTime<Utc>,
    ) -> StoreResult<usize> {
        let now = crate::micros(now);
        let m = self.get_message(scope, id).await?;
        let mut tx = self.begin_write().await?;
        let tenant = m.tenant_id.to_string();
        let requeued = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', failures = 0,
                 next_attempt_at = ?2, locked_until = NULL, claim_token = NULL, updated_at = ?2
             WHERE message_id = ?1 AND endpoint_id IN (
                 SELECT e.id FROM webhook_endpoints e WHERE e.enabled
                   AND EXISTS (SELECT 1 FROM json_each(e.event_types) t WHERE t.value = ?3))",
        )
        .bind(id.to_string())
        .bind(now)
        .bind(m.event_type.as_str())
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx)?
        .rows_affected();
        let added = webhook_outbox::fan_out(
            &mut tx,
            &tenant,
            &id.to_string(),
            m.event_type.as_str(),
            now,
        )
        .await?;
        tx.commit().await.map_err(map_sqlx)?;
        Ok(usize::try_from(requeued + added).unwrap_or(usize::MAX))
    }

    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<DueDelivery>> {
        webhooks_claim::claim(self, crate::micros(now), crate::micros(lease_until), limit).await
    }

    async fn record_attempt(
        &self,
        d: &DueDelivery,
        result: AttemptResult,
    ) -> StoreResult<AttemptOutcome> {
        webhooks_claim::record(self, d, result).await
    }

    async fn list_attempts(
        &self,
        scope: &TenantScope,
        endpoint: EndpointId,
        limit: i64,
    ) -> StoreResult<Vec<AttemptRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            attempt_columns!(),
            " FROM webhook_attempts WHERE endpoint_id = ?1 AND tenant_id = ?2
              ORDER BY attempted_at DESC, attempt DESC LIMIT ?3"
        ))
        .bind(endpoint.to_string())
        .bind(scope.tenant().to_string())
        .bind(limit.clamp(1, 500))
        .fetch_all(self.pool())
        .await
        .map_err(map_sqlx)?
        .iter()
        .map(webhook_calc::attempt)
        .collect()
    }

    async fn message_deliveries(
        &self,
        scope: &TenantScope,
        id: MessageId,
    ) -> StoreResult<Vec<(EndpointId, DeliveryStatus, i64)>> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT endpoint_id, status, attempts FROM webhook_deliveries
             WHERE message_id = ?1 AND tenant_id = ?2 ORDER BY endpoint_id",
        )
        .bind(id.to_string())
        .bind(scope.tenant().to_string())
        .fetch_all(self.pool())
        .await
        .map_err(map_sqlx)?;
        webhook_calc::deliveries(rows)
    }

    async fn billing_customer(
        &self,
        scope: &TenantScope,
        user: UserId,
        provider: &str,
    ) -> StoreResult<Option<String>> {
        sqlx::query_scalar(
            "SELECT customer_id FROM billing_customers
             WHERE tenant_id = ?1 AND user_id = ?2 AND provider = ?3",
        )
        .bind(scope.tenant().to_string())
        .bind(user.to_string())
        .bind(provider)
        .fetch_optional(self.pool())
        .await
        .map_err(map_sqlx)
    }

    async fn put_billing_customer(
        &self,
        scope: &TenantScope,
        user: UserId,
        provider: &str,
        customer_id: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO billing_customers (tenant_id, user_id, provider, customer_id, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (tenant_id, user_id, provider) DO UPDATE
             SET customer_id = excluded.customer_id",
        )
        .bind(scope.tenant().to_string())
        .bind(user.to_string())
        .bind(provider)
        .bind(customer_id)
        .bind(crate::now())
        .execute(self.pool())
        .await
        .map_err(map_sqlx)?;
        Ok(())
    }
}
