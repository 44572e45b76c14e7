//! Replaying a message, and the payment provider customer kept per user.

use chrono::TimeDelta;
use keel_core::outbound::EventType;
use keel_store::{Backend, StoreError};

use crate::fixtures::now;
use crate::harness;
use crate::webhook_fixtures::{endpoint, failed, flagged, succeeded};
use crate::webhook_out::tenant;

on_both_backends!(
    replay_requeues_a_delivered_message_and_restarts_its_schedule,
    billing_customers_are_kept_per_tenant_and_provider,
);

async fn replay_requeues_a_delivered_message_and_restarts_its_schedule(b: Backend) {
    let h = harness(b).await;
    let (mine, other) = (tenant(), tenant());
    let e = endpoint(&h.store, &mine, &[EventType::SafetyFlagged]).await;
    let m = flagged(&h.store, &mine).await;
    let t = now() + TimeDelta::seconds(1);
    let d = h
        .store
        .claim_deliveries(t, t + TimeDelta::minutes(1), 1)
        .await
        .unwrap()
        .remove(0);
    h.store.record_attempt(&d, failed(t)).await.unwrap();
    let d = h
        .store
        .claim_deliveries(t + TimeDelta::seconds(5), t + TimeDelta::minutes(1), 1)
        .await
        .unwrap()
        .remove(0);
    h.store
        .record_attempt(&d, succeeded(t + TimeDelta::seconds(5)))
        .await
        .unwrap();
    assert!(matches!(
        h.store.replay_message(&other, m.id, now()).await,
        Err(StoreError::NotFound)
    ));
    // An endpoint added since the message was written receives the replay too.
    let late = endpoint(&h.store, &mine, &[EventType::SafetyFlagged]).await;
    assert_eq!(h.store.replay_message(&mine, m.id, now()).await.unwrap(), 2);
    let at = t + TimeDelta::seconds(10);
    let mut due = h
        .store
        .claim_deliveries(at, at + TimeDelta::minutes(1), 10)
        .await
        .unwrap();
    due.sort_by_key(|d| d.endpoint_id == late.id);
    assert_eq!(due.len(), 2);
    assert_eq!(
        (due[0].endpoint_id, due[0].attempt, due[0].failures),
        (e.id, 3, 0)
    );
    assert_eq!((due[1].endpoint_id, due[1].attempt), (late.id, 1));
    assert_eq!(due[0].message.id, m.id);
}

async fn billing_customers_are_kept_per_tenant_and_provider(b: Backend) {
    let h = harness(b).await;
    let (mine, other) = (tenant(), tenant());
    let user = keel_core::ids::UserId::new();
    assert_eq!(
        h.store
            .billing_customer(&mine, user, "stripe")
            .await
            .unwrap(),
        None
    );
    h.store
        .put_billing_customer(&mine, user, "stripe", "cus_1")
        .await
        .unwrap();
    h.store
        .put_billing_customer(&mine, user, "stripe", "cus_2")
        .await
        .unwrap();
    assert_eq!(
        h.store
            .billing_customer(&mine, user, "stripe")
            .await
            .unwrap()
            .as_deref(),
        Some("cus_2")
    );
    assert_eq!(
        h.store
            .billing_customer(&other, user, "stripe")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        h.store
            .billing_customer(&mine, user, "paddle")
            .await
            .unwrap(),
        None
    );
}
