//! Billing requests with fresh ids and keys, counter reads, and raw SQL for tampering.

use chrono::{DateTime, Utc};
use keel_core::ids::{ReservationId, UserId};
use keel_store::{
    Backend, CounterKey, DynStore, Gate, NewLedgerEntry, NewReservation, ReservationRecord,
    ReserveOutcome, TenantScope,
};
use uuid::Uuid;

use crate::fixtures::{hash, hours, now};
use crate::Harness;

pub fn key(meter: &str, window: &str) -> CounterKey {
    CounterKey::user(meter, window)
}

/// The daily `jobs` counter most tests gate on.
pub fn day() -> CounterKey {
    key("jobs", "day:2026-11-21")
}

pub fn month() -> CounterKey {
    key("jobs", "month:2026-11")
}

pub fn spend() -> CounterKey {
    key("$spend", "month:2026-11")
}

pub fn gate(key: CounterKey, limit: i64, amount: i64) -> Gate {
    let code = format!(
        "{}_limit_reached",
        key.window.split(':').next().unwrap_or("all")
    );
    Gate {
        key,
        limit,
        amount,
        code,
        resets_at: Some(now() + hours(24)),
    }
}

pub fn idempotency_key() -> String {
    format!("idem-{}", Uuid::now_v7().simple())
}

/// A reservation of `amount` jobs for an hour, with a fresh id and key.
pub fn reservation(user: UserId, amount: i64, gates: Vec<Gate>) -> NewReservation {
    NewReservation {
        id: ReservationId::new(),
        user_id: user,
        meter: "jobs".into(),
        amount,
        balance_micros: 0,
        idempotency_key: idempotency_key(),
        request_hash: hash(),
        expires_at: Utc::now() + hours(1),
        reason: "job:job_123".into(),
        snapshot: serde_json::json!({ "plan": "pro", "prices": { "jobs": 1.5 } }),
        gates,
    }
}

/// Usage of `amount` jobs with a fresh key, counted on `counters`.
pub fn usage(user: UserId, amount: i64, counters: Vec<CounterKey>) -> NewLedgerEntry {
    NewLedgerEntry {
        user_id: user,
        meter: "jobs".into(),
        amount,
        overage: 0,
        cost_micros: 0,
        idempotency_key: idempotency_key(),
        source: serde_json::json!({ "feature": "chat", "request_id": "req_1" }),
        reservation_id: None,
        counters,
        balance_micros: 0,
    }
}

/// Reserves, expecting it to be granted.
pub async fn reserved(
    store: &DynStore,
    scope: &TenantScope,
    new: NewReservation,
) -> ReservationRecord {
    match store.reserve(scope, new).await.unwrap() {
        ReserveOutcome::Reserved(record) => record,
        other => panic!("expected a reservation, got {other:?}"),
    }
}

/// A counter's (committed, reserved).
pub async fn counter(
    store: &DynStore,
    scope: &TenantScope,
    user: UserId,
    key: &CounterKey,
) -> (i64, i64) {
    let values = store
        .counters(scope, user, std::slice::from_ref(key))
        .await
        .unwrap();
    assert_eq!(values.len(), 1);
    assert_eq!(&values[0].key, key);
    (values[0].committed, values[0].reserved)
}

/// A fixed instant, for tests about days and ranges.
pub fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
}

/// Runs one statement behind the store's back (both backends accept the same text when
/// it has no placeholders).
pub async fn raw_sql(h: &Harness, sql: &str) {
    use sqlx::Connection;
    match h.store.backend() {
        Backend::Sqlite => {
            let url = format!("sqlite://{}", h.opts.data_dir.join("keel.db").display());
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query(sql).execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
        }
        Backend::Postgres => {
            let url = h.opts.database_url.clone().unwrap();
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query(sql).execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
        }
    }
}
