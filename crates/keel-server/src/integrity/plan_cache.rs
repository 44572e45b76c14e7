//! The plan of a user, as rate limits need it on every request: resolved from billing (a
//! subscription read) at most once per [`PLAN_TTL`] per user and node.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use keel_core::ids::{TenantId, UserId};
use keel_store::TenantScope;

use crate::AppState;

/// How long a user's plan is trusted before billing is asked again; a plan change reaches
/// rate limits within this time.
pub const PLAN_TTL: Duration = Duration::from_secs(30);

/// Most users remembered; beyond this stale entries are swept, then everything.
const MAX_ENTRIES: usize = 100_000;

/// Users' plans, per node.
#[derive(Default)]
pub struct PlanCache {
    inner: RwLock<HashMap<UserId, (String, Instant)>>,
}

impl PlanCache {
    /// The user's plan now; the default plan if billing cannot tell (the error is logged).
    pub async fn plan(&self, state: &AppState, tenant: TenantId, user: UserId) -> String {
        if let Some(plan) = self.fresh(user) {
            return plan;
        }
        let scope = TenantScope::new(tenant);
        let now = chrono::Utc::now();
        let plan = match crate::billing::plan_for(
            state.store(),
            state.manifest(),
            &scope,
            user,
            now,
        )
        .await
        {
            Ok(choice) => choice.plan,
            Err(e) => {
                tracing::warn!(error = %e, "rate limits: plan lookup failed; using the default plan");
                return state.manifest().product.default_plan.clone();
            }
        };
        if let Ok(mut map) = self.inner.write() {
            if map.len() >= MAX_ENTRIES {
                map.retain(|_, (_, at)| at.elapsed() < PLAN_TTL);
                if map.len() >= MAX_ENTRIES {
                    map.clear();
                }
            }
            map.insert(user, (plan.clone(), Instant::now()));
        }
        plan
    }

    fn fresh(&self, user: UserId) -> Option<String> {
        let map = self.inner.read().ok()?;
        map.get(&user)
            .filter(|(_, at)| at.elapsed() < PLAN_TTL)
            .map(|(plan, _)| plan.clone())
    }
}
