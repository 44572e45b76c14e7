//! Sliding windows: a gate on a `slide:` bucket sums every bucket its window counts, so
//! usage in an older bucket holds room until that bucket leaves, and racing callers get
//! exactly the limit across bucket rows. Times are chosen, never slept through.

use chrono::{DateTime, Duration, Utc};
use keel_core::billing::Sliding;
use keel_store::{Backend, CommitOutcome, CounterKey, Gate, ReserveOutcome};

use crate::billing_fixtures::{at, counter, gate, reservation, reserved, usage};
use crate::fixtures::{self, race_n};
use crate::{harness, harness_with};

/// Ten minutes: buckets of 10 s, 61 counted.
const LENGTH: i64 = 600;

fn bucket(when: DateTime<Utc>) -> Sliding {
    Sliding::at(LENGTH, when)
}

fn slide(when: DateTime<Utc>) -> CounterKey {
    CounterKey::user("jobs", bucket(when).id())
}

fn slide_gate(when: DateTime<Utc>, limit: i64, amount: i64) -> Gate {
    Gate {
        code: "period_limit_reached".into(),
        ..gate(slide(when), limit, amount)
    }
}

async fn usage_in_an_old_bucket_counts_until_the_bucket_leaves(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let t0 = at("2026-11-21T10:00:00Z");
    let first = reserved(
        &h.store,
        &scope,
        reservation(user.id, 3, vec![slide_gate(t0, 5, 3)]),
    )
    .await;
    let done = h
        .store
        .commit(&scope, first.id, usage(user.id, 3, vec![]), false, t0)
        .await;
    assert!(matches!(done.unwrap(), CommitOutcome::Committed(_)));
    // Settling moved the amount within its own bucket.
    assert_eq!(counter(&h.store, &scope, user.id, &slide(t0)).await, (3, 0));

    // Five minutes later the old bucket still counts: 2 fit, a third unit does not.
    let t1 = t0 + Duration::seconds(300);
    let second = reservation(user.id, 2, vec![slide_gate(t1, 5, 2)]);
    reserved(&h.store, &scope, second).await;
    let one_more = slide_gate(t1, 5, 1);
    let over = h
        .store
        .reserve(&scope, reservation(user.id, 1, vec![one_more.clone()]))
        .await
        .unwrap();
    assert_eq!(
        over,
        ReserveOutcome::Refused {
            gate: one_more,
            used: 5
        }
    );
    // A full length later, and up to the moment the first bucket leaves, still full.
    let leaves = bucket(t0).leaves_at(bucket(t0).bucket);
    for when in [
        t0 + Duration::seconds(LENGTH),
        leaves - Duration::seconds(1),
    ] {
        let late = h
            .store
            .reserve(
                &scope,
                reservation(user.id, 1, vec![slide_gate(when, 5, 1)]),
            )
            .await
            .unwrap();
        assert!(
            matches!(late, ReserveOutcome::Refused { used: 5, .. }),
            "{when}: {late:?}"
        );
    }
    // Once it leaves, its 3 units are free again; the 2 from t1 still count.
    let freed = reservation(user.id, 3, vec![slide_gate(leaves, 5, 3)]);
    reserved(&h.store, &scope, freed).await;
    let full = h
        .store
        .reserve(
            &scope,
            reservation(user.id, 1, vec![slide_gate(leaves, 5, 1)]),
        )
        .await
        .unwrap();
    assert!(
        matches!(full, ReserveOutcome::Refused { used: 5, .. }),
        "{full:?}"
    );
    // Another user's window is their own.
    let (their_scope, stranger) = fixtures::user(&h.store).await;
    let theirs = reservation(stranger.id, 5, vec![slide_gate(t1, 5, 5)]);
    reserved(&h.store, &their_scope, theirs).await;
    // Buckets are counters like any other: the ledger and reservations rebuild them.
    assert_eq!(h.store.verify_counters(false).await.unwrap(), vec![]);
}

async fn racing_callers_get_exactly_a_rolling_limit_across_buckets(backend: Backend) {
    const LIMIT: i64 = 50;
    const EARLIER: i64 = 7;
    let h = harness_with(backend, 16).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let now = at("2026-11-21T10:00:00Z");
    // Usage four minutes ago, in another bucket row, takes part of the limit.
    let before = now - Duration::seconds(240);
    let early = reservation(user.id, EARLIER, vec![slide_gate(before, LIMIT, EARLIER)]);
    reserved(&h.store, &scope, early).await;
    let results = race_n(32, |_| {
        let store = h.store.clone();
        async move {
            let mut granted = 0;
            loop {
                let new = reservation(user.id, 1, vec![slide_gate(now, LIMIT, 1)]);
                match store.reserve(&scope, new).await.unwrap() {
                    ReserveOutcome::Reserved(_) => granted += 1,
                    ReserveOutcome::Refused { used, .. } => return (granted, used),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    })
    .await;
    let raced: i64 = results.iter().map(|(n, _)| n).sum();
    assert_eq!(raced, LIMIT - EARLIER);
    assert!(
        results.iter().all(|(_, used)| *used == LIMIT),
        "{results:?}"
    );
    assert_eq!(
        counter(&h.store, &scope, user.id, &slide(now)).await,
        (0, LIMIT - EARLIER)
    );
    assert_eq!(
        counter(&h.store, &scope, user.id, &slide(before)).await,
        (0, EARLIER)
    );
}

on_both_backends!(
    usage_in_an_old_bucket_counts_until_the_bucket_leaves,
    racing_callers_get_exactly_a_rolling_limit_across_buckets,
);
