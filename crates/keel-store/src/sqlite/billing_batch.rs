//! [`MeteringStore`] on SQLite: each batch is one job on the billing writer, so it shares
//! the writer's group commit with every other billing write waiting at the same time.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use super::lite::{self, map_lite};
use super::writer::{in_savepoint, Step};
use super::{billing_reserve, billing_settle, SqliteStore};
use crate::audit::audit_row;
use crate::billing_batch::{Settle, SettleReport, Settled};
use crate::{
    AuditEvent, MeteringStore, NewAuditEvent, NewReservation, ReserveOutcome, StoreError,
    StoreResult, TenantScope,
};

#[async_trait]
impl MeteringStore for SqliteStore {
    async fn reserve_all(
        &self,
        scope: &TenantScope,
        requests: Vec<NewReservation>,
    ) -> StoreResult<Vec<ReserveOutcome>> {
        let tenant = scope.tenant().to_string();
        self.writer()
            .run(move |conn| reserve_all(conn, &tenant, requests))
            .await
    }

    async fn settle_all(
        &self,
        scope: &TenantScope,
        items: Vec<Settle>,
        audit: Option<NewAuditEvent>,
        now: DateTime<Utc>,
    ) -> StoreResult<SettleReport> {
        let (tenant, now) = (scope.tenant().to_string(), crate::micros(now));
        self.writer()
            .run(move |conn| settle_all(conn, &tenant, items, audit, now))
            .await
    }
}

/// The job's own savepoint undoes the whole batch on a refusal.
fn reserve_all(
    conn: &Connection,
    tenant: &str,
    requests: Vec<NewReservation>,
) -> StoreResult<Step<Vec<ReserveOutcome>>> {
    let mut outcomes = Vec::with_capacity(requests.len());
    for request in requests {
        let outcome = match billing_reserve::reserve(conn, tenant, request)? {
            Step::Keep(o) | Step::Undo(o) => o,
        };
        let stop = !matches!(
            outcome,
            ReserveOutcome::Reserved(_) | ReserveOutcome::Replayed(_)
        );
        outcomes.push(outcome);
        if stop {
            return Ok(Step::Undo(outcomes));
        }
    }
    Ok(Step::Keep(outcomes))
}

/// Each item (and the audit row) in a nested savepoint: one failing undoes only itself.
fn settle_all(
    conn: &Connection,
    tenant: &str,
    items: Vec<Settle>,
    audit: Option<NewAuditEvent>,
    now: DateTime<Utc>,
) -> StoreResult<Step<SettleReport>> {
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        let (result, sound) = in_savepoint(conn, |conn| match item {
            Settle::Commit {
                id,
                entry,
                allow_overage,
            } => Ok(
                match billing_settle::commit(conn, tenant, id, entry, allow_overage, now)? {
                    Step::Keep(o) => Step::Keep(Settled::Commit(o)),
                    Step::Undo(o) => Step::Undo(Settled::Commit(o)),
                },
            ),
            Settle::Release { id } => Ok(match billing_settle::release(conn, tenant, id, now)? {
                Step::Keep(s) => Step::Keep(Settled::Release(s)),
                Step::Undo(s) => Step::Undo(Settled::Release(s)),
            }),
        });
        if !sound {
            return Err(result.err().unwrap_or_else(lost));
        }
        results.push(result);
    }
    let audit = match audit {
        Some(event) => {
            let (result, sound) = in_savepoint(conn, |conn| {
                insert_audit(conn, &audit_row(tenant, event, now)).map(Step::Keep)
            });
            if !sound {
                return Err(result.err().unwrap_or_else(lost));
            }
            Some(result)
        }
        None => None,
    };
    Ok(Step::Keep(SettleReport {
        items: results,
        audit,
    }))
}

fn lost() -> StoreError {
    StoreError::Unavailable("the billing transaction was lost".into())
}

/// Inserts an audit row (on the writer: audit appends never wait on the write lock).
pub(super) fn insert_audit(conn: &Connection, row: &AuditEvent) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO audit_events (id, tenant_id, actor, action, target, request_id, data, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .and_then(|mut s| {
        s.execute(params![
            row.id.to_string(),
            row.tenant_id,
            row.actor,
            row.action,
            row.target,
            row.request_id,
            row.data.to_string(),
            lite::time(row.created_at),
        ])
    })
    .map(|_| ())
    .map_err(map_lite)
}
