//! Prepaid balances with their idempotent adjustments, and subscriptions.

use keel_core::ids::UserId;
use rusqlite::{params, Connection, OptionalExtension};
use sqlx::types::Json;
use sqlx::SqliteExecutor;

use super::lite::{self, map_lite};
use super::writer::Step;
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

/// On the billing writer: a key's first use is visible to the next.
pub(super) fn adjust(
    conn: &Connection,
    tenant: &str,
    user: UserId,
    delta: i64,
    key: &str,
) -> StoreResult<Step<i64>> {
    if let Some(done) = adjustment(conn, tenant, key)? {
        return billing_calc::adjustment_replay(done, user, delta).map(Step::Keep);
    }
    let Some(after) = add(conn, tenant, &user.to_string(), delta)? else {
        return Err(billing_calc::below_held());
    };
    conn.prepare_cached(
        "INSERT INTO balance_adjustments
             (tenant_id, idempotency_key, user_id, delta, balance_after, created_at)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .and_then(|mut s| {
        s.execute(params![
            tenant,
            key,
            user.to_string(),
            delta,
            after,
            lite::time(crate::now())
        ])
    })
    .map_err(map_lite)?;
    Ok(Step::Keep(after))
}

/// The new balance, or `None` when a removal would leave less than is held.
fn add(conn: &Connection, tenant: &str, user: &str, delta: i64) -> StoreResult<Option<i64>> {
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
    conn.prepare_cached(sql)
        .and_then(|mut s| {
            s.query_row(params![tenant, user, delta], |row| row.get(0))
                .optional()
        })
        .map_err(map_lite)
}

/// The (user, delta, balance after) recorded under a key.
fn adjustment(
    conn: &Connection,
    tenant: &str,
    key: &str,
) -> StoreResult<Option<(String, i64, i64)>> {
    conn.prepare_cached(
        "SELECT user_id, delta, balance_after FROM balance_adjustments
         WHERE tenant_id = ? AND idempotency_key = ?",
    )
    .and_then(|mut s| {
        s.query_row(params![tenant, key], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()
    })
    .map_err(map_lite)
}

pub(super) async fn get_subscription(
    store: &SqliteStore,
    scope: &TenantScope,
    user: UserId,
) -> StoreResult<Option<Subscription>> {
    subscription_in(store.pool(), &scope.tenant().to_string(), user).await
}

pub(super) async fn subscription_in(
    db: impl SqliteExecutor<'_>,
    tenant: &str,
    user: UserId,
) -> StoreResult<Option<Subscription>> {
    sqlx::query(concat!(
        "SELECT ",
        subscription_columns!(),
        " FROM subscriptions WHERE tenant_id = ? AND user_id = ?"
    ))
    .bind(tenant)
    .bind(user.to_string())
    .fetch_optional(db)
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
    // The change and its `subscription.changed` message commit together.
    let tenant = scope.tenant().to_string();
    let mut tx = store.begin_write().await?;
    let before = subscription_in(&mut *tx, &tenant, sub.user_id).await?;
    sqlx::query(
        "INSERT INTO subscriptions (tenant_id, user_id, plan, status, period_start, period_end,
                                    source, addons, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
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
