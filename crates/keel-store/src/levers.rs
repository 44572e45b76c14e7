//! Operator levers over billing: per-user quota overrides and billing kill switches.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keel_core::ids::{TenantId, UserId};
use serde::{Deserialize, Serialize};

use crate::{StoreResult, TenantScope};

/// An operator's change to one user's limit on one meter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaOverride {
    /// The user.
    pub user_id: UserId,
    /// The meter.
    pub meter: String,
    /// `limit` (the plan's period limit on the meter) or `credits` (the credit allowance).
    pub target: String,
    /// Units added on top of the (plan or custom) limit, may be 0.
    pub extra: i64,
    /// A limit that replaces the plan's, if set.
    pub custom_limit: Option<i64>,
    /// When the override stops applying; `None` = until removed.
    pub expires_at: Option<DateTime<Utc>>,
    /// Why (required).
    pub reason: String,
    /// Who set it (an admin id).
    pub actor: String,
    /// When it was set.
    pub created_at: DateTime<Utc>,
}

/// A billing kill switch: no new reservations for one user, or for everyone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillSwitch {
    /// The user's tenant, for a user switch.
    pub tenant_id: Option<TenantId>,
    /// The user, or `None` for the global switch.
    pub user_id: Option<UserId>,
    /// Why (required).
    pub reason: String,
    /// Who engaged it (an admin id).
    pub actor: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Storage of the levers.
#[async_trait]
pub trait LeverStore {
    /// Sets (or replaces) the override of `(user, meter, target)`.
    async fn put_quota_override(&self, scope: &TenantScope, o: QuotaOverride) -> StoreResult<()>;
    /// The user's overrides, expired ones included, by meter then target.
    async fn quota_overrides(
        &self,
        scope: &TenantScope,
        user: UserId,
    ) -> StoreResult<Vec<QuotaOverride>>;
    /// Removes one override; whether it existed.
    async fn delete_quota_override(
        &self,
        scope: &TenantScope,
        user: UserId,
        meter: &str,
        target: &str,
    ) -> StoreResult<bool>;
    /// Engages a switch (replacing the reason of one already engaged).
    async fn engage_kill_switch(&self, switch: KillSwitch) -> StoreResult<()>;
    /// Disengages the global switch (`user = None`) or a user's; whether it was engaged.
    async fn disengage_kill_switch(&self, user: Option<UserId>) -> StoreResult<bool>;
    /// Every engaged switch.
    async fn kill_switches(&self) -> StoreResult<Vec<KillSwitch>>;
}
