//! The usage ledger: direct usage records, usage reports and the counter recount.

use keel_store::{
    Backend, CommitOutcome, CounterMismatch, LedgerEntry, NewLedgerEntry, UsageGroup, UsageRow,
};

use crate::billing_fixtures::{
    at, counter, day, gate, raw_sql, reservation, reserved, spend, usage,
};
use crate::fixtures::{self, now};
use crate::harness;

async fn replayed_usage_records_change_no_counter(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    h.store
        .adjust_balance(&scope, user.id, 100, "topup")
        .await
        .unwrap();
    let paid = NewLedgerEntry {
        cost_micros: 30,
        balance_micros: 30,
        ..usage(user.id, 2, vec![day(), spend()])
    };
    let plain = usage(user.id, 5, vec![day()]);
    let before = now();
    let first = h
        .store
        .record_usage(&scope, vec![paid.clone(), plain.clone()]);
    let first = first.await.unwrap();
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|(_, replayed)| !replayed));
    let (entry, _) = &first[0];
    assert_eq!(
        entry,
        &LedgerEntry {
            id: entry.id,
            tenant_id: user.tenant_id.to_string(),
            user_id: user.id,
            meter: "jobs".into(),
            amount: 2,
            overage: 0,
            cost_micros: 30,
            idempotency_key: paid.idempotency_key.clone(),
            source: paid.source.clone(),
            reservation_id: None,
            counters: vec![day(), spend()],
            created_at: entry.created_at,
        }
    );
    assert!(entry.created_at >= before);
    assert_ne!(first[0].0.id, first[1].0.id);
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (7, 0));
    assert_eq!(counter(&h.store, &scope, user.id, &spend()).await, (30, 0));
    assert_eq!(h.store.balance(&scope, user.id).await.unwrap(), (70, 0));

    let fresh = usage(user.id, 1, vec![day()]);
    let again = h
        .store
        .record_usage(&scope, vec![plain, fresh.clone(), paid]);
    let again = again.await.unwrap();
    assert_eq!(again[0], (first[1].0.clone(), true));
    assert_eq!(again[2], (first[0].0.clone(), true));
    assert!(!again[1].1);
    assert_eq!(again[1].0.idempotency_key, fresh.idempotency_key);
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (8, 0));
    assert_eq!(counter(&h.store, &scope, user.id, &spend()).await, (30, 0));
    assert_eq!(h.store.balance(&scope, user.id).await.unwrap(), (70, 0));
    // One key twice in a batch: the second is a replay of the first.
    let twice = usage(user.id, 3, vec![day()]);
    let both = h.store.record_usage(&scope, vec![twice.clone(), twice]);
    let both = both.await.unwrap();
    assert_eq!((both[0].1, both[1].1), (false, true));
    assert_eq!(both[0].0, both[1].0);
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (11, 0));
}

/// Commits one entry at a fixed time (the commit's `now` dates its ledger entry).
async fn settle_at(
    h: &crate::Harness,
    scope: &keel_store::TenantScope,
    entry: NewLedgerEntry,
    when: &str,
) {
    let r = reserved(&h.store, scope, reservation(entry.user_id, 1_000, vec![])).await;
    let done = h.store.commit(scope, r.id, entry, false, at(when)).await;
    assert!(matches!(done.unwrap(), CommitOutcome::Committed(_)));
}

async fn usage_is_grouped_by_meter_feature_and_utc_day_over_a_half_open_range(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let (other_scope, other) = fixtures::user(&h.store).await;
    let entry = |meter: &str, amount: i64, cost: i64, source: serde_json::Value| NewLedgerEntry {
        meter: meter.into(),
        cost_micros: cost,
        source,
        ..usage(user.id, amount, vec![])
    };
    let chat = serde_json::json!({ "feature": "chat" });
    let search = serde_json::json!({ "feature": "search" });
    let none = serde_json::json!({ "request_id": "req_9" });
    let jobs = |amount, cost, source| entry("jobs", amount, cost, source);
    settle_at(
        &h,
        &scope,
        jobs(2, 20, chat.clone()),
        "2024-03-09T00:00:00Z",
    )
    .await;
    settle_at(
        &h,
        &scope,
        jobs(3, 30, search),
        "2024-03-09T23:59:59.999999Z",
    )
    .await;
    let tokens = entry("tokens", 100, 5, chat.clone());
    settle_at(&h, &scope, tokens, "2024-03-10T00:00:00Z").await;
    settle_at(&h, &scope, jobs(1, 10, none), "2024-03-10T12:00:00+02:00").await;
    settle_at(
        &h,
        &scope,
        jobs(50, 1, chat.clone()),
        "2024-03-11T00:00:00Z",
    )
    .await;
    settle_at(
        &h,
        &scope,
        jobs(70, 1, chat.clone()),
        "2024-03-08T23:59:59Z",
    )
    .await;
    let theirs = NewLedgerEntry {
        user_id: other.id,
        ..jobs(9, 9, chat)
    };
    settle_at(&h, &other_scope, theirs, "2024-03-09T12:00:00Z").await;

    let row = |group: &str, meter: &str, amount, cost_micros, entries| UsageRow {
        group: group.into(),
        meter: meter.into(),
        amount,
        cost_micros,
        entries,
    };
    let (from, to) = (at("2024-03-09T00:00:00Z"), at("2024-03-11T00:00:00Z"));
    let report = |group| h.store.usage(&scope, user.id, from, to, group);
    assert_eq!(
        report(UsageGroup::Meter).await.unwrap(),
        vec![
            row("jobs", "jobs", 6, 60, 3),
            row("tokens", "tokens", 100, 5, 1)
        ]
    );
    assert_eq!(
        report(UsageGroup::Feature).await.unwrap(),
        vec![
            row("chat", "jobs", 2, 20, 1),
            row("chat", "tokens", 100, 5, 1),
            row("search", "jobs", 3, 30, 1),
            row("unknown", "jobs", 1, 10, 1),
        ]
    );
    assert_eq!(
        report(UsageGroup::Day).await.unwrap(),
        vec![
            row("2024-03-09", "jobs", 5, 50, 2),
            row("2024-03-10", "jobs", 1, 10, 1),
            row("2024-03-10", "tokens", 100, 5, 1),
        ]
    );
    let other_user = h.store.usage(&scope, other.id, from, to, UsageGroup::Meter);
    assert_eq!(other_user.await.unwrap(), vec![]);
}

async fn verify_counters_finds_a_tampered_counter_and_repair_fixes_it(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let settled = reserved(
        &h.store,
        &scope,
        reservation(user.id, 2, vec![gate(day(), 100, 2)]),
    );
    let settled = settled.await;
    let done = h
        .store
        .commit(&scope, settled.id, usage(user.id, 2, vec![]), false, now());
    assert!(matches!(done.await.unwrap(), CommitOutcome::Committed(_)));
    reserved(
        &h.store,
        &scope,
        reservation(user.id, 3, vec![gate(day(), 100, 3)]),
    )
    .await;
    let released = reserved(
        &h.store,
        &scope,
        reservation(user.id, 4, vec![gate(day(), 100, 4)]),
    );
    let released = released.await;
    h.store.release(&scope, released.id, now()).await.unwrap();
    let direct = NewLedgerEntry {
        cost_micros: 40,
        ..usage(user.id, 4, vec![day(), spend()])
    };
    h.store.record_usage(&scope, vec![direct]).await.unwrap();
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (6, 3));
    assert_eq!(counter(&h.store, &scope, user.id, &spend()).await, (40, 0));
    assert_eq!(h.store.verify_counters(false).await.unwrap(), vec![]);

    let (tenant, who) = (user.tenant_id.to_string(), user.id.to_string());
    let mine = format!("tenant_id = '{tenant}' AND owner = '{who}'");
    let tamper = format!(
        "UPDATE quota_counters SET committed = committed + 5, reserved = 0
         WHERE {mine} AND meter = 'jobs'"
    );
    raw_sql(&h, &tamper).await;
    raw_sql(
        &h,
        &format!("DELETE FROM quota_counters WHERE {mine} AND meter <> 'jobs'"),
    )
    .await;
    let found = vec![
        CounterMismatch {
            tenant_id: tenant.clone(),
            user_id: Some(who.clone()),
            key: spend(),
            stored: (0, 0),
            expected: (40, 0),
        },
        CounterMismatch {
            tenant_id: tenant,
            user_id: Some(who),
            key: day(),
            stored: (11, 0),
            expected: (6, 3),
        },
    ];
    assert_eq!(h.store.verify_counters(false).await.unwrap(), found);
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (11, 0));
    assert_eq!(h.store.verify_counters(true).await.unwrap(), found);
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (6, 3));
    assert_eq!(counter(&h.store, &scope, user.id, &spend()).await, (40, 0));
    assert_eq!(h.store.verify_counters(false).await.unwrap(), vec![]);
    // The repaired counters keep working.
    let limit = gate(day(), 10, 1);
    reserved(
        &h.store,
        &scope,
        reservation(user.id, 1, vec![limit.clone()]),
    )
    .await;
    let full = h
        .store
        .reserve(&scope, reservation(user.id, 1, vec![limit.clone()]));
    let refusal = keel_store::ReserveOutcome::Refused {
        gate: limit,
        used: 10,
    };
    assert_eq!(full.await.unwrap(), refusal);
}

on_both_backends!(
    replayed_usage_records_change_no_counter,
    usage_is_grouped_by_meter_feature_and_utc_day_over_a_half_open_range,
    verify_counters_finds_a_tampered_counter_and_repair_fixes_it,
);
