//! Prepaid balances with their idempotent adjustments, and subscriptions.

use keel_core::ids::UserId;
use sqlx::types::Json;
use sqlx::{SqliteConnection, SqliteExecutor};

use super::SqliteStore;
use crate::billing_calc;
use crate::billing_rows::{self, subscription_columns};
use crate::error::map_sqlx;
use crate::rows::Columns;
use crate::{StoreResult, Subscription, TenantScope};

/// (balance, held) in micros; (0, 0) without a row.
pub(super) async fn balance(
    db: impl SqliteExecutor<'_>,
    tenant: &str,
    user: UserId,
) -> StoreResult<(i64, i64)> {
    let row = sqlx::query(
        "SELECT balance_micros, held_micros FROM balances WHERE tenant_id = ? AND user_id = ?",
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

/// `BEGIN IMMEDIATE` makes a key's first use visible to the next.
pub(super) async fn adjust(
    store: &SqliteStore,
    scope: &TenantScope,
    user: UserId,
    delta: i64,
    key: &str,
) -> StoreResult<i64> {
    let tenant = scope.tenant().to_string();
    let mut tx = store.begin_write().await?;
    if let Some(done) = adjustment(&mut *tx, &tenant, key).await? {
        return billing_calc::adjustment_replay(done, user, delta);
    }
    let Some(after) = add(&mut tx, &tenant, user, delta).await? else {
        return Err(billing_calc::below_held());
    };
    sqlx::query(
        "INSERT INTO balance_adjustments
             (tenant_id, idempotency_key, user_id, delta, balance_after, created_at)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&tenant)
    .bind(key)
    .bind(user.to_string())
    .bind(delta)
    .bind(after)
    .bind(crate::now())
    .execute(&mut *tx)
    .await
    .map_err(map_sqlx)?;
    tx.commit().await.map_err(map_sqlx)?;
    Ok(after)
}

/// The new balance, or `None` when a removal would leave less than is held.
async fn add(
    conn: &mut SqliteConnection,
    tenant: &str,
    user: UserId,
    delta: i64,
) -> StoreResult<Option<i64>> {
    let sql = if delta >= 0 {
        "INSERT INTO balances (tenant_id, user_id, balance_micros, held_micros)
         VALUES (?1, ?2, ?3, 0)
         ON CONFLICT (tenant_id, user_id) DO UPDATE
         SET balance_micros = balances.balance_micros + excluded.balance_micros
         RETURNING balance_micros"
    } else {
        "UPDATE balances SET balance_micros = balance_micros + ?3
         WHERE tenant_id = ?1 AND user_id = ?2 AND balance_micros + ?3 >= held_micros
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
    db: impl SqliteExecutor<'_>,
    tenant: &str,
    key: &str,
) -> StoreResult<Option<(String, i64, i64)>> {
    let row = sqlx::query(
        "SELECT user_id, delta, balance_after FROM balance_adjustments
         WHERE tenant_id = ? AND idempotency_key = ?",
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
    store: &SqliteStore,
    scope: &TenantScope,
    user: UserId,
) -> StoreResult<Option<Subscription>> {
    sqlx::query(concat!(
        "SELECT ",
        subscription_columns!(),
        " FROM subscriptions WHERE tenant_id = ? AND user_id = ?"
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

pub(super) async fn put_subscription(
    store: &SqliteStore,
    scope: &TenantScope,
    sub: Subscription,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO subscriptions (tenant_id, user_id, plan, status, period_start, period_end,
                                    source, addons, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (tenant_id, user_id) DO UPDATE
         SET plan = excluded.plan, status = excluded.status,
             period_start = excluded.period_start, period_end = excluded.period_end,
             source = excluded.source, addons = excluded.addons, updated_at = excluded.updated_at",
    )
    .bind(scope.tenant().to_string())
    .bind(sub.user_id.to_string())
    .bind(&sub.plan)
    .bind(&sub.status)
    .bind(crate::micros(sub.period_start))
    .bind(crate::micros(sub.period_end))
    .bind(&sub.source)
    .bind(Json(&sub.addons))
    .bind(crate::micros(sub.updated_at))
    .execute(store.pool())
    .await
    .map_err(map_sqlx)?;
    Ok(())
}
