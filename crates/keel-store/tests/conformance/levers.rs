//! Operator levers: quota overrides and billing kill switches.

use chrono::{Duration, SubsecRound};
use keel_core::ids::TenantId;
use keel_store::{Backend, KillSwitch, QuotaOverride, TenantScope};

use crate::fixtures::{self, now};
use crate::harness;

fn override_of(user: keel_core::ids::UserId, meter: &str, extra: i64) -> QuotaOverride {
    QuotaOverride {
        user_id: user,
        meter: meter.into(),
        target: "limit".into(),
        extra,
        custom_limit: None,
        expires_at: None,
        reason: "support ticket 42".into(),
        actor: "adm_test".into(),
        created_at: now().trunc_subsecs(6),
    }
}

async fn an_override_is_set_replaced_listed_and_removed(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let first = override_of(user.id, "jobs", 5);
    h.store
        .put_quota_override(&scope, first.clone())
        .await
        .unwrap();
    let credits = QuotaOverride {
        target: "credits".into(),
        custom_limit: Some(500),
        extra: 0,
        expires_at: Some((now() + Duration::days(7)).trunc_subsecs(6)),
        ..first.clone()
    };
    h.store
        .put_quota_override(&scope, credits.clone())
        .await
        .unwrap();
    let replaced = QuotaOverride {
        extra: 9,
        custom_limit: Some(30),
        reason: "raised".into(),
        ..first.clone()
    };
    h.store
        .put_quota_override(&scope, replaced.clone())
        .await
        .unwrap();

    let listed = h.store.quota_overrides(&scope, user.id).await.unwrap();
    assert_eq!(listed, vec![credits.clone(), replaced]);

    // Another tenant sees none of them.
    let other = TenantScope::new(TenantId::new());
    assert!(h
        .store
        .quota_overrides(&other, user.id)
        .await
        .unwrap()
        .is_empty());
    assert!(!h
        .store
        .delete_quota_override(&other, user.id, "jobs", "limit")
        .await
        .unwrap());

    assert!(h
        .store
        .delete_quota_override(&scope, user.id, "jobs", "limit")
        .await
        .unwrap());
    assert!(!h
        .store
        .delete_quota_override(&scope, user.id, "jobs", "limit")
        .await
        .unwrap());
    assert_eq!(
        h.store.quota_overrides(&scope, user.id).await.unwrap(),
        vec![credits]
    );
}

async fn kill_switches_engage_per_user_and_globally_and_disengage(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    assert!(h.store.kill_switches().await.unwrap().is_empty());
    let user_switch = KillSwitch {
        tenant_id: Some(scope.tenant()),
        user_id: Some(user.id),
        reason: "card testing".into(),
        actor: "adm_a".into(),
        created_at: now().trunc_subsecs(6),
    };
    h.store
        .engage_kill_switch(user_switch.clone())
        .await
        .unwrap();
    let global = KillSwitch {
        tenant_id: None,
        user_id: None,
        reason: "provider outage".into(),
        actor: "adm_b".into(),
        created_at: (now() + Duration::seconds(1)).trunc_subsecs(6),
    };
    h.store.engage_kill_switch(global.clone()).await.unwrap();
    // Engaging again replaces the reason, not adding a second switch.
    let again = KillSwitch {
        reason: "card testing, confirmed".into(),
        ..user_switch.clone()
    };
    h.store.engage_kill_switch(again.clone()).await.unwrap();
    assert_eq!(
        h.store.kill_switches().await.unwrap(),
        vec![again, global.clone()]
    );

    assert!(h.store.disengage_kill_switch(Some(user.id)).await.unwrap());
    assert!(!h.store.disengage_kill_switch(Some(user.id)).await.unwrap());
    assert_eq!(h.store.kill_switches().await.unwrap(), vec![global]);
    assert!(h.store.disengage_kill_switch(None).await.unwrap());
    assert!(h.store.kill_switches().await.unwrap().is_empty());
}

on_both_backends!(
    an_override_is_set_replaced_listed_and_removed,
    kill_switches_engage_per_user_and_globally_and_disengage,
);
