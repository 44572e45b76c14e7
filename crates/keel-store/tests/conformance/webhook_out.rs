//! Webhook endpoints, fan-out, claims, the retry schedule, disabling and replay.

use std::collections::HashSet;

use chrono::TimeDelta;
use keel_core::ids::TenantId;
use keel_core::outbound::{EndpointSecret, EventType, DISABLE_AFTER, RETRY_SCHEDULE};
use keel_store::{all_tenants, Backend, DeliveryStatus, EndpointUpdate, StoreError, TenantScope};

use crate::fixtures::{now, race_n};
use crate::webhook_fixtures::{endpoint, failed, flagged, succeeded};
use crate::{harness, harness_with};

on_both_backends!(
    endpoints_are_scoped_to_their_tenant_and_rotation_keeps_the_old_secret,
    a_message_fans_out_to_enabled_endpoints_subscribed_to_its_type,
    failed_attempts_follow_the_retry_schedule_then_the_delivery_is_dead,
    concurrent_claims_never_hand_out_one_delivery_twice,
    an_attempt_is_recorded_once_even_if_two_workers_report_it,
    an_endpoint_failing_for_five_days_is_disabled,
);

pub fn tenant() -> TenantScope {
    TenantScope::new(TenantId::new())
}

async fn endpoints_are_scoped_to_their_tenant_and_rotation_keeps_the_old_secret(b: Backend) {
    let h = harness(b).await;
    let (mine, other) = (tenant(), tenant());
    let e = endpoint(&h.store, &mine, &[EventType::SubscriptionChanged]).await;
    assert!(e.enabled && e.previous_secret.is_none());
    assert_eq!(
        h.store.endpoint_tenant(e.id).await.unwrap(),
        Some(mine.tenant())
    );
    assert_eq!(h.store.get_endpoint(&mine, e.id).await.unwrap(), e);
    assert!(matches!(
        h.store.get_endpoint(&other, e.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(h.store.list_endpoints(&other).await.unwrap().is_empty());
    assert_eq!(
        h.store.list_endpoints(&mine).await.unwrap(),
        vec![e.clone()]
    );

    let update = EndpointUpdate {
        enabled: Some(false),
        event_types: Some(vec![EventType::JobStateChanged, EventType::SafetyFlagged]),
        ..Default::default()
    };
    let off = h
        .store
        .update_endpoint(&mine, e.id, update, now())
        .await
        .unwrap();
    assert!(!off.enabled);
    assert_eq!(off.disabled_reason.as_deref(), Some("operator"));
    assert_eq!(
        off.event_types,
        vec![EventType::JobStateChanged, EventType::SafetyFlagged]
    );
    assert_eq!(off.url, e.url);
    let on = EndpointUpdate {
        enabled: Some(true),
        ..Default::default()
    };
    let on = h
        .store
        .update_endpoint(&mine, e.id, on, now())
        .await
        .unwrap();
    assert!(on.enabled && on.disabled_reason.is_none());

    let fresh = EndpointSecret::generate().expose();
    let until = now() + TimeDelta::hours(24);
    let rotated = h
        .store
        .rotate_endpoint_secret(&mine, e.id, fresh.clone(), until, now())
        .await
        .unwrap();
    assert_eq!(rotated.secret, fresh);
    assert_eq!(rotated.previous_secret.as_deref(), Some(e.secret.as_str()));
    assert_eq!(rotated.previous_until, Some(until));
    let wrong = h
        .store
        .rotate_endpoint_secret(&other, e.id, fresh, until, now())
        .await;
    assert!(matches!(wrong, Err(StoreError::NotFound)));

    assert!(!h.store.delete_endpoint(&other, e.id).await.unwrap());
    assert!(h.store.delete_endpoint(&mine, e.id).await.unwrap());
    assert!(!h.store.delete_endpoint(&mine, e.id).await.unwrap());
    assert_eq!(h.store.endpoint_tenant(e.id).await.unwrap(), None);
}

async fn a_message_fans_out_to_enabled_endpoints_subscribed_to_its_type(b: Backend) {
    let h = harness(b).await;
    let (mine, other, all) = (tenant(), tenant(), TenantScope::new(all_tenants()));
    let own = endpoint(&h.store, &mine, &[EventType::SafetyFlagged]).await;
    let global = endpoint(
        &h.store,
        &all,
        &[EventType::SafetyFlagged, EventType::JobStateChanged],
    )
    .await;
    endpoint(&h.store, &mine, &[EventType::JobStateChanged]).await;
    endpoint(&h.store, &other, &[EventType::SafetyFlagged]).await;
    let off = endpoint(&h.store, &mine, &[EventType::SafetyFlagged]).await;
    let disable = EndpointUpdate {
        enabled: Some(false),
        ..Default::default()
    };
    h.store
        .update_endpoint(&mine, off.id, disable, now())
        .await
        .unwrap();

    let m = flagged(&h.store, &mine).await;
    assert_eq!(m.tenant_id, mine.tenant());
    assert!(m.id.to_string().starts_with("msg_"));
    assert_eq!(h.store.get_message(&mine, m.id).await.unwrap(), m);
    assert!(matches!(
        h.store.get_message(&other, m.id).await,
        Err(StoreError::NotFound)
    ));
    let mut got: Vec<_> = h.store.message_deliveries(&mine, m.id).await.unwrap();
    got.sort_by_key(|(e, _, _)| *e);
    let mut want = vec![
        (own.id, DeliveryStatus::Pending, 0),
        (global.id, DeliveryStatus::Pending, 0),
    ];
    want.sort_by_key(|(e, _, _)| *e);
    assert_eq!(got, want);
    let listed = h
        .store
        .list_messages(&mine, Some(EventType::SafetyFlagged), 10)
        .await
        .unwrap();
    assert_eq!(listed, vec![m]);
}

async fn failed_attempts_follow_the_retry_schedule_then_the_delivery_is_dead(b: Backend) {
    let h = harness(b).await;
    let mine = tenant();
    let e = endpoint(&h.store, &mine, &[EventType::SafetyFlagged]).await;
    let m = flagged(&h.store, &mine).await;
    let mut t = now() + TimeDelta::seconds(1);
    let lease = |t| t + TimeDelta::minutes(1);
    for (i, delay) in RETRY_SCHEDULE.iter().enumerate() {
        let due = h.store.claim_deliveries(t, lease(t), 10).await.unwrap();
        assert_eq!(due.len(), 1, "attempt {} is due", i + 1);
        let d = &due[0];
        assert_eq!((d.message.id, d.endpoint_id), (m.id, e.id));
        assert_eq!(d.attempt, i as i64 + 1);
        assert_eq!(d.secrets, vec![e.secret.clone()]);
        // Claimed: not handed out again while its lease runs.
        assert!(h
            .store
            .claim_deliveries(t, lease(t), 10)
            .await
            .unwrap()
            .is_empty());
        let outcome = h.store.record_attempt(d, failed(t)).await.unwrap();
        assert!(outcome.recorded);
        assert_eq!(outcome.status, DeliveryStatus::Pending);
        assert_eq!(outcome.next_attempt_at, Some(t + *delay));
        let early = t + *delay - TimeDelta::seconds(1);
        assert!(h
            .store
            .claim_deliveries(early, lease(early), 10)
            .await
            .unwrap()
            .is_empty());
        t += *delay;
    }
    let last = h.store.claim_deliveries(t, lease(t), 10).await.unwrap();
    assert_eq!(last[0].attempt, 8);
    let outcome = h.store.record_attempt(&last[0], failed(t)).await.unwrap();
    assert_eq!(
        (outcome.status, outcome.next_attempt_at),
        (DeliveryStatus::Dead, None)
    );
    let later = t + TimeDelta::days(30);
    assert!(h
        .store
        .claim_deliveries(later, lease(later), 10)
        .await
        .unwrap()
        .is_empty());
    let attempts = h.store.list_attempts(&mine, e.id, 100).await.unwrap();
    let numbers: Vec<i64> = attempts.iter().map(|a| a.attempt).collect();
    assert_eq!(numbers, (1..=8).rev().collect::<Vec<_>>());
    assert!(attempts
        .iter()
        .all(|a| a.status_code == Some(503) && !a.succeeded));
    assert_eq!(
        h.store.message_deliveries(&mine, m.id).await.unwrap(),
        vec![(e.id, DeliveryStatus::Dead, 8)]
    );
}

async fn concurrent_claims_never_hand_out_one_delivery_twice(b: Backend) {
    let h = harness_with(b, 16).await;
    let mine = tenant();
    endpoint(&h.store, &mine, &[EventType::SafetyFlagged]).await;
    endpoint(&h.store, &mine, &[EventType::SafetyFlagged]).await;
    for _ in 0..30 {
        flagged(&h.store, &mine).await;
    }
    let t = now() + TimeDelta::seconds(1);
    let store = h.store.clone();
    let claims = race_n(12, move |_| {
        let store = store.clone();
        async move {
            store
                .claim_deliveries(t, t + TimeDelta::minutes(1), 7)
                .await
                .unwrap()
        }
    })
    .await;
    let keys: Vec<_> = claims
        .iter()
        .flatten()
        .map(|d| (d.message.id, d.endpoint_id))
        .collect();
    let distinct: HashSet<_> = keys.iter().collect();
    assert_eq!(keys.len(), 60, "every delivery claimed");
    assert_eq!(distinct.len(), 60, "none claimed twice");
}

async fn an_attempt_is_recorded_once_even_if_two_workers_report_it(b: Backend) {
    let h = harness(b).await;
    let mine = tenant();
    let e = endpoint(&h.store, &mine, &[EventType::SafetyFlagged]).await;
    flagged(&h.store, &mine).await;
    let t = now() + TimeDelta::seconds(1);
    let d = h.store.claim_deliveries(t, t, 1).await.unwrap().remove(0);
    // The lease ran out at `t`: a second node claims the same attempt.
    let again = h
        .store
        .claim_deliveries(t, t + TimeDelta::minutes(1), 1)
        .await
        .unwrap();
    assert_eq!(again[0].attempt, d.attempt);
    assert!(
        h.store
            .record_attempt(&d, succeeded(t))
            .await
            .unwrap()
            .recorded
    );
    let late = h.store.record_attempt(&again[0], failed(t)).await.unwrap();
    assert!(!late.recorded);
    let attempts = h.store.list_attempts(&mine, e.id, 10).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert!(attempts[0].succeeded);
}

async fn an_endpoint_failing_for_five_days_is_disabled(b: Backend) {
    let h = harness(b).await;
    let mine = tenant();
    let e = endpoint(&h.store, &mine, &[EventType::SafetyFlagged]).await;
    let t0 = now() + TimeDelta::seconds(1);
    let fail_all_due = |at| {
        let store = h.store.clone();
        async move {
            let due = store
                .claim_deliveries(at, at + TimeDelta::minutes(1), 50)
                .await
                .unwrap();
            assert!(!due.is_empty());
            let mut disabled = false;
            for d in &due {
                disabled |= store
                    .record_attempt(d, failed(at))
                    .await
                    .unwrap()
                    .endpoint_disabled;
            }
            disabled
        }
    };
    flagged(&h.store, &mine).await;
    assert!(!fail_all_due(t0).await);
    let since = h
        .store
        .get_endpoint(&mine, e.id)
        .await
        .unwrap()
        .failing_since;
    assert_eq!(since, Some(t0));
    flagged(&h.store, &mine).await;
    assert!(!fail_all_due(t0 + DISABLE_AFTER - TimeDelta::seconds(1)).await);
    flagged(&h.store, &mine).await;
    assert!(fail_all_due(t0 + DISABLE_AFTER).await);
    let off = h.store.get_endpoint(&mine, e.id).await.unwrap();
    assert!(!off.enabled);
    assert_eq!(off.disabled_reason.as_deref(), Some("failing"));
    flagged(&h.store, &mine).await;
    let much_later = t0 + TimeDelta::days(10);
    let due = h
        .store
        .claim_deliveries(much_later, much_later, 50)
        .await
        .unwrap();
    assert!(due.is_empty(), "a disabled endpoint gets nothing");
    let on = EndpointUpdate {
        enabled: Some(true),
        ..Default::default()
    };
    let on = h
        .store
        .update_endpoint(&mine, e.id, on, now())
        .await
        .unwrap();
    assert!(on.enabled && on.failing_since.is_none());
}
