//! Applying inbox events: the subscription, the audit event, the status and the provider
//! link are written together; an older provider event never overwrites a newer one.

use chrono::TimeDelta;
use keel_store::{AuditQuery, Backend, InboxResolution, InboxStatus, ResolveOutcome};

use crate::fixtures::{self, now};
use crate::harness;
use crate::webhooks::{change, claim_one, delivery, unique};

on_both_backends!(
    a_change_writes_subscription_audit_and_status_together,
    an_older_provider_event_never_overwrites_a_newer_one,
    a_provider_reference_links_to_one_user_and_resolution_relinks,
);

async fn a_change_writes_subscription_audit_and_status_together(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    h.store
        .record_inbox_event(delivery("stripe", &unique("evt")))
        .await
        .unwrap();
    let e = claim_one(&h.store, now() + TimeDelta::seconds(1)).await;
    let c = change(scope, user.id, "pro", "active", now());
    let out = h
        .store
        .resolve_inbox_event(
            e.id,
            e.attempts,
            InboxResolution::Change(Box::new(c.clone())),
            now(),
        )
        .await
        .unwrap();
    assert_eq!(out, ResolveOutcome::Applied);
    let sub = h
        .store
        .get_subscription(&scope, user.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sub, c.subscription);
    let stored = h.store.get_inbox_event(e.id).await.unwrap();
    assert_eq!(stored.status, InboxStatus::Applied);
    assert_eq!(stored.user_id, Some(user.id));
    assert_eq!(stored.tenant_id, Some(scope.tenant().to_string()));
    assert!(stored.applied_at.is_some());
    let audit = h
        .store
        .list_audit(
            &scope,
            &AuditQuery {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.action == "subscription.changed")
            .count(),
        1
    );
    // Resolving again (a duplicate attempt) changes nothing.
    let again = h
        .store
        .resolve_inbox_event(
            e.id,
            e.attempts,
            InboxResolution::Change(Box::new(c)),
            now(),
        )
        .await
        .unwrap();
    assert_eq!(again, ResolveOutcome::LostClaim);
    let audit = h
        .store
        .list_audit(
            &scope,
            &AuditQuery {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.action == "subscription.changed")
            .count(),
        1
    );
}

async fn an_older_provider_event_never_overwrites_a_newer_one(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let t = now();
    let newer = change(scope, user.id, "pro", "canceled", t);
    let older = change(scope, user.id, "pro", "active", t - TimeDelta::seconds(30));
    for (c, expect) in [
        (newer, ResolveOutcome::Applied),
        (older, ResolveOutcome::Stale),
    ] {
        h.store
            .record_inbox_event(delivery("stripe", &unique("evt")))
            .await
            .unwrap();
        let e = claim_one(&h.store, now() + TimeDelta::seconds(1)).await;
        let out = h
            .store
            .resolve_inbox_event(
                e.id,
                e.attempts,
                InboxResolution::Change(Box::new(c)),
                now(),
            )
            .await
            .unwrap();
        assert_eq!(out, expect);
        let stored = h.store.get_inbox_event(e.id).await.unwrap();
        assert_eq!(stored.status, InboxStatus::Applied);
    }
    let sub = h
        .store
        .get_subscription(&scope, user.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sub.status, "canceled");
    let audit = h
        .store
        .list_audit(
            &scope,
            &AuditQuery {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.action == "subscription.changed")
            .count(),
        1
    );
}

async fn a_provider_reference_links_to_one_user_and_resolution_relinks(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let (other_scope, other) = fixtures::user(&h.store).await;
    assert_eq!(
        h.store
            .find_provider_link("googleplay", "tok")
            .await
            .unwrap(),
        None
    );
    h.store
        .link_provider_ref(&scope, user.id, "googleplay", "tok")
        .await
        .unwrap();
    // Linking again to the same user is fine; to another is a conflict.
    h.store
        .link_provider_ref(&scope, user.id, "googleplay", "tok")
        .await
        .unwrap();
    let taken = h
        .store
        .link_provider_ref(&other_scope, other.id, "googleplay", "tok")
        .await;
    assert!(matches!(taken, Err(keel_store::StoreError::Conflict(_))));
    assert_eq!(
        h.store
            .find_provider_link("googleplay", "tok")
            .await
            .unwrap(),
        Some((scope, user.id))
    );
    assert_eq!(
        h.store.find_provider_link("stripe", "tok").await.unwrap(),
        None
    );
    // A change the provider vouches for (its event names the user) moves the link.
    h.store
        .record_inbox_event(delivery("googleplay", &unique("m")))
        .await
        .unwrap();
    let e = claim_one(&h.store, now() + TimeDelta::seconds(1)).await;
    let mut c = change(other_scope, other.id, "pro", "active", now());
    c.provider_ref = "tok".into();
    h.store
        .resolve_inbox_event(
            e.id,
            e.attempts,
            InboxResolution::Change(Box::new(c)),
            now(),
        )
        .await
        .unwrap();
    assert_eq!(
        h.store
            .find_provider_link("googleplay", "tok")
            .await
            .unwrap(),
        Some((other_scope, other.id))
    );
    // A link-only resolution records the link and the user on the event.
    h.store
        .record_inbox_event(delivery("stripe", &unique("evt")))
        .await
        .unwrap();
    let e = claim_one(&h.store, now() + TimeDelta::seconds(1)).await;
    let link = InboxResolution::Link {
        scope,
        user: user.id,
        provider_ref: "sub_9".into(),
    };
    h.store
        .resolve_inbox_event(e.id, e.attempts, link, now())
        .await
        .unwrap();
    assert_eq!(
        h.store.find_provider_link("stripe", "sub_9").await.unwrap(),
        Some((scope, user.id))
    );
    let stored = h.store.get_inbox_event(e.id).await.unwrap();
    assert_eq!(
        (stored.status, stored.user_id),
        (InboxStatus::Applied, Some(user.id))
    );
}
