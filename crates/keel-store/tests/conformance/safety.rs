//! Safety events: recorded per request, scoped to their tenant, listed newest first.

use keel_core::ids::{TenantId, UserId};
use keel_store::{Backend, NewSafetyEvent, SafetyQuery, TenantScope};

use crate::harness;

fn hit(user: UserId, rule: &str, request: &str) -> NewSafetyEvent {
    NewSafetyEvent {
        user_id: user,
        rule: rule.into(),
        feature: "chat".into(),
        action: "block".into(),
        status: Some("crisis_support".into()),
        request_id: request.into(),
        text_hash: "0123456789abcdef".into(),
    }
}

fn all() -> SafetyQuery {
    SafetyQuery {
        limit: 500,
        ..Default::default()
    }
}

async fn safety_events_round_trip(backend: Backend) {
    let h = harness(backend).await;
    let scope = TenantScope::new(TenantId::new());
    let user = UserId::new();
    let written = h
        .store
        .record_safety_events(&scope, vec![hit(user, "crisis", "req-1")])
        .await
        .unwrap();
    let read = h.store.list_safety_events(&scope, &all()).await.unwrap();
    assert_eq!(read, written);
    assert_eq!(read[0].user_id, user);
    assert_eq!(read[0].status.as_deref(), Some("crisis_support"));
    assert_eq!(read[0].tenant_id, scope.tenant().to_string());
}

async fn safety_events_are_scoped_to_their_tenant(backend: Backend) {
    let h = harness(backend).await;
    let a = TenantScope::new(TenantId::new());
    let b = TenantScope::new(TenantId::new());
    h.store
        .record_safety_events(&a, vec![hit(UserId::new(), "crisis", "req-a")])
        .await
        .unwrap();
    assert!(h
        .store
        .list_safety_events(&b, &all())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        h.store.list_safety_events(&a, &all()).await.unwrap().len(),
        1
    );
}

async fn safety_events_filter_by_user_and_request_newest_first(backend: Backend) {
    let h = harness(backend).await;
    let scope = TenantScope::new(TenantId::new());
    let (u1, u2) = (UserId::new(), UserId::new());
    let both = vec![hit(u1, "crisis", "req-1"), hit(u1, "medical", "req-1")];
    h.store.record_safety_events(&scope, both).await.unwrap();
    h.store
        .record_safety_events(&scope, vec![hit(u2, "crisis", "req-2")])
        .await
        .unwrap();
    let mine = SafetyQuery {
        user_id: Some(u1),
        ..all()
    };
    let rows = h.store.list_safety_events(&scope, &mine).await.unwrap();
    let rules: Vec<&str> = rows.iter().map(|r| r.rule.as_str()).collect();
    assert_eq!(rules, ["medical", "crisis"]);
    let by_request = SafetyQuery {
        request_id: Some("req-2".into()),
        ..all()
    };
    let rows = h.store.list_safety_events(&scope, &by_request).await;
    assert_eq!(rows.unwrap()[0].user_id, u2);
    let page = SafetyQuery { limit: 1, ..all() };
    let first = h.store.list_safety_events(&scope, &page).await.unwrap();
    let next = SafetyQuery {
        before: Some(first[0].id),
        ..all()
    };
    assert_eq!(
        h.store
            .list_safety_events(&scope, &next)
            .await
            .unwrap()
            .len(),
        2
    );
    let none = h.store.record_safety_events(&scope, Vec::new()).await;
    assert!(none.unwrap().is_empty());
}

async fn concurrent_safety_events_are_all_kept(backend: Backend) {
    let h = crate::harness_with(backend, 16).await;
    let scope = TenantScope::new(TenantId::new());
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = h.store.clone();
            let event = hit(UserId::new(), "crisis", &format!("req-{i}"));
            tokio::spawn(async move { store.record_safety_events(&scope, vec![event]).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let rows = h.store.list_safety_events(&scope, &all()).await.unwrap();
    assert_eq!(rows.len(), 32);
}

on_both_backends!(
    safety_events_round_trip,
    safety_events_are_scoped_to_their_tenant,
    safety_events_filter_by_user_and_request_newest_first,
    concurrent_safety_events_are_all_kept,
);
