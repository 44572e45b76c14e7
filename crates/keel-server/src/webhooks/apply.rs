//! What one inbox event does: read it, find its user and product, and compute the
//! subscription it leads to. Nothing is written here; the store writes the outcome in one
//! transaction.

use chrono::Utc;
use keel_core::ids::UserId;
use keel_core::webhooks::{self as core, next_state, EventKind, StoreEvent, SubState, UserRef};
use keel_store::{
    InboxEvent, InboxResolution, NewAuditEvent, Subscription, SubscriptionChange, TenantScope,
};
use serde_json::json;

use crate::AppState;

/// Why an attempt failed; `permanent` ones are dead-lettered at once.
pub(crate) struct Failure {
    pub(crate) reason: String,
    pub(crate) permanent: bool,
}

fn permanent(reason: impl Into<String>) -> Failure {
    Failure {
        reason: reason.into(),
        permanent: true,
    }
}

fn transient(reason: impl std::fmt::Display) -> Failure {
    Failure {
        reason: reason.to_string(),
        permanent: false,
    }
}

/// Reads a stored payload with its provider's reader.
pub(crate) fn read(event: &InboxEvent) -> Result<StoreEvent, String> {
    let read = match event.provider.as_str() {
        "stripe" => core::stripe::read,
        "appstore" => core::appstore::read,
        "googleplay" => core::googleplay::read,
        "lemonsqueezy" => core::lemonsqueezy::read,
        other => return Err(format!("unknown provider {other}")),
    };
    read(&event.payload).map_err(|e| e.0)
}

/// Decides the resolution of one claimed event.
pub(crate) async fn decide(
    state: &AppState,
    event: &InboxEvent,
) -> Result<InboxResolution, Failure> {
    let ev = read(event).map_err(permanent)?;
    if ev.kind == EventKind::Ignored {
        return Ok(InboxResolution::Ignore {
            reason: format!("{} is not acted on", ev.event_type),
        });
    }
    let (scope, user) = user_of(state, &ev).await?;
    if ev.kind == EventKind::Linked {
        return Ok(InboxResolution::Link {
            scope,
            user,
            provider_ref: ev.provider_ref,
        });
    }
    let ids: Vec<&str> = ev.products.iter().map(String::as_str).collect();
    let product = state
        .manifest()
        .store_products
        .find(ev.provider, &ids)
        .map(|(_, p)| p);
    if product.is_none() && !ev.products.is_empty() {
        return Err(permanent(format!(
            "unknown product: none of {} is in [store_products.{}]",
            ev.products.join(", "),
            ev.provider
        )));
    }
    let current = state
        .store()
        .get_subscription(&scope, user)
        .await
        .map_err(transient)?;
    let before = current.as_ref().map(|s| SubState {
        plan: s.plan.clone(),
        addons: s.addons.clone(),
        status: s.status.clone(),
        period_start: s.period_start,
        period_end: s.period_end,
    });
    let next = next_state(before.as_ref(), &ev, product).map_err(|e| permanent(e.to_string()))?;
    if !state.manifest().plans.contains_key(&next.plan) {
        return Err(permanent(format!(
            "plan `{}` is not in the manifest",
            next.plan
        )));
    }
    let data = json!({
        "provider": ev.provider, "event_type": ev.event_type, "change": ev.kind.as_str(),
        "inbox_id": event.id.to_string(), "plan": next.plan, "status": next.status,
        "period_end": next.period_end.to_rfc3339(),
        "previous": before.as_ref().map(|b| json!({"plan": b.plan, "status": b.status})),
    });
    Ok(InboxResolution::Change(Box::new(SubscriptionChange {
        scope,
        subscription: Subscription {
            user_id: user,
            plan: next.plan,
            status: next.status,
            period_start: next.period_start,
            period_end: next.period_end,
            source: ev.provider.to_string(),
            addons: next.addons,
            updated_at: Utc::now(),
        },
        event_at: ev.event_at,
        provider_ref: ev.provider_ref,
        audit: NewAuditEvent {
            actor: format!("webhook:{}", ev.provider),
            action: "subscription.changed".into(),
            target: Some(user.to_string()),
            request_id: None,
            data,
        },
    })))
}

/// The user an event names, or the one its subscription reference is linked to.
async fn user_of(state: &AppState, ev: &StoreEvent) -> Result<(TenantScope, UserId), Failure> {
    if let Some(named) = &ev.user {
        let id = UserRef::parse(named)
            .ok_or_else(|| permanent(format!("unknown user: `{named}` is not a Keel user id")))?;
        return match state.store().locate_user(id.0).await.map_err(transient)? {
            Some(u) => Ok((TenantScope::new(u.tenant_id), u.id)),
            None => Err(permanent(format!("unknown user: no user {}", id.0))),
        };
    }
    if !ev.provider_ref.is_empty() {
        let found = state
            .store()
            .find_provider_link(ev.provider, &ev.provider_ref)
            .await
            .map_err(transient)?;
        if let Some(link) = found {
            return Ok(link);
        }
    }
    // The link may still arrive (Stripe sends checkout and subscription events in any
    // order; an app reports its Play purchase token after buying): retried, then dead.
    Err(transient(format!(
        "no user: the event names none and {} `{}` is linked to no user",
        ev.provider, ev.provider_ref
    )))
}
