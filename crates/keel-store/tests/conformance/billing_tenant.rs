//! Tenant counters: one allowance shared exactly by every user of a tenant, recounted
//! and repaired from the ledger like a user's own.

use keel_core::ids::UserId;
use keel_store::{
    Backend, CommitOutcome, CounterKey, CounterMismatch, NewUser, ReserveOutcome, TenantScope,
};

use crate::billing_fixtures::{counter, day, gate, raw_sql, reservation, reserved, usage};
use crate::fixtures::{self, now, race_n};
use crate::{harness, harness_with};

/// The tenant-wide monthly `jobs` counter.
fn shared() -> CounterKey {
    CounterKey::tenant("jobs", "month:2026-11")
}

/// A tenant with `n` users, all made through the identity store.
async fn team(store: &keel_store::DynStore, n: usize) -> (TenantScope, Vec<UserId>) {
    let (scope, first) = fixtures::user(store).await;
    let mut users = vec![first.id];
    for _ in 1..n {
        let new = NewUser {
            tenant_id: first.tenant_id,
            ..fixtures::new_user()
        };
        let joined = store.create_user(new).await.unwrap();
        assert_eq!(joined.tenant_id, first.tenant_id);
        users.push(joined.id);
    }
    (scope, users)
}

async fn racing_users_of_a_tenant_get_exactly_the_tenant_limit_in_total(backend: Backend) {
    const LIMIT: i64 = 120;
    let h = harness_with(backend, 16).await;
    let (scope, users) = team(&h.store, 3).await;
    let tenant_gate = gate(shared(), LIMIT, 1);
    // Each user's own daily limit alone would allow far more.
    let own_gate = gate(day(), 1_000, 1);
    for user in &users {
        let first = reservation(*user, 1, vec![own_gate.clone(), tenant_gate.clone()]);
        reserved(&h.store, &scope, first).await;
    }
    let results = race_n(24, |i| {
        let (store, user) = (h.store.clone(), users[i % users.len()]);
        let gates = vec![own_gate.clone(), tenant_gate.clone()];
        async move {
            let mut granted = 0;
            loop {
                let new = reservation(user, 1, gates.clone());
                match store.reserve(&scope, new).await.unwrap() {
                    ReserveOutcome::Reserved(_) => granted += 1,
                    ReserveOutcome::Refused { gate, used } => return (granted, gate, used),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    })
    .await;
    let raced: i64 = results.iter().map(|(n, _, _)| n).sum();
    assert_eq!(raced + 3, LIMIT);
    for (_, refused_by, used) in &results {
        assert_eq!((refused_by, *used), (&tenant_gate, LIMIT));
    }
    let mut own_total = 0;
    for user in &users {
        assert_eq!(
            counter(&h.store, &scope, *user, &shared()).await,
            (0, LIMIT)
        );
        let (committed, reserved) = counter(&h.store, &scope, *user, &day()).await;
        own_total += committed + reserved;
    }
    assert_eq!(own_total, LIMIT);

    // Another tenant's users have their own tenant counter.
    let (other, stranger) = fixtures::user(&h.store).await;
    let theirs = reservation(stranger.id, 5, vec![gate(shared(), LIMIT, 5)]);
    reserved(&h.store, &other, theirs).await;
    assert_eq!(
        counter(&h.store, &other, stranger.id, &shared()).await,
        (0, 5)
    );
    assert_eq!(
        counter(&h.store, &scope, users[0], &shared()).await,
        (0, LIMIT)
    );
    assert_eq!(h.store.verify_counters(false).await.unwrap(), vec![]);
}

async fn verify_rebuilds_a_corrupted_tenant_counter_from_every_users_entries(backend: Backend) {
    let h = harness(backend).await;
    let (scope, users) = team(&h.store, 2).await;
    let (a, b) = (users[0], users[1]);
    let held = reserved(
        &h.store,
        &scope,
        reservation(a, 3, vec![gate(shared(), 50, 3)]),
    )
    .await;
    let settled = reserved(
        &h.store,
        &scope,
        reservation(b, 4, vec![gate(shared(), 50, 4)]),
    )
    .await;
    let done = h
        .store
        .commit(&scope, settled.id, usage(b, 4, vec![]), false, now());
    let entry = match done.await.unwrap() {
        CommitOutcome::Committed(entry) => entry,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(entry.user_id, b);
    assert_eq!(entry.counters, vec![shared()]);
    let direct = usage(a, 6, vec![shared(), day()]);
    h.store.record_usage(&scope, vec![direct]).await.unwrap();
    assert_eq!(counter(&h.store, &scope, a, &shared()).await, (10, 3));
    assert_eq!(counter(&h.store, &scope, a, &day()).await, (6, 0));
    assert_eq!(counter(&h.store, &scope, b, &day()).await, (0, 0));
    assert_eq!(h.store.verify_counters(false).await.unwrap(), vec![]);

    let tenant = scope.tenant().to_string();
    raw_sql(
        &h,
        &format!(
            "UPDATE quota_counters SET committed = 1, reserved = 40
             WHERE tenant_id = '{tenant}' AND owner = 'tenant'"
        ),
    )
    .await;
    let found = vec![CounterMismatch {
        tenant_id: tenant,
        user_id: None,
        key: shared(),
        stored: (1, 40),
        expected: (10, 3),
    }];
    assert_eq!(h.store.verify_counters(false).await.unwrap(), found);
    assert_eq!(h.store.verify_counters(true).await.unwrap(), found);
    assert_eq!(counter(&h.store, &scope, b, &shared()).await, (10, 3));
    assert_eq!(h.store.verify_counters(false).await.unwrap(), vec![]);
    // The repaired counter keeps gating the whole tenant: 37 left of 50.
    h.store.release(&scope, held.id, now()).await.unwrap();
    let big = reservation(b, 41, vec![gate(shared(), 50, 41)]);
    let refused = h.store.reserve(&scope, big).await.unwrap();
    assert!(
        matches!(refused, ReserveOutcome::Refused { used: 10, .. }),
        "{refused:?}"
    );
    reserved(
        &h.store,
        &scope,
        reservation(a, 40, vec![gate(shared(), 50, 40)]),
    )
    .await;
}

on_both_backends!(
    racing_users_of_a_tenant_get_exactly_the_tenant_limit_in_total,
    verify_rebuilds_a_corrupted_tenant_counter_from_every_users_entries,
);
