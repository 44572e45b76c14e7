//! The operator levers as billing sees them: a kill switch refuses new reservations, and
//! quota overrides change a user's limits. Switches are read through a cache of at most
//! [`SWITCH_TTL`], so every node honours a change within that time without a query per
//! reservation; overrides are read with the user's plan on every reservation.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use keel_core::billing::{LimitOverride, OverrideTarget};
use keel_core::ids::UserId;
use keel_store::{DynStore, KillSwitch, TenantScope};
use serde_json::json;

use crate::ApiError;

/// How stale a node's view of the kill switches may be.
pub const SWITCH_TTL: Duration = Duration::from_secs(1);

type Snapshot = Arc<Vec<KillSwitch>>;

/// The engaged kill switches, cached per node.
#[derive(Default)]
pub struct KillSwitchCache {
    cached: Mutex<Option<(Instant, Snapshot)>>,
}

impl KillSwitchCache {
    /// The engaged switches, from the cache when fresh.
    pub async fn current(&self, store: &DynStore) -> Result<Snapshot, ApiError> {
        if let Ok(guard) = self.cached.lock() {
            if let Some((at, switches)) = guard.as_ref() {
                if at.elapsed() < SWITCH_TTL {
                    return Ok(switches.clone());
                }
            }
        }
        let fresh: Snapshot = Arc::new(store.kill_switches().await?);
        if let Ok(mut guard) = self.cached.lock() {
            *guard = Some((Instant::now(), fresh.clone()));
        }
        Ok(fresh)
    }

    /// Forgets the cache (after this node changed a switch).
    pub fn invalidate(&self) {
        if let Ok(mut guard) = self.cached.lock() {
            *guard = None;
        }
    }
}

/// Refuses with 403 `billing_kill_switch` when the global switch or the user's is engaged.
pub async fn check_kill_switch(
    cache: &KillSwitchCache,
    store: &DynStore,
    user: UserId,
) -> Result<(), ApiError> {
    let switches = cache.current(store).await?;
    let hit = switches
        .iter()
        .find(|s| s.user_id.is_none())
        .or_else(|| switches.iter().find(|s| s.user_id == Some(user)));
    match hit {
        None => Ok(()),
        Some(s) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "billing_kill_switch",
            "billing is switched off by an operator; no new usage can be reserved",
        )
        .with_details(json!({
            "scope": if s.user_id.is_some() { "user" } else { "global" },
            "since": s.created_at,
        }))),
    }
}

/// The user's overrides in the pure model (unknown targets are skipped).
pub async fn overrides_for(
    store: &DynStore,
    scope: &TenantScope,
    user: UserId,
) -> Result<Vec<LimitOverride>, ApiError> {
    Ok(store
        .quota_overrides(scope, user)
        .await?
        .into_iter()
        .filter_map(|o| {
            Some(LimitOverride {
                target: OverrideTarget::parse(&o.target)?,
                meter: o.meter,
                extra: o.extra,
                custom_limit: o.custom_limit,
                expires_at: o.expires_at,
            })
        })
        .collect())
}

/// The snapshot form of the overrides that applied to a reservation.
pub fn applied_json(
    overrides: &[LimitOverride],
    meter: &str,
    now: DateTime<Utc>,
) -> serde_json::Value {
    let applied: Vec<serde_json::Value> = overrides
        .iter()
        .filter(|o| o.meter == meter && o.active(now))
        .map(|o| {
            json!({
                "target": o.target.as_str(),
                "extra": o.extra,
                "custom_limit": o.custom_limit,
                "expires_at": o.expires_at,
            })
        })
        .collect();
    json!(applied)
}
