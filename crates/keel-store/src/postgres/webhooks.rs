//! The webhook inbox on PostgreSQL: claims skip rows other workers hold (`SKIP LOCKED`);
//! a resolution locks its event row, so only the claim's holder decides.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keel_core::ids::{AuditId, InboxEventId, UserId};
use sqlx::types::Json;
use sqlx::{Postgres, Transaction};

use super::PostgresStore;
use crate::error::map_sqlx;
use crate::webhooks::{inbox_columns, inbox_event, parse_link, MAX_LIST};
use crate::{
    InboxEvent, InboxResolution, InboxStatus, InboxStore, NewInboxEvent, ResolveOutcome,
    StoreError, StoreResult, SubscriptionChange, TenantScope,
};

#[async_trait]
impl InboxStore for PostgresStore {
    async fn record_inbox_event(&self, event: NewInboxEvent) -> StoreResult<(InboxEvent, bool)> {
        let at = crate::micros(event.received_at);
        let inserted = sqlx::query(
            "INSERT INTO webhook_inbox (id, provider, provider_event_id, event_type, payload,
                                        status, attempts, next_attempt_at, received_at)
             VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $7)
             ON CONFLICT (provider, provider_event_id) DO NOTHING",
        )
        .bind(InboxEventId::new().to_string())
        .bind(&event.provider)
        .bind(&event.provider_event_id)
        .bind(&event.event_type)
        .bind(&event.payload)
        .bind(at)
        .bind(at)
        .execute(self.pool())
        .await
        .map_err(map_sqlx)?
        .rows_affected()
            == 1;
        let row = sqlx::query(concat!(
            "SELECT ",
            inbox_columns!(),
            " FROM webhook_inbox WHERE provider = $1 AND provider_event_id = $2"
        ))
        .bind(&event.provider)
        .bind(&event.provider_event_id)
        .fetch_one(self.pool())
        .await
        .map_err(map_sqlx)?;
        Ok((inbox_event(&row)?, inserted))
    }

    async fn claim_inbox_events(
        &self,
        now: DateTime<Utc>,
        claim_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<InboxEvent>> {
        let rows = sqlx::query(concat!(
            "UPDATE webhook_inbox SET attempts = attempts + 1, next_attempt_at = $1
             WHERE id IN (SELECT id FROM webhook_inbox
                          WHERE status IN ('pending', 'failed') AND next_attempt_at <= $2
                          ORDER BY next_attempt_at LIMIT $3
                          FOR UPDATE SKIP LOCKED)
             RETURNING ",
            inbox_columns!()
        ))
        .bind(crate::micros(claim_until))
        .bind(crate::micros(now))
        .bind(limit.clamp(0, MAX_LIST))
        .fetch_all(self.pool())
        .await
        .map_err(map_sqlx)?;
        rows.iter().map(inbox_event).collect()
    }

    async fn resolve_inbox_event(
        &self,
        id: InboxEventId,
        attempt: i64,
        resolution: InboxResolution,
        now: DateTime<Utc>,
    ) -> StoreResult<ResolveOutcome> {
        let now = crate::micros(now);
        let mut tx = self.pool().begin().await.map_err(map_sqlx)?;
        let held: Option<(String, i64, String)> = sqlx::query_as(
            "SELECT status, attempts, provider FROM webhook_inbox WHERE id = $1 FOR UPDATE",
        )
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_sqlx)?;
        match held {
            None => return Err(StoreError::NotFound),
            Some((status, attempts, _))
                if attempts != attempt || !matches!(status.as_str(), "pending" | "failed") =>
            {
                return Ok(ResolveOutcome::LostClaim)
            }
            Some(_) => {}
        }
        let provider = held.map(|h| h.2).unwrap_or_default();
        let outcome = match resolution {
            InboxResolution::Change(change) => {
                link(
                    &mut tx,
                    &provider,
                    &change.provider_ref,
                    &change.scope,
                    change.subscription.user_id,
                    now,
                )
                .await?;
                apply(&mut tx, id, *change, now).await?
            }
            InboxResolution::Link {
                scope,
                user,
                provider_ref,
            } => {
                link(&mut tx, &provider, &provider_ref, &scope, user, now).await?;
                let note = format!("linked {provider_ref}");
                finish(&mut tx, id, "applied", None, Some(&note), None, now).await?;
                sqlx::query("UPDATE webhook_inbox SET tenant_id = $1, user_id = $2 WHERE id = $3")
                    .bind(scope.tenant().to_string())
                    .bind(user.to_string())
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_sqlx)?;
                ResolveOutcome::Recorded
            }
            InboxResolution::Ignore { reason } => {
                finish(
                    &mut tx,
                    id,
                    "applied",
                    None,
                    Some(&format!("ignored: {reason}")),
                    None,
                    now,
                )
                .await?;
                ResolveOutcome::Recorded
            }
            InboxResolution::Fail { error, retry_at } => {
                let (status, next) = match retry_at {
                    Some(at) => ("failed", Some(crate::micros(at))),
                    None => ("dead", None),
                };
                finish(&mut tx, id, status, Some(&error), None, next, now).await?;
                ResolveOutcome::Recorded
            }
        };
        tx.commit().await.map_err(map_sqlx)?;
        Ok(outcome)
    }

    async fn get_inbox_event(&self, id: InboxEventId) -> StoreResult<InboxEvent> {
        let row = sqlx::query(concat!(
            "SELECT ",
            inbox_columns!(),
            " FROM webhook_inbox WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await
        .map_err(map_sqlx)?
        .ok_or(StoreError::NotFound)?;
        inbox_event(&row)
    }

    async fn list_inbox_events(
        &self,
        status: Option<InboxStatus>,
        provider: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<InboxEvent>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            inbox_columns!(),
            " FROM webhook_inbox WHERE ($1::text IS NULL OR status = $2) AND ($3::text IS NULL OR provider = $4)
              ORDER BY id DESC LIMIT $5"
        ))
        .bind(status.map(InboxStatus::as_str))
        .bind(status.map(InboxStatus::as_str))
        .bind(provider)
        .bind(provider)
        .bind(limit.clamp(0, MAX_LIST))
        .fetch_all(self.pool())
        .await
        .map_err(map_sqlx)?;
        rows.iter().map(inbox_event).collect()
    }

    async fn find_provider_link(
        &self,
        provider: &str,
        provider_ref: &str,
    ) -> StoreResult<Option<(TenantScope, UserId)>> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT tenant_id, user_id FROM webhook_links WHERE provider = $1 AND provider_ref = $2",
        )
        .bind(provider)
        .bind(provider_ref)
        .fetch_optional(self.pool())
        .await
        .map_err(map_sqlx)?;
        row.map(|(t, u)| parse_link(&t, &u)).transpose()
    }

    async fn link_provider_ref(
        &self,
        scope: &TenantScope,
        user: UserId,
        provider: &str,
        provider_ref: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO webhook_links (provider, provider_ref, tenant_id, user_id, created_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (provider, provider_ref) DO NOTHING",
        )
        .bind(provider)
        .bind(provider_ref)
        .bind(scope.tenant().to_string())
        .bind(user.to_string())
        .bind(crate::now())
        .execute(self.pool())
        .await
        .map_err(map_sqlx)?;
        match self.find_provider_link(provider, provider_ref).await? {
            Some((s, u)) if s == *scope && u == user => Ok(()),
            _ => Err(StoreError::Conflict("linked to another user".into())),
        }
    }

    async fn replay_inbox_event(
        &self,
        id: InboxEventId,
        now: DateTime<Utc>,
    ) -> StoreResult<InboxEvent> {
        let row = sqlx::query(concat!(
            "UPDATE webhook_inbox SET status = 'pending', attempts = 0, next_attempt_at = $1,
                                      applied_at = NULL
             WHERE id = $2 RETURNING ",
            inbox_columns!()
        ))
        .bind(crate::micros(now))
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await
        .map_err(map_sqlx)?
        .ok_or(StoreError::NotFound)?;
        inbox_event(&row)
    }
}

/// Writes the subscription unless a newer provider event set it, the audit event, and
/// marks the inbox event applied.
async fn apply(
    tx: &mut Transaction<'static, Postgres>,
    id: InboxEventId,
    change: SubscriptionChange,
    now: DateTime<Utc>,
) -> StoreResult<ResolveOutcome> {
    let tenant = change.scope.tenant().to_string();
    let sub = &change.subscription;
    let user = sub.user_id.to_string();
    let before = super::billing_accounts::locked_subscription(tx, &tenant, sub.user_id).await?;
    let written = sqlx::query(
        "INSERT INTO subscriptions (tenant_id, user_id, plan, status, period_start, period_end,
                                    source, addons, updated_at, provider_event_at, provider_ref)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (tenant_id, user_id) DO UPDATE
         SET plan = excluded.plan, status = excluded.status,
             period_start = excluded.period_start, period_end = excluded.period_end,
             source = excluded.source, addons = excluded.addons, updated_at = excluded.updated_at,
             provider_event_at = excluded.provider_event_at, provider_ref = excluded.provider_ref
         WHERE subscriptions.provider_event_at IS NULL
            OR subscriptions.provider_event_at <= excluded.provider_event_at",
    )
    .bind(&tenant)
    .bind(&user)
    .bind(&sub.plan)
    .bind(&sub.status)
    .bind(crate::micros(sub.period_start))
    .bind(crate::micros(sub.period_end))
    .bind(&sub.source)
    .bind(Json(&sub.addons))
    .bind(crate::micros(sub.updated_at))
    .bind(crate::micros(change.event_at))
    .bind(&change.provider_ref)
    .execute(&mut **tx)
    .await
    .map_err(map_sqlx)?
    .rows_affected()
        == 1;
    let (outcome, note) = if written {
        super::webhook_outbox::subscription(tx, &tenant, before.as_ref(), sub).await?;
        let a = &change.audit;
        sqlx::query(
            "INSERT INTO audit_events (id, tenant_id, actor, action, target, request_id, data, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(AuditId::new().to_string())
        .bind(&tenant)
        .bind(&a.actor)
        .bind(&a.action)
        .bind(&a.target)
        .bind(&a.request_id)
        .bind(&a.data)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(map_sqlx)?;
        (ResolveOutcome::Applied, a.action.clone())
    } else {
        (
            ResolveOutcome::Stale,
            "stale: a newer event set the subscription".to_string(),
        )
    };
    sqlx::query(
        "UPDATE webhook_inbox SET status = 'applied', outcome = $1, tenant_id = $2, user_id = $3,
                                  applied_at = $4, last_error = NULL
         WHERE id = $5",
    )
    .bind(note)
    .bind(&tenant)
    .bind(&user)
    .bind(now)
    .bind(id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(map_sqlx)?;
    Ok(outcome)
}

async fn finish(
    tx: &mut Transaction<'static, Postgres>,
    id: InboxEventId,
    status: &str,
    error: Option<&str>,
    outcome: Option<&str>,
    next_attempt_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE webhook_inbox
         SET status = $1, last_error = COALESCE($2, last_error), outcome = COALESCE($3, outcome),
             next_attempt_at = COALESCE($4, next_attempt_at),
             applied_at = CASE WHEN $5::text = 'applied' THEN $6::timestamptz ELSE applied_at END
         WHERE id = $7",
    )
    .bind(status)
    .bind(error)
    .bind(outcome)
    .bind(next_attempt_at)
    .bind(status)
    .bind(now)
    .bind(id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(map_sqlx)?;
    Ok(())
}

/// Links (or re-links: the provider vouches for the user) a subscription reference.
async fn link(
    tx: &mut Transaction<'static, Postgres>,
    provider: &str,
    provider_ref: &str,
    scope: &TenantScope,
    user: UserId,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if provider_ref.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO webhook_links (provider, provider_ref, tenant_id, user_id, created_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (provider, provider_ref) DO UPDATE
         SET tenant_id = excluded.tenant_id, user_id = excluded.user_id",
    )
    .bind(provider)
    .bind(provider_ref)
    .bind(scope.tenant().to_string())
    .bind(user.to_string())
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(map_sqlx)?;
    Ok(())
}
