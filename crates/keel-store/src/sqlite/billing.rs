//! [`BillingStore`] on SQLite: every write runs on the billing writer (one thread, one
//! connection, group commit: see [`super::writer`]), which alone makes the conditional
//! updates race-free; reads use the pool and see each write once its caller is answered.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keel_core::ids::{ReservationId, UserId};

use super::{
    billing_accounts, billing_ledger, billing_reserve, billing_reverse, billing_settle,
    billing_verify, SqliteStore,
};
use crate::error::map_sqlx;
use crate::{
    BillingStore, CommitOutcome, CounterKey, CounterMismatch, CounterValue, LedgerEntry,
    NewLedgerEntry, NewReservation, ReservationRecord, ReservationStatus, ReserveOutcome,
    ReverseOutcome, StoreResult, Subscription, TenantScope, UsageGroup, UsageRow,
};

#[async_trait]
impl BillingStore for SqliteStore {
    async fn reserve(&self, scope: &TenantScope, r: NewReservation) -> StoreResult<ReserveOutcome> {
        let tenant = scope.tenant().to_string();
        self.writer()
            .run(move |conn| billing_reserve::reserve(conn, &tenant, r))
            .await
    }

    async fn reservation_tenant(&self, id: ReservationId) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT tenant_id FROM reservations WHERE id = ?")
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
        billing_reserve::get(self.pool(), &scope.tenant().to_string(), id).await
    }

    async fn commit(
        &self,
        scope: &TenantScope,
        id: ReservationId,
        entry: NewLedgerEntry,
        allow_overage: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<CommitOutcome> {
        let (tenant, now) = (scope.tenant().to_string(), crate::micros(now));
        self.writer()
            .run(move |conn| billing_settle::commit(conn, &tenant, id, entry, allow_overage, now))
            .await
    }

    async fn release(
        &self,
        scope: &TenantScope,
        id: ReservationId,
        now: DateTime<Utc>,
    ) -> StoreResult<ReservationStatus> {
        let (tenant, now) = (scope.tenant().to_string(), crate::micros(now));
        self.writer()
            .run(move |conn| billing_settle::release(conn, &tenant, id, now))
            .await
    }

    async fn reverse_commit(
        &self,
        scope: &TenantScope,
        id: ReservationId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<ReverseOutcome> {
        let (tenant, now, reason) = (
            scope.tenant().to_string(),
            crate::micros(now),
            reason.to_string(),
        );
        self.writer()
            .run(move |conn| billing_reverse::reverse(conn, &tenant, id, &reason, now))
            .await
    }

    async fn expire_reservations(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<ReservationRecord>> {
        if limit <= 0 {
            return Ok(Vec::new());
        }
        let now = crate::micros(now);
        self.writer()
            .run(move |conn| billing_settle::expire(conn, now, limit))
            .await
    }

    async fn record_usage(
        &self,
        scope: &TenantScope,
        entries: Vec<NewLedgerEntry>,
    ) -> StoreResult<Vec<(LedgerEntry, bool)>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let tenant = scope.tenant().to_string();
        self.writer()
            .run(move |conn| billing_ledger::record_usage(conn, &tenant, entries, &[]))
            .await
    }

    async fn record_usage_watched(
        &self,
        scope: &TenantScope,
        entries: Vec<NewLedgerEntry>,
        watch: Vec<(UserId, Vec<crate::Gate>)>,
    ) -> StoreResult<Vec<(LedgerEntry, bool)>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let tenant = scope.tenant().to_string();
        self.writer()
            .run(move |conn| billing_ledger::record_usage(conn, &tenant, entries, &watch))
            .await
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
               WHERE tenant_id = ?1 AND owner IN (?2, 'tenant')
                 AND "window" IN (SELECT value FROM json_each(?3))"#,
        )
        .bind(scope.tenant().to_string())
        .bind(&user_id)
        .bind(
            serde_json::to_string(&crate::billing_calc::windows_of(keys))
                .map_err(|e| crate::StoreError::Driver(e.to_string()))?,
        )
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
        let (tenant, key) = (scope.tenant().to_string(), idempotency_key.to_string());
        self.writer()
            .run(move |conn| billing_accounts::adjust(conn, &tenant, user, delta_micros, &key))
            .await
    }
}
