//! The webhook inbox: dedupe by provider event id, exclusive claims, atomic resolutions,
//! out-of-order protection of subscriptions, retries, dead letters and replays.

use chrono::{DateTime, TimeDelta, Utc};
use keel_store::{
    Backend, DynStore, InboxEvent, InboxResolution, InboxStatus, NewAuditEvent, NewInboxEvent,
    ResolveOutcome, Subscription, SubscriptionChange, TenantScope,
};
use serde_json::json;
use uuid::Uuid;

use crate::fixtures::{hours, now, race, CALLERS};
use crate::{harness, harness_with};

on_both_backends!(
    a_delivery_is_kept_once_per_provider_event_id,
    concurrent_duplicate_deliveries_keep_one_row,
    each_due_event_is_claimed_by_one_worker_only,
    a_lapsed_claim_is_claimed_again_and_the_old_claim_cannot_resolve,
    failures_retry_then_dead_letter_and_replay_makes_it_due,
    ignored_events_are_applied_without_a_change,
    lists_filter_by_status_and_provider,
);

pub(crate) fn delivery(provider: &str, event_id: &str) -> NewInboxEvent {
    NewInboxEvent {
        provider: provider.into(),
        provider_event_id: event_id.into(),
        event_type: "customer.subscription.updated".into(),
        payload: json!({"id": event_id, "nested": {"n": 1}}),
        received_at: now(),
    }
}

pub(crate) fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", Uuid::now_v7().simple())
}

pub(crate) async fn claim_one(store: &DynStore, at: DateTime<Utc>) -> InboxEvent {
    let mut claimed = store
        .claim_inbox_events(at, at + TimeDelta::seconds(60), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "one event due");
    claimed.remove(0)
}

pub(crate) fn change(
    scope: TenantScope,
    user: keel_core::ids::UserId,
    plan: &str,
    status: &str,
    event_at: DateTime<Utc>,
) -> SubscriptionChange {
    let start = now();
    SubscriptionChange {
        scope,
        subscription: Subscription {
            user_id: user,
            plan: plan.into(),
            status: status.into(),
            period_start: start,
            period_end: start + hours(24 * 30),
            source: "stripe".into(),
            addons: vec![],
            updated_at: start,
        },
        event_at,
        provider_ref: "sub_123".into(),
        audit: NewAuditEvent {
            actor: "webhook:stripe".into(),
            action: "subscription.changed".into(),
            target: Some(user.to_string()),
            request_id: None,
            data: json!({"plan": plan, "status": status}),
        },
    }
}

async fn a_delivery_is_kept_once_per_provider_event_id(backend: Backend) {
    let h = harness(backend).await;
    let id = unique("evt");
    let (first, new) = h
        .store
        .record_inbox_event(delivery("stripe", &id))
        .await
        .unwrap();
    assert!(new);
    assert_eq!(first.status, InboxStatus::Pending);
    assert_eq!(first.attempts, 0);
    assert_eq!(first.payload, json!({"id": id, "nested": {"n": 1}}));
    let (again, new) = h
        .store
        .record_inbox_event(delivery("stripe", &id))
        .await
        .unwrap();
    assert!(!new);
    assert_eq!(again.id, first.id);
    // The same id from another provider is another event.
    let (other, new) = h
        .store
        .record_inbox_event(delivery("lemonsqueezy", &id))
        .await
        .unwrap();
    assert!(new);
    assert_ne!(other.id, first.id);
    let all = h.store.list_inbox_events(None, None, 100).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(h.store.get_inbox_event(first.id).await.unwrap(), first);
}

async fn concurrent_duplicate_deliveries_keep_one_row(backend: Backend) {
    let h = harness_with(backend, CALLERS as u32).await;
    let id = unique("evt");
    let store = h.store.clone();
    let results = race(|_| {
        let store = store.clone();
        let id = id.clone();
        async move {
            store
                .record_inbox_event(delivery("stripe", &id))
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(results.iter().filter(|(_, new)| *new).count(), 1);
    let first = results[0].0.id;
    assert!(results.iter().all(|(e, _)| e.id == first));
    assert_eq!(
        h.store
            .list_inbox_events(None, None, 100)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn each_due_event_is_claimed_by_one_worker_only(backend: Backend) {
    let h = harness_with(backend, 8).await;
    for _ in 0..20 {
        h.store
            .record_inbox_event(delivery("stripe", &unique("evt")))
            .await
            .unwrap();
    }
    let at = now() + TimeDelta::seconds(1);
    let store = h.store.clone();
    let claims = crate::fixtures::race_n(8, |_| {
        let store = store.clone();
        async move {
            store
                .claim_inbox_events(at, at + TimeDelta::seconds(60), 5)
                .await
                .unwrap()
        }
    })
    .await;
    let mut ids: Vec<_> = claims.iter().flatten().map(|e| e.id).collect();
    assert_eq!(ids.len(), 20, "every event claimed");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20, "no event claimed twice");
    assert!(claims.iter().flatten().all(|e| e.attempts == 1));
    let later = h
        .store
        .claim_inbox_events(at, at + TimeDelta::seconds(60), 50)
        .await
        .unwrap();
    assert!(
        later.is_empty(),
        "claimed events are not due again before the claim lapses"
    );
}

async fn a_lapsed_claim_is_claimed_again_and_the_old_claim_cannot_resolve(backend: Backend) {
    let h = harness(backend).await;
    h.store
        .record_inbox_event(delivery("appstore", &unique("n")))
        .await
        .unwrap();
    let t0 = now() + TimeDelta::seconds(1);
    let first = claim_one(&h.store, t0).await;
    // The first worker died; after the claim lapses another takes the event.
    let second = claim_one(&h.store, t0 + TimeDelta::seconds(61)).await;
    assert_eq!(second.id, first.id);
    assert_eq!(second.attempts, 2);
    let late = h
        .store
        .resolve_inbox_event(
            first.id,
            first.attempts,
            InboxResolution::Ignore { reason: "x".into() },
            now(),
        )
        .await
        .unwrap();
    assert_eq!(late, ResolveOutcome::LostClaim);
    assert_eq!(
        h.store.get_inbox_event(first.id).await.unwrap().status,
        InboxStatus::Pending
    );
    let done = h
        .store
        .resolve_inbox_event(
            second.id,
            second.attempts,
            InboxResolution::Ignore { reason: "x".into() },
            now(),
        )
        .await
        .unwrap();
    assert_eq!(done, ResolveOutcome::Recorded);
}

async fn failures_retry_then_dead_letter_and_replay_makes_it_due(backend: Backend) {
    let h = harness(backend).await;
    h.store
        .record_inbox_event(delivery("googleplay", &unique("m")))
        .await
        .unwrap();
    let t0 = now() + TimeDelta::seconds(1);
    let e = claim_one(&h.store, t0).await;
    let retry_at = t0 + TimeDelta::seconds(30);
    let fail = InboxResolution::Fail {
        error: "store unavailable".into(),
        retry_at: Some(retry_at),
    };
    assert_eq!(
        h.store
            .resolve_inbox_event(e.id, e.attempts, fail, t0)
            .await
            .unwrap(),
        ResolveOutcome::Recorded
    );
    let failed = h.store.get_inbox_event(e.id).await.unwrap();
    assert_eq!(failed.status, InboxStatus::Failed);
    assert_eq!(failed.last_error.as_deref(), Some("store unavailable"));
    assert_eq!(failed.next_attempt_at, retry_at);
    assert!(h
        .store
        .claim_inbox_events(t0 + TimeDelta::seconds(29), t0 + TimeDelta::seconds(90), 10)
        .await
        .unwrap()
        .is_empty());
    let again = claim_one(&h.store, retry_at).await;
    assert_eq!(again.attempts, 2);
    let dead = InboxResolution::Fail {
        error: "unknown user".into(),
        retry_at: None,
    };
    h.store
        .resolve_inbox_event(e.id, again.attempts, dead, retry_at)
        .await
        .unwrap();
    let stored = h.store.get_inbox_event(e.id).await.unwrap();
    assert_eq!(stored.status, InboxStatus::Dead);
    assert_eq!(stored.last_error.as_deref(), Some("unknown user"));
    assert!(h
        .store
        .claim_inbox_events(retry_at + hours(1000), retry_at + hours(1001), 10)
        .await
        .unwrap()
        .is_empty());
    let replayed = h.store.replay_inbox_event(e.id, now()).await.unwrap();
    assert_eq!(replayed.status, InboxStatus::Pending);
    assert_eq!(replayed.attempts, 0);
    let claimed = claim_one(&h.store, now() + TimeDelta::seconds(1)).await;
    assert_eq!(claimed.id, e.id);
    let missing = h
        .store
        .replay_inbox_event(keel_core::ids::InboxEventId::new(), now())
        .await;
    assert!(matches!(missing, Err(keel_store::StoreError::NotFound)));
}

async fn ignored_events_are_applied_without_a_change(backend: Backend) {
    let h = harness(backend).await;
    h.store
        .record_inbox_event(delivery("stripe", &unique("evt")))
        .await
        .unwrap();
    let e = claim_one(&h.store, now() + TimeDelta::seconds(1)).await;
    let ignore = InboxResolution::Ignore {
        reason: "event type not handled".into(),
    };
    h.store
        .resolve_inbox_event(e.id, e.attempts, ignore, now())
        .await
        .unwrap();
    let stored = h.store.get_inbox_event(e.id).await.unwrap();
    assert_eq!(stored.status, InboxStatus::Applied);
    assert_eq!(
        stored.outcome.as_deref(),
        Some("ignored: event type not handled")
    );
}

async fn lists_filter_by_status_and_provider(backend: Backend) {
    let h = harness(backend).await;
    for p in ["stripe", "stripe", "appstore"] {
        h.store
            .record_inbox_event(delivery(p, &unique("evt")))
            .await
            .unwrap();
    }
    let e = h
        .store
        .claim_inbox_events(now() + TimeDelta::seconds(1), now() + hours(1), 1)
        .await
        .unwrap()
        .remove(0);
    let dead = InboxResolution::Fail {
        error: "bad".into(),
        retry_at: None,
    };
    h.store
        .resolve_inbox_event(e.id, e.attempts, dead, now())
        .await
        .unwrap();
    let stripe = h
        .store
        .list_inbox_events(None, Some("stripe"), 10)
        .await
        .unwrap();
    assert_eq!(stripe.len(), 2);
    let dead = h
        .store
        .list_inbox_events(Some(InboxStatus::Dead), None, 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, e.id);
    let pending = h
        .store
        .list_inbox_events(Some(InboxStatus::Pending), None, 10)
        .await
        .unwrap();
    assert_eq!(pending.len(), 2);
    let newest_first = h.store.list_inbox_events(None, None, 10).await.unwrap();
    assert!(newest_first.windows(2).all(|w| w[0].id > w[1].id));
}
