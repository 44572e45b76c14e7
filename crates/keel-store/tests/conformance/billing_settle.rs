//! Ending reservations: commit, release, expiry and the sweeper.

use std::collections::BTreeSet;

use keel_core::ids::ReservationId;
use keel_store::{
    Backend, CommitOutcome, LedgerEntry, NewReservation, ReservationStatus, UsageGroup, UsageRow,
};

use crate::billing_fixtures::{counter, day, gate, reservation, reserved, usage};
use crate::fixtures::{self, hours, now, race_n};
use crate::{harness, harness_with};

async fn committing_moves_reserved_to_committed_and_appends_one_ledger_entry(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let r = reserved(
        &h.store,
        &scope,
        reservation(user.id, 5, vec![gate(day(), 10, 5)]),
    )
    .await;
    let entry = usage(user.id, 3, vec![]);
    let at = now();
    let done = h.store.commit(&scope, r.id, entry.clone(), false, at).await;
    let CommitOutcome::Committed(settled) = done.unwrap() else {
        panic!("not committed");
    };
    assert_eq!(
        settled,
        LedgerEntry {
            id: settled.id,
            tenant_id: user.tenant_id.to_string(),
            user_id: user.id,
            meter: "jobs".into(),
            amount: 3,
            overage: 0,
            cost_micros: 0,
            idempotency_key: entry.idempotency_key.clone(),
            source: entry.source.clone(),
            reservation_id: Some(r.id),
            counters: vec![day()],
            created_at: at,
        }
    );
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (3, 0));
    let stored = h.store.get_reservation(&scope, r.id).await.unwrap();
    assert_eq!(stored.status, ReservationStatus::Committed);
    assert_eq!(stored.committed_amount, Some(3));
    assert_eq!(stored.settled_at, Some(at));

    let again = h.store.commit(&scope, r.id, entry.clone(), false, now());
    assert_eq!(again.await.unwrap(), CommitOutcome::Replayed(settled));
    let other = usage(user.id, 4, vec![]);
    let other = h.store.commit(&scope, r.id, other, false, now()).await;
    let not_active = CommitOutcome::NotActive(ReservationStatus::Committed);
    assert_eq!(other.unwrap(), not_active);
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (3, 0));
    let (from, to) = (at - hours(1), at + hours(1));
    let ledger = h.store.usage(&scope, user.id, from, to, UsageGroup::Meter);
    let one_entry = UsageRow {
        group: "jobs".into(),
        meter: "jobs".into(),
        amount: 3,
        cost_micros: 0,
        entries: 1,
    };
    assert_eq!(ledger.await.unwrap(), vec![one_entry]);
}

async fn committing_above_the_reservation_is_refused_unless_overage_is_allowed(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let r = reserved(
        &h.store,
        &scope,
        reservation(user.id, 5, vec![gate(day(), 100, 5)]),
    )
    .await;
    let above = usage(user.id, 7, vec![]);
    let refused = h
        .store
        .commit(&scope, r.id, above.clone(), false, now())
        .await;
    assert_eq!(
        refused.unwrap(),
        CommitOutcome::OverReservation { reserved: 5 }
    );
    assert_eq!(h.store.get_reservation(&scope, r.id).await.unwrap(), r);
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (0, 5));

    let allowed = h.store.commit(&scope, r.id, above, true, now()).await;
    let CommitOutcome::Committed(settled) = allowed.unwrap() else {
        panic!("not committed");
    };
    assert_eq!((settled.amount, settled.overage), (7, 2));
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (7, 0));
}

async fn releasing_returns_the_hold_and_a_later_commit_is_not_active(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let r = reserved(
        &h.store,
        &scope,
        reservation(user.id, 4, vec![gate(day(), 10, 4)]),
    )
    .await;
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (0, 4));
    let at = now();
    let released = h.store.release(&scope, r.id, at).await.unwrap();
    assert_eq!(released, ReservationStatus::Active);
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (0, 0));
    let stored = h.store.get_reservation(&scope, r.id).await.unwrap();
    assert_eq!(
        (stored.status, stored.settled_at),
        (ReservationStatus::Released, Some(at))
    );

    let twice = h.store.release(&scope, r.id, now()).await.unwrap();
    assert_eq!(twice, ReservationStatus::Released);
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (0, 0));
    let late = h
        .store
        .commit(&scope, r.id, usage(user.id, 4, vec![]), false, now());
    let not_active = CommitOutcome::NotActive(ReservationStatus::Released);
    assert_eq!(late.await.unwrap(), not_active);
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (0, 0));
}

async fn an_expired_reservation_cannot_be_committed(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let r = reserved(
        &h.store,
        &scope,
        reservation(user.id, 4, vec![gate(day(), 10, 4)]),
    )
    .await;
    let after_expiry = r.expires_at + hours(1);
    let late = h
        .store
        .commit(&scope, r.id, usage(user.id, 4, vec![]), false, after_expiry);
    let expired = CommitOutcome::NotActive(ReservationStatus::Expired);
    assert_eq!(late.await.unwrap(), expired);
    // Expired on the spot: the hold is back and the sweeper has nothing left to do.
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (0, 0));
    let stored = h.store.get_reservation(&scope, r.id).await.unwrap();
    assert_eq!(stored.status, ReservationStatus::Expired);
    assert_eq!(stored.settled_at, Some(after_expiry));
    let swept = h
        .store
        .expire_reservations(after_expiry, 100)
        .await
        .unwrap();
    assert_eq!(swept, vec![]);
    let again = h
        .store
        .commit(&scope, r.id, usage(user.id, 4, vec![]), false, now());
    assert_eq!(again.await.unwrap(), expired);
    let release = h.store.release(&scope, r.id, now()).await.unwrap();
    assert_eq!(release, ReservationStatus::Expired);
}

async fn four_concurrent_sweepers_expire_each_reservation_exactly_once(backend: Backend) {
    const DUE: usize = 40;
    let h = harness_with(backend, 8).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let (other_scope, other) = fixtures::user(&h.store).await;
    let soon = now() + hours(1);
    let mut due = BTreeSet::new();
    for i in 0..DUE {
        let (scope, user) = if i % 2 == 0 {
            (scope, user.id)
        } else {
            (other_scope, other.id)
        };
        let new = NewReservation {
            expires_at: soon,
            ..reservation(user, 1, vec![gate(day(), 1_000, 1)])
        };
        due.insert(reserved(&h.store, &scope, new).await.id);
    }
    let later = NewReservation {
        expires_at: now() + hours(10),
        ..reservation(user.id, 2, vec![gate(day(), 1_000, 2)])
    };
    let later = reserved(&h.store, &scope, later).await;
    let sweep_at = now() + hours(2);
    let swept = race_n(4, |_| {
        let store = h.store.clone();
        async move {
            let mut mine = Vec::new();
            loop {
                let batch = store.expire_reservations(sweep_at, 3).await.unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch);
            }
        }
    })
    .await;
    let all: Vec<_> = swept.into_iter().flatten().collect();
    assert_eq!(all.len(), DUE);
    let ids: BTreeSet<ReservationId> = all.iter().map(|r| r.id).collect();
    assert_eq!(ids, due);
    for r in &all {
        assert_eq!(
            (r.status, r.settled_at),
            (ReservationStatus::Expired, Some(sweep_at))
        );
        let scope = keel_store::TenantScope::new(r.tenant_id.parse().unwrap());
        assert_eq!(h.store.get_reservation(&scope, r.id).await.unwrap(), *r);
    }
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (0, 2));
    assert_eq!(
        counter(&h.store, &other_scope, other.id, &day()).await,
        (0, 0)
    );
    assert_eq!(
        h.store.get_reservation(&scope, later.id).await.unwrap(),
        later
    );
    assert_eq!(
        h.store.expire_reservations(sweep_at, 100).await.unwrap(),
        vec![]
    );
}

on_both_backends!(
    committing_moves_reserved_to_committed_and_appends_one_ledger_entry,
    committing_above_the_reservation_is_refused_unless_overage_is_allowed,
    releasing_returns_the_hold_and_a_later_commit_is_not_active,
    an_expired_reservation_cannot_be_committed,
    four_concurrent_sweepers_expire_each_reservation_exactly_once,
);
