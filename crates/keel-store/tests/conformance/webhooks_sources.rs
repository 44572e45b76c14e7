//! The other contexts' events, written to the outbox in the transaction of their change:
//! job transitions, safety events, and subscription changes applied from the inbox; and
//! nothing when the change is refused, stale or a no-op.

use chrono::TimeDelta;
use keel_core::ids::UserId;
use keel_core::outbound::EventType;
use keel_store::jobs::TransitionOutcome;
use keel_store::{
    Backend, DeliveryStatus, InboxResolution, MessageRecord, NewSafetyEvent, ResolveOutcome,
    TenantScope,
};

use crate::fixtures::{self, now};
use crate::jobs_fixtures::{created, move_to, moved, new_job, scope};
use crate::webhook_fixtures::endpoint;
use crate::webhooks::{change, claim_one, delivery, unique};
use crate::{harness, Harness};

on_both_backends!(
    job_creation_and_transitions_write_state_changed_and_a_stale_one_nothing,
    safety_events_write_flagged_without_the_text_hash,
    an_applied_inbox_change_writes_subscription_changed_and_stale_or_same_nothing,
    a_failed_outbox_write_rolls_the_transition_and_the_safety_events_back,
);

async fn messages(h: &Harness, scope: &TenantScope, t: EventType) -> Vec<MessageRecord> {
    let mut got = h.store.list_messages(scope, Some(t), 500).await.unwrap();
    got.reverse(); // oldest first
    got
}

async fn job_creation_and_transitions_write_state_changed_and_a_stale_one_nothing(b: Backend) {
    let h = harness(b).await;
    let scope = scope();
    let e = endpoint(&h.store, &scope, &[EventType::JobStateChanged]).await;
    let user = UserId::new();
    let job = created(&h.store, &scope, new_job(user, now())).await;
    let running = moved(&h.store, &scope, move_to(&job, "running", now())).await;
    // A write from the first version is refused and sends nothing.
    let stale = h
        .store
        .transition_job(&scope, move_to(&job, "failed", now()))
        .await
        .unwrap();
    assert!(matches!(stale, TransitionOutcome::Stale(_)));
    let got = messages(&h, &scope, EventType::JobStateChanged).await;
    assert_eq!(got.len(), 2);
    let (first, second) = (&got[0].payload, &got[1].payload);
    assert_eq!(first["job_id"], job.id.to_string());
    assert_eq!(first["to"], "queued");
    assert!(first["from"].is_null());
    assert_eq!(second["job_id"], job.id.to_string());
    assert_eq!(second["job_type"], "build");
    assert_eq!(second["user_id"], user.to_string());
    assert_eq!(second["from"], "queued");
    assert_eq!(second["to"], "running");
    assert_eq!(second["version"], running.version);
    assert!(second.get("input").is_none());
    assert_eq!(
        h.store.message_deliveries(&scope, got[1].id).await.unwrap(),
        vec![(e.id, DeliveryStatus::Pending, 0)]
    );
    // Another tenant's endpoint hears nothing of it.
    let other = crate::jobs_fixtures::scope();
    assert!(messages(&h, &other, EventType::JobStateChanged)
        .await
        .is_empty());
}

fn hit(user: UserId, action: &str, request: &str) -> NewSafetyEvent {
    NewSafetyEvent {
        user_id: user,
        rule: "self_harm".into(),
        feature: "chat".into(),
        action: action.into(),
        status: None,
        request_id: request.into(),
        text_hash: "0123456789abcdef".into(),
    }
}

async fn safety_events_write_flagged_without_the_text_hash(b: Backend) {
    let h = harness(b).await;
    let scope = scope();
    endpoint(&h.store, &scope, &[EventType::SafetyFlagged]).await;
    let user = UserId::new();
    let rows = h
        .store
        .record_safety_events(
            &scope,
            vec![hit(user, "block", "r1"), hit(user, "flag", "r1")],
        )
        .await
        .unwrap();
    let got = messages(&h, &scope, EventType::SafetyFlagged).await;
    assert_eq!(got.len(), 2);
    for (row, m) in rows.iter().zip(&got) {
        assert_eq!(m.payload["event_id"], row.id.to_string());
        assert_eq!(m.payload["action"], row.action);
        assert_eq!(m.payload["rule"], "self_harm");
        assert_eq!(m.payload["feature"], "chat");
        assert_eq!(m.payload["user_id"], user.to_string());
        assert_eq!(m.payload["request_id"], "r1");
        assert!(!m.payload.to_string().contains("0123456789abcdef"));
    }
    // Nothing recorded, nothing sent.
    h.store.record_safety_events(&scope, vec![]).await.unwrap();
    assert_eq!(
        messages(&h, &scope, EventType::SafetyFlagged).await.len(),
        2
    );
}

async fn resolve(h: &Harness, c: keel_store::SubscriptionChange) -> ResolveOutcome {
    h.store
        .record_inbox_event(delivery("stripe", &unique("evt")))
        .await
        .unwrap();
    let e = claim_one(&h.store, now() + TimeDelta::seconds(1)).await;
    h.store
        .resolve_inbox_event(
            e.id,
            e.attempts,
            InboxResolution::Change(Box::new(c)),
            now(),
        )
        .await
        .unwrap()
}

async fn an_applied_inbox_change_writes_subscription_changed_and_stale_or_same_nothing(b: Backend) {
    let h = harness(b).await;
    let (scope, user) = fixtures::user(&h.store).await;
    endpoint(&h.store, &scope, &[EventType::SubscriptionChanged]).await;
    let t = now();
    let applied = change(scope, user.id, "pro", "active", t);
    assert_eq!(resolve(&h, applied.clone()).await, ResolveOutcome::Applied);
    let got = messages(&h, &scope, EventType::SubscriptionChanged).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload["user_id"], user.id.to_string());
    assert_eq!(got[0].payload["plan"], "pro");
    assert_eq!(got[0].payload["status"], "active");
    // An older event is stale: nothing written, nothing sent.
    let older = change(
        scope,
        user.id,
        "pro",
        "canceled",
        t - TimeDelta::seconds(30),
    );
    assert_eq!(resolve(&h, older).await, ResolveOutcome::Stale);
    // A newer event that changes nothing sends nothing.
    let mut same = applied.clone();
    same.event_at = t + TimeDelta::seconds(10);
    assert_eq!(resolve(&h, same).await, ResolveOutcome::Applied);
    assert_eq!(
        messages(&h, &scope, EventType::SubscriptionChanged)
            .await
            .len(),
        1
    );
    // A newer event that cancels sends the change with what it was before.
    let canceled = change(
        scope,
        user.id,
        "pro",
        "canceled",
        t + TimeDelta::seconds(20),
    );
    assert_eq!(resolve(&h, canceled).await, ResolveOutcome::Applied);
    let got = messages(&h, &scope, EventType::SubscriptionChanged).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].payload["status"], "canceled");
    assert_eq!(got[1].payload["previous"]["status"], "active");
}

async fn a_failed_outbox_write_rolls_the_transition_and_the_safety_events_back(b: Backend) {
    let h = harness(b).await;
    let scope = scope();
    endpoint(
        &h.store,
        &scope,
        &[EventType::JobStateChanged, EventType::SafetyFlagged],
    )
    .await;
    let user = UserId::new();
    let job = created(&h.store, &scope, new_job(user, now())).await;
    crate::webhooks_outbox::refuse_deliveries(&h).await;
    // The message row is written, then its delivery fails: the whole change rolls back.
    let refused = h
        .store
        .transition_job(&scope, move_to(&job, "running", now()))
        .await;
    assert!(refused.is_err(), "{refused:?}");
    let still = h.store.find_job(&scope, job.id).await.unwrap().unwrap();
    assert_eq!(
        (still.state.as_str(), still.version),
        ("queued", job.version)
    );
    let recorded = h
        .store
        .record_safety_events(&scope, vec![hit(user, "block", "r9")])
        .await;
    assert!(recorded.is_err(), "{recorded:?}");
    let kept = h
        .store
        .list_safety_events(
            &scope,
            &keel_store::SafetyQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(kept.is_empty());
    // Only the creation's message, written before deliveries were refused, exists.
    assert_eq!(
        messages(&h, &scope, EventType::JobStateChanged).await.len(),
        1
    );
    assert!(messages(&h, &scope, EventType::SafetyFlagged)
        .await
        .is_empty());
}
