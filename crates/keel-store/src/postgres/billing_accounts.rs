//! Prepaid balances with their idempotent adjustments, and subscriptions.

use keel_core::ids::UserId;
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};

use super::PostgresStore;
use crate::billing_calc;
use crate::billing_rows::{self, subscription_columns};
use crate::error::map_sqlx;
use crate::rows::Columns;
use crate::{StoreError, StoreResult, Subscription, TenantScope};

/// (balance, held) in micros; (0, 0) without a row.
pub(super) async fn balance(
    db: impl PgExecutor<'_>,
    tenant: &str,
    user: UserId,
) -> StoreResult<(i64, i64)> {
    let row = sqlx::query(
        "SELECT balance_micros, held_micros FROM balances WHERE tenant_id = $1 AND user_id = $2",
    )
    .bind(tenant)
    .bind(user.to_string())
    .fetch_optional(db)
    .await
    .map_err(map_sqlx)?;
    match row {
        Some(row) => Ok((row.int("balance_micros")?, row.int("held_micros")?)),
        None => Ok((0, 0)),
    }
}

/// Under READ COMMITTED the balance row lock orders concurrent adjustments; of two first
/// uses of one key the later fails on the key's uniqueness and answers as a replay.
pub(super) async fn adjust(
    store: &PostgresStore,
    scope: &TenantScope,
    user: UserId,
    delta: i64,
    key: &str,
) -> StoreResult<i64> {
    let tenant = scope.tenant().to_string();
    let mut tx = store.pool().begin().await.map_err(map_sqlx)?;
    if let Some(done) = adjustment(&mut *tx, &tenant, key).await? {
        return billing_calc::adjustment_replay(done, user, delta);
    }
    let Some(after) = add(&mut tx, &tenant, user, delta).await? else {
        tx.rollback().await.map_err(map_sqlx)?;
        // A concurrent first use of the key may be what took the balance down.
        return match adjustment(store.pool(), &tenant, key).await? {
            Some(done) => billing_calc::adjustment_replay(done, user, delta),
            None => Err(billing_calc::below_held()),
        };
    };
    let inserted = sqlx::query(
        "INSERT INTO balance_adjustments
             (tenant_id, idempotency_key, user_id, delta, balance_after, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&tenant)
    .bind(key)
    .bind(user.to_string())
    .bind(delta)
    .bind(after)
    .bind(crate::now())
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            tx.rollback().await.map_err(map_sqlx)?;
            let done = adjustment(store.pool(), &tenant, key).await?;
            let done = done.ok_or_else(|| StoreError::Conflict(db.message().to_string()))?;
            return billing_calc::adjustment_replay(done, user, delta);
        }
        Err(e) => return Err(map_sqlx(e)),
    }
    tx.commit().await.map_err(map_sqlx)?;
    Ok(after)
}

/// The new balance, or `None` when a removal would leave less than is held.
async fn add(
    conn: &mut PgConnection,
    tenant: &str,
    user: UserId,
    delta: i64,
) -> StoreResult<Option<i64>> {
    let sql = if delta >= 0 {
        "INSERT INTO balances (tenant_id, user_id, balance_micros, held_micros)
         VALUES ($1, $2, $3, 0)
         ON CONFLICT (tenant_id, user_id) DO UPDATE
         SET balance_micros = balances.balance_micros + excluded.balance_micros
         RETURNING balance_micros"
    } else {
        "UPDATE balances SET balance_micros = balance_micros + $3
         WHERE tenant_id = $1 AND user_id = $2 AND balance_micros + $3 >= held_micros
         RETURNING balance_micros"
    };
    sqlx::query_scalar(sql)
        .bind(tenant)
        .bind(user.to_string())
        .bind(delta)
        .fetch_optional(conn)
        .await
        .map_err(map_sqlx)
}

/// The (user, delta, balance after) recorded under a key.
async fn adjustment(
    db: impl PgExecutor<'_>,
    tenant: &str,
    key: &str,
) -> StoreResult<Option<(String, i64, i64)>> {
    let row = sqlx::query(
        "SELECT user_id, delta, balance_after FROM balance_adjustments
         WHERE tenant_id = $1 AND idempotency_key = $2",
    )
    .bind(tenant)
    .bind(key)
    .fetch_optional(db)
    .await
    .map_err(map_sqlx)?;
    row.map(|row| {
        Ok((
            row.text("user_id")?,
            row.int("delta")?,
            row.int("balance_after")?,
        ))
    })
    .transpose()
}

pub(super) async fn get_subscription(
    store: &PostgresStore,
    scope: &TenantScope,
    user: UserId,
) -> StoreResult<Option<Subscription>> {
    sqlx::query(concat!(
        "SELECT ",
        subscription_columns!(),
        " FROM subscriptions WHERE tenant_id = $1 AND user_id = $2"
    ))
    .bind(scope.tenant().to_string())
    .bind(user.to_string())
    .fetch_optional(store.pool())
    .await
    .map_err(map_sqlx)?
    .as_ref()
    .map(billing_rows::subscription)
    .transpose()
}

/// The subscription as this transaction sees it, locked until it ends.
pub(super) async fn locked_subscription(
    conn: &mut sqlx::PgConnection,
    tenant: &str,
    user: UserId,
) -> StoreResult<Option<Subscription>> {
    sqlx::query(concat!(
        "SELECT ",
        subscription_columns!(),
        " FROM subscriptions WHERE tenant_id = $1 AND user_id = $2 FOR UPDATE"
    ))
    .bind(tenant)
    .bind(user.to_string())
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_sqlx)?
    .as_ref()
    .map(billing_rows::subscription)
    .transpose()
}

pub(super) async fn put_subscription(
    store: &PostgresStore,
    scope: &TenantScope,
    sub: Subscription,
) -> StoreResult<()> {
    // The change and its `subscription.changed` message commit together.
    let tenant = scope.tenant().to_string();
    let mut tx = store.pool().begin().await.map_err(map_sqlx)?;
    let before = locked_subscription(&mut tx, &tenant, sub.user_id).await?;
    sqlx::query(
        "INSERT INTO subscriptions (tenant_id, user_id, plan, status, period_start, period_end,
                                    source, addons, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (tenant_id, user_id) DO UPDATE
         SET plan = excluded.plan, status = excluded.status,
             period_start = excluded.period_start, period_end = excluded.period_end,
             source = excluded.source, addons = excluded.addons, updated_at = excluded.updated_at",
    )
    .bind(&tenant)
    .bind(sub.user_id.to_string())
    .bind(&sub.plan)
    .bind(&sub.status)
    .bind(crate::micros(sub.period_start))
    .bind(crate::micros(sub.period_end))
    .bind(&sub.source)
    .bind(Json(&sub.addons))
    .bind(crate::micros(sub.updated_at))
    .execute(&mut *tx)
    .await
    .map_err(map_sqlx)?;
    let after = Subscription {
        period_start: crate::micros(sub.period_start),
        period_end: crate::micros(sub.period_end),
        ..sub
    };
    super::webhook_outbox::subscription(&mut tx, &tenant, before.as_ref(), &after).await?;
    tx.commit().await.map_err(map_sqlx)?;
    Ok(())
}
