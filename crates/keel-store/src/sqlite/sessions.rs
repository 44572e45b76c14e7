//! Sessions and their refresh tokens (the session half of [`crate::UserStore`]).

use chrono::{DateTime, Utc};
use keel_core::ids::{RefreshTokenId, SessionId, UserId};
use sqlx::SqliteConnection;

use super::SqliteStore;
use crate::error::map_sqlx;
use crate::rows::{self, refresh_token_columns, session_columns, Columns};
use crate::{
    NewRefreshToken, NewSession, RefreshTokenRecord, Rotation, SessionRecord, StoreError,
    StoreResult, TenantScope,
};

pub(super) async fn create(
    store: &SqliteStore,
    scope: &TenantScope,
    session: NewSession,
    token: NewRefreshToken,
) -> StoreResult<SessionRecord> {
    let now = crate::now();
    let record = SessionRecord {
        id: session.id,
        tenant_id: scope.tenant(),
        user_id: session.user_id,
        device_name: session.device_name,
        user_agent: session.user_agent,
        ip: session.ip,
        created_at: now,
        last_seen_at: now,
        expires_at: crate::micros(session.expires_at),
        revoked_at: None,
        revoked_reason: None,
    };
    let mut tx = store.begin_write().await?;
    // Selecting through the user's row refuses a user of another tenant.
    let done = sqlx::query(
        "INSERT INTO sessions (id, tenant_id, user_id, device_name, user_agent, ip, created_at,
                               last_seen_at, expires_at)
         SELECT ?, tenant_id, id, ?, ?, ?, ?, ?, ? FROM users WHERE id = ? AND tenant_id = ?",
    )
    .bind(record.id.to_string())
    .bind(&record.device_name)
    .bind(&record.user_agent)
    .bind(&record.ip)
    .bind(record.created_at)
    .bind(record.last_seen_at)
    .bind(record.expires_at)
    .bind(record.user_id.to_string())
    .bind(scope.tenant().to_string())
    .execute(&mut *tx)
    .await
    .map_err(map_sqlx)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    insert_token(&mut tx, scope, record.id, &token, now).await?;
    tx.commit().await.map_err(map_sqlx)?;
    Ok(record)
}

async fn insert_token(
    conn: &mut SqliteConnection,
    scope: &TenantScope,
    session: SessionId,
    token: &NewRefreshToken,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (id, tenant_id, session_id, token_hash, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(token.id.to_string())
    .bind(scope.tenant().to_string())
    .bind(session.to_string())
    .bind(&token.token_hash)
    .bind(now)
    .bind(crate::micros(token.expires_at))
    .execute(conn)
    .await
    .map_err(map_sqlx)?;
    Ok(())
}

pub(super) async fn get(
    store: &SqliteStore,
    scope: &TenantScope,
    id: SessionId,
) -> StoreResult<SessionRecord> {
    sqlx::query(concat!(
        "SELECT ",
        session_columns!(),
        " FROM sessions WHERE id = ? AND tenant_id = ?"
    ))
    .bind(id.to_string())
    .bind(scope.tenant().to_string())
    .fetch_optional(store.pool())
    .await
    .map_err(map_sqlx)?
    .as_ref()
    .map_or(Err(StoreError::NotFound), rows::session)
}

pub(super) async fn list_live(
    store: &SqliteStore,
    scope: &TenantScope,
    user: UserId,
    now: DateTime<Utc>,
) -> StoreResult<Vec<SessionRecord>> {
    sqlx::query(concat!(
        "SELECT ",
        session_columns!(),
        " FROM sessions
          WHERE tenant_id = ? AND user_id = ? AND revoked_at IS NULL AND expires_at > ?
          ORDER BY created_at DESC, id DESC"
    ))
    .bind(scope.tenant().to_string())
    .bind(user.to_string())
    .bind(now)
    .fetch_all(store.pool())
    .await
    .map_err(map_sqlx)?
    .iter()
    .map(rows::session)
    .collect()
}

pub(super) async fn revoke(
    store: &SqliteStore,
    scope: &TenantScope,
    user: UserId,
    id: SessionId,
    reason: &str,
) -> StoreResult<()> {
    // COALESCE keeps the first revocation's time and reason, so repeating is harmless.
    let done = sqlx::query(
        "UPDATE sessions
         SET revoked_at = COALESCE(revoked_at, ?), revoked_reason = COALESCE(revoked_reason, ?)
         WHERE id = ? AND tenant_id = ? AND user_id = ?",
    )
    .bind(crate::now())
    .bind(reason)
    .bind(id.to_string())
    .bind(scope.tenant().to_string())
    .bind(user.to_string())
    .execute(store.pool())
    .await
    .map_err(map_sqlx)?;
    match done.rows_affected() {
        0 => Err(StoreError::NotFound),
        _ => Ok(()),
    }
}

pub(super) async fn revoke_all_but(
    store: &SqliteStore,
    scope: &TenantScope,
    user: UserId,
    keep: Option<SessionId>,
    reason: &str,
) -> StoreResult<u64> {
    let now = crate::now();
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = ?1, revoked_reason = ?2
         WHERE tenant_id = ?3 AND user_id = ?4 AND revoked_at IS NULL AND expires_at > ?1
           AND (?5 IS NULL OR id <> ?5)",
    )
    .bind(now)
    .bind(reason)
    .bind(scope.tenant().to_string())
    .bind(user.to_string())
    .bind(keep.map(|k| k.to_string()))
    .execute(store.pool())
    .await
    .map_err(map_sqlx)?;
    Ok(done.rows_affected())
}

pub(super) async fn find_token(
    store: &SqliteStore,
    hash: &[u8],
) -> StoreResult<Option<RefreshTokenRecord>> {
    sqlx::query(concat!(
        "SELECT ",
        refresh_token_columns!(),
        " FROM refresh_tokens WHERE token_hash = ?"
    ))
    .bind(hash)
    .fetch_optional(store.pool())
    .await
    .map_err(map_sqlx)?
    .as_ref()
    .map(rows::refresh_token)
    .transpose()
}

/// `BEGIN IMMEDIATE` serialises rotations; the conditional update picks the one winner.
pub(super) async fn rotate(
    store: &SqliteStore,
    scope: &TenantScope,
    parent: RefreshTokenId,
    child: NewRefreshToken,
    now: DateTime<Utc>,
) -> StoreResult<Rotation> {
    let tenant = scope.tenant().to_string();
    let mut tx = store.begin_write().await?;
    let spent = sqlx::query(
        "UPDATE refresh_tokens SET used_at = ?, successor_id = ?
         WHERE id = ? AND tenant_id = ? AND used_at IS NULL
         RETURNING session_id",
    )
    .bind(now)
    .bind(child.id.to_string())
    .bind(parent.to_string())
    .bind(&tenant)
    .fetch_optional(&mut *tx)
    .await
    .map_err(map_sqlx)?;
    let Some(session) = spent else {
        let row = sqlx::query(
            "SELECT used_at, successor_id FROM refresh_tokens WHERE id = ? AND tenant_id = ?",
        )
        .bind(parent.to_string())
        .bind(&tenant)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_sqlx)?
        .ok_or(StoreError::NotFound)?;
        return Ok(Rotation::AlreadyUsed {
            used_at: row.time("used_at")?,
            successor_id: row.opt_id("successor_id")?,
        });
    };
    let session: SessionId = session.id("session_id")?;
    insert_token(&mut tx, scope, session, &child, now).await?;
    sqlx::query("UPDATE sessions SET last_seen_at = ? WHERE id = ? AND tenant_id = ?")
        .bind(now)
        .bind(session.to_string())
        .bind(&tenant)
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx)?;
    tx.commit().await.map_err(map_sqlx)?;
    Ok(Rotation::Rotated)
}
