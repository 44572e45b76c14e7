//! [`BillingStore`] on PostgreSQL under READ COMMITTED: conditional updates re-checked on
//! the newest row, row locks taken in one order (reservation, counters by key, balances),
//! unique keys for idempotency.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keel_core::ids::{ReservationId, UserId};

use super::{
    billing_accounts, billing_ledger, billing_reserve, billing_reverse, billing_settle,
    billing_verify, PostgresStore,
};
use crate::error::map_sqlx;
use crate::{
    BillingStore, CommitOutcome, CounterKey, CounterMismatch, CounterValue, LedgerEntry,
    NewLedgerEntry, NewReservation, ReservationRecord, ReservationStatus, ReserveOutcome,
    ReverseOutcome, StoreResult, Subscription, TenantScope, UsageGroup, UsageRow,
};

#[async_trait]
impl BillingStore for PostgresStore {
    async fn reserve(&self, scope: &TenantScope, r: NewReservation) -> StoreResult<ReserveOutcome> {
        billing_reserve::reserve(self, scope, r).await
    }

    async fn reservation_tenant(&self, id: ReservationId) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT tenant_id FROM reservations WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(crate::error::map_sqlx)
    }

    async fn get_reservation(
        &self,
        scope: &TenantScope,
        id: ReservationId,
    ) -> StoreResult<ReservationRecord> {
        billing_reserve::get(self.pool(), &scope.tenant().to_string(), id, false).await
    }

    async fn commit(
        &self,
        scope: &TenantScope,
        id: ReservationId,
        entry: NewLedgerEntry,
        allow_overage: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<CommitOutcome> {
        let now = crate::micros(now);
        billing_settle::commit(self, scope, id, entry, allow_overage, now).await
    }

    async fn release(
        &self,
        scope: &TenantScope,
        id: ReservationId,
        now: DateTime<Utc>,
    ) -> StoreResult<ReservationStatus> {
        billing_settle::release(self, scope, id, crate::micros(now)).await
    }

    async fn reverse_commit(
        &self,
        scope: &TenantScope,
        id: ReservationId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<ReverseOutcome> {
        billing_reverse::reverse(self, scope, id, reason, crate::micros(now)).await
    }

    async fn expire_reservations(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<ReservationRecord>> {
        billing_settle::expire(self, crate::micros(now), limit).await
    }

    async fn record_usage(
        &self,
        scope: &TenantScope,
        entries: Vec<NewLedgerEntry>,
    ) -> StoreResult<Vec<(LedgerEntry, bool)>> {
        billing_ledger::record_usage(self, scope, entries, &[]).await
    }

    async fn record_usage_watched(
        &self,
        scope: &TenantScope,
        entries: Vec<NewLedgerEntry>,
        watch: Vec<(UserId, Vec<crate::Gate>)>,
    ) -> StoreResult<Vec<(LedgerEntry, bool)>> {
        billing_ledger::record_usage(self, scope, entries, &watch).await
    }

    async fn counters(
        &self,
        scope: &TenantScope,
        user: UserId,
        keys: &[CounterKey],
    ) -> StoreResult<Vec<CounterValue>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // One query for the whole batch (an entitlements answer reads dozens of keys).
        let user_id = user.to_string();
        let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
            r#"SELECT owner, meter, "window", committed, reserved FROM quota_counters
               WHERE tenant_id = $1 AND owner IN ($2, 'tenant') AND "window" = ANY($3)"#,
        )
        .bind(scope.tenant().to_string())
        .bind(&user_id)
        .bind(crate::billing_calc::windows_of(keys))
        .fetch_all(self.pool())
        .await
        .map_err(map_sqlx)?;
        Ok(crate::billing_calc::counter_values(keys, &user_id, rows))
    }

    async fn usage(
        &self,
        scope: &TenantScope,
        user: UserId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        group: UsageGroup,
    ) -> StoreResult<Vec<UsageRow>> {
        billing_ledger::usage(self, scope, user, from, to, group).await
    }

    async fn verify_counters(&self, repair: bool) -> StoreResult<Vec<CounterMismatch>> {
        billing_verify::verify(self, repair).await
    }

    async fn get_subscription(
        &self,
        scope: &TenantScope,
        user: UserId,
    ) -> StoreResult<Option<Subscription>> {
        billing_accounts::get_subscription(self, scope, user).await
    }

    async fn put_subscription(&self, scope: &TenantScope, sub: Subscription) -> StoreResult<()> {
        billing_accounts::put_subscription(self, scope, sub).await
    }

    async fn balance(&self, scope: &TenantScope, user: UserId) -> StoreResult<(i64, i64)> {
        billing_accounts::balance(self.pool(), &scope.tenant().to_string(), user).await
    }

    async fn adjust_balance(
        &self,
        scope: &TenantScope,
        user: UserId,
        delta_micros: i64,
        idempotency_key: &str,
    ) -> StoreResult<i64> {
        billing_accounts::adjust(self, scope, user, delta_micros, idempotency_key).await
    }
}
