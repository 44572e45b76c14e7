//! Prepaid balances, their adjustments, the `$spend` gate and subscriptions.

use chrono::SubsecRound;
use keel_core::ids::UserId;
use keel_store::{
    Backend, CommitOutcome, NewLedgerEntry, NewReservation, ReserveOutcome, StoreError,
    Subscription,
};

use crate::billing_fixtures::{counter, day, gate, reservation, reserved, spend, usage};
use crate::fixtures::{self, hours, now, race, CALLERS};
use crate::{harness, harness_with};

async fn a_prepaid_reservation_holds_money_and_its_commit_takes_the_actual_cost(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let topped = h
        .store
        .adjust_balance(&scope, user.id, 1_000_000, "topup-1");
    assert_eq!(topped.await.unwrap(), 1_000_000);
    let new = NewReservation {
        balance_micros: 600_000,
        ..reservation(user.id, 1, vec![gate(day(), 100, 1)])
    };
    let r = reserved(&h.store, &scope, new).await;
    assert_eq!(
        h.store.balance(&scope, user.id).await.unwrap(),
        (1_000_000, 600_000)
    );

    let more = NewReservation {
        balance_micros: 500_000,
        ..reservation(user.id, 1, vec![gate(day(), 100, 1)])
    };
    let short = h.store.reserve(&scope, more).await.unwrap();
    assert_eq!(
        short,
        ReserveOutcome::InsufficientBalance { available: 400_000 }
    );
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (0, 1));
    assert_eq!(
        h.store.balance(&scope, user.id).await.unwrap(),
        (1_000_000, 600_000)
    );

    let cost = NewLedgerEntry {
        cost_micros: 250_000,
        balance_micros: 250_000,
        ..usage(user.id, 1, vec![])
    };
    let done = h
        .store
        .commit(&scope, r.id, cost, false, now())
        .await
        .unwrap();
    assert!(matches!(done, CommitOutcome::Committed(_)), "{done:?}");
    assert_eq!(
        h.store.balance(&scope, user.id).await.unwrap(),
        (750_000, 0)
    );
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (1, 0));
}

async fn a_user_without_a_balance_has_nothing_available(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    assert_eq!(h.store.balance(&scope, user.id).await.unwrap(), (0, 0));
    let new = NewReservation {
        balance_micros: 1,
        ..reservation(user.id, 1, vec![gate(day(), 100, 1)])
    };
    let short = h.store.reserve(&scope, new).await.unwrap();
    assert_eq!(short, ReserveOutcome::InsufficientBalance { available: 0 });
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (0, 0));
}

async fn balance_adjustments_replay_per_key_and_never_go_below_the_held_amount(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let add = |delta: i64, key: &'static str| {
        let store = h.store.clone();
        async move { store.adjust_balance(&scope, user.id, delta, key).await }
    };
    assert_eq!(add(500, "a").await.unwrap(), 500);
    assert_eq!(add(500, "a").await.unwrap(), 500);
    assert_eq!(h.store.balance(&scope, user.id).await.unwrap(), (500, 0));
    let reused = add(-100, "a").await;
    assert!(matches!(reused, Err(StoreError::Conflict(_))), "{reused:?}");
    let someone_else = h
        .store
        .adjust_balance(&scope, UserId::new(), 500, "a")
        .await;
    assert!(
        matches!(someone_else, Err(StoreError::Conflict(_))),
        "{someone_else:?}"
    );

    let hold = NewReservation {
        balance_micros: 300,
        ..reservation(user.id, 1, vec![])
    };
    reserved(&h.store, &scope, hold).await;
    let below = add(-300, "b").await;
    assert!(matches!(below, Err(StoreError::Conflict(_))), "{below:?}");
    assert_eq!(h.store.balance(&scope, user.id).await.unwrap(), (500, 300));
    assert_eq!(add(-200, "c").await.unwrap(), 300);
    assert_eq!(add(-200, "c").await.unwrap(), 300);
    assert_eq!(h.store.balance(&scope, user.id).await.unwrap(), (300, 300));
    // The refused key was not spent: it works once the money is there.
    assert_eq!(add(1_000, "d").await.unwrap(), 1_300);
    assert_eq!(add(-300, "b").await.unwrap(), 1_000);
    let nothing = h.store.adjust_balance(&scope, UserId::new(), -1, "e").await;
    assert!(
        matches!(nothing, Err(StoreError::Conflict(_))),
        "{nothing:?}"
    );
}

async fn concurrent_first_uses_of_one_adjustment_key_add_the_money_once(backend: Backend) {
    let h = harness_with(backend, CALLERS as u32).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let results = race(|_| {
        let store = h.store.clone();
        async move {
            store
                .adjust_balance(&scope, user.id, 250, "topup-race")
                .await
        }
    })
    .await;
    assert!(results.iter().all(|r| matches!(r, Ok(250))), "{results:?}");
    assert_eq!(h.store.balance(&scope, user.id).await.unwrap(), (250, 0));
}

async fn a_spend_gate_counts_money_and_refuses_past_its_limit(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let (daily, spent) = (gate(day(), 100, 1), gate(spend(), 1_000, 600));
    let gates = || vec![daily.clone(), spent.clone()];
    let first = reserved(&h.store, &scope, reservation(user.id, 1, gates())).await;
    assert_eq!(counter(&h.store, &scope, user.id, &spend()).await, (0, 600));
    let refused = h
        .store
        .reserve(&scope, reservation(user.id, 1, gates()))
        .await;
    let refusal = ReserveOutcome::Refused {
        gate: spent.clone(),
        used: 600,
    };
    assert_eq!(refused.unwrap(), refusal);
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (0, 1));

    let cost = NewLedgerEntry {
        cost_micros: 250,
        ..usage(user.id, 1, vec![])
    };
    let done = h
        .store
        .commit(&scope, first.id, cost, false, now())
        .await
        .unwrap();
    assert!(matches!(done, CommitOutcome::Committed(_)), "{done:?}");
    assert_eq!(counter(&h.store, &scope, user.id, &spend()).await, (250, 0));
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (1, 0));
    reserved(&h.store, &scope, reservation(user.id, 1, gates())).await;
    assert_eq!(
        counter(&h.store, &scope, user.id, &spend()).await,
        (250, 600)
    );
}

async fn a_subscription_is_created_then_replaced(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    assert_eq!(
        h.store.get_subscription(&scope, user.id).await.unwrap(),
        None
    );
    let start = chrono::Utc::now();
    let sub = Subscription {
        user_id: user.id,
        plan: "pro".into(),
        status: "trialing".into(),
        period_start: start,
        period_end: start + hours(24 * 30),
        source: "manual".into(),
        addons: vec![],
        updated_at: start,
    };
    h.store.put_subscription(&scope, sub.clone()).await.unwrap();
    let exact = Subscription {
        period_start: start.trunc_subsecs(6),
        period_end: sub.period_end.trunc_subsecs(6),
        updated_at: start.trunc_subsecs(6),
        ..sub.clone()
    };
    let stored = h.store.get_subscription(&scope, user.id).await.unwrap();
    assert_eq!(stored, Some(exact.clone()));
    let changed = Subscription {
        plan: "team".into(),
        status: "active".into(),
        source: "stripe".into(),
        addons: vec!["extra_jobs".into(), "priority".into()],
        updated_at: exact.updated_at + hours(1),
        ..exact
    };
    h.store
        .put_subscription(&scope, changed.clone())
        .await
        .unwrap();
    let stored = h.store.get_subscription(&scope, user.id).await.unwrap();
    assert_eq!(stored, Some(changed));
    let (_, other) = fixtures::user(&h.store).await;
    assert_eq!(
        h.store.get_subscription(&scope, other.id).await.unwrap(),
        None
    );
}

on_both_backends!(
    a_prepaid_reservation_holds_money_and_its_commit_takes_the_actual_cost,
    a_user_without_a_balance_has_nothing_available,
    balance_adjustments_replay_per_key_and_never_go_below_the_held_amount,
    concurrent_first_uses_of_one_adjustment_key_add_the_money_once,
    a_spend_gate_counts_money_and_refuses_past_its_limit,
    a_subscription_is_created_then_replaced,
);
