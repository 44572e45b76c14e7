//! Events the billing store writes to the outbox in the transaction of the change: an
//! expiry, a threshold reached by commits, a subscription change; and nothing when the
//! change rolls back.

use chrono::{TimeDelta, Utc};
use keel_core::ids::UserId;
use keel_core::outbound::EventType;
use keel_store::{
    Backend, CommitOutcome, DeliveryStatus, MessageRecord, ReservationStatus, Subscription,
    TenantScope,
};

use crate::billing_fixtures::{day, gate, raw_sql, reservation, reserved, usage};
use crate::fixtures::{hours, now, race, user};
use crate::webhook_fixtures::endpoint;
use crate::{harness, harness_with, Harness};

on_both_backends!(
    an_expired_reservation_writes_its_message_with_the_expiry,
    a_failed_outbox_write_rolls_the_expiry_back_and_leaves_no_message,
    thresholds_fire_once_at_80_and_100_percent_under_parallel_commits,
    a_subscription_change_writes_one_message_and_an_unchanged_write_none,
    recorded_usage_fires_each_threshold_once_and_a_replay_none,
);

async fn messages(h: &Harness, scope: &TenantScope, t: EventType) -> Vec<MessageRecord> {
    h.store.list_messages(scope, Some(t), 500).await.unwrap()
}

async fn an_expired_reservation_writes_its_message_with_the_expiry(b: Backend) {
    let h = harness(b).await;
    let (scope, u) = user(&h.store).await;
    let e = endpoint(&h.store, &scope, &[EventType::ReservationExpired]).await;
    let r = reserved(
        &h.store,
        &scope,
        reservation(u.id, 2, vec![gate(day(), 10, 2)]),
    )
    .await;
    assert!(messages(&h, &scope, EventType::ReservationExpired)
        .await
        .is_empty());
    let expired = h
        .store
        .expire_reservations(Utc::now() + hours(2), 100)
        .await
        .unwrap();
    assert!(expired.iter().any(|x| x.id == r.id));
    let got = messages(&h, &scope, EventType::ReservationExpired).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload["reservation_id"], r.id.to_string());
    assert_eq!(got[0].payload["user_id"], u.id.to_string());
    assert_eq!(got[0].payload["amount"], 2);
    assert_eq!(
        h.store.message_deliveries(&scope, got[0].id).await.unwrap(),
        vec![(e.id, DeliveryStatus::Pending, 0)]
    );
    // A second sweep expires nothing and writes nothing.
    h.store
        .expire_reservations(Utc::now() + hours(3), 100)
        .await
        .unwrap();
    assert_eq!(
        messages(&h, &scope, EventType::ReservationExpired)
            .await
            .len(),
        1
    );
}

pub(crate) async fn refuse_deliveries(h: &Harness) {
    match h.store.backend() {
        Backend::Sqlite => {
            raw_sql(
                h,
                "CREATE TRIGGER refuse BEFORE INSERT ON webhook_deliveries \
                        BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
            )
            .await;
        }
        Backend::Postgres => {
            raw_sql(
                h,
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
                        $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
            )
            .await;
            raw_sql(
                h,
                "CREATE TRIGGER refuse BEFORE INSERT ON webhook_deliveries \
                        FOR EACH ROW EXECUTE FUNCTION refuse()",
            )
            .await;
        }
    }
}

async fn a_failed_outbox_write_rolls_the_expiry_back_and_leaves_no_message(b: Backend) {
    let h = harness(b).await;
    let (scope, u) = user(&h.store).await;
    endpoint(&h.store, &scope, &[EventType::ReservationExpired]).await;
    let r = reserved(
        &h.store,
        &scope,
        reservation(u.id, 2, vec![gate(day(), 10, 2)]),
    )
    .await;
    refuse_deliveries(&h).await;
    // The message row is written, then its delivery fails: the whole change rolls back.
    let swept = h
        .store
        .expire_reservations(Utc::now() + hours(2), 100)
        .await;
    assert!(swept.is_err(), "{swept:?}");
    let still = h.store.get_reservation(&scope, r.id).await.unwrap();
    assert_eq!(still.status, ReservationStatus::Active);
    assert!(messages(&h, &scope, EventType::ReservationExpired)
        .await
        .is_empty());
    // So does a commit whose threshold message cannot be written.
    let threshold = endpoint(&h.store, &scope, &[EventType::QuotaThresholdReached]).await;
    let big = reserved(
        &h.store,
        &scope,
        reservation(u.id, 8, vec![gate(day(), 10, 8)]),
    )
    .await;
    let entry = usage(u.id, 8, vec![]);
    let failed = h.store.commit(&scope, big.id, entry, false, now()).await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(
        h.store
            .get_reservation(&scope, big.id)
            .await
            .unwrap()
            .status,
        ReservationStatus::Active
    );
    assert!(messages(&h, &scope, EventType::QuotaThresholdReached)
        .await
        .is_empty());
    assert!(h
        .store
        .list_attempts(&scope, threshold.id, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn thresholds_fire_once_at_80_and_100_percent_under_parallel_commits(b: Backend) {
    let h = harness_with(b, 40).await;
    let (scope, u) = user(&h.store).await;
    endpoint(&h.store, &scope, &[EventType::QuotaThresholdReached]).await;
    let mut ids = Vec::new();
    for _ in 0..10 {
        let r = reserved(
            &h.store,
            &scope,
            reservation(u.id, 1, vec![gate(day(), 10, 1)]),
        )
        .await;
        ids.push(r.id);
    }
    let ids = std::sync::Arc::new(ids);
    let store = h.store.clone();
    let user_id = u.id;
    let outcomes = race(move |i| {
        let (store, ids) = (store.clone(), ids.clone());
        async move {
            let id = ids[i % 10];
            let entry = keel_store::NewLedgerEntry {
                reservation_id: Some(id),
                idempotency_key: format!("reservation:{id}"),
                ..usage(user_id, 1, vec![])
            };
            store
                .commit(&scope, id, entry, false, Utc::now())
                .await
                .unwrap()
        }
    })
    .await;
    let committed = outcomes
        .iter()
        .filter(|o| matches!(o, CommitOutcome::Committed(_)))
        .count();
    assert_eq!(committed, 10);
    let got = messages(&h, &scope, EventType::QuotaThresholdReached).await;
    let mut percents: Vec<i64> = got
        .iter()
        .map(|m| m.payload["threshold_percent"].as_i64().unwrap())
        .collect();
    percents.sort();
    assert_eq!(percents, vec![80, 100], "{got:?}");
    for m in &got {
        assert_eq!(m.payload["user_id"], user_id.to_string());
        assert_eq!(m.payload["meter"], "jobs");
        assert_eq!(m.payload["window"], "day:2026-11-21");
        assert_eq!(m.payload["limit"], 10);
        assert!(m.payload["used"].as_i64().unwrap() >= 8);
    }
}

fn subscription(user: UserId, plan: &str, status: &str) -> Subscription {
    let start = now();
    Subscription {
        user_id: user,
        plan: plan.into(),
        status: status.into(),
        period_start: start,
        period_end: start + TimeDelta::days(30),
        source: "manual".into(),
        addons: vec![],
        updated_at: start,
    }
}

async fn a_subscription_change_writes_one_message_and_an_unchanged_write_none(b: Backend) {
    let h = harness(b).await;
    let (scope, u) = user(&h.store).await;
    let first = subscription(u.id, "pro", "active");
    h.store
        .put_subscription(&scope, first.clone())
        .await
        .unwrap();
    let got = messages(&h, &scope, EventType::SubscriptionChanged).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload["plan"], "pro");
    assert_eq!(got[0].payload["previous"], serde_json::Value::Null);
    let same = Subscription {
        updated_at: first.updated_at + hours(1),
        ..first.clone()
    };
    h.store.put_subscription(&scope, same).await.unwrap();
    assert_eq!(
        messages(&h, &scope, EventType::SubscriptionChanged)
            .await
            .len(),
        1
    );
    let canceled = Subscription {
        status: "canceled".into(),
        ..first
    };
    h.store.put_subscription(&scope, canceled).await.unwrap();
    let got = messages(&h, &scope, EventType::SubscriptionChanged).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].payload["status"], "canceled");
    assert_eq!(got[0].payload["previous"]["status"], "active");
}

async fn recorded_usage_fires_each_threshold_once_and_a_replay_none(b: Backend) {
    let h = harness(b).await;
    let (scope, u) = user(&h.store).await;
    let watch = || vec![(u.id, vec![gate(day(), 10, 1)])];
    let percents = |got: Vec<MessageRecord>| {
        let mut p: Vec<i64> = got
            .iter()
            .map(|m| m.payload["threshold_percent"].as_i64().unwrap())
            .collect();
        p.sort();
        p
    };
    let seven = usage(u.id, 7, vec![day()]);
    h.store
        .record_usage_watched(&scope, vec![seven], watch())
        .await
        .unwrap();
    assert!(messages(&h, &scope, EventType::QuotaThresholdReached)
        .await
        .is_empty());
    let one = usage(u.id, 1, vec![day()]);
    h.store
        .record_usage_watched(&scope, vec![one.clone()], watch())
        .await
        .unwrap();
    assert_eq!(
        percents(messages(&h, &scope, EventType::QuotaThresholdReached).await),
        vec![80]
    );
    // A replay of the same key adds nothing and sends nothing.
    h.store
        .record_usage_watched(&scope, vec![one], watch())
        .await
        .unwrap();
    h.store
        .record_usage_watched(&scope, vec![usage(u.id, 1, vec![day()])], watch())
        .await
        .unwrap();
    assert_eq!(
        percents(messages(&h, &scope, EventType::QuotaThresholdReached).await),
        vec![80]
    );
    h.store
        .record_usage_watched(&scope, vec![usage(u.id, 5, vec![day()])], watch())
        .await
        .unwrap();
    let got = messages(&h, &scope, EventType::QuotaThresholdReached).await;
    assert_eq!(percents(got.clone()), vec![80, 100]);
    assert_eq!(got[0].payload["used"], 14);
    // Unwatched recording (the plain call) never sends.
    let other = user(&h.store).await;
    h.store
        .record_usage(&other.0, vec![usage(other.1.id, 50, vec![day()])])
        .await
        .unwrap();
    assert!(messages(&h, &other.0, EventType::QuotaThresholdReached)
        .await
        .is_empty());
}
