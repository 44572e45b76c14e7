//! The subscription state an event leads to, from the state before it.
//!
//! Statuses are the billing context's: `active` (and `grace`, `past_due`) grant the plan
//! while `period_end` is ahead; `expired` and `canceled` do not. Cancelling at period end
//! keeps `active` until `period_end`, so the plan drops exactly when the paid time does.

use chrono::{DateTime, TimeDelta, Utc};

use super::event::{EventKind, StoreEvent};
use crate::manifest::StoreProduct;

/// The subscription fields an event sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubState {
    /// Plan.
    pub plan: String,
    /// Add-ons.
    pub addons: Vec<String>,
    /// `active`, `grace`, `past_due`, `expired` or `canceled`.
    pub status: String,
    /// Period start.
    pub period_start: DateTime<Utc>,
    /// Period end (for `grace`, when the grace ends; for a lock, when it happened).
    pub period_end: DateTime<Utc>,
}

/// Why an event cannot apply; it is dead-lettered with this reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The event names no product the manifest maps, and the user has no subscription to
    /// keep the plan of.
    #[error(
        "no product of the event is mapped to a plan in [store_products.{provider}]: {products}"
    )]
    UnknownProduct {
        /// Provider.
        provider: &'static str,
        /// The ids the event named.
        products: String,
    },
}

/// The length of a period when an event gives no end (Google RTDN carries none).
pub const DEFAULT_PERIOD: TimeDelta = TimeDelta::days(30);

/// The state after `event`. `product` is the manifest's mapping of the event's product, if
/// any; without one the current plan is kept (payment and cancellation events often name
/// no product).
pub fn next_state(
    current: Option<&SubState>,
    event: &StoreEvent,
    product: Option<&StoreProduct>,
) -> Result<SubState, StateError> {
    let (plan, addons) = match (product, current) {
        (Some(p), _) => (p.plan.clone(), p.addons.clone()),
        (None, Some(c)) => (c.plan.clone(), c.addons.clone()),
        (None, None) => {
            return Err(StateError::UnknownProduct {
                provider: event.provider,
                products: if event.products.is_empty() {
                    "(none named)".into()
                } else {
                    event.products.join(", ")
                },
            })
        }
    };
    let at = event.event_at;
    let start = event
        .period_start
        .or(current.map(|c| c.period_start))
        .unwrap_or(at);
    let kept_end = event.period_end.or(current.map(|c| c.period_end));
    let fresh_end = || event.period_end.unwrap_or(at + DEFAULT_PERIOD);
    let state = |status: &str, period_start: DateTime<Utc>, period_end: DateTime<Utc>| SubState {
        plan: plan.clone(),
        addons: addons.clone(),
        status: status.into(),
        period_start,
        period_end,
    };
    Ok(match event.kind {
        EventKind::Purchased | EventKind::Renewed | EventKind::Recovered => {
            let period_start = event.period_start.unwrap_or(at);
            state("active", period_start, fresh_end())
        }
        EventKind::PlanChanged | EventKind::Uncanceled | EventKind::CancelAtPeriodEnd => {
            state("active", start, kept_end.unwrap_or_else(fresh_end))
        }
        EventKind::PaymentFailed { grace } => {
            let product_grace = product
                .and_then(|p| p.grace)
                .and_then(|g| TimeDelta::from_std(g.as_duration()).ok())
                .map(|g| at + g);
            match event
                .grace_until
                .or(product_grace)
                .filter(|g| grace && *g > at)
            {
                Some(until) => state("grace", start, until),
                // Locked now: the plan is no longer granted.
                None => state("past_due", start, at.max(start)),
            }
        }
        EventKind::Expired => {
            let end = kept_end.map_or(at, |e| e.min(at)).max(start);
            state("expired", start, end)
        }
        EventKind::Revoked => state("canceled", start, at.max(start)),
        EventKind::Linked | EventKind::Ignored => state(
            current.map_or("active", |c| c.status.as_str()),
            start,
            kept_end.unwrap_or(at),
        ),
    })
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
