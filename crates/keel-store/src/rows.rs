//! Decoding rows, written once for both backends: the tables have the same
//! column names on SQLite and PostgreSQL, only the SQL placeholders differ.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::{
    AdminRecord, AdminSessionRecord, ApiKeyRecord, ChallengeRecord, FailureCount,
    RefreshTokenRecord, SessionRecord, SigningKeyRecord, StoreError, StoreResult, UserRecord,
};

/// The columns each `SELECT … FROM <table>` reads, in one place for both backends.
macro_rules! user_columns {
    () => {
        "id, tenant_id, email, password_hash, wallet_address, role, timezone, created_at"
    };
}
macro_rules! session_columns {
    () => {
        "id, tenant_id, user_id, device_name, user_agent, ip, created_at, last_seen_at, \
         expires_at, revoked_at, revoked_reason"
    };
}
macro_rules! refresh_token_columns {
    () => {
        "id, tenant_id, session_id, expires_at, used_at, successor_id"
    };
}
macro_rules! api_key_columns {
    () => {
        "id, tenant_id, user_id, name, prefix, scopes, expires_at, last_used_at, revoked_at, \
         created_at"
    };
}
macro_rules! signing_key_columns {
    () => {
        "kid, alg, private_der, public_raw, created_at, retired_at"
    };
}
macro_rules! challenge_columns {
    () => {
        "id, address, message, expires_at, used_at"
    };
}
macro_rules! failure_columns {
    () => {
        "failures, window_start, last_failure"
    };
}
macro_rules! admin_columns {
    () => {
        "id, email, password_hash, role, status, must_change_password, created_at"
    };
}
macro_rules! admin_session_columns {
    () => {
        "id, admin_id, expires_at, revoked_at"
    };
}
pub(crate) use {
    admin_columns, admin_session_columns, api_key_columns, challenge_columns, failure_columns,
    refresh_token_columns, session_columns, signing_key_columns, user_columns,
};

/// Typed column reads of a row from either backend.
pub(crate) trait Columns {
    fn text(&self, col: &str) -> StoreResult<String>;
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>>;
    fn time(&self, col: &str) -> StoreResult<DateTime<Utc>>;
    fn opt_time(&self, col: &str) -> StoreResult<Option<DateTime<Utc>>>;
    fn bytes(&self, col: &str) -> StoreResult<Vec<u8>>;
    fn int(&self, col: &str) -> StoreResult<i64>;
    fn opt_int(&self, col: &str) -> StoreResult<Option<i64>>;
    fn flag(&self, col: &str) -> StoreResult<bool>;
    /// A JSON array of strings (TEXT on SQLite, JSONB on PostgreSQL).
    fn strings(&self, col: &str) -> StoreResult<Vec<String>>;
    /// Any JSON document (TEXT on SQLite, JSONB on PostgreSQL).
    fn json_value(&self, col: &str) -> StoreResult<serde_json::Value>;

    /// A JSON document decoded into `T`.
    fn json<T: DeserializeOwned>(&self, col: &str) -> StoreResult<T> {
        serde_json::from_value(self.json_value(col)?)
            .map_err(|e| StoreError::Other(sqlx::Error::Decode(Box::new(e))))
    }

    /// A prefixed id stored as text.
    fn id<T: FromStr>(&self, col: &str) -> StoreResult<T>
    where
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        parse(&self.text(col)?)
    }

    /// An optional prefixed id stored as text.
    fn opt_id<T: FromStr>(&self, col: &str) -> StoreResult<Option<T>>
    where
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        self.opt_text(col)?.as_deref().map(parse).transpose()
    }
}

impl<R> Columns for R
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Json<Vec<String>>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Json<serde_json::Value>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, col: &str) -> StoreResult<String> {
        Ok(self.try_get(col)?)
    }
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>> {
        Ok(self.try_get(col)?)
    }
    fn time(&self, col: &str) -> StoreResult<DateTime<Utc>> {
        Ok(self.try_get(col)?)
    }
    fn opt_time(&self, col: &str) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(self.try_get(col)?)
    }
    fn bytes(&self, col: &str) -> StoreResult<Vec<u8>> {
        Ok(self.try_get(col)?)
    }
    fn int(&self, col: &str) -> StoreResult<i64> {
        Ok(self.try_get(col)?)
    }
    fn opt_int(&self, col: &str) -> StoreResult<Option<i64>> {
        Ok(self.try_get(col)?)
    }
    fn flag(&self, col: &str) -> StoreResult<bool> {
        Ok(self.try_get(col)?)
    }
    fn strings(&self, col: &str) -> StoreResult<Vec<String>> {
        let Json(values) = self.try_get(col)?;
        Ok(values)
    }
    fn json_value(&self, col: &str) -> StoreResult<serde_json::Value> {
        let Json(value) = self.try_get(col)?;
        Ok(value)
    }
}

fn parse<T: FromStr>(text: &str) -> StoreResult<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    text.parse()
        .map_err(|e| StoreError::Other(sqlx::Error::Decode(Box::new(e))))
}

pub(crate) fn user(row: &impl Columns) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        id: row.id("id")?,
        tenant_id: row.id("tenant_id")?,
        email: row.opt_text("email")?,
        password_hash: row.opt_text("password_hash")?,
        wallet_address: row.opt_text("wallet_address")?,
        role: row.text("role")?,
        timezone: row.opt_text("timezone")?,
        created_at: row.time("created_at")?,
    })
}

pub(crate) fn session(row: &impl Columns) -> StoreResult<SessionRecord> {
    Ok(SessionRecord {
        id: row.id("id")?,
        tenant_id: row.id("tenant_id")?,
        user_id: row.id("user_id")?,
        device_name: row.opt_text("device_name")?,
        user_agent: row.opt_text("user_agent")?,
        ip: row.opt_text("ip")?,
        created_at: row.time("created_at")?,
        last_seen_at: row.time("last_seen_at")?,
        expires_at: row.time("expires_at")?,
        revoked_at: row.opt_time("revoked_at")?,
        revoked_reason: row.opt_text("revoked_reason")?,
    })
}

pub(crate) fn refresh_token(row: &impl Columns) -> StoreResult<RefreshTokenRecord> {
    Ok(RefreshTokenRecord {
        id: row.id("id")?,
        tenant_id: row.id("tenant_id")?,
        session_id: row.id("session_id")?,
        expires_at: row.time("expires_at")?,
        used_at: row.opt_time("used_at")?,
        successor_id: row.opt_id("successor_id")?,
    })
}

pub(crate) fn api_key(row: &impl Columns) -> StoreResult<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: row.id("id")?,
        tenant_id: row.id("tenant_id")?,
        user_id: row.id("user_id")?,
        name: row.text("name")?,
        prefix: row.text("prefix")?,
        scopes: row.strings("scopes")?,
        expires_at: row.opt_time("expires_at")?,
        last_used_at: row.opt_time("last_used_at")?,
        revoked_at: row.opt_time("revoked_at")?,
        created_at: row.time("created_at")?,
    })
}

pub(crate) fn signing_key(row: &impl Columns) -> StoreResult<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        kid: row.text("kid")?,
        alg: row.text("alg")?,
        private_der: row.bytes("private_der")?,
        public_raw: row.bytes("public_raw")?,
        created_at: row.time("created_at")?,
        retired_at: row.opt_time("retired_at")?,
    })
}

pub(crate) fn challenge(row: &impl Columns) -> StoreResult<ChallengeRecord> {
    Ok(ChallengeRecord {
        id: row.id("id")?,
        address: row.text("address")?,
        message: row.text("message")?,
        expires_at: row.time("expires_at")?,
        used_at: row.opt_time("used_at")?,
    })
}

pub(crate) fn failure_count(row: &impl Columns) -> StoreResult<FailureCount> {
    Ok(FailureCount {
        failures: row.int("failures")?,
        window_start: row.time("window_start")?,
        last_failure: row.time("last_failure")?,
    })
}

pub(crate) fn admin(row: &impl Columns) -> StoreResult<AdminRecord> {
    Ok(AdminRecord {
        id: row.id("id")?,
        email: row.text("email")?,
        password_hash: row.text("password_hash")?,
        role: row.text("role")?,
        status: row.text("status")?,
        must_change_password: row.flag("must_change_password")?,
        created_at: row.time("created_at")?,
    })
}

pub(crate) fn admin_session(row: &impl Columns) -> StoreResult<AdminSessionRecord> {
    Ok(AdminSessionRecord {
        id: row.id("id")?,
        admin_id: row.id("admin_id")?,
        expires_at: row.time("expires_at")?,
        revoked_at: row.opt_time("revoked_at")?,
    })
}
