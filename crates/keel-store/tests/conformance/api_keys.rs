//! API keys.

use chrono::TimeDelta;
use keel_core::ids::{ApiKeyId, TenantId, UserId};
use keel_store::{ApiKeyRecord, Backend, NewApiKey, StoreError, TenantScope};

use crate::fixtures::{self, new_api_key, now};
use crate::harness;

async fn an_api_key_reads_back_exactly(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let new = new_api_key(user.id);
    let created = h.store.create_api_key(&scope, new.clone()).await.unwrap();
    assert_eq!(
        created,
        ApiKeyRecord {
            id: new.id,
            tenant_id: user.tenant_id,
            user_id: user.id,
            name: "ci".into(),
            prefix: "keel_live_AbC1".into(),
            scopes: vec!["jobs:read".into(), "jobs:write".into()],
            expires_at: new.expires_at,
            last_used_at: None,
            revoked_at: None,
            created_at: created.created_at,
        }
    );
    let listed = h.store.list_api_keys(&scope, user.id).await.unwrap();
    assert_eq!(listed, vec![created.clone()]);
    let found = h.store.find_api_key(&new.key_hash).await.unwrap();
    assert_eq!(found, Some(created));
    assert_eq!(h.store.find_api_key(&fixtures::hash()).await.unwrap(), None);
}

async fn a_key_without_scopes_or_expiry_reads_back_exactly(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let new = NewApiKey {
        scopes: vec![],
        expires_at: None,
        ..new_api_key(user.id)
    };
    let created = h.store.create_api_key(&scope, new.clone()).await.unwrap();
    assert_eq!((created.scopes.len(), created.expires_at), (0, None));
    let found = h.store.find_api_key(&new.key_hash).await.unwrap();
    assert_eq!(found, Some(created));
}

async fn a_taken_key_hash_is_a_conflict(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let first = new_api_key(user.id);
    h.store.create_api_key(&scope, first.clone()).await.unwrap();
    let twin = NewApiKey {
        id: ApiKeyId::new(),
        ..first
    };
    let err = h.store.create_api_key(&scope, twin).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(
        h.store.list_api_keys(&scope, user.id).await.unwrap().len(),
        1
    );
}

async fn api_keys_list_newest_first_including_revoked_ones(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let mut made = Vec::new();
    for _ in 0..3 {
        let key = h.store.create_api_key(&scope, new_api_key(user.id));
        made.push(key.await.unwrap());
    }
    h.store
        .revoke_api_key(&scope, user.id, made[1].id)
        .await
        .unwrap();
    let listed = h.store.list_api_keys(&scope, user.id).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|k| k.id).collect();
    assert_eq!(ids, vec![made[2].id, made[1].id, made[0].id]);
    assert!(listed[1].revoked_at.is_some());
    assert_eq!((listed[0].revoked_at, listed[2].revoked_at), (None, None));
}

async fn revoking_an_api_key_twice_keeps_the_first_time(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let new = new_api_key(user.id);
    let created = h.store.create_api_key(&scope, new.clone()).await.unwrap();
    h.store
        .revoke_api_key(&scope, user.id, created.id)
        .await
        .unwrap();
    let once = h.store.find_api_key(&new.key_hash).await.unwrap().unwrap();
    assert!(once.revoked_at.is_some());
    assert_eq!(
        once,
        ApiKeyRecord {
            revoked_at: once.revoked_at,
            ..created.clone()
        }
    );
    h.store
        .revoke_api_key(&scope, user.id, created.id)
        .await
        .unwrap();
    let twice = h.store.find_api_key(&new.key_hash).await.unwrap();
    assert_eq!(twice, Some(once));
    let unknown = h
        .store
        .revoke_api_key(&scope, user.id, ApiKeyId::new())
        .await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
}

async fn api_keys_of_another_tenant_or_user_are_not_found(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let (other, other_user) = fixtures::user(&h.store).await;
    let created = h
        .store
        .create_api_key(&scope, new_api_key(user.id))
        .await
        .unwrap();
    for wrong in [other, TenantScope::new(TenantId::new())] {
        assert_eq!(
            h.store.list_api_keys(&wrong, user.id).await.unwrap(),
            vec![]
        );
        let revoke = h.store.revoke_api_key(&wrong, user.id, created.id).await;
        assert!(matches!(revoke, Err(StoreError::NotFound)), "{revoke:?}");
        let touch = h.store.touch_api_key(&wrong, created.id, now()).await;
        assert!(matches!(touch, Err(StoreError::NotFound)), "{touch:?}");
        let make = h.store.create_api_key(&wrong, new_api_key(user.id)).await;
        assert!(matches!(make, Err(StoreError::NotFound)), "{make:?}");
    }
    for stranger in [other_user.id, UserId::new()] {
        let revoke = h.store.revoke_api_key(&scope, stranger, created.id).await;
        assert!(matches!(revoke, Err(StoreError::NotFound)), "{revoke:?}");
        let make = h.store.create_api_key(&scope, new_api_key(stranger)).await;
        assert!(matches!(make, Err(StoreError::NotFound)), "{make:?}");
    }
    assert_eq!(
        h.store.list_api_keys(&scope, user.id).await.unwrap(),
        vec![created]
    );
    assert_eq!(
        h.store.list_api_keys(&other, other_user.id).await.unwrap(),
        vec![]
    );
}

async fn touching_an_api_key_records_the_latest_use(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let new = new_api_key(user.id);
    let created = h.store.create_api_key(&scope, new.clone()).await.unwrap();
    let used = now();
    let last_used = || async {
        let found = h.store.find_api_key(&new.key_hash).await.unwrap();
        found.unwrap().last_used_at
    };
    h.store
        .touch_api_key(&scope, created.id, used)
        .await
        .unwrap();
    assert_eq!(last_used().await, Some(used));
    // A touch that arrives late from another node does not move it back.
    let earlier = used - TimeDelta::seconds(90);
    h.store
        .touch_api_key(&scope, created.id, earlier)
        .await
        .unwrap();
    assert_eq!(last_used().await, Some(used));
    let later = used + TimeDelta::seconds(90);
    h.store
        .touch_api_key(&scope, created.id, later)
        .await
        .unwrap();
    assert_eq!(last_used().await, Some(later));
    let unknown = h.store.touch_api_key(&scope, ApiKeyId::new(), later).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
}

on_both_backends!(
    an_api_key_reads_back_exactly,
    a_key_without_scopes_or_expiry_reads_back_exactly,
    a_taken_key_hash_is_a_conflict,
    api_keys_list_newest_first_including_revoked_ones,
    revoking_an_api_key_twice_keeps_the_first_time,
    api_keys_of_another_tenant_or_user_are_not_found,
    touching_an_api_key_records_the_latest_use,
);
