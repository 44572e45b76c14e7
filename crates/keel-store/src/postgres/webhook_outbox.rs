//! Writing to the webhook outbox inside a PostgreSQL transaction.
//!
//! Any store operation that causes an event calls [`enqueue`] with its own transaction's
//! connection: the message and its deliveries commit or roll back with the change. For a
//! job transition, for example:
//!
//! ```ignore
//! let mut tx = store.pool().begin().await.map_err(map_sqlx)?;
//! // … update the job row …
//! webhook_outbox::enqueue(&mut tx, &tenant, &OutboxMessage {
//!     event_type: EventType::JobStateChanged,
//!     payload: json!({"job_id": id, "from": from, "to": to}),
//! }).await?;
//! tx.commit().await.map_err(map_sqlx)?;
//! ```

use chrono::{DateTime, Utc};
use keel_core::ids::MessageId;
use sqlx::types::Json;
use sqlx::PgConnection;

use crate::error::map_sqlx;
use crate::webhook_calc::message_columns;
use crate::{
    all_tenants, webhook_calc, webhook_events, MessageRecord, OutboxMessage, ReservationRecord,
    StoreResult, Subscription,
};

/// Writes `message` for `tenant` and a pending delivery, due now, to every enabled endpoint
/// of the tenant (or of all tenants) subscribed to its type.
pub(crate) async fn enqueue(
    conn: &mut PgConnection,
    tenant: &str,
    message: &OutboxMessage,
) -> StoreResult<MessageRecord> {
    let (id, now) = (MessageId::new(), crate::now());
    let row = sqlx::query(concat!(
        "INSERT INTO webhook_messages (id, tenant_id, event_type, payload, created_at)
         VALUES ($1, $2, $3, $4, $5) RETURNING ",
        message_columns!()
    ))
    .bind(id.to_string())
    .bind(tenant)
    .bind(message.event_type.as_str())
    .bind(Json(&message.payload))
    .bind(now)
    .fetch_one(&mut *conn)
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
    webhook_calc::message(&row)
}

/// Pending deliveries of a message to the subscribed, enabled endpoints that have none.
pub(super) async fn fan_out(
    conn: &mut PgConnection,
    tenant: &str,
    message_id: &str,
    event_type: &str,
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    let done = sqlx::query(
        "INSERT INTO webhook_deliveries (message_id, endpoint_id, tenant_id, status, attempts,
                                         failures, next_attempt_at, created_at, updated_at)
         SELECT $1, e.id, $2, 'pending', 0, 0, $3, $3, $3 FROM webhook_endpoints e
         WHERE e.enabled AND e.tenant_id IN ($2, $4) AND e.event_types ? $5
         ON CONFLICT (message_id, endpoint_id) DO NOTHING",
    )
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
pub(super) async fn expired(
    conn: &mut PgConnection,
    reservations: &[ReservationRecord],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    for r in reservations {
        let message = webhook_events::reservation_expired(r, now);
        enqueue(conn, &r.tenant_id, &message).await?;
    }
    Ok(())
}

/// `quota.threshold_reached` for every threshold the reservation's counters reached with
/// this commit, once per counter, window and threshold: the threshold row's primary key
/// decides, so of any number of concurrent commits exactly one inserts it and sends.
pub(super) async fn thresholds(conn: &mut PgConnection, r: &ReservationRecord) -> StoreResult<()> {
    thresholds_of(conn, &r.tenant_id, &r.user_id.to_string(), &r.gates).await
}

/// As [`thresholds`], for a user's gates (their keys and limits) after any change.
pub(super) async fn thresholds_of(
    conn: &mut PgConnection,
    tenant: &str,
    user: &str,
    gates: &[crate::Gate],
) -> StoreResult<()> {
    for gate in webhook_events::watched(gates) {
        let owner = crate::billing_calc::owner_of(&gate.key, user);
        let committed: Option<i64> = sqlx::query_scalar(
            r#"SELECT committed FROM quota_counters
               WHERE tenant_id = $1 AND owner = $2 AND meter = $3 AND "window" = $4"#,
        )
        .bind(tenant)
        .bind(owner)
        .bind(&gate.key.meter)
        .bind(&gate.key.window)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_sqlx)?;
        for reached in webhook_events::reached(gate, user, committed.unwrap_or(0)) {
            let id = MessageId::new().to_string();
            let fresh = sqlx::query(
                r#"INSERT INTO webhook_thresholds (tenant_id, owner, meter, "window", percent,
                                                  message_id, created_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"#,
            )
            .bind(tenant)
            .bind(&reached.owner)
            .bind(&reached.meter)
            .bind(&reached.window)
            .bind(reached.percent)
            .bind(&id)
            .bind(crate::now())
            .execute(&mut *conn)
            .await
            .map_err(map_sqlx)?
            .rows_affected();
            if fresh == 1 {
                enqueue(conn, tenant, &reached.message).await?;
            }
        }
    }
    Ok(())
}

/// `subscription.changed` when `after` differs from `before`.
pub(super) async fn subscription(
    conn: &mut PgConnection,
    tenant: &str,
    before: Option<&Subscription>,
    after: &Subscription,
) -> StoreResult<()> {
    if let Some(message) = webhook_events::subscription_changed(before, after) {
        enqueue(conn, tenant, &message).await?;
    }
    Ok(())
}
