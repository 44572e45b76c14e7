//! Reservations: gates that admit exactly their limit, idempotency, tenant isolation.

use chrono::SubsecRound;
use keel_core::ids::{ReservationId, TenantId};
use keel_store::{
    Backend, Gate, NewReservation, ReservationRecord, ReservationStatus, ReserveOutcome,
    StoreError, TenantScope, UsageGroup,
};

use crate::billing_fixtures::{counter, day, gate, month, reservation, reserved, usage};
use crate::fixtures::{self, hash, hours, now, race, race_n, CALLERS};
use crate::{harness, harness_with};

/// How many tasks race for one counter, and the pool they share.
const RACERS: usize = 64;
const RACE_CONNECTIONS: u32 = 16;

/// `RACERS` tasks each reserve `amount` in a loop until refused; returns the units
/// granted in total and every refusal's gate and reported usage.
async fn reserve_until_refused(backend: Backend, amount: i64) -> (i64, Vec<(Gate, i64)>, i64) {
    let h = harness_with(backend, RACE_CONNECTIONS).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let limit = gate(day(), 1_000, amount);
    let results = race_n(RACERS, |_| {
        let (store, limit) = (h.store.clone(), limit.clone());
        async move {
            let mut granted = 0;
            loop {
                let new = reservation(user.id, amount, vec![limit.clone()]);
                match store.reserve(&scope, new).await.unwrap() {
                    ReserveOutcome::Reserved(_) => granted += amount,
                    ReserveOutcome::Refused { gate, used } => return (granted, (gate, used)),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    })
    .await;
    let total = results.iter().map(|(granted, _)| granted).sum();
    let refusals: Vec<_> = results.into_iter().map(|(_, refusal)| refusal).collect();
    for (refused_by, _) in &refusals {
        assert_eq!(refused_by, &limit);
    }
    let (committed, reserved) = counter(&h.store, &scope, user.id, &day()).await;
    assert_eq!(committed, 0);
    (total, refusals, reserved)
}

async fn a_limit_of_1000_admits_exactly_1000_units_among_64_racing_callers(backend: Backend) {
    let (total, refusals, reserved) = reserve_until_refused(backend, 1).await;
    assert_eq!(total, 1_000);
    assert_eq!(reserved, 1_000);
    assert_eq!(refusals.len(), RACERS);
    assert!(
        refusals.iter().all(|(_, used)| *used == 1_000),
        "{refusals:?}"
    );
}

async fn a_limit_of_1000_admits_exactly_142_reservations_of_7(backend: Backend) {
    let (total, refusals, reserved) = reserve_until_refused(backend, 7).await;
    assert_eq!(total, 142 * 7);
    assert_eq!(reserved, 994);
    assert_eq!(refusals.len(), RACERS);
    assert!(
        refusals.iter().all(|(_, used)| *used == 994),
        "{refusals:?}"
    );
}

async fn a_refusing_second_gate_leaves_the_first_unchanged(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    reserved(
        &h.store,
        &scope,
        reservation(user.id, 5, vec![gate(month(), 5, 5)]),
    )
    .await;
    let (daily, monthly) = (gate(day(), 10, 1), gate(month(), 5, 1));
    // Listed month first: the store still takes the day gate first (key order).
    let new = reservation(user.id, 1, vec![monthly.clone(), daily]);
    let id = new.id;
    let outcome = h.store.reserve(&scope, new).await.unwrap();
    assert_eq!(
        outcome,
        ReserveOutcome::Refused {
            gate: monthly,
            used: 5
        }
    );
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (0, 0));
    assert_eq!(counter(&h.store, &scope, user.id, &month()).await, (0, 5));
    let got = h.store.get_reservation(&scope, id).await;
    assert!(matches!(got, Err(StoreError::NotFound)), "{got:?}");
}

async fn a_reservation_reads_back_exactly_and_its_key_replays_it(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let new = reservation(user.id, 3, vec![gate(day(), 10, 3), gate(month(), 100, 3)]);
    let before = now();
    let first = reserved(&h.store, &scope, new.clone()).await;
    assert_eq!(
        first,
        ReservationRecord {
            id: new.id,
            tenant_id: user.tenant_id.to_string(),
            user_id: user.id,
            meter: "jobs".into(),
            amount: 3,
            balance_micros: 0,
            idempotency_key: new.idempotency_key.clone(),
            status: ReservationStatus::Active,
            expires_at: new.expires_at.trunc_subsecs(6),
            reason: new.reason.clone(),
            snapshot: new.snapshot.clone(),
            gates: new.gates.clone(),
            committed_amount: None,
            created_at: first.created_at,
            settled_at: None,
        }
    );
    assert!(first.created_at >= before);
    assert_eq!(
        h.store.get_reservation(&scope, new.id).await.unwrap(),
        first
    );
    let again = NewReservation {
        id: ReservationId::new(),
        ..new.clone()
    };
    let replayed = h.store.reserve(&scope, again).await.unwrap();
    assert_eq!(replayed, ReserveOutcome::Replayed(first.clone()));
    let reused = NewReservation {
        id: ReservationId::new(),
        request_hash: hash(),
        ..new
    };
    let reused = h.store.reserve(&scope, reused).await.unwrap();
    assert_eq!(reused, ReserveOutcome::KeyReused);
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (0, 3));
    assert_eq!(counter(&h.store, &scope, user.id, &month()).await, (0, 3));
}

async fn concurrent_first_uses_of_one_key_make_one_reservation(backend: Backend) {
    let h = harness_with(backend, CALLERS as u32).await;
    let (scope, user) = fixtures::user(&h.store).await;
    // Room for exactly one: the losers are refused by the gate, yet must see a replay.
    // Room for all: the losers reach the insert, and its unique key makes them replays.
    for (key, limit) in [(day(), 2), (month(), 1_000)] {
        let new = reservation(user.id, 2, vec![gate(key.clone(), limit, 2)]);
        let results = race(|_| {
            let store = h.store.clone();
            let new = NewReservation {
                id: ReservationId::new(),
                ..new.clone()
            };
            async move { store.reserve(&scope, new).await.unwrap() }
        })
        .await;
        let winners: Vec<&ReservationRecord> = results
            .iter()
            .filter_map(|r| match r {
                ReserveOutcome::Reserved(record) => Some(record),
                _ => None,
            })
            .collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        let replay = ReserveOutcome::Replayed(winners[0].clone());
        let replays = results.iter().filter(|r| **r == replay).count();
        assert_eq!(replays, CALLERS - 1, "{results:?}");
        assert_eq!(counter(&h.store, &scope, user.id, &key).await, (0, 2));
    }
}

async fn another_tenants_reservation_is_not_found(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let (other, _) = fixtures::user(&h.store).await;
    let new = reservation(user.id, 2, vec![gate(day(), 10, 2)]);
    let live = reserved(&h.store, &scope, new.clone()).await;
    for wrong in [other, TenantScope::new(TenantId::new())] {
        let got = h.store.get_reservation(&wrong, live.id).await;
        assert!(matches!(got, Err(StoreError::NotFound)), "{got:?}");
        let entry = usage(user.id, 2, vec![]);
        let commit = h.store.commit(&wrong, live.id, entry, true, now()).await;
        assert!(matches!(commit, Err(StoreError::NotFound)), "{commit:?}");
        let release = h.store.release(&wrong, live.id, now()).await;
        assert!(matches!(release, Err(StoreError::NotFound)), "{release:?}");
        assert_eq!(counter(&h.store, &wrong, user.id, &day()).await, (0, 0));
        assert_eq!(h.store.balance(&wrong, user.id).await.unwrap(), (0, 0));
        let (from, to) = (now() - hours(24), now() + hours(24));
        let seen = h.store.usage(&wrong, user.id, from, to, UsageGroup::Meter);
        assert_eq!(seen.await.unwrap(), vec![]);
        let sub = h.store.get_subscription(&wrong, user.id).await.unwrap();
        assert_eq!(sub, None);
        // Idempotency keys are per tenant: the same key elsewhere is a new reservation.
        let elsewhere = NewReservation {
            id: ReservationId::new(),
            ..new.clone()
        };
        reserved(&h.store, &wrong, elsewhere).await;
    }
    assert_eq!(
        h.store.get_reservation(&scope, live.id).await.unwrap(),
        live
    );
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (0, 2));
}

on_both_backends!(
    a_limit_of_1000_admits_exactly_1000_units_among_64_racing_callers,
    a_limit_of_1000_admits_exactly_142_reservations_of_7,
    a_refusing_second_gate_leaves_the_first_unchanged,
    a_reservation_reads_back_exactly_and_its_key_replays_it,
    concurrent_first_uses_of_one_key_make_one_reservation,
    another_tenants_reservation_is_not_found,
);
