//! Admin accounts and their sessions (the admin half of [`crate::AuthStore`]).

use chrono::{DateTime, Utc};
use keel_core::ids::{AdminId, SessionId};

use super::PostgresStore;
use crate::error::map_sqlx;
use crate::rows::{self, admin_columns, admin_session_columns};
use crate::{AdminRecord, AdminSessionRecord, AdminUpdate, NewAdmin, StoreError, StoreResult};

pub(super) async fn create(store: &PostgresStore, admin: NewAdmin) -> StoreResult<AdminRecord> {
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
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
    store: &PostgresStore,
    email: &str,
) -> StoreResult<Option<AdminRecord>> {
    sqlx::query(concat!(
        "SELECT ",
        admin_columns!(),
        " FROM admin_accounts WHERE email = $1"
    ))
    .bind(email)
    .fetch_optional(store.pool())
    .await
    .map_err(map_sqlx)?
    .as_ref()
    .map(rows::admin)
    .transpose()
}

pub(super) async fn get(store: &PostgresStore, id: AdminId) -> StoreResult<AdminRecord> {
    sqlx::query(concat!(
        "SELECT ",
        admin_columns!(),
        " FROM admin_accounts WHERE id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(store.pool())
    .await
    .map_err(map_sqlx)?
    .as_ref()
    .map_or(Err(StoreError::NotFound), rows::admin)
}

pub(super) async fn list(store: &PostgresStore) -> StoreResult<Vec<AdminRecord>> {
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
    store: &PostgresStore,
    id: AdminId,
    update: AdminUpdate,
) -> StoreResult<AdminRecord> {
    sqlx::query(concat!(
        "UPDATE admin_accounts
         SET role = COALESCE($1, role), status = COALESCE($2, status),
             password_hash = COALESCE($3, password_hash),
             must_change_password = COALESCE($4, must_change_password)
         WHERE id = $5
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

pub(super) async fn count(store: &PostgresStore) -> StoreResult<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM admin_accounts")
        .fetch_one(store.pool())
        .await
        .map_err(map_sqlx)
}

pub(super) async fn create_session(
    store: &PostgresStore,
    session: AdminSessionRecord,
    token_hash: Vec<u8>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO admin_sessions (id, admin_id, token_hash, created_at, expires_at, revoked_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
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
    store: &PostgresStore,
    token_hash: &[u8],
) -> StoreResult<Option<AdminSessionRecord>> {
    sqlx::query(concat!(
        "SELECT ",
        admin_session_columns!(),
        " FROM admin_sessions WHERE token_hash = $1"
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
    store: &PostgresStore,
    id: SessionId,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    // COALESCE keeps the first revocation time, so repeating is harmless.
    let done = sqlx::query(
        "UPDATE admin_sessions SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2",
    )
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
    store: &PostgresStore,
    admin: AdminId,
    keep: Option<SessionId>,
    at: DateTime<Utc>,
) -> StoreResult<u64> {
    let done = sqlx::query(
        "UPDATE admin_sessions SET revoked_at = $1
         WHERE admin_id = $2 AND revoked_at IS NULL AND expires_at > $1
           AND ($3::text IS NULL OR id <> $3)",
    )
    .bind(at)
    .bind(admin.to_string())
    .bind(keep.map(|k| k.to_string()))
    .execute(store.pool())
    .await
    .map_err(map_sqlx)?;
    Ok(done.rows_affected())
}
