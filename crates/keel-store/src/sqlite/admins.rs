//! Admin accounts and their sessions (the admin half of [`crate::AuthStore`]).

use chrono::{DateTime, Utc};
use keel_core::ids::{AdminId, SessionId};

use super::SqliteStore;
use crate::error::map_sqlx;
use crate::rows::{self, admin_columns, admin_session_columns};
use crate::{AdminRecord, AdminSessionRecord, AdminUpdate, NewAdmin, StoreError, StoreResult};

pub(super) async fn create(store: &SqliteStore, admin: NewAdmin) -> StoreResult<AdminRecord> {
    let record = AdminRecord {
        id: admin.id,
        email: admin.email,
        password_hash: admin.password_hash,
        role: admin.role,
        status: "active".to_string(),
        must_change_password: admin.must_change_password,
        created_at: crate::now(),
    };
    sqlx::query(
        "INSERT INTO admin_accounts (id, email, password_hash, role, status, must_change_password,
                                     created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(record.id.to_string())
    .bind(&record.email)
    .bind(&record.password_hash)
    .bind(&record.role)
    .bind(&record.status)
    .bind(record.must_change_password)
    .bind(record.created_at)
    .execute(store.pool())
    .await
    .map_err(map_sqlx)?;
    Ok(record)
}

pub(super) async fn find_by_email(
    store: &SqliteStore,
    email: &str,
) -> StoreResult<Option<AdminRecord>> {
    sqlx::query(concat!(
        "SELECT ",
        admin_columns!(),
        " FROM admin_accounts WHERE email = ?"
    ))
    .bind(email)
    .fetch_optional(store.pool())
    .await
    .map_err(map_sqlx)?
    .as_ref()
    .map(rows::admin)
    .transpose()
}

pub(super) async fn get(store: &SqliteStore, id: AdminId) -> StoreResult<AdminRecord> {
    sqlx::query(concat!(
        "SELECT ",
        admin_columns!(),
        " FROM admin_accounts WHERE id = ?"
    ))
    .bind(id.to_string())
    .fetch_optional(store.pool())
    .await
    .map_err(map_sqlx)?
    .as_ref()
    .map_or(Err(StoreError::NotFound), rows::admin)
}

pub(super) async fn list(store: &SqliteStore) -> StoreResult<Vec<AdminRecord>> {
    sqlx::query(concat!(
        "SELECT ",
        admin_columns!(),
        " FROM admin_accounts ORDER BY created_at, id"
    ))
    .fetch_all(store.pool())
    .await
    .map_err(map_sqlx)?
    .iter()
    .map(rows::admin)
    .collect()
}

pub(super) async fn update(
    store: &SqliteStore,
    id: AdminId,
    update: AdminUpdate,
) -> StoreResult<AdminRecord> {
    sqlx::query(concat!(
        "UPDATE admin_accounts
         SET role = COALESCE(?1, role), status = COALESCE(?2, status),
             password_hash = COALESCE(?3, password_hash),
             must_change_password = COALESCE(?4, must_change_password)
         WHERE id = ?5
         RETURNING ",
        admin_columns!()
    ))
    .bind(update.role)
    .bind(update.status)
    .bind(update.password_hash)
    .bind(update.must_change_password)
    .bind(id.to_string())
    .fetch_optional(store.pool())
    .await
    .map_err(map_sqlx)?
    .as_ref()
    .map_or(Err(StoreError::NotFound), rows::admin)
}

pub(super) async fn count(store: &SqliteStore) -> StoreResult<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM admin_accounts")
        .fetch_one(store.pool())
        .await
        .map_err(map_sqlx)
}

pub(super) async fn create_session(
    store: &SqliteStore,
    session: AdminSessionRecord,
    token_hash: Vec<u8>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO admin_sessions (id, admin_id, token_hash, created_at, expires_at, revoked_at)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(session.id.to_string())
    .bind(session.admin_id.to_string())
    .bind(token_hash)
    .bind(crate::now())
    .bind(crate::micros(session.expires_at))
    .bind(session.revoked_at.map(crate::micros))
    .execute(store.pool())
    .await
    .map_err(map_sqlx)?;
    Ok(())
}

pub(super) async fn find_session(
    store: &SqliteStore,
    token_hash: &[u8],
) -> StoreResult<Option<AdminSessionRecord>> {
    sqlx::query(concat!(
        "SELECT ",
        admin_session_columns!(),
        " FROM admin_sessions WHERE token_hash = ?"
    ))
    .bind(token_hash)
    .fetch_optional(store.pool())
    .await
    .map_err(map_sqlx)?
    .as_ref()
    .map(rows::admin_session)
    .transpose()
}

pub(super) async fn revoke_session(
    store: &SqliteStore,
    id: SessionId,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    // COALESCE keeps the first revocation time, so repeating is harmless.
    let done =
        sqlx::query("UPDATE admin_sessions SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?")
            .bind(at)
            .bind(id.to_string())
            .execute(store.pool())
            .await
            .map_err(map_sqlx)?;
    match done.rows_affected() {
        0 => Err(StoreError::NotFound),
        _ => Ok(()),
    }
}

pub(super) async fn revoke_sessions(
    store: &SqliteStore,
    admin: AdminId,
    keep: Option<SessionId>,
    at: DateTime<Utc>,
) -> StoreResult<u64> {
    let done = sqlx::query(
        "UPDATE admin_sessions SET revoked_at = ?1
         WHERE admin_id = ?2 AND revoked_at IS NULL AND expires_at > ?1
           AND (?3 IS NULL OR id <> ?3)",
    )
    .bind(at)
    .bind(admin.to_string())
    .bind(keep.map(|k| k.to_string()))
    .execute(store.pool())
    .await
    .map_err(map_sqlx)?;
    Ok(done.rows_affected())
}
