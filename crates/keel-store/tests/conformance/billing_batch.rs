//! Batched billing writes (what a gateway call does): several reservations all or
//! nothing, and a settlement whose items stand alone but share one transaction with the
//! call's audit event.

use keel_core::ids::ReservationId;
use keel_store::{
    AuditQuery, Backend, CommitOutcome, NewAuditEvent, ReservationStatus, ReserveOutcome, Settle,
    Settled, StoreError,
};

use crate::billing_fixtures::{counter, day, gate, key, month, reservation, usage};
use crate::fixtures::{self, now, race_n};
use crate::{harness, harness_with};

fn audit(request: &str) -> NewAuditEvent {
    NewAuditEvent {
        actor: "user".into(),
        action: "gateway.call".into(),
        target: Some("chat".into()),
        request_id: Some(request.into()),
        data: serde_json::json!({ "outcome": "ok" }),
    }
}

async fn a_refusal_anywhere_in_the_batch_keeps_nothing_of_it(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let first = reservation(user.id, 5, vec![gate(day(), 10, 5)]);
    let second = reservation(user.id, 4, vec![gate(month(), 3, 4)]);
    let first_id = first.id;
    let outcomes = h
        .store
        .reserve_all(&scope, vec![first, second])
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 2);
    assert!(matches!(outcomes[0], ReserveOutcome::Reserved(_)));
    match &outcomes[1] {
        ReserveOutcome::Refused { gate, used } => {
            assert_eq!(gate.key, month());
            assert_eq!(*used, 0);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (0, 0));
    assert_eq!(counter(&h.store, &scope, user.id, &month()).await, (0, 0));
    let gone = h.store.get_reservation(&scope, first_id).await;
    assert!(matches!(gone, Err(StoreError::NotFound)), "{gone:?}");
}

async fn a_granted_batch_holds_every_gate_and_replays_by_key(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let batch = vec![
        reservation(user.id, 1, vec![gate(key("requests", "day"), 10, 1)]),
        reservation(user.id, 300, vec![gate(key("tokens", "day"), 1_000, 300)]),
    ];
    let outcomes = h.store.reserve_all(&scope, batch.clone()).await.unwrap();
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, ReserveOutcome::Reserved(_))));
    let requests = counter(&h.store, &scope, user.id, &key("requests", "day")).await;
    let tokens = counter(&h.store, &scope, user.id, &key("tokens", "day")).await;
    assert_eq!((requests, tokens), ((0, 1), (0, 300)));
    let again = h.store.reserve_all(&scope, batch).await.unwrap();
    assert!(again
        .iter()
        .all(|o| matches!(o, ReserveOutcome::Replayed(_))));
    let tokens = counter(&h.store, &scope, user.id, &key("tokens", "day")).await;
    assert_eq!(tokens, (0, 300));
}

async fn a_settlement_commits_releases_and_audits_together_and_a_bad_item_stands_alone(
    backend: Backend,
) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let batch = vec![
        reservation(user.id, 5, vec![gate(day(), 10, 5)]),
        reservation(user.id, 2, vec![gate(month(), 10, 2)]),
    ];
    let outcomes = h.store.reserve_all(&scope, batch).await.unwrap();
    let ids: Vec<ReservationId> = outcomes
        .iter()
        .map(|o| match o {
            ReserveOutcome::Reserved(r) => r.id,
            other => panic!("expected a reservation, got {other:?}"),
        })
        .collect();
    let mut entry = usage(user.id, 3, vec![]);
    entry.reservation_id = Some(ids[0]);
    let items = vec![
        Settle::Commit {
            id: ids[0],
            entry,
            allow_overage: false,
        },
        Settle::Release {
            id: ReservationId::new(),
        },
        Settle::Release { id: ids[1] },
    ];
    let request = format!("req_{}", ids[0]);
    let report = h
        .store
        .settle_all(&scope, items, Some(audit(&request)), now())
        .await
        .unwrap();
    assert_eq!(report.items.len(), 3);
    assert!(matches!(
        report.items[0],
        Ok(Settled::Commit(CommitOutcome::Committed(_)))
    ));
    assert!(matches!(report.items[1], Err(StoreError::NotFound)));
    assert!(matches!(
        report.items[2],
        Ok(Settled::Release(ReservationStatus::Active))
    ));
    assert!(matches!(report.audit, Some(Ok(()))));
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (3, 0));
    assert_eq!(counter(&h.store, &scope, user.id, &month()).await, (0, 0));
    let released = h.store.get_reservation(&scope, ids[1]).await.unwrap();
    assert_eq!(released.status, ReservationStatus::Released);
    let query = AuditQuery {
        action: Some("gateway.call".into()),
        ..AuditQuery::default()
    };
    let audited = h.store.list_audit(&scope, &query).await.unwrap();
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].request_id.as_deref(), Some(request.as_str()));
}

/// 64 callers reserve a two-meter batch until refused: the daily limit of 100 admits
/// exactly 100 batches, and no refused batch leaves anything on the other meter.
async fn racing_batches_admit_exactly_the_limit_and_leak_nothing(backend: Backend) {
    let h = harness_with(backend, 16).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let granted = race_n(64, |_| {
        let store = h.store.clone();
        async move {
            let mut granted = 0;
            loop {
                let batch = vec![
                    reservation(user.id, 1, vec![gate(month(), 1_000_000, 1)]),
                    reservation(user.id, 1, vec![gate(day(), 100, 1)]),
                ];
                let outcomes = store.reserve_all(&scope, batch).await.unwrap();
                match outcomes.last() {
                    Some(ReserveOutcome::Reserved(_)) => granted += 1,
                    Some(ReserveOutcome::Refused { .. }) => return granted,
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    })
    .await;
    assert_eq!(granted.iter().sum::<i64>(), 100);
    assert_eq!(counter(&h.store, &scope, user.id, &day()).await, (0, 100));
    assert_eq!(counter(&h.store, &scope, user.id, &month()).await, (0, 100));
}

on_both_backends!(
    a_refusal_anywhere_in_the_batch_keeps_nothing_of_it,
    a_granted_batch_holds_every_gate_and_replays_by_key,
    a_settlement_commits_releases_and_audits_together_and_a_bad_item_stands_alone,
    racing_batches_admit_exactly_the_limit_and_leak_nothing,
);
