//! The billing context: plans from subscriptions, entitlements, reservations, the ledger.

pub mod checkout;
pub(crate) mod entitlements;
pub mod levers;
pub(crate) mod reservations;
pub(crate) mod routes;
pub(crate) mod service_routes;
pub(crate) mod service_usage;
pub mod sweeper;

use chrono::{DateTime, Utc};
use keel_core::billing::GateSpec;
use keel_core::billing::Subject;
use keel_core::ids::UserId;
use keel_core::manifest::{LimitScope, Manifest};
use keel_store::{CounterKey, CounterOwner, DynStore, Subscription, TenantScope};

use crate::ApiError;

/// Subscription states that grant their plan.
const LIVE: &[&str] = &["active", "trialing", "past_due", "grace"];

/// The plan a user is on now: a live subscription's plan (if the manifest still has it),
/// else the manifest's default plan.
#[derive(Clone, Debug)]
pub struct PlanChoice {
    /// Plan name.
    pub plan: String,
    /// Purchased add-ons.
    pub addons: Vec<String>,
    /// The subscription period, for billing-cycle windows.
    pub cycle: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// The subscription, if any.
    pub subscription: Option<Subscription>,
    /// The user's own time zone, if they set one (calendar windows use it).
    pub timezone: Option<keel_core::manifest::Tz>,
}

impl PlanChoice {
    /// Runs `f` with this choice as the pure model's [`Subject`].
    pub fn with_subject<T>(&self, f: impl FnOnce(&Subject<'_>) -> T) -> T {
        let addons: Vec<&str> = self.addons.iter().map(String::as_str).collect();
        f(&Subject {
            plan: &self.plan,
            addons: &addons,
            cycle: self.cycle,
            timezone: self.timezone,
        })
    }
}

/// Resolves the user's plan.
pub async fn plan_for(
    store: &DynStore,
    manifest: &Manifest,
    scope: &TenantScope,
    user: UserId,
    now: DateTime<Utc>,
) -> Result<PlanChoice, ApiError> {
    let (sub, found) = tokio::join!(
        store.get_subscription(scope, user),
        store.get_user(scope, user)
    );
    let sub = sub?;
    let timezone = match found {
        Ok(u) => u
            .timezone
            .and_then(|t| keel_core::manifest::TimeZone::parse(&t).ok())
            .map(|t| t.tz()),
        Err(keel_store::StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let live = sub.as_ref().filter(|s| {
        LIVE.contains(&s.status.as_str())
            && now < s.period_end
            && manifest.plans.contains_key(&s.plan)
    });
    Ok(match live {
        Some(s) => PlanChoice {
            plan: s.plan.clone(),
            addons: s.addons.clone(),
            cycle: Some((s.period_start, s.period_end)),
            subscription: sub.clone(),
            timezone,
        },
        None => PlanChoice {
            plan: manifest.product.default_plan.clone(),
            addons: Vec::new(),
            cycle: None,
            subscription: sub,
            timezone,
        },
    })
}

/// The counter a limit of `scope` counts on: the user's own, or the tenant's shared one.
pub(crate) fn counter_key(scope: LimitScope, meter: &str, window: &str) -> CounterKey {
    CounterKey {
        owner: match scope {
            LimitScope::User => CounterOwner::User,
            LimitScope::Tenant => CounterOwner::Tenant,
        },
        meter: meter.to_string(),
        window: window.to_string(),
    }
}

/// The counter a gate adds to.
pub(crate) fn gate_key(g: &GateSpec) -> CounterKey {
    counter_key(g.scope, &g.meter, &g.window)
}
