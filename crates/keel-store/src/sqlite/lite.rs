//! The billing writer's side of SQLite (`rusqlite`, on its own thread): row decoding through
//! the shared [`Columns`] trait, and values encoded exactly as sqlx encodes them, so rows
//! written here and read by the pool (or the other way round) are the same.

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::ffi;
use rusqlite::types::FromSql;
use serde::Serialize;

use crate::rows::Columns;
use crate::{StoreError, StoreResult};

/// A time as sqlx stores `DateTime<Utc>` in SQLite: RFC 3339 text in UTC, so text order is
/// time order.
pub(super) fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// A JSON column, stored as text as sqlx's `Json` does.
pub(super) fn json(value: &impl Serialize) -> StoreResult<String> {
    serde_json::to_string(value).map_err(decode_error)
}

/// Maps a driver error, treating unique violations as conflicts (as `map_sqlx` does).
pub(super) fn map_lite(err: rusqlite::Error) -> StoreError {
    match &err {
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
        rusqlite::Error::SqliteFailure(failure, message)
            if failure.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
                || failure.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::Conflict(message.clone().unwrap_or_else(|| err.to_string()))
        }
        _ => StoreError::Driver(err.to_string()),
    }
}

fn decode_error(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Other(sqlx::Error::Decode(Box::new(e)))
}

/// A row read by the writer, decoded with the same code as the pool's rows (the blanket
/// [`Columns`] impl for sqlx rows rules out implementing it on `rusqlite::Row` itself).
pub(super) struct Lite<'a, 'r>(pub(super) &'a rusqlite::Row<'r>);

fn get<T: FromSql>(row: &Lite<'_, '_>, col: &str) -> StoreResult<T> {
    row.0.get(col).map_err(map_lite)
}

fn parse_time(text: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.to_utc())
        .map_err(decode_error)
}

impl Columns for Lite<'_, '_> {
    fn text(&self, col: &str) -> StoreResult<String> {
        get(self, col)
    }
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>> {
        get(self, col)
    }
    fn time(&self, col: &str) -> StoreResult<DateTime<Utc>> {
        parse_time(&get::<String>(self, col)?)
    }
    fn opt_time(&self, col: &str) -> StoreResult<Option<DateTime<Utc>>> {
        get::<Option<String>>(self, col)?
            .as_deref()
            .map(parse_time)
            .transpose()
    }
    fn bytes(&self, col: &str) -> StoreResult<Vec<u8>> {
        get(self, col)
    }
    fn int(&self, col: &str) -> StoreResult<i64> {
        get(self, col)
    }
    fn opt_int(&self, col: &str) -> StoreResult<Option<i64>> {
        get(self, col)
    }
    fn flag(&self, col: &str) -> StoreResult<bool> {
        get(self, col)
    }
    fn strings(&self, col: &str) -> StoreResult<Vec<String>> {
        serde_json::from_str(&get::<String>(self, col)?).map_err(decode_error)
    }
    fn json_value(&self, col: &str) -> StoreResult<serde_json::Value> {
        serde_json::from_str(&get::<String>(self, col)?).map_err(decode_error)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn times_are_written_as_sqlx_writes_them_and_read_back_exactly() {
        let at = DateTime::parse_from_rfc3339("2026-11-21T10:00:00.123456Z")
            .unwrap()
            .to_utc();
        assert_eq!(time(at), "2026-11-21T10:00:00.123456+00:00");
        assert_eq!(parse_time(&time(at)).unwrap(), at);
        let whole = at - chrono::Duration::microseconds(123_456);
        assert_eq!(time(whole), "2026-11-21T10:00:00+00:00");
        assert!(time(whole) < time(at), "text order is time order");
    }
}
