//! Writing to the webhook outbox inside a SQLite transaction: [`enqueue_lite`] on the
//! billing writer's connection (rusqlite), [`enqueue`] on a pool transaction (sqlx). The
//! message and its deliveries commit or roll back with the change that caused them. A job
//! transition made on the writer, for example:
//!
//! ```ignore
//! store.writer().run(move |conn| {
//!     // … update the job row …
//!     webhook_outbox::enqueue_lite(conn, &tenant, &OutboxMessage {
//!         event_type: EventType::JobStateChanged,
//!         payload: json!({"job_id": id, "from": from, "to": to}),
//!     })?;
//!     Ok(Step::Keep(()))
//! }).await
//! ```

use chrono::{DateTime, Utc};
use keel_core::ids::MessageId;
use rusqlite::{params, Connection};
use sqlx::types::Json;
use sqlx::SqliteConnection;

use super::lite::{self, map_lite};
use crate::error::map_sqlx;
use crate::{all_tenants, webhook_events, MessageRecord, OutboxMessage, ReservationRecord};
use crate::{StoreResult, Subscription};

const FAN_OUT: &str = "INSERT INTO webhook_deliveries (message_id, endpoint_id, tenant_id, status,
        attempts, failures, next_attempt_at, created_at, updated_at)
    SELECT ?1, e.id, ?2, 'pending', 0, 0, ?3, ?3, ?3 FROM webhook_endpoints e
    WHERE e.enabled AND e.tenant_id IN (?2, ?4)
      AND EXISTS (SELECT 1 FROM json_each(e.event_types) t WHERE t.value = ?5)
    ON CONFLICT (message_id, endpoint_id) DO NOTHING";

const INSERT: &str = "INSERT INTO webhook_messages (id, tenant_id, event_type, payload, created_at)
    VALUES (?1, ?2, ?3, ?4, ?5)";

fn record(
    tenant: &str,
    message: &OutboxMessage,
    id: MessageId,
    now: DateTime<Utc>,
) -> StoreResult<MessageRecord> {
    Ok(MessageRecord {
        id,
        tenant_id: tenant
            .parse()
            .map_err(|_| crate::StoreError::Driver("tenant id is malformed".into()))?,
        event_type: message.event_type,
        payload: message.payload.clone(),
        created_at: now,
    })
}

/// Writes `message` for `tenant` on the billing writer's transaction, with a pending
/// delivery, due now, to every enabled endpoint of the tenant (or of all tenants)
/// subscribed to its type.
pub(crate) fn enqueue_lite(
    conn: &Connection,
    tenant: &str,
    message: &OutboxMessage,
) -> StoreResult<MessageRecord> {
    let (id, now) = (MessageId::new(), crate::now());
    let payload = lite::json(&message.payload)?;
    conn.prepare_cached(INSERT)
        .and_then(|mut s| {
            s.execute(params![
                id.to_string(),
                tenant,
                message.event_type.as_str(),
                payload,
                lite::time(now),
            ])
        })
        .map_err(map_lite)?;
    conn.prepare_cached(FAN_OUT)
        .and_then(|mut s| {
            s.execute(params![
                id.to_string(),
                tenant,
                lite::time(now),
                all_tenants().to_string(),
                message.event_type.as_str(),
            ])
        })
        .map_err(map_lite)?;
    record(tenant, message, id, now)
}

/// As [`enqueue_lite`], on a sqlx transaction of the pool.
pub(crate) async fn enqueue(
    conn: &mut SqliteConnection,
    tenant: &str,
    message: &OutboxMessage,
) -> StoreResult<MessageRecord> {
    let (id, now) = (MessageId::new(), crate::now());
    sqlx::query(INSERT)
        .bind(id.to_string())
        .bind(tenant)
        .bind(message.event_type.as_str())
        .bind(Json(&message.payload))
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    fan_out(
        conn,
        tenant,
        &id.to_string(),
        message.event_type.as_str(),
        now,
    )
    .await?;
    record(tenant, message, id, now)
}

/// Pending deliveries of a message to the subscribed, enabled endpoints that have none.
pub(super) async fn fan_out(
    conn: &mut SqliteConnection,
    tenant: &str,
    message_id: &str,
    event_type: &str,
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    let done = sqlx::query(FAN_OUT)
        .bind(message_id)
        .bind(tenant)
        .bind(now)
        .bind(all_tenants().to_string())
        .bind(event_type)
        .execute(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    Ok(done.rows_affected())
}

/// `reservation.expired` for each reservation just expired.
pub(super) fn expired(
    conn: &Connection,
    reservations: &[ReservationRecord],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    for r in reservations {
        enqueue_lite(
            conn,
            &r.tenant_id,
            &webhook_events::reservation_expired(r, now),
        )?;
    }
    Ok(())
}

/// `quota.threshold_reached` for every threshold the reservation's counters reached with
/// this commit, once per counter, window and threshold (the threshold row's primary key
/// decides; the writer runs one commit at a time anyway).
pub(super) fn thresholds(conn: &Connection, r: &ReservationRecord) -> StoreResult<()> {
    thresholds_of(conn, &r.tenant_id, &r.user_id.to_string(), &r.gates)
}

/// As [`thresholds`], for a user's gates (their keys and limits) after any change.
pub(super) fn thresholds_of(
    conn: &Connection,
    tenant: &str,
    user: &str,
    gates: &[crate::Gate],
) -> StoreResult<()> {
    for gate in webhook_events::watched(gates) {
        let owner = crate::billing_calc::owner_of(&gate.key, user);
        let committed: i64 = conn
            .prepare_cached(
                r#"SELECT committed FROM quota_counters
                   WHERE tenant_id = ? AND owner = ? AND meter = ? AND "window" = ?"#,
            )
            .and_then(|mut s| {
                s.query_row(
                    params![tenant, owner, gate.key.meter, gate.key.window],
                    |row| row.get(0),
                )
            })
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(0),
                e => Err(e),
            })
            .map_err(map_lite)?;
        for reached in webhook_events::reached(gate, user, committed) {
            let fresh = conn
                .prepare_cached(
                    r#"INSERT INTO webhook_thresholds (tenant_id, owner, meter, "window",
                                                      percent, message_id, created_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"#,
                )
                .and_then(|mut s| {
                    s.execute(params![
                        tenant,
                        reached.owner,
                        reached.meter,
                        reached.window,
                        reached.percent,
                        MessageId::new().to_string(),
                        lite::time(crate::now()),
                    ])
                })
                .map_err(map_lite)?;
            if fresh == 1 {
                enqueue_lite(conn, tenant, &reached.message)?;
            }
        }
    }
    Ok(())
}

/// `subscription.changed` when `after` differs from `before`.
pub(super) async fn subscription(
    conn: &mut SqliteConnection,
    tenant: &str,
    before: Option<&Subscription>,
    after: &Subscription,
) -> StoreResult<()> {
    if let Some(message) = webhook_events::subscription_changed(before, after) {
        enqueue(conn, tenant, &message).await?;
    }
    Ok(())
}
