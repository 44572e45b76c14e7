//! One implementation of [`LeverStore`](crate::levers::LeverStore) for both backends: the
//! statements are portable (`$n` placeholders, `ON CONFLICT … DO UPDATE`) and the rows decode
//! through [`Columns`](crate::rows::Columns), so a macro stamps the impl for each store.

use crate::levers::{KillSwitch, QuotaOverride};
use crate::rows::Columns;
use crate::StoreResult;

pub(crate) const PUT_OVERRIDE: &str = "INSERT INTO quota_overrides
    (tenant_id, user_id, meter, target, extra, custom_limit, expires_at, reason, actor, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
    ON CONFLICT (tenant_id, user_id, meter, target) DO UPDATE SET
        extra = excluded.extra, custom_limit = excluded.custom_limit,
        expires_at = excluded.expires_at, reason = excluded.reason,
        actor = excluded.actor, created_at = excluded.created_at";

pub(crate) const LIST_OVERRIDES: &str = "SELECT user_id, meter, target, extra, custom_limit,
    expires_at, reason, actor, created_at FROM quota_overrides
    WHERE tenant_id = $1 AND user_id = $2 ORDER BY meter, target";

pub(crate) const DELETE_OVERRIDE: &str = "DELETE FROM quota_overrides
    WHERE tenant_id = $1 AND user_id = $2 AND meter = $3 AND target = $4";

pub(crate) const ENGAGE: &str = "INSERT INTO kill_switches
    (target, tenant_id, user_id, reason, actor, created_at) VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (target) DO UPDATE SET reason = excluded.reason, actor = excluded.actor,
        created_at = excluded.created_at";

pub(crate) const DISENGAGE: &str = "DELETE FROM kill_switches WHERE target = $1";

pub(crate) const LIST_SWITCHES: &str =
    "SELECT tenant_id, user_id, reason, actor, created_at FROM kill_switches ORDER BY created_at";

/// The key of a switch: `global`, or the user id.
pub(crate) fn switch_target(user: Option<keel_core::ids::UserId>) -> String {
    user.map_or_else(|| "global".to_string(), |u| u.to_string())
}

pub(crate) fn quota_override(row: &impl Columns) -> StoreResult<QuotaOverride> {
    Ok(QuotaOverride {
        user_id: row.id("user_id")?,
        meter: row.text("meter")?,
        target: row.text("target")?,
        extra: row.int("extra")?,
        custom_limit: row.opt_int("custom_limit")?,
        expires_at: row.opt_time("expires_at")?,
        reason: row.text("reason")?,
        actor: row.text("actor")?,
        created_at: row.time("created_at")?,
    })
}

pub(crate) fn kill_switch(row: &impl Columns) -> StoreResult<KillSwitch> {
    Ok(KillSwitch {
        tenant_id: row.opt_id("tenant_id")?,
        user_id: row.opt_id("user_id")?,
        reason: row.text("reason")?,
        actor: row.text("actor")?,
        created_at: row.time("created_at")?,
    })
}

macro_rules! lever_store_impl {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::levers::LeverStore for $store {
            async fn put_quota_override(
                &self,
                scope: &$crate::TenantScope,
                o: $crate::levers::QuotaOverride,
            ) -> $crate::StoreResult<()> {
                sqlx::query($crate::levers_sql::PUT_OVERRIDE)
                    .bind(scope.tenant().to_string())
                    .bind(o.user_id.to_string())
                    .bind(&o.meter)
                    .bind(&o.target)
                    .bind(o.extra)
                    .bind(o.custom_limit)
                    .bind(o.expires_at.map($crate::micros))
                    .bind(&o.reason)
                    .bind(&o.actor)
                    .bind($crate::micros(o.created_at))
                    .execute(self.pool())
                    .await
                    .map_err($crate::error::map_sqlx)?;
                Ok(())
            }

            async fn quota_overrides(
                &self,
                scope: &$crate::TenantScope,
                user: keel_core::ids::UserId,
            ) -> $crate::StoreResult<Vec<$crate::levers::QuotaOverride>> {
                let rows = sqlx::query($crate::levers_sql::LIST_OVERRIDES)
                    .bind(scope.tenant().to_string())
                    .bind(user.to_string())
                    .fetch_all(self.pool())
                    .await
                    .map_err($crate::error::map_sqlx)?;
                rows.iter()
                    .map($crate::levers_sql::quota_override)
                    .collect()
            }

            async fn delete_quota_override(
                &self,
                scope: &$crate::TenantScope,
                user: keel_core::ids::UserId,
                meter: &str,
                target: &str,
            ) -> $crate::StoreResult<bool> {
                let done = sqlx::query($crate::levers_sql::DELETE_OVERRIDE)
                    .bind(scope.tenant().to_string())
                    .bind(user.to_string())
                    .bind(meter)
                    .bind(target)
                    .execute(self.pool())
                    .await
                    .map_err($crate::error::map_sqlx)?;
                Ok(done.rows_affected() > 0)
            }

            async fn engage_kill_switch(
                &self,
                switch: $crate::levers::KillSwitch,
            ) -> $crate::StoreResult<()> {
                sqlx::query($crate::levers_sql::ENGAGE)
                    .bind($crate::levers_sql::switch_target(switch.user_id))
                    .bind(switch.tenant_id.map(|t| t.to_string()))
                    .bind(switch.user_id.map(|u| u.to_string()))
                    .bind(&switch.reason)
                    .bind(&switch.actor)
                    .bind($crate::micros(switch.created_at))
                    .execute(self.pool())
                    .await
                    .map_err($crate::error::map_sqlx)?;
                Ok(())
            }

            async fn disengage_kill_switch(
                &self,
                user: Option<keel_core::ids::UserId>,
            ) -> $crate::StoreResult<bool> {
                let done = sqlx::query($crate::levers_sql::DISENGAGE)
                    .bind($crate::levers_sql::switch_target(user))
                    .execute(self.pool())
                    .await
                    .map_err($crate::error::map_sqlx)?;
                Ok(done.rows_affected() > 0)
            }

            async fn kill_switches(&self) -> $crate::StoreResult<Vec<$crate::levers::KillSwitch>> {
                let rows = sqlx::query($crate::levers_sql::LIST_SWITCHES)
                    .fetch_all(self.pool())
                    .await
                    .map_err($crate::error::map_sqlx)?;
                rows.iter().map($crate::levers_sql::kill_switch).collect()
            }
        }
    };
}
pub(crate) use lever_store_impl;
