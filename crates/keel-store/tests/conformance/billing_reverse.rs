//! Reversing a committed reservation: one compensating entry, counters and balance back,
//! idempotent even when raced, refused for anything never committed.

use keel_core::ids::ReservationId;
use keel_store::{
    Backend, CommitOutcome, LedgerEntry, NewLedgerEntry, NewReservation, ReservationStatus,
    ReverseOutcome, StoreError, UsageGroup,
};

use crate::billing_fixtures::{counter, day, gate, reservation, reserved, spend, usage};
use crate::fixtures::{self, hours, now, race_n};
use crate::{harness, harness_with};

/// A user with a committed reservation of 3 jobs costing 300 000 micros, paid from a
/// balance of 1 000 000: (harness, scope, user, reservation id, settling entry).
async fn committed(
    backend: Backend,
    connections: u32,
) -> (
    crate::Harness,
    keel_store::TenantScope,
    keel_store::UserRecord,
    ReservationId,
    LedgerEntry,
) {
    let h = harness_with(backend, connections).await;
    let (scope, user) = fixtures::user(&h.store).await;
    h.store
        .adjust_balance(&scope, user.id, 1_000_000, "topup-1")
        .await
        .unwrap();
    let new = NewReservation {
        balance_micros: 500_000,
        ..reservation(
            user.id,
            5,
            vec![gate(day(), 10, 5), gate(spend(), 10_000_000, 500_000)],
        )
    };
    let r = reserved(&h.store, &scope, new).await;
    let entry = NewLedgerEntry {
        cost_micros: 300_000,
        balance_micros: 300_000,
        ..usage(user.id, 3, vec![])
    };
    let done = h.store.commit(&scope, r.id, entry, false, now()).await;
    let CommitOutcome::Committed(settled) = done.unwrap() else {
        panic!("not committed");
    };
    (h, scope, user, r.id, settled)
}

async fn reversing_a_commit_appends_a_negative_entry_and_restores_counters_and_balance(
    backend: Backend,
) {
    let (h, scope, user, id, settled) = committed(backend, 8).await;
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (3, 0));
    assert_eq!(
        counter(&h.store, &scope, user.id, &spend()).await,
        (300_000, 0)
    );
    assert_eq!(
        h.store.balance(&scope, user.id).await.unwrap(),
        (700_000, 0)
    );

    let at = now();
    let done = h
        .store
        .reverse_commit(&scope, id, "infra_failure", at)
        .await;
    let ReverseOutcome::Reversed(rev) = done.unwrap() else {
        panic!("not reversed");
    };
    assert_eq!(
        (rev.amount, rev.overage, rev.cost_micros),
        (-3, 0, -300_000)
    );
    assert_eq!((rev.user_id, rev.meter.as_str()), (user.id, "jobs"));
    assert_eq!(rev.counters, settled.counters);
    assert_eq!(rev.reservation_id, None);
    assert_eq!(rev.idempotency_key, format!("reversal:{id}"));
    assert_eq!(rev.source["reverses"], settled.id);
    assert_eq!(rev.source["reservation_id"], id.to_string());
    assert_eq!(rev.source["reason"], "infra_failure");
    assert_eq!(rev.created_at, at);
    assert!(rev.id > settled.id);

    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (0, 0));
    assert_eq!(counter(&h.store, &scope, user.id, &spend()).await, (0, 0));
    assert_eq!(
        h.store.balance(&scope, user.id).await.unwrap(),
        (1_000_000, 0)
    );
    let stored = h.store.get_reservation(&scope, id).await.unwrap();
    assert_eq!(stored.status, ReservationStatus::Committed);
    let (from, to) = (at - hours(1), at + hours(1));
    let rows = h.store.usage(&scope, user.id, from, to, UsageGroup::Meter);
    let rows = rows.await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].amount, rows[0].cost_micros, rows[0].entries),
        (0, 0, 2)
    );
    // The recount from the ledger agrees with the counters.
    assert_eq!(h.store.verify_counters(false).await.unwrap(), vec![]);

    // Reversing again changes nothing and answers the first reversal.
    let again = h.store.reverse_commit(&scope, id, "other", now()).await;
    assert_eq!(again.unwrap(), ReverseOutcome::Replayed(rev));
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (0, 0));
    assert_eq!(
        h.store.balance(&scope, user.id).await.unwrap(),
        (1_000_000, 0)
    );
    assert_eq!(h.store.verify_counters(false).await.unwrap(), vec![]);
}

async fn only_a_committed_reservation_can_be_reversed(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let active = reserved(
        &h.store,
        &scope,
        reservation(user.id, 4, vec![gate(day(), 10, 4)]),
    )
    .await;
    let refused = h.store.reverse_commit(&scope, active.id, "x", now()).await;
    let not = ReverseOutcome::NotCommitted(ReservationStatus::Active);
    assert_eq!(refused.unwrap(), not);
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (0, 4));

    h.store.release(&scope, active.id, now()).await.unwrap();
    let refused = h.store.reverse_commit(&scope, active.id, "x", now()).await;
    let not = ReverseOutcome::NotCommitted(ReservationStatus::Released);
    assert_eq!(refused.unwrap(), not);
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (0, 0));

    let unknown = h
        .store
        .reverse_commit(&scope, ReservationId::new(), "x", now())
        .await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");

    // Another tenant's committed reservation is unknown here.
    let (h2_scope, _) = fixtures::user(&h.store).await;
    let mine = reserved(
        &h.store,
        &scope,
        reservation(user.id, 1, vec![gate(day(), 10, 1)]),
    )
    .await;
    let done = h
        .store
        .commit(&scope, mine.id, usage(user.id, 1, vec![]), false, now());
    assert!(matches!(done.await.unwrap(), CommitOutcome::Committed(_)));
    let foreign = h.store.reverse_commit(&h2_scope, mine.id, "x", now()).await;
    assert!(matches!(foreign, Err(StoreError::NotFound)), "{foreign:?}");
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (1, 0));
}

async fn concurrent_reversals_append_exactly_one_compensating_entry(backend: Backend) {
    const CALLERS: usize = 8;
    let (h, scope, user, id, _) = committed(backend, CALLERS as u32).await;
    let outcomes = race_n(CALLERS, |i| {
        let store = h.store.clone();
        async move {
            store
                .reverse_commit(&scope, id, &format!("race-{i}"), now())
                .await
                .unwrap()
        }
    })
    .await;
    let reversed: Vec<&LedgerEntry> = outcomes
        .iter()
        .filter_map(|o| match o {
            ReverseOutcome::Reversed(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(reversed.len(), 1, "{outcomes:?}");
    let first = reversed[0].clone();
    for o in &outcomes {
        assert!(
            *o == ReverseOutcome::Reversed(first.clone())
                || *o == ReverseOutcome::Replayed(first.clone()),
            "{o:?}"
        );
    }
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (0, 0));
    assert_eq!(counter(&h.store, &scope, user.id, &spend()).await, (0, 0));
    assert_eq!(
        h.store.balance(&scope, user.id).await.unwrap(),
        (1_000_000, 0)
    );
    let at = now();
    let rows = h
        .store
        .usage(
            &scope,
            user.id,
            at - hours(1),
            at + hours(1),
            UsageGroup::Meter,
        )
        .await
        .unwrap();
    assert_eq!((rows[0].amount, rows[0].entries), (0, 2));
    assert_eq!(h.store.verify_counters(false).await.unwrap(), vec![]);
}

on_both_backends!(
    reversing_a_commit_appends_a_negative_entry_and_restores_counters_and_balance,
    only_a_committed_reservation_can_be_reversed,
    concurrent_reversals_append_exactly_one_compensating_entry,
);
