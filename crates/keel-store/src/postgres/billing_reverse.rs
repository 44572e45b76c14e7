//! Reversing a committed reservation. The reservation's row lock (`FOR UPDATE`)
//! serialises concurrent reversals: the second waits, then finds the first one's entry
//! and answers it; counters and balances are locked in the usual order afterwards.

use chrono::{DateTime, Utc};
use keel_core::ids::ReservationId;

use super::billing_settle::apply;
use super::{billing_ledger, billing_reserve, PostgresStore};
use crate::billing_calc::reversal::{reversal_entry, reversal_key};
use crate::billing_calc::Settlement;
use crate::error::map_sqlx;
use crate::{ReservationStatus, ReverseOutcome, StoreError, StoreResult, TenantScope};

pub(super) async fn reverse(
    store: &PostgresStore,
    scope: &TenantScope,
    id: ReservationId,
    reason: &str,
    now: DateTime<Utc>,
) -> StoreResult<ReverseOutcome> {
    let tenant = scope.tenant().to_string();
    let mut tx = store.pool().begin().await.map_err(map_sqlx)?;
    let r = billing_reserve::get(&mut *tx, &tenant, id, true).await?;
    if r.status != ReservationStatus::Committed {
        return Ok(ReverseOutcome::NotCommitted(r.status));
    }
    match billing_ledger::by_key(&mut *tx, &tenant, &reversal_key(id)).await {
        Ok(first) => return Ok(ReverseOutcome::Replayed(first)),
        Err(StoreError::NotFound) => {}
        Err(e) => return Err(e),
    }
    let original = billing_ledger::settling(&mut *tx, &tenant, id).await?;
    let paid: i64 = sqlx::query_scalar("SELECT balance_micros FROM usage_ledger WHERE id = $1")
        .bind(original.id)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_sqlx)?;
    let (entry, paid) = reversal_entry(&original, paid, id, reason, now);
    let Some(entry) = billing_ledger::append(&mut tx, entry, paid).await? else {
        return Err(StoreError::Conflict(
            "the ledger already has an entry with this reversal's idempotency key".into(),
        ));
    };
    let mut changes = Settlement::default();
    changes.usage(&entry, paid);
    apply(&mut tx, &changes).await?;
    tx.commit().await.map_err(map_sqlx)?;
    Ok(ReverseOutcome::Reversed(entry))
}
